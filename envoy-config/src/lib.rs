//! The generator: documented YAML configs in, envoy.yaml (and Istio manifests, Prometheus rules) out.
//!
//! The pipeline reads top-down: [`input`] splits files into documents, [`catalog`] types them
//! ([`model`]), [`plan`] resolves references, policies, secrets and endpoints, and [`output`]
//! renders the plan.

pub mod catalog;
pub mod duration;
pub mod endpoint;
pub mod envoy_check;
pub mod error;
pub mod explain;
pub mod fields;
pub mod input;
pub mod model;
pub mod output;
pub mod plan;
pub mod render;
pub mod secrets;
