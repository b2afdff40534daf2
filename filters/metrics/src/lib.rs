//! tollgate metrics stage: pure decisions over [`tollgate_core::facts`], called by the pipeline in
//! the `tollgate` glue crate. No proxy-wasm here: the dependency graph keeps it out.
//!
//! [`Recorder::finish`] turns one finished request into [`Observation`]s (which metric, which
//! label values, which amount); the glue defines each series once per VM and increments or
//! records it. Names and tags come from `tollgate_core::names::metric`, in the configured
//! naming. [`log_record`] is the request's access-log fields.

/// The price table and cost functions (in core, shared with the budget stage).
pub use tollgate_core::pricing;

use pricing::{cost_pico_usd, round_micro, BilledTokens, MicroCarry, PriceError, PriceTable};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tollgate_core::config::MetricsConfig;
use tollgate_core::facts::{Answerer, RequestFacts, ResponseFacts};
use tollgate_core::names::metric::{self, direction, Kind, Metric, Naming, Tag};

/// Label value when a fact is missing (no provider header, no model).
pub const UNKNOWN: &str = "unknown";
/// The operation label value (the GenAI naming's `gen_ai_operation_name`).
pub const OPERATION: &str = "chat";

/// A configuration the stage cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A price is wrong.
    #[error(transparent)]
    Price(#[from] PriceError),
    /// `max_models` is 0.
    #[error("max_models: must be at least 1")]
    NoModels,
}

/// One amount for one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Which metric.
    pub metric: Metric,
    /// Label values, in the order of the metric's tags in the naming.
    pub values: Vec<String>,
    /// Counter increment, or histogram sample.
    pub value: u64,
}

/// Where [`Recorder::observe`] puts each observation: label values in the order of the
/// metric's tags, borrowed for the call.
pub trait Sink {
    /// One counter increment or histogram sample of `metric`'s series with these values.
    fn observe(&mut self, metric: Metric, values: &[&str], value: u64);
}

impl Sink for Vec<Observation> {
    fn observe(&mut self, metric: Metric, values: &[&str], value: u64) {
        self.push(Observation {
            metric,
            values: values.iter().map(|v| v.to_string()).collect(),
            value,
        });
    }
}

/// Most tags any metric has in any naming (checked by a test over both namings).
pub const MAX_TAGS: usize = 8;

/// `n` in decimal, written into the end of `buf` without allocating (20 digits hold any u64).
fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    let mut n = n;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// The distinct models one VM labels: the first `max` seen keep their name, later ones are
/// `other`.
#[derive(Debug, Clone)]
pub struct ModelCap {
    seen: BTreeSet<String>,
    max: usize,
}

impl ModelCap {
    /// A cap of `max` models.
    pub fn new(max: usize) -> Self {
        Self {
            seen: BTreeSet::new(),
            max,
        }
    }

    /// The label value for `model`.
    pub fn label(&mut self, model: &str) -> String {
        if self.seen.contains(model) {
            return model.to_string();
        }
        if self.seen.len() < self.max {
            self.seen.insert(model.to_string());
            return model.to_string();
        }
        metric::OTHER_MODEL.to_string()
    }
}

/// Per-VM state of the stage: names, prices, the model cap and the micro-USD carries.
#[derive(Debug)]
pub struct Recorder {
    naming: &'static Naming,
    prices: PriceTable,
    providers: BTreeMap<String, String>,
    cap: ModelCap,
    carries: HashMap<(Metric, String, String), MicroCarry>,
}

/// What the access log says about one request (Envoy adds time, route, attempts, duration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecord {
    /// Provider kind that served, or empty.
    pub provider: String,
    /// Model that served (or was asked for), or empty.
    pub model: String,
    /// The caller: JWT subject, else client key name; empty when anonymous.
    pub user: String,
    /// Prompt tokens not read from the provider's cache (cache writes included).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input_tokens: u64,
    /// Cost of the answer (or, for a cache hit, what it saved), micro-USD, rounded.
    pub cost_micro_usd: u64,
    /// `hit` when the response cache answered, else `-`.
    pub cache: &'static str,
    /// `rejected` when the budget stage refused, else `-`.
    pub budget: &'static str,
    /// Who answered (`upstream`, `cache`, `budget`, `gateway`).
    pub answered_by: &'static str,
    /// Time to first byte, ms.
    pub ttfb_ms: Option<u64>,
}

impl Recorder {
    /// The stage's per-VM state from its configuration.
    pub fn new(config: &MetricsConfig) -> Result<Self, ConfigError> {
        if config.max_models == 0 {
            return Err(ConfigError::NoModels);
        }
        Ok(Self {
            naming: config.naming.table(),
            prices: PriceTable::new(&config.prices, &config.default_price)?,
            providers: config.providers.clone(),
            cap: ModelCap::new(config.max_models),
            carries: HashMap::new(),
        })
    }

    /// The names in use.
    pub fn naming(&self) -> &'static Naming {
        self.naming
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// The provider label of a provider name (its kind, when configured).
    pub fn provider_label(&self, response: &ResponseFacts) -> String {
        match response.provider.as_deref() {
            Some(name) => self
                .providers
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
            None => UNKNOWN.to_string(),
        }
    }

    fn push(&mut self, out: &mut dyn Sink, metric: Metric, row: &Row, value: u64) {
        let def = self.naming.def(metric);
        if def.kind != Kind::Histogram && value == 0 {
            return; // counters only take positive deltas; a series appears with its first
        }
        let mut status = [0u8; 20];
        let status = decimal(u64::from(row.status), &mut status);
        let mut values = [""; MAX_TAGS];
        let tags = &def.tags[..def.tags.len().min(MAX_TAGS)];
        for (slot, tag) in values.iter_mut().zip(tags) {
            *slot = match tag {
                Tag::Provider => &row.provider,
                Tag::Model => &row.model,
                Tag::RequestModel => &row.request_model,
                Tag::Status => status,
                Tag::Direction => row.direction,
                Tag::Operation => OPERATION,
            };
        }
        out.observe(metric, &values[..tags.len()], value);
    }

    /// The cost of `tokens` for `row`'s provider and model (pico-USD) and whether it was priced.
    fn cost(&self, provider: &str, model: &str, tokens: &BilledTokens) -> (u128, bool) {
        match self.prices.price(provider, model) {
            Some(p) => (cost_pico_usd(&p, tokens), true),
            None => (cost_pico_usd(&self.prices.default_price(), tokens), false),
        }
    }

    /// What a cache hit saved: priced by its provider when the stored answer names one, else
    /// by its model whoever lists it (a cached answer need not say who first served it).
    fn saved_cost(
        &self,
        response: &ResponseFacts,
        provider: &str,
        model: &str,
        tokens: &BilledTokens,
    ) -> u128 {
        let prices = match response.provider {
            Some(_) => self.prices.price(provider, model),
            None => self.prices.price_of_model(model),
        };
        cost_pico_usd(&prices.unwrap_or(self.prices.default_price()), tokens)
    }

    fn micro(&mut self, metric: Metric, row: &Row, pico: u128) -> u64 {
        self.carries
            .entry((metric, row.provider.clone(), row.model.clone()))
            .or_default()
            .add(pico)
    }

    /// What one finished request adds to the metrics. `now_ms` is the host clock at the end.
    pub fn finish(
        &mut self,
        facts: &RequestFacts,
        response: &ResponseFacts,
        now_ms: u64,
    ) -> Vec<Observation> {
        let mut out = Vec::new();
        self.observe(facts, response, now_ms, &mut out);
        out
    }

    /// [`Recorder::finish`] without collecting: each observation goes to `out` with its label
    /// values borrowed, so a series seen before costs the stage no allocation.
    pub fn observe(
        &mut self,
        facts: &RequestFacts,
        response: &ResponseFacts,
        now_ms: u64,
        out: &mut dyn Sink,
    ) {
        let served_model = response.model.as_deref().or(facts.model.as_deref());
        let Some(served_model) = served_model else {
            return; // not an LLM call (MCP, pass-through, model list): not counted
        };
        let raw_model = served_model.to_string();
        let raw_provider = self.provider_label(response);
        let model = self.cap.label(&raw_model);
        let request_model = match facts.model.as_deref() {
            Some(m) => self.cap.label(m),
            None => model.clone(),
        };
        let mut row = Row {
            provider: raw_provider.clone(),
            model,
            request_model,
            status: response.status,
            direction: "",
        };
        let tokens = response.usage.as_ref().map(BilledTokens::from_usage);
        match response.answered_by {
            Answerer::Upstream => {
                self.push(out, Metric::Requests, &row, 1);
                if let Some(tokens) = tokens {
                    self.push_tokens(out, Metric::Tokens, &mut row, &tokens);
                    let (pico, priced) = self.cost(&raw_provider, &raw_model, &tokens);
                    let micro = self.micro(Metric::Cost, &row, pico);
                    self.push(out, Metric::Cost, &row, micro);
                    if !priced {
                        self.push(out, Metric::Unpriced, &row, 1);
                    }
                }
                let duration = now_ms.saturating_sub(facts.started_ms);
                self.push(out, Metric::Duration, &row, duration);
                if let Some(ttfb) = response.ttfb_ms {
                    self.push(out, Metric::Ttfb, &row, ttfb);
                }
            }
            Answerer::Cache => {
                self.push(out, Metric::CacheHits, &row, 1);
                if let Some(tokens) = tokens {
                    self.push_tokens(out, Metric::CacheSavedTokens, &mut row, &tokens);
                    let pico = self.saved_cost(response, &raw_provider, &raw_model, &tokens);
                    let micro = self.micro(Metric::CacheSavedCost, &row, pico);
                    self.push(out, Metric::CacheSavedCost, &row, micro);
                }
            }
            Answerer::Budget => self.push(out, Metric::BudgetRejections, &row, 1),
            Answerer::Gateway => {}
        }
    }

    fn push_tokens(
        &mut self,
        out: &mut dyn Sink,
        metric: Metric,
        row: &mut Row,
        tokens: &BilledTokens,
    ) {
        let histogram = self.naming.def(metric).kind == Kind::Histogram;
        for (dir, n) in [
            (direction::INPUT, tokens.input + tokens.cache_write),
            (direction::OUTPUT, tokens.output),
            (direction::CACHED_INPUT, tokens.cached_input),
        ] {
            // A histogram records input and output always (a count of 0 is a sample), cached
            // input only when there was some.
            if histogram && n == 0 && dir == direction::CACHED_INPUT {
                continue;
            }
            row.direction = dir;
            self.push(out, metric, row, n);
        }
        row.direction = "";
    }

    /// The access-log fields of a request, as far as it got.
    pub fn log_record(&self, facts: &RequestFacts, response: &ResponseFacts) -> LogRecord {
        let tokens = response
            .usage
            .as_ref()
            .map(BilledTokens::from_usage)
            .unwrap_or_default();
        let provider = if response.provider.is_some() {
            self.provider_label(response)
        } else {
            String::new()
        };
        let model = response
            .model
            .clone()
            .or_else(|| facts.model.clone())
            .unwrap_or_default();
        let cost = match (response.usage.is_some(), response.answered_by) {
            (false, _) => 0,
            (true, Answerer::Cache) => {
                round_micro(self.saved_cost(response, &provider, &model, &tokens))
            }
            (true, _) => round_micro(self.cost(&provider, &model, &tokens).0),
        };
        LogRecord {
            provider,
            model,
            user: facts
                .caller
                .jwt_subject
                .clone()
                .or_else(|| facts.caller.client_key.clone())
                .unwrap_or_default(),
            input_tokens: tokens.input + tokens.cache_write,
            output_tokens: tokens.output,
            cached_input_tokens: tokens.cached_input,
            cost_micro_usd: cost,
            cache: if response.answered_by == Answerer::Cache {
                "hit"
            } else {
                "-"
            },
            budget: if response.answered_by == Answerer::Budget {
                "rejected"
            } else {
                "-"
            },
            answered_by: response.answered_by.as_str(),
            ttfb_ms: response.ttfb_ms,
        }
    }
}

/// The label values of one request.
struct Row {
    provider: String,
    model: String,
    request_model: String,
    status: u16,
    direction: &'static str,
}

impl LogRecord {
    /// The record as the tail of the access log's JSON line, `,"provider":"openai",...` in
    /// [`metric::LOG_FIELDS`] order: the generator's format writes Envoy's own fields, then this
    /// one filter-state value, then closes the object. One filter-state object per request
    /// instead of one per field (each new object costs Envoy ~1 µs: docs/benchmarks.md).
    /// Strings are JSON-escaped, counts are numbers, an unknown time to first byte is `null`.
    pub fn write_json_tail(&self, out: &mut Vec<u8>) {
        let [provider, model, user, input, output, cached, cost, cache, budget, by, ttfb] =
            metric::LOG_FIELDS;
        let text = |out: &mut Vec<u8>, field: &str, value: &str| {
            key(out, field);
            if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                out.push(b'"');
                out.extend_from_slice(value.as_bytes());
                out.push(b'"');
            } else {
                // Writing a &str into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, value);
            }
        };
        let number = |out: &mut Vec<u8>, field: &str, value: u64| {
            key(out, field);
            out.extend_from_slice(decimal(value, &mut [0u8; 20]).as_bytes());
        };
        text(out, provider, &self.provider);
        text(out, model, &self.model);
        text(out, user, &self.user);
        number(out, input, self.input_tokens);
        number(out, output, self.output_tokens);
        number(out, cached, self.cached_input_tokens);
        number(out, cost, self.cost_micro_usd);
        text(out, cache, self.cache);
        text(out, budget, self.budget);
        text(out, by, self.answered_by);
        match self.ttfb_ms {
            Some(ms) => number(out, ttfb, ms),
            None => {
                key(out, ttfb);
                out.extend_from_slice(b"null");
            }
        }
    }
}

/// `,"<field>":` (field names are our own constants: nothing to escape).
fn key(out: &mut Vec<u8>, field: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"\":");
}

#[cfg(test)]
mod tests;
