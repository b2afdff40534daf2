//! The field table: what every input field becomes. One table serves `explain` (per input) and
//! FIELDS.md (for all), so the documentation cannot drift from what `explain` says.

/// (kind, field path with `[]` for any index, effect). Kind `*` applies to every kind; a path
/// ending in `.**` covers everything below it.
pub const FIELD_TABLE: &[(&str, &str, &str)] = &[
    ("*", "apiVersion", "recorded, not interpreted"),
    ("*", "kind", "selects the schema the document is read with"),
    ("*", "metadata.name", "name that references resolve against; the Backend name is the cluster name"),
    ("*", "metadata.namespace", "informative: one gateway, one namespace; WasmPlugins take the HPA's namespace"),
    ("*", "metadata.labels.**", "informative"),
    ("*", "metadata.annotations.**", "informative"),
    // Backend
    ("Backend", "spec.type", "`AI`: cluster with the adapter upstream filter; `Static`: plain cluster"),
    ("Backend", "spec.ai.priorityGroups[]", "load_assignment.endpoints[].priority (group index = Envoy priority; retries move on with previous_priorities)"),
    ("Backend", "spec.ai.priorityGroups[].providers[].name", "endpoint metadata filter_metadata.tollgate.provider; AdapterConfig.providers[].name; TLS transport_socket_matches name"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*", "provider kind: AdapterConfig.providers[].kind (openai, anthropic, gemini); default host is the public API over TLS"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.host", "endpoint socket_address.address and hostname; AdapterConfig authority; TLS (SNI = host) only on port 443"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.port", "endpoint socket_address.port_value (default 443 for the public API, else 80)"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.path", "AdapterConfig.providers[].path_prefix"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.model", "AdapterConfig.providers[].model with override_model: true; price rules' model label"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.apiVersion", "AdapterConfig.providers[].api_version (anthropic-version header)"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.authToken.kind", "`SecretRef`: key read at render time; `Inline`: key from the YAML"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.authToken.secretRef.name", "read from <secrets-dir>/<name>/Authorization or $TOLLGATE_SECRET_<NAME>; written only to secrets.env (0600) as TOLLGATE_KEY_<BACKEND>_<PROVIDER>, which AdapterConfig.providers[].api_key_env names and vm_config.environment_variables.host_env_keys passes to the VM (value never printed, never in envoy.yaml)"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.authToken.secretRef.key", "file name inside the Secret folder (default Authorization); env variable suffix _<KEY>"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.authToken.secretRef.namespace", "informative"),
    ("Backend", "spec.ai.priorityGroups[].providers[].*.authToken.inline", "like secretRef: secrets.env TOLLGATE_KEY_<BACKEND>_<PROVIDER>, named by AdapterConfig.providers[].api_key_env (value never printed)"),
    ("Backend", "spec.static.hosts[].host", "endpoint socket_address.address (TLS on port 443)"),
    ("Backend", "spec.static.hosts[].port", "endpoint socket_address.port_value"),
    ("Backend", "spec.static.protocol", "`MCP`: routes to it are MCP routes (RouterConfig.routes kind mcp); `HTTP` (default): plain proxy routes; both pass through untouched, no provider key"),
    ("Backend", "spec.ai.allowedOperations[]", "RouterConfig.routes[<HTTPRoute>].operations: POSTs whose path ends so (e.g. /embeddings) are forwarded untranslated; only when every provider is openai; all else but chat completions and the gateway's model list is refused"),
    // BackendConfigPolicy
    ("BackendConfigPolicy", "spec.targetRefs[].*", "the Backends (clusters) it configures; a missing one is an error"),
    ("BackendConfigPolicy", "spec.connectionPool.tcp.maxConnections", "cluster circuit_breakers.thresholds[DEFAULT].max_connections"),
    ("BackendConfigPolicy", "spec.connectionPool.tcp.connectTimeout", "cluster connect_timeout"),
    ("BackendConfigPolicy", "spec.connectionPool.http.h2UpgradePolicy", "UPGRADE: HttpProtocolOptions.explicit_http_config.http2_protocol_options (h2c in clear, ALPN h2 over TLS)"),
    ("BackendConfigPolicy", "spec.connectionPool.http.http1MaxPendingRequests", "circuit_breakers.thresholds[DEFAULT].max_pending_requests"),
    ("BackendConfigPolicy", "spec.connectionPool.http.http2MaxRequests", "circuit_breakers.thresholds[DEFAULT].max_requests"),
    ("BackendConfigPolicy", "spec.connectionPool.http.maxRequestsPerConnection", "HttpProtocolOptions.common_http_protocol_options.max_requests_per_connection"),
    ("BackendConfigPolicy", "spec.connectionPool.http.maxRetries", "circuit_breakers.thresholds[DEFAULT].max_retries"),
    ("BackendConfigPolicy", "spec.circuitBreakers.maxConnections", "circuit_breakers.thresholds[DEFAULT].max_connections (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.circuitBreakers.maxPendingRequests", "circuit_breakers.thresholds[DEFAULT].max_pending_requests (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.circuitBreakers.maxRequests", "circuit_breakers.thresholds[DEFAULT].max_requests (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.circuitBreakers.maxRetries", "circuit_breakers.thresholds[DEFAULT].max_retries (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.commonHttpProtocolOptions.maxRequestsPerConnection", "common_http_protocol_options.max_requests_per_connection (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.commonHttpProtocolOptions.idleTimeout", "common_http_protocol_options.idle_timeout"),
    ("BackendConfigPolicy", "spec.connectTimeout", "cluster connect_timeout (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.http2ProtocolOptions.maxConcurrentStreams", "explicit_http_config.http2_protocol_options.max_concurrent_streams (enables HTTP/2)"),
    ("BackendConfigPolicy", "spec.http2ProtocolOptions.initialStreamWindowSize", "http2_protocol_options.initial_stream_window_size"),
    ("BackendConfigPolicy", "spec.http2ProtocolOptions.initialConnectionWindowSize", "http2_protocol_options.initial_connection_window_size"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepaliveTime", "upstream_connection_options.tcp_keepalive.keepalive_time (seconds; also keepAliveTime)"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepaliveInterval", "upstream_connection_options.tcp_keepalive.keepalive_interval (seconds; also keepAliveInterval)"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepaliveProbes", "upstream_connection_options.tcp_keepalive.keepalive_probes (also keepAliveProbes)"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepAliveTime", "upstream_connection_options.tcp_keepalive.keepalive_time (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepAliveInterval", "upstream_connection_options.tcp_keepalive.keepalive_interval (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.tcpKeepalive.keepAliveProbes", "upstream_connection_options.tcp_keepalive.keepalive_probes (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.outlierDetection.consecutive5xxErrors", "outlier_detection.consecutive_5xx (also consecutive5xx)"),
    ("BackendConfigPolicy", "spec.outlierDetection.consecutive5xx", "outlier_detection.consecutive_5xx (kgateway spelling)"),
    ("BackendConfigPolicy", "spec.outlierDetection.interval", "outlier_detection.interval"),
    ("BackendConfigPolicy", "spec.outlierDetection.baseEjectionTime", "outlier_detection.base_ejection_time"),
    ("BackendConfigPolicy", "spec.outlierDetection.maxEjectionPercent", "outlier_detection.max_ejection_percent (0-100)"),
    ("BackendConfigPolicy", "spec.outlierDetection.splitExternalLocalOriginErrors", "outlier_detection.split_external_local_origin_errors"),
    // TrafficPolicy
    ("TrafficPolicy", "spec.targetRefs[].*", "HTTPRoutes (rate limits, caching) or Backends (loadBalancer); a missing one is an error"),
    ("TrafficPolicy", "spec.rateLimit.local[].maxTokens", "budget stage bucket capacity and starting level (`budget.policies[].buckets[].max_tokens`; micro-USD for `type: cost`)"),
    ("TrafficPolicy", "spec.rateLimit.local[].tokensPerFill", "added every `fillInterval`, never above `maxTokens` (`tokens_per_fill`)"),
    ("TrafficPolicy", "spec.rateLimit.local[].fillInterval", "refill period (`fill_interval_ms`): whole intervals counted from the bucket's first use"),
    ("TrafficPolicy", "spec.rateLimit.local[].type", "`tokens`: input estimate (body bytes) + output cap reserved, the cap written into the request, reconciled with the real usage; `requests`; `cost`: micro-USD priced by the pricing table"),
    ("TrafficPolicy", "spec.rateLimit.local[].descriptors[].entries[].key", "name of the dimension (informative; the value keys the budget)"),
    ("TrafficPolicy", "spec.rateLimit.local[].descriptors[].entries[].value", "whose budget: `jwt.<claim>` (adds envoy.filters.http.jwt_authn, claims in metadata jwt_payload), `header.<name>`, `client`, `source.address`, `model`; a caller without it gets a 401 (an optional JWT: the shared anonymous budget); one budget per TrafficPolicy and descriptor across its routes"),
    ("TrafficPolicy", "spec.rateLimit.local.tokenBucket.**", "kgateway's spelling: one `requests` bucket shared by the route's callers (`tokensPerFill` defaults to 1)"),
    ("TrafficPolicy", "spec.rateLimit.global.backend.**", "the budget service (`services/budget`, Redis behind it) every budget is kept in instead of each Envoy's shared data: cluster `service/<name>`, `budget.global`, `kubernetes/budget-service.yaml`"),
    ("TrafficPolicy", "spec.rateLimit.global.failOpen", "when the budget service fails or times out: true serves unmetered, false (default) answers 503; counted"),
    ("TrafficPolicy", "spec.rateLimit.global.timeout", "budget service call timeout (`budget.global.timeout_ms`, default 200ms)"),
    ("TrafficPolicy", "spec.caching.enabled", "cache filter on/off for the route (cache plugin configuration, defined by the cache issue; `{}` today)"),
    ("TrafficPolicy", "spec.caching.mode", "cache filter: safe (deterministic requests only) or aggressive"),
    ("TrafficPolicy", "spec.caching.ttl", "cache filter entry lifetime"),
    ("TrafficPolicy", "spec.caching.maxSize", "cache filter capacity (bytes)"),
    ("TrafficPolicy", "spec.caching.keyGenerator.headers[]", "cache filter key: request headers"),
    ("TrafficPolicy", "spec.caching.keyGenerator.body.jsonPaths[]", "cache filter key: body fields"),
    ("TrafficPolicy", "spec.caching.rules[].match.jsonPath", "cache filter MCP rule: body field matched"),
    ("TrafficPolicy", "spec.caching.rules[].match.values[]", "cache filter MCP rule: values matched"),
    ("TrafficPolicy", "spec.caching.rules[].ttl", "cache filter MCP rule: entry lifetime"),
    ("TrafficPolicy", "spec.caching.rules[].enabled", "cache filter MCP rule: false = never cache"),
    ("TrafficPolicy", "spec.ai.semanticCache.enabled", "cache filter semantic lookup on/off"),
    ("TrafficPolicy", "spec.ai.semanticCache.similarityThreshold", "cache filter semantic hit threshold (0-1)"),
    ("TrafficPolicy", "spec.ai.semanticCache.backend.kind", "must be Service"),
    ("TrafficPolicy", "spec.ai.semanticCache.backend.name", "cluster service/<name> (STRICT_DNS <name>) the cache filter calls"),
    ("TrafficPolicy", "spec.ai.semanticCache.backend.port", "cluster service/<name> port_value"),
    ("TrafficPolicy", "spec.ai.semanticCache.ttl", "cache filter semantic entry lifetime"),
    ("TrafficPolicy", "spec.loadBalancer.type", "cluster lb_policy (LEAST_REQUEST, ROUND_ROBIN, RANDOM)"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.interval", "cluster health_checks[0].interval and no_traffic_interval (else Envoy checks idle clusters only every 60 s)"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.timeout", "cluster health_checks[0].timeout"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.healthyThreshold", "cluster health_checks[0].healthy_threshold"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.unhealthyThreshold", "cluster health_checks[0].unhealthy_threshold"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.path", "health_checks[0].http_health_check.path (none: tcp_health_check; EndpointOverrides healthCheckPath / --health-check-path fill it)"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.http.path", "health_checks[0].http_health_check.path (kgateway spelling)"),
    ("TrafficPolicy", "spec.loadBalancer.healthCheck.http.host", "health_checks[0].http_health_check.host"),
    ("TrafficPolicy", "spec.jwt.providers[].name", "jwt_authn providers key; the policy's requirement_map entry (named after the policy) names it; the targeted HTTPRoutes' routes carry PerRouteConfig.requirement_name, no other route is verified; claim sub -> x-tollgate-client"),
    ("TrafficPolicy", "spec.jwt.optional", "true: a request without a valid token passes as anonymous, no claims and no x-tollgate-client (allow_missing_or_failed: an OpenAI SDK's own API key in Authorization is no JWT); default false: no valid token, 401 (403 for another audience) in the OpenAI format"),
    ("TrafficPolicy", "spec.apiKeyAuth.clients[].name", "api_key_auth credentials[].client on the targeted HTTPRoutes' routes (ApiKeyAuthPerRoute); forwarded as x-tollgate-client; the key itself is removed (hide_credentials)"),
    ("TrafficPolicy", "spec.apiKeyAuth.clients[].secretRef.name", "api_key_auth credentials[].key, read from <secrets-dir>/<name>/<key> or $TOLLGATE_SECRET_<NAME> (envoy.yaml then written 0600; /config_dump redacts it)"),
    ("TrafficPolicy", "spec.apiKeyAuth.clients[].secretRef.key", "file name inside the Secret folder (default Authorization); env variable suffix _<KEY>"),
    ("TrafficPolicy", "spec.apiKeyAuth.clients[].secretRef.namespace", "informative"),
    ("TrafficPolicy", "spec.apiKeyAuth.header", "api_key_auth key_sources[].header (default authorization, which takes `Bearer <key>` as the OpenAI SDKs send it); a missing or unknown key is a 401 in the OpenAI format"),
    ("TrafficPolicy", "spec.jwt.providers[].issuer", "jwt_authn providers[].issuer"),
    ("TrafficPolicy", "spec.jwt.providers[].audiences[]", "jwt_authn providers[].audiences"),
    ("TrafficPolicy", "spec.jwt.providers[].jwks.local.inline", "jwt_authn providers[].local_jwks.inline_string"),
    // GatewayParameters
    ("GatewayParameters", "spec.rawConfig.config.dns.refreshRate", "every cluster's dns_refresh_rate"),
    ("GatewayParameters", "spec.rawConfig.config.dns.respectDnsTtl", "every cluster's respect_dns_ttl"),
    ("GatewayParameters", "spec.rawConfig.config.dns.cacheMaxSize", "checked >= the number of host names the STRICT_DNS clusters resolve (each caches one entry per host; Envoy has no cache-size knob for them)"),
    ("GatewayParameters", "spec.kube.deployment.replicas", "kubernetes/deployment-patch.yaml spec.replicas (the HPA's minReplicas takes over once it runs)"),
    ("GatewayParameters", "spec.kube.deployment.container.resources.requests.cpu", "kubernetes/deployment-patch.yaml container resources.requests"),
    ("GatewayParameters", "spec.kube.deployment.container.resources.requests.memory", "kubernetes/deployment-patch.yaml container resources.requests"),
    ("GatewayParameters", "spec.kube.deployment.container.resources.limits.cpu", "kubernetes/deployment-patch.yaml container resources.limits (run Envoy with --concurrency equal to it)"),
    ("GatewayParameters", "spec.kube.deployment.container.resources.limits.memory", "overload_manager fixed_heap max_heap_size_bytes (shrink heap at 90 %, stop accepting requests at 95 %); deployment-patch.yaml resources.limits"),
    // HTTPRoute
    ("HTTPRoute", "spec.parentRefs[].**", "informative: one gateway"),
    ("HTTPRoute", "spec.hostnames[]", "virtual_hosts[].domains (none: `*`)"),
    ("HTTPRoute", "spec.rules[].matches[].path.type", "route match: Exact = path, PathPrefix = path_separated_prefix, RegularExpression = safe_regex"),
    ("HTTPRoute", "spec.rules[].matches[].path.value", "route match path; routes ordered Exact, longest prefix, regex"),
    ("HTTPRoute", "spec.rules[].matches[].headers[].name", "route match headers[].name; `x-tollgate-model` routes by the body's model: RouterConfig.models[value] = the rule's Backend, and the route matches the router's backend header (x-tollgate-backend) instead"),
    ("HTTPRoute", "spec.rules[].matches[].headers[].value", "route match headers[].string_match (exact or safe_regex); for x-tollgate-model: the model name"),
    ("HTTPRoute", "spec.rules[].matches[].headers[].type", "Exact (default) or RegularExpression; a model match must be Exact"),
    ("HTTPRoute", "spec.rules[].backendRefs[].name", "route cluster (weighted_clusters when several)"),
    ("HTTPRoute", "spec.rules[].backendRefs[].group", "informative"),
    ("HTTPRoute", "spec.rules[].backendRefs[].kind", "must be Backend"),
    ("HTTPRoute", "spec.rules[].backendRefs[].weight", "weighted_clusters.clusters[].weight"),
    ("HTTPRoute", "spec.rules[].timeouts.request", "route timeout (default 300s: the guide's streaming row)"),
    ("HTTPRoute", "spec.rules[].timeouts.backendRequest", "retry_policy.per_try_timeout"),
    ("HTTPRoute", "spec.rules[].retry.codes[]", "retry_policy.retriable_status_codes + retry_on retriable-status-codes; absent: [429] when a Backend of the rule has several providers (429 fails over), none otherwise; `codes: []` turns 429 failover off"),
    ("HTTPRoute", "spec.rules[].retry.attempts", "retry_policy.num_retries (default: priority groups - 1, at least 1)"),
    ("HTTPRoute", "spec.rules[].retry.backoff", "retry_policy.retry_back_off.base_interval"),
    // Pass-through kinds
    ("PrometheusRule", "spec.groups[].name", "prometheus-rules.yaml group name"),
    ("PrometheusRule", "spec.groups[].interval", "prometheus-rules.yaml group interval"),
    ("PrometheusRule", "spec.groups[].rules[].record", "prometheus-rules.yaml recording rule (`*hourly*` rate rules ×3600)"),
    ("PrometheusRule", "spec.groups[].rules[].alert", "prometheus-rules.yaml alert"),
    ("PrometheusRule", "spec.groups[].rules[].expr", "prometheus-rules.yaml expr (fixes: ×3600 on hourly rates, on() before hour())"),
    ("PrometheusRule", "spec.groups[].rules[].for", "prometheus-rules.yaml for"),
    ("PrometheusRule", "spec.groups[].rules[].labels.**", "prometheus-rules.yaml labels"),
    ("PrometheusRule", "spec.groups[].rules[].annotations.**", "prometheus-rules.yaml annotations"),
    ("HorizontalPodAutoscaler", "spec.**", "kubernetes/horizontalpodautoscaler-<name>.yaml unchanged; scaleTargetRef.name is the WasmPlugins' app selector"),
    ("EndpointOverrides", "spec.endpoints.*", "replaces the address of the named provider, static host, Backend or Service (http:// = no TLS)"),
    ("EndpointOverrides", "spec.healthCheckPath", "health_checks[0].http_health_check.path where a healthCheck names no path"),
];

/// The effect of `path` (indices written `[]`) in a document of `kind`.
pub fn effect(kind: &str, path: &str) -> Option<&'static str> {
    FIELD_TABLE
        .iter()
        .filter(|(k, _, _)| *k == kind || *k == "*")
        .find(|(_, pattern, _)| matches(pattern, path))
        .map(|(_, _, e)| *e)
}

/// `*` matches one segment, a trailing `.**` any rest (including nothing below).
fn matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix(".**") {
        return path == prefix
            || path.starts_with(&format!("{prefix}."))
            || path.starts_with(&format!("{prefix}["));
    }
    let pattern_parts: Vec<&str> = pattern.split('.').collect();
    let path_parts: Vec<&str> = path.split('.').collect();
    pattern_parts.len() == path_parts.len()
        && pattern_parts.iter().zip(&path_parts).all(|(p, s)| {
            *p == *s || (*p == "*" && !s.is_empty()) || (*p == "*[]" && s.ends_with("[]"))
        })
}

/// FIELDS.md's table rows, in table order.
pub fn markdown_table() -> String {
    let mut text = String::from("| kind | field | becomes |\n|---|---|---|\n");
    for (kind, path, effect) in FIELD_TABLE {
        text.push_str(&format!("| {kind} | `{path}` | {effect} |\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_indices_wildcards_and_subtrees() {
        assert!(effect(
            "Backend",
            "spec.ai.priorityGroups[].providers[].gemini.model"
        )
        .is_some());
        assert!(effect("HorizontalPodAutoscaler", "spec.metrics[].resource.name").is_some());
        assert!(effect("Backend", "metadata.name").is_some());
        assert!(effect(
            "Backend",
            "spec.ai.priorityGroups[].providers[].gemini.colour"
        )
        .is_none());
    }
}
