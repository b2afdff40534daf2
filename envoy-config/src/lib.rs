//! The generator: documented YAML configs in, envoy.yaml (and Istio manifests, Prometheus rules) out.
