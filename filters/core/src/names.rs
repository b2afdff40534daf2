//! Names shared by the filters and the generator: root ids, the vm id, filter-state
//! properties and header names. Defined once here so the two sides cannot drift.

/// The `vm_id` of every tollgate plugin: they share shared data (budgets, cache).
pub const VM_ID: &str = "tollgate";

/// Root ids of the plugin roles inside `tollgate.wasm`.
pub mod root_id {
    /// The whole downstream pipeline (route → cache → budget → metrics), configured by
    /// [`crate::config::DownstreamConfig`]. The generator's default.
    pub const PIPELINE: &str = "tollgate";
    /// Routing alone (the pipeline with only the route stage).
    pub const ROUTER: &str = "router";
    /// The response cache alone.
    pub const CACHE: &str = "cache";
    /// Token budgets alone.
    pub const BUDGET: &str = "budget";
    /// Metrics alone.
    pub const METRICS: &str = "metrics";
    /// The upstream adapter (one per cluster, per attempt).
    pub const ADAPTER: &str = "adapter";
}

/// Filter-state properties (`set_property` / `get_property`, stored by Envoy as `wasm.<name>`).
pub mod property {
    /// What the router learned about the request, for the adapter: [`crate::facts::AdapterFacts`].
    pub const REQUEST_FACTS: &str = "tollgate_request";
}

/// Host property paths the glue reads.
pub mod host_property {
    /// The matched Envoy route's name.
    pub const ROUTE_NAME: [&str; 2] = ["xds", "route_name"];
    /// The downstream peer address (`ip:port`).
    pub const SOURCE_ADDRESS: [&str; 2] = ["source", "address"];
    /// Where `jwt_authn` puts a verified token's claims (`payload_in_metadata` = `jwt_payload`):
    /// append the claim name.
    pub const JWT_PAYLOAD: [&str; 4] = [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "jwt_payload",
    ];
}

/// Header names.
pub mod header {
    /// Request header the router sets to the chosen backend; the generated routes match on it.
    pub const BACKEND: &str = "x-tollgate-backend";
    /// Response header naming the provider that served the answer.
    pub const PROVIDER: &str = "x-tollgate-provider";
    /// Response header naming the model asked of that provider.
    pub const MODEL: &str = "x-tollgate-model";
    /// Request header naming the authenticated client: set by Envoy's `api_key_auth` (its
    /// `forwarding.header`) or from the JWT's `sub`. The generator's `header_mutation` filter,
    /// first in the chain, removes a client-sent one, so a client cannot claim another's
    /// budget; the pipeline only reads it.
    pub const CLIENT: &str = "x-tollgate-client";
    /// Request header the pipeline sets on a request it answers itself (its replies are
    /// already OpenAI JSON): the HCM's `local_reply_config` mappers, which give the auth
    /// filters' plain-text 401/403 the OpenAI format, skip requests that carry it.
    pub const LOCAL_REPLY: &str = "x-tollgate-local-reply";
    /// Response header: `HIT`, `MISS` or `BYPASS` on a cached route.
    pub const CACHE_STATUS: &str = "x-cache-status";
}

/// Metric names and tags, in both namings, defined once: the metrics stage emits these and the
/// generator writes the matching `stats_tags`, `histogram_bucket_settings` and rules from them.
///
/// Envoy names a wasm metric `wasmcustom.<name>`, and labels only come from `stats_config.stats_tags`
/// regexes over that full name. We encode labels Istio's way, before the metric name:
/// `wasmcustom.provider=.=openai;.;model=.=gpt-4.1;.;agentgateway_llm_requests_total`, with one
/// regex per tag, `[.;](model=\.=(.*?);\.;)`: a value keeps its dots (`gpt-4.1` stays `gpt-4.1`),
/// and what the regexes remove leaves exactly the metric name.
pub mod metric {
    /// A metric's Envoy type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// Monotonic u64.
        Counter,
        /// Settable u64.
        Gauge,
        /// Recorded u64 values (buckets from `histogram_bucket_settings`).
        Histogram,
    }

    /// What a metric measures, whatever it is called.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Metric {
        /// Requests a provider answered (after failover), by status.
        Requests,
        /// Tokens a provider billed, by direction (input, output, cached_input).
        Tokens,
        /// What those tokens cost, micro-USD.
        Cost,
        /// Request duration, ms (headers in → stream done).
        Duration,
        /// Time to the first response byte, ms.
        Ttfb,
        /// Requests in flight.
        Active,
        /// Requests the response cache answered.
        CacheHits,
        /// Tokens the cache hits would have cost, by direction.
        CacheSavedTokens,
        /// What the cache hits would have cost, micro-USD.
        CacheSavedCost,
        /// Requests the budget stage refused.
        BudgetRejections,
        /// Requests whose (provider, model) has no price: priced with the default price.
        Unpriced,
    }

    /// Every metric, in definition order.
    pub const ALL: [Metric; 11] = [
        Metric::Requests,
        Metric::Tokens,
        Metric::Cost,
        Metric::Duration,
        Metric::Ttfb,
        Metric::Active,
        Metric::CacheHits,
        Metric::CacheSavedTokens,
        Metric::CacheSavedCost,
        Metric::BudgetRejections,
        Metric::Unpriced,
    ];

    /// What a label says, whatever it is called.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Tag {
        /// Token direction: `input` (not from the prompt cache), `output`, `cached_input`.
        Direction,
        /// Provider kind that served (`openai`, `anthropic`, `gemini`).
        Provider,
        /// Model that served (the answer's `model`).
        Model,
        /// Model the client asked for.
        RequestModel,
        /// HTTP status the client got.
        Status,
        /// The operation (`chat`); a constant, for the GenAI dashboards.
        Operation,
    }

    /// Every tag, in label order on the Prometheus endpoint (= `stats_tags` order).
    pub const TAGS: [Tag; 6] = [
        Tag::Direction,
        Tag::Provider,
        Tag::Model,
        Tag::RequestModel,
        Tag::Status,
        Tag::Operation,
    ];

    /// Token direction label values.
    pub mod direction {
        /// Prompt tokens not read from the provider's prompt cache (cache writes included).
        pub const INPUT: &str = "input";
        /// Generated tokens.
        pub const OUTPUT: &str = "output";
        /// Prompt tokens read from the provider's prompt cache.
        pub const CACHED_INPUT: &str = "cached_input";
    }

    /// Filter-state name of the access-log fields the metrics stage publishes in one value
    /// (`wasm.tollgate_log`), read by the HCM access log's `%FILTER_STATE(...)%`.
    pub const LOG_PROPERTY: &str = "tollgate_log";

    /// The access-log fields the metrics stage publishes, in log order.
    pub const LOG_FIELDS: [&str; 11] = [
        "provider",
        "model",
        "user",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cost_micro_usd",
        "cache",
        "budget",
        "answered_by",
        "ttfb_ms",
    ];

    /// The model label value of models past the cap on distinct models.
    pub const OTHER_MODEL: &str = "other";

    /// One metric in one naming.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Def {
        /// Which metric.
        pub metric: Metric,
        /// Its name (the Prometheus name for counters and gauges; histograms get
        /// `_bucket`, `_sum`, `_count`).
        pub name: &'static str,
        /// Its type.
        pub kind: Kind,
        /// Its labels, in the order they are encoded.
        pub tags: &'static [Tag],
        /// Histogram buckets (empty for counters and gauges).
        pub buckets: &'static [f64],
    }

    /// A set of names for every metric and tag.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Naming {
        /// `agentgateway` or `genai` (the configuration's value).
        pub id: &'static str,
        /// Every metric, in [`ALL`] order.
        pub defs: [Def; 11],
        /// Every tag's label name, in [`TAGS`] order.
        pub tag_names: [&'static str; 6],
    }

    impl Naming {
        /// The definition of `metric`.
        pub fn def(&self, metric: Metric) -> &Def {
            // ALL order is the defs order (checked by a test).
            &self.defs[metric as usize]
        }

        /// The label name of `tag`.
        pub fn tag_name(&self, tag: Tag) -> &'static str {
            match TAGS.iter().position(|t| *t == tag) {
                Some(i) => self.tag_names[i],
                None => "",
            }
        }

        /// The naming called `id`.
        pub fn by_id(id: &str) -> Option<&'static Naming> {
            [&AGENTGATEWAY, &GENAI].into_iter().find(|n| n.id == id)
        }
    }

    /// Request duration buckets, ms: OpenTelemetry GenAI's advisory buckets for
    /// `gen_ai.server.request.duration` (10 ms to 82 s, doubling), plus 3 and 5 minutes for
    /// long generations.
    pub const DURATION_BUCKETS_MS: &[f64] = &[
        10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, 10240.0, 20480.0,
        40960.0, 81920.0, 180000.0, 300000.0,
    ];
    /// Time-to-first-token buckets, ms: OpenTelemetry GenAI's advisory buckets for
    /// `gen_ai.server.time_to_first_token` (1 ms to 10 s), plus 30 and 60 s.
    pub const TTFB_BUCKETS_MS: &[f64] = &[
        1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
        7500.0, 10000.0, 30000.0, 60000.0,
    ];
    /// Token-count buckets: OpenTelemetry GenAI's advisory buckets for
    /// `gen_ai.client.token.usage` (powers of 4 up to 4^10).
    pub const TOKEN_BUCKETS: &[f64] = &[
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ];

    const SERVED: &[Tag] = &[Tag::Provider, Tag::Model];
    const SERVED_STATUS: &[Tag] = &[Tag::Provider, Tag::Model, Tag::Status];
    const TOKENS: &[Tag] = &[Tag::Provider, Tag::Model, Tag::Direction];
    const ASKED: &[Tag] = &[Tag::RequestModel];
    const GENAI_SERVED: &[Tag] = &[Tag::Operation, Tag::Provider, Tag::RequestModel, Tag::Model];
    const GENAI_SERVED_STATUS: &[Tag] = &[
        Tag::Operation,
        Tag::Provider,
        Tag::RequestModel,
        Tag::Model,
        Tag::Status,
    ];
    const GENAI_TOKENS: &[Tag] = &[
        Tag::Operation,
        Tag::Provider,
        Tag::RequestModel,
        Tag::Model,
        Tag::Direction,
    ];

    const fn def(
        metric: Metric,
        name: &'static str,
        kind: Kind,
        tags: &'static [Tag],
        buckets: &'static [f64],
    ) -> Def {
        Def {
            metric,
            name,
            kind,
            tags,
            buckets,
        }
    }

    /// The guide's names (agentgateway's), read by its `cost-alerts` rules and its HPA.
    pub const AGENTGATEWAY: Naming = Naming {
        id: "agentgateway",
        defs: [
            def(
                Metric::Requests,
                "agentgateway_llm_requests_total",
                Kind::Counter,
                SERVED_STATUS,
                &[],
            ),
            def(
                Metric::Tokens,
                "agentgateway_llm_tokens_total",
                Kind::Counter,
                TOKENS,
                &[],
            ),
            def(
                Metric::Cost,
                "agentgateway_llm_cost_micro_usd_total",
                Kind::Counter,
                SERVED,
                &[],
            ),
            def(
                Metric::Duration,
                "agentgateway_llm_request_duration_ms",
                Kind::Histogram,
                SERVED,
                DURATION_BUCKETS_MS,
            ),
            def(
                Metric::Ttfb,
                "agentgateway_llm_time_to_first_token_ms",
                Kind::Histogram,
                SERVED,
                TTFB_BUCKETS_MS,
            ),
            def(
                Metric::Active,
                "agentgateway_active_connections",
                Kind::Gauge,
                &[],
                &[],
            ),
            def(
                Metric::CacheHits,
                "agentgateway_llm_cache_hits_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::CacheSavedTokens,
                "agentgateway_llm_cache_saved_tokens_total",
                Kind::Counter,
                &[Tag::RequestModel, Tag::Direction],
                &[],
            ),
            def(
                Metric::CacheSavedCost,
                "agentgateway_llm_cache_saved_cost_micro_usd_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::BudgetRejections,
                "agentgateway_llm_budget_rejections_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::Unpriced,
                "agentgateway_llm_unpriced_requests_total",
                Kind::Counter,
                SERVED,
                &[],
            ),
        ],
        tag_names: [
            "direction",
            "provider",
            "model",
            "request_model",
            "status",
            "operation",
        ],
    };

    /// OpenTelemetry GenAI semantic-convention names, for existing GenAI dashboards. Token
    /// usage is a histogram there (its `_sum` is the token count); requests are the duration
    /// histogram's `_count`. Durations are ms, not OpenTelemetry's seconds: Envoy histograms
    /// record integers.
    pub const GENAI: Naming = Naming {
        id: "genai",
        defs: [
            def(
                Metric::Requests,
                "gen_ai_client_operation_total",
                Kind::Counter,
                GENAI_SERVED_STATUS,
                &[],
            ),
            def(
                Metric::Tokens,
                "gen_ai_client_token_usage",
                Kind::Histogram,
                GENAI_TOKENS,
                TOKEN_BUCKETS,
            ),
            def(
                Metric::Cost,
                "gen_ai_client_cost_micro_usd_total",
                Kind::Counter,
                GENAI_SERVED,
                &[],
            ),
            def(
                Metric::Duration,
                "gen_ai_server_request_duration",
                Kind::Histogram,
                GENAI_SERVED_STATUS,
                DURATION_BUCKETS_MS,
            ),
            def(
                Metric::Ttfb,
                "gen_ai_server_time_to_first_token",
                Kind::Histogram,
                GENAI_SERVED,
                TTFB_BUCKETS_MS,
            ),
            def(
                Metric::Active,
                "agentgateway_active_connections",
                Kind::Gauge,
                &[],
                &[],
            ),
            def(
                Metric::CacheHits,
                "gen_ai_client_cache_hits_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::CacheSavedTokens,
                "gen_ai_client_cache_saved_tokens_total",
                Kind::Counter,
                &[Tag::RequestModel, Tag::Direction],
                &[],
            ),
            def(
                Metric::CacheSavedCost,
                "gen_ai_client_cache_saved_cost_micro_usd_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::BudgetRejections,
                "gen_ai_client_budget_rejections_total",
                Kind::Counter,
                ASKED,
                &[],
            ),
            def(
                Metric::Unpriced,
                "gen_ai_client_unpriced_operations_total",
                Kind::Counter,
                GENAI_SERVED,
                &[],
            ),
        ],
        tag_names: [
            "gen_ai_token_type",
            "gen_ai_provider_name",
            "gen_ai_response_model",
            "gen_ai_request_model",
            "http_response_status_code",
            "gen_ai_operation_name",
        ],
    };

    /// Separator between a tag's name and its value (Istio's).
    pub const VALUE_SEPARATOR: &str = "=.=";
    /// Terminator of a tag's value (Istio's).
    pub const FIELD_SEPARATOR: &str = ";.;";

    /// The `stats_tags` regex of a label: its first group is removed from the stat name, the
    /// second is the value. The tag must follow `wasmcustom.` or the previous tag's `;`, so
    /// `model` does not match inside `request_model`.
    pub fn tag_regex(label: &str) -> String {
        format!(r"[.;]({label}=\.=(.*?);\.;)")
    }

    /// A label value as it can sit in a stat name: `;` and `=` (which could fake a separator)
    /// and control characters become `_`; everything else, dots and colons included, reaches
    /// the Prometheus label as is (Envoy 1.40, `integration/e2e/tests/metrics.rs`).
    pub fn encode_value(value: &str, out: &mut String) {
        for c in value.chars() {
            out.push(if c == ';' || c == '=' || c.is_control() {
                '_'
            } else {
                c
            });
        }
    }

    /// The name to define with `proxy_define_metric` (Envoy prefixes `wasmcustom.`).
    pub fn stat_name(naming: &Naming, def: &Def, values: &[&str]) -> String {
        let mut name = String::with_capacity(def.name.len() + 24 * values.len());
        for (tag, value) in def.tags.iter().zip(values) {
            name.push_str(naming.tag_name(*tag));
            name.push_str(VALUE_SEPARATOR);
            encode_value(value, &mut name);
            name.push_str(FIELD_SEPARATOR);
        }
        name.push_str(def.name);
        name
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[cfg(target_arch = "wasm32")]
        use wasm_bindgen_test::wasm_bindgen_test as test;

        #[test]
        fn definitions_follow_the_metric_order_in_both_namings() {
            for naming in [&AGENTGATEWAY, &GENAI] {
                for (i, metric) in ALL.iter().enumerate() {
                    assert_eq!(naming.defs[i].metric, *metric, "{}", naming.id);
                    assert_eq!(naming.def(*metric).metric, *metric);
                    let histogram = naming.defs[i].kind == Kind::Histogram;
                    assert_eq!(histogram, !naming.defs[i].buckets.is_empty());
                }
            }
        }

        #[test]
        fn stat_names_put_istio_style_tags_before_the_metric_name() {
            let def = AGENTGATEWAY.def(Metric::Tokens);
            assert_eq!(
                stat_name(&AGENTGATEWAY, def, &["openai", "gpt-4.1", "input"]),
                "provider=.=openai;.;model=.=gpt-4.1;.;direction=.=input;.;agentgateway_llm_tokens_total"
            );
            let mut v = String::new();
            encode_value("a;.;b=.=c\n", &mut v);
            assert_eq!(v, "a_._b_._c_");
        }
    }
}

/// The semantic cache (the cache stage's callouts to `services/semantic-cache`).
pub mod semantic_cache {
    /// Response header of a semantic hit: the stored prompt's similarity to this one.
    pub const SIMILARITY_HEADER: &str = "x-tollgate-semantic-similarity";
    /// Counter: lookups answered by the service (hit or miss).
    pub const LOOKUPS: &str = "tollgate_semantic_cache_lookups_total";
    /// Counter: requests answered from the semantic cache.
    pub const HITS: &str = "tollgate_semantic_cache_hits_total";
    /// Counter: answers sent to the service to store.
    pub const STORES: &str = "tollgate_semantic_cache_stores_total";
    /// Counter: lookups that failed (service down, slow past its timeout, bad answer): the
    /// request went on without the cache (fail open).
    pub const FAILURES: &str = "tollgate_semantic_cache_failures_total";
    /// Counter: requests on a semantic route not looked up (not a text prompt, `n > 1`,
    /// `Cache-Control: no-cache`).
    pub const BYPASSES: &str = "tollgate_semantic_cache_bypasses_total";
}

/// The budget stage's response headers and metric names.
pub mod budget {
    /// The limit of the tightest token bucket of the caller.
    pub const LIMIT_TOKENS: &str = "x-ratelimit-limit-tokens";
    /// What that bucket holds after this request's reservation.
    pub const REMAINING_TOKENS: &str = "x-ratelimit-remaining-tokens";
    /// Until that bucket is full again (`1m30s`, `250ms`).
    pub const RESET_TOKENS: &str = "x-ratelimit-reset-tokens";
    /// Seconds until the refused request would be admitted.
    pub const RETRY_AFTER: &str = "retry-after";

    /// Counter `<name>.policy.<p>.result.<admitted|rejected|fail_open>.reason.<r>`: requests
    /// by outcome; reasons `none`, `tokens`, `requests`, `micro_usd`, `no_identity`, `store`.
    pub const REQUESTS: &str = "tollgate_budget_requests_total";
    /// Counter `<name>.policy.<p>.result.<reserved|charged|refunded>`: tokens.
    pub const TOKENS: &str = "tollgate_budget_tokens_total";
    /// Counter `<name>.direction.<input|output|cached_input>.policy.<p>`: charged tokens by kind.
    pub const CHARGED_TOKENS: &str = "tollgate_budget_charged_tokens_total";
    /// Counter `<name>.policy.<p>.result.<reserved|charged|refunded>`: micro-USD.
    pub const MICRO_USD: &str = "tollgate_budget_micro_usd_total";
    /// Counter `<name>.policy.<p>`: tokens charged above the reservation (should stay 0).
    pub const OVERSHOOT: &str = "tollgate_budget_overshoot_tokens_total";
    /// Counter `<name>.policy.<p>`: answers without usage, charged their reservation.
    pub const UNRECONCILED: &str = "tollgate_budget_unreconciled_total";
    /// Counter: the budget store failed (full, contended, refused; the service failed).
    pub const STORE_ERRORS: &str = "tollgate_budget_store_errors_total";
}

/// Metric names of the cache stage (Envoy stat `wasmcustom.<name>`; Prometheus prints the
/// name as is).
pub mod cache {
    /// Requests answered from the response cache.
    pub const HITS: &str = "tollgate_cache_hits_total";
    /// Cacheable requests not found in the response cache.
    pub const MISSES: &str = "tollgate_cache_misses_total";
    /// Requests the response cache did not look up (not cacheable, or `Cache-Control: no-cache`).
    pub const BYPASSES: &str = "tollgate_cache_bypasses_total";
    /// Answers stored.
    pub const STORES: &str = "tollgate_cache_stores_total";
    /// Entries emptied to make room (sweep and slot collisions).
    pub const EVICTIONS: &str = "tollgate_cache_evictions_total";
    /// Gauge: bytes the response cache holds (every route's store together).
    pub const STORED_BYTES: &str = "tollgate_cache_stored_bytes";
    /// Prompt + completion tokens of the answers served from the cache.
    pub const TOKENS_SAVED: &str = "tollgate_cache_tokens_saved_total";
    /// MCP `tools/call` requests answered from the tool-result cache.
    pub const TOOL_HITS: &str = "tollgate_tool_cache_hits_total";
    /// Cacheable `tools/call` requests not found.
    pub const TOOL_MISSES: &str = "tollgate_tool_cache_misses_total";
    /// `tools/call` requests not cached (no rule, a rule that disables, a destructive tool).
    pub const TOOL_BYPASSES: &str = "tollgate_tool_cache_bypasses_total";
    /// Tool results stored.
    pub const TOOL_STORES: &str = "tollgate_tool_cache_stores_total";
}
