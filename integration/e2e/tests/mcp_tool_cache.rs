//! The guide's `tool-cache` on a real Envoy, spoken to by the official MCP Python SDK in both of
//! its eras (the session style: initialize + Mcp-Session-Id; the 2026-07-28 style: no handshake,
//! Mcp-Method/Mcp-Name headers), with an SDK server behind mcp-routes
//! (`integration/e2e/mcp/tool_server.py`, which counts how often each tool really ran):
//! `list-pods` is answered from the cache, `kubectl-apply` never (a rule disables it),
//! `kubectl-get` never although a rule lists it (the server marks it destructive), a tool error
//! never; a hit carries the new request's JSON-RPC id.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::{free_port, http, workspace_root};

fn python() -> std::path::PathBuf {
    workspace_root().join(".tools/venv/bin/python")
}

/// The SDK server; killed on drop.
struct ToolServer {
    child: Child,
    port: u16,
}

impl ToolServer {
    fn start(json: bool) -> Self {
        let port = free_port();
        let mut command = Command::new(python());
        command
            .arg(workspace_root().join("integration/e2e/mcp/tool_server.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if json {
            command.arg("--json");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", python().display()));
        let server = ToolServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.try_calls().is_none() {
            assert!(Instant::now() < deadline, "the MCP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn try_calls(&self) -> Option<BTreeMap<String, u64>> {
        let r = http::get(&format!("http://127.0.0.1:{}/__calls", self.port)).ok()?;
        serde_json::from_str(&r.body).ok()
    }

    /// How many times each tool really ran.
    fn calls(&self) -> BTreeMap<String, u64> {
        self.try_calls().unwrap()
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(server: &ToolServer) -> Gateway {
    let spec = GatewaySpec {
        inputs: vec![
            "envoy-config/guide/15-trafficpolicy-tool-cache.yaml".into(),
            "integration/e2e/tests/fixtures/cache.yaml".into(),
        ],
        ..Default::default()
    }
    .endpoint("mcp-tools", format!("http://127.0.0.1:{}", server.port))
    .endpoint("gpt", "http://127.0.0.1:9")
    .secret("openai-secret", "sk-unused");
    Gateway::start(&spec).unwrap()
}

/// Runs the SDK client through the gateway; its JSON report.
fn sdk_client(gateway: &Gateway, mode: &str, authorization: &str) -> serde_json::Value {
    let out = Command::new(python())
        .arg(workspace_root().join("integration/e2e/mcp/tool_client.py"))
        .arg(gateway.url("/mcp"))
        .arg(mode)
        .arg(authorization)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client ({mode}) failed:\n{}\n--- envoy ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        gateway.envoy.logs()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn texts(report: &serde_json::Value, tool: &str) -> Vec<String> {
    report["calls"][tool]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect()
}

/// The guide's rules, seen through one SDK session in `mode`.
fn check_guide_rules(mode: &str, json_answers: bool) {
    let server = ToolServer::start(json_answers);
    let gateway = gateway(&server);
    let report = sdk_client(&gateway, mode, "Bearer agent-1");
    if mode != "auto" {
        let version = report["protocol_version"].as_str().unwrap();
        assert_eq!(version == "2026-07-28", mode == "2026-07-28", "{version}");
    }
    let calls = server.calls();
    // Cached for 5m: the second call was answered by the gateway with the first's result.
    assert_eq!(calls["list-pods"], 1, "{calls:?}");
    assert_eq!(
        texts(&report, "list-pods"),
        vec!["pods in default: web-1 web-2 (run 1)"; 2]
    );
    // A rule disables it: both calls ran.
    assert_eq!(calls["kubectl-apply"], 2, "{calls:?}");
    // Listed as cacheable, but the server's tools/list says destructiveHint: both ran.
    assert_eq!(calls["kubectl-get"], 2, "{calls:?}");
    // isError results are never stored.
    assert_eq!(calls["list-services"], 2, "{calls:?}");

    // Another caller's credentials: not the first caller's entry.
    sdk_client(&gateway, mode, "Bearer agent-2");
    assert_eq!(server.calls()["list-pods"], 2);
}

#[test]
fn the_session_style_sdk_client_gets_list_tools_from_cache_and_write_tools_from_the_server() {
    check_guide_rules("legacy", false);
}

#[test]
fn the_2026_07_28_style_sdk_client_gets_list_tools_from_cache_and_write_tools_from_the_server() {
    check_guide_rules("2026-07-28", true);
}

#[test]
fn a_hit_answers_with_the_new_requests_json_rpc_id() {
    let server = ToolServer::start(true);
    let gateway = gateway(&server);
    sdk_client(&gateway, "2026-07-28", "Bearer agent-1");
    let call = |id: &str| {
        http::post(
            &gateway.url("/mcp"),
            &[
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("authorization", "Bearer agent-1"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "list-pods"),
            ],
            &format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"list-pods","arguments":{{"namespace":"default"}}}}}}"#
            ),
        )
        .unwrap()
    };
    for id in [r#""raw-7""#, "42"] {
        let hit = call(id);
        assert_eq!(hit.status, 200, "{}", hit.body);
        assert_eq!(hit.header("x-cache-status"), Some("HIT"));
        let age: u64 = hit.header("age").unwrap().parse().unwrap();
        assert!(age < 300, "served after its 5m TTL: age {age}");
        let body: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
        assert_eq!(
            body["id"],
            serde_json::from_str::<serde_json::Value>(id).unwrap()
        );
        assert_eq!(
            body["result"]["content"][0]["text"],
            "pods in default: web-1 web-2 (run 1)"
        );
    }
    assert_eq!(server.calls()["list-pods"], 1);
}
