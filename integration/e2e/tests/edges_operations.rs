//! Only known operations leave the gateway (issue 8), on a real Envoy with the generated
//! configuration of `envoy-config/tests/fixtures/auth.yaml` and mock providers holding the
//! operator's keys: one row per abuse, each asserting the client's status and OpenAI error
//! body AND that no provider mock received anything. Then what must still work: chat, the
//! model list answered by the gateway, an opted-in operation forwarded untranslated, and the
//! MCP route passed through byte for byte.

use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http::Response;
use tollgate_e2e::raw_request;
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-edges-ops-openai";
const ANTHROPIC_KEY: &str = "sk-edges-ops-anthropic";
const GOOGLE_KEY: &str = "edges-ops-google";
const TEAM_A_KEY: &str = "sk-edges-ops-team-a";
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;
const OPEN_ROUTE_MODELS: [&str; 3] = [
    "claude-3-5-haiku-20241022",
    "gemini-1.5-flash",
    "gpt-4o-mini",
];

struct Providers {
    gpt: MockHandle,
    claude: MockHandle,
    gemini: MockHandle,
    embedder: MockHandle,
    tools: MockHandle,
}

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

impl Providers {
    fn start() -> Self {
        Providers {
            gpt: mock(Kind::Openai, Some(OPENAI_KEY)),
            claude: mock(Kind::Anthropic, Some(ANTHROPIC_KEY)),
            gemini: mock(Kind::Gemini, Some(GOOGLE_KEY)),
            embedder: mock(Kind::Openai, Some(OPENAI_KEY)),
            tools: mock(Kind::Openai, None),
        }
    }

    fn gateway(&self) -> Gateway {
        let spec = GatewaySpec {
            inputs: vec!["envoy-config/tests/fixtures/auth.yaml".into()],
            ..Default::default()
        }
        .endpoint("gpt", self.gpt.base_url())
        .endpoint("claude", self.claude.base_url())
        .endpoint("gemini-flash", self.gemini.base_url())
        .endpoint("embedder", self.embedder.base_url())
        .endpoint("tools", self.tools.base_url())
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", ANTHROPIC_KEY)
        .secret("google-ai-secret", GOOGLE_KEY)
        .secret("client-team-a", TEAM_A_KEY)
        .secret("client-team-b", "sk-edges-ops-team-b");
        Gateway::start(&spec).unwrap()
    }

    /// (name, requests received) of every mock.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("gpt", self.gpt.request_count()),
            ("claude", self.claude.request_count()),
            ("gemini", self.gemini.request_count()),
            ("embedder", self.embedder.request_count()),
            ("tools", self.tools.request_count()),
        ]
    }
}

/// What the client must get.
#[derive(Debug)]
enum Expect {
    /// An OpenAI-format error: status and `error.code`.
    Error(u16, &'static str),
    /// 200 with OpenAI's model list holding these ids, from the gateway.
    List(&'static [&'static str]),
    /// Refused by the HTTP connection manager before any filter runs (its own status).
    RejectedByEnvoy(u16),
}

/// One abuse: method, path, extra headers, body, and the answer it must get.
struct Row {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    expect: Expect,
}

const fn row(
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    expect: Expect,
) -> Row {
    Row {
        method,
        path,
        headers,
        body,
        expect,
    }
}

/// An OpenAI SDK's headers, with the client's own key (the gateway's routes here need none).
const SDK: &[(&str, &str)] = &[
    ("authorization", "Bearer sk-the-clients-own-key"),
    ("content-type", "application/json"),
];

/// Every abuse of issue 8 and its neighbours. None may reach a provider.
#[rustfmt::skip]
const ABUSES: &[Row] = &[
    // Files: listing, reading, uploading, deleting the organisation's files.
    row("GET", "/openai/v1/files", SDK, "", Expect::Error(404, "unknown_url")),
    row("GET", "/openai/v1/files?purpose=batch", SDK, "", Expect::Error(404, "unknown_url")),
    row("GET", "/openai/v1/files/file-abc/content", SDK, "", Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/files", SDK, r#"{"purpose":"batch"}"#, Expect::Error(404, "unknown_url")),
    row("DELETE", "/anthropic/v1/files/abc", SDK, "", Expect::Error(404, "unknown_url")),
    row("DELETE", "/openai/v1/files/file-abc", SDK, "", Expect::Error(404, "unknown_url")),
    // Stored completions: listed by GET on the chat path, read and deleted by id.
    row("GET", "/v1/chat/completions", SDK, "", Expect::Error(405, "method_not_allowed")),
    row("GET", "/openai/v1/chat/completions/chatcmpl-abc", SDK, "", Expect::Error(404, "unknown_url")),
    row("DELETE", "/openai/v1/chat/completions/chatcmpl-abc", SDK, "", Expect::Error(404, "unknown_url")),
    row("GET", "/v1/chat/completions/chatcmpl-abc/messages", SDK, "", Expect::Error(404, "unknown_url")),
    // Batches and fine-tuning: created, listed, cancelled on the operator's account.
    row("GET", "/openai/v1/batches", SDK, "", Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/batches/batch_abc/cancel", SDK, "", Expect::Error(404, "unknown_url")),
    row("GET", "/anthropic/v1/messages/batches", SDK, "", Expect::Error(404, "unknown_url")),
    row("POST", "/v1/fine_tuning/jobs", SDK, r#"{"model":"gpt-4o-mini"}"#, Expect::Error(404, "unknown_url")),
    row("DELETE", "/v1/models/ft:gpt-4o-mini:org:abc", SDK, "", Expect::Error(404, "unknown_url")),
    // Other OpenAI operations nobody opted in on these Backends.
    row("POST", "/v1/embeddings", SDK, r#"{"model":"text-embedding-3-small","input":"hi"}"#, Expect::Error(404, "unknown_url")),
    row("POST", "/v1/responses", SDK, r#"{"model":"gpt-4o-mini","input":"hi"}"#, Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/audio/speech", SDK, r#"{"model":"tts-1","input":"hi"}"#, Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/images/generations", SDK, r#"{"prompt":"a cat"}"#, Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/moderations", SDK, r#"{"input":"hi"}"#, Expect::Error(404, "unknown_url")),
    // Providers' native APIs under the gateway's prefixes.
    row("POST", "/anthropic/v1/messages", SDK, r#"{"model":"claude-3-5-haiku-20241022","max_tokens":5,"messages":[]}"#, Expect::Error(404, "unknown_url")),
    row("POST", "/gemini/v1beta/models/gemini-1.5-flash:generateContent", SDK, r#"{"contents":[]}"#, Expect::Error(404, "unknown_url")),
    row("GET", "/gemini/v1beta/cachedContents", SDK, "", Expect::Error(404, "unknown_url")),
    // The model list is the gateway's, never the provider's (which would 404 or leak its own).
    row("GET", "/gemini/v1/models", SDK, "", Expect::List(&OPEN_ROUTE_MODELS)),
    row("GET", "/v1/models", SDK, "", Expect::List(&OPEN_ROUTE_MODELS)),
    row("GET", "/openai/v1/models?limit=1", SDK, "", Expect::List(&OPEN_ROUTE_MODELS)),
    row("GET", "/v1/models/gpt-9", SDK, "", Expect::Error(404, "model_not_found")),
    row("POST", "/v1/models", SDK, "{}", Expect::Error(405, "method_not_allowed")),
    // An opted-in operation is still POST only; chat is POST only.
    row("GET", "/embed/v1/embeddings", SDK, "", Expect::Error(405, "method_not_allowed")),
    row("PUT", "/openai/v1/chat/completions", SDK, CHAT, Expect::Error(405, "method_not_allowed")),
    // Look-alike and escaped paths.
    // An escaped slash: the HCM rejects it (path_with_escaped_slashes_action) before any filter.
    row("POST", "/openai/v1/chat%2Fcompletions", SDK, CHAT, Expect::RejectedByEnvoy(400)),
    row("GET", "/openai/v1/chat/completions/../../files", SDK, "", Expect::Error(404, "unknown_url")),
    row("POST", "/openai/v1/xchat/completions", SDK, CHAT, Expect::Error(404, "unknown_url")),
    row("GET", "/openai", SDK, "", Expect::Error(404, "unknown_url")),
];

fn check(row: &Row, response: &Response) {
    let what = format!("{} {}", row.method, row.path);
    if let Expect::RejectedByEnvoy(status) = row.expect {
        assert_eq!(response.status, status, "{what}: {}", response.body);
        return;
    }
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", response.body));
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    match &row.expect {
        Expect::Error(status, code) => {
            assert_eq!(response.status, *status, "{what}: {body}");
            assert_eq!(body["error"]["code"], *code, "{what}: {body}");
            assert_eq!(
                body["error"]["type"], "invalid_request_error",
                "{what}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}: {body}"
            );
        }
        Expect::List(ids) => {
            assert_eq!(response.status, 200, "{what}: {body}");
            assert_eq!(body["object"], "list", "{what}: {body}");
            let listed: Vec<&str> = body["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: {body}"))
                .iter()
                .map(|m| m["id"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(listed, *ids, "{what}");
            assert!(body["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["object"] == "model"));
        }
        Expect::RejectedByEnvoy(_) => {}
    }
}

#[test]
fn no_abuse_of_issue_8_reaches_a_provider() {
    let providers = Providers::start();
    let gateway = providers.gateway();
    for row in ABUSES {
        let response =
            raw_request(gateway.port, row.method, row.path, row.headers, row.body).unwrap();
        check(row, &response);
        let reached: Vec<_> = providers
            .counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert!(
            reached.is_empty(),
            "{} {} reached {reached:?}",
            row.method,
            row.path
        );
    }
}

#[test]
fn what_the_gateway_serves_still_reaches_the_providers() {
    let providers = Providers::start();
    let gateway = providers.gateway();
    let port = gateway.port;

    let chat = raw_request(port, "POST", "/openai/v1/chat/completions", SDK, CHAT).unwrap();
    assert_eq!(chat.status, 200, "{}", chat.body);
    assert_eq!(providers.gpt.request_count(), 1);

    // /embed's Backend allows /embeddings: forwarded untranslated with the operator's key.
    let embeddings = r#"{"model":"text-embedding-3-small","input":"hi"}"#;
    raw_request(port, "POST", "/embed/v1/embeddings", SDK, embeddings).unwrap();
    let received = providers.embedder.received();
    assert_eq!(
        received.len(),
        1,
        "the opted-in operation reached its provider"
    );
    assert_eq!(received[0].method, "POST");
    assert!(
        received[0].path.ends_with("/v1/embeddings"),
        "{}",
        received[0].path
    );
    assert_eq!(received[0].body, embeddings.as_bytes(), "untranslated");
    assert_eq!(
        received[0].header("authorization"),
        Some(&format!("Bearer {OPENAI_KEY}")[..])
    );

    // The MCP route passes JSON-RPC through byte for byte (it takes client keys here).
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let team_a = format!("Bearer {TEAM_A_KEY}");
    let headers = [
        ("authorization", team_a.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let mcp = raw_request(port, "POST", "/mcp", &headers, initialize).unwrap();
    assert_ne!(mcp.status, 400, "not validated as chat: {}", mcp.body);
    let arrived = providers.tools.received();
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0].path, "/mcp");
    assert_eq!(arrived[0].body, initialize.as_bytes());
    assert_eq!(arrived[0].header("authorization"), None, "no key injected");
    assert_eq!(
        (
            providers.gpt.request_count(),
            providers.claude.request_count(),
            providers.gemini.request_count()
        ),
        (1, 0, 0)
    );
}

#[test]
fn the_guide_and_companion_gateway_refuses_the_abuses_and_lists_its_models() {
    let openai = mock(Kind::Openai, Some(OPENAI_KEY));
    let others = mock(Kind::Openai, None);
    let mcp = mock(Kind::Openai, None);
    let mut spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", openai.base_url())
        .endpoint("mcp-tools", mcp.base_url())
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", ANTHROPIC_KEY)
        .secret("google-ai-secret", GOOGLE_KEY);
    for name in ["gpt-4o-mini", "claude-haiku", "gemini-flash", "local-llama"] {
        spec = spec.endpoint(name, others.base_url());
    }
    let gateway = Gateway::start(&spec).unwrap();
    let port = gateway.port;
    let reached = || openai.request_count() + others.request_count();
    for (method, path) in [
        ("GET", "/openai/v1/files"),
        ("DELETE", "/openai/v1/files/abc"),
        ("GET", "/v1/batches"),
        ("POST", "/batch/v1/embeddings"),
        ("GET", "/stream/v1/chat/completions"),
    ] {
        let response = raw_request(port, method, path, SDK, "").unwrap();
        assert!(
            matches!(response.status, 404 | 405),
            "{method} {path}: {} {}",
            response.status,
            response.body
        );
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            body["error"]["type"], "invalid_request_error",
            "{method} {path}"
        );
        assert_eq!(reached(), 0, "{method} {path} reached a provider");
    }
    let models = raw_request(port, "GET", "/v1/models", SDK, "").unwrap();
    assert_eq!(models.status, 200, "{}", models.body);
    let body: serde_json::Value = serde_json::from_str(&models.body).unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in [
        "gpt-4o-mini",
        "claude-3-5-haiku-20241022",
        "gemini-1.5-flash",
    ] {
        assert!(ids.contains(&id), "llm-routes lists {id}: {ids:?}");
    }
    assert_eq!(reached(), 0, "the model list is the gateway's");

    // llm-routes has the companion's optional JWT: an SDK's own key is served, as anonymous.
    let chat = raw_request(port, "POST", "/openai/v1/chat/completions", SDK, CHAT).unwrap();
    assert_eq!(chat.status, 200, "{}", chat.body);
    assert_eq!(openai.request_count(), 1);

    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let headers = [("content-type", "application/json")];
    let answer = raw_request(port, "POST", "/mcp", &headers, initialize).unwrap();
    assert_ne!(
        answer.status, 400,
        "mcp-routes is not validated as chat: {}",
        answer.body
    );
    assert_eq!(
        mcp.received().last().map(|r| r.body.clone()),
        Some(initialize.as_bytes().to_vec())
    );
}
