//! Token budgets on a real Envoy (2 workers) with `jwt_authn` and a local JWKS: the guide's
//! `token-budget` policy (1M a day, 10K a minute per `jwt.sub`) and the fixture's short one
//! (`envoy-config/tests/fixtures/budget.yaml`), served by an OpenAI mock whose usage is
//! deterministic (prompt tokens = words + messages; the answer is cut at `max_tokens`).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tollgate_config::secrets::{parse_env_file, SECRETS_ENV_FILE};
use tollgate_e2e::gateway::{mint_dev_jwt, render_files, GatewaySpec, Ports};
use tollgate_e2e::http::Response;
use tollgate_e2e::{raw_request, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-budget-e2e-operator";

struct Setup {
    mock: MockHandle,
    envoy: Envoy,
    port: u16,
}

fn setup() -> Setup {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some(OPENAI_KEY.to_string());
    let mock = spawn(config).unwrap();
    let spec = GatewaySpec {
        inputs: vec![
            "envoy-config/guide/02-trafficpolicy-token-budget.yaml".into(),
            "envoy-config/tests/fixtures/budget.yaml".into(),
        ],
        ..Default::default()
    }
    .endpoint("gpt", mock.base_url())
    .secret("openai-secret", OPENAI_KEY);
    let ports = Ports::free();
    let files = render_files(&spec, ports).unwrap();
    let env = parse_env_file(&files[SECRETS_ENV_FILE].text);
    let envoy =
        Envoy::start_with_env(&files["envoy.yaml"].text, &["--concurrency", "2"], &env).unwrap();
    Setup {
        mock,
        envoy,
        port: ports.listen,
    }
}

/// An RS256 JWT for `sub`, signed with the development key of the fixture's JWKS.
fn jwt(sub: &str) -> String {
    format!("Bearer {}", mint_dev_jwt(sub, "tollgate", 3600).unwrap())
}

/// A chat of `words` prompt words (the mock counts words + 1 prompt tokens).
fn chat(words: usize, max_tokens: u64, stream: bool) -> String {
    let content = vec!["w"; words].join(" ");
    format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":{max_tokens},"stream":{stream},"messages":[{{"role":"user","content":"{content}"}}]}}"#
    )
}

fn send(port: u16, path: &str, token: &str, body: &str) -> Response {
    raw_request(
        port,
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", token),
        ],
        body,
    )
    .unwrap()
}

/// Total tokens an answer reports (JSON `usage`, or a stream's usage chunk).
fn usage_of(response: &Response) -> u64 {
    let total = |v: &serde_json::Value| {
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0)
            + v["usage"]["completion_tokens"].as_u64().unwrap_or(0)
    };
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&response.body) {
        return total(&json);
    }
    response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v["usage"].is_object())
        .map(|v| total(&v))
        .sum()
}

fn header_number(response: &Response, name: &str) -> u64 {
    response
        .header(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", response.body))
        .parse()
        .unwrap()
}

#[test]
fn a_user_who_spent_the_minute_budget_gets_429_with_the_headers_while_another_is_served() {
    let s = setup();
    let alice = jwt("alice");
    // 2000 words: 2001 prompt tokens + 9 answer words per request, ~4.1 K reserved each.
    let body = chat(2000, 100, false);
    let mut spent = 0;
    let mut refused = None;
    for _ in 0..10 {
        let response = send(s.port, "/v1/chat/completions", &alice, &body);
        match response.status {
            200 => {
                assert_eq!(header_number(&response, "x-ratelimit-limit-tokens"), 10_000);
                let remaining = header_number(&response, "x-ratelimit-remaining-tokens");
                assert!(
                    remaining < 10_000 - spent,
                    "remaining {remaining} after {spent}"
                );
                assert!(response.header("x-ratelimit-reset-tokens").is_some());
                spent += usage_of(&response);
            }
            429 => {
                refused = Some(response);
                break;
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    let refused = refused.expect("alice must run out of her 10K-token minute");
    assert!(spent <= 10_000, "served {spent} tokens of a 10K budget");
    assert_eq!(spent, 3 * 2_010, "three requests fit, the fourth does not");
    let retry_after = header_number(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(header_number(&refused, "x-ratelimit-limit-tokens"), 10_000);
    assert_eq!(
        header_number(&refused, "x-ratelimit-remaining-tokens"),
        10_000 - spent
    );
    let error: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(error["error"]["type"], "tokens");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    let served = s.mock.request_count();
    // Bob's budget is his own.
    let bob = send(s.port, "/v1/chat/completions", &jwt("bob"), &body);
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(
        s.mock.request_count(),
        served + 1,
        "the 429 reached no provider"
    );
    // A request without a token never reaches the budget: jwt_authn answers 401.
    let anonymous = raw_request(
        s.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(anonymous.status, 401);
}

#[test]
fn sixty_four_concurrent_streams_of_one_user_on_two_workers_never_spend_past_the_budget() {
    let s = setup();
    let carol = jwt("carol");
    // 400 words: 401 prompt tokens + up to 9 answer tokens each; 64 of them would be 26 K.
    let body = chat(400, 9, true);
    let barrier = Arc::new(Barrier::new(64));
    let port = s.port;
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (barrier, token, body) = (Arc::clone(&barrier), carol.clone(), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                send(port, "/v1/chat/completions", &token, &body)
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let served: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!(served.len() + refused, 64, "only 200s and 429s");
    let spent: u64 = served.iter().map(|r| usage_of(r)).sum();
    assert!(
        served.iter().all(|r| usage_of(r) > 0),
        "every served stream ends with its usage"
    );
    assert!(spent <= 10_000, "64 streams spent {spent} of a 10K budget");
    assert!(
        refused > 0 && !served.is_empty(),
        "{} served, {refused} refused",
        served.len()
    );
    assert_eq!(
        s.mock.request_count(),
        served.len() as u64,
        "refused streams reached no provider"
    );
    let overshoot = s
        .envoy
        .stat("wasmcustom.tollgate_budget_overshoot_tokens_total.policy.token-budget");
    assert_eq!(overshoot.unwrap_or(0), 0);
}

#[test]
fn a_spent_budget_with_a_short_interval_refills() {
    let s = setup();
    let dave = jwt("dave");
    // 900 words: ~1.9 K reserved of a 2 K bucket that refills every 2 s, 910 spent.
    let body = chat(900, 50, false);
    let first = send(s.port, "/short/v1/chat/completions", &dave, &body);
    assert_eq!(first.status, 200, "{}", first.body);
    let second = send(s.port, "/short/v1/chat/completions", &dave, &body);
    assert_eq!(second.status, 429, "{}", second.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = send(s.port, "/short/v1/chat/completions", &dave, &body);
        if again.status == 200 {
            break;
        }
        assert_eq!(again.status, 429, "{}", again.body);
        assert!(Instant::now() < deadline, "the 2 s bucket never refilled");
        std::thread::sleep(Duration::from_millis(200));
    }
}
