//! One batch of events through the component: the policy `run` and
//! `serve` share.
//!
//! Both front ends gather events into a batch of whole NDJSON lines, make
//! one guest call for it, and then decide per event what goes out: the
//! event with its tag appended, or the event unchanged. What counts as a
//! problem, and how each problem is counted, must not depend on whether the
//! events came from a file or over HTTP, so that decision lives here. How
//! events are gathered, how problems are reported and where output goes
//! stay with each front end.

use std::fmt;

use crate::component::{CallError, Detection, Detector, EventError, Verdict};
use crate::tag::Tagger;

/// What happened to one event of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// Evaluated; no rule matched. It goes out unchanged.
    Clean,
    /// Evaluated; these rules matched. It goes out tagged.
    Tagged(&'a [Detection]),
    /// The component could not read it. It goes out unchanged.
    Failed(&'a EventError),
    /// Its batch was lost to a trap or a bad answer, so it was never
    /// evaluated. It goes out unchanged.
    Unevaluated,
}

/// Why a whole batch went unevaluated.
#[derive(Debug)]
pub enum Lost {
    /// The guest trapped or hit a limit; the instance must be restarted
    /// before the next call.
    Trap(CallError),
    /// The guest answered with the wrong number of verdicts.
    Miscount { component: String, verdicts: usize, events: usize },
}

impl Lost {
    /// Whether the instance is unusable until [`Detector::restart`].
    pub fn needs_restart(&self) -> bool {
        matches!(self, Lost::Trap(_))
    }
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Trap(e) => write!(f, "{e:#}"),
            Lost::Miscount { component, verdicts, events } => write!(
                f,
                "component `{component}` returned {verdicts} verdicts for {events} events"
            ),
        }
    }
}

/// The verdicts for one batch, or why there are none.
#[derive(Debug)]
pub struct Evaluation {
    verdicts: Result<Vec<Verdict>, Lost>,
}

impl Evaluation {
    /// Why the batch went unevaluated, if it did.
    pub fn lost(&self) -> Option<&Lost> {
        self.verdicts.as_ref().err()
    }

    /// The outcome of event `index` of the batch.
    pub fn outcome(&self, index: usize) -> Outcome<'_> {
        match &self.verdicts {
            Err(_) => Outcome::Unevaluated,
            Ok(verdicts) => match &verdicts[index] {
                Ok(detections) if detections.is_empty() => Outcome::Clean,
                Ok(detections) => Outcome::Tagged(detections),
                Err(e) => Outcome::Failed(e),
            },
        }
    }
}

/// Evaluates `batch`, `events` whole NDJSON lines each ended by `\n`, in
/// one guest call. A trap leaves `detector` needing a restart, which is
/// the caller's to do once it has reported the loss.
pub fn evaluate(detector: &mut Detector, batch: &[u8], events: usize) -> Evaluation {
    let verdicts = match detector.evaluate(batch) {
        Ok(v) if v.len() == events => Ok(v),
        Ok(v) => Err(Lost::Miscount {
            component: detector.name().to_string(),
            verdicts: v.len(),
            events,
        }),
        Err(e) => Err(Lost::Trap(e)),
    };
    Evaluation { verdicts }
}

/// Appends `event` to `out` as `outcome` says: with its tag spliced in if
/// rules matched, byte for byte as it came otherwise.
pub fn write(tagger: &Tagger, event: &[u8], outcome: &Outcome<'_>, out: &mut Vec<u8>) {
    match outcome {
        Outcome::Tagged(detections) => tagger.tag(event, detections, out),
        Outcome::Clean | Outcome::Failed(_) | Outcome::Unevaluated => out.extend_from_slice(event),
    }
}

/// Counts of what happened to the events of one or more batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub read: u64,
    pub written: u64,
    pub tagged: u64,
    /// Tagged events per rule, by rule index.
    pub per_rule: Vec<u64>,
    pub malformed: u64,
    pub not_object: u64,
    pub empty: u64,
    pub too_deep: u64,
    pub too_large: u64,
    /// Events forwarded untagged because their batch trapped.
    pub trapped_events: u64,
    pub traps: u64,
}

/// The kinds of events that could not be evaluated, by the names metrics
/// and logs give them. The order is that of [`Stats::errors_by_kind`].
pub const ERROR_KINDS: [&str; 6] =
    ["malformed", "not_object", "empty", "too_deep", "too_large", "trapped"];

impl Stats {
    /// Counts one event's outcome. Events of a lost batch are counted once
    /// for the whole batch, by [`Stats::count_lost`].
    pub fn count(&mut self, outcome: &Outcome<'_>) {
        match outcome {
            Outcome::Clean | Outcome::Unevaluated => {}
            Outcome::Tagged(detections) => {
                self.tagged += 1;
                for d in detections.iter() {
                    let i = d.rule as usize;
                    if self.per_rule.len() <= i {
                        self.per_rule.resize(i + 1, 0);
                    }
                    self.per_rule[i] += 1;
                }
            }
            Outcome::Failed(err) => match err {
                EventError::Empty => self.empty += 1,
                EventError::NotAnObject => self.not_object += 1,
                EventError::TooDeep(_) => self.too_deep += 1,
                EventError::Malformed(_) => self.malformed += 1,
            },
        }
    }

    /// Counts a batch of `events` lost to a trap or a bad answer.
    pub fn count_lost(&mut self, events: usize) {
        self.traps += 1;
        self.trapped_events += events as u64;
    }

    /// Events that could not be evaluated, of every kind.
    pub fn errored(&self) -> u64 {
        self.errors_by_kind().iter().sum()
    }

    /// Events that could not be evaluated, per kind, in the order of
    /// [`ERROR_KINDS`].
    pub fn errors_by_kind(&self) -> [u64; 6] {
        [
            self.malformed,
            self.not_object,
            self.empty,
            self.too_deep,
            self.too_large,
            self.trapped_events,
        ]
    }

    /// The one-line summary printed on stderr at the end of a run.
    pub fn summary(&self) -> String {
        format!(
            "{} events read, {} tagged, {} errored (malformed {}, not an object {}, empty {}, \
             too deep {}, too large {}, lost to traps {}), {} written, {} traps",
            self.read,
            self.tagged,
            self.errored(),
            self.malformed,
            self.not_object,
            self.empty,
            self.too_deep,
            self.too_large,
            self.trapped_events,
            self.written,
            self.traps,
        )
    }
}

/// The name [`ERROR_KINDS`] gives the kind of `err`.
pub fn error_kind(err: &EventError) -> &'static str {
    match err {
        EventError::Malformed(_) => ERROR_KINDS[0],
        EventError::NotAnObject => ERROR_KINDS[1],
        EventError::Empty => ERROR_KINDS[2],
        EventError::TooDeep(_) => ERROR_KINDS[3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::JsonError;

    #[test]
    fn outcomes_are_counted_by_kind() {
        let mut stats = Stats::default();
        let detections = [Detection { rule: 2, variables: vec![], outcomes: vec![] }];
        stats.count(&Outcome::Tagged(&detections));
        stats.count(&Outcome::Clean);
        let malformed = EventError::Malformed(JsonError { offset: 3, message: "x".into() });
        stats.count(&Outcome::Failed(&malformed));
        stats.count(&Outcome::Failed(&EventError::TooDeep(128)));
        stats.count_lost(4);
        assert_eq!(stats.tagged, 1);
        assert_eq!(stats.per_rule, [0, 0, 1]);
        assert_eq!(stats.errors_by_kind(), [1, 0, 0, 1, 0, 4]);
        assert_eq!(stats.errored(), 6);
        assert_eq!(stats.traps, 1);
        assert_eq!(error_kind(&malformed), "malformed");
    }
}
