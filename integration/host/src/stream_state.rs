//! The state of one HTTP stream as Envoy's filter manager holds it: one header map per
//! direction shared by every filter, per-filter iteration state, what reached each end.

use crate::headers::Headers;
use crate::property::Value;
use crate::world::FilterState;

/// What the upstream (for the request) or the client (for the response) received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The headers, once they passed every filter.
    pub headers: Option<Headers>,
    /// The body bytes that passed every filter, concatenated.
    pub body: Vec<u8>,
    /// The trailers, once they passed every filter.
    pub trailers: Option<Headers>,
    /// Whether the end of stream passed every filter.
    pub end_stream: bool,
}

/// A local reply as the client received it (after the response callbacks of the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// The HTTP status.
    pub status: u16,
    /// The response headers (`:status` included).
    pub headers: Headers,
    /// The response body.
    pub body: Vec<u8>,
    /// The details string (`response.code_details`), whitespace replaced by `_`.
    pub details: String,
}

/// Where the headers of one direction are for one filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum HeadersAt {
    /// The filter has not been called with them.
    #[default]
    NotSeen,
    /// The header callback is running.
    InCallback,
    /// The filter paused them; `all` stops body callbacks too (StopAllIteration...).
    Stopped { all: bool },
    /// The filter continued them: they are no longer accessible to it.
    Passed,
    /// They went on because a body callback returned Continue after headers returned
    /// StopIteration. Envoy clears its header pointer only on a Continue from the header callback
    /// or on `continue_stream`, so the filter can still read and write them (to no effect upstream).
    PassedByData,
}

/// Iteration state of one filter in one direction.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterFlow {
    pub headers: HeadersAt,
    /// `proxy_continue_stream` was called: Envoy drops its header pointer at once.
    pub headers_released: bool,
    /// Body bytes held at this filter (Envoy's buffered data), exposed while `body_visible`.
    pub held: Vec<u8>,
    pub held_end: bool,
    pub body_visible: bool,
    /// The filter returned Pause from a body callback (StopIterationAndBuffer).
    pub buffering: bool,
    /// Trailers are waiting at this filter.
    pub trailers_waiting: bool,
    pub in_trailers: bool,
}

/// One filter of the chain on one stream.
#[derive(Debug, Clone)]
pub(crate) struct FilterSlot {
    pub plugin: usize,
    pub vm: usize,
    /// The generation of the VM the context lives in (see `Vm::generation`).
    pub vm_generation: u32,
    pub context_id: u32,
    pub created: bool,
    /// Fail-open after a trap: the filter is passed over for the rest of the stream.
    pub skip: bool,
    pub request: FilterFlow,
    pub response: FilterFlow,
}

impl FilterSlot {
    pub fn flow(&self, request: bool) -> &FilterFlow {
        if request {
            &self.request
        } else {
            &self.response
        }
    }

    pub fn flow_mut(&mut self, request: bool) -> &mut FilterFlow {
        if request {
            &mut self.request
        } else {
            &mut self.response
        }
    }
}

/// The header map and trailers of one direction.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirectionData {
    pub headers: Headers,
    pub trailers: Option<Headers>,
    pub headers_end: bool,
    pub started: bool,
}

/// One stream in flight.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamState {
    pub worker: usize,
    pub request: DirectionData,
    pub response: DirectionData,
    pub filters: Vec<FilterSlot>,
    pub upstream: Received,
    pub downstream: Received,
    pub local_reply: Option<LocalReply>,
    pub properties: Value,
    pub filter_state: FilterState,
    pub in_log: bool,
    pub reset: Option<String>,
    pub finished: bool,
    /// Bumped by each local reply: a response flow in progress is superseded.
    pub response_epoch: u32,
}

impl StreamState {
    pub fn direction(&self, request: bool) -> &DirectionData {
        if request {
            &self.request
        } else {
            &self.response
        }
    }

    pub fn direction_mut(&mut self, request: bool) -> &mut DirectionData {
        if request {
            &mut self.request
        } else {
            &mut self.response
        }
    }

    pub fn sink_mut(&mut self, request: bool) -> &mut Received {
        if request {
            &mut self.upstream
        } else {
            &mut self.downstream
        }
    }
}
