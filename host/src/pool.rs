//! Component instances on threads of their own, for `tripline run`.
//!
//! The runner reads and writes on its own thread and hands each batch to
//! whichever instance is free. Every batch gets a channel of its own for
//! its result, and the runner waits on those channels in the order it
//! submitted the batches, so output keeps input order whatever order the
//! batches finish in. How many batches are out at once is the runner's to
//! bound; the queue here never holds more than that.
//!
//! Instances start when they are needed: one when the pool starts, another
//! only when a batch arrives and none is idle. A short input, whose
//! batches never overlap, costs one instance.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _, Result};

use crate::batch::{self, Evaluation};
use crate::component::Detector;

/// A batch evaluated, with its buffer handed back for reuse.
pub struct Done {
    pub batch: Vec<u8>,
    pub evaluation: Evaluation,
    /// Set when the batch trapped and the instance could not be restarted
    /// afterwards; that worker has stopped.
    pub restart_failed: Option<anyhow::Error>,
}

/// The result of one submitted batch, to wait for.
pub struct Ticket(Receiver<Done>);

impl Ticket {
    /// Waits for the batch to be evaluated.
    pub fn wait(self) -> Result<Done> {
        self.0.recv().map_err(|_| anyhow!("a worker thread stopped before finishing its batch"))
    }
}

struct Job {
    batch: Vec<u8>,
    events: usize,
    reply: SyncSender<Done>,
}

/// Up to `max_workers` instances, forked from one template.
pub struct Pool {
    /// Never evaluates: each worker's instance is forked from it.
    template: Detector,
    max_workers: usize,
    queue: Option<SyncSender<Job>>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    /// Workers waiting for a job.
    idle: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of at most `max_workers` instances of `template`, with room
    /// for `capacity` batches queued. One worker starts now, so that a
    /// component that cannot be forked fails before any input is read.
    pub fn new(template: Detector, max_workers: usize, capacity: usize) -> Result<Pool> {
        let (queue, jobs) = mpsc::sync_channel(capacity.max(1));
        let mut pool = Pool {
            template,
            max_workers: max_workers.max(1),
            queue: Some(queue),
            jobs: Arc::new(Mutex::new(jobs)),
            idle: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
        };
        pool.spawn()?;
        Ok(pool)
    }

    /// Hands `batch`, `events` whole NDJSON lines, to the next free worker,
    /// starting another if none is idle and the limit allows.
    pub fn submit(&mut self, batch: Vec<u8>, events: usize) -> Result<Ticket> {
        if self.idle.load(Ordering::Acquire) == 0 && self.threads.len() < self.max_workers {
            self.spawn()?;
        }
        let (reply, result) = mpsc::sync_channel(1);
        let queue = self.queue.as_ref().expect("the queue lives as long as the pool");
        queue
            .send(Job { batch, events, reply })
            .map_err(|_| anyhow!("every worker thread has stopped"))?;
        Ok(Ticket(result))
    }

    /// How many instances have started.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    fn spawn(&mut self) -> Result<()> {
        let detector = self.template.fork().context("failed to start another instance")?;
        let id = self.threads.len();
        let mut worker = Worker { detector, idle: Arc::clone(&self.idle) };
        let jobs = Arc::clone(&self.jobs);
        let thread = std::thread::Builder::new()
            .name(format!("tripline-worker-{id}"))
            .spawn(move || worker.run(&jobs))
            .context("failed to start a worker thread")?;
        self.threads.push(thread);
        Ok(())
    }
}

impl Drop for Pool {
    /// Closes the queue and waits for the workers to finish what they hold.
    fn drop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Worker {
    detector: Detector,
    idle: Arc<AtomicUsize>,
}

impl Worker {
    fn run(&mut self, jobs: &Mutex<Receiver<Job>>) {
        loop {
            self.idle.fetch_add(1, Ordering::AcqRel);
            // The lock is held while waiting, so that one idle worker at a
            // time waits on the queue; the others wait on the lock.
            let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
            self.idle.fetch_sub(1, Ordering::AcqRel);
            let Ok(job) = job else { return };
            let Job { batch, events, reply } = job;
            // A panic here is a bug in the host, not bad input: dropping
            // `reply` unanswered makes the runner stop with an error.
            let done = panic::catch_unwind(AssertUnwindSafe(|| self.evaluate(batch, events)));
            let Ok(done) = done else { return };
            let stop = done.restart_failed.is_some();
            // The runner may have stopped waiting (under --strict).
            let _ = reply.send(done);
            if stop {
                return;
            }
        }
    }

    fn evaluate(&mut self, batch: Vec<u8>, events: usize) -> Done {
        let evaluation = batch::evaluate(&mut self.detector, &batch, events);
        let needs_restart = evaluation.lost().is_some_and(|lost| lost.needs_restart());
        let restart_failed = if needs_restart { self.detector.restart().err() } else { None };
        Done { batch, evaluation, restart_failed }
    }
}
