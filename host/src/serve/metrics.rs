//! Every count `serve` keeps, and their Prometheus text rendering.
//!
//! All of the server's metrics are here, in one place, so that their names
//! and meanings can be read together (docs/serve.md lists them for users).
//! Counters are plain atomics, bumped once per batch rather than per event;
//! the label sets are fixed at start-up (rule names, error kinds, reasons),
//! so no lock or map is needed and a scrape cannot grow memory.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::batch::{Stats, ERROR_KINDS};

/// Why a request got no 2xx, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The limit of batches in flight was reached.
    Busy,
    /// The body, announced, received or decompressed, was over the limit.
    TooLarge,
    /// No Content-Type, or one that names no shape `serve` reads.
    ContentType,
    /// A compression other than gzip.
    ContentEncoding,
    /// Not JSON, not UTF-8, or not gzip when it said so.
    BadBody,
    /// The body did not arrive in time.
    ReadTimeout,
    /// The connection failed while the body was arriving.
    ReadError,
    /// No worker could take the batch: the server is stopping, or a worker
    /// failed.
    Unavailable,
    /// The downstream failed or did not answer in time, every attempt.
    DownstreamFailed,
    /// The downstream refused the batch with a status that retrying will
    /// not change.
    DownstreamRefused,
    /// A path `serve` does not have.
    NotFound,
    /// A method the path does not take.
    Method,
}

impl Reason {
    const ALL: [Reason; 12] = [
        Reason::Busy,
        Reason::TooLarge,
        Reason::ContentType,
        Reason::ContentEncoding,
        Reason::BadBody,
        Reason::ReadTimeout,
        Reason::ReadError,
        Reason::Unavailable,
        Reason::DownstreamFailed,
        Reason::DownstreamRefused,
        Reason::NotFound,
        Reason::Method,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::TooLarge => "too_large",
            Reason::ContentType => "content_type",
            Reason::ContentEncoding => "content_encoding",
            Reason::BadBody => "bad_body",
            Reason::ReadTimeout => "read_timeout",
            Reason::ReadError => "read_error",
            Reason::Unavailable => "unavailable",
            Reason::DownstreamFailed => "downstream_failed",
            Reason::DownstreamRefused => "downstream_refused",
            Reason::NotFound => "not_found",
            Reason::Method => "method",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|&r| r == self).expect("ALL lists every reason")
    }
}

/// Why one attempt to hand a batch downstream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardError {
    /// No answer within `--forward-timeout`.
    Timeout,
    /// No connection, or it broke.
    Connection,
    /// An answer other than 2xx.
    Status,
}

impl ForwardError {
    const ALL: [ForwardError; 3] =
        [ForwardError::Timeout, ForwardError::Connection, ForwardError::Status];

    fn as_str(self) -> &'static str {
        match self {
            ForwardError::Timeout => "timeout",
            ForwardError::Connection => "connection",
            ForwardError::Status => "status",
        }
    }
}

/// Upper bounds of the latency buckets, in seconds: from a batch of a few
/// events tagged in about a millisecond to a slow downstream near its
/// timeout.
const BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram with fixed buckets.
pub struct Histogram {
    /// Per bucket, not cumulative; the last one is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: 0.into() }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            match BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The server's counters.
pub struct Metrics {
    rules: Vec<String>,
    workers: usize,
    received: AtomicU64,
    forwarded: AtomicU64,
    batches: AtomicU64,
    tagged: Vec<AtomicU64>,
    errored: [AtomicU64; ERROR_KINDS.len()],
    traps: AtomicU64,
    restarts: AtomicU64,
    retries: AtomicU64,
    forward_errors: [AtomicU64; ForwardError::ALL.len()],
    rejected: [AtomicU64; Reason::ALL.len()],
    /// From a whole body in hand to the answer, forwarding included.
    pub batch_seconds: Histogram,
    /// From a whole body in hand to its tagged output: the wait for a
    /// worker, decompression, evaluation and compression.
    pub tag_seconds: Histogram,
}

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl Metrics {
    pub fn new(rules: Vec<String>, workers: usize) -> Metrics {
        Metrics {
            tagged: rules.iter().map(|_| AtomicU64::new(0)).collect(),
            rules,
            workers,
            received: 0.into(),
            forwarded: 0.into(),
            batches: 0.into(),
            errored: counters(),
            traps: 0.into(),
            restarts: 0.into(),
            retries: 0.into(),
            forward_errors: counters(),
            rejected: counters(),
            batch_seconds: Histogram::new(),
            tag_seconds: Histogram::new(),
        }
    }

    /// Counts a batch that went through the component.
    pub fn tagged_batch(&self, stats: &Stats) {
        self.batches.fetch_add(1, Relaxed);
        self.received.fetch_add(stats.read, Relaxed);
        for (counter, &n) in self.tagged.iter().zip(&stats.per_rule) {
            counter.fetch_add(n, Relaxed);
        }
        for (counter, n) in self.errored.iter().zip(stats.errors_by_kind()) {
            counter.fetch_add(n, Relaxed);
        }
        self.traps.fetch_add(stats.traps, Relaxed);
    }

    /// Counts events the next hop (or the sender, with no `--forward`)
    /// has accepted.
    pub fn forwarded(&self, events: u64) {
        self.forwarded.fetch_add(events, Relaxed);
    }

    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn forward_failed(&self, error: ForwardError) {
        let i = ForwardError::ALL.iter().position(|&e| e == error).expect("ALL lists every one");
        self.forward_errors[i].fetch_add(1, Relaxed);
    }

    pub fn rejected(&self, reason: Reason) {
        self.rejected[reason.index()].fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of every metric. `in_flight` is the
    /// number of batches being handled now.
    pub fn render(&self, in_flight: usize) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        };
        counter(
            &mut out,
            "tripline_events_received_total",
            "Events in batches that reached the component, including batches sent again.",
            &self.received,
        );
        counter(
            &mut out,
            "tripline_events_forwarded_total",
            "Events accepted by the downstream, or returned to the sender without --forward.",
            &self.forwarded,
        );
        header(
            &mut out,
            "tripline_events_tagged_total",
            "counter",
            "Events tagged, per rule; an event two rules match counts for both.",
        );
        for (rule, n) in self.rules.iter().zip(&self.tagged) {
            let _ = writeln!(
                out,
                "tripline_events_tagged_total{{rule=\"{}\"}} {}",
                escape(rule),
                n.load(Relaxed)
            );
        }
        header(
            &mut out,
            "tripline_events_errored_total",
            "counter",
            "Events forwarded unchanged because they could not be evaluated, per kind.",
        );
        for (kind, n) in ERROR_KINDS.iter().zip(&self.errored) {
            let _ = writeln!(
                out,
                "tripline_events_errored_total{{kind=\"{kind}\"}} {}",
                n.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "tripline_batches_total",
            "Batches that went through the component.",
            &self.batches,
        );
        self.batch_seconds.render(
            &mut out,
            "tripline_batch_duration_seconds",
            "Time from a whole batch received to the answer, forwarding included.",
        );
        self.tag_seconds.render(
            &mut out,
            "tripline_batch_tag_duration_seconds",
            "Time from a whole batch received to its tagged output, waiting for a worker included.",
        );
        counter(
            &mut out,
            "tripline_component_traps_total",
            "Guest calls that trapped or answered wrongly; their events went out untagged.",
            &self.traps,
        );
        counter(
            &mut out,
            "tripline_component_restarts_total",
            "Component instances replaced after a trap.",
            &self.restarts,
        );
        counter(
            &mut out,
            "tripline_forward_retries_total",
            "Attempts to hand a batch downstream after a failed attempt.",
            &self.retries,
        );
        header(
            &mut out,
            "tripline_forward_errors_total",
            "counter",
            "Failed attempts to hand a batch downstream, per kind of failure.",
        );
        for (kind, n) in ForwardError::ALL.iter().zip(&self.forward_errors) {
            let _ = writeln!(
                out,
                "tripline_forward_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                n.load(Relaxed)
            );
        }
        header(
            &mut out,
            "tripline_requests_rejected_total",
            "counter",
            "Requests answered with other than 2xx, per reason.",
        );
        for (reason, n) in Reason::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "tripline_requests_rejected_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                n.load(Relaxed)
            );
        }
        header(&mut out, "tripline_batches_in_flight", "gauge", "Batches being handled now.");
        let _ = writeln!(out, "tripline_batches_in_flight {in_flight}");
        header(&mut out, "tripline_workers", "gauge", "Component instances serving batches.");
        let _ = writeln!(out, "tripline_workers {}", self.workers);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histograms() {
        let metrics = Metrics::new(vec!["r\"1".into(), "r2".into()], 2);
        let stats = Stats { read: 5, per_rule: vec![2], malformed: 1, ..Stats::default() };
        metrics.tagged_batch(&stats);
        metrics.rejected(Reason::Busy);
        metrics.batch_seconds.observe(Duration::from_millis(3));
        let text = metrics.render(1);
        for line in [
            "tripline_events_received_total 5",
            "tripline_events_tagged_total{rule=\"r\\\"1\"} 2",
            "tripline_events_tagged_total{rule=\"r2\"} 0",
            "tripline_events_errored_total{kind=\"malformed\"} 1",
            "tripline_requests_rejected_total{reason=\"busy\"} 1",
            "tripline_batch_duration_seconds_bucket{le=\"0.0025\"} 0",
            "tripline_batch_duration_seconds_bucket{le=\"0.005\"} 1",
            "tripline_batch_duration_seconds_bucket{le=\"+Inf\"} 1",
            "tripline_batch_duration_seconds_count 1",
            "tripline_batches_in_flight 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
