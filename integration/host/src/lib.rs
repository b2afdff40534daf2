//! A proxy-wasm host on wasmtime that runs the real `.wasm` filters the way Envoy 1.40 does
//! (ABI 0.2.1, V8's start-up rules, Envoy's status codes and quirks), for tests.
//!
//! A test builds a host, opens streams, drives them top-down and inspects the state:
//!
//! ```no_run
//! use tollgate_host::{FailurePolicy, Host, Outcome};
//!
//! let host = Host::builder()
//!     .module("build/wasm/tollgate_fixture_filter.wasm")
//!     .vm_id("fixture")
//!     .root_id("headers")
//!     .configuration(br#"{"greeting":"hi"}"#)
//!     .allow_on_headers_stop_iteration(true)
//!     .failure_policy(FailurePolicy::FailClosed)
//!     .workers(2)
//!     .build()?;
//!
//! let mut s = host.stream();
//! let outcome = s.send_request_headers(
//!     &[(":method", "POST"), (":path", "/v1/chat"), (":authority", "api"), (":scheme", "http")],
//!     false,
//! );
//! assert_eq!(outcome, Outcome::Continue);
//! s.send_request_body(b"{}", true);
//! assert_eq!(s.upstream().headers.unwrap().get("x-fixture").as_deref(), Some("hi"));
//! s.send_response_headers(&[(":status", "200")], true);
//! s.finish(); // on_log, on_done, on_delete
//! assert_eq!(host.metric("wasmcustom.fixture_requests_total"), Some(1));
//! # Ok::<(), tollgate_host::HostError>(())
//! ```
//!
//! Chains: call `.module(..)` once per filter, in request order; the methods after each
//! `.module(..)` configure that filter. Plugins with the same `vm_id` and code share one VM per
//! worker (each with its own root context), as in Envoy.
//!
//! What behaves as in Envoy (checked by `tests/differential.rs` against a real Envoy 1.40):
//! - Start-up: a base VM, a canary (`on_vm_start`/`on_configure`, then dropped), then one VM per
//!   worker; hostcalls other than logging/WASI trap during `_initialize` (V8's restricted callbacks).
//! - Streams ([`Stream`]): a Pause on headers stops body callbacks unless
//!   `allow_on_headers_stop_iteration`; Pause on a body buffers it (`body_size` is cumulative)
//!   up to the buffer limit (then 413, or 500 for a response whose headers are held); header
//!   maps are readable only while the filter holds them (BadArgument after Continue); local
//!   replies pass the chain's response callbacks; `finish` runs on_log, on_done, on_delete.
//! - HTTP callouts wait in [`Host::http_calls`] until the test answers them
//!   ([`Host::respond_http_call`], [`Host::fail_http_call`]) or the virtual clock
//!   ([`Host::advance_time`]) passes their timeout; unknown clusters get BadArgument.
//! - Shared data (one CAS counter, partitioned by vm_id), shared queues (the last registrant
//!   consumes), ticks per worker VM, metrics by Envoy name ([`Host::metric`]) and as Prometheus
//!   lines through `stats_tags` ([`Host::prometheus_lines`]), logs per level, traps with the
//!   panic message ([`Host::traps`]) and the failure policy ([`FailurePolicy`]).
//! - Properties: set per stream ([`Stream::set_property`]) or host-wide
//!   ([`HostBuilder::property`]); `request.*`/`response.*` derive from the live headers;
//!   `set_property` lands in filter state `wasm.<name>`, readable by the next filter.
//! - WASI `environ_sizes_get`/`environ_get`: empty, unless the plugin's VM is given variables
//!   with [`HostBuilder::env`] (Envoy's `vm_config.environment_variables`), `k=v\0` each.
//!
//! Not modelled: gRPC calls (`grpc_call` answers as for an unknown cluster), TCP filters,
//! histogram buckets on the Prometheus endpoint, FAIL_RELOAD's backoff, route-cache clearing.

mod abi;
mod error;
mod headers;
mod host;
mod imports;
mod metrics;
mod pipeline;
mod property;
mod stream;
mod stream_state;
mod vm;
mod world;

pub use abi::{LogLevel, Status};
pub use error::HostError;
pub use headers::Headers;
pub use host::{FailurePolicy, Host, HostBuilder};
pub use metrics::StatsTag;
pub use property::Value;
pub use stream::{Outcome, Stream};
pub use stream_state::{LocalReply, Received};
pub use world::{HttpCall, LogEntry, TrapReport};
