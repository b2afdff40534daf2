//! The MCP tool-result cache's glue, called by the cache stage on MCP routes: reads the
//! JSON-RPC request the pipeline buffered, answers a cached `tools/call` locally with the new
//! request's id, stores successful results, and learns destructive tools from `tools/list`
//! answers passing through (decisions in `tollgate_cache::tools`).

use crate::host::{self, MetricType, ProxyStore};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use tollgate_cache::key::CacheKey;
use tollgate_cache::status;
use tollgate_cache::store::SlotSeen;
use tollgate_cache::tools::{self, ToolCache, ToolPlan};
use tollgate_core::config::CacheConfig;
use tollgate_core::facts::{Answerer, Headers, RequestFacts, ResponseFacts};
use tollgate_core::names::{cache as names, header};
use tollgate_core::stage::{SharedStore, Step};

/// Bound on CAS retries when merging destructive tool names.
const MAX_RETRIES: usize = 16;

/// Counter ids.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    hits: Option<u32>,
    misses: Option<u32>,
    bypasses: Option<u32>,
    stores: Option<u32>,
}

fn add(id: Option<u32>) {
    if let Some(id) = id {
        host::increment_metric(id, 1);
    }
}

/// Per-VM state: one tool cache per MCP route that has a policy.
pub struct ToolsRoot {
    caches: BTreeMap<String, Rc<ToolCache>>,
    counters: Counters,
}

impl ToolsRoot {
    /// The tool caches of a configuration (`None`: no route has one).
    pub fn new(config: &CacheConfig) -> Result<Option<Self>, String> {
        let mut caches = BTreeMap::new();
        for (route, policies) in &config.routes {
            if let Some(policy) = &policies.tools {
                let cache = ToolCache::new(policy, &format!("tollgate.cache/{route}/tools"))
                    .map_err(|e| format!("routes.{route}.tools.{e}"))?;
                cache.store.prepare(&ProxyStore);
                caches.insert(route.clone(), Rc::new(cache));
            }
        }
        if caches.is_empty() {
            return Ok(None);
        }
        let counter = |name| host::define_metric(MetricType::Counter, name);
        Ok(Some(Self {
            caches,
            counters: Counters {
                hits: counter(names::TOOL_HITS),
                misses: counter(names::TOOL_MISSES),
                bypasses: counter(names::TOOL_BYPASSES),
                stores: counter(names::TOOL_STORES),
            },
        }))
    }
}

/// What this request waits for in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// A missed `tools/call`: its result may be stored.
    Result {
        key: CacheKey,
        id: String,
        ttl_ms: u64,
        /// What the lookup saw in the key's slot: the store replaces it without a read.
        seen: Option<SlotSeen>,
    },
    /// A `tools/list`: its destructive tools are remembered.
    List,
}

/// One request's part of the tool cache.
pub struct ToolRequest {
    cache: Option<Rc<ToolCache>>,
    counters: Counters,
    route: Option<String>,
    headers: BTreeMap<String, Vec<u8>>,
    status: Option<&'static str>,
    pending: Pending,
    content_type: Vec<u8>,
    body: Vec<u8>,
}

impl ToolRequest {
    /// The request's part on `route` (Envoy's route name).
    pub fn for_route(root: Option<&ToolsRoot>, route: Option<&str>, method: &str) -> Self {
        let httproute = route.map(|r| r.split('/').next().unwrap_or(r));
        let cache = root
            .filter(|_| method == "POST")
            .and_then(|r| httproute.and_then(|h| r.caches.get(h)))
            .cloned();
        Self {
            cache,
            counters: root.map(|r| r.counters).unwrap_or_default(),
            route: route.map(str::to_string),
            headers: BTreeMap::new(),
            status: None,
            pending: Pending::Nothing,
            content_type: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Whether the route has a tool cache (the request body is then needed).
    pub fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// Request headers: the credentials in the key.
    pub fn on_request_headers(&mut self, headers: &Headers) {
        if let Some(cache) = &self.cache {
            for name in cache.header_names() {
                if let Some(value) = headers.get(name) {
                    self.headers.insert(name.clone(), value.to_vec());
                }
            }
        }
    }

    /// The JSON-RPC request: a hit answers, anything else goes on.
    pub fn on_request_body(&mut self, facts: &RequestFacts, body: &[u8]) -> Step {
        let Some(cache) = self.cache.clone() else {
            return Step::Continue;
        };
        let destructive = ProxyStore
            .get(cache.destructive_key())
            .map(|(v, _)| tools::decode_destructive(&v))
            .unwrap_or_default();
        match cache.plan(
            body,
            self.route.as_deref(),
            &facts.caller,
            &self.headers,
            &destructive,
        ) {
            ToolPlan::Untouched => {}
            ToolPlan::ListTools => self.pending = Pending::List,
            ToolPlan::Bypass(reason) => {
                log::debug!("tollgate: tool cache bypassed: {reason}");
                self.status = Some(status::BYPASS);
                add(self.counters.bypasses);
            }
            ToolPlan::Cached { key, id, ttl_ms } => {
                let now = host::now_ms();
                let found = cache.store.lookup_slot(&ProxyStore, &key, now);
                if let Some(entry) = found.entry {
                    self.status = Some(status::HIT);
                    add(self.counters.hits);
                    return Step::Respond(tools::hit_reply(&entry, now, &id));
                }
                self.status = Some(status::MISS);
                add(self.counters.misses);
                self.pending = Pending::Result {
                    key,
                    id,
                    ttl_ms,
                    seen: found.seen,
                };
            }
        }
        Step::Continue
    }

    /// Response headers: the cache status of a tools/call, the content type of the answer.
    pub fn on_response_headers(
        &mut self,
        response: &ResponseFacts,
        add: &mut Vec<(&'static str, String)>,
    ) {
        match self.status {
            None | Some(status::HIT) => {}
            Some(value) => add.push((header::CACHE_STATUS, value.to_string())),
        }
        if response.status != 200 || response.answered_by != Answerer::Upstream {
            self.pending = Pending::Nothing;
            return;
        }
        if self.pending != Pending::Nothing {
            self.content_type = host::response_header("content-type").unwrap_or_default();
        }
    }

    /// Whether the answer is needed.
    pub fn wants_response_body(&self) -> bool {
        self.pending != Pending::Nothing
    }

    /// A chunk of the answer.
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        if self.pending == Pending::Nothing {
            return;
        }
        let limit = self.cache.as_ref().map_or(0, |c| {
            usize::try_from(c.store.entry_limit()).unwrap_or(usize::MAX)
        });
        if self.body.len().saturating_add(chunk.len()) > limit {
            self.pending = Pending::Nothing;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
        if end_of_stream {
            self.finish(200);
            return;
        }
        // An answer over SSE is acted on as soon as its response event is complete: the
        // client's next request may come before this stream ends.
        if self.pending == Pending::List {
            if let Some(names) = tools::listed_destructive(&self.content_type, &self.body, false) {
                self.pending = Pending::Nothing;
                self.body = Vec::new();
                if let Some(cache) = self.cache.clone() {
                    remember_destructive(&cache, &names);
                }
            }
            return;
        }
        if let Pending::Result { id, .. } = &self.pending {
            match tools::find_result(200, &self.content_type, &self.body, id, false) {
                tools::Found::NotYet => {}
                tools::Found::Never => self.pending = Pending::Nothing,
                tools::Found::Store(message) => self.store_result(message),
            }
        }
    }

    fn store_result(&mut self, message: Vec<u8>) {
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        self.body = Vec::new();
        let (
            Some(cache),
            Pending::Result {
                key, ttl_ms, seen, ..
            },
        ) = (self.cache.clone(), pending)
        else {
            return;
        };
        let now = host::now_ms();
        let entry = tools::entry(key, now, ttl_ms, message);
        if cache
            .store
            .store_seen(&ProxyStore, &entry, now, seen)
            .stored
        {
            add(self.counters.stores);
        }
    }

    /// The stream is over.
    pub fn on_done(&mut self, response: &ResponseFacts) {
        if response.complete {
            self.finish(response.status);
        }
    }

    fn finish(&mut self, status: u16) {
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let body = std::mem::take(&mut self.body);
        match pending {
            Pending::Nothing => {}
            Pending::Result {
                key,
                id,
                ttl_ms,
                seen,
            } => {
                if let Some(message) =
                    tools::storable_result(status, &self.content_type, &body, &id)
                {
                    self.pending = Pending::Result {
                        key,
                        id,
                        ttl_ms,
                        seen,
                    };
                    self.store_result(message);
                }
            }
            Pending::List => {
                let names = tools::destructive_tools(&self.content_type, &body);
                remember_destructive(&cache, &names);
            }
        }
    }
}

/// Adds tool names to the server's destructive set in shared data (CAS, bounded retries).
fn remember_destructive(cache: &ToolCache, names: &[String]) {
    if names.is_empty() {
        return;
    }
    for _ in 0..MAX_RETRIES {
        let (stored, cas) = ProxyStore
            .get(cache.destructive_key())
            .map(|(v, cas)| (tools::decode_destructive(&v), Some(cas)))
            .unwrap_or((BTreeSet::new(), None));
        let Some(merged) = tools::merge_destructive(&stored, names) else {
            return;
        };
        if ProxyStore
            .set(cache.destructive_key(), &merged, cas)
            .is_ok()
        {
            return;
        }
    }
}
