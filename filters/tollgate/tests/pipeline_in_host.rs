//! The downstream pipeline (`root_id: tollgate`) of the built `tollgate.wasm` in the wasmtime
//! host: which operations leave the gateway, what the gateway answers itself, what passes
//! untouched, and the facts it hands the upstream adapter.

use serde_json::Value as Json;
use tollgate_host::{Host, Outcome, Value};

mod support;

/// A pipeline with an LLM route (two models), an MCP route and a plain proxy route.
const CONFIG: &str = r#"{"route":{
  "models":{"gpt-4o-mini":"fast-llm","cheap":"fast-llm"},
  "routes":{
    "llm-routes":{"kind":"llm","models":["cheap","gpt-4o-mini"]},
    "embeddings":{"kind":"llm","models":["text-embedding-3-small"],"operations":["/embeddings"]},
    "mcp-routes":{"kind":"mcp"},
    "static-site":{"kind":"proxy"}
  }}}"#;

fn host() -> Host {
    host_with(CONFIG)
}

fn host_with(config: &str) -> Host {
    support::pipeline(config).build().unwrap()
}

/// What the client got, and whether anything reached the upstream.
struct Seen {
    status: Option<u16>,
    body: Vec<u8>,
    upstream_reached: bool,
    upstream_body: Vec<u8>,
}

fn send(host: &Host, route: &str, method: &str, path: &str, body: Option<&str>) -> Seen {
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String(format!("{route}/0/0")),
    );
    let length = body.map_or(0, str::len).to_string();
    let mut headers = vec![
        (":method", method),
        (":path", path),
        (":authority", "gateway"),
        (":scheme", "http"),
        ("authorization", "Bearer sk-client-own-key"),
    ];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
        headers.push(("content-length", &length));
    }
    let mut outcome = stream.send_request_headers(&headers, body.is_none());
    if let (Outcome::Pause | Outcome::Continue, Some(body)) = (&outcome, body) {
        outcome = stream.send_request_body(body.as_bytes(), true);
    }
    let (status, reply_body) = match &outcome {
        Outcome::LocalReply(reply) => (Some(reply.status), reply.body.clone()),
        _ => (None, Vec::new()),
    };
    let upstream = stream.upstream();
    Seen {
        status,
        body: reply_body,
        upstream_reached: upstream.headers.is_some(),
        upstream_body: upstream.body,
    }
}

/// (route, method, path, body, status the gateway answers; `None`: forwarded).
type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<u16>);

const CHAT: &str = r#"{"model":"cheap","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn only_known_operations_leave_the_gateway_and_refusals_are_openai_errors() {
    let host = host();
    let rows: [Row; 12] = [
        (
            "llm-routes",
            "POST",
            "/v1/chat/completions",
            Some(CHAT),
            None,
        ),
        (
            "llm-routes",
            "POST",
            "/openai/v1/chat/completions?x=1",
            Some(CHAT),
            None,
        ),
        ("llm-routes", "GET", "/openai/v1/files", None, Some(404)),
        (
            "llm-routes",
            "DELETE",
            "/anthropic/v1/files/abc",
            None,
            Some(404),
        ),
        ("llm-routes", "GET", "/v1/chat/completions", None, Some(405)),
        (
            "llm-routes",
            "POST",
            "/v1/embeddings",
            Some(r#"{"input":"x"}"#),
            Some(404),
        ),
        ("llm-routes", "POST", "/v1/batches", Some("{}"), Some(404)),
        (
            "embeddings",
            "POST",
            "/v1/embeddings",
            Some(r#"{"input":"x"}"#),
            None,
        ),
        (
            "mcp-routes",
            "POST",
            "/mcp",
            Some(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#),
            None,
        ),
        ("mcp-routes", "DELETE", "/mcp", None, None),
        ("static-site", "GET", "/index.html", None, None),
        (
            "no-such-route",
            "POST",
            "/v1/chat/completions",
            Some(CHAT),
            Some(404),
        ),
    ];
    for (route, method, path, body, status) in rows {
        let seen = send(&host, route, method, path, body);
        let what = format!("{method} {path} on {route}");
        assert_eq!(seen.status, status, "{what}");
        match status {
            None => assert!(seen.upstream_reached, "{what} should be forwarded"),
            Some(_) => {
                assert!(!seen.upstream_reached, "{what} reached the upstream");
                let error: Json = serde_json::from_slice(&seen.body).unwrap();
                assert!(
                    error["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{what}: {error}"
                );
                assert!(error["error"]["type"].is_string(), "{what}: {error}");
            }
        }
    }
}

#[test]
fn the_gateway_lists_the_route_models_itself() {
    let host = host();
    let seen = send(&host, "llm-routes", "GET", "/v1/models", None);
    assert_eq!(seen.status, Some(200));
    assert!(!seen.upstream_reached);
    let list: Json = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cheap", "gpt-4o-mini"]);
    let one = send(&host, "llm-routes", "GET", "/v1/models/cheap", None);
    assert_eq!(one.status, Some(200));
    let model: Json = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(model["id"], "cheap");
    assert_eq!(
        send(&host, "llm-routes", "GET", "/v1/models/gpt-9", None).status,
        Some(404)
    );
}

#[test]
fn mcp_bodies_pass_byte_for_byte_without_chat_validation() {
    let host = host();
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list-pods"}}"#;
    let seen = send(&host, "mcp-routes", "POST", "/mcp", Some(body));
    assert_eq!(seen.status, None, "{}", String::from_utf8_lossy(&seen.body));
    assert_eq!(seen.upstream_body, body.as_bytes());
}

#[test]
fn a_routed_chat_request_tells_the_adapter_its_facts() {
    let host = host();
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    let body = r#"{"model":"cheap","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let length = body.len().to_string();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        (":scheme", "http"),
        ("content-length", length.as_str()),
        ("x-tollgate-backend", "spoofed"),
    ];
    assert_eq!(stream.send_request_headers(&headers, false), Outcome::Pause);
    assert_eq!(
        stream.send_request_body(body.as_bytes(), true),
        Outcome::Continue
    );
    let upstream = stream.upstream();
    let sent = upstream.headers.unwrap();
    assert_eq!(sent.get("x-tollgate-backend").as_deref(), Some("fast-llm"));
    let forwarded: Json = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], true);
    assert_eq!(
        sent.get("content-length").as_deref(),
        Some(upstream.body.len().to_string().as_str())
    );
    let facts: Json =
        serde_json::from_slice(&stream.filter_state("wasm.tollgate_request").unwrap()).unwrap();
    assert_eq!(facts["model"], "cheap");
    assert_eq!(facts["stream"], true);
    assert_eq!(facts["backend"], "fast-llm");
}

/// A route whose one Backend Envoy serves without an adapter (OpenAI format, one key), as the
/// generator writes it for the companion's `openai` Backend.
const NATIVE: &str = r#"{"route":{
  "routes":{"llm-routes":{"kind":"llm","models":["gpt-4o-mini"]}},
  "native_backends":{"openai":"gpt-4o-mini"},
  "route_backends":{"llm-routes/0/0":"openai"}}}"#;

/// Any change to request headers makes Envoy clear its route cache and route the request
/// again, and the first filter-state write allocates Envoy's state object: both cost more than
/// the rest of routing (docs/benchmarks.md, "What one host call costs"). A request Envoy can
/// serve natively needs neither, and each header map is read in one call.
#[test]
fn a_request_for_a_native_backend_is_routed_without_touching_request_headers_or_filter_state() {
    let host = host_with(NATIVE);
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let length = body.len().to_string();
    let headers = support::chat_request_headers(&length);
    let answer = br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    host.reset_hostcalls();
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    assert_eq!(stream.send_request_headers(&headers, false), Outcome::Pause);
    assert_eq!(
        stream.send_request_body(body.as_bytes(), true),
        Outcome::Continue
    );
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    );
    stream.send_response_body(answer, true);
    stream.finish();
    let upstream = stream.upstream();
    assert_eq!(
        upstream.body,
        body.as_bytes(),
        "the body goes as the client sent it"
    );
    let calls = host.hostcalls();
    let count = |name: &str| calls.get(name).copied().unwrap_or(0);
    for mutation in [
        "proxy_add_header_map_value",
        "proxy_replace_header_map_value",
        "proxy_remove_header_map_value",
        "proxy_set_header_map_pairs",
        "proxy_set_property",
    ] {
        assert_eq!(count(mutation), 0, "{mutation}: {calls:?}");
    }
    assert_eq!(
        count("proxy_get_header_map_pairs"),
        2,
        "one read per header map: {calls:?}"
    );
    assert_eq!(count("proxy_get_header_map_value"), 0, "{calls:?}");
    assert_eq!(
        count("proxy_get_buffer_bytes"),
        1,
        "the body read once: {calls:?}"
    );
}

/// Sends a chat request from a caller with every identity (client key, JWT `sub` and `tenant`,
/// source address) through a pipeline of these stages; returns how many properties the module
/// read while the request headers were processed, and the outcome of the body.
fn property_reads_for_a_caller_with_every_identity(stages: &str) -> (u64, Outcome) {
    let host = host_with(&format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}}{stages}}}"#
    ));
    let body = CHAT;
    let length = body.len().to_string();
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    stream.set_property(
        &["source", "address"],
        Value::String("10.0.0.7:41000".into()),
    );
    for (claim, value) in [("sub", "alice"), ("tenant", "acme")] {
        stream.set_property(&support::jwt_claim(claim), Value::String(value.into()));
    }
    host.reset_hostcalls();
    let mut headers = support::chat_request_headers(&length).to_vec();
    headers.extend([("x-tollgate-client", "team-a"), ("x-team", "blue")]);
    stream.send_request_headers(&headers, false);
    let reads = host
        .hostcalls()
        .get("proxy_get_property")
        .copied()
        .unwrap_or(0);
    (reads, stream.send_request_body(body.as_bytes(), true))
}

/// A budget policy keyed on these parts (JSON array), a bucket no request here exhausts.
fn budget_keyed_on(key: &str) -> String {
    format!(
        r#","budget":{{"slots":8,"policies":[{{"name":"p","key":{key},
    "buckets":[{{"max_tokens":100000,"tokens_per_fill":100000,"fill_interval_ms":60000}}]}}]}}"#
    )
}

/// Each caller property read costs Envoy a VM re-entry (~1 µs): the pipeline reads the JWT
/// `sub` and the source address only for a configured stage that uses them (the cache keys on
/// the subject, a budget key may name either, the access log shows the subject), and every
/// budget is still admitted on the identity it names.
#[test]
fn the_caller_properties_are_read_only_for_the_stages_that_use_them() {
    let cache = r#","cache":{"routes":{"llm-routes":{"response":{"mode":"safe","ttl_ms":3600000,
        "key":{"json_paths":["$.messages"]},"store":{"max_size_bytes":1048576}}}}}"#;
    let client = budget_keyed_on(r#"["client"]"#);
    // (stages, properties read beyond the route name)
    let rows: [(String, u64); 12] = [
        (String::new(), 0),
        // The access log (on by default) names the verified caller.
        (r#","metrics":{}"#.into(), 1),
        (r#","metrics":{"access_log":false}"#.into(), 0),
        (client.clone(), 0),
        (budget_keyed_on(r#"["header.x-team","model"]"#), 0),
        (format!(r#"{client},"metrics":{{"access_log":false}}"#), 0),
        (budget_keyed_on(r#"["jwt.sub"]"#), 1),
        (budget_keyed_on(r#"["source.address"]"#), 1),
        // Another claim is the budget's own read; the subject is not read for it.
        (budget_keyed_on(r#"["jwt.tenant"]"#), 1),
        (budget_keyed_on(r#"["jwt.sub","source.address"]"#), 2),
        (format!(r#"{client},"metrics":{{}}"#), 1),
        (cache.into(), 1),
    ];
    for (stages, extra) in rows {
        let (reads, outcome) = property_reads_for_a_caller_with_every_identity(&stages);
        assert_eq!(reads, 1 + extra, "{stages}");
        assert_eq!(outcome, Outcome::Continue, "{stages}");
    }
}

/// A budget keyed on the source address counts per IP: the port is not part of it.
#[test]
fn a_budget_keyed_on_the_source_address_counts_per_ip_whatever_the_port() {
    let host = host_with(&format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}}{}}}"#,
        r#","budget":{"slots":8,"policies":[{"name":"per-ip","key":["source.address"],
    "buckets":[{"max_tokens":1000,"tokens_per_fill":1000,"fill_interval_ms":60000}]}]}"#
    ));
    let body =
        r#"{"model":"gpt-4o-mini","max_tokens":800,"messages":[{"role":"user","content":"hi"}]}"#;
    let length = body.len().to_string();
    let send = |address: &str| {
        let mut stream = host.stream();
        stream.set_property(
            &["xds", "route_name"],
            Value::String("llm-routes/0/0".into()),
        );
        stream.set_property(&["source", "address"], Value::String(address.into()));
        stream.send_request_headers(&support::chat_request_headers(&length), false);
        let outcome = stream.send_request_body(body.as_bytes(), true);
        (stream, outcome)
    };
    // The first request spends the whole bucket.
    let (mut first, outcome) = send("10.0.0.7:41000");
    assert_eq!(outcome, Outcome::Continue);
    first.send_response_headers(
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    );
    let answer = r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":900,"total_tokens":1000}}"#;
    first.send_response_body(answer.as_bytes(), true);
    first.finish();
    let status = |outcome: &Outcome| match outcome {
        Outcome::LocalReply(reply) => Some(reply.status),
        _ => None,
    };
    let (_, same_ip) = send("10.0.0.7:52000");
    assert_eq!(status(&same_ip), Some(429), "{same_ip:?}");
    let (_, other_ip) = send("[2001:db8::1]:41000");
    assert_eq!(other_ip, Outcome::Continue);
    let (_, same_v6) = send("[2001:db8::1]:41001");
    assert_eq!(
        same_v6,
        Outcome::Continue,
        "the other IP has not spent its budget"
    );
}

/// The host calls one request of the side-by-side benchmark's chain makes (its generated
/// configuration: route, a cache miss that stores, the budget, metrics and the access log),
/// as docs/benchmarks.md tabulates them: calls that return data cost Envoy a VM re-entry each,
/// and each new filter-state object ~1 µs, so a new one here is a cost every request pays.
#[test]
fn a_request_of_the_benchmark_chain_makes_the_documented_host_calls() {
    let config = tollgate_e2e::bench_config::pipeline_configuration().unwrap();
    let host = support::pipeline(&config).build().unwrap();
    let answer = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks measure what they measure."},"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":9,"total_tokens":249}}"#;
    let answer_length = answer.len().to_string();
    let send = |n: u32| {
        let body = format!(
            r#"{{"model":"gpt-4o-mini","temperature":0,"max_tokens":64,"stream":false,"messages":[{{"role":"system","content":"You are terse. {n}"}},{{"role":"user","content":"Summarize the following paragraph in one sentence please."}}]}}"#
        );
        let length = body.len().to_string();
        let mut s = host.stream();
        s.set_property(
            &["xds", "route_name"],
            Value::String(tollgate_e2e::bench_config::ROUTE_NAME.into()),
        );
        s.send_request_headers(&support::chat_request_headers(&length), false);
        assert_eq!(
            s.send_request_body(body.as_bytes(), true),
            Outcome::Continue
        );
        s.send_response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", answer_length.as_str()),
            ],
            false,
        );
        s.send_response_body(answer.as_bytes(), true);
        s.finish();
    };
    send(0); // the first request also defines the metric series
    host.reset_hostcalls();
    send(1);
    let calls = host.hostcalls();
    let count = |name: &str| calls.get(name).copied().unwrap_or(0);
    for (name, expected) in tollgate_e2e::bench_config::CHAIN_HOST_CALLS {
        assert_eq!(count(name), expected, "{name}: {calls:?}");
    }
    assert_eq!(calls.values().sum::<u64>(), 43, "{calls:?}");
}
