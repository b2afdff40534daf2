//! The global tier's protocol: the filter reserves, commits and releases through the budget
//! service (`services/budget`), which keeps the buckets in Redis and runs each operation as
//! one atomic script. Both sides use these types, so the contract cannot drift.
//!
//! - `POST /v1/reserve` [`ReserveRequest`] → [`ReserveResponse`]: the same math as the local
//!   tier (refill, clamp, take from every bucket of every account), all accounts in one atomic
//!   step, the reservation recorded under an id with an expiry (Redis drops it: a crashed
//!   replica's reservation stays charged and nothing else is held).
//! - `POST /v1/commit` [`CommitRequest`] → [`SettleResponse`]: the real usage replaces the
//!   reservation, once (a second commit or release of the id does nothing).
//! - `POST /v1/release` [`ReleaseRequest`] → [`SettleResponse`]: the reservation is given back.

use crate::{Account, Budget, RateHeaders, Refusal, Reservation, Reserve};
use serde::{Deserialize, Serialize};
use tollgate_core::config::budget::BucketLimit;
use tollgate_core::pricing::{BilledTokens, PicoPrices};
use tollgate_core::stage::Callout;
use tollgate_core::usage::TokenUsage;

/// Path of the reserve operation.
pub const RESERVE_PATH: &str = "/v1/reserve";
/// Path of the commit operation.
pub const COMMIT_PATH: &str = "/v1/commit";
/// Path of the release operation.
pub const RELEASE_PATH: &str = "/v1/release";
/// How long a reservation record lives when nobody settles it: longer than any request (the
/// generator's longest route timeout is 300 s; streams may idle as long again).
pub const RESERVATION_TTL_MS: u64 = 900_000;

/// Prices on the wire (micro-USD per million tokens = pico-USD per token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePrice {
    /// Input.
    pub input: u64,
    /// Output.
    pub output: u64,
    /// Cached input.
    pub cached_input: u64,
    /// Prompt-cache writes (absent from an older filter, which sends no writes either).
    #[serde(default)]
    pub cache_write: u64,
}

impl From<PicoPrices> for WirePrice {
    fn from(p: PicoPrices) -> Self {
        WirePrice {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input,
            cache_write: p.cache_write,
        }
    }
}

impl From<WirePrice> for PicoPrices {
    fn from(p: WirePrice) -> Self {
        PicoPrices {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input,
            cache_write: p.cache_write,
        }
    }
}

/// One account and its buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAccount {
    /// `<policy>\x1f<identity>`.
    pub key: String,
    /// The policy's buckets.
    pub buckets: Vec<BucketLimit>,
}

/// `POST /v1/reserve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// Every account the request pays into.
    pub accounts: Vec<WireAccount>,
    /// Input estimate (tokens).
    pub input: u64,
    /// Output wanted (tokens).
    pub want: u64,
    /// Fewest output tokens still worth admitting.
    pub min: u64,
    /// Price of the request.
    pub price: WirePrice,
    /// Lifetime of the reservation record.
    pub ttl_ms: u64,
}

/// Rate-limit headers on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHeaders {
    /// Limit.
    pub limit: u64,
    /// Remaining.
    pub remaining: u64,
    /// Until full, ms.
    pub reset_ms: u64,
}

impl From<WireHeaders> for RateHeaders {
    fn from(h: WireHeaders) -> Self {
        RateHeaders {
            limit: h.limit,
            remaining: h.remaining,
            reset_ms: h.reset_ms,
        }
    }
}

/// The service's answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReserveResponse {
    /// Taken; settle by `id`.
    Admitted {
        /// Reservation id.
        id: String,
        /// Output tokens granted.
        output: u64,
        /// Of the tightest token bucket.
        #[serde(default)]
        headers: Option<WireHeaders>,
    },
    /// Refused by one bucket.
    Refused {
        /// Index of the account.
        account: usize,
        /// Index of its bucket.
        bucket: usize,
        /// What the request needed from it at least.
        needed: i64,
        /// What it held.
        available: i64,
        /// Until every bucket of the account holds the request again.
        #[serde(default)]
        retry_after_ms: Option<u64>,
        /// Of the account's tightest token bucket.
        #[serde(default)]
        headers: Option<WireHeaders>,
    },
}

/// `POST /v1/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    /// Reservation id.
    pub id: String,
    /// Input tokens, cache reads and writes included.
    pub input: u64,
    /// Cached input tokens (cache reads).
    pub cached_input: u64,
    /// Prompt-cache writes (absent from an older filter: none).
    #[serde(default)]
    pub cache_write: u64,
    /// Output tokens.
    pub output: u64,
    /// Price of the serving model.
    pub price: WirePrice,
}

/// `POST /v1/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// Reservation id.
    pub id: String,
}

/// The answer to a commit or release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleResponse {
    /// False when the id was unknown (settled already, or expired).
    pub settled: bool,
    /// Tokens charged above the reservation.
    #[serde(default)]
    pub overshoot: u64,
}

impl Budget {
    /// The reservation request for the budget service.
    pub fn reserve_request(
        &self,
        accounts: &[Account],
        model: Option<&str>,
        body_bytes: usize,
        max_output: Option<u64>,
    ) -> ReserveRequest {
        let (input, want) = self.estimate(body_bytes, max_output);
        ReserveRequest {
            accounts: accounts
                .iter()
                .filter_map(|a| {
                    let policy = self.policies.get(a.policy)?;
                    Some(WireAccount {
                        key: String::from_utf8_lossy(&a.name).into_owned(),
                        buckets: policy.buckets.clone(),
                    })
                })
                .collect(),
            input,
            want,
            min: self.config.min_output_tokens,
            price: self.price_of(model).into(),
            ttl_ms: RESERVATION_TTL_MS,
        }
    }

    /// The callout carrying `body` to the service's `path`, `None` without a global tier.
    pub fn callout(&self, path: &str, body: Vec<u8>) -> Option<Callout> {
        let global = self.config.global.as_ref()?;
        Some(Callout {
            cluster: global.cluster.clone(),
            method: "POST".into(),
            path: path.into(),
            authority: global.authority.clone(),
            body,
            timeout_ms: global.timeout_ms,
        })
    }

    /// Reads the service's answer to `request` (`status` 0: the call failed or timed out).
    /// `None`: no usable answer (the policy's fail mode decides).
    pub fn reserve_answer(
        &self,
        accounts: &[Account],
        request: &ReserveRequest,
        status: u16,
        body: &[u8],
    ) -> Option<Reserve> {
        if status != 200 {
            return None;
        }
        let answer: ReserveResponse = serde_json::from_slice(body).ok()?;
        let price = PicoPrices::from(request.price);
        Some(match answer {
            ReserveResponse::Admitted {
                id,
                output,
                headers,
            } => Reserve::Admitted(Reservation {
                holds: Vec::new(),
                estimate: BilledTokens {
                    input: request.input,
                    output: output.min(request.want),
                    ..BilledTokens::default()
                },
                price,
                headers: headers.map(RateHeaders::from),
                global_id: Some(id),
            }),
            ReserveResponse::Refused {
                account,
                bucket,
                needed,
                available,
                retry_after_ms,
                headers,
            } => {
                let policy = accounts
                    .get(account)
                    .and_then(|a| self.policies.get(a.policy))?;
                let limit = *policy.buckets.get(bucket)?;
                Reserve::Refused(Refusal {
                    policy: policy.name.clone(),
                    label: policy.label.clone(),
                    limit,
                    needed,
                    available,
                    retry_after_ms,
                    headers: headers.map(RateHeaders::from),
                })
            }
        })
    }

    /// The settlement callout of a global reservation: commit the usage, or release.
    pub fn settle_request(
        &self,
        reservation: &Reservation,
        usage: Option<TokenUsage>,
        serving_model: Option<&str>,
    ) -> Option<(&'static str, Vec<u8>)> {
        let id = reservation.global_id.clone()?;
        let body = match usage {
            Some(u) => {
                let price = self.charge_price(serving_model, reservation);
                let t = BilledTokens::from_usage(&u);
                let request = CommitRequest {
                    id,
                    input: t.prompt(),
                    cached_input: t.cached_input,
                    cache_write: t.cache_write,
                    output: t.output,
                    price: price.into(),
                };
                (COMMIT_PATH, serde_json::to_vec(&request).ok()?)
            }
            None => (
                RELEASE_PATH,
                serde_json::to_vec(&ReleaseRequest { id }).ok()?,
            ),
        };
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::budget::{BudgetPolicy, BudgetUnit, GlobalBudget};
    use tollgate_core::config::BudgetConfig;

    fn budget() -> Budget {
        Budget::new(&BudgetConfig {
            policies: vec![BudgetPolicy {
                name: "p".into(),
                routes: vec![],
                key: vec!["client".into()],
                anonymous: false,
                buckets: vec![BucketLimit {
                    unit: BudgetUnit::Tokens,
                    max_tokens: 100,
                    tokens_per_fill: 100,
                    fill_interval_ms: 60_000,
                }],
            }],
            global: Some(GlobalBudget {
                cluster: "budget-service".into(),
                authority: "budget-service:8090".into(),
                timeout_ms: 200,
                fail_open: false,
            }),
            ..BudgetConfig::default()
        })
        .unwrap()
    }

    fn accounts(b: &Budget) -> Vec<Account> {
        b.accounts(&[0], |_| Some("alice".into())).unwrap()
    }

    #[test]
    fn a_reservation_request_carries_the_accounts_their_buckets_and_the_estimate() {
        let b = budget();
        let r = b.reserve_request(&accounts(&b), None, 30, Some(20));
        assert_eq!(r.accounts[0].key, "p\u{1f}alice");
        assert_eq!(r.accounts[0].buckets[0].max_tokens, 100);
        assert_eq!((r.input, r.want, r.min), (30, 20, 1));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ReserveRequest>(&json).unwrap(), r);
        let c = b.callout(RESERVE_PATH, json.into_bytes()).unwrap();
        assert_eq!((c.cluster.as_str(), c.timeout_ms), ("budget-service", 200));
    }

    #[test]
    fn the_services_answers_become_admissions_and_refusals() {
        let b = budget();
        let a = accounts(&b);
        let r = b.reserve_request(&a, None, 30, Some(20));
        let admitted = br#"{"result":"admitted","id":"7","output":15,"headers":{"limit":100,"remaining":55,"reset_ms":1000}}"#;
        let Some(Reserve::Admitted(res)) = b.reserve_answer(&a, &r, 200, admitted) else {
            panic!("expected an admission")
        };
        assert_eq!(res.global_id.as_deref(), Some("7"));
        assert_eq!(res.estimate.output, 15);
        assert_eq!(res.headers.unwrap().remaining, 55);
        let refused = br#"{"result":"refused","account":0,"bucket":0,"needed":31,"available":3,"retry_after_ms":500}"#;
        let Some(Reserve::Refused(f)) = b.reserve_answer(&a, &r, 200, refused) else {
            panic!("expected a refusal")
        };
        assert_eq!((f.policy.as_str(), f.retry_after_ms), ("p", Some(500)));
        assert_eq!(b.reserve_answer(&a, &r, 0, b""), None, "a failed call");
        assert_eq!(b.reserve_answer(&a, &r, 503, b"{}"), None);
        assert_eq!(b.reserve_answer(&a, &r, 200, b"nonsense"), None);
    }

    #[test]
    fn usage_is_committed_and_no_usage_released() {
        let b = budget();
        let res = Reservation {
            holds: vec![],
            estimate: BilledTokens::default(),
            price: PicoPrices::default(),
            headers: None,
            global_id: Some("9".into()),
        };
        let usage = TokenUsage {
            input_tokens: 5,
            output_tokens: 6,
            cached_input_tokens: 2,
            cache_write_tokens: 1,
        };
        let (path, body) = b.settle_request(&res, Some(usage), None).unwrap();
        assert_eq!(path, COMMIT_PATH);
        let commit: CommitRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (commit.input, commit.cached_input, commit.cache_write),
            (5, 2, 1)
        );
        assert_eq!(commit.output, 6);
        let (path, body) = b.settle_request(&res, None, None).unwrap();
        assert_eq!(path, RELEASE_PATH);
        assert_eq!(
            serde_json::from_slice::<ReleaseRequest>(&body).unwrap().id,
            "9"
        );
    }
}
