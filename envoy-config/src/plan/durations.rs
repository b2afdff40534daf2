//! Durations Envoy requires to be positive: a `0s` there is reported here, with its field,
//! rather than by Envoy at load time without one.

use super::*;

/// Every zero duration where Envoy needs a positive one.
pub(super) fn check_positive_durations(catalog: &Catalog, errors: &mut Vec<ConfigError>) {
    let mut check = |location: &Location, path: &str, value: Option<Duration>| {
        if value.is_some_and(|d| d.millis == 0) {
            errors.push(ConfigError::new(
                location.at(path),
                "must be longer than 0s",
            ));
        }
    };
    for policy in &catalog.backend_config_policies {
        let spec = policy.spec();
        let at = &policy.location;
        let tcp = spec.connection_pool.as_ref().and_then(|p| p.tcp.as_ref());
        check(
            at,
            "spec.connectionPool.tcp.connectTimeout",
            tcp.and_then(|t| t.connect_timeout),
        );
        check(at, "spec.connectTimeout", spec.connect_timeout);
        let outlier = spec.outlier_detection.as_ref();
        check(
            at,
            "spec.outlierDetection.interval",
            outlier.and_then(|o| o.interval),
        );
        check(
            at,
            "spec.outlierDetection.baseEjectionTime",
            outlier.and_then(|o| o.base_ejection_time),
        );
    }
    for policy in &catalog.traffic_policies {
        let check_spec = policy
            .spec()
            .load_balancer
            .as_ref()
            .and_then(|lb| lb.health_check.as_ref());
        check(
            &policy.location,
            "spec.loadBalancer.healthCheck.interval",
            check_spec.map(|c| c.interval),
        );
        check(
            &policy.location,
            "spec.loadBalancer.healthCheck.timeout",
            check_spec.map(|c| c.timeout),
        );
    }
    for parameters in &catalog.gateway_parameters {
        let dns = parameters
            .spec()
            .raw_config
            .as_ref()
            .and_then(|r| r.config.dns.as_ref());
        check(
            &parameters.location,
            "spec.rawConfig.config.dns.refreshRate",
            dns.and_then(|d| d.refresh_rate),
        );
    }
}
