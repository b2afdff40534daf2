//! The cache stage's glue: reads what the keys need from the host, carries out the decisions
//! of `tollgate-cache` (lookup before the request leaves, store after a complete answer) over
//! proxy-wasm shared data, and counts.
//!
//! Order within the stage, per request: exact-key response cache (HIT answers locally) →
//! on a miss, the semantic cache (its callout) → upstream. MCP routes: the tool-result cache.

pub mod semantic;
pub mod tools;

use super::Stage;
use crate::host::{self, MetricType, ProxyStore};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use tollgate_cache::key::CacheKey;
use tollgate_cache::policy::ClientDirectives;
use tollgate_cache::response::{Plan, RequestInput, ResponseCache};
use tollgate_cache::status;
use tollgate_cache::store::SlotSeen;
use tollgate_core::config::CacheConfig;
use tollgate_core::facts::{Answerer, RequestFacts, ResponseFacts};
use tollgate_core::names::{cache as names, header, host_property};
use tollgate_core::stage::Step;

/// Counter and gauge ids (`None`: the host refused to define it).
#[derive(Debug, Default, Clone, Copy)]
struct Metrics {
    hits: Option<u32>,
    misses: Option<u32>,
    bypasses: Option<u32>,
    stores: Option<u32>,
    evictions: Option<u32>,
    stored_bytes: Option<u32>,
    tokens_saved: Option<u32>,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name| host::define_metric(MetricType::Counter, name);
        Self {
            hits: counter(names::HITS),
            misses: counter(names::MISSES),
            bypasses: counter(names::BYPASSES),
            stores: counter(names::STORES),
            evictions: counter(names::EVICTIONS),
            stored_bytes: host::define_metric(MetricType::Gauge, names::STORED_BYTES),
            tokens_saved: counter(names::TOKENS_SAVED),
        }
    }

    fn add(id: Option<u32>, delta: u64) {
        if let (Some(id), Ok(delta)) = (id, i64::try_from(delta)) {
            if delta != 0 {
                host::increment_metric(id, delta);
            }
        }
    }
}

/// Per-VM state of the cache stage.
pub struct CacheRoot {
    /// The response cache of LLM routes `routes` does not list.
    default_response: Option<Rc<ResponseCache>>,
    /// Response caches by HTTPRoute name.
    responses: BTreeMap<String, Rc<ResponseCache>>,
    metrics: Metrics,
    /// The semantic cache, when a route has one.
    semantic: Option<semantic::SemanticRoot>,
    /// The MCP tool-result caches, when a route has one.
    tools: Option<tools::ToolsRoot>,
    /// Replies made by this VM (part of the fresh ids of replayed answers).
    replies: Cell<u64>,
}

/// The shared-data namespace of a route's response cache.
fn namespace(route: &str) -> String {
    format!("tollgate.cache/{route}/response")
}

impl CacheRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    pub fn new(config: &CacheConfig) -> Result<Self, String> {
        let default_response = match &config.response {
            Some(policy) => Some(Rc::new(
                ResponseCache::new(policy, &namespace("*")).map_err(|e| format!("response.{e}"))?,
            )),
            None => None,
        };
        let mut responses = BTreeMap::new();
        for (route, policies) in &config.routes {
            if let Some(policy) = &policies.response {
                let cache = ResponseCache::new(policy, &namespace(route))
                    .map_err(|e| format!("routes.{route}.response.{e}"))?;
                responses.insert(route.clone(), Rc::new(cache));
            }
        }
        let semantic = semantic::SemanticRoot::new(config)?;
        let tools = tools::ToolsRoot::new(config)?;
        let root = Self {
            default_response,
            responses,
            metrics: Metrics::define(),
            semantic,
            tools,
            replies: Cell::new(0),
        };
        for cache in root.default_response.iter().chain(root.responses.values()) {
            cache.store.prepare(&ProxyStore);
        }
        root.publish_stored_bytes(None);
        Ok(root)
    }

    /// The response cache of a route (Envoy's route name).
    fn response_cache(&self, route: Option<&str>) -> Option<&Rc<ResponseCache>> {
        let httproute = route.map(|r| r.split('/').next().unwrap_or(r));
        httproute
            .and_then(|r| self.responses.get(r))
            .or(self.default_response.as_ref())
    }

    /// Sets the stored-bytes gauge to what every store holds: `written`'s cache as its store
    /// just wrote its ledger (no read), every other cache's ledger read.
    fn publish_stored_bytes(&self, written: Option<(&ResponseCache, u64)>) {
        if let Some(id) = self.metrics.stored_bytes {
            let total: u64 = self
                .default_response
                .iter()
                .chain(self.responses.values())
                .map(|c| match written {
                    Some((cache, bytes)) if std::ptr::eq(cache, &**c) => bytes,
                    _ => c.store.stored_bytes(&ProxyStore),
                })
                .sum();
            host::record_metric(id, total);
        }
    }

    /// A fresh completion id for a replayed answer.
    fn fresh_id(&self, key: &CacheKey, now_ms: u64) -> String {
        let n = self.replies.get().wrapping_add(1);
        self.replies.set(n);
        let mut seed = key.hex();
        seed.push_str(&format!(":{now_ms}:{n}"));
        let hash = CacheKey::of_canonical(&seed).hex();
        format!("chatcmpl-{}", &hash[..24])
    }
}

/// What the response cache did with this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// No response cache on this route, or not a chat request.
    None,
    /// Not looked up.
    Bypass,
    /// Looked up, not found.
    Miss,
    /// Answered from the cache.
    Hit,
}

/// Per-request state of the cache stage.
pub struct CacheStage {
    root: Rc<CacheRoot>,
    response: Option<Rc<ResponseCache>>,
    /// The configured key headers that were present, and the client's directives.
    headers: BTreeMap<String, Vec<u8>>,
    directives: ClientDirectives,
    route: Option<String>,
    outcome: Outcome,
    /// Key of a miss whose answer may be stored.
    pending_store: Option<CacheKey>,
    /// What the lookup saw in the key's slot: the store replaces it without reading it again.
    seen: Option<SlotSeen>,
    /// The answer so far (only while it may be stored).
    body: Vec<u8>,
    /// Tokens the hit saved.
    saved_tokens: u64,
    stored: bool,
    /// The semantic cache's part (after an exact-key miss).
    semantic: semantic::SemanticRequest,
    /// The MCP tool-result cache's part (MCP routes).
    tools: tools::ToolRequest,
}

impl CacheStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<CacheRoot>) -> Self {
        Self {
            root: Rc::clone(root),
            response: None,
            headers: BTreeMap::new(),
            directives: ClientDirectives::default(),
            route: None,
            outcome: Outcome::None,
            pending_store: None,
            seen: None,
            body: Vec::new(),
            saved_tokens: 0,
            stored: false,
            semantic: semantic::SemanticRequest::for_route(None, None),
            tools: tools::ToolRequest::for_route(None, None, ""),
        }
    }

    fn collecting(&self) -> bool {
        self.pending_store.is_some() && !self.stored
    }

    /// Whether the answer's observer must read how its choices ended
    /// ([`ResponseFacts::finishes`]): the answer may be stored (asked after the response
    /// headers).
    pub fn wants_finishes(&self) -> bool {
        self.collecting()
    }

    /// Stores the collected answer when it may be.
    fn store(&mut self, facts: &RequestFacts, response: &ResponseFacts, complete: bool) {
        let (Some(key), Some(cache)) = (self.pending_store.take(), self.response.as_ref()) else {
            return;
        };
        let body = std::mem::take(&mut self.body);
        if response.answered_by != Answerer::Upstream
            || body.is_empty()
            || !cache.storable(
                response.status,
                complete,
                facts.stream,
                response.finishes.as_ref(),
            )
        {
            return;
        }
        let now = host::now_ms();
        let mut entry = cache.entry(
            key,
            now,
            facts.stream,
            response.usage,
            response.model.clone(),
            body,
        );
        entry.provider.clone_from(&response.provider);
        let outcome = cache
            .store
            .store_seen(&ProxyStore, &entry, now, self.seen.take());
        self.stored = outcome.stored;
        let metrics = self.root.metrics;
        Metrics::add(metrics.evictions, u64::from(outcome.evicted));
        if outcome.stored {
            Metrics::add(metrics.stores, 1);
        } else if let Some(refusal) = outcome.refused {
            log::debug!("tollgate: cache store refused: {refusal:?}");
        }
        // Every change of a ledger is published by the store that made it: one that left
        // its ledger alone (a same-size replacement, a refusal) has nothing new to say.
        if let Some(bytes) = outcome.ledger {
            self.root.publish_stored_bytes(Some((cache, bytes)));
        }
    }
}

impl Stage for CacheStage {
    fn on_request_headers(&mut self, facts: &RequestFacts) -> Step {
        if facts.method != "POST" {
            return Step::Continue;
        }
        self.route = facts
            .route
            .clone()
            .or_else(|| host::property_text(&host_property::ROUTE_NAME));
        self.tools = tools::ToolRequest::for_route(
            self.root.tools.as_ref(),
            self.route.as_deref(),
            &facts.method,
        );
        self.tools.on_request_headers(&facts.headers);
        if self.tools.enabled() {
            return Step::Continue; // an MCP route: no response or semantic cache
        }
        self.response = self.root.response_cache(self.route.as_deref()).cloned();
        if let Some(cache) = &self.response {
            for name in cache.header_names() {
                if let Some(value) = facts.headers.get(name) {
                    self.headers.insert(name.clone(), value.to_vec());
                }
            }
            self.directives = ClientDirectives::parse(facts.headers.get("cache-control"));
        }
        self.semantic = semantic::SemanticRequest::for_route(
            self.root.semantic.as_ref(),
            self.route.as_deref(),
        );
        self.semantic.on_request_headers(&facts.headers);
        Step::Continue
    }

    fn wants_request_body(&self) -> bool {
        self.response.is_some() || self.semantic.enabled() || self.tools.enabled()
    }

    fn on_request_body(
        &mut self,
        facts: &RequestFacts,
        body: &mut Vec<u8>,
        _changed: &mut bool,
    ) -> Step {
        if self.tools.enabled() {
            return self.tools.on_request_body(facts, body);
        }
        let Some(cache) = self.response.clone() else {
            return self.semantic.lookup(facts, body);
        };
        let plan = cache.plan(&RequestInput {
            route: self.route.as_deref(),
            backend: facts.backend.as_deref(),
            stream: facts.stream,
            caller: &facts.caller,
            headers: &self.headers,
            directives: self.directives,
            body,
        });
        let metrics = self.root.metrics;
        match plan {
            Plan::Bypass(reason) => {
                log::debug!("tollgate: cache bypassed: {}", reason.as_str());
                self.outcome = Outcome::Bypass;
                Metrics::add(metrics.bypasses, 1);
            }
            Plan::Keyed { key, lookup, store } => {
                if lookup {
                    let now = host::now_ms();
                    let found = cache.store.lookup_slot(&ProxyStore, &key, now);
                    if let Some(entry) = found.entry {
                        self.outcome = Outcome::Hit;
                        self.saved_tokens = entry
                            .usage
                            .map_or(0, |u| u.input_tokens.saturating_add(u.output_tokens));
                        Metrics::add(metrics.hits, 1);
                        Metrics::add(metrics.tokens_saved, self.saved_tokens);
                        let id = self.root.fresh_id(&key, now);
                        return Step::Respond(cache.hit_reply(&entry, now, &id));
                    }
                    self.outcome = Outcome::Miss;
                    self.seen = found.seen;
                    Metrics::add(metrics.misses, 1);
                } else {
                    self.outcome = Outcome::Bypass;
                    Metrics::add(metrics.bypasses, 1);
                }
                if store {
                    self.pending_store = Some(key);
                }
            }
        }
        self.semantic.lookup(facts, body)
    }

    fn on_callout_response(&mut self, _facts: &RequestFacts, status: u16, body: &[u8]) -> Step {
        let step = self.semantic.on_callout_response(status, body);
        if matches!(step, Step::Respond(_)) {
            self.outcome = Outcome::Hit; // the local reply carries HIT and age
        }
        step
    }

    fn on_response_headers(
        &mut self,
        _facts: &RequestFacts,
        response: &ResponseFacts,
        add: &mut Vec<(&'static str, String)>,
    ) {
        self.semantic.on_response_headers(response);
        self.tools.on_response_headers(response, add);
        let value = match self.outcome {
            Outcome::None => return,
            Outcome::Hit => return, // the local reply carries HIT and age
            Outcome::Miss => status::MISS,
            Outcome::Bypass => status::BYPASS,
        };
        add.push((header::CACHE_STATUS, value.to_string()));
        if response.status != 200 || response.answered_by != Answerer::Upstream {
            self.pending_store = None;
        }
    }

    fn wants_response_body(&self) -> bool {
        self.collecting() || self.semantic.wants_response_body() || self.tools.wants_response_body()
    }

    fn on_response_body(
        &mut self,
        facts: &RequestFacts,
        response: &ResponseFacts,
        chunk: &[u8],
        end_of_stream: bool,
    ) {
        self.semantic.on_response_body(chunk);
        self.tools.on_response_body(chunk, end_of_stream);
        if !self.collecting() {
            return;
        }
        let limit = self.response.as_ref().map_or(0, |c| {
            usize::try_from(c.store.entry_limit()).unwrap_or(usize::MAX)
        });
        if self.body.len().saturating_add(chunk.len()) > limit {
            // Too large to store: stop collecting.
            self.pending_store = None;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
        // Stored as soon as the answer is complete (a stream: its terminal event), before the
        // client, which has it, can ask again.
        let terminated = facts.stream && tollgate_cache::policy::stream_terminated(&self.body);
        if end_of_stream || terminated {
            self.store(facts, response, response.complete || terminated);
        }
    }

    fn on_done(&mut self, facts: &RequestFacts, response: &ResponseFacts) {
        self.semantic.on_done(response);
        self.tools.on_done(response);
        // An answer that ended without an end-of-stream body callback (trailers).
        if self.collecting() && response.complete {
            self.store(facts, response, response.complete);
        }
    }
}
