//! The semantic cache's glue, called by the cache stage: after the exact-key lookup misses, a
//! callout to the semantic-cache service (`services/semantic-cache/PROTOCOL.md`); a hit answers
//! locally, anything else lets the request go on (fail open: the lookup waits at most the
//! policy's `timeout_ms`, and a counter counts the failures). After a complete 200 from the
//! provider, the answer goes to the service to store, fire and forget.
//!
//! The store leaves from `on_done` (Envoy's `on_log`), the first moment the answer is known to
//! be complete. Envoy 1.40 does not cancel a call a stream makes there when it destroys the
//! stream right after: the call completes, even when the service takes a second (measured:
//! `docs/envoy-facts.md`, "HTTP calls from on_log"). Its answer then comes back for a stream
//! that is gone and the SDK drops it; nothing waits for it.

use crate::host::{self, MetricType};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use tollgate_cache::semantic::{self, Identity, Lookup, Query, Skip};
use tollgate_core::config::cache::SemanticCachePolicy;
use tollgate_core::config::CacheConfig;
use tollgate_core::facts::{Headers, RequestFacts, ResponseFacts};
use tollgate_core::names::semantic_cache as names;
use tollgate_core::stage::Step;

thread_local! {
    /// Hits answered by this VM (part of their fresh completion ids).
    static HITS: Cell<u64> = const { Cell::new(0) };
}

/// Counter ids (`None`: the host refused to define it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    lookups: Option<u32>,
    hits: Option<u32>,
    stores: Option<u32>,
    failures: Option<u32>,
    bypasses: Option<u32>,
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        host::increment_metric(id, 1);
    }
}

/// Per-VM state of the semantic cache: the policies and the counters.
#[derive(Debug, Clone)]
pub struct SemanticRoot {
    counters: Counters,
    /// The policy of LLM routes `routes` does not list.
    default: Option<Rc<SemanticCachePolicy>>,
    /// Every route the cache section lists, with its policy (`None`: no semantic cache).
    routes: BTreeMap<String, Option<Rc<SemanticCachePolicy>>>,
}

impl SemanticRoot {
    /// From the cache section (in the root context's `on_configure`): `None` when no route has
    /// a semantic cache; an error names the bad field.
    pub fn new(config: &CacheConfig) -> Result<Option<Self>, String> {
        if let Some(policy) = &config.semantic {
            semantic::validate(policy)?;
        }
        let mut routes = BTreeMap::new();
        for (route, policies) in &config.routes {
            if let Some(policy) = &policies.semantic {
                semantic::validate(policy).map_err(|e| format!("routes.{route}.{e}"))?;
            }
            routes.insert(route.clone(), policies.semantic.clone().map(Rc::new));
        }
        if config.semantic.is_none() && routes.values().all(Option::is_none) {
            return Ok(None);
        }
        let counter = |name| host::define_metric(MetricType::Counter, name);
        Ok(Some(Self {
            counters: Counters {
                lookups: counter(names::LOOKUPS),
                hits: counter(names::HITS),
                stores: counter(names::STORES),
                failures: counter(names::FAILURES),
                bypasses: counter(names::BYPASSES),
            },
            default: config.semantic.clone().map(Rc::new),
            routes,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing asked yet.
    Idle,
    /// The lookup call is out.
    Looking,
    /// The lookup missed (or `no-cache`): keep the answer to store it.
    Collecting,
    /// Nothing more to do for this request.
    Done,
}

/// Whether a `Cache-Control` value holds a directive.
fn has_directive(value: &str, directive: &str) -> bool {
    value
        .split(',')
        .any(|d| d.trim().eq_ignore_ascii_case(directive))
}

/// One request's part of the semantic cache.
#[derive(Debug)]
pub struct SemanticRequest {
    policy: Option<Rc<SemanticCachePolicy>>,
    counters: Counters,
    state: State,
    authorization: Option<String>,
    no_cache: bool,
    no_store: bool,
    query: Option<Query>,
    content_type: Option<String>,
    body: Vec<u8>,
    too_big: bool,
}

impl SemanticRequest {
    /// The request's part on a route (Envoy's route name; `None` root: no semantic cache).
    pub fn for_route(root: Option<&SemanticRoot>, route: Option<&str>) -> Self {
        let httproute = route.map(|r| r.split('/').next().unwrap_or(r));
        // A listed route has its own policy (or none); an unlisted one the default.
        let policy = root.and_then(|root| match httproute.and_then(|r| root.routes.get(r)) {
            Some(listed) => listed.clone(),
            None => root.default.clone(),
        });
        Self {
            policy,
            counters: root.map(|r| r.counters).unwrap_or_default(),
            state: State::Idle,
            authorization: None,
            no_cache: false,
            no_store: false,
            query: None,
            content_type: None,
            body: Vec::new(),
            too_big: false,
        }
    }

    /// Whether the route has a semantic cache (the request body is then needed).
    pub fn enabled(&self) -> bool {
        self.policy.is_some()
    }

    /// Request headers: the caller's credentials (hashed into the scope, never sent) and the
    /// client's `Cache-Control`.
    pub fn on_request_headers(&mut self, headers: &Headers) {
        if self.policy.is_none() {
            return;
        }
        self.authorization = headers.text("authorization").map(str::to_string);
        if let Some(value) = headers.text("cache-control") {
            self.no_cache = has_directive(value, "no-cache");
            self.no_store = has_directive(value, "no-store");
        }
    }

    /// After the exact-key lookup missed (or found nothing to look up): the lookup callout,
    /// or Continue when this request is not looked up.
    pub fn lookup(&mut self, facts: &RequestFacts, body: &[u8]) -> Step {
        let Some(policy) = &self.policy else {
            return Step::Continue;
        };
        if self.state != State::Idle {
            return Step::Continue;
        }
        let identity = Identity {
            authorization: self.authorization.as_deref(),
            jwt_subject: facts.caller.jwt_subject.as_deref(),
            client_key: facts.caller.client_key.as_deref(),
        };
        let query = match semantic::query(facts, &identity, body) {
            Ok(query) => query,
            Err(skip) => {
                self.bypass(skip);
                return Step::Continue;
            }
        };
        if self.no_cache {
            // The client wants a fresh answer: no lookup, but the fresh answer may be stored.
            increment(self.counters.bypasses);
            self.query = Some(query);
            self.state = State::Collecting;
            return Step::Continue;
        }
        let callout = semantic::lookup_callout(policy, &query);
        self.query = Some(query);
        self.state = State::Looking;
        Step::Callout(callout)
    }

    fn bypass(&mut self, skip: Skip) {
        log::debug!("tollgate: semantic cache bypassed: {}", skip.as_str());
        increment(self.counters.bypasses);
        self.state = State::Done;
    }

    /// The lookup's answer (`status` 0: failed or timed out): a hit answers, else Continue.
    pub fn on_callout_response(&mut self, status: u16, body: &[u8]) -> Step {
        if self.state != State::Looking {
            return Step::Continue;
        }
        match semantic::read_lookup(status, body) {
            Lookup::Hit {
                answer,
                similarity,
                age_s,
            } => {
                increment(self.counters.lookups);
                increment(self.counters.hits);
                self.state = State::Done;
                let now = host::now_ms();
                let n = HITS.with(|h| {
                    h.set(h.get().wrapping_add(1));
                    h.get()
                });
                let id = self
                    .query
                    .as_ref()
                    .map_or_else(String::new, |q| semantic::fresh_id(q, now, n));
                Step::Respond(semantic::hit_reply(answer, similarity, age_s, &id, now))
            }
            Lookup::Miss => {
                increment(self.counters.lookups);
                self.state = State::Collecting;
                Step::Continue
            }
            Lookup::Failed(failure) => {
                log::warn!(
                    "tollgate: semantic cache lookup failed ({failure:?}); going on without it"
                );
                increment(self.counters.failures);
                self.state = State::Done;
                Step::Continue
            }
        }
    }

    /// Whether the answer's body is needed (a miss whose answer may be stored).
    pub fn wants_response_body(&self) -> bool {
        self.state == State::Collecting && !self.no_store && !self.too_big
    }

    /// Response headers: the content type to store with the answer.
    pub fn on_response_headers(&mut self, response: &ResponseFacts) {
        if !self.wants_response_body() {
            return;
        }
        if response.status != 200 {
            self.state = State::Done;
            return;
        }
        self.content_type =
            host::response_header("content-type").and_then(|v| String::from_utf8(v).ok());
    }

    /// A chunk of the answer (JSON: the whole body once).
    pub fn on_response_body(&mut self, chunk: &[u8]) {
        if !self.wants_response_body() {
            return;
        }
        let limit = self.policy.as_ref().map_or(0, |p| {
            usize::try_from(p.max_entry_bytes).unwrap_or(usize::MAX)
        });
        if self.body.len().saturating_add(chunk.len()) > limit {
            self.too_big = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// The stream is over: a complete 200 from the provider after a miss is sent to store,
    /// fire and forget.
    pub fn on_done(&mut self, response: &ResponseFacts) {
        if !self.wants_response_body() {
            return;
        }
        self.state = State::Done;
        let (Some(policy), Some(query)) = (&self.policy, &self.query) else {
            return;
        };
        let Some(answer) =
            semantic::storable(policy, response, self.content_type.as_deref(), &self.body)
        else {
            return;
        };
        let callout = semantic::store_callout(policy, query, &answer);
        match host::dispatch_callout(&callout) {
            Ok(_) => increment(self.counters.stores),
            Err(status) => log::warn!("tollgate: semantic cache store not sent: {status:?}"),
        }
    }
}
