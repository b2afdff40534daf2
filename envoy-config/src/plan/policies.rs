//! Policies merged onto their targets: BackendConfigPolicies onto clusters, TrafficPolicies
//! onto Backends (load balancing) and HTTPRoutes (budgets, caching, client authentication:
//! JWT requirements and static API keys), JWT providers.

use super::backends::{take_override, Overrides};
use super::*;

pub(super) fn apply_backend_config_policies(
    catalog: &Catalog,
    plan: &mut Plan,
    errors: &mut Vec<ConfigError>,
) {
    let mut setters = BTreeMap::new();
    for policy in &catalog.backend_config_policies {
        let spec = policy.spec();
        let at = &policy.location;
        for target in &spec.target_refs {
            let Some(backend) = plan.backends.iter_mut().find(|b| b.name == target.name) else {
                continue;
            };
            let target_name = format!("Backend/{}", backend.name);
            let settings = &mut backend.connection;
            let mut set_u32 =
                |slot: &mut Option<u32>, value: Option<u32>, field: &'static str, path: &str| {
                    if let Some(value) = value {
                        if claim(&mut setters, errors, &target_name, field, at, path) {
                            *slot = Some(value);
                        }
                    }
                };
            if let Some(pool) = &spec.connection_pool {
                if let Some(tcp) = &pool.tcp {
                    set_u32(
                        &mut settings.max_connections,
                        tcp.max_connections,
                        "max_connections",
                        "spec.connectionPool.tcp.maxConnections",
                    );
                }
                if let Some(http) = &pool.http {
                    set_u32(
                        &mut settings.max_pending_requests,
                        http.http1_max_pending_requests,
                        "max_pending_requests",
                        "spec.connectionPool.http.http1MaxPendingRequests",
                    );
                    set_u32(
                        &mut settings.max_requests,
                        http.http2_max_requests,
                        "max_requests",
                        "spec.connectionPool.http.http2MaxRequests",
                    );
                    set_u32(
                        &mut settings.max_requests_per_connection,
                        http.max_requests_per_connection,
                        "max_requests_per_connection",
                        "spec.connectionPool.http.maxRequestsPerConnection",
                    );
                    set_u32(
                        &mut settings.max_retries,
                        http.max_retries,
                        "max_retries",
                        "spec.connectionPool.http.maxRetries",
                    );
                }
            }
            if let Some(breakers) = &spec.circuit_breakers {
                set_u32(
                    &mut settings.max_connections,
                    breakers.max_connections,
                    "max_connections",
                    "spec.circuitBreakers.maxConnections",
                );
                set_u32(
                    &mut settings.max_pending_requests,
                    breakers.max_pending_requests,
                    "max_pending_requests",
                    "spec.circuitBreakers.maxPendingRequests",
                );
                set_u32(
                    &mut settings.max_requests,
                    breakers.max_requests,
                    "max_requests",
                    "spec.circuitBreakers.maxRequests",
                );
                set_u32(
                    &mut settings.max_retries,
                    breakers.max_retries,
                    "max_retries",
                    "spec.circuitBreakers.maxRetries",
                );
            }
            if let Some(common) = &spec.common_http_protocol_options {
                set_u32(
                    &mut settings.max_requests_per_connection,
                    common.max_requests_per_connection,
                    "max_requests_per_connection",
                    "spec.commonHttpProtocolOptions.maxRequestsPerConnection",
                );
                if let Some(idle) = common.idle_timeout {
                    if claim(
                        &mut setters,
                        errors,
                        &target_name,
                        "idle_timeout",
                        at,
                        "spec.commonHttpProtocolOptions.idleTimeout",
                    ) {
                        settings.idle_timeout = Some(idle);
                    }
                }
            }
            let connect_timeouts = [
                (
                    spec.connection_pool
                        .as_ref()
                        .and_then(|p| p.tcp.as_ref())
                        .and_then(|t| t.connect_timeout),
                    "spec.connectionPool.tcp.connectTimeout",
                ),
                (spec.connect_timeout, "spec.connectTimeout"),
            ];
            for (timeout, path) in connect_timeouts {
                if let Some(timeout) = timeout {
                    if claim(
                        &mut setters,
                        errors,
                        &target_name,
                        "connect_timeout",
                        at,
                        path,
                    ) {
                        settings.connect_timeout = Some(timeout);
                    }
                }
            }
            let upgrade = spec
                .connection_pool
                .as_ref()
                .and_then(|p| p.http.as_ref())
                .and_then(|h| h.h2_upgrade_policy);
            if let Some(upgrade) = upgrade {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "h2_upgrade_policy",
                    at,
                    "spec.connectionPool.http.h2UpgradePolicy",
                ) && upgrade == H2UpgradePolicy::Upgrade
                {
                    settings
                        .http2
                        .get_or_insert_with(Http2ProtocolOptions::default);
                }
            }
            if let Some(options) = &spec.http2_protocol_options {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "http2_protocol_options",
                    at,
                    "spec.http2ProtocolOptions",
                ) {
                    settings.http2 = Some(options.clone());
                }
            }
            if let Some(keepalive) = &spec.tcp_keepalive {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "tcp_keepalive",
                    at,
                    "spec.tcpKeepalive",
                ) {
                    settings.keepalive = Some(keepalive.clone());
                }
            }
            if let Some(outlier) = &spec.outlier_detection {
                if let Some(percent) = outlier.max_ejection_percent.filter(|p| *p > 100) {
                    errors.push(ConfigError::new(
                        at.at("spec.outlierDetection.maxEjectionPercent"),
                        format!("expected a percentage from 0 to 100, got {percent}"),
                    ));
                }
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "outlier_detection",
                    at,
                    "spec.outlierDetection",
                ) {
                    settings.outlier = Some(outlier.clone());
                }
            }
        }
    }
    // HTTP/2 explicitly refused by one policy and configured by another is a contradiction.
    for policy in &catalog.backend_config_policies {
        let refuses = matches!(
            policy
                .spec()
                .connection_pool
                .as_ref()
                .and_then(|p| p.http.as_ref())
                .and_then(|h| h.h2_upgrade_policy),
            Some(H2UpgradePolicy::DoNotUpgrade)
        );
        for target in policy.spec().target_refs.iter().filter(|_| refuses) {
            if let Some(backend) = plan
                .backends
                .iter_mut()
                .find(|b| b.name == target.name && b.connection.http2.is_some())
            {
                errors.push(ConfigError::new(
                    policy
                        .location
                        .at("spec.connectionPool.http.h2UpgradePolicy"),
                    format!(
                        "DO_NOT_UPGRADE contradicts the http2ProtocolOptions set for Backend/{}",
                        backend.name
                    ),
                ));
            }
        }
    }
}

pub(super) fn apply_traffic_policies(
    catalog: &Catalog,
    plan: &mut Plan,
    health_check_path: Option<&str>,
    overrides: &mut Overrides,
    secrets: &SecretStore,
    errors: &mut Vec<ConfigError>,
) {
    let mut setters = BTreeMap::new();
    let mut jwt_providers: Vec<JwtProvider> = Vec::new();
    let mut jwt_uses: Vec<Location> = Vec::new();
    for policy in &catalog.traffic_policies {
        let spec = policy.spec();
        let at = &policy.location;
        if let Some(jwt) = &spec.jwt {
            for (p, provider) in jwt.providers.iter().enumerate() {
                match jwt_providers
                    .iter()
                    .find(|known| known.name == provider.name)
                {
                    Some(known)
                        if known.issuer != provider.issuer
                            || known.audiences != provider.audiences
                            || known.jwks.local.inline != provider.jwks.local.inline =>
                    {
                        errors.push(ConfigError::new(
                            at.at(format!("spec.jwt.providers[{p}].name")),
                            format!(
                                "JWT provider {:?} is defined differently by another TrafficPolicy",
                                provider.name
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => jwt_providers.push(provider.clone()),
                }
            }
            if jwt.providers.is_empty() {
                errors.push(ConfigError::new(
                    at.at("spec.jwt.providers"),
                    "needs at least one provider",
                ));
            }
            plan.jwt_requirements.insert(
                policy.name().to_string(),
                JwtRequirement {
                    providers: jwt.providers.iter().map(|p| p.name.clone()).collect(),
                    optional: jwt.optional,
                },
            );
        }
        let api_keys = spec
            .api_key_auth
            .as_ref()
            .and_then(|auth| api_keys_plan(policy.name(), at, auth, secrets, errors));
        if let Some(rate_limit) = &spec.rate_limit {
            for (b, bucket) in rate_limit.local.iter().enumerate() {
                let path = format!("spec.rateLimit.local[{b}]");
                if bucket.max_tokens == 0 || bucket.tokens_per_fill == 0 {
                    errors.push(ConfigError::new(
                        at.at(path.clone()),
                        "maxTokens and tokensPerFill must be at least 1",
                    ));
                }
                if bucket.fill_interval.millis == 0 {
                    errors.push(ConfigError::new(
                        at.at(format!("{path}.fillInterval")),
                        "must be longer than 0s",
                    ));
                }
                for (d, descriptor) in bucket.descriptors.iter().enumerate() {
                    for (e, entry) in descriptor.entries.iter().enumerate() {
                        if !budget_key_known(&entry.value) {
                            errors.push(ConfigError::new(
                                at.at(format!("{path}.descriptors[{d}].entries[{e}].value")),
                                format!("unknown descriptor value {:?}: expected jwt.<claim>, header.<name>, client, source.address or model", entry.value),
                            ));
                        }
                        if entry.value.starts_with("jwt.") {
                            jwt_uses
                                .push(at.at(format!("{path}.descriptors[{d}].entries[{e}].value")));
                        }
                    }
                }
            }
        }
        if let Some(global) = spec.rate_limit.as_ref().and_then(|r| r.global.as_ref()) {
            let path = "spec.rateLimit.global";
            if global.backend.kind != "Service" {
                errors.push(ConfigError::new(
                    at.at(format!("{path}.backend.kind")),
                    format!("expected Service, got {:?}", global.backend.kind),
                ));
            }
            let name = &global.backend.name;
            match &plan.budget_service {
                Some(known) if known.service != *name => errors.push(ConfigError::new(
                    at.at(format!("{path}.backend.name")),
                    format!(
                        "every budget shares one budget service, and another TrafficPolicy names {:?}",
                        known.service
                    ),
                )),
                Some(_) => {}
                None => {
                    let address = take_override(overrides, name).unwrap_or(Address {
                        host: name.clone(),
                        port: global.backend.port,
                        tls: false,
                        path_prefix: String::new(),
                    });
                    plan.services.insert(
                        name.clone(),
                        ServicePlan {
                            cluster: format!("service/{name}"),
                            address,
                        },
                    );
                    plan.budget_service = Some(BudgetServicePlan {
                        service: name.clone(),
                        fail_open: global.fail_open,
                        timeout: global.timeout,
                    });
                }
            }
        }
        if let Some(semantic) = spec.ai.as_ref().and_then(|ai| ai.semantic_cache.as_ref()) {
            let path = "spec.ai.semanticCache";
            if !(0.0..=1.0).contains(&semantic.similarity_threshold) {
                errors.push(ConfigError::new(
                    at.at(format!("{path}.similarityThreshold")),
                    format!(
                        "expected a number from 0 to 1, got {}",
                        semantic.similarity_threshold
                    ),
                ));
            }
            if semantic.backend.kind != "Service" {
                errors.push(ConfigError::new(
                    at.at(format!("{path}.backend.kind")),
                    format!("expected Service, got {:?}", semantic.backend.kind),
                ));
            }
            let name = &semantic.backend.name;
            let address = take_override(overrides, name).unwrap_or(Address {
                host: name.clone(),
                port: semantic.backend.port,
                tls: false,
                path_prefix: String::new(),
            });
            plan.services.insert(
                name.clone(),
                ServicePlan {
                    cluster: format!("service/{name}"),
                    address,
                },
            );
        }
        if let Some(caching) = &spec.caching {
            crate::output::cache_section::check(caching, at, errors);
        }
        for (t, target) in spec.target_refs.iter().enumerate() {
            let target_path = format!("spec.targetRefs[{t}]");
            match target.kind.as_str() {
                "Backend" => {
                    for (present, section) in [
                        (spec.rate_limit.is_some(), "rateLimit"),
                        (spec.caching.is_some(), "caching"),
                        (spec.ai.is_some(), "ai"),
                        (spec.jwt.is_some(), "jwt"),
                        (spec.api_key_auth.is_some(), "apiKeyAuth"),
                    ] {
                        if present {
                            errors.push(ConfigError::new(
                                at.at(format!("spec.{section}")),
                                format!("{section} applies to HTTPRoutes, but {target_path} is Backend {:?}", target.name),
                            ));
                        }
                    }
                    let Some(lb) = &spec.load_balancer else {
                        continue;
                    };
                    let Some(backend) = plan.backends.iter_mut().find(|b| b.name == target.name)
                    else {
                        continue;
                    };
                    if !claim(
                        &mut setters,
                        errors,
                        &format!("Backend/{}", backend.name),
                        "loadBalancer",
                        at,
                        "spec.loadBalancer",
                    ) {
                        continue;
                    }
                    let health_check = lb.health_check.as_ref().map(|check| HealthCheckPlan {
                        check: check.clone(),
                        path: check
                            .http
                            .as_ref()
                            .map(|h| h.path.clone())
                            .or_else(|| check.path.clone())
                            .or_else(|| health_check_path.map(str::to_string)),
                        host: check.http.as_ref().and_then(|h| h.host.clone()),
                    });
                    backend.load_balancer = Some(LoadBalancerPlan {
                        policy: lb.policy,
                        health_check,
                    });
                }
                "HTTPRoute" => {
                    if spec.load_balancer.is_some() {
                        errors.push(ConfigError::new(
                            at.at("spec.loadBalancer"),
                            format!("loadBalancer applies to Backends, but {target_path} is HTTPRoute {:?}", target.name),
                        ));
                    }
                    let route = format!("HTTPRoute/{}", target.name);
                    let policies = plan.route_policies.entry(target.name.clone()).or_default();
                    if let Some(rate_limit) = &spec.rate_limit {
                        policies
                            .token_buckets
                            .extend(rate_limit.local.iter().cloned());
                        policies
                            .token_budgets
                            .push((policy.name().to_string(), rate_limit.local.clone()));
                    }
                    if let Some(caching) = &spec.caching {
                        if claim(&mut setters, errors, &route, "caching", at, "spec.caching") {
                            policies.caching = Some(caching.clone());
                        }
                    }
                    // One way of client authentication per route: two filters would each
                    // require their own credential, not either.
                    if spec.jwt.is_some()
                        && claim(
                            &mut setters,
                            errors,
                            &route,
                            "client authentication",
                            at,
                            "spec.jwt",
                        )
                    {
                        policies.jwt = Some(policy.name().to_string());
                    }
                    if let Some(keys) = &api_keys {
                        if claim(
                            &mut setters,
                            errors,
                            &route,
                            "client authentication",
                            at,
                            "spec.apiKeyAuth",
                        ) {
                            policies.api_keys = Some(keys.clone());
                        }
                    }
                    if spec.jwt.is_some() && spec.api_key_auth.is_some() {
                        errors.push(ConfigError::new(
                            at.at("spec.apiKeyAuth"),
                            "one TrafficPolicy sets both jwt and apiKeyAuth: a route takes one way of client authentication",
                        ));
                    }
                    if let Some(semantic) =
                        spec.ai.as_ref().and_then(|ai| ai.semantic_cache.as_ref())
                    {
                        if claim(
                            &mut setters,
                            errors,
                            &route,
                            "semanticCache",
                            at,
                            "spec.ai.semanticCache",
                        ) {
                            policies.semantic_cache = Some(semantic.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if jwt_uses.is_empty() && plan.jwt_requirements.is_empty() {
        return;
    }
    if jwt_providers.is_empty() {
        for location in jwt_uses {
            errors.push(ConfigError::new(
                location,
                "keys on a JWT claim, but no TrafficPolicy defines spec.jwt.providers to verify the token",
            ));
        }
    } else {
        plan.jwt = Some(jwt_providers);
    }
}

/// The keys of `spec.apiKeyAuth`, read from their Secrets. Client names become a header
/// value, so they are tokens; two clients with one key could not be told apart.
fn api_keys_plan(
    policy: &str,
    at: &Location,
    auth: &crate::model::traffic_policy::ApiKeyAuth,
    secrets: &SecretStore,
    errors: &mut Vec<ConfigError>,
) -> Option<ApiKeysPlan> {
    let before = errors.len();
    if auth.clients.is_empty() {
        errors.push(ConfigError::new(
            at.at("spec.apiKeyAuth.clients"),
            "needs at least one client",
        ));
    }
    let header = auth
        .header
        .clone()
        .unwrap_or_else(|| "authorization".to_string())
        .to_ascii_lowercase();
    let header_ok = !header.is_empty()
        && header
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !header_ok || header.starts_with(':') {
        errors.push(ConfigError::new(
            at.at("spec.apiKeyAuth.header"),
            format!("expected a header name, got {header:?}"),
        ));
    }
    let mut clients: Vec<(String, SecretValue)> = Vec::new();
    for (c, client) in auth.clients.iter().enumerate() {
        let path = format!("spec.apiKeyAuth.clients[{c}]");
        let name_ok = !client.name.is_empty()
            && client
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
        if !name_ok {
            errors.push(ConfigError::new(
                at.at(format!("{path}.name")),
                format!(
                    "expected letters, digits, '.', '_' or '-', got {:?}",
                    client.name
                ),
            ));
        }
        if clients.iter().any(|(name, _)| *name == client.name) {
            errors.push(ConfigError::new(
                at.at(format!("{path}.name")),
                format!("client {:?} is listed twice", client.name),
            ));
        }
        let secret = &client.secret_ref;
        match secrets.resolve(&secret.name, secret.key.as_deref()) {
            Ok((value, _origin)) => {
                if value.expose().is_empty() {
                    errors.push(ConfigError::new(
                        at.at(format!("{path}.secretRef")),
                        "the key is empty",
                    ));
                } else if let Some((other, _)) = clients.iter().find(|(_, v)| *v == value) {
                    errors.push(ConfigError::new(
                        at.at(format!("{path}.secretRef")),
                        format!("client {:?} has the same key as {other:?}", client.name),
                    ));
                }
                clients.push((client.name.clone(), value));
            }
            Err(message) => errors.push(ConfigError::new(
                at.at(format!("{path}.secretRef")),
                message,
            )),
        }
    }
    (errors.len() == before).then(|| ApiKeysPlan {
        policy: policy.to_string(),
        header,
        clients,
    })
}

/// Whether the budget stage can read a descriptor value (`tollgate_budget::KeyPart::parse`).
fn budget_key_known(value: &str) -> bool {
    let name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(':')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    match value.split_once('.') {
        Some(("jwt" | "header", rest)) => name(rest),
        _ => matches!(
            value,
            "client"
                | "client.key"
                | "apiKey.client"
                | "source.address"
                | "client.address"
                | "remote_address"
                | "model"
                | "llm.model"
        ),
    }
}
