//! `tripline serve` as Vector and Fluent Bit use it. Each test starts the
//! real binary on loopback, posts batches over a real HTTP client in the
//! exact shapes those shippers send, and, with `--forward`, hands them to
//! a real downstream server run by the test, which the test can make
//! refuse, stall or fall silent.
//!
//! What a tagged event must look like is not restated here: every
//! expectation is what `tripline run` writes for the same events, so these
//! tests pin `serve` to `run` byte for byte.
//!
//! No test asserts how fast anything happens. Every wait has a deadline
//! far beyond what a slow 2-core machine needs, so that a deadline only
//! trips when something is really stuck, and every loop is bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::header::{ALLOW, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::support::*;

/// How long `serve` may take to start: the first start of a test run may
/// compile the component before the cache has it.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long any one answer, exit or awaited condition may take.
const WAIT: Duration = Duration::from_secs(30);
/// How long the test downstream holds a request it was told to hold or to
/// leave unanswered, at most: long past any deadline `serve` is given.
const HOLD_LIMIT: Duration = Duration::from_secs(90);

const FIXTURE: &str = "tests/fixtures/t1059_009/events.ndjson";
const RULE: &str = "cloud_api_abuse_t1059_009";
/// The `date` Fluent Bit's `json` and `json_lines` formats put first in
/// every record by default (`json_date_key date`, `json_date_format
/// double`).
const FLUENT_BIT_DATE: &str = "1715677267.123456";

// ---------------------------------------------------------------------
// The server under test.

/// A running `tripline serve`, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// Starts `tripline serve ARGS` on a free loopback port and waits for
    /// its "Listening for batches." line, which names the port.
    fn start(args: &[&str]) -> Serve {
        let mut child = tripline()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("TRIPLINE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start tripline serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel();
        let sink = Arc::clone(&log);
        // Reads stderr to its end, so that the child never blocks on a
        // full pipe, and reports the address once.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Listening for batches.") {
                    let _ = found.send(listening_address(&line));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match address.recv_timeout(START_TIMEOUT) {
            Ok(Some(addr)) => Serve { child, addr, log },
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Let the reader thread take in what the child wrote last.
                std::thread::sleep(Duration::from_millis(200));
                panic!("tripline serve {args:?} did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, text: &str) {
        let found = wait_until(|| self.log().contains(text));
        assert!(found, "serve never logged {text:?}; its log:\n{}", self.log());
    }

    fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, and fails the test if it does not.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serve did not exit within {WAIT:?}; its log:\n{}", self.log());
    }

    fn metrics(&self, rt: &Runtime, client: &HttpClient) -> Metrics {
        let reply = rt.block_on(get(client, &self.url("/metrics"))).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header(CONTENT_TYPE), Some("text/plain; version=0.0.4; charset=utf-8"));
        Metrics::parse(&reply.text())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `address=` field of the log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let start = line.find("address=")? + "address=".len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Polls `done` until it holds or [`WAIT`] has passed; says which.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

// ---------------------------------------------------------------------
// The client side: what the shippers send.

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client that keeps connections open between requests, as Vector and
/// Fluent Bit do.
fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: hyper::header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends `request` and reads the whole answer, or says why there is none.
async fn exchange(client: &HttpClient, request: Request<Full<Bytes>>) -> Result<Reply, String> {
    let answer = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    };
    tokio::time::timeout(WAIT, answer).await.map_err(|_| format!("no answer within {WAIT:?}"))?
}

async fn get(client: &HttpClient, url: &str) -> Result<Reply, String> {
    exchange(client, Request::get(url).body(Full::default()).unwrap()).await
}

/// The shapes in which Vector's `http` sink and Fluent Bit's `http` output
/// send a batch, as their code builds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Vector, `encoding.codec: json`, `framing.method: newline_delimited`:
    /// events joined by `\n`, with no newline after the last.
    VectorNdjson,
    /// Vector, `encoding.codec: json` with its default framing for this
    /// sink: one JSON array, no spaces.
    VectorJson,
    /// Fluent Bit, `format json_lines`: each record, its `date` first,
    /// followed by `\n`.
    FluentBitJsonLines,
    /// Fluent Bit, `format json`: one array of records, each with its
    /// `date` first.
    FluentBitJson,
    /// Fluent Bit, `format json_stream`: records one after another with
    /// nothing between them, labelled `application/json`.
    FluentBitJsonStream,
}

const SHAPES: [Shape; 5] = [
    Shape::VectorNdjson,
    Shape::VectorJson,
    Shape::FluentBitJsonLines,
    Shape::FluentBitJson,
    Shape::FluentBitJsonStream,
];

impl Shape {
    fn content_type(self) -> &'static str {
        match self {
            Shape::VectorNdjson | Shape::FluentBitJsonLines => "application/x-ndjson",
            Shape::VectorJson | Shape::FluentBitJson | Shape::FluentBitJsonStream => {
                "application/json"
            }
        }
    }

    /// The body this shipper sends for `events`, one JSON object each.
    /// The transformation touches only the start of each object and the
    /// bytes between objects, and a tag only the end of an object, so
    /// `encode` of the tagged events is the body `serve` must produce.
    fn encode(self, events: &[Vec<u8>]) -> Vec<u8> {
        let records: Vec<Vec<u8>> = match self {
            Shape::VectorNdjson | Shape::VectorJson => events.to_vec(),
            _ => events.iter().map(|e| with_date(e)).collect(),
        };
        match self {
            Shape::VectorNdjson => records.join(&b'\n'),
            Shape::FluentBitJsonLines => ndjson(&records),
            Shape::VectorJson | Shape::FluentBitJson => {
                [&b"["[..], &records.join(&b','), b"]"].concat()
            }
            Shape::FluentBitJsonStream => records.concat(),
        }
    }
}

/// Each of `lines` followed by `\n`, as a file holds them.
fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.iter().flat_map(|l| [&l[..], &b"\n"[..]]).flatten().copied().collect()
}

/// A record as Fluent Bit's JSON formats write it: `date` first.
fn with_date(event: &[u8]) -> Vec<u8> {
    assert!(event.starts_with(b"{") && event.len() > 2, "not an object with members");
    [format!("{{\"date\":{FLUENT_BIT_DATE},").as_bytes(), &event[1..]].concat()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(body).read_to_end(&mut out).expect("the body is not gzip");
    out
}

/// A POST of `body` as `content_type`, gzip-compressed if `gzip`.
fn batch(url: &str, content_type: &str, body: &[u8], gzip_it: bool) -> Request<Full<Bytes>> {
    let mut request = Request::post(url).header(CONTENT_TYPE, content_type);
    let body = if gzip_it {
        request = request.header(CONTENT_ENCODING, "gzip");
        gzip(body)
    } else {
        body.to_vec()
    };
    request.body(Full::new(Bytes::from(body))).unwrap()
}

/// Sends a batch as Vector and Fluent Bit do when told to retry: again,
/// on 408, 429 and 5xx, up to `attempts` times. Returns the last answer
/// and every status seen.
async fn send_with_retries(
    client: &HttpClient,
    attempts: usize,
    request: impl Fn() -> Request<Full<Bytes>>,
) -> (Reply, Vec<u16>) {
    let mut statuses = Vec::new();
    for _ in 0..attempts {
        let reply = exchange(client, request()).await.unwrap();
        statuses.push(reply.status.as_u16());
        let retry = reply.status.is_server_error()
            || reply.status == StatusCode::TOO_MANY_REQUESTS
            || reply.status == StatusCode::REQUEST_TIMEOUT;
        if !retry || statuses.len() == attempts {
            return (reply, statuses);
        }
    }
    unreachable!("at least one attempt is made");
}

// ---------------------------------------------------------------------
// The downstream: Vector's `http_server` source, Fluent Bit's `http`
// input, or any endpoint, as far as `serve` can tell.

/// How the downstream answers its `n`th request, from 0.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16, Option<u64>),
    /// Answers 200 once the test releases it.
    Hold,
    /// Never answers (until [`HOLD_LIMIT`]).
    Silent,
}

/// One request the downstream received.
#[derive(Clone, Debug)]
struct Received {
    content_type: Option<String>,
    content_encoding: Option<String>,
    /// Decompressed, if it came gzip-compressed.
    body: Vec<u8>,
    /// The status it was answered with, once it was.
    answered: Option<u16>,
}

struct DownstreamState {
    answer: Box<dyn Fn(usize) -> Answer + Send + Sync>,
    received: Mutex<Vec<Received>>,
    release: watch::Sender<bool>,
}

struct Downstream {
    addr: SocketAddr,
    state: Arc<DownstreamState>,
}

impl Downstream {
    fn start(rt: &Runtime, answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Downstream {
        let state = Arc::new(DownstreamState {
            answer: Box::new(answer),
            received: Mutex::new(Vec::new()),
            release: watch::channel(false).0,
        });
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::clone(&state);
        // Serves until the test's runtime is dropped.
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |r| downstream(Arc::clone(&state), r));
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Downstream { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests it answered with 2xx: what it accepted.
    fn accepted(&self) -> Vec<Received> {
        let received = self.received();
        received
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    fn wait_for_requests(&self, n: usize) {
        let arrived = wait_until(|| self.received().len() >= n);
        assert!(arrived, "the downstream got {} requests, not {n}", self.received().len());
    }

    fn release(&self) {
        self.state.release.send_replace(true);
    }
}

async fn downstream(
    state: Arc<DownstreamState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header =
        |name| request.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_string());
    let content_type = header(CONTENT_TYPE);
    let content_encoding = header(CONTENT_ENCODING);
    let raw = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body =
        if content_encoding.as_deref() == Some("gzip") { gunzip(&raw) } else { raw.to_vec() };
    let n = {
        let mut received = state.received.lock().unwrap();
        received.push(Received { content_type, content_encoding, body, answered: None });
        received.len() - 1
    };
    let (status, retry_after) = match (state.answer)(n) {
        Answer::Status(status, retry_after) => (status, retry_after),
        Answer::Hold => {
            let mut released = state.release.subscribe();
            let _ = tokio::time::timeout(HOLD_LIMIT, released.wait_for(|&r| r)).await;
            (200, None)
        }
        Answer::Silent => {
            tokio::time::sleep(HOLD_LIMIT).await;
            (200, None)
        }
    };
    state.received.lock().unwrap()[n].answered = Some(status);
    let mut response = Response::new(Full::new(Bytes::from_static(b"downstream says hello\n")));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

// ---------------------------------------------------------------------
// Events and what `tripline run` makes of them.

/// The fixture's lines, without their `\n`.
fn fixture() -> Vec<Vec<u8>> {
    let text = std::fs::read(root().join(FIXTURE)).unwrap();
    lines(&text).into_iter().map(<[u8]>::to_vec).collect()
}

/// The fixture's lines that are JSON objects: what a shipper can send.
fn fixture_objects() -> Vec<Vec<u8>> {
    fixture()
        .into_iter()
        .filter(|l| matches!(serde_json::from_slice(l), Ok(serde_json::Value::Object(_))))
        .collect()
}

/// What `tripline run` writes for `events`, one line each, and its summary.
fn run_on(events: &[Vec<u8>]) -> (Vec<Vec<u8>>, String) {
    let out = run_ok(&[], &ndjson(events));
    let tagged: Vec<Vec<u8>> = lines(&out.stdout).into_iter().map(<[u8]>::to_vec).collect();
    assert_eq!(tagged.len(), events.len());
    (tagged, stderr(&out))
}

/// Events, and what `tripline run` writes for each.
type Tagged = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// [`run_on`] for [`fixture_objects`], computed once.
fn tagged_objects() -> &'static Tagged {
    static TAGGED: OnceLock<Tagged> = OnceLock::new();
    TAGGED.get_or_init(|| {
        let events = fixture_objects();
        let (tagged, _) = run_on(&events);
        (events, tagged)
    })
}

/// A CloudTrail record with an `eventID`; `CreateUser` matches the
/// default rule, `ListUsers` does not.
fn cloudtrail(id: &str, name: &str) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","#,
            r#""arn":"arn:aws:iam::111122223333:user/alice"}},"#,
            r#""eventTime":"2024-05-01T10:00:00Z","eventSource":"iam.amazonaws.com","#,
            r#""eventName":"{name}","sourceIPAddress":"198.51.100.7","eventID":"{id}"}}"#,
        ),
        name = name,
        id = id,
    )
    .into_bytes()
}

/// The `eventID` of each NDJSON line of `body`, and whether it was tagged.
fn event_ids(body: &[u8]) -> Vec<(String, bool)> {
    lines(body)
        .into_iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_slice(line).unwrap();
            let id = value["eventID"].as_str().unwrap().to_string();
            (id, !tagged_rules(line, "detections").is_empty())
        })
        .collect()
}

/// The error counts per kind in a `tripline run` summary, by the names
/// the metrics give them.
fn run_errors(summary: &str) -> BTreeMap<&'static str, f64> {
    let names = [
        ("malformed", "malformed"),
        ("not an object", "not_object"),
        ("empty", "empty"),
        ("too deep", "too_deep"),
        ("too large", "too_large"),
        ("lost to traps", "trapped"),
    ];
    let inside = summary.split("errored (").nth(1).expect("a run summary").split(')').next();
    let inside = inside.unwrap();
    names
        .iter()
        .map(|(text, kind)| {
            let item = inside.split(", ").find(|i| i.starts_with(text)).unwrap();
            let n: f64 = item[text.len()..].trim().parse().unwrap();
            (*kind, n)
        })
        .collect()
}

// ---------------------------------------------------------------------
// Metrics.

/// A scrape of `/metrics`, checked to be well-formed Prometheus text.
struct Metrics {
    /// Each sample by its name and labels as written (`name{k="v"}`).
    samples: HashMap<String, f64>,
    /// The samples in the order written.
    order: Vec<String>,
    /// The name of every metric declared with `# TYPE`.
    families: BTreeSet<String>,
    text: String,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut types: HashMap<&str, &str> = HashMap::new();
        let mut samples = HashMap::new();
        let mut order = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(types.insert(name, kind).is_none(), "{name} declared twice");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.is_empty() && !line.starts_with('#'), "stray line {line:?}");
            let (key, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = key.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
                let labels = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
                let labels = labels.unwrap_or_else(|| panic!("bad labels in {line:?}"));
                assert!(labels.ends_with('"'), "{line}");
                for pair in labels.split("\",") {
                    let (label, _) = pair.split_once("=\"").unwrap();
                    let name_ok = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    assert!(name_ok, "{line}");
                }
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| types.get(f) == Some(&"histogram"))
                .unwrap_or(name);
            assert!(types.contains_key(family), "{name} has no # TYPE before it");
            assert!(samples.insert(key.to_string(), value).is_none(), "{key} written twice");
            order.push(key.to_string());
        }
        let families = types.keys().map(|name| name.to_string()).collect();
        Metrics { samples, order, families, text: text.to_string() }
    }

    fn get(&self, key: &str) -> f64 {
        *self.samples.get(key).unwrap_or_else(|| panic!("no {key} in\n{}", self.text))
    }

    /// Checks a histogram's buckets are cumulative and returns its count.
    fn histogram(&self, name: &str) -> f64 {
        let prefix = format!("{name}_bucket{{le=\"");
        let buckets: Vec<(&str, f64)> = self
            .order
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(|le| (le, self.samples[k])))
            .collect();
        assert!(buckets.len() > 2, "{name} has no buckets");
        for pair in buckets.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "{name} buckets are not cumulative");
            let bound = pair[0].0.trim_end_matches("\"}").parse::<f64>().unwrap();
            let next = pair[1].0.trim_end_matches("\"}");
            assert!(next == "+Inf" || next.parse::<f64>().unwrap() > bound, "{name} order");
        }
        let (last, total) = *buckets.last().unwrap();
        assert_eq!(last, "+Inf\"}");
        assert_eq!(self.get(&format!("{name}_count")), total);
        total
    }
}

// ---------------------------------------------------------------------
// Request shapes.

#[test]
fn ndjson_batches_are_answered_tagged_exactly_as_run_tags_them() {
    let rt = runtime();
    let client = client();
    let serve = Serve::start(&["--workers", "1"]);
    let events = fixture();
    let (tagged, _) = run_on(&events);

    // The whole fixture, bad lines and all, as a file would be sent.
    let body = ndjson(&events);
    let expected = ndjson(&tagged);
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/x-ndjson"));
    assert_eq!(reply.header(CONTENT_ENCODING), None);
    assert_eq!(reply.text(), String::from_utf8(expected).unwrap());

    // The bad lines went back unchanged, and were counted by kind.
    for bad in [&b"not json"[..], b"[1,2]", b"\"x\"", b"{\"a\":1,}"] {
        assert!(lines(&reply.body).contains(&bad), "{:?} is missing", String::from_utf8_lossy(bad));
    }
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_events_errored_total{kind=\"malformed\"}"), 3.0);
    assert_eq!(metrics.get("tripline_events_errored_total{kind=\"not_object\"}"), 2.0);
    assert_eq!(metrics.get("tripline_events_errored_total{kind=\"empty\"}"), 1.0);
}

#[test]
fn every_shipper_shape_comes_back_in_its_own_shape_tagged_as_run_tags_it() {
    let rt = runtime();
    let client = client();
    let serve = Serve::start(&["--workers", "1"]);
    let (events, tagged) = tagged_objects();
    assert!(tagged.iter().any(|t| !tagged_rules(t, "detections").is_empty()), "no event matches");
    for shape in SHAPES {
        let body = shape.encode(events);
        let request = batch(&serve.url("/"), shape.content_type(), &body, false);
        let reply = rt.block_on(exchange(&client, request)).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{shape:?}: {}", reply.text());
        assert_eq!(reply.header(CONTENT_TYPE), Some(shape.content_type()), "{shape:?}");
        assert!(reply.body == shape.encode(tagged), "{shape:?} differs:\n{}", reply.text());
    }
}

#[test]
fn json_arrays_keep_non_objects_and_their_spacing() {
    let rt = runtime();
    let client = client();
    let serve = Serve::start(&["--workers", "1"]);
    // Every fixture line that is JSON, objects or not, in an array laid
    // out by hand rather than by a shipper: the bytes between elements
    // must survive as they are.
    let values: Vec<Vec<u8>> = fixture()
        .into_iter()
        .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
        .collect();
    let (tagged, summary) = run_on(&values);
    let body = [&b" [\n  "[..], &values.join(&b",\n  "[..]), b"\n]\n"].concat();
    let expected = [&b" [\n  "[..], &tagged.join(&b",\n  "[..]), b"\n]\n"].concat();
    let reply =
        rt.block_on(exchange(&client, batch(&serve.url("/"), "application/json", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), String::from_utf8(expected).unwrap());
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(run_errors(&summary)["not_object"], 2.0);
    assert_eq!(metrics.get("tripline_events_errored_total{kind=\"not_object\"}"), 2.0);
}

#[test]
fn gzip_bodies_in_and_out() {
    let rt = runtime();
    let client = client();
    let serve = Serve::start(&["--workers", "1"]);
    let (events, tagged) = tagged_objects();
    for shape in [Shape::VectorNdjson, Shape::FluentBitJson] {
        let body = shape.encode(events);
        let expected = shape.encode(tagged);

        // A sender that takes gzip gets gzip back.
        let mut request = batch(&serve.url("/"), shape.content_type(), &body, true);
        request.headers_mut().insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
        let reply = rt.block_on(exchange(&client, request)).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{shape:?}: {}", reply.text());
        assert_eq!(reply.header(CONTENT_ENCODING), Some("gzip"), "{shape:?}");
        assert!(gunzip(&reply.body) == expected, "{shape:?}: the gzip answer differs");

        // One that does not, gets it plain.
        let request = batch(&serve.url("/"), shape.content_type(), &body, true);
        let reply = rt.block_on(exchange(&client, request)).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{shape:?}: {}", reply.text());
        assert_eq!(reply.header(CONTENT_ENCODING), None, "{shape:?}");
        assert!(reply.body == expected, "{shape:?}: the plain answer differs");
    }
}

// ---------------------------------------------------------------------
// Forwarding.

#[test]
fn forwarded_batches_keep_shape_and_encoding_and_carry_runs_tags() {
    let rt = runtime();
    let client = client();
    // Fluent Bit's http input answers 201 by default; any 2xx will do.
    let downstream = Downstream::start(&rt, |_| Answer::Status(201, None));
    let serve = Serve::start(&["--workers", "2", "--forward", &downstream.url()]);
    let (events, tagged) = tagged_objects();
    let mut sent = 0;
    for shape in SHAPES {
        for gzip_it in [false, true] {
            let body = shape.encode(events);
            let request = batch(&serve.url("/"), shape.content_type(), &body, gzip_it);
            let reply = rt.block_on(exchange(&client, request)).unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{shape:?}: {}", reply.text());
            // The answer carries nothing: the batch went on.
            assert!(reply.body.is_empty(), "{shape:?}");
            sent += 1;
            let received = downstream.received();
            assert_eq!(received.len(), sent, "one request per batch, no retry");
            let got = received.last().unwrap();
            assert_eq!(got.content_type.as_deref(), Some(shape.content_type()), "{shape:?}");
            let encoding = gzip_it.then_some("gzip");
            assert_eq!(got.content_encoding.as_deref(), encoding, "{shape:?} gzip {gzip_it}");
            assert!(got.body == shape.encode(tagged), "{shape:?} gzip {gzip_it} differs");
        }
    }
    let metrics = serve.metrics(&rt, &client);
    let n = (events.len() * sent) as f64;
    assert_eq!(metrics.get("tripline_events_received_total"), n);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), n);
    assert_eq!(metrics.get("tripline_forward_retries_total"), 0.0);
}

#[test]
fn a_custom_path_takes_batches_and_an_empty_one_is_accepted_without_forwarding() {
    let rt = runtime();
    let client = client();
    let downstream = Downstream::start(&rt, |_| Answer::Status(200, None));
    let serve =
        Serve::start(&["--workers", "1", "--path", "/ingest", "--forward", &downstream.url()]);
    let url = serve.url("/ingest");
    for (content_type, body) in [("application/x-ndjson", &b""[..]), ("application/json", b"[]")] {
        let reply = rt.block_on(exchange(&client, batch(&url, content_type, body, false))).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{content_type}: {}", reply.text());
    }
    assert!(downstream.received().is_empty(), "an empty batch has nothing to hand on");
    let body = cloudtrail("evt-1", "CreateUser");
    let reply = rt.block_on(exchange(&client, batch(&url, "application/x-ndjson", &body, false)));
    assert_eq!(reply.unwrap().status, StatusCode::OK);
    assert_eq!(event_ids(&downstream.accepted()[0].body), [("evt-1".to_string(), true)]);
    // `/` is now just another path.
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("POST batches to /ingest"), "{}", reply.text());
}

#[test]
fn a_downstream_that_refuses_at_first_loses_nothing_and_duplicates_nothing() {
    let rt = runtime();
    let client = client();
    // Refuses five attempts. With two retries of its own, serve gives up
    // on the first request after three, tells the sender to retry, and
    // gets through on the third attempt of the second request.
    let downstream = Downstream::start(&rt, |n| {
        if n < 5 {
            Answer::Status(503, None)
        } else {
            Answer::Status(200, None)
        }
    });
    let serve =
        Serve::start(&["--workers", "1", "--forward", &downstream.url(), "--forward-retries", "2"]);
    let events: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            cloudtrail(&format!("evt-{i:02}"), if i % 5 == 0 { "CreateUser" } else { "ListUsers" })
        })
        .collect();
    let body = Shape::VectorNdjson.encode(&events);
    let url = serve.url("/");
    let (reply, statuses) = rt.block_on(send_with_retries(&client, 10, || {
        batch(&url, "application/x-ndjson", &body, false)
    }));
    assert_eq!(statuses, [503, 200], "{}", reply.text());

    let received = downstream.received();
    assert_eq!(received.len(), 6, "3 attempts per request");
    // Every attempt carried the same tagged batch.
    assert!(received.iter().all(|r| r.body == received[0].body));
    let accepted = downstream.accepted();
    assert_eq!(accepted.len(), 1);
    let ids = event_ids(&accepted[0].body);
    let expected: Vec<(String, bool)> =
        (0..50).map(|i| (format!("evt-{i:02}"), i % 5 == 0)).collect();
    assert_eq!(ids, expected, "each event once, in order, tagged as run would");

    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_forward_retries_total"), 4.0);
    assert_eq!(metrics.get("tripline_forward_errors_total{kind=\"status\"}"), 5.0);
    assert_eq!(metrics.get("tripline_requests_rejected_total{reason=\"downstream_failed\"}"), 1.0);
    // Received counts what reached the component, the sender's retry too;
    // forwarded counts what the downstream took.
    assert_eq!(metrics.get("tripline_events_received_total"), 100.0);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), 50.0);
    assert_eq!(metrics.get("tripline_batches_total"), 2.0);
    assert_eq!(metrics.get(&format!("tripline_events_tagged_total{{rule=\"{RULE}\"}}")), 20.0);
}

#[test]
fn the_first_refusal_tells_the_sender_to_retry_later() {
    let rt = runtime();
    let client = client();
    let downstream = Downstream::start(&rt, |_| Answer::Status(503, None));
    let serve =
        Serve::start(&["--workers", "1", "--forward", &downstream.url(), "--forward-retries", "0"]);
    let body = cloudtrail("evt-1", "CreateUser");
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // The downstream named no delay, so serve names its own.
    assert_eq!(reply.header(RETRY_AFTER), Some("5"));
    let text = reply.text();
    assert!(text.contains("did not accept the batch in 1 attempt(s)"), "{text}");
    assert!(text.contains("503 Service Unavailable: downstream says hello"), "{text}");
}

#[test]
fn downstream_429_and_4xx_are_passed_on_as_shippers_expect() {
    let rt = runtime();
    let client = client();

    // 429 with a Retry-After: retried here, then passed on with the
    // downstream's own delay, which Vector and Fluent Bit retry.
    let busy = Downstream::start(&rt, |_| Answer::Status(429, Some(7)));
    let serve =
        Serve::start(&["--workers", "1", "--forward", &busy.url(), "--forward-retries", "1"]);
    let body = cloudtrail("evt-1", "CreateUser");
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
    assert_eq!(reply.header(RETRY_AFTER), Some("7"));
    assert_eq!(busy.received().len(), 2);
    drop(serve);

    // 400: the batch itself is refused. Retrying cannot help, so serve
    // does not, and the sender gets the same 400, which both shippers
    // treat as final, as they would from the downstream itself.
    let strict = Downstream::start(&rt, |_| Answer::Status(400, None));
    let serve = Serve::start(&["--workers", "1", "--forward", &strict.url()]);
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("The downstream refused the batch with 400 Bad Request"), "{text}");
    assert_eq!(strict.received().len(), 1, "a refusal is not retried");
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_requests_rejected_total{reason=\"downstream_refused\"}"), 1.0);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), 0.0);
}

#[test]
fn a_downstream_that_never_answers_is_reported_in_bounded_time() {
    let rt = runtime();
    let client = client();
    let silent = Downstream::start(&rt, |_| Answer::Silent);
    let serve = Serve::start(&[
        "--workers",
        "1",
        "--forward",
        &silent.url(),
        "--forward-timeout",
        "300ms",
        "--forward-retries",
        "1",
    ]);
    let body = cloudtrail("evt-1", "CreateUser");
    // `exchange` itself gives up after WAIT: the answer must come first.
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    assert!(reply.header(RETRY_AFTER).is_some());
    assert!(reply.text().contains("no answer within 300 ms"), "{}", reply.text());
    assert_eq!(silent.received().len(), 2);
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_forward_errors_total{kind=\"timeout\"}"), 2.0);
    assert_eq!(metrics.get("tripline_forward_retries_total"), 1.0);
    drop(serve);

    // Nothing listening at all: the same answer, counted as a connection
    // failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let serve = Serve::start(&["--workers", "1", "--forward", &url, "--forward-retries", "0"]);
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_forward_errors_total{kind=\"connection\"}"), 1.0);
}

#[test]
fn concurrent_senders_get_every_event_through_once_in_batch_order() {
    const SENDERS: usize = 8;
    const BATCHES: usize = 20;
    const EVENTS: usize = 16;
    let rt = runtime();
    let downstream = Downstream::start(&rt, |_| Answer::Status(200, None));
    // As many slots as senders, so that none is ever turned away and each
    // batch is sent exactly once.
    let serve = Serve::start(&[
        "--workers",
        "2",
        "--max-in-flight",
        &SENDERS.to_string(),
        "--forward",
        &downstream.url(),
    ]);
    let url = serve.url("/");
    let statuses = rt.block_on(async {
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let url = url.clone();
            senders.push(tokio::spawn(async move {
                // Each sender keeps its own connection, as each Vector
                // or Fluent Bit worker does.
                let client = client();
                let mut statuses = Vec::new();
                for b in 0..BATCHES {
                    let events: Vec<Vec<u8>> = (0..EVENTS)
                        .map(|e| {
                            let name = if e % 4 == 0 { "CreateUser" } else { "ListUsers" };
                            cloudtrail(&format!("s{s}-b{b:02}-e{e:02}"), name)
                        })
                        .collect();
                    let shape = if (s + b) % 2 == 0 {
                        Shape::VectorNdjson
                    } else {
                        Shape::FluentBitJsonLines
                    };
                    let request =
                        batch(&url, shape.content_type(), &shape.encode(&events), b % 3 == 0);
                    let reply = exchange(&client, request).await.unwrap();
                    statuses.push(reply.status.as_u16());
                }
                statuses
            }));
        }
        let mut all = Vec::new();
        for sender in senders {
            all.extend(sender.await.unwrap());
        }
        all
    });
    assert_eq!(statuses, vec![200; SENDERS * BATCHES]);

    let accepted = downstream.accepted();
    assert_eq!(accepted.len(), SENDERS * BATCHES, "one request per batch");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for request in &accepted {
        let ids = event_ids(&request.body);
        assert_eq!(ids.len(), EVENTS);
        let batch_id = ids[0].0.rsplit_once("-e").unwrap().0.to_string();
        for (e, (id, tagged)) in ids.iter().enumerate() {
            assert_eq!(id, &format!("{batch_id}-e{e:02}"), "order within a batch");
            assert_eq!(*tagged, e % 4 == 0, "{id}");
        }
        *seen.entry(batch_id).or_default() += 1;
    }
    assert_eq!(seen.len(), SENDERS * BATCHES, "every batch arrived");
    assert!(seen.values().all(|&n| n == 1), "no batch arrived twice");

    let metrics = serve.metrics(&rt, &client());
    let events = (SENDERS * BATCHES * EVENTS) as f64;
    assert_eq!(metrics.get("tripline_events_received_total"), events);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), events);
    assert_eq!(metrics.get("tripline_requests_rejected_total{reason=\"busy\"}"), 0.0);
    assert_eq!(
        metrics.get(&format!("tripline_events_tagged_total{{rule=\"{RULE}\"}}")),
        events / 4.0
    );
}

#[test]
fn past_the_limit_in_flight_senders_get_429_with_retry_after() {
    let rt = runtime();
    let client = client();
    let slow = Downstream::start(&rt, |_| Answer::Hold);
    let serve = Serve::start(&["--workers", "1", "--max-in-flight", "1", "--forward", &slow.url()]);
    let url = serve.url("/");
    let first = cloudtrail("evt-1", "CreateUser");
    let held = {
        let (client, request) =
            (client.clone(), batch(&url, "application/x-ndjson", &first, false));
        rt.spawn(async move { exchange(&client, request).await })
    };
    // The first batch holds the only slot while the downstream sits on it.
    slow.wait_for_requests(1);
    let second = cloudtrail("evt-2", "ListUsers");
    let reply = rt.block_on(exchange(&client, batch(&url, "application/x-ndjson", &second, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header(RETRY_AFTER), Some("1"));
    assert!(reply.text().contains("limit of 1 batches"), "{}", reply.text());

    slow.release();
    let reply = rt.block_on(held).unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // With the slot free again, the refused batch goes through.
    let reply = rt.block_on(exchange(&client, batch(&url, "application/x-ndjson", &second, false)));
    assert_eq!(reply.unwrap().status, StatusCode::OK);
    let ids: Vec<String> =
        slow.accepted().iter().flat_map(|r| event_ids(&r.body)).map(|(id, _)| id).collect();
    assert_eq!(ids, ["evt-1", "evt-2"]);
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_requests_rejected_total{reason=\"busy\"}"), 1.0);
    assert_eq!(metrics.get("tripline_batches_in_flight"), 0.0);
}

// ---------------------------------------------------------------------
// Bad requests.

#[test]
fn bad_requests_get_a_4xx_that_names_the_problem() {
    let rt = runtime();
    let client = client();
    let serve = Serve::start(&["--workers", "1", "--max-body-bytes", "4096"]);
    let url = serve.url("/");
    let send = |request| {
        let reply = rt.block_on(exchange(&client, request)).unwrap();
        (reply.status.as_u16(), reply.text())
    };

    let (status, text) = send(batch(&url, "application/json", b"not json", false));
    assert_eq!(status, 400);
    assert_eq!(text, "The body is not JSON: expected a JSON value at byte 0.\n");
    let (status, text) = send(batch(&url, "application/json", b"[{\"a\":1},", false));
    assert_eq!(status, 400);
    assert_eq!(text, "The body is not JSON: expected a JSON value at byte 9.\n");
    let mut request = batch(&url, "application/x-ndjson", b"{\"a\":1}\n", false);
    request.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    let (status, text) = send(request);
    assert_eq!(status, 400);
    assert!(text.starts_with("The body is not valid gzip"), "{text}");

    let (status, text) = send(batch(&url, "application/x-ndjson", &[b'\n'; 5000], false));
    assert_eq!(status, 413);
    assert!(text.contains("larger than 4096 bytes, the limit set by --max-body-bytes"), "{text}");
    // A small body that inflates past the limit.
    let (status, text) = send(batch(&url, "application/x-ndjson", &[b'\n'; 5000], true));
    assert_eq!(status, 413);
    assert!(text.contains("decompresses to more than 4096 bytes"), "{text}");

    let (status, text) = send(batch(&url, "text/xml", b"<a/>", false));
    assert_eq!(status, 415);
    assert!(text.contains("Content-Type `text/xml` is not supported"), "{text}");
    let request = Request::post(&url).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let (status, text) = send(request);
    assert_eq!(status, 415);
    assert!(text.contains("no Content-Type"), "{text}");
    let mut request = batch(&url, "application/x-ndjson", b"{}", false);
    request.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
    let (status, text) = send(request);
    assert_eq!(status, 415);
    assert!(text.contains("Content-Encoding `br` is not supported"), "{text}");

    let reply = rt.block_on(get(&client, &url)).unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header(ALLOW), Some("POST"));
    let (status, text) =
        send(batch(&serve.url("/elsewhere"), "application/x-ndjson", b"{}", false));
    assert_eq!(status, 404);
    assert!(text.contains("POST batches to /"), "{text}");

    // A chunked body announces no length; it is cut off at the limit.
    let lines = b"{\"n\":1}\n".repeat(1000);
    assert_eq!(post_whole(serve.addr, "application/x-ndjson", &lines, true), Ok(413));

    let metrics = serve.metrics(&rt, &client);
    for (reason, n) in [
        ("bad_body", 3.0),
        ("too_large", 3.0),
        ("content_type", 2.0),
        ("content_encoding", 1.0),
        ("method", 1.0),
        ("not_found", 1.0),
        ("busy", 0.0),
    ] {
        let key = format!("tripline_requests_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metrics.get(&key), n, "{reason}");
    }
    assert_eq!(metrics.get("tripline_batches_total"), 0.0, "no bad request reached a worker");
}

/// Posts `body` over a new connection the way Fluent Bit's HTTP client
/// does: the whole request is written before a byte of the answer is read.
/// Returns the status, or what stopped the exchange.
fn post_whole(
    addr: SocketAddr,
    content_type: &str,
    body: &[u8],
    chunked: bool,
) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST / HTTP/1.1\r\nHost: tripline\r\nContent-Type: {content_type}\r\n{framing}\r\n\
         Connection: close\r\n\r\n"
    );
    let write = |stream: &mut TcpStream, bytes: &[u8]| {
        stream.write_all(bytes).map_err(|e| format!("writing the request failed: {e}"))
    };
    write(&mut stream, head.as_bytes())?;
    if chunked {
        for chunk in body.chunks(64 << 10) {
            write(&mut stream, format!("{:x}\r\n", chunk.len()).as_bytes())?;
            write(&mut stream, chunk)?;
            write(&mut stream, b"\r\n")?;
        }
        write(&mut stream, b"0\r\n\r\n")?;
    } else {
        write(&mut stream, body)?;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("reading the answer failed: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3));
    let status = status.ok_or_else(|| format!("no status line in {answer:?}"))?;
    Ok(status.parse().unwrap())
}

#[test]
fn refusals_reach_senders_that_write_the_whole_body_before_reading() {
    // Bodies far larger than the socket buffers: unless serve reads what
    // it refuses, such a sender gets a broken pipe instead of the answer.
    let line = b"{\"eventName\":\"ListUsers\",\"eventSource\":\"iam.amazonaws.com\"}\n";
    let big = line.repeat((8 << 20) / line.len() + 1);
    let rt = runtime();
    let slow = Downstream::start(&rt, |_| Answer::Hold);
    let serve = Serve::start(&[
        "--workers",
        "1",
        "--max-in-flight",
        "1",
        "--max-body-bytes",
        "1000000",
        "--forward",
        &slow.url(),
    ]);
    let held = std::thread::spawn({
        let addr = serve.addr;
        move || post_whole(addr, "application/x-ndjson", b"{\"a\":1}\n", false)
    });
    slow.wait_for_requests(1);
    assert_eq!(post_whole(serve.addr, "application/x-ndjson", &big, false), Ok(429));
    slow.release();
    assert_eq!(held.join().unwrap(), Ok(200));

    assert_eq!(post_whole(serve.addr, "application/x-ndjson", &big, false), Ok(413));
    assert_eq!(post_whole(serve.addr, "application/x-ndjson", &big, true), Ok(413));
    assert_eq!(post_whole(serve.addr, "text/xml", &big, false), Ok(415));
    // The server is none the worse for it.
    let small = cloudtrail("evt-1", "CreateUser");
    assert_eq!(post_whole(serve.addr, "application/x-ndjson", &small, false), Ok(200));
    assert_eq!(slow.accepted().len(), 2);
}

// ---------------------------------------------------------------------
// Metrics and health.

#[test]
fn metrics_are_prometheus_text_and_count_what_was_sent() {
    let rt = runtime();
    let client = client();
    let downstream = Downstream::start(&rt, |_| Answer::Status(200, None));
    let serve = Serve::start(&["--workers", "2", "--forward", &downstream.url()]);

    let before = serve.metrics(&rt, &client);
    assert_eq!(before.get("tripline_workers"), 2.0);
    assert_eq!(before.get("tripline_batches_total"), 0.0);
    assert_eq!(before.histogram("tripline_batch_duration_seconds"), 0.0);

    // The whole fixture as NDJSON, then its objects as a Fluent Bit array.
    let events = fixture();
    let (events_tagged, ndjson_summary) = run_on(&events);
    let (objects, tagged) = tagged_objects();
    let (_, objects_summary) = run_on(objects);
    let requests = [
        batch(&serve.url("/"), "application/x-ndjson", &ndjson(&events), false),
        batch(&serve.url("/"), "application/json", &Shape::FluentBitJson.encode(objects), true),
    ];
    for request in requests {
        let reply = rt.block_on(exchange(&client, request)).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }

    // The bad lines of the fixture went on unchanged with the rest.
    let received = downstream.received();
    assert_eq!(received.len(), 2);
    assert!(received[0].body == ndjson(&events_tagged), "the NDJSON batch differs");
    assert!(received[1].body == Shape::FluentBitJson.encode(tagged), "the array differs");

    let metrics = serve.metrics(&rt, &client);
    let n = (events.len() + objects.len()) as f64;
    assert_eq!(metrics.get("tripline_events_received_total"), n);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), n);
    assert_eq!(metrics.get("tripline_batches_total"), 2.0);
    let matches = tagged.iter().filter(|t| !tagged_rules(t, "detections").is_empty()).count();
    // The fixture's objects are all its matches, sent twice.
    let key = format!("tripline_events_tagged_total{{rule=\"{RULE}\"}}");
    assert_eq!(metrics.get(&key), 2.0 * matches as f64);
    let (ndjson_errors, object_errors) =
        (run_errors(&ndjson_summary), run_errors(&objects_summary));
    for (kind, n) in &ndjson_errors {
        let key = format!("tripline_events_errored_total{{kind=\"{kind}\"}}");
        assert_eq!(metrics.get(&key), n + object_errors[kind], "{kind}");
    }
    assert_eq!(metrics.histogram("tripline_batch_duration_seconds"), 2.0);
    assert_eq!(metrics.histogram("tripline_batch_tag_duration_seconds"), 2.0);
    assert!(metrics.get("tripline_batch_duration_seconds_sum") > 0.0);
    assert!(
        metrics.get("tripline_batch_duration_seconds_sum")
            >= metrics.get("tripline_batch_tag_duration_seconds_sum"),
        "a batch takes at least as long as its tagging"
    );
    for key in [
        "tripline_component_traps_total",
        "tripline_component_restarts_total",
        "tripline_forward_retries_total",
        "tripline_batches_in_flight",
    ] {
        assert_eq!(metrics.get(key), 0.0, "{key}");
    }

    // What is served is what docs/serve.md lists for users, no more, no less.
    let doc = std::fs::read_to_string(root().join("docs/serve.md")).unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .filter(|name| name.starts_with("tripline_"))
        .map(str::to_string)
        .collect();
    assert_eq!(documented, metrics.families, "docs/serve.md and /metrics disagree");

    // GET for people and probes; HEAD for Vector's healthcheck.
    let reply = rt.block_on(get(&client, &serve.url("/health"))).unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "ok\n"));
    let head = Request::head(serve.url("/health")).body(Full::default()).unwrap();
    let reply = rt.block_on(exchange(&client, head)).unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let post = batch(&serve.url("/metrics"), "application/x-ndjson", b"{}", false);
    let reply = rt.block_on(exchange(&client, post)).unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn traps_and_restarts_are_counted_and_their_events_go_out_untagged() {
    let rt = runtime();
    let client = client();
    let spin = component_from_wat("spin");
    let serve = Serve::start(&[
        "--workers",
        "1",
        "--component",
        spin.to_str().unwrap(),
        "--call-timeout",
        "50",
        "--batch-events",
        "1",
    ]);
    let body = Shape::VectorNdjson.encode(&[
        cloudtrail("evt-1", "CreateUser"),
        cloudtrail("evt-2", "ListUsers"),
        cloudtrail("evt-3", "CreateUser"),
    ]);
    let reply = rt
        .block_on(exchange(&client, batch(&serve.url("/"), "application/x-ndjson", &body, false)));
    let reply = reply.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.body == body, "every event goes out unchanged");
    let metrics = serve.metrics(&rt, &client);
    assert_eq!(metrics.get("tripline_component_traps_total"), 3.0);
    assert_eq!(metrics.get("tripline_component_restarts_total"), 3.0);
    assert_eq!(metrics.get("tripline_events_errored_total{kind=\"trapped\"}"), 3.0);
    assert_eq!(metrics.get("tripline_events_forwarded_total"), 3.0);
    // One warning per failed call, none per event.
    assert_eq!(serve.log().matches("A call into the component failed").count(), 3);
}

// ---------------------------------------------------------------------
// Shutdown.

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_zero() {
    let rt = runtime();
    let client = client();
    let slow = Downstream::start(&rt, |_| Answer::Hold);
    let mut serve = Serve::start(&["--workers", "1", "--forward", &slow.url()]);
    let body = cloudtrail("evt-1", "CreateUser");
    let held = {
        let (client, request) =
            (client.clone(), batch(&serve.url("/"), "application/x-ndjson", &body, false));
        rt.spawn(async move { exchange(&client, request).await })
    };
    slow.wait_for_requests(1);

    serve.terminate();
    serve.wait_for_log("Shutting down");
    // It takes no new connection...
    let refused = TcpStream::connect_timeout(&serve.addr, WAIT).is_err();
    assert!(refused, "serve still accepts connections after SIGTERM");
    // ...and still answers the one in flight once the downstream does.
    slow.release();
    let reply = rt.block_on(held).unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let status = serve.exit_status();
    assert_eq!(status.code(), Some(0), "{}", serve.log());
    serve.wait_for_log("Every request in flight was answered; exiting.");
    assert_eq!(event_ids(&slow.accepted()[0].body), [("evt-1".to_string(), true)]);
}

#[test]
fn a_grace_period_that_runs_out_exits_nonzero_without_a_2xx() {
    let rt = runtime();
    let client = client();
    let stuck = Downstream::start(&rt, |_| Answer::Hold);
    let mut serve =
        Serve::start(&["--workers", "1", "--forward", &stuck.url(), "--shutdown-grace", "500ms"]);
    let body = cloudtrail("evt-1", "CreateUser");
    let held = {
        let (client, request) =
            (client.clone(), batch(&serve.url("/"), "application/x-ndjson", &body, false));
        rt.spawn(async move { exchange(&client, request).await })
    };
    stuck.wait_for_requests(1);
    serve.terminate();
    let status = serve.exit_status();
    assert_eq!(status.code(), Some(1), "{}", serve.log());
    assert!(serve.log().contains("The grace period ran out"), "{}", serve.log());
    // The sender is never told its batch is safe, so it keeps it.
    if let Ok(reply) = rt.block_on(held).unwrap() {
        assert!(!reply.status.is_success(), "got {}", reply.status);
    }
}
