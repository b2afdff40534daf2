//! The budget service against a real `redis-server` (Debian's, started by the test on a free
//! port): reservations clamp and refuse as the local tier does, settle once, release, expire
//! charged, hold one budget under concurrent reservations, and a stopped Redis is a quick 503.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_budget_service::Service;
use tower::ServiceExt;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server, installed by scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn call(
    service: &Service,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = service.clone().router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn reserve_body(user: &str, max: u64, input: u64, want: u64, ttl_ms: u64) -> Value {
    json!({
        "accounts": [{"key": format!("p\u{1f}{user}"), "buckets": [
            {"unit": "tokens", "max_tokens": max, "tokens_per_fill": max, "fill_interval_ms": 3_600_000}
        ]}],
        "input": input, "want": want, "min": 1,
        "price": {"input": 150000, "output": 600000, "cached_input": 75000},
        "ttl_ms": ttl_ms,
    })
}

async fn reserve(s: &Service, user: &str, max: u64, input: u64, want: u64) -> Value {
    let (status, body, text) = call(
        s,
        "POST",
        "/v1/reserve",
        Some(reserve_body(user, max, input, want, 60_000)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    body
}

async fn commit(s: &Service, id: &str, input: u64, output: u64) -> Value {
    let body = json!({"id": id, "input": input, "cached_input": 0, "output": output,
        "price": {"input": 150000, "output": 600000, "cached_input": 75000}});
    call(s, "POST", "/v1/commit", Some(body)).await.1
}

#[tokio::test]
async fn a_reservation_is_taken_clamped_reconciled_and_settled_once() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    let first = reserve(&s, "alice", 1_000, 100, 300).await;
    assert_eq!(first["result"], "admitted");
    assert_eq!(first["output"], 300);
    assert_eq!(first["headers"]["remaining"], 600);
    // 600 left: 100 input leaves 500 of the 800 wanted.
    let second = reserve(&s, "alice", 1_000, 100, 800).await;
    assert_eq!(second["output"], 500);
    assert_eq!(second["headers"]["remaining"], 0);
    let refused = reserve(&s, "alice", 1_000, 100, 10).await;
    assert_eq!(refused["result"], "refused");
    assert_eq!(refused["needed"], 101);
    assert_eq!(refused["available"], 0);
    let retry = refused["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 3_590_000 && retry <= 3_600_000, "{retry}");
    // Real usage replaces the reservations; a second commit of an id does nothing.
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        commit(&s, id, 20, 30).await,
        json!({"settled": true, "overshoot": 0})
    );
    assert_eq!(commit(&s, id, 20, 30).await["settled"], false);
    let released = call(&s, "POST", "/v1/release", Some(json!({"id": second["id"]})))
        .await
        .1;
    assert_eq!(released["settled"], true);
    let after = reserve(&s, "alice", 1_000, 0, 1).await;
    assert_eq!(after["headers"]["remaining"], 1_000 - 50 - 1);
    // Bob was never touched.
    assert_eq!(
        reserve(&s, "bob", 1_000, 0, 1).await["headers"]["remaining"],
        999
    );
}

#[tokio::test]
async fn usage_above_the_reservation_is_charged_and_reported() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    let r = reserve(&s, "carol", 1_000, 10, 10).await;
    let settled = commit(&s, r["id"].as_str().unwrap(), 30, 10).await;
    assert_eq!(settled["overshoot"], 20);
    assert_eq!(
        reserve(&s, "carol", 1_000, 0, 1).await["headers"]["remaining"],
        1_000 - 40 - 1
    );
}

#[tokio::test]
async fn an_expired_reservation_stays_charged_and_cannot_be_settled_later() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    let (_, r, _) = call(
        &s,
        "POST",
        "/v1/reserve",
        Some(reserve_body("dave", 1_000, 100, 100, 50)),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let settled = call(&s, "POST", "/v1/release", Some(json!({"id": "probe"})))
            .await
            .1;
        assert_eq!(settled["settled"], false);
        let mut c = redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let key = format!("tollgate:budget:r:{}", r["id"].as_str().unwrap());
        let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut c).unwrap();
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "the reservation never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        commit(&s, r["id"].as_str().unwrap(), 1, 1).await["settled"],
        false
    );
    assert_eq!(
        reserve(&s, "dave", 1_000, 0, 1).await["headers"]["remaining"],
        1_000 - 200 - 1
    );
}

#[tokio::test]
async fn concurrent_reservations_hold_one_budget() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let (_, body, _) = call(
                    &s,
                    "POST",
                    "/v1/reserve",
                    Some(reserve_body("erin", 1_000, 10, 90, 60_000)),
                )
                .await;
                body
            })
        })
        .collect();
    let mut admitted = 0;
    let mut granted = 0;
    for t in tasks {
        let body = t.await.unwrap();
        if body["result"] == "admitted" {
            admitted += 1;
            granted += 10 + body["output"].as_u64().unwrap();
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(granted, 1_000);
}

#[tokio::test]
async fn a_dollar_bucket_is_priced_and_clamped_in_the_script() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    let body = json!({
        "accounts": [{"key": "spend\u{1f}team", "buckets": [
            {"unit": "micro_usd", "max_tokens": 1000, "tokens_per_fill": 1000, "fill_interval_ms": 86_400_000},
            {"unit": "requests", "max_tokens": 5, "tokens_per_fill": 5, "fill_interval_ms": 60_000}
        ]}],
        "input": 2000, "want": 4096, "min": 1,
        "price": {"input": 150000, "output": 600000, "cached_input": 75000},
        "ttl_ms": 60_000,
    });
    let (_, r, text) = call(&s, "POST", "/v1/reserve", Some(body)).await;
    // 2000 input = 300 micro-USD; the 700 left buy 1166 output tokens (as the local tier).
    assert_eq!(r["output"], 1166, "{text}");
    assert!(
        r.get("headers").is_none_or(Value::is_null),
        "no token bucket, no token headers"
    );
}

#[tokio::test]
async fn a_stopped_redis_is_a_quick_503_counted_and_health_says_so() {
    let mut redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    assert_eq!(call(&s, "GET", "/health", None).await.0, StatusCode::OK);
    redis.stop();
    let started = Instant::now();
    let (status, body, _) = call(
        &s,
        "POST",
        "/v1/reserve",
        Some(reserve_body("frank", 1_000, 1, 1, 60_000)),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );
    assert_eq!(
        call(&s, "GET", "/health", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, _, metrics) = call(&s, "GET", "/metrics", None).await;
    assert!(
        metrics.contains(
            "tollgate_budget_service_operations_total{op=\"reserve\",result=\"error\"} 1"
        ),
        "{metrics}"
    );
    let errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_budget_service_redis_errors_total "))
        .unwrap();
    assert!(errors.parse::<u64>().unwrap() >= 2, "{metrics}");
}

#[tokio::test]
async fn a_commit_prices_cache_reads_and_writes_apart_as_the_filter_does() {
    let redis = Redis::start();
    let s = Service::connect(&redis.url()).await.unwrap();
    // claude-3-5-sonnet's prices: 3 / 15 / 0.30 / 3.75 USD per million tokens.
    let price = json!({"input": 3_000_000, "output": 15_000_000, "cached_input": 300_000,
        "cache_write": 3_750_000});
    let reserve = |want: u64| {
        json!({
            "accounts": [{"key": "spend\u{1f}team", "buckets": [
                {"unit": "micro_usd", "max_tokens": 10_000, "tokens_per_fill": 10_000, "fill_interval_ms": 86_400_000}
            ]}],
            "input": 100, "want": want, "min": 1, "price": price.clone(), "ttl_ms": 60_000,
        })
    };
    let (_, r, text) = call(&s, "POST", "/v1/reserve", Some(reserve(100))).await;
    assert_eq!(r["output"], 100, "{text}");
    // Anthropic's input 1000, cache_read 2000, cache_creation 500, output 200:
    // 1000 × 3 + 2000 × 0.30 + 500 × 3.75 + 200 × 15 = 8475 micro-USD.
    let commit = json!({"id": r["id"], "input": 3_500, "cached_input": 2_000,
        "cache_write": 500, "output": 200, "price": price.clone()});
    let (_, settled, text) = call(&s, "POST", "/v1/commit", Some(commit)).await;
    assert_eq!(settled["settled"], true, "{text}");
    // 1525 left: 100 input (300) and 81 output tokens (1215); at the input price the writes
    // would have left 2025, so 115.
    let (_, r, text) = call(&s, "POST", "/v1/reserve", Some(reserve(4096))).await;
    assert_eq!(r["output"], 81, "{text}");
}
