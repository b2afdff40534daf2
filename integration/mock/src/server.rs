//! Running a mock: its own thread and tokio runtime, one listener serving HTTP/1.1 and h2c, and
//! the handle tests use to inspect, steer and stop it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::body::{Aborted, ResponseBody};
use crate::config::{Kind, MockConfig, MockError};
use crate::control;
use crate::faults::{InstanceFaults, Plan, RequestFaults, FAULT_HEADER};
use crate::providers::{self, error_response, Exchange, Failure};
use crate::received::{ReceivedLog, ReceivedRequest};

/// Largest request body a mock reads; larger ones get a 413.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Prefix of the mock's own endpoints, which are never counted, recorded or faulted.
pub(crate) const CONTROL_PREFIX: &str = "/__mock/";

/// Starts a mock on its own thread and runtime and returns once it accepts connections.
///
/// Fails if the address cannot be bound or the faults are invalid. The mock stops when
/// [`MockHandle::stop`] is called or the handle is dropped.
pub fn spawn(config: MockConfig) -> Result<MockHandle, MockError> {
    config.faults.validate()?;
    // Bind here, on the caller's thread, so errors and the chosen port are known on return.
    let listener = std::net::TcpListener::bind(config.addr).map_err(|source| MockError::Bind {
        addr: config.addr,
        source,
    })?;
    let addr = listener.local_addr().map_err(MockError::Runtime)?;
    listener.set_nonblocking(true).map_err(MockError::Runtime)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MockError::Runtime)?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener).map_err(MockError::Runtime)?
    };

    let state = Arc::new(MockState {
        kind: config.kind,
        name: config.name,
        api_key: config.api_key,
        request_count: AtomicU64::new(0),
        received: Mutex::new(ReceivedLog::default()),
        faults: Mutex::new(FaultState::new(config.faults)),
    });
    let (shutdown, shutdown_signal) = oneshot::channel();
    let serving_state = Arc::clone(&state);
    let thread = std::thread::Builder::new()
        .name(format!("mock-{}", state.name))
        .spawn(move || {
            runtime.block_on(accept_loop(listener, serving_state, shutdown_signal));
            // Dropping the runtime here cancels every connection task and closes its socket
            // before `stop` returns.
            drop(runtime);
        })
        .map_err(MockError::Runtime)?;

    Ok(MockHandle {
        addr,
        state,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

/// A running mock. Dropping it stops the mock.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockHandle {
    /// The address the mock listens on (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, handy for building URLs.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Which provider the mock imitates.
    pub fn kind(&self) -> Kind {
        self.state.kind
    }

    /// The mock's name, as used in its answers.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// How many provider requests arrived (every one, including failed and faulted ones).
    pub fn request_count(&self) -> u64 {
        self.state.request_count.load(Ordering::SeqCst)
    }

    /// The last 64 provider requests, oldest first, with headers and bodies as received.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.received().snapshot()
    }

    /// Replaces the instance faults; `fail_first` counts from now.
    pub fn set_faults(&self, faults: InstanceFaults) -> Result<(), MockError> {
        self.state.set_faults(faults)
    }

    /// The instance faults in effect.
    pub fn faults(&self) -> InstanceFaults {
        self.state.faults().instance.clone()
    }

    /// Forgets the received requests and sets the request count back to 0.
    pub fn reset_received(&self) {
        self.state.reset_received();
    }

    /// Stops the mock: closes the listener and every open connection, and waits until they are
    /// closed. Afterwards the port refuses connections and can be bound again. Idempotent;
    /// counts and received requests stay readable.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything a mock's connections share.
pub(crate) struct MockState {
    pub kind: Kind,
    pub name: String,
    api_key: Option<String>,
    request_count: AtomicU64,
    received: Mutex<ReceivedLog>,
    faults: Mutex<FaultState>,
}

/// The instance faults and how many requests arrived since they were set (for `fail_first`).
#[derive(Debug)]
pub(crate) struct FaultState {
    pub instance: InstanceFaults,
    requests_since_set: u64,
}

impl FaultState {
    fn new(instance: InstanceFaults) -> Self {
        FaultState {
            instance,
            requests_since_set: 0,
        }
    }
}

/// Shows whether a key is set, never the key itself.
impl std::fmt::Debug for MockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockState")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("request_count", &self.request_count)
            .finish_non_exhaustive()
    }
}

impl MockState {
    pub(crate) fn request_count(&self) -> u64 {
        self.request_count.load(Ordering::SeqCst)
    }

    pub(crate) fn received(&self) -> MutexGuard<'_, ReceivedLog> {
        // A panic while holding the lock cannot leave the log inconsistent: keep using it.
        self.received
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_faults(&self, faults: InstanceFaults) -> Result<(), MockError> {
        faults.validate()?;
        *self.faults() = FaultState::new(faults);
        Ok(())
    }

    pub(crate) fn reset_received(&self) {
        let mut received = self.received();
        received.clear();
        self.request_count.store(0, Ordering::SeqCst);
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<MockState>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&state)));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Serves one connection; HTTP/1.1 or HTTP/2 prior knowledge, detected from the first bytes.
async fn serve_connection(stream: TcpStream, state: Arc<MockState>) {
    // Small writes (stream chunks) must leave at once for time-to-first-byte to mean something.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        // An `Err` makes hyper drop the connection (HTTP/1.1) or reset the stream (HTTP/2)
        // without a response.
        async move { handle(&state, request).await }
    });
    // Errors here are the client going away or an injected reset: nothing to do about either.
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    state: &MockState,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Aborted> {
    if request.uri().path().starts_with(CONTROL_PREFIX) {
        return Ok(control::handle(state, request).await);
    }
    let seq = state.request_count.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            record(state, &parts, Bytes::new());
            let failure = if error.is::<LengthLimitError>() {
                Failure::TooLarge
            } else {
                Failure::InvalidRequest {
                    message: "the request body could not be read".to_string(),
                    param: None,
                }
            };
            let response = error_response(state.kind, &failure, None);
            return Ok(with_mock_headers(response, state, seq));
        }
    };
    record(state, &parts, body.clone());

    let header = parts
        .headers
        .get(FAULT_HEADER)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let request_faults = match header.map(RequestFaults::parse).transpose() {
        Ok(faults) => faults.unwrap_or_default(),
        Err(error) => {
            let failure = Failure::InvalidRequest {
                message: format!("bad {FAULT_HEADER} header: {error}"),
                param: None,
            };
            let response = error_response(state.kind, &failure, None);
            return Ok(with_mock_headers(response, state, seq));
        }
    };
    let plan = {
        // One lock for reading and counting, so a concurrent `set_faults` is seen whole.
        let mut faults = state.faults();
        let plan = Plan::resolve(&faults.instance, faults.requests_since_set, &request_faults);
        faults.requests_since_set += 1;
        plan
    };

    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if plan.reset_before_headers {
        return Err(Aborted);
    }
    let response = match plan.fail_status.map(hyper::StatusCode::from_u16) {
        Some(Ok(status)) => error_response(
            state.kind,
            &Failure::Injected(status),
            plan.retry_after_secs,
        ),
        // Statuses are validated to 400..=599 when set, so this cannot happen; answer anyway.
        Some(Err(_)) | None => {
            let exchange = Exchange {
                name: &state.name,
                api_key: state.api_key.as_deref(),
                seq,
                method: &parts.method,
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                body: &body,
            };
            providers::respond(state.kind, &exchange, &plan)
        }
    };
    let accepts = parts
        .headers
        .get(hyper::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::body::accepts_gzip);
    let response = if plan.gzip_regardless || (plan.gzip && accepts) {
        compressed(response)
    } else {
        response
    };
    Ok(with_mock_headers(response, state, seq))
}

/// The answer gzip-compressed: `content-encoding: gzip`, no `content-length`.
fn compressed(response: Response<ResponseBody>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.insert(
        hyper::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    Response::from_parts(parts, crate::body::gzip(body))
}

fn record(state: &MockState, parts: &hyper::http::request::Parts, body: Bytes) {
    let path = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.received().push(ReceivedRequest {
        method: parts.method.to_string(),
        path,
        headers,
        body: body.to_vec(),
    });
}

/// Adds `x-mock-name` and `x-mock-seq` so a test can tell which mock and which request answered.
fn with_mock_headers(
    mut response: Response<ResponseBody>,
    state: &MockState,
    seq: u64,
) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    if let Ok(name) = HeaderValue::from_str(&state.name) {
        headers.insert("x-mock-name", name);
    }
    headers.insert("x-mock-seq", HeaderValue::from(seq));
    response
}
