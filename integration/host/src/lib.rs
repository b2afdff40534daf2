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
//! `.module(..)` configure that filter. HTTP callouts wait in [`Host::http_calls`] until the test
//! answers them ([`Host::respond_http_call`], [`Host::fail_http_call`]) or the virtual clock
//! ([`Host::advance_time`]) passes their timeout.

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
