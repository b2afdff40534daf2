//! The metrics stage in the built `tollgate.wasm`, in the wasmtime host: a scripted set of
//! requests (JSON and streamed answers, a failover, a refused request) gives exactly these
//! Prometheus lines through the stats_tags the generator writes, in both namings.
//!
//! Needs `scripts/build-wasm` first (it writes `build/wasm/tollgate.wasm`).

use std::time::Duration;
use tollgate_core::names::metric::{self, Naming, AGENTGATEWAY, GENAI};
use tollgate_host::{Host, Outcome, Value};

#[path = "support/mod.rs"]
mod support;

fn host(naming: &Naming, max_models: usize) -> Host {
    let configuration = format!(
        r#"{{"route":{{"models":{{"gpt-4o-mini":"fast","claude-3-5-haiku-20241022":"fast"}}}},
            "metrics":{{"naming":"{}","max_models":{max_models},
              "providers":{{"cheap-cloud":"openai","claude":"anthropic"}}}}}}"#,
        naming.id
    );
    let mut builder = support::pipeline(&configuration);
    // The generator's stats_tags: one Istio-style regex per label, in label order.
    for tag in metric::TAGS {
        let label = naming.tag_name(tag);
        builder = builder.stats_tag(label, &metric::tag_regex(label));
    }
    builder.build().unwrap()
}

/// One chat request answered by `provider` (the adapter's response headers) with `body`.
fn request(
    host: &Host,
    model: &str,
    provider: &str,
    served: &str,
    content_type: &str,
    body: &str,
) -> tollgate_host::Stream {
    let mut s = host.stream();
    send(host, &mut s, model, provider, served, content_type, body);
    s
}

/// [`request`] on a stream the caller prepared (properties set before the headers).
fn send(
    host: &Host,
    s: &mut tollgate_host::Stream,
    model: &str,
    provider: &str,
    served: &str,
    content_type: &str,
    body: &str,
) {
    let request = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let length = request.len().to_string();
    s.send_request_headers(&support::chat_request_headers(&length), false);
    assert_eq!(
        s.send_request_body(request.as_bytes(), true),
        Outcome::Continue
    );
    host.advance_time(Duration::from_millis(300));
    s.send_response_headers(
        &[
            (":status", "200"),
            ("content-type", content_type),
            ("x-tollgate-provider", provider),
            ("x-tollgate-model", served),
        ],
        false,
    );
    host.advance_time(Duration::from_millis(700));
    s.send_response_body(body.as_bytes(), true);
}

/// The access-log line the generator's format makes of the stage's published tail:
/// `{` + Envoy's fields + tail + `}` (one Envoy field stands in here).
fn log_line(s: &tollgate_host::Stream) -> serde_json::Value {
    let tail = s
        .filter_state(&format!("wasm.{}", metric::LOG_PROPERTY))
        .expect("the log record is published");
    let mut line = br#"{"status":200"#.to_vec();
    line.extend_from_slice(&tail);
    line.push(b'}');
    serde_json::from_slice(&line).unwrap()
}

fn json_answer(model: &str, usage: &str) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion","model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{usage}}}"#
    )
}

fn scripted_requests(host: &Host) {
    // 1. gpt-4o-mini on the cheap cloud, 1000 prompt tokens of which 400 cached, 100 out.
    let usage = r#"{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100,"prompt_tokens_details":{"cached_tokens":400}}"#;
    let mut s = request(
        host,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "application/json",
        &json_answer("gpt-4o-mini", usage),
    );
    s.finish();
    // 2. the same model failed over to Claude (the adapter of the attempt that answered names it).
    let usage = r#"{"prompt_tokens":2000,"completion_tokens":400,"total_tokens":2400}"#;
    let mut s = request(
        host,
        "gpt-4o-mini",
        "claude",
        "claude-3-5-haiku-20241022",
        "application/json",
        &json_answer("claude-3-5-haiku-20241022", usage),
    );
    s.finish();
    // 3. a stream on the cheap cloud, usage in the last chunk.
    let stream = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}\n\n",
        "data: [DONE]\n\n"
    );
    let mut s = request(
        host,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "text/event-stream",
        stream,
    );
    s.finish();
    // 4. a request the router refuses (no model): the gateway answered, nothing is counted.
    let mut s = host.stream();
    let body = br#"{"messages":[]}"#;
    s.send_request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gateway"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
        ],
        false,
    );
    s.send_request_body(body, true);
    assert!(s.local_reply().is_some());
    s.finish();
}

/// The host's Prometheus lines are exactly `want` (in any order).
fn assert_lines(host: &Host, want: &[&str]) {
    let mut got = host.prometheus_lines();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn scripted_requests_give_exactly_these_agentgateway_series() {
    let host = host(&AGENTGATEWAY, 10);
    scripted_requests(&host);
    assert_lines(
        &host,
        &[
            "agentgateway_active_connections 0",
            // claude-3-5-haiku: 2000 × $0.25 + 400 × $1.25 per 1M = 500 + 500 µUSD
            r#"agentgateway_llm_cost_micro_usd_total{provider="anthropic",model="claude-3-5-haiku-20241022"} 1000"#,
            // gpt-4o-mini: 600 × 0.15 + 400 × 0.075 + 100 × 0.60 = 180; then 10 × 0.15 + 5 × 0.60 = 4.5 → 184 (carry 0.5)
            r#"agentgateway_llm_cost_micro_usd_total{provider="openai",model="gpt-4o-mini"} 184"#,
            r#"agentgateway_llm_requests_total{provider="anthropic",model="claude-3-5-haiku-20241022",status="200"} 1"#,
            r#"agentgateway_llm_requests_total{provider="openai",model="gpt-4o-mini",status="200"} 2"#,
            r#"agentgateway_llm_tokens_total{direction="input",provider="anthropic",model="claude-3-5-haiku-20241022"} 2000"#,
            r#"agentgateway_llm_tokens_total{direction="output",provider="anthropic",model="claude-3-5-haiku-20241022"} 400"#,
            r#"agentgateway_llm_tokens_total{direction="cached_input",provider="openai",model="gpt-4o-mini"} 400"#,
            r#"agentgateway_llm_tokens_total{direction="input",provider="openai",model="gpt-4o-mini"} 610"#,
            r#"agentgateway_llm_tokens_total{direction="output",provider="openai",model="gpt-4o-mini"} 105"#,
        ],
    );
    let ttfb = host.histogram(
        "wasmcustom.provider=.=openai;.;model=.=gpt-4o-mini;.;agentgateway_llm_time_to_first_token_ms",
    );
    assert_eq!(ttfb, Some(vec![300, 300]));
    let duration = host.histogram(
        "wasmcustom.provider=.=openai;.;model=.=gpt-4o-mini;.;agentgateway_llm_request_duration_ms",
    );
    assert_eq!(duration, Some(vec![1000, 1000]));
    assert!(host.traps().is_empty(), "{:?}", host.traps());
}

#[test]
fn the_genai_naming_gives_the_opentelemetry_names_from_the_same_requests() {
    let host = host(&GENAI, 10);
    scripted_requests(&host);
    assert_lines(
        &host,
        &[
            "agentgateway_active_connections 0",
            r#"gen_ai_client_cost_micro_usd_total{gen_ai_provider_name="anthropic",gen_ai_response_model="claude-3-5-haiku-20241022",gen_ai_request_model="gpt-4o-mini",gen_ai_operation_name="chat"} 1000"#,
            r#"gen_ai_client_cost_micro_usd_total{gen_ai_provider_name="openai",gen_ai_response_model="gpt-4o-mini",gen_ai_request_model="gpt-4o-mini",gen_ai_operation_name="chat"} 184"#,
            r#"gen_ai_client_operation_total{gen_ai_provider_name="anthropic",gen_ai_response_model="claude-3-5-haiku-20241022",gen_ai_request_model="gpt-4o-mini",http_response_status_code="200",gen_ai_operation_name="chat"} 1"#,
            r#"gen_ai_client_operation_total{gen_ai_provider_name="openai",gen_ai_response_model="gpt-4o-mini",gen_ai_request_model="gpt-4o-mini",http_response_status_code="200",gen_ai_operation_name="chat"} 2"#,
        ],
    );
    let tokens = host.histogram("wasmcustom.gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o-mini;.;gen_ai_response_model=.=gpt-4o-mini;.;gen_ai_token_type=.=input;.;gen_ai_client_token_usage");
    assert_eq!(tokens, Some(vec![600, 10]));
}

#[test]
fn models_past_the_cap_are_counted_as_other() {
    let host = host(&AGENTGATEWAY, 1);
    scripted_requests(&host);
    let lines = host.prometheus_lines();
    assert!(
        lines.contains(&r#"agentgateway_llm_requests_total{provider="anthropic",model="other",status="200"} 1"#.to_string()),
        "{lines:#?}"
    );
}

#[test]
fn the_access_log_fields_are_published_as_one_filter_state_value_when_the_request_is_done() {
    let host = host(&AGENTGATEWAY, 10);
    let usage = r#"{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100,"prompt_tokens_details":{"cached_tokens":400}}"#;
    let mut s = request(
        &host,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "application/json",
        &json_answer("gpt-4o-mini", usage),
    );
    // on_log: Envoy runs the filters' on_log before the HCM's access log
    s.finish();
    let line = log_line(&s);
    assert_eq!(line["provider"], "openai", "{line}");
    assert_eq!(line["model"], "gpt-4o-mini", "{line}");
    assert_eq!(line["input_tokens"], 600, "{line}");
    assert_eq!(line["cached_input_tokens"], 400, "{line}");
    assert_eq!(line["output_tokens"], 100, "{line}");
    assert_eq!(line["cost_micro_usd"], 180, "{line}");
    assert_eq!(line["ttfb_ms"], 300, "{line}");
    assert_eq!(line["cache"], "-", "{line}");
    assert_eq!(line["user"], "", "{line}");
}

/// The log's `user` is the verified caller even when metrics is the only stage.
#[test]
fn the_access_log_names_the_verified_caller_with_metrics_alone() {
    let host = host(&AGENTGATEWAY, 10);
    let usage = r#"{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}"#;
    let mut s = host.stream();
    s.set_property(&support::jwt_claim("sub"), Value::String("alice".into()));
    send(
        &host,
        &mut s,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "application/json",
        &json_answer("gpt-4o-mini", usage),
    );
    s.finish();
    let line = log_line(&s);
    assert_eq!(line["user"], "alice", "{line}");
}

#[test]
fn a_json_answer_that_ends_in_trailers_is_counted_with_its_tokens() {
    let host = host(&AGENTGATEWAY, 10);
    let usage = r#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}"#;
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = host.stream();
    s.send_request_headers(
        &support::chat_request_headers(&body.len().to_string()),
        false,
    );
    assert_eq!(
        s.send_request_body(body.as_bytes(), true),
        Outcome::Continue
    );
    s.send_response_headers(
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("x-tollgate-provider", "cheap-cloud"),
        ],
        false,
    );
    // The last chunk does not end the stream: trailers do (an HTTP/2 upstream may).
    s.send_response_body(json_answer("gpt-4o-mini", usage).as_bytes(), false);
    s.send_response_trailers(&[("x-upstream-done", "1")]);
    assert_eq!(
        s.downstream().body,
        json_answer("gpt-4o-mini", usage).as_bytes()
    );
    s.finish();
    let lines = host.prometheus_lines();
    for want in [
        r#"agentgateway_llm_tokens_total{direction="input",provider="openai",model="gpt-4o-mini"} 12"#,
        r#"agentgateway_llm_tokens_total{direction="output",provider="openai",model="gpt-4o-mini"} 5"#,
    ] {
        assert!(lines.contains(&want.to_string()), "{want}\n{lines:#?}");
    }
}

#[test]
fn requests_in_flight_are_a_gauge() {
    let host = host(&AGENTGATEWAY, 10);
    let usage = r#"{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}"#;
    let mut a = request(
        &host,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "application/json",
        &json_answer("gpt-4o-mini", usage),
    );
    let mut b = request(
        &host,
        "gpt-4o-mini",
        "cheap-cloud",
        "gpt-4o-mini",
        "application/json",
        &json_answer("gpt-4o-mini", usage),
    );
    assert_eq!(
        host.metric("wasmcustom.agentgateway_active_connections"),
        Some(2)
    );
    a.finish();
    assert_eq!(
        host.metric("wasmcustom.agentgateway_active_connections"),
        Some(1)
    );
    b.finish();
    assert_eq!(
        host.metric("wasmcustom.agentgateway_active_connections"),
        Some(0)
    );
}

#[test]
fn a_cache_hit_counts_as_a_hit_with_what_it_saved_and_no_provider_tokens() {
    let configuration = r#"{"route":{"routes":{"llm-routes":{"kind":"llm"}}},
      "cache":{"routes":{"llm-routes":{"response":{"mode":"aggressive","ttl_ms":60000,
        "key":{"json_paths":["$.model","$.messages"]},
        "store":{"max_size_bytes":1048576,"max_entry_bytes":1048576,"slots":64}}}}},
      "metrics":{"providers":{"cheap-cloud":"openai"}}}"#;
    let mut builder = Host::builder()
        .module(tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}")))
        .vm_id("tollgate")
        .root_id("tollgate")
        .configuration(configuration.as_bytes())
        .allow_on_headers_stop_iteration(true);
    for tag in metric::TAGS {
        let label = AGENTGATEWAY.tag_name(tag);
        builder = builder.stats_tag(label, &metric::tag_regex(label));
    }
    let host = builder.build().unwrap();
    let usage = r#"{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}"#;
    let body = json_answer("gpt-4o-mini", usage);
    for _ in 0..3 {
        let request = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
        let mut s = host.stream();
        s.set_property(
            &["xds", "route_name"],
            tollgate_host::Value::String("llm-routes/0/0".into()),
        );
        s.send_request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "gateway"),
                (":scheme", "http"),
                ("content-type", "application/json"),
                ("content-length", &request.len().to_string()),
            ],
            false,
        );
        if s.send_request_body(request.as_bytes(), true) == Outcome::Continue {
            s.send_response_headers(
                &[
                    (":status", "200"),
                    ("content-type", "application/json"),
                    ("x-tollgate-provider", "cheap-cloud"),
                    ("x-tollgate-model", "gpt-4o-mini"),
                ],
                false,
            );
            s.send_response_body(body.as_bytes(), true);
        }
        s.finish();
    }
    // One miss answered by the provider, two hits: counted as hits with the tokens and the
    // cost (gpt-4o-mini: 1000 × 0.15 + 100 × 0.60 = 210 µUSD each) they saved.
    let ours: Vec<String> = host
        .prometheus_lines()
        .into_iter()
        .filter(|l| l.starts_with("agentgateway_"))
        .collect();
    let mut want = vec![
        "agentgateway_active_connections 0",
        r#"agentgateway_llm_requests_total{provider="openai",model="gpt-4o-mini",status="200"} 1"#,
        r#"agentgateway_llm_tokens_total{direction="input",provider="openai",model="gpt-4o-mini"} 1000"#,
        r#"agentgateway_llm_tokens_total{direction="output",provider="openai",model="gpt-4o-mini"} 100"#,
        r#"agentgateway_llm_cost_micro_usd_total{provider="openai",model="gpt-4o-mini"} 210"#,
        r#"agentgateway_llm_cache_hits_total{request_model="gpt-4o-mini"} 2"#,
        r#"agentgateway_llm_cache_saved_tokens_total{direction="input",request_model="gpt-4o-mini"} 2000"#,
        r#"agentgateway_llm_cache_saved_tokens_total{direction="output",request_model="gpt-4o-mini"} 200"#,
        r#"agentgateway_llm_cache_saved_cost_micro_usd_total{request_model="gpt-4o-mini"} 420"#,
    ];
    want.sort();
    let mut got = ours;
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn anthropic_cache_writes_in_the_translated_usage_cost_the_write_price() {
    let host = host(&AGENTGATEWAY, 10);
    // The adapter's rendering of Anthropic's input 1000, cache_read 2000, cache_creation 500.
    let usage = r#"{"prompt_tokens":3500,"completion_tokens":200,"total_tokens":3700,"prompt_tokens_details":{"cached_tokens":2000,"cache_creation_tokens":500}}"#;
    let mut s = request(
        &host,
        "claude-3-5-haiku-20241022",
        "claude",
        "claude-3-5-haiku-20241022",
        "application/json",
        &json_answer("claude-3-5-haiku-20241022", usage),
    );
    s.finish();
    let lines = host.prometheus_lines();
    // 1000 × 0.25 + 2000 × 0.03 + 500 × 0.30 + 200 × 1.25 = 250 + 60 + 150 + 250 µUSD
    // (685 if the writes were priced as input).
    for line in [
        r#"agentgateway_llm_cost_micro_usd_total{provider="anthropic",model="claude-3-5-haiku-20241022"} 710"#,
        r#"agentgateway_llm_tokens_total{direction="input",provider="anthropic",model="claude-3-5-haiku-20241022"} 1500"#,
        r#"agentgateway_llm_tokens_total{direction="cached_input",provider="anthropic",model="claude-3-5-haiku-20241022"} 2000"#,
    ] {
        assert!(
            lines.contains(&line.to_string()),
            "{line} not in {lines:#?}"
        );
    }
}
