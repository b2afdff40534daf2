//! Test support for running a real Envoy.
