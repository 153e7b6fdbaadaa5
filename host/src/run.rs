//! `tripline run`: NDJSON in, the same NDJSON out, matches tagged.
//!
//! Lines are gathered into batches and evaluated one batch per guest call,
//! on as many component instances as `workers` allows, while this thread
//! goes on reading. Every input line gives exactly one output line, in
//! order: untouched unless it matched. Lines the component cannot read,
//! lines too long to send, and whole batches lost to a trap are forwarded
//! unchanged and counted, never dropped.
//!
//! At most two batches per worker are out at once. When that many are
//! waiting, the reader waits for the oldest and writes it, so a slow
//! consumer slows the reader and memory stays bounded by the batch size.

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};

use anyhow::{Context as _, Result};

use crate::batch::{self, Lost, Outcome};
use crate::component::{Detector, EventError};
use crate::pool::{Pool, Ticket};
use crate::tag::Tagger;

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Forward only the events that matched.
    pub only_matches: bool,
    /// Stop at the first event that cannot be evaluated.
    pub strict: bool,
    /// Most events per guest call.
    pub batch_events: usize,
    /// Most bytes per guest call; a batch closes at the first line that
    /// reaches it.
    pub batch_bytes: usize,
    /// Longer lines are not evaluated: forwarded unchanged and counted.
    pub max_event_bytes: usize,
    /// How many event problems to describe on stderr; the rest are counted.
    pub report_limit: usize,
    /// Most component instances evaluating at once.
    pub workers: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        // 256 events or 1 MiB per call. The sweep in benches/component.rs
        // levels off past 64 events per call; at 256 a call's own cost is
        // well under 1% of its evaluation, and batches stay small enough
        // to keep latency and memory low.
        RunOptions {
            only_matches: false,
            strict: false,
            batch_events: 256,
            batch_bytes: 1 << 20,
            max_event_bytes: 1 << 20,
            report_limit: 10,
            workers: 1,
        }
    }
}

/// What a run did.
pub use crate::batch::Stats;

/// An input stream and the name messages use for it.
pub struct Input<'a> {
    pub name: String,
    pub reader: Box<dyn BufRead + 'a>,
}

/// Reads batches, has them evaluated and writes them out in order.
/// Problems are described on `report`, one line each, up to the options'
/// limit.
pub struct Runner<'a> {
    pool: Pool,
    tagger: &'a Tagger,
    opts: RunOptions,
    stats: Stats,
    report: &'a mut dyn Write,
    reported: usize,
    /// The batch being filled: whole lines, each ended by `\n`.
    batch: Vec<u8>,
    /// Per line in `batch`: its end offset (after the `\n`) and line number.
    lines: Vec<(usize, u64)>,
    /// Batches submitted and not yet written, oldest first.
    pending: VecDeque<Pending>,
    /// Buffers of written batches, for the next ones.
    spare: Vec<(Vec<u8>, Vec<(usize, u64)>)>,
    out_buf: Vec<u8>,
}

/// A batch out for evaluation.
struct Pending {
    input: std::rc::Rc<str>,
    lines: Vec<(usize, u64)>,
    ticket: Ticket,
}

/// The run failed on purpose, under `--strict`.
#[derive(Debug)]
pub struct StrictFailure(pub String);

impl std::fmt::Display for StrictFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for StrictFailure {}

impl<'a> Runner<'a> {
    /// A runner on instances of `detector`, which holds the rules to run.
    pub fn new(
        detector: Detector,
        tagger: &'a Tagger,
        opts: RunOptions,
        report: &'a mut dyn Write,
    ) -> Result<Self> {
        let workers = opts.workers.max(1);
        let pool = Pool::new(detector, workers, 2 * workers)?;
        Ok(Runner {
            pool,
            tagger,
            opts,
            stats: Stats::default(),
            report,
            reported: 0,
            batch: Vec::new(),
            lines: Vec::new(),
            pending: VecDeque::new(),
            spare: Vec::new(),
            out_buf: Vec::new(),
        })
    }

    /// Runs every input, in order, into `out`, and returns the counts.
    /// Under `--strict` the error is a [`StrictFailure`].
    pub fn run(mut self, inputs: Vec<Input<'_>>, out: &mut dyn Write) -> Result<Stats> {
        for mut input in inputs {
            let name: std::rc::Rc<str> = input.name.as_str().into();
            self.input(&name, &mut *input.reader, out)?;
        }
        self.drain(out)?;
        out.flush().context("failed to write output")?;
        Ok(self.stats)
    }

    fn input(
        &mut self,
        name: &std::rc::Rc<str>,
        reader: &mut dyn BufRead,
        out: &mut dyn Write,
    ) -> Result<()> {
        let mut line_no = 0u64;
        loop {
            line_no += 1;
            let start = self.batch.len();
            let read = read_line(reader, &mut self.batch, self.opts.max_event_bytes)
                .with_context(|| format!("failed to read {name}"))?;
            match read {
                LineRead::Eof => break,
                LineRead::Line => {
                    if !self.batch.ends_with(b"\n") {
                        self.batch.push(b'\n');
                    }
                    self.stats.read += 1;
                    self.lines.push((self.batch.len(), line_no));
                    if self.lines.len() >= self.opts.batch_events
                        || self.batch.len() >= self.opts.batch_bytes
                    {
                        self.flush(name, out)?;
                    }
                }
                LineRead::TooLong => {
                    // Evaluate what came before, then pass the long line
                    // through as it streams in.
                    self.stats.read += 1;
                    let prefix = self.batch.split_off(start);
                    self.flush(name, out)?;
                    self.drain(out)?;
                    self.stats.too_large += 1;
                    let msg = format!(
                        "{name}:{line_no}: event longer than {} bytes, forwarded unchanged",
                        self.opts.max_event_bytes
                    );
                    self.problem(&msg)?;
                    let keep = !self.opts.only_matches;
                    if keep {
                        out.write_all(&prefix)?;
                    }
                    copy_rest_of_line(reader, if keep { Some(&mut *out) } else { None })?;
                    if keep {
                        out.write_all(b"\n")?;
                        self.stats.written += 1;
                    }
                }
            }
        }
        self.flush(name, out)
    }

    fn problem(&mut self, msg: &str) -> Result<()> {
        if self.opts.strict {
            return Err(StrictFailure(msg.to_string()).into());
        }
        if self.reported < self.opts.report_limit {
            let _ = writeln!(self.report, "tripline: {msg}");
        } else if self.reported == self.opts.report_limit {
            let _ =
                writeln!(self.report, "tripline: further event problems are counted, not shown");
        }
        self.reported += 1;
        Ok(())
    }

    /// Sends the batch gathered so far for evaluation, and writes out the
    /// oldest batches while too many are out.
    fn flush(&mut self, name: &std::rc::Rc<str>, out: &mut dyn Write) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let (batch, lines) = self.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, batch);
        let lines = std::mem::replace(&mut self.lines, lines);
        let ticket = self.pool.submit(batch, lines.len())?;
        self.pending.push_back(Pending { input: std::rc::Rc::clone(name), lines, ticket });
        while self.pending.len() >= 2 * self.pool.workers() {
            self.write_oldest(out)?;
        }
        Ok(())
    }

    /// Writes out every batch still out, in order.
    fn drain(&mut self, out: &mut dyn Write) -> Result<()> {
        while !self.pending.is_empty() {
            self.write_oldest(out)?;
        }
        Ok(())
    }

    /// Waits for the oldest batch out and writes it.
    fn write_oldest(&mut self, out: &mut dyn Write) -> Result<()> {
        let Some(Pending { input, lines, ticket }) = self.pending.pop_front() else {
            return Ok(());
        };
        let done = ticket.wait()?;
        let (batch, evaluation) = (done.batch, done.evaluation);
        if let Some(lost) = evaluation.lost() {
            let msg = match lost {
                Lost::Trap(_) => {
                    let first = lines.first().map_or(0, |l| l.1);
                    let last = lines.last().map_or(0, |l| l.1);
                    format!("{input}:{first}-{last}: {lost}; the batch is forwarded untagged")
                }
                Lost::Miscount { .. } => format!("{lost}; the batch is forwarded untagged"),
            };
            self.batch_lost(&msg, lines.len())?;
        }
        if let Some(e) = done.restart_failed {
            return Err(e.context("failed to restart the component after a trap"));
        }
        let mut start = 0;
        for (i, &(end, line_no)) in lines.iter().enumerate() {
            let line = &batch[start..end - 1];
            start = end;
            self.write_outcome(&input, line_no, line, &evaluation.outcome(i), out)?;
        }
        self.recycle(batch, lines);
        Ok(())
    }

    /// Keeps a written batch's buffers for a later batch.
    fn recycle(&mut self, mut batch: Vec<u8>, mut lines: Vec<(usize, u64)>) {
        batch.clear();
        lines.clear();
        self.spare.push((batch, lines));
    }

    fn batch_lost(&mut self, msg: &str, events: usize) -> Result<()> {
        self.stats.count_lost(events);
        if self.opts.strict {
            return Err(StrictFailure(msg.to_string()).into());
        }
        // A trap is reported whatever the limit on event problems.
        let _ = writeln!(self.report, "tripline: {msg}");
        Ok(())
    }

    fn forward(&mut self, line: &[u8], out: &mut dyn Write) -> Result<()> {
        if !self.opts.only_matches {
            out.write_all(line)?;
            out.write_all(b"\n")?;
            self.stats.written += 1;
        }
        Ok(())
    }

    fn write_outcome(
        &mut self,
        name: &str,
        line_no: u64,
        line: &[u8],
        outcome: &Outcome<'_>,
        out: &mut dyn Write,
    ) -> Result<()> {
        self.stats.count(outcome);
        match outcome {
            Outcome::Clean | Outcome::Unevaluated => self.forward(line, out),
            Outcome::Tagged(_) => {
                self.out_buf.clear();
                batch::write(self.tagger, line, outcome, &mut self.out_buf);
                self.out_buf.push(b'\n');
                out.write_all(&self.out_buf)?;
                self.stats.written += 1;
                Ok(())
            }
            Outcome::Failed(err) => {
                let msg = match err {
                    EventError::Empty => format!("{name}:{line_no}: empty line"),
                    EventError::NotAnObject => format!(
                        "{name}:{line_no}: expected a JSON object, found another JSON value"
                    ),
                    EventError::TooDeep(depth) => {
                        format!("{name}:{line_no}: event nests deeper than {depth} levels")
                    }
                    EventError::Malformed(e) => {
                        let column = column_of(line, e.offset as usize);
                        format!("{name}:{line_no}:{column}: malformed JSON: {}", e.message)
                    }
                };
                self.problem(&msg)?;
                self.forward(line, out)
            }
        }
    }
}

/// The 1-based character column of byte `offset` in `line`.
fn column_of(line: &[u8], offset: usize) -> usize {
    let upto = &line[..offset.min(line.len())];
    String::from_utf8_lossy(upto).chars().count() + 1
}

enum LineRead {
    /// A line was appended to the buffer, with its `\n` if it had one.
    Line,
    /// The line is longer than the limit; its first bytes were appended.
    TooLong,
    Eof,
}

/// Appends one line to `buf`, reading no more than `limit` bytes of it.
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<LineRead> {
    let mut taken = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if taken == 0 { LineRead::Eof } else { LineRead::Line });
        }
        let newline = memchr::memchr(b'\n', available);
        let want = newline.map_or(available.len(), |i| i + 1);
        // The newline itself does not count against the limit.
        let body = newline.map_or(want, |i| i);
        if taken + body > limit {
            let n = limit - taken;
            buf.extend_from_slice(&available[..n]);
            reader.consume(n);
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&available[..want]);
        reader.consume(want);
        taken += want;
        if newline.is_some() {
            return Ok(LineRead::Line);
        }
    }
}

/// Streams the rest of a line to `out` (or discards it), consuming its
/// `\n` without copying it.
fn copy_rest_of_line(reader: &mut dyn BufRead, mut out: Option<&mut dyn Write>) -> io::Result<()> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(());
        }
        let newline = memchr::memchr(b'\n', available);
        let body = newline.unwrap_or(available.len());
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&available[..body])?;
        }
        let used = newline.map_or(body, |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(());
        }
    }
}
