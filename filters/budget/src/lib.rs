//! tollgate budget stage: pure decisions over [`tollgate_core::facts`], called by the pipeline in
//! the `tollgate` glue crate. No proxy-wasm here: the dependency graph keeps it out.
//!
//! A request on a budgeted route is charged in advance and reconciled after:
//! 1. **Who**: each policy's key (`jwt.<claim>`, `header.<name>`, `client`, `source.address`,
//!    `model`) names the caller's account; a caller without it gets a 401 (or shares the
//!    anonymous account when the policy allows).
//! 2. **Reserve**: input estimate (`ceil(body bytes / input_bytes_per_token)`, a bound, no
//!    tokenizer) plus the output cap (the client's, else the configured default), clamped to
//!    what every bucket of every account can still pay for, taken from all buckets at once
//!    ([`Budget::reserve`]); the clamped cap is written into the request ([`body::cap_output`])
//!    so the provider cannot produce more than was reserved.
//! 3. **Reconcile** ([`Budget::settle`]): the real usage replaces the reservation; a refusal,
//!    a reset before any answer, an upstream error, a local reply or a cache hit refund it
//!    whole; an answer without usage keeps the reservation charged (counted).

pub mod body;
pub mod bucket;
pub mod cost;
pub mod global;
pub mod ledger;

use bucket::BucketState;
use cost::{amount, fit};
use ledger::{Handle, Ledger, LedgerError};
use tollgate_core::config::budget::{BucketLimit, BudgetConfig, BudgetUnit};
use tollgate_core::errors::{OpenAiError, OpenAiErrorBody};
use tollgate_core::facts::{Answerer, ResponseFacts};
use tollgate_core::names::budget as names;
use tollgate_core::pricing::{BilledTokens, PicoPrices, PriceError, PriceTable};
use tollgate_core::stage::{LocalReply, SharedStore};

/// A configuration the stage refuses, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget.{path}: {reason}")]
pub struct ConfigError {
    /// Field path inside the budget section.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// One part of a policy's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// A claim of the verified JWT (`jwt.sub`).
    Jwt(String),
    /// A request header (lower-case name).
    Header(String),
    /// The client the gateway authenticated (`x-tollgate-client`).
    Client,
    /// The downstream address.
    Address,
    /// The model asked for.
    Model,
}

impl KeyPart {
    /// Reads a descriptor value: `jwt.<claim>`, `header.<name>`, `client`, `source.address`
    /// (also `client.address`, `remote_address`), `model`.
    pub fn parse(text: &str) -> Option<KeyPart> {
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        };
        if let Some(claim) = text.strip_prefix("jwt.") {
            return valid_name(claim).then(|| KeyPart::Jwt(claim.to_string()));
        }
        if let Some(name) = text.strip_prefix("header.") {
            return (valid_name(name) && !name.starts_with(':'))
                .then(|| KeyPart::Header(name.to_ascii_lowercase()));
        }
        match text {
            "client" | "client.key" | "apiKey.client" => Some(KeyPart::Client),
            "source.address" | "client.address" | "remote_address" => Some(KeyPart::Address),
            "model" | "llm.model" => Some(KeyPart::Model),
            _ => None,
        }
    }

    /// The descriptor value it was read from, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeyPart::Jwt(c) => format!("jwt.{c}"),
            KeyPart::Header(h) => format!("header.{h}"),
            KeyPart::Client => "client".into(),
            KeyPart::Address => "source.address".into(),
            KeyPart::Model => "model".into(),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// Name as a metric label value (dots replaced).
    pub label: String,
    /// HTTPRoute names; empty: every route.
    pub routes: Vec<String>,
    /// The key.
    pub key: Vec<KeyPart>,
    /// A missing identity shares the anonymous account instead of a 401.
    pub anonymous: bool,
    /// The buckets.
    pub buckets: Vec<BucketLimit>,
}

/// The identity of the shared anonymous account.
pub const ANONYMOUS: &str = "\u{0}anonymous";

/// One account a request pays into: a policy and the caller's identity under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Index of the policy.
    pub policy: usize,
    /// `<policy>\x1f<identity parts joined by \x1f>`: the slot's owner.
    pub name: Vec<u8>,
}

/// A policy needs an identity the request does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingIdentity {
    /// The policy.
    pub policy: String,
    /// What it keys on.
    pub part: String,
}

/// The rate-limit headers of a budgeted response (the caller's tightest token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `x-ratelimit-limit-tokens`.
    pub limit: u64,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining: u64,
    /// `x-ratelimit-reset-tokens`, in ms.
    pub reset_ms: u64,
}

impl RateHeaders {
    /// The headers as name/value pairs.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (names::LIMIT_TOKENS, self.limit.to_string()),
            (names::REMAINING_TOKENS, self.remaining.to_string()),
            (names::RESET_TOKENS, format_duration(self.reset_ms)),
        ]
    }

    fn of(state: &BucketState, limit: &BucketLimit, now: u64) -> Self {
        RateHeaders {
            limit: limit.max_tokens,
            remaining: u64::try_from(state.level.max(0)).unwrap_or(0),
            reset_ms: state.ms_until_full(limit, now),
        }
    }

    fn tighter(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// OpenAI's duration spelling for `x-ratelimit-reset-*`: `250ms`, `6s`, `1m30s`, `2h0m0s`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    let secs = if milli == 0 {
        format!("{s}s")
    } else {
        format!("{}s", format!("{s}.{milli:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// What the reservation holds in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Index into the request's accounts.
    pub account: usize,
    /// Where the account lives.
    pub handle: Handle,
    /// Amount taken from each bucket.
    pub amounts: Vec<i64>,
}

/// An admitted request's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// What was taken, per account.
    pub holds: Vec<Hold>,
    /// The input estimate and the granted output cap.
    pub estimate: BilledTokens,
    /// The price it was reserved at.
    pub price: PicoPrices,
    /// The rate-limit headers for the answer.
    pub headers: Option<RateHeaders>,
    /// Global tier: the budget service's reservation id (settled by id, not by holds).
    pub global_id: Option<String>,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The policy whose bucket refused.
    pub policy: String,
    /// That policy's metric label.
    pub label: String,
    /// The bucket.
    pub limit: BucketLimit,
    /// What the request needed from it at least (input + minimum output).
    pub needed: i64,
    /// What it holds.
    pub available: i64,
    /// Until every bucket of the account holds the request again; `None`: never (the
    /// request is larger than a bucket).
    pub retry_after_ms: Option<u64>,
    /// The rate-limit headers.
    pub headers: Option<RateHeaders>,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// Admitted; send the request with the cap written in.
    Admitted(Reservation),
    /// Refused: answer 429.
    Refused(Refusal),
    /// The store failed: answer 503 (local tier) or apply the policy's fail mode.
    Unavailable(LedgerError),
}

/// How an answered request ends for its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was generated for the caller: give the reservation back.
    Refund,
    /// The provider reported its usage (and the model that served it, for pricing).
    Usage(tollgate_core::usage::TokenUsage),
    /// An answer without usage: the reservation stays charged.
    Unreconciled,
}

impl Outcome {
    /// What the pipeline's facts say happened: a local reply or cache hit (not the
    /// upstream's answer), a reset or timeout before any answer, or an upstream error
    /// without usage refund; reported usage is charged; any other answer without usage is
    /// unreconciled.
    pub fn of(response: &ResponseFacts) -> Outcome {
        if response.answered_by != Answerer::Upstream {
            return Outcome::Refund;
        }
        match response.usage {
            Some(usage) => Outcome::Usage(usage),
            None if response.ttfb_ms.is_none() || response.status == 0 => Outcome::Refund,
            None if response.status >= 400 => Outcome::Refund,
            None => Outcome::Unreconciled,
        }
    }
}

/// What a settlement moved, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Tokens reserved.
    pub reserved: BilledTokens,
    /// Tokens charged in the end, by billed category.
    pub charged: BilledTokens,
    /// Micro-USD reserved.
    pub reserved_usd: u64,
    /// Micro-USD charged.
    pub charged_usd: u64,
    /// Tokens charged above the reservation.
    pub overshoot: u64,
    /// Accounts whose slot was taken over before the settlement (their change was dropped).
    pub dropped: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The section as configured.
    pub config: BudgetConfig,
    /// The policies.
    pub policies: Vec<Policy>,
    prices: PriceTable,
    dearest: PicoPrices,
}

fn err(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        reason: reason.into(),
    }
}

impl Budget {
    /// Validates the section; every error names its field.
    pub fn new(config: &BudgetConfig) -> Result<Self, ConfigError> {
        if config.input_bytes_per_token == 0 {
            return Err(err("input_bytes_per_token", "must be at least 1"));
        }
        if config.slots == 0 {
            return Err(err("slots", "must be at least 1"));
        }
        let mut policies = Vec::new();
        for (p, policy) in config.policies.iter().enumerate() {
            let at = format!("policies[{p}]");
            if policy.name.is_empty() {
                return Err(err(format!("{at}.name"), "must not be empty"));
            }
            if config.policies[..p].iter().any(|o| o.name == policy.name) {
                return Err(err(
                    format!("{at}.name"),
                    format!("policy {:?} is defined twice", policy.name),
                ));
            }
            if policy.key.is_empty() && !policy.anonymous {
                return Err(err(
                    format!("{at}.key"),
                    "needs at least one part (e.g. jwt.sub), or anonymous: true for one shared budget",
                ));
            }
            let mut key = Vec::new();
            for (k, part) in policy.key.iter().enumerate() {
                key.push(KeyPart::parse(part).ok_or_else(|| {
                    err(
                        format!("{at}.key[{k}]"),
                        format!("unknown descriptor value {part:?}: expected jwt.<claim>, header.<name>, client, source.address or model"),
                    )
                })?);
            }
            if policy.buckets.is_empty() {
                return Err(err(format!("{at}.buckets"), "needs at least one bucket"));
            }
            if policy.buckets.len() > 32 {
                return Err(err(format!("{at}.buckets"), "at most 32 buckets"));
            }
            for (b, bucket) in policy.buckets.iter().enumerate() {
                let at = format!("{at}.buckets[{b}]");
                if bucket.max_tokens == 0 || bucket.max_tokens > i64::MAX as u64 {
                    return Err(err(format!("{at}.max_tokens"), "must be from 1 to 2^63-1"));
                }
                if bucket.tokens_per_fill == 0 {
                    return Err(err(format!("{at}.tokens_per_fill"), "must be at least 1"));
                }
                if bucket.fill_interval_ms == 0 {
                    return Err(err(format!("{at}.fill_interval_ms"), "must be at least 1"));
                }
                if bucket.unit == BudgetUnit::MicroUsd && config.prices.is_empty() {
                    return Err(err(format!("{at}.unit"), "a micro_usd bucket needs prices"));
                }
            }
            policies.push(Policy {
                name: policy.name.clone(),
                label: policy.name.replace('.', "_"),
                routes: policy.routes.clone(),
                key,
                anonymous: policy.anonymous,
                buckets: policy.buckets.clone(),
            });
        }
        let prices = PriceTable::of_models(&config.prices).map_err(|e| match e {
            PriceError::Duplicate { index, model, .. } => err(
                format!("prices[{index}].model"),
                format!("model {model:?} is priced twice"),
            ),
            other => err("prices", other.to_string()),
        })?;
        Ok(Self {
            config: config.clone(),
            dearest: cost::dearest(&prices),
            prices,
            policies,
        })
    }

    /// The policies a request on `route` (Envoy's route name) pays into.
    pub fn applicable(&self, route: Option<&str>) -> Vec<usize> {
        let http_route = route.map(|r| r.split('/').next().unwrap_or(r));
        self.policies
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.routes.is_empty() || http_route.is_some_and(|r| p.routes.iter().any(|x| x == r))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The accounts of the request under `policies`, reading each key part with `lookup`.
    pub fn accounts(
        &self,
        policies: &[usize],
        lookup: impl Fn(&KeyPart) -> Option<String>,
    ) -> Result<Vec<Account>, MissingIdentity> {
        let mut accounts = Vec::with_capacity(policies.len());
        for &p in policies {
            let Some(policy) = self.policies.get(p) else {
                continue;
            };
            let mut name = policy.name.as_bytes().to_vec();
            let mut parts = Vec::with_capacity(policy.key.len());
            let mut missing = None;
            for part in &policy.key {
                match lookup(part).filter(|v| !v.is_empty()) {
                    Some(v) => parts.push(v),
                    None => {
                        missing = Some(part);
                        break;
                    }
                }
            }
            match missing {
                None if !policy.key.is_empty() => {
                    for v in parts {
                        name.push(0x1f);
                        name.extend_from_slice(v.as_bytes());
                    }
                }
                Some(_) | None if policy.anonymous => {
                    name.push(0x1f);
                    name.extend_from_slice(ANONYMOUS.as_bytes());
                }
                Some(part) => {
                    return Err(MissingIdentity {
                        policy: policy.name.clone(),
                        part: part.describe(),
                    })
                }
                None => {}
            }
            // Shared data values are capped; a huge header value must not make a huge key.
            name.truncate(1024);
            accounts.push(Account { policy: p, name });
        }
        Ok(accounts)
    }

    /// Input estimate and wanted output of a request.
    pub fn estimate(&self, body_bytes: usize, max_output: Option<u64>) -> (u64, u64) {
        let input = (body_bytes as u64).div_ceil(u64::from(self.config.input_bytes_per_token));
        let output = max_output.unwrap_or(self.config.default_output_tokens);
        (input, output)
    }

    /// The price a request for `model` is reserved at: the model's (core's lookup, dated
    /// snapshots included), else the dearest of the table.
    pub fn price_of(&self, model: Option<&str>) -> PicoPrices {
        model
            .and_then(|m| self.prices.price_of_model(m))
            .unwrap_or(self.dearest)
    }

    /// The price real usage is charged at: the serving model's, else the reservation's.
    pub fn charge_price(
        &self,
        serving_model: Option<&str>,
        reservation: &Reservation,
    ) -> PicoPrices {
        serving_model
            .and_then(|m| self.prices.price_of_model(m))
            .unwrap_or(reservation.price)
    }

    /// Reserves input + output in every bucket of every account, the output clamped to what
    /// they can all pay for. Accounts are updated one after the other (each atomically); a
    /// later refusal gives back what the earlier ones took.
    pub fn reserve<S: SharedStore + ?Sized>(
        &self,
        store: &S,
        accounts: &[Account],
        model: Option<&str>,
        body_bytes: usize,
        max_output: Option<u64>,
        now: u64,
    ) -> Reserve {
        let ledger = Ledger::new(store, self.config.slots);
        let (input, want) = self.estimate(body_bytes, max_output);
        let min = self.config.min_output_tokens;
        let price = self.price_of(model);
        let mut granted = want;
        let mut holds: Vec<Hold> = Vec::with_capacity(accounts.len());
        let mut headers: Option<RateHeaders> = None;
        for (i, account) in accounts.iter().enumerate() {
            let Some(policy) = self.policies.get(account.policy) else {
                continue;
            };
            let limits = &policy.buckets;
            let result = ledger.update(&account.name, limits, now, |buckets| {
                let mut g = granted;
                let mut refused = None;
                for (k, (state, limit)) in buckets.iter().zip(limits).enumerate() {
                    match fit(limit.unit, state.level, input, &price, g, min) {
                        Some(out) => g = out,
                        None => {
                            refused = Some(k);
                            break;
                        }
                    }
                }
                if let Some(k) = refused {
                    return (
                        Err(refusal(
                            policy,
                            buckets,
                            input,
                            min.min(want),
                            &price,
                            k,
                            now,
                        )),
                        false,
                    );
                }
                let tokens = BilledTokens {
                    input,
                    output: g,
                    ..BilledTokens::default()
                };
                let mut amounts = Vec::with_capacity(limits.len());
                let mut tight = None;
                for (state, limit) in buckets.iter_mut().zip(limits) {
                    let a = amount(limit.unit, &tokens, &price);
                    state.take(a);
                    amounts.push(a);
                    if limit.unit == BudgetUnit::Tokens {
                        tight =
                            RateHeaders::tighter(tight, Some(RateHeaders::of(state, limit, now)));
                    }
                }
                (Ok((g, amounts, tight)), true)
            });
            match result {
                Err(e) => {
                    self.release(store, accounts, &holds, now);
                    return Reserve::Unavailable(e);
                }
                Ok((Err(refused), _)) => {
                    self.release(store, accounts, &holds, now);
                    return Reserve::Refused(refused);
                }
                Ok((Ok((g, amounts, tight)), handle)) => {
                    if g < granted {
                        // A later account clamps harder: the earlier ones give the difference back.
                        let smaller = BilledTokens {
                            input,
                            output: g,
                            ..BilledTokens::default()
                        };
                        for hold in &mut holds {
                            let Some(acc) = accounts.get(hold.account) else {
                                continue;
                            };
                            let Some(pol) = self.policies.get(acc.policy) else {
                                continue;
                            };
                            let new: Vec<i64> = pol
                                .buckets
                                .iter()
                                .map(|l| amount(l.unit, &smaller, &price))
                                .collect();
                            let back: Vec<i64> =
                                hold.amounts.iter().zip(&new).map(|(o, n)| o - n).collect();
                            let _ =
                                ledger.update_at(hold.handle, &acc.name, &pol.buckets, now, |b| {
                                    for ((s, l), d) in b.iter_mut().zip(&pol.buckets).zip(&back) {
                                        s.give(l, *d);
                                    }
                                });
                            hold.amounts = new;
                        }
                        granted = g;
                    }
                    headers = RateHeaders::tighter(headers, tight);
                    holds.push(Hold {
                        account: i,
                        handle,
                        amounts,
                    });
                }
            }
        }
        Reserve::Admitted(Reservation {
            holds,
            estimate: BilledTokens {
                input,
                output: granted,
                ..BilledTokens::default()
            },
            price,
            headers,
            global_id: None,
        })
    }

    /// Gives back everything `holds` took.
    fn release<S: SharedStore + ?Sized>(
        &self,
        store: &S,
        accounts: &[Account],
        holds: &[Hold],
        now: u64,
    ) -> usize {
        let ledger = Ledger::new(store, self.config.slots);
        let mut dropped = 0;
        for hold in holds {
            let Some(acc) = accounts.get(hold.account) else {
                continue;
            };
            let Some(pol) = self.policies.get(acc.policy) else {
                continue;
            };
            let done = ledger.update_at(hold.handle, &acc.name, &pol.buckets, now, |b| {
                for ((s, l), a) in b.iter_mut().zip(&pol.buckets).zip(&hold.amounts) {
                    s.give(l, *a);
                }
            });
            if !matches!(done, Ok(Some(()))) {
                dropped += 1;
            }
        }
        dropped
    }

    /// Reconciles a reservation: refund, charge the real usage (priced at the serving
    /// model's price when known), or leave it charged.
    pub fn settle<S: SharedStore + ?Sized>(
        &self,
        store: &S,
        accounts: &[Account],
        reservation: &Reservation,
        outcome: Outcome,
        serving_model: Option<&str>,
        now: u64,
    ) -> Settlement {
        let reserved = reservation.estimate;
        let mut s = Settlement {
            reserved,
            reserved_usd: cost::micro_usd(&reserved, &reservation.price),
            ..Settlement::default()
        };
        match outcome {
            Outcome::Refund => {
                s.dropped = self.release(store, accounts, &reservation.holds, now);
            }
            Outcome::Unreconciled => {
                s.charged = reserved;
                s.charged_usd = s.reserved_usd;
            }
            Outcome::Usage(usage) => {
                let actual = BilledTokens::from_usage(&usage);
                let price = self.charge_price(serving_model, reservation);
                s.charged = actual;
                s.charged_usd = cost::micro_usd(&actual, &price);
                s.overshoot = actual.total().saturating_sub(reserved.total());
                let ledger = Ledger::new(store, self.config.slots);
                for hold in &reservation.holds {
                    let Some(acc) = accounts.get(hold.account) else {
                        continue;
                    };
                    let Some(pol) = self.policies.get(acc.policy) else {
                        continue;
                    };
                    let done = ledger.update_at(hold.handle, &acc.name, &pol.buckets, now, |b| {
                        for ((st, l), held) in b.iter_mut().zip(&pol.buckets).zip(&hold.amounts) {
                            let real = amount(l.unit, &actual, &price);
                            if real <= *held {
                                st.give(l, held - real);
                            } else {
                                st.take(real - held);
                            }
                        }
                    });
                    if !matches!(done, Ok(Some(()))) {
                        s.dropped += 1;
                    }
                }
            }
        }
        s
    }
}

fn refusal(
    policy: &Policy,
    buckets: &[BucketState],
    input: u64,
    min_output: u64,
    price: &PicoPrices,
    refused: usize,
    now: u64,
) -> Refusal {
    let least = BilledTokens {
        input,
        output: min_output,
        ..BilledTokens::default()
    };
    let mut retry: Option<u64> = Some(0);
    let mut headers = None;
    for (state, limit) in buckets.iter().zip(&policy.buckets) {
        let need = amount(limit.unit, &least, price);
        retry = match (retry, state.ms_until(limit, need, now)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        if limit.unit == BudgetUnit::Tokens {
            headers = RateHeaders::tighter(headers, Some(RateHeaders::of(state, limit, now)));
        }
    }
    let (state, limit) = (buckets[refused], policy.buckets[refused]);
    Refusal {
        policy: policy.name.clone(),
        label: policy.label.clone(),
        limit,
        needed: amount(limit.unit, &least, price),
        available: state.level,
        retry_after_ms: retry,
        headers,
    }
}

fn unit_word(unit: BudgetUnit) -> &'static str {
    match unit {
        BudgetUnit::Tokens => "tokens",
        BudgetUnit::Requests => "requests",
        BudgetUnit::MicroUsd => "micro_usd",
    }
}

/// The metric reason of a refusal.
pub fn refusal_reason(refusal: &Refusal) -> &'static str {
    unit_word(refusal.limit.unit)
}

fn error_body(message: String, kind: &str, code: &str) -> Vec<u8> {
    OpenAiErrorBody {
        error: OpenAiError {
            message,
            kind: kind.into(),
            param: None,
            code: Some(code.into()),
        },
    }
    .to_bytes()
}

/// The 429 for a refusal, OpenAI style: `Retry-After` (whole seconds, rounded up) when the
/// request will fit again, and the rate-limit headers.
pub fn refusal_reply(refusal: &Refusal) -> LocalReply {
    let unit = unit_word(refusal.limit.unit);
    let per = format_duration(refusal.limit.fill_interval_ms);
    let when = match refusal.retry_after_ms {
        Some(ms) => format!("Please try again in {}.", format_duration(ms)),
        None => "The request is larger than the limit and cannot be served.".into(),
    };
    let message = format!(
        "Rate limit reached for {unit} per {per} (budget {}): Limit {}, Remaining {}, Requested {}. {when}",
        refusal.policy,
        refusal.limit.max_tokens,
        refusal.available.max(0),
        refusal.needed,
    );
    let mut reply = LocalReply::json(429, error_body(message, unit, "rate_limit_exceeded"));
    if let Some(ms) = refusal.retry_after_ms {
        reply.headers.push((
            names::RETRY_AFTER.into(),
            ms.div_ceil(1000).max(1).to_string(),
        ));
    }
    if let Some(h) = refusal.headers {
        reply
            .headers
            .extend(h.pairs().into_iter().map(|(n, v)| (n.to_string(), v)));
    }
    reply
}

/// The 401 for a request without the identity its budget keys on.
pub fn missing_identity_reply(missing: &MissingIdentity) -> LocalReply {
    let message = format!(
        "The token budget {} of this route is kept per caller ({}), and the request does not say who is calling.",
        missing.policy, missing.part
    );
    LocalReply::json(
        401,
        error_body(message, "authentication_error", "missing_identity"),
    )
}

/// The 503 when the budget store cannot answer and the policy fails closed.
pub fn unavailable_reply(reason: &str) -> LocalReply {
    let message = format!("The token budget could not be checked ({reason}); try again shortly.");
    let mut reply = LocalReply::json(
        503,
        error_body(message, "server_error", "budget_unavailable"),
    );
    reply.headers.push((names::RETRY_AFTER.into(), "1".into()));
    reply
}

#[cfg(test)]
mod tests;
