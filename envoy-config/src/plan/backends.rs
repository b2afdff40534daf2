//! Backends: priority groups of providers (or static hosts) placed at their endpoints, with
//! overrides applied and API keys read.

use super::*;

/// An override: where it was given, and whether anything used it.
pub(super) type Overrides = BTreeMap<String, (OverrideSource, bool)>;

/// Where an override was given and what it says.
#[derive(Debug, Clone)]
pub(super) struct OverrideSource {
    pub(super) location: Location,
    pub(super) address: Address,
}

pub(super) fn endpoint_overrides(
    catalog: &Catalog,
    options: &PlanOptions,
    errors: &mut Vec<ConfigError>,
) -> Overrides {
    let mut overrides = Overrides::new();
    for document in &catalog.endpoint_overrides {
        for (name, url) in &document.spec().endpoints {
            let location = document.location.at(format!("spec.endpoints.{name}"));
            match endpoint::parse_url(url) {
                Ok(address) => {
                    overrides.insert(name.clone(), (OverrideSource { location, address }, false));
                }
                Err(message) => errors.push(ConfigError::new(location, message)),
            }
        }
    }
    for (name, url) in &options.endpoints {
        let location = Location::file("--endpoint").at(name.clone());
        match endpoint::parse_url(url) {
            Ok(address) => {
                overrides.insert(name.clone(), (OverrideSource { location, address }, false));
            }
            Err(message) => errors.push(ConfigError::new(location, message)),
        }
    }
    overrides
}

pub(super) fn take_override(overrides: &mut Overrides, name: &str) -> Option<Address> {
    overrides.get_mut(name).map(|(source, used)| {
        *used = true;
        source.address.clone()
    })
}

pub(super) fn backend_plan(
    backend: &Located<crate::model::backend::BackendSpec>,
    overrides: &mut Overrides,
    secrets: &SecretStore,
    models: &mut BTreeSet<(String, String)>,
    errors: &mut Vec<ConfigError>,
) -> Option<BackendPlan> {
    let spec = backend.spec();
    let location = &backend.location;
    let mut priorities = Vec::new();
    match spec.backend_type {
        BackendType::AI => {
            let Some(ai) = &spec.ai else {
                errors.push(ConfigError::new(
                    location.at("spec.ai"),
                    "a Backend of type AI needs spec.ai",
                ));
                return None;
            };
            if ai.priority_groups.is_empty() {
                errors.push(ConfigError::new(
                    location.at("spec.ai.priorityGroups"),
                    "needs at least one priority group",
                ));
            }
            let mut names = BTreeSet::new();
            for (g, group) in ai.priority_groups.iter().enumerate() {
                if group.providers.is_empty() {
                    errors.push(ConfigError::new(
                        location.at(format!("spec.ai.priorityGroups[{g}].providers")),
                        "needs at least one provider",
                    ));
                }
                let mut endpoints = Vec::new();
                for (p, provider) in group.providers.iter().enumerate() {
                    let path = format!("spec.ai.priorityGroups[{g}].providers[{p}]");
                    if !names.insert(provider.name.clone()) {
                        errors.push(ConfigError::new(
                            location.at(format!("{path}.name")),
                            format!(
                                "provider name {:?} is used twice in this Backend",
                                provider.name
                            ),
                        ));
                    }
                    let sections: Vec<(ProviderKind, &str, &ProviderSettings)> = [
                        (ProviderKind::Openai, "openai", provider.openai.as_ref()),
                        (
                            ProviderKind::Anthropic,
                            "anthropic",
                            provider.anthropic.as_ref(),
                        ),
                        (ProviderKind::Gemini, "gemini", provider.gemini.as_ref()),
                    ]
                    .into_iter()
                    .filter_map(|(kind, key, settings)| settings.map(|s| (kind, key, s)))
                    .collect();
                    let [(kind, key, settings)] = sections.as_slice() else {
                        errors.push(ConfigError::new(
                            location.at(path),
                            format!(
                                "provider {:?} needs exactly one of openai, anthropic, gemini",
                                provider.name
                            ),
                        ));
                        continue;
                    };
                    let path = format!("{path}.{key}");
                    if settings.api_version.is_some() && *kind != ProviderKind::Anthropic {
                        errors.push(ConfigError::new(
                            location.at(format!("{path}.apiVersion")),
                            "only anthropic providers take apiVersion",
                        ));
                    }
                    let address = take_override(overrides, &provider.name).unwrap_or_else(|| {
                        endpoint::from_settings(
                            *kind,
                            settings.host.as_deref(),
                            settings.port,
                            settings.path.as_deref(),
                        )
                    });
                    let api_key = match &settings.auth_token {
                        None => None,
                        Some(token) => match (token.kind, &token.secret_ref, &token.inline) {
                            (AuthTokenKind::SecretRef, Some(secret), _) => {
                                match secrets.resolve(&secret.name, secret.key.as_deref()) {
                                    Ok((value, _origin)) => Some(value.expose().to_string()),
                                    Err(message) => {
                                        errors.push(ConfigError::new(
                                            location.at(format!("{path}.authToken.secretRef")),
                                            message,
                                        ));
                                        None
                                    }
                                }
                            }
                            (AuthTokenKind::Inline, _, Some(inline)) => Some(
                                crate::secrets::SecretValue::inline(inline)
                                    .expose()
                                    .to_string(),
                            ),
                            (AuthTokenKind::SecretRef, None, _) => {
                                errors.push(ConfigError::new(
                                    location.at(format!("{path}.authToken")),
                                    "kind SecretRef needs secretRef.name",
                                ));
                                None
                            }
                            (AuthTokenKind::Inline, _, None) => {
                                errors.push(ConfigError::new(
                                    location.at(format!("{path}.authToken")),
                                    "kind Inline needs inline",
                                ));
                                None
                            }
                        },
                    };
                    if let Some(model) = &settings.model {
                        models.insert((endpoint::kind_name(*kind).to_string(), model.clone()));
                    }
                    endpoints.push(EndpointPlan {
                        name: provider.name.clone(),
                        provider: Some(ProviderEndpoint {
                            name: provider.name.clone(),
                            kind: *kind,
                            model: settings.model.clone(),
                            override_model: settings.model.is_some(),
                            authority: address.authority(),
                            path_prefix: address.path_prefix.clone(),
                            api_key,
                            api_key_env: None,
                            api_version: settings.api_version.clone(),
                            allow_client_headers: Vec::new(),
                        }),
                        address,
                    });
                }
                priorities.push(endpoints);
            }
        }
        BackendType::Static => {
            let Some(static_hosts) = &spec.static_hosts else {
                errors.push(ConfigError::new(
                    location.at("spec.static"),
                    "a Backend of type Static needs spec.static",
                ));
                return None;
            };
            let endpoints = static_hosts
                .hosts
                .iter()
                .map(|h| {
                    let address = take_override(overrides, &h.host)
                        .or_else(|| take_override(overrides, backend.name()))
                        .unwrap_or(Address {
                            host: h.host.clone(),
                            port: h.port,
                            tls: h.port == 443,
                            path_prefix: String::new(),
                        });
                    EndpointPlan {
                        name: h.host.clone(),
                        address,
                        provider: None,
                    }
                })
                .collect();
            priorities.push(endpoints);
        }
    }
    if spec.ai.is_some() && spec.backend_type == BackendType::Static {
        errors.push(ConfigError::new(
            location.at("spec.ai"),
            "spec.ai is for type AI",
        ));
    }
    if spec.static_hosts.is_some() && spec.backend_type == BackendType::AI {
        errors.push(ConfigError::new(
            location.at("spec.static"),
            "spec.static is for type Static",
        ));
    }
    Some(BackendPlan {
        name: backend.name().to_string(),
        location: location.clone(),
        is_ai: spec.backend_type == BackendType::AI,
        priorities,
        connection: ConnectionSettings::default(),
        load_balancer: None,
    })
}
