//! HTTPRoutes: rules, matches (model matches included), timeouts and retries, and what each
//! route serves (its kind, models and opted-in operations).

use super::*;
use crate::model::backend::{BackendSpec, StaticProtocol};
use tollgate_core::operations::{CHAT_COMPLETIONS, MODELS};

pub(super) fn route_plan(
    route: &Located<crate::model::http_route::HttpRouteSpec>,
    catalog: &Catalog,
    backends: &[BackendPlan],
    errors: &mut Vec<ConfigError>,
) -> RoutePlan {
    let spec = route.spec();
    let scope = route_scope(route, catalog, errors);
    let holds_provider_keys = spec
        .rules
        .iter()
        .flat_map(|rule| &rule.backend_refs)
        .filter_map(|r| backends.iter().find(|b| b.name == r.name))
        .flat_map(|b| b.priorities.iter().flatten())
        .filter_map(|e| e.provider.as_ref())
        .any(|p| p.api_key.is_some() || p.api_key_env.is_some());
    let rules = spec
        .rules
        .iter()
        .map(|rule| {
            let groups = rule
                .backend_refs
                .iter()
                .filter_map(|r| backends.iter().find(|b| b.name == r.name))
                .map(|b| b.priorities.len())
                .max()
                .unwrap_or(1);
            // A retry goes to another provider (previous_hosts), in the next group if any.
            let several_providers = rule
                .backend_refs
                .iter()
                .filter_map(|r| backends.iter().find(|b| b.name == r.name))
                .any(|b| b.priorities.iter().flatten().count() > 1);
            let retry = rule.retry.as_ref();
            let backend = rule
                .backend_refs
                .first()
                .map(|r| r.name.as_str())
                .unwrap_or_default();
            RulePlan {
                matches: rule
                    .matches
                    .iter()
                    .map(|m| match_plan(m, backend))
                    .collect(),
                backends: rule
                    .backend_refs
                    .iter()
                    .map(|r| (r.name.clone(), r.weight.unwrap_or(1)))
                    .collect(),
                timeout: rule
                    .timeouts
                    .as_ref()
                    .and_then(|t| t.request)
                    .unwrap_or(DEFAULT_ROUTE_TIMEOUT),
                per_try_timeout: rule.timeouts.as_ref().and_then(|t| t.backend_request),
                // Enough retries to reach every priority group once.
                num_retries: retry
                    .and_then(|r| r.attempts)
                    .unwrap_or(groups.saturating_sub(1).max(1) as u32),
                retry_codes: match retry.and_then(|r| r.codes.clone()) {
                    Some(codes) => codes,
                    // A rate-limited provider fails over to another provider.
                    None if several_providers => vec![429],
                    None => Vec::new(),
                },
                retry_backoff: retry.and_then(|r| r.backoff),
            }
        })
        .collect();
    RoutePlan {
        name: route.name().to_string(),
        scope,
        holds_provider_keys,
        hostnames: if spec.hostnames.is_empty() {
            vec!["*".to_string()]
        } else {
            spec.hostnames.clone()
        },
        rules,
    }
}

/// Stands for the router's backend header (RouterConfig.backend_header) in a planned match.
pub const BACKEND_HEADER_PLACEHOLDER: &str = "@router-backend-header";

/// `x-tollgate-model` matches: the model -> Backend map the router routes by. Such a rule needs
/// exactly one backendRef, an Exact value, and a model maps to one Backend only.
pub(super) fn model_routes(
    catalog: &Catalog,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, String> {
    let mut models: BTreeMap<String, (String, Location)> = BTreeMap::new();
    for route in &catalog.http_routes {
        for (r, rule) in route.spec().rules.iter().enumerate() {
            for (m, matcher) in rule.matches.iter().enumerate() {
                for (h, header) in matcher.headers.iter().enumerate() {
                    if !header.name.eq_ignore_ascii_case(MODEL_HEADER) {
                        continue;
                    }
                    let path = format!("spec.rules[{r}].matches[{m}].headers[{h}]");
                    let location = route.location.at(path.clone());
                    if header.match_type == Some(HeaderMatchType::RegularExpression) {
                        errors.push(ConfigError::new(
                            route.location.at(format!("{path}.type")),
                            "a model match must be Exact",
                        ));
                        continue;
                    }
                    let [backend_ref] = rule.backend_refs.as_slice() else {
                        errors.push(ConfigError::new(
                            route.location.at(format!("spec.rules[{r}].backendRefs")),
                            format!("a rule matching {MODEL_HEADER} needs exactly one backendRef"),
                        ));
                        continue;
                    };
                    match models.get(&header.value) {
                        Some((backend, first)) if *backend != backend_ref.name => {
                            errors.push(ConfigError::new(
                                location,
                                format!(
                                    "model {:?} already routes to Backend {backend:?} ({first})",
                                    header.value
                                ),
                            ))
                        }
                        Some(_) => {}
                        None => {
                            models
                                .insert(header.value.clone(), (backend_ref.name.clone(), location));
                        }
                    }
                }
            }
        }
    }
    models
        .into_iter()
        .map(|(model, (backend, _))| (model, backend))
        .collect()
}

pub(super) fn match_plan(
    matcher: &crate::model::http_route::RouteMatch,
    backend: &str,
) -> MatchPlan {
    let path = matcher.path.as_ref();
    MatchPlan {
        path_type: path
            .and_then(|p| p.match_type)
            .unwrap_or(PathMatchType::PathPrefix),
        path: path
            .map(|p| p.value.clone())
            .unwrap_or_else(|| "/".to_string()),
        headers: matcher
            .headers
            .iter()
            .map(|h| {
                if h.name.eq_ignore_ascii_case(MODEL_HEADER) {
                    (
                        BACKEND_HEADER_PLACEHOLDER.to_string(),
                        HeaderMatchType::Exact,
                        backend.to_string(),
                    )
                } else {
                    let match_type = h.match_type.unwrap_or(HeaderMatchType::Exact);
                    (h.name.to_ascii_lowercase(), match_type, h.value.clone())
                }
            })
            .collect(),
    }
}

/// The kind of a Backend as a route sees it.
fn backend_kind(spec: &BackendSpec) -> RouteKind {
    match spec.backend_type {
        BackendType::AI => RouteKind::Llm,
        BackendType::Static => match spec.static_hosts.as_ref().and_then(|s| s.protocol) {
            Some(StaticProtocol::MCP) => RouteKind::Mcp,
            Some(StaticProtocol::HTTP) | None => RouteKind::Proxy,
        },
    }
}

/// What an HTTPRoute serves: LLM when its Backends are AI Backends (models: the providers'
/// models and the route's model-match aliases; operations: the Backends' allowedOperations),
/// MCP when they are all MCP Backends, a plain proxy otherwise. AI and other Backends in one
/// HTTPRoute, or AI Backends allowing different operations, are errors: the gateway decides
/// per HTTPRoute.
fn route_scope(
    route: &Located<crate::model::http_route::HttpRouteSpec>,
    catalog: &Catalog,
    errors: &mut Vec<ConfigError>,
) -> RouteScope {
    let spec = route.spec();
    let mut kinds: Vec<(RouteKind, String, String)> = Vec::new();
    let mut models = BTreeSet::new();
    let mut operations: Option<(Vec<String>, String)> = None;
    for (r, rule) in spec.rules.iter().enumerate() {
        for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
            let path = format!("spec.rules[{r}].backendRefs[{b}]");
            let Some(backend) = catalog
                .backends
                .iter()
                .find(|b| b.name() == backend_ref.name)
            else {
                continue;
            };
            let kind = backend_kind(backend.spec());
            kinds.push((kind, backend_ref.name.clone(), path.clone()));
            let Some(ai) = &backend.spec().ai else {
                continue;
            };
            for provider in ai.priority_groups.iter().flat_map(|g| &g.providers) {
                let settings = [&provider.openai, &provider.anthropic, &provider.gemini];
                models.extend(
                    settings
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.model.clone()),
                );
            }
            let mut allowed = ai.allowed_operations.clone();
            allowed.sort();
            allowed.dedup();
            match &operations {
                None => operations = Some((allowed, backend_ref.name.clone())),
                Some((first, owner)) if *first != allowed => errors.push(ConfigError::new(
                    route.location.at(path),
                    format!(
                        "Backend {:?} allows operations {allowed:?}, but Backend {owner:?} of the same HTTPRoute allows {first:?}: the gateway decides per HTTPRoute, so split the route or allow the same operations",
                        backend_ref.name
                    ),
                )),
                Some(_) => {}
            }
        }
        for matcher in &rule.matches {
            models.extend(
                matcher
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(MODEL_HEADER))
                    .map(|h| h.value.clone()),
            );
        }
    }
    let has_llm = kinds.iter().any(|(k, _, _)| *k == RouteKind::Llm);
    if has_llm {
        if let Some((_, name, path)) = kinds.iter().find(|(k, _, _)| *k != RouteKind::Llm) {
            errors.push(ConfigError::new(
                route.location.at(path.clone()),
                format!(
                    "Backend {name:?} is not an AI Backend, but this HTTPRoute also routes to AI Backends: an LLM route serves only chat completions and the model list, so put {name:?} in an HTTPRoute of its own"
                ),
            ));
        }
        return RouteScope {
            kind: RouteKind::Llm,
            models: models.into_iter().collect(),
            operations: operations.map(|(ops, _)| ops).unwrap_or_default(),
        };
    }
    let all_mcp = !kinds.is_empty() && kinds.iter().all(|(k, _, _)| *k == RouteKind::Mcp);
    RouteScope {
        kind: if all_mcp {
            RouteKind::Mcp
        } else {
            RouteKind::Proxy
        },
        ..RouteScope::default()
    }
}

/// `spec.ai.allowedOperations`: path suffixes of OpenAI-format operations, on Backends whose
/// providers all speak OpenAI (the request is forwarded untranslated).
pub(super) fn check_allowed_operations(catalog: &Catalog, errors: &mut Vec<ConfigError>) {
    for backend in &catalog.backends {
        let Some(ai) = &backend.spec().ai else {
            continue;
        };
        for (o, operation) in ai.allowed_operations.iter().enumerate() {
            let at = backend
                .location
                .at(format!("spec.ai.allowedOperations[{o}]"));
            let well_formed = operation.len() > 1
                && operation.starts_with('/')
                && !operation.ends_with('/')
                && !operation.contains("//")
                && operation
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
            if !well_formed {
                errors.push(ConfigError::new(
                    at,
                    format!("expected a path suffix such as \"/embeddings\" (letters, digits, '/', '_', '-', '.'), got {operation:?}"),
                ));
                continue;
            }
            if operation.ends_with(CHAT_COMPLETIONS)
                || operation.ends_with(MODELS)
                || operation.contains("/models/")
            {
                errors.push(ConfigError::new(
                    at,
                    format!("{operation:?} is served by the gateway itself (chat completions, the model list)"),
                ));
                continue;
            }
            let not_openai = ai
                .priority_groups
                .iter()
                .flat_map(|g| &g.providers)
                .find(|p| p.openai.is_none());
            if let Some(provider) = not_openai {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "operations are forwarded untranslated, so every provider must be openai; provider {:?} is not",
                        provider.name
                    ),
                ));
            }
        }
    }
}
