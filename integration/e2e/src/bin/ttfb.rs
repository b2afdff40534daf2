//! Time to first byte of a streamed chat completion: direct to the mock, through plain Envoy,
//! and through Envoy with every tollgate filter (generated config). Sequential requests, one at a
//! time, so the numbers are latency, not throughput.
//!
//!     cargo run --release -p tollgate-e2e --bin ttfb [REQUESTS]

use std::time::Duration;
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::{free_port, http, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

const BODY: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}"#;

fn plain_envoy_yaml(port: u16, upstream: u16) -> String {
    let template = include_str!("../../../../scripts/bench/plain-envoy.yaml");
    template
        .replace("__PORT__", &port.to_string())
        .replace("__ADMIN__", "0")
        .replace("__UPSTREAM__", &upstream.to_string())
}

/// Median and 90th percentile of the TTFB of `n` requests (after 5 warm-up requests).
fn measure(url: &str, n: usize) -> Result<(Duration, Duration), String> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let response = http::post_timed(url, &[("content-type", "application/json")], BODY)
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!(
                "{url}: status {}: {}",
                response.status,
                response.body()
            ));
        }
        if i >= 5 {
            samples.push(response.first_byte().ok_or("empty body")?);
        }
    }
    samples.sort();
    Ok((samples[n / 2], samples[n * 9 / 10]))
}

fn main() -> Result<(), String> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().map_err(|_| "addr")?);
    config.api_key = None;
    let mock = spawn(config).map_err(|e| e.to_string())?;

    let plain_port = free_port();
    let _plain = Envoy::start(&plain_envoy_yaml(plain_port, mock.addr().port()))
        .map_err(|e| e.to_string())?;
    let spec = GatewaySpec {
        inputs: vec!["scripts/bench/gateway.yaml".to_string()],
        ..Default::default()
    }
    .endpoint("bench-openai", mock.base_url())
    .secret("bench-secret", "sk-bench");
    let gateway = Gateway::start(&spec).map_err(|e| e.to_string())?;

    println!("TTFB of a streamed chat completion, {n} sequential requests each");
    println!("{:<18} {:>10} {:>10}", "path", "p50", "p90");
    let rows = [
        (
            "direct mock",
            format!("{}/v1/chat/completions", mock.base_url()),
        ),
        (
            "plain Envoy",
            format!("http://127.0.0.1:{plain_port}/v1/chat/completions"),
        ),
        ("Envoy+tollgate", gateway.url("/v1/chat/completions")),
    ];
    let mut medians = Vec::new();
    for (name, url) in rows {
        let (p50, p90) = measure(&url, n)?;
        println!("{name:<18} {:>8.3}ms {:>8.3}ms", ms(p50), ms(p90));
        medians.push(p50);
    }
    println!(
        "tollgate adds {:+.3} ms to plain Envoy's median TTFB",
        ms(medians[2]) - ms(medians[1])
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
