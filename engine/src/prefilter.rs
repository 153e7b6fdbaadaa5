//! The prefilter: one pass per event that rules out, at once, every rule
//! whose required tests fail, so that the cost of a large rule set follows
//! the rules an event might match rather than the rules loaded.
//!
//! Most rules open with tests that the event must pass whatever else
//! holds: `$e.metadata.product_event_type = "CreateUser"`, a regex on the
//! user agent, an `or` of such tests. Each such test, a top-level
//! conjunct of a rule's `events`, is an *anchor*. The prefilter gathers the
//! anchors of every rule by the field they read: per field, the exact
//! strings in a hash map, those under `nocase` in another, and the regexes
//! in one [`RegexSet`]. For an event it reads each of those fields once,
//! looks each value up once and runs each set once, and marks the anchors
//! that hold. A rule is evaluated only if all of its anchors hold.
//!
//! This can only let through rules that then fail; it never stops a rule
//! that would match. Values are read as the evaluator reads them: every
//! value of a repeated field, and the empty string for a missing one.

use std::collections::HashMap;

use regex::{RegexSet, RegexSetBuilder};

use crate::compile::Rule;
use crate::eval::{Expr, Pred};
use crate::reader::{Event, FieldId};

/// With fewer runnable rules than this, the prefilter would only repeat
/// the first test of each: a rule's own conjuncts already run cheapest
/// first and stop at the first that fails.
const MIN_RULES: usize = 2;

/// The anchors of all rules, gathered by field.
#[derive(Debug, Default)]
pub struct Prefilter {
    fields: Vec<FieldGate>,
    /// Per rule, the anchors that must all hold; empty when the rule has
    /// none, and is always evaluated.
    rules: Vec<Box<[u32]>>,
    anchors: usize,
    /// Anchors that hold on every event: those whose regexes could not
    /// join a set.
    always: Vec<u32>,
}

/// The anchors that read one field.
#[derive(Debug)]
struct FieldGate {
    field: FieldId,
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Keys in lower case, for `nocase`.
    folded: HashMap<Box<str>, Vec<u32>>,
    patterns: Vec<(String, u32)>,
    set: Option<RegexSet>,
}

/// One alternative of an anchor: a test on one field.
enum Key {
    Exact(Box<str>),
    Folded(Box<str>),
    Pattern(String),
}

impl Prefilter {
    pub fn new(rules: &[Rule]) -> Prefilter {
        let runnable = rules.iter().filter(|r| r.plan.pred.is_some()).count();
        if runnable < MIN_RULES {
            return Prefilter::default();
        }
        let mut pf = Prefilter::default();
        for rule in rules {
            let mut own = Vec::new();
            if let Some(pred) = &rule.plan.pred {
                let conjuncts = match pred {
                    Pred::All(items) => &items[..],
                    single => std::slice::from_ref(single),
                };
                for conjunct in conjuncts {
                    let Some(keys) = anchor_keys(rule, conjunct) else { continue };
                    let anchor = pf.anchors as u32;
                    pf.anchors += 1;
                    for (field, key) in keys {
                        pf.gate(field).add(key, anchor);
                    }
                    own.push(anchor);
                }
            }
            pf.rules.push(own.into());
        }
        for gate in &mut pf.fields {
            if let Err(anchors) = gate.build() {
                pf.always.extend(anchors);
            }
        }
        pf
    }

    fn gate(&mut self, field: FieldId) -> &mut FieldGate {
        let i = match self.fields.iter().position(|g| g.field == field) {
            Some(i) => i,
            None => {
                self.fields.push(FieldGate {
                    field,
                    exact: HashMap::new(),
                    folded: HashMap::new(),
                    patterns: Vec::new(),
                    set: None,
                });
                self.fields.len() - 1
            }
        };
        &mut self.fields[i]
    }

    /// Whether there is anything to do: some rule has an anchor.
    pub fn is_active(&self) -> bool {
        self.anchors > 0
    }

    /// Marks in `held` (one bit per anchor) the anchors `event` passes.
    pub fn mark(&self, event: &Event<'_>, held: &mut Vec<u64>) {
        held.clear();
        held.resize(self.anchors.div_ceil(64), 0);
        let mut set_bit = |anchors: &[u32]| {
            for &a in anchors {
                held[a as usize / 64] |= 1 << (a % 64);
            }
        };
        set_bit(&self.always);
        let mut lower = String::new();
        for gate in &self.fields {
            event.any_value(gate.field, |value| {
                if let Some(anchors) = gate.exact.get(value) {
                    set_bit(anchors);
                }
                if !gate.folded.is_empty() {
                    lower.clear();
                    if value.is_ascii() {
                        lower.extend(value.chars().map(|c| c.to_ascii_lowercase()));
                    } else {
                        lower.push_str(&value.to_lowercase());
                    }
                    if let Some(anchors) = gate.folded.get(lower.as_str()) {
                        set_bit(anchors);
                    }
                }
                if let Some(set) = &gate.set {
                    for i in set.matches(value).iter() {
                        set_bit(&[gate.patterns[i].1]);
                    }
                }
                false
            });
        }
    }

    /// Whether rule `index` may match, given the anchors [`Prefilter::mark`]
    /// found to hold.
    pub fn may_match(&self, index: usize, held: &[u64]) -> bool {
        let Some(anchors) = self.rules.get(index) else { return true };
        anchors.iter().all(|&a| held[a as usize / 64] & (1 << (a % 64)) != 0)
    }
}

impl FieldGate {
    fn add(&mut self, key: Key, anchor: u32) {
        match key {
            Key::Exact(k) => self.exact.entry(k).or_default().push(anchor),
            Key::Folded(k) => self.folded.entry(k).or_default().push(anchor),
            Key::Pattern(p) => self.patterns.push((p, anchor)),
        }
    }

    /// Compiles the field's regexes into one set. If the set is too large
    /// to build, returns the anchors it holds: they are then taken to hold
    /// on every event, which is slower but still right.
    fn build(&mut self) -> Result<(), Vec<u32>> {
        if self.patterns.is_empty() {
            return Ok(());
        }
        let sources = self.patterns.iter().map(|(p, _)| p.as_str());
        match RegexSetBuilder::new(sources).size_limit(8 * crate::re2::SIZE_LIMIT).build() {
            Ok(set) => {
                self.set = Some(set);
                Ok(())
            }
            Err(_) => Err(self.patterns.drain(..).map(|(_, a)| a).collect()),
        }
    }
}

/// The alternatives of `pred` as an anchor of `rule`, if it is one: a
/// string equality or a regex on a field, not negated, or an `or` of them.
fn anchor_keys(rule: &Rule, pred: &Pred) -> Option<Vec<(FieldId, Key)>> {
    let plan = &rule.plan;
    let field = |slot: &u16| plan.fields.get(*slot as usize).copied();
    match pred {
        Pred::StrEq { slot, value, nocase, negate: false } => {
            let key = if *nocase { Key::Folded(value.clone()) } else { Key::Exact(value.clone()) };
            Some(vec![(field(slot)?, key)])
        }
        Pred::Regex { val: Expr::Field(slot), re, negate: false } => {
            Some(vec![(field(slot)?, Key::Pattern(re.as_str().to_string()))])
        }
        Pred::Any(items) => {
            let mut keys = Vec::new();
            for item in items.iter() {
                keys.extend(anchor_keys(rule, item)?);
            }
            Some(keys)
        }
        _ => None,
    }
}
