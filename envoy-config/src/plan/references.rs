//! Reference checks: every targetRef and backendRef names a defined object of the right kind.

use super::*;

/// Every targetRef and backendRef must name a defined object of the right kind: one error per
/// missing reference, naming it.
pub(super) fn check_references(catalog: &Catalog) -> Vec<ConfigError> {
    let backends: BTreeSet<&str> = catalog.backends.iter().map(|b| b.name()).collect();
    let routes: BTreeSet<&str> = catalog.http_routes.iter().map(|r| r.name()).collect();
    let mut errors = Vec::new();
    let mut check_target = |location: &Location,
                            path: String,
                            target: &TargetRef,
                            allowed: &[&str]| {
        let defined = match target.kind.as_str() {
            "Backend" if allowed.contains(&"Backend") => backends.contains(target.name.as_str()),
            "HTTPRoute" if allowed.contains(&"HTTPRoute") => routes.contains(target.name.as_str()),
            other => {
                errors.push(ConfigError::new(
                    location.at(format!("{path}.kind")),
                    format!("cannot target a {other}; expected {}", allowed.join(" or ")),
                ));
                return;
            }
        };
        if !defined {
            errors.push(ConfigError::new(
                location.at(path),
                format!("{} {:?} is not defined", target.kind, target.name),
            ));
        }
    };
    for policy in &catalog.traffic_policies {
        for (i, target) in policy.spec().target_refs.iter().enumerate() {
            check_target(
                &policy.location,
                format!("spec.targetRefs[{i}]"),
                target,
                &["HTTPRoute", "Backend"],
            );
        }
    }
    for policy in &catalog.backend_config_policies {
        for (i, target) in policy.spec().target_refs.iter().enumerate() {
            check_target(
                &policy.location,
                format!("spec.targetRefs[{i}]"),
                target,
                &["Backend"],
            );
        }
    }
    for route in &catalog.http_routes {
        for (r, rule) in route.spec().rules.iter().enumerate() {
            for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
                let path = format!("spec.rules[{r}].backendRefs[{b}]");
                let kind = backend_ref.kind.as_deref().unwrap_or("Backend");
                if kind != "Backend" {
                    errors.push(ConfigError::new(
                        route.location.at(format!("{path}.kind")),
                        format!("cannot route to a {kind}; expected Backend"),
                    ));
                } else if !backends.contains(backend_ref.name.as_str()) {
                    errors.push(ConfigError::new(
                        route.location.at(path),
                        format!("Backend {:?} is not defined", backend_ref.name),
                    ));
                }
            }
        }
    }
    errors
}
