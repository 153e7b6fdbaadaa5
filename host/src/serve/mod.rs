//! `tripline serve`: an HTTP hop that tags batches on their way through.
//!
//! Vector and Fluent Bit already know how to POST batches, retry, buffer
//! and push back; this server lets either put Tripline between itself and
//! the next hop without a plugin. It takes a batch, tags it through the
//! component on a worker thread, and hands it on in the shape it came in,
//! answering 2xx only once the next hop has accepted it, so that the
//! sender's own retry and buffer cover every failure in between. It bounds
//! the batches it holds and refuses more with 429, rather than queue.
//!
//! The parts: [`body`] (the shapes of a batch on the wire), [`json`]
//! (where each event of a JSON body is), [`workers`] (the component
//! instances), [`forward`] (the next hop) and [`metrics`]. This file holds
//! the routes and the server's life: start, accept, stop gracefully.

mod body;
mod forward;
mod json;
pub mod metrics;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT,
    RETRY_AFTER,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::component::Detector;
use crate::tag::Tagger;
use metrics::{Metrics, Reason};
pub use workers::BatchLimits;
use workers::{Pool, Shared};

/// How long a client may take to send a request's headers, and then its
/// body. Generous for any sender on the same network; a sender that takes
/// longer holds a slot in flight that others could use.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Retry-After, in seconds, when every slot in flight is taken: slots
/// free up as fast as batches are tagged and forwarded.
const BUSY_RETRY_AFTER: u64 = 1;

/// How much of a refused body is read and dropped before the answer, and
/// for how long (see [`discard`]). A few times the largest batch Vector or
/// Fluent Bit sends by default, so that a sender configured a little past
/// `--max-body-bytes` still hears why.
const DISCARD_LIMIT: u64 = 64 << 20;
const DISCARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The path batches are posted to.
    pub path: String,
    /// Where tagged batches go; `None` answers with them instead.
    pub forward: Option<Uri>,
    pub forward_timeout: Duration,
    pub forward_retries: u32,
    /// The largest body taken, both as sent and decompressed.
    pub max_body_bytes: usize,
    /// The most batches handled at once.
    pub max_in_flight: usize,
    /// How long requests in flight may take to finish once asked to stop.
    pub shutdown_grace: Duration,
    pub limits: BatchLimits,
}

/// How the server stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight was answered.
    Clean,
    /// The grace period ran out, or a second signal came, with requests
    /// still in flight; their senders will retry them.
    Cut,
}

/// A request answered with other than 2xx: the status, the reason that
/// metrics count it under, and a message for the sender and the log.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub reason: Reason,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Rejection {
    pub fn new(status: StatusCode, reason: Reason, message: String) -> Rejection {
        Rejection { status, reason, message, retry_after: None }
    }

    pub fn retry_after(mut self, seconds: u64) -> Rejection {
        self.retry_after = Some(seconds);
        self
    }
}

/// What every request handler shares.
struct State {
    path: String,
    max_body_bytes: usize,
    max_in_flight: usize,
    in_flight: Arc<Semaphore>,
    pool: Pool,
    forward: Option<forward::Forwarder>,
    metrics: Arc<Metrics>,
}

/// Serves until SIGTERM or SIGINT, with one worker per detector. All
/// detectors must have the same rules, those `tagger` was made for;
/// `rules` names them, in order, for the metrics.
pub fn serve(
    opts: ServeOptions,
    detectors: Vec<Detector>,
    tagger: Tagger,
    rules: Vec<String>,
) -> Result<Stopped> {
    anyhow::ensure!(!detectors.is_empty(), "at least one worker is needed");
    let workers = detectors.len();
    let metrics = Arc::new(Metrics::new(rules, workers));
    let shared = Arc::new(Shared {
        tagger: Arc::new(tagger),
        limits: opts.limits,
        max_body_bytes: opts.max_body_bytes,
        metrics: Arc::clone(&metrics),
    });
    let max_in_flight = opts.max_in_flight.max(1);
    let pool = Pool::start(detectors, shared, max_in_flight)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tripline-io")
        .build()
        .context("failed to start the async runtime")?;
    let forward = opts.forward.clone().map(|uri| {
        forward::Forwarder::new(
            uri,
            opts.forward_timeout,
            opts.forward_retries,
            Arc::clone(&metrics),
        )
    });
    let state = Arc::new(State {
        path: opts.path.clone(),
        max_body_bytes: opts.max_body_bytes,
        max_in_flight,
        in_flight: Arc::new(Semaphore::new(max_in_flight)),
        pool,
        forward,
        metrics,
    });
    let stopped = runtime.block_on(run(&opts, Arc::clone(&state), workers))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    if stopped == Stopped::Clean {
        // Every connection is closed, so this is the last reference.
        if let Ok(state) = Arc::try_unwrap(state) {
            state.pool.stop();
        }
    }
    Ok(stopped)
}

/// Accepts connections until a signal, then stops gracefully.
async fn run(opts: &ServeOptions, state: Arc<State>, workers: usize) -> Result<Stopped> {
    let mut signals = Signals::new()?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("failed to listen on {}", opts.listen))?;
    let address = listener.local_addr().context("failed to read the listening address")?;
    let forward = state.forward.as_ref().map(|f| f.target().to_string());
    info!(
        address = %address,
        path = %state.path,
        workers,
        max_in_flight = state.max_in_flight,
        forward = forward.as_deref().unwrap_or("none: the tagged batch is the answer"),
        "Listening for batches."
    );
    let graceful = GracefulShutdown::new();
    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => connection(stream, Arc::clone(&state), &graceful),
                Err(e) => {
                    // Out of file descriptors, most often: pause rather
                    // than spin, and let connections close.
                    warn!(error = %e, "Failed to accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            signal = signals.next() => break signal,
        }
    };
    drop(listener);
    let open = graceful.count();
    info!(
        signal,
        connections = open,
        grace_ms = opts.shutdown_grace.as_millis() as u64,
        "Shutting down: no new connections; finishing the requests in flight."
    );
    tokio::select! {
        () = graceful.shutdown() => {
            info!("Every request in flight was answered; exiting.");
            Ok(Stopped::Clean)
        }
        () = tokio::time::sleep(opts.shutdown_grace) => {
            warn!(
                grace_ms = opts.shutdown_grace.as_millis() as u64,
                "The grace period ran out with requests in flight; their senders will retry them."
            );
            Ok(Stopped::Cut)
        }
        signal = signals.next() => {
            warn!(signal, "A second signal came; exiting without waiting for requests in flight.");
            Ok(Stopped::Cut)
        }
    }
}

/// SIGTERM and SIGINT, whichever comes first.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        let term = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?;
        Ok(Signals { term, int })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Serves one connection, HTTP/1.1, until it closes or the server stops.
fn connection(stream: TcpStream, state: Arc<State>, graceful: &GracefulShutdown) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(state.route(request).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "A connection ended with an error.");
        }
    });
}

impl State {
    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let method = request.method();
        if path == self.path {
            if method == Method::POST {
                return self.batch(request).await;
            }
            return self.not_allowed("POST");
        }
        match path {
            "/health" if method == Method::GET || method == Method::HEAD => {
                text(StatusCode::OK, "ok\n")
            }
            "/metrics" if method == Method::GET => {
                let in_flight = self.max_in_flight - self.in_flight.available_permits();
                let mut response = text(StatusCode::OK, self.metrics.render(in_flight));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            "/health" => self.not_allowed("GET, HEAD"),
            "/metrics" => self.not_allowed("GET"),
            _ => self.reject(Rejection::new(
                StatusCode::NOT_FOUND,
                Reason::NotFound,
                format!("No such path; POST batches to {}.", self.path),
            )),
        }
    }

    /// Takes one batch: tags it and forwards it, or answers with it.
    async fn batch(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (head, body) = request.into_parts();
        match self.take(&head.headers, body).await {
            Ok(response) => response,
            Err((rejection, unread)) => {
                if let Some(unread) = unread {
                    discard(unread, &head.headers).await;
                }
                self.reject(rejection)
            }
        }
    }

    /// Handles a batch; a refusal comes with what is left of the body,
    /// if any of it is still unread.
    async fn take(
        &self,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, (Rejection, Option<Incoming>)> {
        let Ok(_slot) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            let message = format!(
                "Tripline is handling its limit of {} batches; retry later.",
                self.max_in_flight
            );
            let busy = Rejection::new(StatusCode::TOO_MANY_REQUESTS, Reason::Busy, message)
                .retry_after(BUSY_RETRY_AFTER);
            return Err((busy, Some(body)));
        };
        let format = match body::format(headers) {
            Ok(format) => format,
            Err(rejection) => return Err((rejection, Some(body))),
        };
        // `format` found one, or it would have refused the request.
        let content_type = headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        let announced = announced_length(headers);
        if announced.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err((too_large(self.max_body_bytes), Some(body)));
        }
        // With --forward the output is encoded as the input was; as an
        // answer, as the client accepts.
        let gzip_out = match self.forward {
            Some(_) => format.gzip,
            None => body::accepts_gzip(headers),
        };
        let raw = read_body(body, self.max_body_bytes, announced.unwrap_or(0)).await?;
        let started = Instant::now();
        let result = self.deliver(raw, format, gzip_out, content_type, started).await;
        self.metrics.batch_seconds.observe(started.elapsed());
        result.map_err(|rejection| (rejection, None))
    }

    async fn deliver(
        &self,
        raw: Bytes,
        format: body::Format,
        gzip_out: bool,
        content_type: HeaderValue,
        started: Instant,
    ) -> Result<Response<Full<Bytes>>, Rejection> {
        let tagged = self.pool.tag(raw, format, gzip_out).await?;
        self.metrics.tag_seconds.observe(started.elapsed());
        self.metrics.tagged_batch(&tagged.stats);
        debug!(
            layout = tagged.layout,
            events = tagged.events,
            tagged = tagged.stats.tagged,
            errored = tagged.stats.errored(),
            "Tagged a batch."
        );
        let Some(forward) = &self.forward else {
            self.metrics.forwarded(tagged.events);
            let mut response = Response::new(Full::new(tagged.body));
            response.headers_mut().insert(CONTENT_TYPE, content_type);
            if gzip_out {
                response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            return Ok(response);
        };
        // Nothing to hand on; an empty batch is accepted as it is.
        if tagged.events > 0 {
            forward.send(tagged.body, &content_type, gzip_out).await?;
            self.metrics.forwarded(tagged.events);
        }
        Ok(text(StatusCode::OK, ""))
    }

    /// Counts and logs a rejection, and turns it into the answer.
    fn reject(&self, rejection: Rejection) -> Response<Full<Bytes>> {
        self.metrics.rejected(rejection.reason);
        let reason = rejection.reason.as_str();
        let status = rejection.status.as_u16();
        let error = rejection.message.as_str();
        match rejection.reason {
            // Push-back working as meant, and requests no sender of
            // batches makes: counted, but not worth a line each.
            Reason::Busy | Reason::NotFound | Reason::Method => {
                debug!(reason, status, error, "Refused a request.")
            }
            Reason::DownstreamFailed | Reason::Unavailable => {
                warn!(reason, status, error, "A batch was not delivered; the sender may retry.")
            }
            _ => warn!(reason, status, error, "Refused a batch."),
        }
        let mut response = text(rejection.status, format!("{}\n", rejection.message));
        if let Some(seconds) = rejection.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    fn not_allowed(&self, allow: &'static str) -> Response<Full<Bytes>> {
        let mut response = self.reject(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Reason::Method,
            format!("This path takes {allow} only."),
        ));
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        response
    }
}

/// Reads a whole body, no larger than `limit`, in bounded time; `announced`
/// is its Content-Length, or 0. A body that turns out too large comes back
/// with the rejection, to be [discarded](discard).
async fn read_body(
    mut body: Incoming,
    limit: usize,
    announced: u64,
) -> Result<Bytes, (Rejection, Option<Incoming>)> {
    let read = async {
        let mut data = Vec::with_capacity(announced.min(limit as u64) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let message = format!("The body could not be read: {e}.");
                Rejection::new(StatusCode::BAD_REQUEST, Reason::ReadError, message)
            })?;
            let Some(chunk) = frame.data_ref() else { continue };
            if data.len() + chunk.len() > limit {
                return Ok(None);
            }
            data.extend_from_slice(chunk);
        }
        Ok(Some(data))
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(Some(data))) => Ok(data.into()),
        Ok(Ok(None)) => Err((too_large(limit), Some(body))),
        Ok(Err(rejection)) => Err((rejection, None)),
        Err(_) => Err((
            Rejection::new(
                StatusCode::REQUEST_TIMEOUT,
                Reason::ReadTimeout,
                format!("The body did not arrive within {} s.", BODY_TIMEOUT.as_secs()),
            ),
            None,
        )),
    }
}

/// Reads and drops the rest of a refused request's body, within
/// [`DISCARD_LIMIT`] and [`DISCARD_TIMEOUT`], before the answer goes out.
///
/// Senders such as Fluent Bit write a whole body before they read the
/// answer. Were the answer sent and the connection closed with the body
/// still arriving, the kernel would reset the connection, and the sender
/// would see a broken pipe instead of the 413, 415 or 429: a failure it
/// retries, so that a batch too large would be sent again and again rather
/// than refused once, and a busy answer would lose its Retry-After. A
/// sender that asked `Expect: 100-continue` sends no body unless told to,
/// so there is nothing to read; nor is a body announced past the limit.
async fn discard(mut body: Incoming, headers: &HeaderMap) {
    let expects = headers.get(EXPECT).is_some_and(|v| v.as_bytes().starts_with(b"100"));
    if expects || announced_length(headers).is_some_and(|n| n > DISCARD_LIMIT) {
        return;
    }
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DISCARD_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, drain).await;
}

/// The Content-Length, if the request gave one.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Reason::TooLarge,
        format!(
            "The body is larger than {limit} bytes, the limit set by --max-body-bytes; send \
             smaller batches."
        ),
    )
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
