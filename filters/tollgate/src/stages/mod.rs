//! The glue of each pipeline stage: a per-VM root (parsed configuration, metric ids) and a
//! per-request part implementing [`Stage`]. The decisions live in the stage crates
//! (`tollgate-cache`, `tollgate-budget`, `tollgate-metrics`) and in `tollgate-core`; these files
//! only read what the host holds and carry out the [`Step`] the decision returned.

pub mod budget;
pub mod cache;
pub mod metrics;
pub mod route;

use tollgate_core::facts::{RequestFacts, ResponseFacts};
use tollgate_core::stage::Step;

/// One stage's part of a request, called by the pipeline in order (route → cache → budget →
/// metrics). Every method has a do-nothing default, so a stage implements only its phases.
pub trait Stage {
    /// Request headers are in: `facts` holds method, path, route and caller. A stage that
    /// needs the body says so with [`Stage::wants_request_body`].
    fn on_request_headers(&mut self, _facts: &RequestFacts) -> Step {
        Step::Continue
    }

    /// Whether this stage needs the request body read (and the route stage's facts).
    fn wants_request_body(&self) -> bool {
        false
    }

    /// The whole request body is in and the facts are complete. `body` is what goes upstream;
    /// a stage that edits it sets `*changed = true`.
    fn on_request_body(
        &mut self,
        _facts: &RequestFacts,
        _body: &mut Vec<u8>,
        _changed: &mut bool,
    ) -> Step {
        Step::Continue
    }

    /// The answer to this stage's callout: its status (0: failed or timed out) and body.
    fn on_callout_response(&mut self, _facts: &RequestFacts, _status: u16, _body: &[u8]) -> Step {
        Step::Continue
    }

    /// This stage's callout was answered and it did not answer the client: the request body is
    /// still held, and the stage may edit it with what the call said (e.g. the budget service's
    /// output cap), setting `*changed = true`.
    fn on_callout_body(&mut self, _facts: &RequestFacts, _body: &mut Vec<u8>, _changed: &mut bool) {
    }

    /// Response headers are in (also for local replies). Headers pushed to `add` are set on
    /// the client's answer.
    fn on_response_headers(
        &mut self,
        _facts: &RequestFacts,
        _response: &ResponseFacts,
        _add: &mut Vec<(&'static str, String)>,
    ) {
    }

    /// Whether this stage needs the response body: a JSON answer is then buffered and handed
    /// over whole; a stream is handed over chunk by chunk as it passes (never buffered).
    fn wants_response_body(&self) -> bool {
        false
    }

    /// A response body chunk (a JSON answer: the whole body once, with `end_of_stream`).
    /// `response` already holds the usage and model the pipeline observed so far.
    fn on_response_body(
        &mut self,
        _facts: &RequestFacts,
        _response: &ResponseFacts,
        _chunk: &[u8],
        _end_of_stream: bool,
    ) {
    }

    /// The stream is over (Envoy's on_log: completed, reset or answered locally): reconcile,
    /// count, store. Runs for every stage, even when an earlier stage answered.
    fn on_done(&mut self, _facts: &RequestFacts, _response: &ResponseFacts) {}
}
