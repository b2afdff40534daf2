//! The budget service: the global tier of tollgate budgets. Stateless itself; the buckets and
//! reservations live in Redis, and every operation of the protocol
//! (`tollgate_budget::global`) is one Lua script, atomic across all the accounts it touches:
//!
//! - `POST /v1/reserve`: refill, clamp and take from every bucket of every account at once,
//!   then record the reservation under a new id with an expiry (`ttl_ms`). Redis drops an
//!   expired record: a reservation nobody settled (a crashed replica) stays charged, which
//!   never lets a user past a budget, and nothing else is held.
//! - `POST /v1/commit` / `POST /v1/release`: once per id, the real usage replaces the
//!   reservation, or the reservation is given back.
//! - `GET /health`: 200 when Redis answers `PING`, else 503.
//! - `GET /metrics`: Prometheus text (operations by result, Redis errors, latency).
//!
//! Account state expires once every bucket would be full again, so Redis holds only the
//! accounts that are refilling.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use redis::aio::ConnectionManager;
use redis::Script;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tollgate_budget::global::{
    CommitRequest, ReleaseRequest, ReserveRequest, ReserveResponse, SettleResponse, COMMIT_PATH,
    RELEASE_PATH, RESERVE_PATH,
};

const PRELUDE: &str = include_str!("scripts.lua");
const RESERVE: &str = include_str!("reserve.lua");
const SETTLE: &str = include_str!("settle.lua");

/// Prefix of every key the service writes.
pub const KEY_PREFIX: &str = "tollgate:budget:";

/// Counters of one operation.
#[derive(Debug, Default)]
struct OpCounters {
    ok: AtomicU64,
    refused: AtomicU64,
    unknown: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

/// What `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    reserve: OpCounters,
    commit: OpCounters,
    release: OpCounters,
    redis_errors: AtomicU64,
}

/// The service's state: a Redis connection (reconnecting by itself) and the scripts.
#[derive(Clone)]
pub struct Service {
    redis: ConnectionManager,
    reserve: Arc<Script>,
    settle: Arc<Script>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// Connects to Redis at `url` (`redis://host:port`).
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(std::time::Duration::from_millis(500))
            .set_connection_timeout(std::time::Duration::from_millis(500))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            redis,
            reserve: Arc::new(Script::new(&format!("{PRELUDE}\n{RESERVE}"))),
            settle: Arc::new(Script::new(&format!("{PRELUDE}\n{SETTLE}"))),
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route(RESERVE_PATH, post(reserve))
            .route(COMMIT_PATH, post(commit))
            .route(RELEASE_PATH, post(release))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .with_state(self)
    }

    fn redis_failed(&self, op: &OpCounters, error: &redis::RedisError) -> Response {
        self.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
        op.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("tollgate-budget-service: redis: {error}");
        failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the budget store is unavailable",
        )
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn elapsed(op: &OpCounters, started: Instant) {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    op.micros.fetch_add(micros, Ordering::Relaxed);
}

async fn reserve(State(s): State<Service>, Json(request): Json<ReserveRequest>) -> Response {
    let started = Instant::now();
    let op = &s.metrics.reserve;
    if request.accounts.is_empty() {
        return failure(StatusCode::BAD_REQUEST, "no accounts");
    }
    let Ok(json) = serde_json::to_string(&request) else {
        return failure(StatusCode::BAD_REQUEST, "unreadable request");
    };
    let mut invocation = s.reserve.prepare_invoke();
    for account in &request.accounts {
        invocation.key(format!("{KEY_PREFIX}a:{}", account.key));
    }
    invocation
        .arg(json)
        .arg(format!("{KEY_PREFIX}seq"))
        .arg(format!("{KEY_PREFIX}r:"));
    let mut redis = s.redis.clone();
    let answer: redis::RedisResult<String> = invocation.invoke_async(&mut redis).await;
    elapsed(op, started);
    match answer {
        Ok(text) => match serde_json::from_str::<ReserveResponse>(&text) {
            Ok(answer) => {
                match answer {
                    ReserveResponse::Admitted { .. } => &op.ok,
                    ReserveResponse::Refused { .. } => &op.refused,
                }
                .fetch_add(1, Ordering::Relaxed);
                Json(answer).into_response()
            }
            Err(e) => {
                op.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("tollgate-budget-service: unreadable script answer {text:?}: {e}");
                failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unreadable script answer",
                )
            }
        },
        Err(e) => s.redis_failed(op, &e),
    }
}

async fn settle(s: &Service, op: &OpCounters, id: &str, args: [String; 9]) -> Response {
    let started = Instant::now();
    let mut invocation = s.settle.prepare_invoke();
    invocation.arg(format!("{KEY_PREFIX}r:{id}"));
    for a in args {
        invocation.arg(a);
    }
    let mut redis = s.redis.clone();
    let answer: redis::RedisResult<String> = invocation.invoke_async(&mut redis).await;
    elapsed(op, started);
    match answer {
        Ok(text) => match serde_json::from_str::<SettleResponse>(&text) {
            Ok(answer) => {
                if answer.settled { &op.ok } else { &op.unknown }.fetch_add(1, Ordering::Relaxed);
                Json(answer).into_response()
            }
            Err(_) => failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unreadable script answer",
            ),
        },
        Err(e) => s.redis_failed(op, &e),
    }
}

async fn commit(State(s): State<Service>, Json(r): Json<CommitRequest>) -> Response {
    let cached = r.cached_input.min(r.input);
    let args = [
        "commit".to_string(),
        r.input.to_string(),
        cached.to_string(),
        r.output.to_string(),
        r.price.input.to_string(),
        r.price.output.to_string(),
        r.price.cached_input.to_string(),
        r.cache_write.min(r.input - cached).to_string(),
        r.price.cache_write.to_string(),
    ];
    settle(&s, &s.metrics.commit, &r.id, args).await
}

async fn release(State(s): State<Service>, Json(r): Json<ReleaseRequest>) -> Response {
    let args = ["release", "0", "0", "0", "0", "0", "0", "0", "0"].map(str::to_string);
    settle(&s, &s.metrics.release, &r.id, args).await
}

async fn health(State(s): State<Service>) -> Response {
    let mut redis = s.redis.clone();
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut redis).await;
    match pong {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            s.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
            (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {e}\n")).into_response()
        }
    }
}

async fn metrics(State(s): State<Service>) -> Response {
    let m = &s.metrics;
    let mut out = String::new();
    out.push_str("# HELP tollgate_budget_service_operations_total Budget operations by result.\n");
    out.push_str("# TYPE tollgate_budget_service_operations_total counter\n");
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    for (name, op, results) in [
        (
            "reserve",
            &m.reserve,
            [("admitted", &m.reserve.ok), ("refused", &m.reserve.refused)],
        ),
        (
            "commit",
            &m.commit,
            [("settled", &m.commit.ok), ("unknown", &m.commit.unknown)],
        ),
        (
            "release",
            &m.release,
            [("settled", &m.release.ok), ("unknown", &m.release.unknown)],
        ),
    ] {
        for (result, counter) in results {
            out.push_str(&format!(
                "tollgate_budget_service_operations_total{{op=\"{name}\",result=\"{result}\"}} {}\n",
                get(counter)
            ));
        }
        out.push_str(&format!(
            "tollgate_budget_service_operations_total{{op=\"{name}\",result=\"error\"}} {}\n",
            get(&op.errors)
        ));
    }
    out.push_str("# HELP tollgate_budget_service_latency_microseconds_total Time spent in Redis per operation.\n");
    out.push_str("# TYPE tollgate_budget_service_latency_microseconds_total counter\n");
    for (name, op) in [
        ("reserve", &m.reserve),
        ("commit", &m.commit),
        ("release", &m.release),
    ] {
        out.push_str(&format!(
            "tollgate_budget_service_latency_microseconds_total{{op=\"{name}\"}} {}\n",
            get(&op.micros)
        ));
    }
    out.push_str("# HELP tollgate_budget_service_redis_errors_total Redis calls that failed.\n");
    out.push_str("# TYPE tollgate_budget_service_redis_errors_total counter\n");
    out.push_str(&format!(
        "tollgate_budget_service_redis_errors_total {}\n",
        get(&m.redis_errors)
    ));
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
