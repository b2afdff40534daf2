//! The test's handle on one HTTP stream: send the request and the response piece by piece, read
//! what went upstream and what the client got, then finish the stream.

use std::cell::RefCell;
use std::rc::Rc;

use crate::headers::Headers;
use crate::host::HostInner;
use crate::property::Value;
use crate::stream_state::{LocalReply, Received};

/// What one step of the stream led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything sent so far in this direction passed every filter.
    Continue,
    /// A filter holds something (paused headers, buffered body, waiting trailers).
    Pause,
    /// The stream was answered locally; this is what the client received.
    LocalReply(LocalReply),
    /// A filter reset the stream (`close_stream`), with Envoy's details.
    Reset(String),
}

/// One HTTP stream through the filter chain, on one worker. Operations run the callbacks of
/// every filter (request in chain order, response in reverse) and the deferred actions.
pub struct Stream {
    host: Rc<RefCell<HostInner>>,
    id: u64,
}

impl Stream {
    pub(crate) fn new(host: Rc<RefCell<HostInner>>, id: u64) -> Self {
        Self { host, id }
    }

    fn step(&self, request: bool, f: impl FnOnce(&mut HostInner)) -> Outcome {
        let mut host = self.host.borrow_mut();
        let had_reply = host.with_stream(self.id, |s| s.local_reply.is_some());
        if !had_reply && !host.with_stream(self.id, |s| s.finished || s.reset.is_some()) {
            f(&mut host);
            host.run_events();
        }
        let (reply, reset) =
            host.with_stream(self.id, |s| (s.local_reply.clone(), s.reset.clone()));
        if let Some(reply) = reply {
            return Outcome::LocalReply(reply);
        }
        if let Some(reset) = reset {
            return Outcome::Reset(reset);
        }
        if host.is_paused(self.id, request) {
            Outcome::Pause
        } else {
            Outcome::Continue
        }
    }

    /// The client sends request headers (`:method`, `:path`, `:authority`, `:scheme` first).
    pub fn send_request_headers<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        headers: &[(K, V)],
        end_stream: bool,
    ) -> Outcome {
        let headers = Headers::from_pairs(headers);
        self.step(true, |host| {
            host.with_stream(self.id, |s| {
                s.request.headers = headers;
                s.request.headers_end = end_stream;
                s.request.started = true;
            });
            host.flow_headers(self.id, true, 0);
        })
    }

    /// The client sends a body chunk.
    pub fn send_request_body(&mut self, chunk: &[u8], end_stream: bool) -> Outcome {
        self.step(true, |host| {
            host.flow_data(self.id, true, 0, chunk.to_vec(), end_stream);
        })
    }

    /// The client sends trailers (ending the request).
    pub fn send_request_trailers<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        trailers: &[(K, V)],
    ) -> Outcome {
        let trailers = Headers::from_pairs(trailers);
        self.step(true, |host| {
            host.with_stream(self.id, |s| s.request.trailers = Some(trailers));
            host.flow_trailers(self.id, true, 0);
        })
    }

    /// The upstream answers with headers (include `:status`).
    pub fn send_response_headers<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        headers: &[(K, V)],
        end_stream: bool,
    ) -> Outcome {
        let headers = Headers::from_pairs(headers);
        self.step(false, |host| {
            host.with_stream(self.id, |s| {
                s.response.headers = headers;
                s.response.headers_end = end_stream;
                s.response.started = true;
            });
            host.flow_headers(self.id, false, 0);
        })
    }

    /// The upstream sends a body chunk.
    pub fn send_response_body(&mut self, chunk: &[u8], end_stream: bool) -> Outcome {
        self.step(false, |host| {
            host.flow_data(self.id, false, 0, chunk.to_vec(), end_stream);
        })
    }

    /// The upstream sends trailers.
    pub fn send_response_trailers<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        trailers: &[(K, V)],
    ) -> Outcome {
        let trailers = Headers::from_pairs(trailers);
        self.step(false, |host| {
            host.with_stream(self.id, |s| s.response.trailers = Some(trailers));
            host.flow_trailers(self.id, false, 0);
        })
    }

    /// Ends the stream as Envoy does: `on_log` for every filter, then `on_done`, then `on_delete`.
    pub fn finish(&mut self) {
        self.host.borrow_mut().finish_stream(self.id);
    }

    /// Whether something is held inside the chain on the request path.
    pub fn request_paused(&self) -> bool {
        self.host.borrow().is_paused(self.id, true)
    }

    /// Whether something is held inside the chain on the response path.
    pub fn response_paused(&self) -> bool {
        self.host.borrow().is_paused(self.id, false)
    }

    /// What reached the upstream: headers (as mutated by the filters), body, trailers.
    pub fn upstream(&self) -> Received {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.upstream.clone())
    }

    /// What reached the client.
    pub fn downstream(&self) -> Received {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.downstream.clone())
    }

    /// The local reply, if the stream was answered locally.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.local_reply.clone())
    }

    /// Sets an attribute of this stream (e.g. `["source","address"]`, `["xds","route_name"]`,
    /// `["metadata","filter_metadata","envoy.filters.http.jwt_authn","payload"]`).
    pub fn set_property(&mut self, path: &[&str], value: Value) {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.properties.insert(path, value));
    }

    /// A filter-state value by Envoy key, e.g. `wasm.llm_provider` for `set_property(["llm_provider"])`.
    pub fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.filter_state.get(key.as_bytes()).cloned())
    }

    /// The worker this stream runs on.
    pub fn worker(&self) -> usize {
        self.host.borrow().with_stream(self.id, |s| s.worker)
    }

    /// The context id of the `index`-th filter of the chain on this stream.
    pub fn context_id(&self, index: usize) -> Option<u32> {
        self.host
            .borrow()
            .with_stream(self.id, |s| s.filters.get(index).map(|f| f.context_id))
    }
}

impl Drop for Stream {
    /// Ends the stream as Envoy ends every stream, finished or not (`on_log`, `on_done`,
    /// `on_delete`, so a filter's per-request state is released), then forgets it.
    fn drop(&mut self) {
        if let Ok(mut host) = self.host.try_borrow_mut() {
            host.finish_stream(self.id);
            host.forget_stream(self.id);
        }
    }
}
