//! GatewayParameters: DNS settings and the memory limit, merged from every document.

use super::*;

pub(super) fn apply_gateway_parameters(
    catalog: &Catalog,
    plan: &mut Plan,
    errors: &mut Vec<ConfigError>,
) {
    let mut setters = BTreeMap::new();
    for parameters in &catalog.gateway_parameters {
        let at = &parameters.location;
        let target = "the gateway";
        if let Some(dns) = parameters
            .spec()
            .raw_config
            .as_ref()
            .and_then(|r| r.config.dns.as_ref())
        {
            if let Some(rate) = dns.refresh_rate {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "dns_refresh_rate",
                    at,
                    "spec.rawConfig.config.dns.refreshRate",
                ) {
                    plan.dns.refresh_rate = Some(rate);
                }
            }
            if let Some(respect) = dns.respect_dns_ttl {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "respect_dns_ttl",
                    at,
                    "spec.rawConfig.config.dns.respectDnsTtl",
                ) {
                    plan.dns.respect_dns_ttl = Some(respect);
                }
            }
            if let Some(size) = dns.cache_max_size {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "dns cache size",
                    at,
                    "spec.rawConfig.config.dns.cacheMaxSize",
                ) {
                    plan.dns.cache_max_size = Some(size);
                    let hosts = dns_host_names(plan);
                    if hosts.len() > size as usize {
                        errors.push(ConfigError::new(
                            at.at("spec.rawConfig.config.dns.cacheMaxSize"),
                            format!(
                                "{size} is fewer than the {} host names the clusters resolve",
                                hosts.len()
                            ),
                        ));
                    }
                }
            }
        }
        let limits = parameters
            .spec()
            .kube
            .as_ref()
            .and_then(|k| k.deployment.container.as_ref())
            .and_then(|c| c.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        if let Some(memory) = limits.and_then(|l| l.memory) {
            if claim(
                &mut setters,
                errors,
                target,
                "memory limit",
                at,
                "spec.kube.deployment.container.resources.limits.memory",
            ) {
                plan.memory_limit_bytes = Some(memory.units());
            }
        }
    }
}

/// Host names (not IP addresses) that DNS clusters resolve.
pub fn dns_host_names(plan: &Plan) -> BTreeSet<String> {
    let endpoints = plan
        .backends
        .iter()
        .flat_map(|b| b.priorities.iter().flatten().map(|e| &e.address));
    endpoints
        .chain(plan.services.values().map(|s| &s.address))
        .filter(|a| a.host.parse::<std::net::IpAddr>().is_err())
        .map(|a| a.host.clone())
        .collect()
}
