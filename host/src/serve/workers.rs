//! The component instances that tag batches, each on its own OS thread.
//!
//! Calls into wasmtime are synchronous and take milliseconds, so they must
//! not run on the async runtime's threads, where they would stall every
//! connection those threads serve. Each worker owns one [`Detector`], with
//! its own store, memory limit and deadline, and takes the next job from a
//! queue that all workers share, so a batch goes to whichever worker is
//! free first. A job is one request's whole body, from decompression to
//! the recompressed output: the async side only moves bytes. The server
//! bounds the batches in flight before it reads a body, and the queue
//! holds no more than that bound, so nothing here waits without limit.

use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{Context as _, Result};
use hyper::body::Bytes;
use hyper::StatusCode;
use tokio::sync::oneshot;
use tracing::{debug, error, trace, warn};

use super::body::{self, Format, Framing};
use super::json;
use super::metrics::{Metrics, Reason};
use super::Rejection;
use crate::batch::{self, Outcome, Stats};
use crate::component::Detector;
use crate::tag::Tagger;

/// How events are grouped into guest calls, as in `tripline run`.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Most events per guest call.
    pub batch_events: usize,
    /// Most bytes per guest call; a call closes at the first event that
    /// reaches it.
    pub batch_bytes: usize,
    /// Longer events are not evaluated: they go out unchanged and counted.
    pub max_event_bytes: usize,
}

/// A body tagged and ready to go out.
pub struct Tagged {
    pub body: Bytes,
    pub events: u64,
    pub stats: Stats,
    /// How the events were laid out, for logs.
    pub layout: &'static str,
}

struct Job {
    body: Bytes,
    format: Format,
    gzip_out: bool,
    reply: oneshot::Sender<Result<Tagged, Rejection>>,
}

/// The workers and the queue that feeds them.
pub struct Pool {
    queue: SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

/// What every worker shares.
pub struct Shared {
    pub tagger: Arc<Tagger>,
    pub limits: BatchLimits,
    /// The limit on a decompressed body.
    pub max_body_bytes: usize,
    pub metrics: Arc<Metrics>,
}

impl Pool {
    /// Starts one worker per detector. The queue holds up to `capacity`
    /// jobs, which must be at least the number of batches let in at once.
    pub fn start(detectors: Vec<Detector>, shared: Arc<Shared>, capacity: usize) -> Result<Pool> {
        let (queue, jobs) = mpsc::sync_channel(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut threads = Vec::new();
        for (id, detector) in detectors.into_iter().enumerate() {
            let mut worker = Worker {
                id,
                detector,
                shared: Arc::clone(&shared),
                call: Vec::new(),
                pending: Vec::new(),
            };
            let jobs = Arc::clone(&jobs);
            let thread = std::thread::Builder::new()
                .name(format!("tripline-worker-{id}"))
                .spawn(move || worker.run(&jobs))
                .context("failed to start a worker thread")?;
            threads.push(thread);
        }
        Ok(Pool { queue, threads })
    }

    /// Tags `body` on the first free worker. `gzip_out` asks for the output
    /// gzip-compressed.
    pub async fn tag(
        &self,
        body: Bytes,
        format: Format,
        gzip_out: bool,
    ) -> Result<Tagged, Rejection> {
        let (reply, answer) = oneshot::channel();
        let job = Job { body, format, gzip_out, reply };
        if let Err(e) = self.queue.try_send(job) {
            let why = match e {
                TrySendError::Full(_) => "every worker is busy",
                TrySendError::Disconnected(_) => "the workers have stopped",
            };
            return Err(unavailable(why));
        }
        answer.await.unwrap_or_else(|_| Err(unavailable("the worker stopped")))
    }

    /// Closes the queue and waits for the workers to finish their jobs.
    pub fn stop(self) {
        drop(self.queue);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn unavailable(why: &str) -> Rejection {
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::Unavailable,
        format!("No worker could take the batch: {why}; retry later."),
    )
    .retry_after(1)
}

/// One component instance and its scratch space.
struct Worker {
    id: usize,
    detector: Detector,
    shared: Arc<Shared>,
    /// The events of the guest call being gathered, as NDJSON.
    call: Vec<u8>,
    /// The index of each event in `call`.
    pending: Vec<usize>,
}

impl Worker {
    fn run(&mut self, jobs: &Mutex<Receiver<Job>>) {
        loop {
            // The lock is held while waiting, so that one idle worker at a
            // time waits on the queue; the others wait on the lock.
            let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
            let Ok(job) = job else { return };
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                self.job(&job.body, job.format, job.gzip_out)
            }));
            let result = result.unwrap_or_else(|_| {
                // A bug, not bad input: keep serving with a fresh instance.
                error!(worker = self.id, "A worker panicked; its instance is replaced.");
                self.call.clear();
                self.pending.clear();
                self.restart();
                Err(Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Reason::Unavailable,
                    "The batch could not be tagged because of an internal error; retry later."
                        .to_string(),
                ))
            });
            // The sender may have gone away; its batch is then simply done.
            let _ = job.reply.send(result);
        }
    }

    fn job(&mut self, raw: &[u8], format: Format, gzip_out: bool) -> Result<Tagged, Rejection> {
        let inflated;
        let body = if format.gzip {
            inflated = body::gunzip(raw, self.shared.max_body_bytes)?;
            &inflated[..]
        } else {
            raw
        };
        let (layout, events) = match format.framing {
            Framing::Lines => ("ndjson", body::lines(body)),
            Framing::Json => {
                let (layout, events) = json::split(body).map_err(|e| {
                    Rejection::new(
                        StatusCode::BAD_REQUEST,
                        Reason::BadBody,
                        format!("The body is not JSON: {e}."),
                    )
                })?;
                (layout.name(), events)
            }
        };
        let mut stats = Stats::default();
        let out = self.tag_events(body, &events, &mut stats);
        stats.read = events.len() as u64;
        stats.written = stats.read;
        let problems = stats.errored() - stats.trapped_events;
        if problems > 0 {
            let [malformed, not_object, empty, too_deep, too_large, _] = stats.errors_by_kind();
            warn!(
                worker = self.id,
                events = stats.read,
                malformed,
                not_object,
                empty,
                too_deep,
                too_large,
                "Some events of a batch could not be evaluated; they go out unchanged."
            );
        }
        let out = if gzip_out { body::gzip(&out) } else { out };
        Ok(Tagged { body: out.into(), events: stats.read, stats, layout })
    }

    /// Tags each event of `body` and returns the body with the tags spliced
    /// in; the bytes between events are copied as they are.
    fn tag_events(&mut self, body: &[u8], events: &[Range<usize>], stats: &mut Stats) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + body.len() / 8);
        let mut copied = 0;
        for (i, range) in events.iter().enumerate() {
            let event = &body[range.clone()];
            if event.len() > self.shared.limits.max_event_bytes {
                // Evaluate what came before, then pass this one through.
                self.flush(body, events, &mut copied, &mut out, stats);
                stats.too_large += 1;
                trace!(worker = self.id, event = i, "An event is too large to evaluate.");
                out.extend_from_slice(&body[copied..range.end]);
                copied = range.end;
                continue;
            }
            // A JSON event may span lines; newlines outside strings are
            // whitespace, and the guest reads one event per line.
            self.call.extend(event.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
            self.call.push(b'\n');
            self.pending.push(i);
            let limits = &self.shared.limits;
            if self.pending.len() >= limits.batch_events || self.call.len() >= limits.batch_bytes {
                self.flush(body, events, &mut copied, &mut out, stats);
            }
        }
        self.flush(body, events, &mut copied, &mut out, stats);
        out.extend_from_slice(&body[copied..]);
        out
    }

    /// Evaluates the gathered events in one guest call and writes them, and
    /// the bytes before each, to `out`.
    fn flush(
        &mut self,
        body: &[u8],
        events: &[Range<usize>],
        copied: &mut usize,
        out: &mut Vec<u8>,
        stats: &mut Stats,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let evaluation = batch::evaluate(&mut self.detector, &self.call, self.pending.len());
        if let Some(lost) = evaluation.lost() {
            stats.count_lost(self.pending.len());
            warn!(
                worker = self.id,
                events = self.pending.len(),
                error = %lost,
                "A call into the component failed; its events go out untagged."
            );
            if lost.needs_restart() {
                self.restart();
            }
        }
        for (k, &i) in self.pending.iter().enumerate() {
            let range = events[i].clone();
            let outcome = evaluation.outcome(k);
            stats.count(&outcome);
            if let Outcome::Failed(err) = outcome {
                let kind = batch::error_kind(err);
                trace!(worker = self.id, event = i, kind, error = ?err, "An event is unreadable.");
            }
            out.extend_from_slice(&body[*copied..range.start]);
            batch::write(&self.shared.tagger, &body[range.clone()], &outcome, out);
            *copied = range.end;
        }
        self.call.clear();
        self.pending.clear();
    }

    fn restart(&mut self) {
        match self.detector.restart() {
            Ok(()) => {
                self.shared.metrics.restarted();
                debug!(worker = self.id, "The component instance was restarted.");
            }
            // The instance stays marked as trapped: the next call fails
            // fast, its events go out untagged, and the restart is tried
            // again.
            Err(e) => error!(
                worker = self.id,
                error = format!("{e:#}"),
                "The component instance could not be restarted."
            ),
        }
    }
}
