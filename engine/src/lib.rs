//! Tripline's detection engine: YARA-L 2.0 rules over log events.
//!
//! The engine is plain Rust with one dependency, `regex`, so that the same
//! code runs natively (rule checking, benchmarks) and inside the detector
//! component. Its stages, one module each:
//!
//! - [`syntax`]: lexer and parser, rule text to syntax tree;
//! - [`compile`]: syntax tree to evaluation plan, refusing what the
//!   evaluator does not run, with [`func`] (YARA-L's functions), [`re2`]
//!   (SecOps' regex dialect), [`lists`] (reference lists) and [`udm`] (the
//!   UDM field tree);
//! - [`check`]: warnings about rules that compile but cannot mean what
//!   they say;
//! - [`reader`]: one event's JSON to the UDM field values the plan reads,
//!   with [`source`] tables for raw CloudTrail, Azure and Entra ID records;
//! - [`eval`]: the plan over an event;
//! - [`tag`]: a matching event with its detections appended, the output
//!   format every Tripline front end writes.

pub mod check;
pub mod compile;
pub mod diag;
pub mod eval;
pub mod func;
pub mod lists;
pub mod prefilter;
pub mod re2;
pub mod reader;
pub mod source;
pub mod syntax;
pub mod tag;
pub mod udm;
pub mod value;

use compile::{FieldTable, Rule};
use diag::{Code, Diagnostic, Source};
pub use lists::RefList;
use reader::json::{Captures, JsonError, JsonErrorKind};
use reader::Reader;
pub use value::OutcomeValue;

/// A diagnostic and the index of the source it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub source: usize,
    pub diag: Diagnostic,
}

/// Why an event could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventError {
    /// The line holds only whitespace.
    Empty,
    /// Not valid UTF-8 or not valid JSON.
    Malformed(JsonError),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Nested deeper than the reader allows.
    TooDeep,
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::Empty => f.write_str("empty line"),
            EventError::Malformed(e) => write!(f, "malformed JSON: {e}"),
            EventError::NotAnObject => f.write_str("expected a JSON object at the top level"),
            EventError::TooDeep => {
                write!(f, "nested deeper than {} levels", reader::json::MAX_DEPTH)
            }
        }
    }
}

/// One rule that matched one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// Index into [`Engine::rules`].
    pub rule: u32,
    /// The values of the rule's placeholders, in order.
    pub variables: Vec<Vec<String>>,
    /// The values of the rule's outcome variables, in order.
    pub outcomes: Vec<OutcomeValue>,
}

/// A compiled rule set and the reader for the fields it uses.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    prefilter: prefilter::Prefilter,
    reader: Reader,
    fields: FieldTable,
    warnings: Vec<LoadError>,
}

/// Per-thread scratch space for [`Engine::evaluate`], and the evaluation
/// time.
pub struct Scratch {
    captures: Captures,
    /// The prefilter's anchors that hold for the event, one bit each.
    held: Vec<u64>,
    now: i64,
}

impl Scratch {
    /// Sets the time, in Unix seconds, that `timestamp.current_seconds()`
    /// returns from now on. The engine has no clock of its own (the
    /// detector component cannot read one); it is 0 until set.
    pub fn set_now(&mut self, unix_seconds: i64) {
        self.now = unix_seconds;
    }
}

impl Engine {
    /// Compiles every rule in `sources`. Either all compile, or every
    /// problem in every source is returned, in source order.
    pub fn load(sources: &[Source<'_>]) -> Result<Engine, Vec<LoadError>> {
        Engine::load_with_lists(sources, &[])
    }

    /// Like [`Engine::load`], with the reference lists the rules may name.
    /// A rule that names a list not among `lists` does not compile.
    pub fn load_with_lists(
        sources: &[Source<'_>],
        lists: &[RefList],
    ) -> Result<Engine, Vec<LoadError>> {
        Engine::load_as(sources, lists, false)
    }

    /// Loads rules to check them, as `tripline check` does: like
    /// [`Engine::load_with_lists`], except that a list not among `lists`
    /// is a warning ([`Code::ListNotGiven`]) and reads as empty, since
    /// lists are data that only a run needs.
    pub fn check(sources: &[Source<'_>], lists: &[RefList]) -> Result<Engine, Vec<LoadError>> {
        Engine::load_as(sources, lists, true)
    }

    fn load_as(
        sources: &[Source<'_>],
        lists: &[RefList],
        absent_lists_ok: bool,
    ) -> Result<Engine, Vec<LoadError>> {
        let mut fields = FieldTable::default();
        let mut rules: Vec<Rule> = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for (index, src) in sources.iter().enumerate() {
            let mut diags = Vec::new();
            let tokens = syntax::lexer::lex(src.text, &mut diags);
            let parsed = syntax::parser::parse(&tokens, &mut diags);
            let mut meta_warnings = meta_escapes(src.text, &parsed, &mut diags);
            for (rule, meta_warnings) in parsed.iter().zip(&mut meta_warnings) {
                let options = compile::Options { lists, absent_lists_ok };
                match compile::compile(rule, src.name, &mut fields, &options) {
                    Ok(mut compiled) => {
                        compiled.warnings.append(meta_warnings);
                        compiled.warnings.sort_by_key(|w| w.span.start);
                        warnings.extend(
                            compiled
                                .warnings
                                .iter()
                                .map(|d| LoadError { source: index, diag: d.clone() }),
                        );
                        if rules.iter().any(|r| r.name == compiled.name) {
                            let mut d = Diagnostic::new(
                                Code::DuplicateRule,
                                rule.name_span,
                                format!(
                                    "expected a unique rule name, found a second `{}`",
                                    rule.name
                                ),
                            );
                            d.rule = Some(rule.name.clone());
                            diags.push(d);
                        } else {
                            rules.push(compiled);
                        }
                    }
                    Err(ds) => diags.extend(ds),
                }
            }
            diags.sort_by_key(|d| d.span.start);
            errors.extend(diags.into_iter().map(|diag| LoadError { source: index, diag }));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let reader = Reader::new(fields.names());
        let prefilter = prefilter::Prefilter::new(&rules);
        Ok(Engine { rules, prefilter, reader, fields, warnings })
    }

    /// Turns the prefilter off, or back on: rules are then evaluated on
    /// every event. Verdicts never change; this is for tests that show
    /// so and benchmarks that measure what the prefilter saves.
    pub fn set_prefilter(&mut self, on: bool) {
        self.prefilter =
            if on { prefilter::Prefilter::new(&self.rules) } else { Default::default() };
    }

    /// The warnings of every loaded rule, in source order.
    pub fn warnings(&self) -> &[LoadError] {
        &self.warnings
    }

    /// The compiled rules, in the order of their sources.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The UDM fields the rules read.
    pub fn fields(&self) -> &[String] {
        self.fields.names()
    }

    pub fn scratch(&self) -> Scratch {
        Scratch { captures: self.reader.scratch(), held: Vec::new(), now: 0 }
    }

    /// Evaluates one event (one line, without its newline) and appends the
    /// rules it matches to `out`.
    pub fn evaluate(
        &self,
        line: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<Match>,
    ) -> Result<(), EventError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(EventError::Empty);
        }
        let event = self.reader.read(line, &mut scratch.captures).map_err(|e| match e.kind {
            JsonErrorKind::NotAnObject => EventError::NotAnObject,
            JsonErrorKind::TooDeep => EventError::TooDeep,
            _ => EventError::Malformed(e),
        })?;
        let gated = self.prefilter.is_active();
        if gated {
            self.prefilter.mark(&event, &mut scratch.held);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if gated && !self.prefilter.may_match(index, &scratch.held) {
                continue;
            }
            if let Some(hit) = rule.plan.evaluate(&event, scratch.now) {
                let (variables, outcomes) = (hit.variables, hit.outcomes);
                out.push(Match { rule: index as u32, variables, outcomes });
            }
        }
        Ok(())
    }

    /// Evaluates every line of `batch` (NDJSON; a final newline does not
    /// start another line) and calls `each` once per line, in order.
    pub fn evaluate_batch(
        &self,
        batch: &[u8],
        scratch: &mut Scratch,
        mut each: impl FnMut(Result<&[Match], EventError>),
    ) {
        let mut matches = Vec::new();
        for line in lines(batch) {
            matches.clear();
            match self.evaluate(line, scratch, &mut matches) {
                Ok(()) => each(Ok(&matches)),
                Err(e) => each(Err(e)),
            }
        }
    }
}

/// Takes out of `diags` the escapes that strings do not allow (`\\T`) where
/// they stand in a rule's `meta` values, and returns them as warnings of
/// their rule, one list per rule of `parsed`. A meta value is never
/// matched against events, so an escape there cannot change what a rule
/// does, and published rules write Windows paths in descriptions as they
/// are. The lexer keeps such an escape as written.
fn meta_escapes(
    text: &str,
    parsed: &[syntax::ast::Rule],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Vec<Diagnostic>> {
    let mut per_rule = vec![Vec::new(); parsed.len()];
    diags.retain(|d| {
        if d.code != Code::BadEscape {
            return true;
        }
        let inside = |span: &diag::Span| span.start <= d.span.start && d.span.end <= span.end;
        let Some(i) = parsed.iter().position(|r| r.meta.iter().any(|m| inside(&m.span))) else {
            return true;
        };
        let escape = text.get(d.span.start as usize..d.span.end as usize).unwrap_or("\\");
        let mut w = d.clone();
        w.code = Code::MetaEscape;
        w.message = format!(
            "found `{escape}`, an escape that strings do not have; in `meta` it is kept as \
             written (write `\\\\{}` to say so)",
            &escape[1..]
        );
        w.rule = Some(parsed[i].name.clone());
        per_rule[i].push(w);
        false
    });
    per_rule
}

/// The lines of an NDJSON buffer, without their `\n`. A final `\n` does not
/// start another line; an empty buffer has no lines.
pub fn lines(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    // memchr finds each newline 16 or 32 bytes per step, where a byte loop
    // would take one; inside wasm, where every loop iteration also checks
    // the epoch deadline, that difference is most of a batch's framing
    // cost.
    let body = batch.strip_suffix(b"\n").unwrap_or(batch);
    let mut rest = (!batch.is_empty()).then_some(body);
    std::iter::from_fn(move || {
        let text = rest?;
        match memchr::memchr(b'\n', text) {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_ndjson_framing() {
        let count = |b: &[u8]| lines(b).count();
        assert_eq!(count(b""), 0);
        assert_eq!(count(b"\n"), 1);
        assert_eq!(count(b"a"), 1);
        assert_eq!(count(b"a\n"), 1);
        assert_eq!(count(b"a\n\nb"), 3);
    }
}
