//! One call from input files to every output file.

use crate::catalog::Catalog;
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::input::{read_documents, SourceDocument};
use crate::output::pricing::{self, Price};
use crate::output::{envoy, istio, kubernetes, prometheus, to_yaml, OutputOptions};
use crate::plan::{self, Plan, PlanOptions};
use crate::secrets;
use std::collections::BTreeMap;

/// An input file: the name errors use, and its text.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// As given by the user.
    pub name: String,
    /// Contents.
    pub text: String,
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Contents.
    pub text: String,
    /// True when it holds resolved secrets (written with mode 0600).
    pub secret: bool,
}

/// Everything the generator was told.
#[derive(Debug, Clone, Default)]
pub struct RenderRequest {
    /// The YAML inputs.
    pub inputs: Vec<InputFile>,
    /// Secrets and endpoint overrides.
    pub plan: PlanOptions,
    /// Output settings.
    pub output: OutputOptions,
    /// Pricing table; `None` uses the guide's.
    pub pricing: Option<InputFile>,
}

/// Reads and types every input and resolves the plan.
pub fn plan(request: &RenderRequest) -> Result<(Catalog, Vec<SourceDocument>, Plan), ConfigErrors> {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for input in &request.inputs {
        match read_documents(&input.name, &input.text) {
            Ok(found) => documents.extend(found),
            Err(ConfigErrors(found)) => errors.extend(found),
        }
    }
    if documents.is_empty() && errors.is_empty() {
        errors.push(ConfigError::new(
            Location::file("(inputs)"),
            "no documents to render",
        ));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let catalog = Catalog::from_documents(&documents)?;
    let plan = plan::build(&catalog, &request.plan)?;
    Ok((catalog, documents, plan))
}

/// Renders every output file, keyed by path relative to the output folder.
pub fn render(request: &RenderRequest) -> Result<BTreeMap<String, OutputFile>, ConfigErrors> {
    let (_, documents, mut plan) = plan(request)?;
    let prices: Vec<Price> = match &request.pricing {
        Some(file) => pricing::parse(&file.name, &file.text)?,
        None => pricing::parse("guide-prices.yaml", pricing::GUIDE_PRICES)?,
    };
    plan.metrics = crate::output::metrics_section::MetricsPlan {
        naming: request.output.metrics_naming,
        prices: prices.clone(),
    };
    let mut files = BTreeMap::new();
    let keys = envoy::provider_keys(&plan)?;
    let env_file = secrets::env_file(&keys).map_err(|message| {
        ConfigErrors(vec![ConfigError::new(
            Location::file(secrets::SECRETS_ENV_FILE),
            message,
        )])
    })?;
    if request.output.stats_port.is_some() && request.output.admin_port == 0 {
        return Err(ConfigErrors(vec![ConfigError::new(
            Location::file("--stats"),
            "the stats listener forwards to the admin port, so admin needs a fixed port (not 0)",
        )]));
    }
    let bootstrap = envoy::bootstrap(&plan, &request.output);
    files.insert(
        "envoy.yaml".to_string(),
        OutputFile {
            text: to_yaml(&bootstrap),
            // Static client API keys (api_key_auth has no other source) make it secret.
            secret: envoy::holds_client_keys(&plan),
        },
    );
    // The only file holding keys; always written (empty without keys) so launchers can load it
    // unconditionally.
    files.insert(
        secrets::SECRETS_ENV_FILE.to_string(),
        OutputFile {
            text: env_file,
            secret: true,
        },
    );

    let configs = envoy::downstream_plugin_configs(&plan, &envoy::router_config(&plan));
    let workload = istio::workload(&plan.autoscalers);
    for (name, manifest) in istio::wasm_plugins(&configs, &workload, &request.output) {
        files.insert(
            format!("istio/{name}"),
            OutputFile {
                text: to_yaml(&manifest),
                secret: false,
            },
        );
    }

    let groups = prometheus::rule_groups(&prices, &plan.prometheus_rules, plan.metrics.naming);
    let rules = serde_json::json!({ "groups": groups });
    files.insert(
        "prometheus-rules.yaml".to_string(),
        OutputFile {
            text: format!("{}{}", prometheus::RULES_FILE_HEADER, to_yaml(&rules)),
            secret: false,
        },
    );
    if let Some(objects) = crate::output::budget_section::service_manifests(&plan) {
        let text: Vec<String> = objects.iter().map(to_yaml).collect();
        files.insert(
            "kubernetes/budget-service.yaml".to_string(),
            OutputFile {
                text: format!(
                    "# The budget service (global tier of the token budgets); set TOLLGATE_BUDGET_REDIS.\n{}",
                    text.join("---\n")
                ),
                secret: false,
            },
        );
    }
    if let Some(objects) = crate::output::budget_section::service_manifests(&plan) {
        let text: Vec<String> = objects.iter().map(to_yaml).collect();
        files.insert(
            "kubernetes/budget-service.yaml".to_string(),
            OutputFile {
                text: format!(
                    "# The budget service (global tier of the token budgets); set TOLLGATE_BUDGET_REDIS.\n{}",
                    text.join("---\n")
                ),
                secret: false,
            },
        );
    }
    if let Some(patch) = kubernetes::deployment_patch(&documents, &workload) {
        let text = format!(
            "# Strategic-merge patch of the gateway Deployment, from the GatewayParameters, with\n\
             # the provider keys read from their Secrets into Envoy's environment.\n{}",
            to_yaml(&patch)
        );
        files.insert(
            "kubernetes/deployment-patch.yaml".to_string(),
            OutputFile {
                text,
                secret: false,
            },
        );
    }
    for autoscaler in &plan.autoscalers {
        let name = autoscaler
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("unnamed");
        let text = serde_norway::to_string(autoscaler).unwrap_or_default();
        files.insert(
            format!("kubernetes/horizontalpodautoscaler-{name}.yaml"),
            OutputFile {
                text,
                secret: false,
            },
        );
    }
    Ok(files)
}
