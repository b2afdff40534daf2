//! HTTPRoutes: rules, matches (model matches included), timeouts and retries.

use super::*;

pub(super) fn route_plan(
    route: &Located<crate::model::http_route::HttpRouteSpec>,
    backends: &[BackendPlan],
) -> RoutePlan {
    let spec = route.spec();
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
                retry_codes: retry.map(|r| r.codes.clone()).unwrap_or_default(),
                retry_backoff: retry.and_then(|r| r.backoff),
            }
        })
        .collect();
    RoutePlan {
        name: route.name().to_string(),
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
