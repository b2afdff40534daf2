//! Envoy's filter-manager iteration for one stream: headers, body and trailers pass the chain
//! filter by filter (request in chain order, response in reverse); a filter that pauses holds
//! them until it continues; local replies go back through the response callbacks.

use crate::abi::FilterAction;
use crate::headers::Headers;
use crate::host::{FailurePolicy, HostInner};
use crate::stream_state::{HeadersAt, LocalReply};
use crate::vm::{DeferredAction, LocalReplyRequest};

/// How far something got through the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// It reached the end (upstream, or the client).
    Reached,
    /// A filter holds it (or a continuation already moved it on).
    Stopped,
    /// The stream was answered locally or reset.
    Ended,
}

/// Which callback to run.
#[derive(Debug, Clone, Copy)]
enum Callback {
    Headers { eos: bool },
    Body { eos: bool },
    Trailers,
}

/// What running a filter callback gave.
enum Ran {
    Code(i32, Vec<DeferredAction>),
    /// The VM failed (now or before): `true` when the stream was answered (fail closed).
    Failed {
        ended: bool,
    },
}

impl HostInner {
    fn order(&self, request: bool) -> Vec<usize> {
        let n = self.plugins.len();
        if request {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        }
    }

    /// Whether a flow that started at `epoch` must stop: the stream was reset or finished, the
    /// request was answered locally, or a local reply replaced the response being sent.
    fn is_ended(&self, stream: u64, request: bool, epoch: u32) -> bool {
        let world = self.world.borrow();
        world.streams.get(&stream).is_none_or(|s| {
            s.reset.is_some()
                || s.finished
                || (request && s.local_reply.is_some())
                || (!request && s.response_epoch != epoch)
        })
    }

    fn epoch(&self, stream: u64) -> u32 {
        self.with_stream(stream, |s| s.response_epoch)
    }

    /// Creates the filter's context in its VM (`proxy_on_context_create`) if not done yet.
    fn ensure_created(&mut self, stream: u64, filter: usize) -> Result<(), ()> {
        let (vm, context, created, plugin, worker) = {
            let world = self.world.borrow();
            let Some(s) = world.streams.get(&stream) else {
                return Err(());
            };
            let slot = &s.filters[filter];
            (
                slot.vm,
                slot.context_id,
                slot.created,
                slot.plugin,
                s.worker,
            )
        };
        if created {
            return Ok(());
        }
        if let Some(slot) = self.world.borrow_mut().streams.get_mut(&stream) {
            slot.filters[filter].created = true;
        }
        let root = self.root_contexts[worker][plugin];
        let target = &mut self.vms[vm];
        target
            .call(
                |c| c.context_create.as_ref(),
                "proxy_on_context_create",
                context,
                (context as i32, root as i32),
            )
            .map(|_| ())
            .map_err(|_| ())
    }

    /// Runs one filter callback, applying the failure policy when the VM is or becomes failed.
    fn run(&mut self, stream: u64, filter: usize, request: bool, callback: Callback) -> Ran {
        let (vm, context, plugin, size) = {
            let world = self.world.borrow();
            let s = &world.streams[&stream];
            let slot = &s.filters[filter];
            let direction = s.direction(request);
            let size = match callback {
                Callback::Headers { .. } => direction.headers.len(),
                Callback::Body { .. } => slot.flow(request).held.len(),
                Callback::Trailers => direction.trailers.as_ref().map_or(0, Headers::len),
            };
            (slot.vm, slot.context_id, slot.plugin, size as i32)
        };
        let target = &mut self.vms[vm];
        let ctx = context as i32;
        let result = match (callback, request) {
            (Callback::Headers { eos }, true) => target.call(
                |c| c.request_headers.as_ref(),
                "proxy_on_request_headers",
                context,
                (ctx, size, i32::from(eos)),
            ),
            (Callback::Headers { eos }, false) => target.call(
                |c| c.response_headers.as_ref(),
                "proxy_on_response_headers",
                context,
                (ctx, size, i32::from(eos)),
            ),
            (Callback::Body { eos }, true) => target.call(
                |c| c.request_body.as_ref(),
                "proxy_on_request_body",
                context,
                (ctx, size, i32::from(eos)),
            ),
            (Callback::Body { eos }, false) => target.call(
                |c| c.response_body.as_ref(),
                "proxy_on_response_body",
                context,
                (ctx, size, i32::from(eos)),
            ),
            (Callback::Trailers, true) => target.call(
                |c| c.request_trailers.as_ref(),
                "proxy_on_request_trailers",
                context,
                (ctx, size),
            ),
            (Callback::Trailers, false) => target.call(
                |c| c.response_trailers.as_ref(),
                "proxy_on_response_trailers",
                context,
                (ctx, size),
            ),
        };
        let actions = target.take_actions();
        match result {
            Ok(code) => Ran::Code(code.unwrap_or(0), actions),
            Err(_) => Ran::Failed {
                ended: self.fail_stream(stream, filter, plugin),
            },
        }
    }

    /// Envoy's `failStream`: fail open passes the filter over, fail closed answers 503.
    fn fail_stream(&mut self, stream: u64, filter: usize, plugin: usize) -> bool {
        if let Some(s) = self.world.borrow_mut().streams.get_mut(&stream) {
            s.filters[filter].skip = true;
        }
        let answered = self.with_stream(stream, |s| s.local_reply.is_some());
        match self.plugins[plugin].failure_policy {
            // Already answering locally: the failed filter is passed over.
            _ if answered => false,
            FailurePolicy::FailOpen => false,
            FailurePolicy::FailClosed | FailurePolicy::FailReload => {
                let reply = LocalReplyRequest {
                    status: 503,
                    details: "wasm_fail_stream".into(),
                    body: Vec::new(),
                    headers: Headers::new(),
                };
                self.local_reply(stream, reply);
                true
            }
        }
    }

    /// Whether the filter takes part: created (the response path never creates) and not skipped.
    fn participates(&mut self, stream: u64, filter: usize, request: bool) -> Result<bool, Flow> {
        let (created, skip, vm, plugin, generation) = {
            let world = self.world.borrow();
            let slot = &world.streams[&stream].filters[filter];
            (
                slot.created,
                slot.skip,
                slot.vm,
                slot.plugin,
                slot.vm_generation,
            )
        };
        if skip || (!created && !request) {
            return Ok(false);
        }
        if self.vms[vm].failed || self.vms[vm].generation != generation {
            return if self.fail_stream(stream, filter, plugin) {
                Err(Flow::Ended)
            } else {
                Ok(false)
            };
        }
        if !created {
            if !request {
                return Ok(false);
            }
            if self.ensure_created(stream, filter).is_err() {
                return if self.fail_stream(stream, filter, plugin) {
                    Err(Flow::Ended)
                } else {
                    Ok(false)
                };
            }
        }
        Ok(true)
    }

    fn decode_headers_action(&self, plugin: usize, code: i32) -> FilterAction {
        match code {
            0 | 2 => FilterAction::Continue,
            1 if self.plugins[plugin].allow_on_headers_stop_iteration => FilterAction::Stop,
            3 => FilterAction::StopAllBuffer,
            _ => FilterAction::StopAll,
        }
    }

    fn has_local_reply_for(&self, stream: u64, actions: &[DeferredAction], vm: usize) -> bool {
        actions.iter().any(|a| match a {
            DeferredAction::LocalReply { context, .. } => self
                .stream_filter(vm, *context)
                .is_some_and(|(s, _)| s == stream),
            _ => false,
        })
    }

    /// Headers from position `from` of the direction's order to the end.
    pub(crate) fn flow_headers(&mut self, stream: u64, request: bool, from: usize) -> Flow {
        let epoch = self.epoch(stream);
        let order = self.order(request);
        for &filter in order.iter().skip(from) {
            match self.participates(stream, filter, request) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(flow) => return flow,
            }
            let (eos, plugin, vm) = self.with_stream(stream, |s| {
                s.filters[filter].flow_mut(request).headers = HeadersAt::InCallback;
                (
                    s.direction(request).headers_end,
                    s.filters[filter].plugin,
                    s.filters[filter].vm,
                )
            });
            let (code, actions) = match self.run(stream, filter, request, Callback::Headers { eos })
            {
                Ran::Code(code, actions) => (code, actions),
                Ran::Failed { ended: true } => return Flow::Ended,
                Ran::Failed { ended: false } => {
                    self.with_stream(stream, |s| {
                        s.filters[filter].flow_mut(request).headers = HeadersAt::Passed
                    });
                    continue;
                }
            };
            let action = if self.has_local_reply_for(stream, &actions, vm) {
                FilterAction::StopAll
            } else {
                self.decode_headers_action(plugin, code)
            };
            self.with_stream(stream, |s| {
                let flow = s.filters[filter].flow_mut(request);
                flow.headers_released = false;
                flow.headers = match action {
                    FilterAction::Continue => HeadersAt::Passed,
                    FilterAction::Stop => HeadersAt::Stopped { all: false },
                    FilterAction::StopAll | FilterAction::StopAllBuffer => {
                        HeadersAt::Stopped { all: true }
                    }
                };
            });
            self.apply_actions(vm, actions);
            if self.is_ended(stream, request, epoch) {
                return Flow::Ended;
            }
            if action != FilterAction::Continue {
                return Flow::Stopped;
            }
        }
        self.with_stream(stream, |s| {
            let headers = s.direction(request).headers.clone();
            let end = s.direction(request).headers_end;
            let sink = s.sink_mut(request);
            sink.headers = Some(headers);
            sink.end_stream |= end;
        });
        Flow::Reached
    }

    /// Body bytes from position `from` to the end; `eos` marks the last chunk.
    pub(crate) fn flow_data(
        &mut self,
        stream: u64,
        request: bool,
        from: usize,
        data: Vec<u8>,
        eos: bool,
    ) -> Flow {
        let epoch = self.epoch(stream);
        let order = self.order(request);
        let mut data = data;
        for (position, &filter) in order.iter().enumerate().skip(from) {
            match self.participates(stream, filter, request) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(flow) => return flow,
            }
            let (stopped_all, plugin, vm) = self.with_stream(stream, |s| {
                let slot = &mut s.filters[filter];
                let (plugin, vm) = (slot.plugin, slot.vm);
                let flow = slot.flow_mut(request);
                let stopped_all = flow.headers == HeadersAt::Stopped { all: true };
                flow.held.append(&mut data);
                flow.held_end = eos;
                if !stopped_all {
                    flow.body_visible = true;
                }
                (stopped_all, plugin, vm)
            });
            if stopped_all {
                return Flow::Stopped; // StopAllIteration: held until the filter continues
            }
            let _ = plugin;
            let (code, actions) = match self.run(stream, filter, request, Callback::Body { eos }) {
                Ran::Code(code, actions) => (code, actions),
                Ran::Failed { ended: true } => return Flow::Ended,
                Ran::Failed { ended: false } => {
                    data = self.with_stream(stream, |s| {
                        let flow = s.filters[filter].flow_mut(request);
                        flow.body_visible = false;
                        std::mem::take(&mut flow.held)
                    });
                    continue;
                }
            };
            let replied = self.has_local_reply_for(stream, &actions, vm);
            if code == 0 && !replied {
                let headers_were_stopped = self.with_stream(stream, |s| {
                    let flow = s.filters[filter].flow_mut(request);
                    flow.body_visible = false;
                    flow.buffering = false;
                    data = std::mem::take(&mut flow.held);
                    let stopped = matches!(flow.headers, HeadersAt::Stopped { all: false });
                    if stopped {
                        flow.headers = HeadersAt::PassedByData;
                    }
                    stopped
                });
                self.apply_actions(vm, actions);
                if self.is_ended(stream, request, epoch) {
                    return Flow::Ended;
                }
                if headers_were_stopped
                    && self.flow_headers(stream, request, position + 1) == Flow::Ended
                {
                    return Flow::Ended;
                }
                continue;
            }
            let over_limit = self.with_stream(stream, |s| {
                let flow = s.filters[filter].flow_mut(request);
                flow.buffering = true;
                flow.held.len()
            }) > self.world.borrow().buffer_limit;
            if over_limit && !replied {
                self.buffer_overflow(stream, request);
                return Flow::Ended;
            }
            self.apply_actions(vm, actions);
            return if self.is_ended(stream, request, epoch) {
                Flow::Ended
            } else {
                Flow::Stopped
            };
        }
        self.with_stream(stream, |s| {
            let sink = s.sink_mut(request);
            sink.body.extend_from_slice(&data);
            sink.end_stream |= eos;
        });
        Flow::Reached
    }

    /// Trailers from position `from` to the end.
    pub(crate) fn flow_trailers(&mut self, stream: u64, request: bool, from: usize) -> Flow {
        let epoch = self.epoch(stream);
        let order = self.order(request);
        for (position, &filter) in order.iter().enumerate().skip(from) {
            match self.participates(stream, filter, request) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(flow) => return flow,
            }
            let (stopped_all, vm) = self.with_stream(stream, |s| {
                let slot = &mut s.filters[filter];
                let vm = slot.vm;
                let flow = slot.flow_mut(request);
                let stopped_all = flow.headers == HeadersAt::Stopped { all: true };
                if stopped_all {
                    flow.trailers_waiting = true;
                } else {
                    flow.in_trailers = true;
                }
                (stopped_all, vm)
            });
            if stopped_all {
                return Flow::Stopped;
            }
            let (code, actions) = match self.run(stream, filter, request, Callback::Trailers) {
                Ran::Code(code, actions) => (code, actions),
                Ran::Failed { ended: true } => return Flow::Ended,
                Ran::Failed { ended: false } => continue,
            };
            let replied = self.has_local_reply_for(stream, &actions, vm);
            self.with_stream(stream, |s| {
                let flow = s.filters[filter].flow_mut(request);
                flow.in_trailers = false;
                flow.trailers_waiting = code != 0 || replied;
            });
            self.apply_actions(vm, actions);
            if self.is_ended(stream, request, epoch) {
                return Flow::Ended;
            }
            if code != 0 || replied {
                return Flow::Stopped;
            }
            // Continue on trailers also releases what this filter held.
            match self.release(stream, request, filter, position, false) {
                Flow::Reached => {}
                other => return other,
            }
        }
        self.with_stream(stream, |s| {
            let trailers = s.direction(request).trailers.clone();
            let sink = s.sink_mut(request);
            sink.trailers = trailers;
            sink.end_stream = true;
        });
        Flow::Reached
    }

    /// Moves on what filter (at `position`) held: its stopped headers, then its buffered body.
    /// With `data_to_self`, the held body goes to the filter itself first (after StopAll).
    fn release(
        &mut self,
        stream: u64,
        request: bool,
        filter: usize,
        position: usize,
        data_to_self: bool,
    ) -> Flow {
        let (headers_stopped, held, held_end, had_body) = self.with_stream(stream, |s| {
            let flow = s.filters[filter].flow_mut(request);
            let headers_stopped = matches!(flow.headers, HeadersAt::Stopped { .. });
            if headers_stopped {
                flow.headers = HeadersAt::Passed;
            }
            flow.headers_released = false;
            let had_body = !flow.held.is_empty() || flow.held_end || flow.buffering;
            flow.buffering = false;
            flow.body_visible = false;
            (
                headers_stopped,
                std::mem::take(&mut flow.held),
                flow.held_end,
                had_body,
            )
        });
        if headers_stopped {
            match self.flow_headers(stream, request, position + 1) {
                Flow::Ended => return Flow::Ended,
                Flow::Stopped | Flow::Reached => {}
            }
        }
        if had_body {
            let from = if data_to_self { position } else { position + 1 };
            return self.flow_data(stream, request, from, held, held_end);
        }
        Flow::Reached
    }

    /// A deferred `proxy_continue_stream` from `filter`.
    fn continue_filter(&mut self, stream: u64, request: bool, filter: usize) {
        let Some(position) = self.order(request).iter().position(|&f| f == filter) else {
            return;
        };
        let (stopped_all, trailers_waiting) = self.with_stream(stream, |s| {
            let flow = s.filters[filter].flow(request);
            (
                flow.headers == HeadersAt::Stopped { all: true },
                flow.trailers_waiting,
            )
        });
        let flow = self.release(stream, request, filter, position, stopped_all);
        if trailers_waiting && flow == Flow::Reached {
            self.with_stream(stream, |s| {
                s.filters[filter].flow_mut(request).trailers_waiting = false
            });
            let from = if stopped_all { position } else { position + 1 };
            self.flow_trailers(stream, request, from);
        }
    }

    /// Runs the deferred actions of a VM call.
    pub(crate) fn apply_actions(&mut self, vm: usize, actions: Vec<DeferredAction>) {
        for action in actions {
            let context = match &action {
                DeferredAction::Continue { context, .. }
                | DeferredAction::Close { context }
                | DeferredAction::LocalReply { context, .. } => *context,
            };
            let Some((stream, filter)) = self.stream_filter(vm, context) else {
                continue;
            };
            if self
                .world
                .borrow()
                .streams
                .get(&stream)
                .is_none_or(|s| s.finished)
            {
                continue;
            }
            match action {
                DeferredAction::Continue { request, .. } => {
                    let ended = self.with_stream(stream, |s| {
                        s.reset.is_some() || (request && s.local_reply.is_some())
                    });
                    if !ended {
                        self.continue_filter(stream, request, filter);
                    }
                }
                DeferredAction::Close { .. } => {
                    self.with_stream(stream, |s| s.reset = Some("wasm_close_stream".into()));
                }
                DeferredAction::LocalReply { reply, .. } => self.local_reply(stream, reply),
            }
        }
    }

    /// 413 for a request over the buffer limit, 500 for a response (Envoy's buffer filter rules).
    fn buffer_overflow(&mut self, stream: u64, request: bool) {
        let (status, body, details) = if request {
            (413, "Payload Too Large", "request_payload_too_large")
        } else {
            (500, "Internal Server Error", "response_payload_too_large")
        };
        let reply = LocalReplyRequest {
            status,
            details: details.into(),
            body: body.as_bytes().to_vec(),
            headers: Headers::new(),
        };
        self.local_reply(stream, reply);
    }

    /// Envoy's `sendLocalReply`: the reply passes the response callbacks of the chain (those
    /// whose context exists), then reaches the client. Once the client has response headers,
    /// the stream is reset instead.
    pub(crate) fn local_reply(&mut self, stream: u64, reply: LocalReplyRequest) {
        let proceed = self.with_stream(stream, |s| {
            if s.local_reply.is_some() || s.reset.is_some() {
                return false;
            }
            if s.downstream.headers.is_some() {
                s.reset = Some("local_reply_after_response_started".into());
                return false;
            }
            let mut headers = Headers::new();
            headers.add(":status", reply.status.to_string().as_bytes());
            if !reply.body.is_empty() {
                headers.add("content-length", reply.body.len().to_string().as_bytes());
                headers.add("content-type", b"text/plain");
            }
            for (key, value) in reply.headers.iter() {
                headers.set(key, value);
            }
            for slot in &mut s.filters {
                slot.request.held.clear();
                slot.request.buffering = false;
                slot.request.body_visible = false;
                slot.response = Default::default();
            }
            s.response.headers = headers.clone();
            s.response.trailers = None;
            s.response.headers_end = reply.body.is_empty();
            s.response.started = true;
            s.response_epoch += 1;
            s.downstream = Default::default();
            s.local_reply = Some(LocalReply {
                status: reply.status as u16,
                headers,
                body: reply.body.clone(),
                details: reply.details.clone(),
            });
            true
        });
        if !proceed {
            return;
        }
        let mut flow = self.flow_headers(stream, false, 0);
        if flow == Flow::Reached && !reply.body.is_empty() {
            flow = self.flow_data(stream, false, 0, reply.body, true);
        }
        let _ = flow;
        self.with_stream(stream, |s| {
            let received = s.downstream.clone();
            if let Some(local) = s.local_reply.as_mut() {
                if let Some(headers) = received.headers {
                    local.status = headers
                        .get(":status")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(local.status);
                    local.headers = headers;
                    local.body = received.body;
                }
            }
        });
    }

    /// Runs `f` on a stream's state (panics only on a host bug: unknown stream id).
    pub(crate) fn with_stream<R>(
        &self,
        stream: u64,
        f: impl FnOnce(&mut crate::stream_state::StreamState) -> R,
    ) -> R {
        let mut world = self.world.borrow_mut();
        let state = world.streams.get_mut(&stream).unwrap_or_else(|| {
            unreachable!("stream {stream} is registered while its handle lives")
        });
        f(state)
    }

    /// `on_log` for every filter, then `on_done`, then `on_delete` (Envoy's HTTP order).
    pub(crate) fn finish_stream(&mut self, stream: u64) {
        if self
            .world
            .borrow()
            .streams
            .get(&stream)
            .is_none_or(|s| s.finished)
        {
            return;
        }
        let filters = self.order(true);
        self.with_stream(stream, |s| s.in_log = true);
        for &filter in &filters {
            let failed = self.with_stream(stream, |s| {
                let slot = &s.filters[filter];
                let vm = &self.vms[slot.vm];
                vm.failed || vm.generation != slot.vm_generation
            });
            if !failed {
                let _ = self.ensure_created(stream, filter); // log() creates a context never reached
            }
        }
        let live: Vec<(usize, u32)> = self.with_stream(stream, |s| {
            s.filters
                .iter()
                .filter(|slot| slot.created && self.vms[slot.vm].generation == slot.vm_generation)
                .map(|slot| (slot.vm, slot.context_id))
                .collect()
        });
        for &(vm, context) in &live {
            let _ = self.vms[vm].call(|c| c.log.as_ref(), "proxy_on_log", context, context as i32);
            self.vms[vm].take_actions();
        }
        self.with_stream(stream, |s| s.in_log = false);
        for &(vm, context) in &live {
            let _ = self.vms[vm].call(
                |c| c.done.as_ref(),
                "proxy_on_done",
                context,
                context as i32,
            );
            self.vms[vm].take_actions();
        }
        for &(vm, context) in &live {
            let _ = self.vms[vm].call(
                |c| c.delete.as_ref(),
                "proxy_on_delete",
                context,
                context as i32,
            );
            self.vms[vm].take_actions();
        }
        let all: Vec<(usize, u32)> = self.with_stream(stream, |s| {
            s.finished = true;
            s.filters
                .iter()
                .map(|slot| (slot.vm, slot.context_id))
                .collect()
        });
        for (vm, context) in all {
            self.vms[vm].store.data_mut().contexts.remove(&context);
        }
        self.run_events();
    }

    /// Removes a stream whose handle was dropped.
    pub(crate) fn forget_stream(&mut self, stream: u64) {
        let Some(state) = self.world.borrow_mut().streams.remove(&stream) else {
            return;
        };
        for slot in state.filters {
            if let Some(vm) = self.vms.get_mut(slot.vm) {
                vm.store.data_mut().contexts.remove(&slot.context_id);
            }
        }
    }

    /// Whether anything is held inside the chain in this direction.
    pub(crate) fn is_paused(&self, stream: u64, request: bool) -> bool {
        let world = self.world.borrow();
        let Some(s) = world.streams.get(&stream) else {
            return false;
        };
        s.filters.iter().any(|slot| {
            let flow = slot.flow(request);
            matches!(flow.headers, HeadersAt::Stopped { .. })
                || flow.buffering
                || !flow.held.is_empty()
                || flow.trailers_waiting
        })
    }
}
