//! The budget stage's glue: reads who is calling from the host, carries out the decisions of
//! `tollgate-budget` (reserve before the request leaves, reconcile when it is done) over
//! proxy-wasm shared data, and counts.

use super::Stage;
use crate::host::{self, MetricType, ProxyStore};
use std::rc::Rc;
use tollgate_budget::body::cap_output;
use tollgate_budget::global::{ReserveRequest, RESERVE_PATH};
use tollgate_budget::ledger::Ledger;
use tollgate_budget::{
    missing_identity_reply, refusal_reason, refusal_reply, unavailable_reply, Account, Budget,
    KeyPart, Outcome, RateHeaders, Reservation, Reserve,
};
use tollgate_core::config::BudgetConfig;
use tollgate_core::facts::{RequestFacts, ResponseFacts};
use tollgate_core::names::{budget as names, host_property};
use tollgate_core::stage::Step;

/// Counter ids of one policy (`None`: the host refused to define it).
#[derive(Debug, Default, Clone)]
struct PolicyMetrics {
    admitted: Option<u32>,
    rejected_tokens: Option<u32>,
    rejected_requests: Option<u32>,
    rejected_usd: Option<u32>,
    rejected_identity: Option<u32>,
    rejected_store: Option<u32>,
    fail_open: Option<u32>,
    tokens_reserved: Option<u32>,
    tokens_charged: Option<u32>,
    tokens_refunded: Option<u32>,
    charged_input: Option<u32>,
    charged_output: Option<u32>,
    charged_cached: Option<u32>,
    usd_reserved: Option<u32>,
    usd_charged: Option<u32>,
    usd_refunded: Option<u32>,
    overshoot: Option<u32>,
    unreconciled: Option<u32>,
}

impl PolicyMetrics {
    fn define(label: &str) -> Self {
        let c = |name: String| host::define_metric(MetricType::Counter, &name);
        let requests = |result: &str, reason: &str| {
            c(format!(
                "{}.policy.{label}.result.{result}.reason.{reason}",
                names::REQUESTS
            ))
        };
        let tokens = |result: &str| c(format!("{}.policy.{label}.result.{result}", names::TOKENS));
        let usd = |result: &str| {
            c(format!(
                "{}.policy.{label}.result.{result}",
                names::MICRO_USD
            ))
        };
        let charged = |direction: &str| {
            c(format!(
                "{}.direction.{direction}.policy.{label}",
                names::CHARGED_TOKENS
            ))
        };
        Self {
            admitted: requests("admitted", "none"),
            rejected_tokens: requests("rejected", "tokens"),
            rejected_requests: requests("rejected", "requests"),
            rejected_usd: requests("rejected", "micro_usd"),
            rejected_identity: requests("rejected", "no_identity"),
            rejected_store: requests("rejected", "store"),
            fail_open: requests("fail_open", "store"),
            tokens_reserved: tokens("reserved"),
            tokens_charged: tokens("charged"),
            tokens_refunded: tokens("refunded"),
            charged_input: charged("input"),
            charged_output: charged("output"),
            charged_cached: charged("cached_input"),
            usd_reserved: usd("reserved"),
            usd_charged: usd("charged"),
            usd_refunded: usd("refunded"),
            overshoot: c(format!("{}.policy.{label}", names::OVERSHOOT)),
            unreconciled: c(format!("{}.policy.{label}", names::UNRECONCILED)),
        }
    }
}

fn add(id: Option<u32>, delta: u64) {
    if let (Some(id), Ok(delta)) = (id, i64::try_from(delta)) {
        if delta > 0 {
            host::increment_metric(id, delta);
        }
    }
}

/// Per-VM state of the budget stage.
pub struct BudgetRoot {
    budget: Budget,
    metrics: Vec<PolicyMetrics>,
    store_errors: Option<u32>,
}

impl BudgetRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    /// Creates the ledger's shared-data slots (before any request: key creation is not
    /// protected by CAS) and defines every metric once.
    pub fn new(config: &BudgetConfig) -> Result<Self, String> {
        let budget = Budget::new(config).map_err(|e| e.to_string())?;
        // The global tier keeps no state here.
        if config.global.is_none() {
            Ledger::new(&ProxyStore, config.slots)
                .prepare()
                .map_err(|e| format!("budget: shared data: {e}"))?;
        }
        let metrics = budget
            .policies
            .iter()
            .map(|p| PolicyMetrics::define(&p.label))
            .collect();
        Ok(Self {
            budget,
            metrics,
            store_errors: host::define_metric(MetricType::Counter, names::STORE_ERRORS),
        })
    }

    fn count(&self, accounts: &[Account], pick: impl Fn(&PolicyMetrics) -> Option<u32>, n: u64) {
        for account in accounts {
            if let Some(m) = self.metrics.get(account.policy) {
                add(pick(m), n);
            }
        }
    }
}

/// Per-request state of the budget stage.
pub struct BudgetStage {
    root: Rc<BudgetRoot>,
    /// The policies this request pays into.
    policies: Vec<usize>,
    /// Key parts read in the headers phase (headers and claims are not readable later).
    values: Vec<(KeyPart, Option<String>)>,
    accounts: Vec<Account>,
    reservation: Option<Reservation>,
    headers: Option<RateHeaders>,
    /// Global tier: the reservation asked of the service, while its answer is awaited.
    asked: Option<ReserveRequest>,
    /// Global tier: the output cap to write once the service granted it.
    cap: Option<u64>,
}

impl BudgetStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<BudgetRoot>) -> Self {
        Self {
            root: Rc::clone(root),
            policies: Vec::new(),
            values: Vec::new(),
            accounts: Vec::new(),
            reservation: None,
            headers: None,
            asked: None,
            cap: None,
        }
    }

    fn read(part: &KeyPart, facts: &RequestFacts) -> Option<String> {
        match part {
            KeyPart::Jwt(claim) if claim == "sub" => facts.caller.jwt_subject.clone(),
            KeyPart::Jwt(claim) => {
                let mut path = host_property::JWT_PAYLOAD.to_vec();
                path.push(claim);
                host::property_text(&path)
            }
            KeyPart::Header(name) => facts.headers.text(name).map(str::to_string),
            KeyPart::Client => facts.caller.client_key.clone(),
            KeyPart::Address => facts.caller.address.clone(),
            KeyPart::Model => facts.model.clone(),
        }
    }

    fn lookup(&self, part: &KeyPart, facts: &RequestFacts) -> Option<String> {
        if *part == KeyPart::Model {
            return facts.model.clone();
        }
        self.values
            .iter()
            .find(|(p, _)| p == part)
            .and_then(|(_, v)| v.clone())
    }
}

impl BudgetStage {
    /// Carries out a reservation's answer: admitted (counted; the cap to write is kept in
    /// `self.cap`), refused (429) or unavailable (the fail mode).
    fn decided(&mut self, reserved: Reserve, facts: &RequestFacts) -> Step {
        let root = Rc::clone(&self.root);
        let accounts = &self.accounts;
        match reserved {
            Reserve::Admitted(reservation) => {
                let granted = reservation.estimate.output;
                root.count(accounts, |m| m.admitted, 1);
                root.count(
                    accounts,
                    |m| m.tokens_reserved,
                    reservation.estimate.total(),
                );
                let usd =
                    tollgate_budget::cost::micro_usd(&reservation.estimate, &reservation.price);
                root.count(accounts, |m| m.usd_reserved, usd);
                if facts.max_output_tokens.is_none_or(|asked| asked > granted) {
                    self.cap = Some(granted);
                }
                self.headers = reservation.headers;
                self.reservation = Some(reservation);
                Step::Continue
            }
            Reserve::Refused(refusal) => {
                if let Some(p) = root
                    .budget
                    .policies
                    .iter()
                    .position(|p| p.name == refusal.policy)
                {
                    let m = &root.metrics[p];
                    let id = match refusal_reason(&refusal) {
                        "requests" => m.rejected_requests,
                        "micro_usd" => m.rejected_usd,
                        _ => m.rejected_tokens,
                    };
                    add(id, 1);
                }
                self.headers = refusal.headers;
                Step::Respond(refusal_reply(&refusal))
            }
            Reserve::Unavailable(error) => {
                log::warn!("tollgate budget: {error}");
                self.store_failed()
            }
        }
    }

    /// The store (shared data or the budget service) could not answer: counted; the request
    /// goes on unmetered when the global tier fails open, else a 503.
    fn store_failed(&mut self) -> Step {
        let root = Rc::clone(&self.root);
        add(root.store_errors, 1);
        if root
            .budget
            .config
            .global
            .as_ref()
            .is_some_and(|g| g.fail_open)
        {
            root.count(&self.accounts, |m| m.fail_open, 1);
            return Step::Continue;
        }
        root.count(&self.accounts, |m| m.rejected_store, 1);
        Step::Respond(unavailable_reply("the budget store did not answer"))
    }
}

impl Stage for BudgetStage {
    fn on_request_headers(&mut self, facts: &RequestFacts) -> Step {
        let root = Rc::clone(&self.root);
        self.policies = root.budget.applicable(facts.route.as_deref());
        for &p in &self.policies {
            for part in &root.budget.policies[p].key {
                if *part != KeyPart::Model && !self.values.iter().any(|(q, _)| q == part) {
                    self.values.push((part.clone(), Self::read(part, facts)));
                }
            }
        }
        // A caller without the identity is refused before its body is read; the model part
        // is only known from the body.
        let known = root.budget.accounts(&self.policies, |part| match part {
            KeyPart::Model => Some("-".into()),
            other => self.lookup(other, facts),
        });
        if let Err(missing) = known {
            if let Some(p) = root
                .budget
                .policies
                .iter()
                .position(|p| p.name == missing.policy)
            {
                add(root.metrics[p].rejected_identity, 1);
            }
            self.policies.clear();
            return Step::Respond(missing_identity_reply(&missing));
        }
        Step::Continue
    }

    fn wants_request_body(&self) -> bool {
        !self.policies.is_empty()
    }

    fn on_request_body(
        &mut self,
        facts: &RequestFacts,
        body: &mut Vec<u8>,
        changed: &mut bool,
    ) -> Step {
        if self.policies.is_empty() {
            return Step::Continue;
        }
        let root = Rc::clone(&self.root);
        let accounts = match root
            .budget
            .accounts(&self.policies, |part| self.lookup(part, facts))
        {
            Ok(accounts) => accounts,
            Err(missing) => return Step::Respond(missing_identity_reply(&missing)),
        };
        if root.budget.config.global.is_some() {
            let request = root.budget.reserve_request(
                &accounts,
                facts.model.as_deref(),
                facts.body_bytes,
                facts.max_output_tokens,
            );
            let callout = serde_json::to_vec(&request)
                .ok()
                .and_then(|b| root.budget.callout(RESERVE_PATH, b));
            self.accounts = accounts;
            return match callout {
                Some(callout) => {
                    self.asked = Some(request);
                    Step::Callout(callout)
                }
                None => self.store_failed(),
            };
        }
        let reserved = root.budget.reserve(
            &ProxyStore,
            &accounts,
            facts.model.as_deref(),
            facts.body_bytes,
            facts.max_output_tokens,
            host::now_ms(),
        );
        self.accounts = accounts;
        let step = self.decided(reserved, facts);
        if let Some(granted) = self.cap.take() {
            if let Some(capped) = cap_output(body, granted) {
                *body = capped;
                *changed = true;
            }
        }
        step
    }

    fn on_callout_response(&mut self, facts: &RequestFacts, status: u16, body: &[u8]) -> Step {
        let Some(request) = self.asked.take() else {
            return Step::Continue;
        };
        let root = Rc::clone(&self.root);
        match root
            .budget
            .reserve_answer(&self.accounts, &request, status, body)
        {
            Some(reserved) => self.decided(reserved, facts),
            None => {
                log::warn!("tollgate budget: the budget service did not answer (status {status})");
                self.store_failed()
            }
        }
    }

    fn on_callout_body(&mut self, _facts: &RequestFacts, body: &mut Vec<u8>, changed: &mut bool) {
        if let Some(granted) = self.cap.take() {
            if let Some(capped) = cap_output(body, granted) {
                *body = capped;
                *changed = true;
            }
        }
    }

    fn on_response_headers(
        &mut self,
        _facts: &RequestFacts,
        _response: &ResponseFacts,
        add: &mut Vec<(&'static str, String)>,
    ) {
        if let Some(headers) = &self.headers {
            add.extend(headers.pairs());
        }
    }

    fn wants_response_body(&self) -> bool {
        self.reservation.is_some()
    }

    fn on_done(&mut self, _facts: &RequestFacts, response: &ResponseFacts) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let root = Rc::clone(&self.root);
        let outcome = Outcome::of(response);
        if reservation.global_id.is_some() {
            let usage = match outcome {
                Outcome::Refund => None,
                Outcome::Usage(u) => Some(u),
                // Charged its reservation (and the record settled now).
                Outcome::Unreconciled => Some(tollgate_core::usage::TokenUsage {
                    input_tokens: reservation.estimate.input,
                    output_tokens: reservation.estimate.output,
                    cached_input_tokens: 0,
                    cache_write_tokens: 0,
                }),
            };
            // Sent from on_log: Envoy 1.40 completes such a call after the stream is gone
            // (docs/envoy-facts.md, "HTTP calls from on_log"); its answer is not needed.
            let callout = root
                .budget
                .settle_request(&reservation, usage, response.model.as_deref())
                .and_then(|(path, body)| root.budget.callout(path, body));
            match callout.map(|c| host::dispatch_callout(&c)) {
                Some(Ok(_)) => {}
                Some(Err(status)) => {
                    log::warn!("tollgate budget: settlement not sent: {status:?}");
                    add(root.store_errors, 1);
                }
                None => add(root.store_errors, 1),
            }
        }
        let s = root.budget.settle(
            &ProxyStore,
            &self.accounts,
            &reservation,
            outcome,
            response.model.as_deref(),
            host::now_ms(),
        );
        let accounts = &self.accounts;
        if outcome == Outcome::Refund {
            root.count(accounts, |m| m.tokens_refunded, s.reserved.total());
            root.count(accounts, |m| m.usd_refunded, s.reserved_usd);
            return;
        }
        if outcome == Outcome::Unreconciled {
            root.count(accounts, |m| m.unreconciled, 1);
        }
        root.count(accounts, |m| m.tokens_charged, s.charged.total());
        root.count(
            accounts,
            |m| m.tokens_refunded,
            s.reserved.total().saturating_sub(s.charged.total()),
        );
        root.count(
            accounts,
            |m| m.charged_input,
            s.charged.input + s.charged.cache_write,
        );
        root.count(accounts, |m| m.charged_cached, s.charged.cached_input);
        root.count(accounts, |m| m.charged_output, s.charged.output);
        root.count(accounts, |m| m.usd_charged, s.charged_usd);
        root.count(
            accounts,
            |m| m.usd_refunded,
            s.reserved_usd.saturating_sub(s.charged_usd),
        );
        root.count(accounts, |m| m.overshoot, s.overshoot);
    }
}
