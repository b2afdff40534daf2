//! Names shared by the filters and the generator: root ids, the vm id, filter-state
//! properties and header names. Defined once here so the two sides cannot drift.

/// The `vm_id` of every tollgate plugin: they share shared data (budgets, cache).
pub const VM_ID: &str = "tollgate";

/// Root ids of the plugin roles inside `tollgate.wasm`.
pub mod root_id {
    /// The whole downstream pipeline (route → cache → budget → metrics), configured by
    /// [`crate::config::DownstreamConfig`]. The generator's default.
    pub const PIPELINE: &str = "tollgate";
    /// Routing alone (the pipeline with only the route stage).
    pub const ROUTER: &str = "router";
    /// The response cache alone.
    pub const CACHE: &str = "cache";
    /// Token budgets alone.
    pub const BUDGET: &str = "budget";
    /// Metrics alone.
    pub const METRICS: &str = "metrics";
    /// The upstream adapter (one per cluster, per attempt).
    pub const ADAPTER: &str = "adapter";
}

/// Filter-state properties (`set_property` / `get_property`, stored by Envoy as `wasm.<name>`).
pub mod property {
    /// What the router learned about the request, for the adapter: [`crate::facts::AdapterFacts`].
    pub const REQUEST_FACTS: &str = "tollgate_request";
}

/// Host property paths the glue reads.
pub mod host_property {
    /// The matched Envoy route's name.
    pub const ROUTE_NAME: [&str; 2] = ["xds", "route_name"];
    /// The downstream peer address (`ip:port`).
    pub const SOURCE_ADDRESS: [&str; 2] = ["source", "address"];
    /// Where `jwt_authn` puts a verified token's claims (`payload_in_metadata` = `jwt_payload`):
    /// append the claim name.
    pub const JWT_PAYLOAD: [&str; 4] = [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "jwt_payload",
    ];
}

/// Header names.
pub mod header {
    /// Request header the router sets to the chosen backend; the generated routes match on it.
    pub const BACKEND: &str = "x-tollgate-backend";
    /// Response header naming the provider that served the answer.
    pub const PROVIDER: &str = "x-tollgate-provider";
    /// Response header naming the model asked of that provider.
    pub const MODEL: &str = "x-tollgate-model";
    /// Request header naming the client that Envoy's `api_key_auth` authenticated (its
    /// `forwarding.header`); the pipeline removes a client-sent one before authentication
    /// can set it, so a client cannot claim another's budget.
    pub const CLIENT: &str = "x-tollgate-client";
    /// Response header: `HIT`, `MISS` or `BYPASS` on a cached route.
    pub const CACHE_STATUS: &str = "x-cache-status";
}
