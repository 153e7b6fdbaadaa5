//! Handing a tagged batch to the next hop, and what the sender is told.
//!
//! The sender's 2xx is the promise that its batch is safe, so it is given
//! only once the downstream has answered 2xx. Failures that may pass (an
//! answer of 408, 429 or 5xx, no connection, no answer in time) are retried
//! here a few times with a growing pause, and if they persist the sender is
//! told to retry (503, or 429 when the downstream said 429): Vector and
//! Fluent Bit keep the batch and send it again, so nothing is lost, though
//! a batch the downstream took but answered too late arrives twice. Other
//! answers mean the batch itself was refused; the sender gets the same
//! status, which both shippers take as final, as they would had they sent
//! the batch to the downstream themselves.

use std::error::Error as _;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use tracing::debug;

use super::metrics::{ForwardError, Metrics, Reason};
use super::Rejection;

/// The pause before the first retry; each further one doubles it, up to
/// [`MAX_BACKOFF`]. A downstream that restarts or sheds load recovers in
/// tenths of a second to seconds; retrying sooner only adds load.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The Retry-After, in seconds, given to the sender when the downstream
/// named none.
const DEFAULT_RETRY_AFTER: u64 = 5;

/// How much of a downstream's answer is read: enough for an error message
/// to log, not enough for a hostile answer to cost memory.
const ANSWER_LIMIT: usize = 64 << 10;

/// The downstream and how to reach it.
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    target: Uri,
    timeout: Duration,
    retries: u32,
    metrics: Arc<Metrics>,
}

/// How one attempt went.
enum Attempt {
    Accepted,
    /// Worth another try.
    Failed {
        status: Option<StatusCode>,
        retry_after: Option<u64>,
        error: String,
    },
    /// The downstream refused the batch; another try would be refused too.
    Refused {
        status: StatusCode,
        detail: String,
    },
}

impl Forwarder {
    /// `target` must be an `http://` URL. Each attempt may take up to
    /// `timeout`; a failed one is tried again up to `retries` times.
    pub fn new(target: Uri, timeout: Duration, retries: u32, metrics: Arc<Metrics>) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Forwarder { client, target, timeout, retries, metrics }
    }

    pub fn target(&self) -> &Uri {
        &self.target
    }

    /// Delivers `body` with the sender's content type and, if `gzip`, its
    /// encoding. `Err` is the answer for the sender.
    pub async fn send(
        &self,
        body: Bytes,
        content_type: &HeaderValue,
        gzip: bool,
    ) -> Result<(), Rejection> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, retry_after, error) =
                match self.attempt(body.clone(), content_type, gzip).await {
                    Attempt::Accepted => return Ok(()),
                    Attempt::Refused { status, detail } => return Err(refused(status, &detail)),
                    Attempt::Failed { status, retry_after, error } => (status, retry_after, error),
                };
            if attempt > self.retries {
                let status = match status {
                    Some(StatusCode::TOO_MANY_REQUESTS) => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                let message = format!(
                    "The downstream did not accept the batch in {attempt} attempt(s); the last \
                     one failed: {error}. Retry later."
                );
                return Err(Rejection::new(status, Reason::DownstreamFailed, message)
                    .retry_after(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)));
            }
            debug!(attempt, error, "An attempt to forward a batch failed; retrying.");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            self.metrics.retried();
        }
    }

    async fn attempt(&self, body: Bytes, content_type: &HeaderValue, gzip: bool) -> Attempt {
        let mut request = Request::post(self.target.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("tripline/", env!("CARGO_PKG_VERSION")));
        if gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Refused {
                    status: StatusCode::BAD_GATEWAY,
                    detail: format!("the request could not be built: {e}"),
                }
            }
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&secs| secs <= 3600);
            // Read the answer so the connection can be reused, and keep a
            // little of it to explain a refusal.
            let answer = Limited::new(response.into_body(), ANSWER_LIMIT).collect().await;
            let detail = answer.map(|a| a.to_bytes()).unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, detail))
        };
        let (status, retry_after, detail) = match tokio::time::timeout(self.timeout, exchange).await
        {
            Err(_) => {
                self.metrics.forward_failed(ForwardError::Timeout);
                let error = format!("no answer within {} ms", self.timeout.as_millis());
                return Attempt::Failed { status: None, retry_after: None, error };
            }
            Ok(Err(e)) => {
                self.metrics.forward_failed(ForwardError::Connection);
                return Attempt::Failed { status: None, retry_after: None, error: chain(&e) };
            }
            Ok(Ok(answer)) => answer,
        };
        if status.is_success() {
            return Attempt::Accepted;
        }
        self.metrics.forward_failed(ForwardError::Status);
        let detail = short(&detail);
        let retriable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if retriable {
            let error = format!("the downstream answered {status}{detail}");
            Attempt::Failed { status: Some(status), retry_after, error }
        } else {
            Attempt::Refused { status, detail }
        }
    }
}

/// The answer for a batch the downstream refused. A 4xx is passed on, so
/// that the sender treats it as it would from the downstream itself;
/// anything else (a redirect, say) becomes 502, which senders retry.
fn refused(status: StatusCode, detail: &str) -> Rejection {
    let answer = if status.is_client_error() { status } else { StatusCode::BAD_GATEWAY };
    Rejection::new(
        answer,
        Reason::DownstreamRefused,
        format!("The downstream refused the batch with {status}{detail}."),
    )
}

/// The first line of a downstream's answer, shortened, as `: text`, or
/// nothing if it said nothing.
fn short(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.is_empty() {
        return String::new();
    }
    let mut cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// An error and its causes on one line: the client's own message is only
/// "client error (Connect)"; the cause says what happened.
fn chain(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
