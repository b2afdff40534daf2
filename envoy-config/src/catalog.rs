//! All input documents parsed into their typed models and indexed by kind and name.
//! Errors here are about one document at a time: unknown kinds, bad fields, duplicate names.

use crate::error::{ConfigError, ConfigErrors, Location};
use crate::input::SourceDocument;
use crate::model::backend::BackendSpec;
use crate::model::backend_config_policy::BackendConfigPolicySpec;
use crate::model::endpoint_overrides::EndpointOverridesSpec;
use crate::model::gateway_parameters::GatewayParametersSpec;
use crate::model::http_route::HttpRouteSpec;
use crate::model::prometheus_rule::PrometheusRuleSpec;
use crate::model::traffic_policy::TrafficPolicySpec;
use crate::model::Object;
use serde::de::DeserializeOwned;

/// A typed object and where it came from.
#[derive(Debug, Clone)]
pub struct Located<Spec> {
    /// File and `Kind/name`.
    pub location: Location,
    /// The object.
    pub object: Object<Spec>,
}

impl<Spec> Located<Spec> {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.object.metadata.name
    }

    /// `spec`.
    pub fn spec(&self) -> &Spec {
        &self.object.spec
    }
}

/// Every kind the generator reads.
pub const KNOWN_KINDS: [&str; 8] = [
    "Backend",
    "TrafficPolicy",
    "BackendConfigPolicy",
    "GatewayParameters",
    "HTTPRoute",
    "PrometheusRule",
    "HorizontalPodAutoscaler",
    "EndpointOverrides",
];

/// The parsed inputs, in input order within each kind.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// `Backend`s.
    pub backends: Vec<Located<BackendSpec>>,
    /// `TrafficPolicy`s.
    pub traffic_policies: Vec<Located<TrafficPolicySpec>>,
    /// `BackendConfigPolicy`s.
    pub backend_config_policies: Vec<Located<BackendConfigPolicySpec>>,
    /// `GatewayParameters` (several documents may share a name: they are merged).
    pub gateway_parameters: Vec<Located<GatewayParametersSpec>>,
    /// `HTTPRoute`s.
    pub http_routes: Vec<Located<HttpRouteSpec>>,
    /// `PrometheusRule`s.
    pub prometheus_rules: Vec<Located<PrometheusRuleSpec>>,
    /// `HorizontalPodAutoscaler`s, passed through untyped.
    pub autoscalers: Vec<SourceDocument>,
    /// Our `EndpointOverrides`.
    pub endpoint_overrides: Vec<Located<EndpointOverridesSpec>>,
    /// Input files in the order given (errors are reported in this order).
    pub files: Vec<String>,
}

impl Catalog {
    /// Types every document; returns all errors found.
    pub fn from_documents(documents: &[SourceDocument]) -> Result<Self, ConfigErrors> {
        let mut catalog = Catalog::default();
        let mut errors = Vec::new();
        for document in documents {
            if !catalog.files.contains(&document.file) {
                catalog.files.push(document.file.clone());
            }
            let result = match document.kind.as_str() {
                "Backend" => typed(document).map(|o| catalog.backends.push(o)),
                "TrafficPolicy" => typed(document).map(|o| catalog.traffic_policies.push(o)),
                "BackendConfigPolicy" => {
                    typed(document).map(|o| catalog.backend_config_policies.push(o))
                }
                "GatewayParameters" => typed(document).map(|o| catalog.gateway_parameters.push(o)),
                "HTTPRoute" => typed(document).map(|o| catalog.http_routes.push(o)),
                "PrometheusRule" => typed(document).map(|o| catalog.prometheus_rules.push(o)),
                "EndpointOverrides" => typed(document).map(|o| catalog.endpoint_overrides.push(o)),
                "HorizontalPodAutoscaler" => {
                    catalog.autoscalers.push(document.clone());
                    Ok(())
                }
                other => Err(ConfigError::new(
                    document.location().at("kind"),
                    format!(
                        "unknown kind {other:?}; expected one of {}",
                        KNOWN_KINDS.join(", ")
                    ),
                )),
            };
            if let Err(error) = result {
                errors.push(error);
            }
        }
        errors.extend(duplicates(&catalog));
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn typed<Spec: DeserializeOwned>(document: &SourceDocument) -> Result<Located<Spec>, ConfigError> {
    Ok(Located {
        location: document.location(),
        object: document.parse()?,
    })
}

/// Two objects of one kind with one name (GatewayParameters excepted: the guide splits one
/// object over two blocks, and they are merged).
fn duplicates(catalog: &Catalog) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut check = |kind: &str, items: Vec<(&str, &Location)>| {
        let mut seen: std::collections::BTreeMap<&str, &Location> = Default::default();
        for (name, location) in items {
            if let Some(first) = seen.insert(name, location) {
                errors.push(ConfigError::new(
                    location.clone(),
                    format!(
                        "a {kind} named {name:?} is already defined in {}",
                        first.file
                    ),
                ));
            }
        }
    };
    check(
        "Backend",
        catalog
            .backends
            .iter()
            .map(|o| (o.name(), &o.location))
            .collect(),
    );
    check(
        "TrafficPolicy",
        catalog
            .traffic_policies
            .iter()
            .map(|o| (o.name(), &o.location))
            .collect(),
    );
    check(
        "BackendConfigPolicy",
        catalog
            .backend_config_policies
            .iter()
            .map(|o| (o.name(), &o.location))
            .collect(),
    );
    check(
        "HTTPRoute",
        catalog
            .http_routes
            .iter()
            .map(|o| (o.name(), &o.location))
            .collect(),
    );
    check(
        "PrometheusRule",
        catalog
            .prometheus_rules
            .iter()
            .map(|o| (o.name(), &o.location))
            .collect(),
    );
    errors
}
