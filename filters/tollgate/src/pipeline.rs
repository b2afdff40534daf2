//! The downstream pipeline: one HttpContext that runs the stages in order — route → cache →
//! budget → metrics — over one [`RequestFacts`] and one [`ResponseFacts`], so each phase
//! crosses into the VM once and the body is read once.
//!
//! - Request headers: the route stage says what the operation is; every stage sees the headers.
//!   Anything that needs the body pauses the headers (`allow_on_headers_stop_iteration`).
//! - Request body (whole): the route stage's one pass fills the facts; each stage may edit the
//!   body, answer locally (no later stage runs, nothing goes upstream) or call a service
//!   (the chain resumes with its answer).
//! - Response: one observer reads usage, model and completeness (JSON whole, streams chunk by
//!   chunk, never buffered), and how the choices ended when the cache may store the answer;
//!   stages add headers and see the chunks.
//! - on_log: every stage's `on_done`, even when an earlier stage answered.

use crate::host;
use crate::stages::budget::{BudgetRoot, BudgetStage};
use crate::stages::cache::{CacheRoot, CacheStage};
use crate::stages::metrics::{MetricsRoot, MetricsStage};
use crate::stages::route::{self, Operation};
use crate::stages::Stage;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use tollgate_budget::KeyPart;
use tollgate_core::config::{DownstreamConfig, RouterConfig};
use tollgate_core::errors::GatewayError;
use tollgate_core::facts::{Answerer, Caller, RequestFacts, ResponseFacts};
use tollgate_core::names::{header, host_property};
use tollgate_core::observe::{BodyKind, ResponseObserver};
use tollgate_core::request::check_size;
use tollgate_core::stage::{LocalReply, Step};

/// The stages after routing, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageId {
    Cache,
    Budget,
    Metrics,
}

const ORDER: [StageId; 3] = [StageId::Cache, StageId::Budget, StageId::Metrics];

impl StageId {
    fn answerer(self) -> Answerer {
        match self {
            StageId::Cache => Answerer::Cache,
            StageId::Budget => Answerer::Budget,
            StageId::Metrics => Answerer::Gateway,
        }
    }
}

/// How an error answer is rewritten for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rewrite {
    /// An error Envoy wrote (plain text): same status, OpenAI format.
    EnvoyError(u16),
    /// A provider's 401/403 to the gateway's key: 502, without the provider's text.
    CredentialsRefused { provider: String, status: u16 },
}

/// Per-VM state of the pipeline: its configuration and each configured stage's root.
pub struct PipelineRoot {
    route: RouterConfig,
    /// Whether the route stage routes (validates, picks the backend); off when a capability
    /// runs alone, where the body is only read for facts.
    routing: bool,
    cache: Option<Rc<CacheRoot>>,
    budget: Option<Rc<BudgetRoot>>,
    metrics: Option<Rc<MetricsRoot>>,
    /// The caller fields the configured stages use.
    caller: CallerReads,
}

/// Which caller fields a stage uses, so each property is read only when one does: a property
/// read costs Envoy a VM re-entry (the allocation), ~1 µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CallerReads {
    /// The cache, the budget or the access log is configured: some stage looks at the caller
    /// (the client key comes from the headers, already read).
    any: bool,
    /// The JWT `sub`: the cache keys on it, a budget key may name `jwt.sub`, and the access
    /// log's `user` (metrics) shows it where a caller is read.
    jwt_subject: bool,
    /// The source address: only a budget key (`source.address`) uses it.
    address: bool,
}

impl CallerReads {
    fn of(config: &DownstreamConfig, cache: bool, budget: bool, metrics: bool) -> Self {
        let access_log = metrics && config.metrics.as_ref().is_some_and(|m| m.access_log);
        let mut reads = Self {
            any: cache || budget || access_log,
            jwt_subject: cache || access_log,
            address: false,
        };
        let policies = config
            .budget
            .as_ref()
            .filter(|_| budget)
            .map(|b| &b.policies[..]);
        for part in policies.unwrap_or_default().iter().flat_map(|p| &p.key) {
            match KeyPart::parse(part) {
                Some(KeyPart::Jwt(claim)) if claim == "sub" => reads.jwt_subject = true,
                Some(KeyPart::Address) => reads.address = true,
                _ => {}
            }
        }
        reads
    }
}

impl PipelineRoot {
    /// The whole pipeline from its configuration: a stage runs when its section is present.
    pub fn pipeline(config: DownstreamConfig) -> Result<Self, String> {
        Self::with_stages(config, true, [true, true, true])
    }

    /// Routing alone (`root_id: router`).
    pub fn router(config: RouterConfig) -> Self {
        Self {
            route: config,
            routing: true,
            cache: None,
            budget: None,
            metrics: None,
            caller: CallerReads::default(),
        }
    }

    /// One capability alone (`root_id: cache|budget|metrics`): its section of the document.
    pub fn capability(
        config: DownstreamConfig,
        cache: bool,
        budget: bool,
        metrics: bool,
    ) -> Result<Self, String> {
        Self::with_stages(config, false, [cache, budget, metrics])
    }

    fn with_stages(
        config: DownstreamConfig,
        routing: bool,
        [cache, budget, metrics]: [bool; 3],
    ) -> Result<Self, String> {
        let cache = match config.cache.as_ref().filter(|_| cache) {
            Some(c) => Some(Rc::new(
                CacheRoot::new(c).map_err(|e| format!("cache: {e}"))?,
            )),
            None => None,
        };
        let budget = match config.budget.as_ref().filter(|_| budget) {
            Some(c) => Some(Rc::new(
                BudgetRoot::new(c).map_err(|e| format!("budget: {e}"))?,
            )),
            None => None,
        };
        let metrics = match config.metrics.as_ref().filter(|_| metrics) {
            Some(c) => Some(Rc::new(
                MetricsRoot::new(c).map_err(|e| format!("metrics: {e}"))?,
            )),
            None => None,
        };
        let caller = CallerReads::of(
            &config,
            cache.is_some(),
            budget.is_some(),
            metrics.is_some(),
        );
        Ok(Self {
            route: config.route,
            routing,
            cache,
            budget,
            metrics,
            caller,
        })
    }
}

/// The per-request parts of the configured stages.
struct Stages {
    cache: Option<CacheStage>,
    budget: Option<BudgetStage>,
    metrics: Option<MetricsStage>,
}

impl Stages {
    fn get(&mut self, id: StageId) -> Option<&mut dyn Stage> {
        match id {
            StageId::Cache => self.cache.as_mut().map(|s| s as &mut dyn Stage),
            StageId::Budget => self.budget.as_mut().map(|s| s as &mut dyn Stage),
            StageId::Metrics => self.metrics.as_mut().map(|s| s as &mut dyn Stage),
        }
    }

    fn any(&mut self, wants: impl Fn(&dyn Stage) -> bool) -> bool {
        ORDER
            .iter()
            .any(|&id| self.get(id).is_some_and(|s| wants(s)))
    }
}

/// One client request through the pipeline.
pub struct PipelineStream {
    root: Rc<PipelineRoot>,
    facts: RequestFacts,
    response: ResponseFacts,
    stages: Stages,
    /// A local reply was sent: the request goes no further.
    answered: bool,
    /// Request body bytes buffered so far (read again if the body ends with trailers).
    request_body_size: usize,
    /// The body as it will go upstream, held while a callout is pending.
    body: Vec<u8>,
    body_changed: bool,
    /// The stage waiting for a callout's answer, and the callout's token.
    pending: Option<(u32, StageId)>,
    /// The answer is an error the client must not get as it is (Envoy's plain-text 503, a
    /// provider refusing the gateway's credentials): its body is buffered to be replaced.
    rewrite: Option<Rewrite>,
    observer: Option<ResponseObserver>,
    response_ended: bool,
    /// The response body Envoy holds for us (all of it while we pause), or the last chunk.
    response_body_size: usize,
    /// What the route stage made of the request.
    operation: Operation,
    /// The headers were paused to read the body: the body callbacks buffer it. Otherwise they
    /// let every chunk pass (Envoy calls them after a headers Continue too).
    reading_body: bool,
}

impl PipelineStream {
    /// A stream of the pipeline.
    pub fn new(root: &Rc<PipelineRoot>) -> Self {
        Self {
            root: Rc::clone(root),
            facts: RequestFacts::default(),
            response: ResponseFacts::default(),
            stages: Stages {
                cache: root.cache.as_ref().map(CacheStage::new),
                budget: root.budget.as_ref().map(BudgetStage::new),
                metrics: root.metrics.as_ref().map(MetricsStage::new),
            },
            answered: false,
            request_body_size: 0,
            body: Vec::new(),
            body_changed: false,
            pending: None,
            rewrite: None,
            observer: None,
            response_ended: false,
            response_body_size: 0,
            operation: Operation::PassThrough,
            reading_body: false,
        }
    }

    fn respond(&mut self, reply: &LocalReply, by: Answerer) -> Action {
        self.answered = true;
        self.response.answered_by = by;
        // Our replies are OpenAI JSON already: Envoy's local-reply mappers leave them alone.
        host::set_request_header(header::LOCAL_REPLY, Some("1"));
        host::send_local_reply(reply);
        Action::Pause
    }

    fn reject(&mut self, error: &GatewayError) -> Action {
        let reply = LocalReply::json(error.status(), error.to_openai().to_bytes());
        self.respond(&reply, Answerer::Gateway)
    }

    /// Who is calling: read once, each field only when a configured stage uses it.
    fn read_caller(&self, reads: CallerReads) -> Caller {
        let jwt_subject = reads.jwt_subject.then(|| {
            let mut jwt = host_property::JWT_PAYLOAD.to_vec();
            jwt.push("sub");
            host::property_text(&jwt)
        });
        let address = reads.address.then(|| {
            host::property_text(&host_property::SOURCE_ADDRESS).map(|a| match a.rsplit_once(':') {
                Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                    ip.trim_matches(['[', ']']).to_string()
                }
                _ => a,
            })
        });
        Caller {
            jwt_subject: jwt_subject.flatten(),
            client_key: self.facts.headers.text(header::CLIENT).map(str::to_string),
            address: address.flatten(),
        }
    }

    /// Runs the request-headers phase of every stage; `Some` when one answered.
    fn run_request_headers(&mut self) -> Option<Action> {
        for id in ORDER {
            let facts = &self.facts;
            let step = self.stages.get(id).map(|s| s.on_request_headers(facts));
            match step {
                None | Some(Step::Continue) => {}
                Some(Step::Respond(reply)) => return Some(self.respond(&reply, id.answerer())),
                Some(Step::Callout(_)) => {
                    log::warn!("tollgate: a callout from the headers phase is not supported");
                }
            }
        }
        None
    }

    /// Runs the body phase of the stages from `from` on; Continue when the request may go.
    fn run_request_body(&mut self, from: usize) -> Action {
        for &id in &ORDER[from..] {
            let mut body = std::mem::take(&mut self.body);
            let mut changed = false;
            let facts = &self.facts;
            let step = self
                .stages
                .get(id)
                .map(|s| s.on_request_body(facts, &mut body, &mut changed));
            self.body = body;
            self.body_changed |= changed;
            match step {
                None | Some(Step::Continue) => {}
                Some(Step::Respond(reply)) => return self.respond(&reply, id.answerer()),
                Some(Step::Callout(callout)) => match host::dispatch_callout(&callout) {
                    Ok(token) => {
                        self.pending = Some((token, id));
                        return Action::Pause;
                    }
                    Err(status) => {
                        // The stage decides what a failed call means (fail open or closed).
                        log::warn!(
                            "tollgate: callout to {} failed to start: {status:?}",
                            callout.cluster
                        );
                        let facts = &self.facts;
                        let next = self
                            .stages
                            .get(id)
                            .map(|s| s.on_callout_response(facts, 0, b""));
                        if let Some(Step::Respond(reply)) = next {
                            return self.respond(&reply, id.answerer());
                        }
                    }
                },
            }
        }
        self.release_request();
        Action::Continue
    }

    /// The body is final: write it back if a stage changed it, tell the adapter the facts.
    fn release_request(&mut self) {
        if self.body_changed {
            host::replace_request_body(self.request_body_size, &self.body);
            host::set_request_header("content-length", Some(&self.body.len().to_string()));
        }
        // What goes upstream, after every stage's edits (the adapter's content-length).
        self.facts.body_bytes = self.body.len();
        if self.root.routing && self.operation == Operation::Chat {
            route::publish_for_adapter(&self.root.route, &self.facts);
        }
        self.body = Vec::new();
    }

    /// The whole request body is in (end of body or trailers).
    fn on_request_complete(&mut self) -> Action {
        self.body = host::request_body(self.request_body_size);
        let root = Rc::clone(&self.root);
        let mut body = std::mem::take(&mut self.body);
        let mut changed = false;
        // A pass-through body (MCP) is read for the stages that asked, never validated.
        let routed = if self.operation == Operation::Chat {
            route::on_request_body(
                &root.route,
                &mut self.facts,
                &mut body,
                &mut changed,
                root.routing,
            )
        } else {
            self.facts.body_bytes = body.len();
            Ok(())
        };
        self.body = body;
        self.body_changed = changed;
        match routed {
            Err(error) if root.routing => self.reject(&error),
            _ => self.run_request_body(0),
        }
    }

    fn finish_response_facts(&mut self) {
        if let Some(observer) = &self.observer {
            let seen = observer.observed();
            self.response.usage = seen.usage;
            if seen.model.is_some() {
                self.response.model.clone_from(&seen.model);
            }
            self.response.complete = seen.complete && self.response_ended;
            // `clone_from` reuses the facts' allocation: none per chunk.
            self.response.finishes.clone_from(&seen.finishes);
        } else {
            self.response.complete = self.response_ended;
        }
    }
}

impl Context for PipelineStream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some((pending, id)) = self.pending.take() else {
            return;
        };
        if pending != token {
            return;
        }
        let status = if num_headers == 0 {
            0 // the call failed: Envoy gives no headers
        } else {
            host::callout_header(":status")
                .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse().ok()))
                .unwrap_or(0)
        };
        let body = host::callout_body(body_size);
        let facts = &self.facts;
        let step = self
            .stages
            .get(id)
            .map(|s| s.on_callout_response(facts, status, &body));
        let action = match step {
            Some(Step::Respond(reply)) => {
                self.respond(&reply, id.answerer());
                return;
            }
            _ => {
                // The stage may still edit the held body with what the call said.
                let mut body = std::mem::take(&mut self.body);
                let mut changed = false;
                let facts = &self.facts;
                if let Some(stage) = self.stages.get(id) {
                    stage.on_callout_body(facts, &mut body, &mut changed);
                }
                self.body = body;
                self.body_changed |= changed;
                let next = ORDER
                    .iter()
                    .position(|&s| s == id)
                    .map_or(ORDER.len(), |i| i + 1);
                self.run_request_body(next)
            }
        };
        if action == Action::Continue {
            host::resume_request();
        }
    }
}

impl HttpContext for PipelineStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let root = Rc::clone(&self.root);
        self.facts.started_ms = host::now_ms();
        // One read of the whole map: every stage takes its headers from the facts.
        self.facts.headers = host::request_headers();
        let text = |name| {
            self.facts
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        self.facts.method = text(":method");
        self.facts.path = text(":path");
        if !root.route.routes.is_empty()
            || !root.route.route_backends.is_empty()
            || self.stages.cache.is_some()
            || self.stages.budget.is_some()
        {
            self.facts.route = host::property_text(&host_property::ROUTE_NAME);
        }
        if root.caller.any {
            self.facts.caller = self.read_caller(root.caller);
        }
        let operation =
            route::on_request_headers(&root.route, &self.facts, end_of_stream, root.routing);
        let operation = match operation {
            Ok(operation) => operation,
            Err(reply) => return self.respond(&reply, Answerer::Gateway),
        };
        self.operation = operation;
        if let Some(action) = self.run_request_headers() {
            return action;
        }
        if end_of_stream {
            return Action::Continue;
        }
        // Stages read the answer (usage, stored bodies): ask for it uncompressed. Only when
        // the client asked otherwise: a request-header change costs Envoy a re-route.
        if operation == Operation::Chat
            && self.stages.any(|s| s.wants_response_body())
            && self
                .facts
                .headers
                .get("accept-encoding")
                .is_some_and(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"))
        {
            host::set_request_header("accept-encoding", Some("identity"));
        }
        // Only chat completions are routed on their body; anything else is read only when a
        // stage asks (e.g. the MCP tool cache), and never validated.
        let routed = root.routing && operation == Operation::Chat;
        if !routed && !self.stages.any(|s| s.wants_request_body()) {
            return Action::Continue;
        }
        let declared = self
            .facts
            .headers
            .text("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(size) = declared {
            if let Err(error) = check_size(size, root.route.max_request_bytes) {
                if root.routing {
                    return self.reject(&error);
                }
                return Action::Continue; // too big to read for facts: let it pass unread
            }
        }
        self.reading_body = true;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.reading_body {
            return Action::Continue;
        }
        if self.answered || self.pending.is_some() {
            return Action::Pause;
        }
        if let Err(error) = check_size(body_size, self.root.route.max_request_bytes) {
            return self.reject(&error);
        }
        self.request_body_size = body_size;
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is in
        }
        self.on_request_complete()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if !self.reading_body {
            return Action::Continue;
        }
        if self.answered || self.pending.is_some() {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // One read of the whole map (each single-header read is a crossing of its own).
        let headers = host::response_headers();
        let status = headers
            .text(":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let kind = BodyKind::of_content_type(headers.get("content-type").unwrap_or_default());
        self.response.status = status;
        self.response.ttfb_ms = Some(host::now_ms().saturating_sub(self.facts.started_ms));
        self.response.provider = headers.text(header::PROVIDER).map(str::to_string);
        self.response.model = headers.text(header::MODEL).map(str::to_string);
        self.response_ended = end_of_stream;
        let upstream_answer = self.root.routing && !self.answered;
        if upstream_answer && self.operation == Operation::Chat && matches!(status, 401 | 403) {
            // The provider refused the gateway's key (an adapter would have said so already).
            let provider = self.response.provider.clone().unwrap_or_default();
            log::warn!(
                "tollgate: provider {provider} refused the gateway's credentials (status {status})"
            );
            self.rewrite = Some(Rewrite::CredentialsRefused { provider, status });
            self.response.status = 502;
            host::set_response_header(":status", Some("502"));
        } else if upstream_answer && status >= 400 && kind != BodyKind::Json {
            self.rewrite = Some(Rewrite::EnvoyError(status));
        }
        if self.rewrite.is_some() {
            host::set_response_header("content-length", None);
            host::set_response_header("content-type", Some("application/json"));
            host::set_response_header("content-encoding", None);
        }
        let mut add = Vec::new();
        for id in ORDER {
            let (facts, response) = (&self.facts, &self.response);
            if let Some(stage) = self.stages.get(id) {
                stage.on_response_headers(facts, response, &mut add);
            }
        }
        for (name, value) in &add {
            host::set_response_header(name, Some(value));
        }
        // A body we cannot read (compressed although we asked for identity) is not observed.
        let encoded = headers
            .get("content-encoding")
            .is_some_and(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity"));
        if !end_of_stream
            && !encoded
            && self.rewrite.is_none()
            && self.stages.any(|s| s.wants_response_body())
        {
            // The cache decides storability from the observer's pass, not a second parse.
            let finishes = self
                .stages
                .cache
                .as_ref()
                .is_some_and(|c| c.wants_finishes());
            self.observer = Some(ResponseObserver::new(kind).with_finishes(finishes));
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.response_ended {
            return Action::Continue;
        }
        // The answer ended with trailers: its body callbacks never saw the end. A JSON answer
        // (or one being rewritten) is still buffered whole: read it now; a stream's chunks
        // were all seen, so nothing new is read and its end is observed.
        let buffered = match self.observer.as_ref().map(|o| o.kind()) {
            _ if self.rewrite.is_some() => self.response_body_size,
            Some(BodyKind::Json) => self.response_body_size,
            _ => 0,
        };
        self.on_http_response_body(buffered, true)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.response_body_size = body_size;
        if let Some(rewrite) = &self.rewrite {
            if !end_of_stream {
                return Action::Pause;
            }
            self.response_ended = true;
            let body = match rewrite {
                Rewrite::EnvoyError(status) => {
                    route::envoy_error_as_openai(*status, &host::response_body(body_size))
                }
                Rewrite::CredentialsRefused { provider, status } => {
                    GatewayError::ProviderCredentialsRefused {
                        provider: provider.clone(),
                        status: *status,
                    }
                    .to_openai()
                    .to_bytes()
                }
            };
            host::replace_response_body(body_size, &body);
            return Action::Continue;
        }
        let Some(observer) = self.observer.as_mut() else {
            self.response_ended |= end_of_stream;
            return Action::Continue;
        };
        let chunk = match observer.kind() {
            BodyKind::Json if !end_of_stream => return Action::Pause, // small: read it whole
            BodyKind::Json => {
                let body = host::response_body(body_size);
                observer.read_json(&body);
                body
            }
            BodyKind::EventStream => {
                let chunk = host::response_body(body_size);
                observer.push_stream_chunk(&chunk);
                if end_of_stream {
                    observer.finish_stream();
                }
                chunk
            }
            BodyKind::Other => host::response_body(body_size),
        };
        self.response_ended |= end_of_stream;
        self.finish_response_facts();
        for id in ORDER {
            let (facts, response) = (&self.facts, &self.response);
            if let Some(stage) = self.stages.get(id) {
                stage.on_response_body(facts, response, &chunk, end_of_stream);
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish_response_facts();
        for id in ORDER {
            let (facts, response) = (&self.facts, &self.response);
            if let Some(stage) = self.stages.get(id) {
                stage.on_done(facts, response);
            }
        }
    }
}
