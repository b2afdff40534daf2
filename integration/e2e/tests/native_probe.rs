//! The native probe (an Envoy dynamic module, integration/native-probe) in a real Envoy 1.40:
//! the benchmark's `native buffer` and `native replay` setups must pass a chat completion
//! through, or their numbers measure a broken filter; `replay` must really make its calls.

use tollgate_e2e::bootstrap::{Bootstrap, Cluster, Listener, Route};
use tollgate_e2e::{free_port, http, native, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

#[test]
fn a_chat_completion_passes_the_buffering_native_filter_with_its_body_intact() {
    let modules =
        std::env::temp_dir().join(format!("tollgate-native-probe-{}", std::process::id()));
    let search_path = native::module_dir(&modules).unwrap();
    let mock = spawn(MockConfig::new(
        Kind::Openai,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let port = free_port();
    let config = Bootstrap::new()
        .listener(
            Listener::new("llm", port)
                .route(Route::to_cluster("openai", "10s"))
                .filter(native::filter("buffer")),
        )
        .cluster(Cluster::new("openai").endpoint(mock.addr().port()))
        .render();
    let env = [(
        native::SEARCH_PATH_VAR.to_string(),
        search_path.display().to_string(),
    )];
    let envoy = Envoy::start_with_env(&config, &[], &env).unwrap();

    // Large enough to arrive in more than one body callback (Envoy reads 16 KB at a time).
    let content = "Summarize this paragraph in one sentence please. ".repeat(1000);
    let sent = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
    })
    .to_string();
    let response = http::post(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &[("content-type", "application/json")],
        &sent,
    )
    .unwrap();

    assert_eq!(response.status, 200, "{}\n{}", response.body, envoy.logs());
    let answer: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(answer["object"], "chat.completion", "{}", response.body);
    let received = mock.received();
    assert_eq!(received.len(), 1);
    assert_eq!(String::from_utf8_lossy(&received[0].body), sent);
    // Envoy loaded our module as one built for its own ABI (a mismatch is only a warning).
    let logs = envoy.logs();
    assert!(
        logs.contains("Dynamic module ABI version v0.2.0 matched"),
        "{logs}"
    );
    let _ = std::fs::remove_dir_all(&modules);
}

#[test]
fn replay_answers_a_chat_completion_with_the_chains_headers_and_counts_it() {
    let modules = std::env::temp_dir().join(format!(
        "tollgate-native-probe-replay-{}",
        std::process::id()
    ));
    let search_path = native::module_dir(&modules).unwrap();
    let mock = spawn(MockConfig::new(
        Kind::Openai,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let port = free_port();
    let config = Bootstrap::new()
        .listener(
            Listener::new("llm", port)
                .route(Route::to_cluster("openai", "10s").name("bench-route/0/0"))
                .filter(native::filter("replay")),
        )
        .cluster(Cluster::new("openai").endpoint(mock.addr().port()))
        .render();
    let env = [(
        native::SEARCH_PATH_VAR.to_string(),
        search_path.display().to_string(),
    )];
    let envoy = Envoy::start_with_env(&config, &[], &env).unwrap();

    let sent = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi."}],
    })
    .to_string();
    let requests = 3;
    for _ in 0..requests {
        let response = http::post(
            &format!("http://127.0.0.1:{port}/v1/chat/completions"),
            &[("content-type", "application/json")],
            &sent,
        )
        .unwrap();
        assert_eq!(response.status, 200, "{}\n{}", response.body, envoy.logs());
        let answer: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(answer["object"], "chat.completion", "{}", response.body);
        // The four headers the chain sets, set by the probe through the ABI.
        assert_eq!(
            response.header("x-cache-status"),
            Some("MISS"),
            "{:?}",
            response.headers
        );
        assert_eq!(
            response.header("x-ratelimit-limit-tokens"),
            Some("1000000000000")
        );
        assert_eq!(
            response.header("x-ratelimit-remaining-tokens"),
            Some("999999995720")
        );
        assert_eq!(response.header("x-ratelimit-reset-tokens"), Some("1m0s"));
    }
    assert_eq!(mock.received().len(), requests);

    // A counter the probe defined at config creation counts each finished request (incremented
    // in the stream-complete hook, which may run just after the response reached us).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let stats = envoy
            .admin_get(&format!(
                "/stats?filter={}",
                native::REPLAY_REQUESTS_COUNTER
            ))
            .unwrap();
        let counted = stats
            .lines()
            .find(|l| l.contains(native::REPLAY_REQUESTS_COUNTER))
            .and_then(|l| l.rsplit(": ").next())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if counted == Some(requests) || std::time::Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        stats
            .lines()
            .any(|l| l.contains(native::REPLAY_REQUESTS_COUNTER)
                && l.ends_with(&format!(": {requests}"))),
        "{stats}"
    );
    let _ = std::fs::remove_dir_all(&modules);
}
