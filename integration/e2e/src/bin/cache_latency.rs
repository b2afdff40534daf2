//! Latency of a response-cache hit on real Envoy, against a miss of the same size and the mock
//! alone: sequential requests on one keep-alive connection, so the numbers are latency.
//! The gateway is the guide's `response-cache` over the OpenAI mock
//! (`integration/e2e/tests/fixtures/cache.yaml`).
//!
//!     cargo run --release -p tollgate-e2e --bin cache_latency [REQUESTS]

use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::{free_port, http, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

const KEY: &str = "sk-cache-latency";

fn body(question: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"messages":[{{"role":"user","content":"{question}"}}]}}"#
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// Times `n` requests (after 20 warm-up ones); `body_of(i)` gives the i-th body and
/// `expect` the `x-cache-status` each must carry (`None`: not checked).
fn measure(
    url: &str,
    n: usize,
    body_of: impl Fn(usize) -> String,
    expect: Option<&str>,
) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let body = body_of(i);
        let started = Instant::now();
        let response = http::post(
            url,
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer bench"),
            ],
            &body,
        )
        .map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        if response.status != 200 {
            return Err(format!(
                "{url}: status {}: {}",
                response.status, response.body
            ));
        }
        if let Some(expected) = expect {
            let got = response.header("x-cache-status");
            if got != Some(expected) {
                return Err(format!("expected x-cache-status {expected}, got {got:?}"));
            }
        }
        if i >= 20 {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "{what:<28} p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.len()
    );
}

fn main() -> Result<(), String> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().map_err(|_| "addr")?);
    config.api_key = Some(KEY.to_string());
    let mock = spawn(config).map_err(|e| e.to_string())?;
    let spec = GatewaySpec {
        inputs: vec![
            "envoy-config/guide/13-trafficpolicy-response-cache.yaml".into(),
            "integration/e2e/tests/fixtures/cache.yaml".into(),
        ],
        ..Default::default()
    }
    .endpoint("gpt", mock.base_url())
    .endpoint("mcp-tools", "http://127.0.0.1:9")
    .secret("openai-secret", KEY);
    let gateway = Gateway::start(&spec).map_err(|e| e.to_string())?;
    let url = gateway.url("/v1/chat/completions");
    let direct = format!("{}/v1/chat/completions", mock.base_url());

    // Plain Envoy (no wasm) proxying to the mock: what Envoy alone costs.
    let plain_port = free_port();
    let plain_yaml = include_str!("../../../../scripts/bench/plain-envoy.yaml")
        .replace("__PORT__", &plain_port.to_string())
        .replace("__ADMIN__", "0")
        .replace("__UPSTREAM__", &mock.addr().port().to_string());
    let _plain = Envoy::start(&plain_yaml).map_err(|e| e.to_string())?;
    let plain = format!("http://127.0.0.1:{plain_port}/v1/chat/completions");
    // Direct to the mock (its own cost; it checks the key), then through plain Envoy.
    for (what, url) in [("mock directly", &direct), ("plain Envoy -> mock", &plain)] {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + 20 {
            let started = Instant::now();
            let response = http::post(
                url,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {KEY}")),
                ],
                &body("What is a cache?"),
            )
            .map_err(|e| e.to_string())?;
            if response.status != 200 {
                return Err(format!("{what}: {}", response.status));
            }
            if i >= 20 {
                samples.push(started.elapsed());
            }
        }
        report(what, samples);
    }
    let misses = measure(&url, n, |i| body(&format!("question {i:06}")), Some("MISS"))?;
    report("miss (stored) via Envoy", misses);
    let hits = measure(&url, n, |_| body("What is a cache?"), None)?;
    let hits_checked = measure(&url, n, |_| body("What is a cache?"), Some("HIT"))?;
    drop(hits);
    report("hit via Envoy", hits_checked);
    Ok(())
}
