//! Fixture filters for the host-vs-Envoy differential tests.
