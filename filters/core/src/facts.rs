//! The facts one request's stages share: what the headers and the router's single pass over
//! the body learned ([`RequestFacts`]), and what the answer turned out to be
//! ([`ResponseFacts`]). The glue fills them once; every stage reads them in memory.

use crate::observe::Finishes;
use crate::usage::TokenUsage;

pub use crate::headers::Headers;

/// Who is calling, read in the request-headers phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The JWT's `sub` claim, when `jwt_authn` verified a token.
    pub jwt_subject: Option<String>,
    /// The client key name that `api_key_auth` (or a policy header) authenticated.
    pub client_key: Option<String>,
    /// The downstream address (`source.address`, without the port).
    pub address: Option<String>,
}

/// What every stage knows about a request before it leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// `:method`.
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// The name of the Envoy route that matched (`xds.route_name`), when the host says.
    pub route: Option<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The client's cap on output tokens (`max_completion_tokens`, else `max_tokens`).
    pub max_output_tokens: Option<u64>,
    /// Size of the request body in bytes (the prompt-size estimate is derived from it).
    pub body_bytes: usize,
    /// The backend the router chose, when the model decided it.
    pub backend: Option<String>,
    /// Who is calling.
    pub caller: Caller,
    /// When the request headers arrived (ms since the epoch, host clock).
    pub started_ms: u64,
    /// The request headers as they arrived at the pipeline (read once).
    pub headers: Headers,
}

/// Who wrote the answer the client got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Answerer {
    /// A provider, through Envoy's router.
    #[default]
    Upstream,
    /// The response cache.
    Cache,
    /// The budget stage (a refusal).
    Budget,
    /// The gateway itself (validation errors, `GET /models`, refused operations).
    Gateway,
}

impl Answerer {
    /// Lower-case label value (metrics, access log).
    pub fn as_str(self) -> &'static str {
        match self {
            Answerer::Upstream => "upstream",
            Answerer::Cache => "cache",
            Answerer::Budget => "budget",
            Answerer::Gateway => "gateway",
        }
    }
}

/// What every stage knows about the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    /// HTTP status the client got.
    pub status: u16,
    /// The provider that served it (`x-tollgate-provider`), after failover.
    pub provider: Option<String>,
    /// The model that served it (the answer's `model`, else `x-tollgate-model`).
    pub model: Option<String>,
    /// Token usage the answer reported.
    pub usage: Option<TokenUsage>,
    /// Who answered.
    pub answered_by: Answerer,
    /// Time from the request headers to the first response byte, in ms.
    pub ttfb_ms: Option<u64>,
    /// Whether the answer ended normally (a JSON body read whole, a stream that reached
    /// `[DONE]`); false for resets, timeouts and truncated streams.
    pub complete: bool,
    /// How the answer's choices ended, read in the observer's one pass when the cache may
    /// store it (`None` otherwise): the cache decides from them without parsing the body.
    pub finishes: Option<Finishes>,
}
