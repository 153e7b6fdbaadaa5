//! The evaluator: a compiled predicate over one event's fields.
//!
//! Every comparison follows YARA-L's reading of fields: a missing field has
//! its zero value (the empty string, or 0 for numbers), and a comparison on
//! a repeated field holds if it holds for any element.

use regex::Regex;

use crate::reader::{Event, FieldId};
use crate::syntax::ast::CmpOp;

/// A numeric comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl From<CmpOp> for NumOp {
    fn from(op: CmpOp) -> NumOp {
        match op {
            CmpOp::Eq => NumOp::Eq,
            CmpOp::Ne => NumOp::Ne,
            CmpOp::Lt => NumOp::Lt,
            CmpOp::Le => NumOp::Le,
            CmpOp::Gt => NumOp::Gt,
            CmpOp::Ge => NumOp::Ge,
        }
    }
}

impl NumOp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            NumOp::Eq => a == b,
            NumOp::Ne => a != b,
            NumOp::Lt => a < b,
            NumOp::Le => a <= b,
            NumOp::Gt => a > b,
            NumOp::Ge => a >= b,
        }
    }
}

/// A compiled predicate.
#[derive(Debug)]
pub enum Pred {
    /// Every one holds. The compiler orders them cheapest first.
    All(Box<[Pred]>),
    Any(Box<[Pred]>),
    Not(Box<Pred>),
    /// The field equals `value` (or differs from it, with `negate`).
    /// With `nocase`, `value` is stored in lower case.
    StrEq {
        field: FieldId,
        value: Box<str>,
        nocase: bool,
        negate: bool,
    },
    Num {
        field: FieldId,
        op: NumOp,
        value: f64,
    },
    Regex {
        field: FieldId,
        re: Regex,
        negate: bool,
    },
    /// Always holds: what a placeholder assignment leaves behind.
    True,
}

impl Pred {
    pub(crate) fn str_eq(field: FieldId, value: &str, nocase: bool, negate: bool) -> Pred {
        let value = if nocase { value.to_lowercase() } else { value.to_string() };
        Pred::StrEq { field, value: value.into(), nocase, negate }
    }

    /// Joins predicates with `and`, dropping those that always hold and
    /// putting cheap tests before regexes, so that a failing string test
    /// spares the regex.
    pub(crate) fn all(preds: Vec<Pred>) -> Pred {
        let mut preds: Vec<Pred> = preds.into_iter().filter(|p| !matches!(p, Pred::True)).collect();
        preds.sort_by_key(Pred::cost);
        match preds.len() {
            0 => Pred::True,
            1 => preds.pop().expect("one element"),
            _ => Pred::All(preds.into()),
        }
    }

    /// A rough rank of evaluation cost. The sort is stable, so predicates
    /// of one rank keep their written order.
    fn cost(&self) -> u8 {
        match self {
            Pred::True => 0,
            Pred::StrEq { .. } | Pred::Num { .. } => 1,
            Pred::Regex { .. } => 3,
            Pred::Not(inner) => inner.cost(),
            Pred::All(ps) | Pred::Any(ps) => ps.iter().map(Pred::cost).max().unwrap_or(0).max(2),
        }
    }

    /// Whether the predicate holds for `event`.
    pub fn holds(&self, event: &Event<'_>) -> bool {
        match self {
            Pred::All(ps) => ps.iter().all(|p| p.holds(event)),
            Pred::Any(ps) => ps.iter().any(|p| p.holds(event)),
            Pred::Not(p) => !p.holds(event),
            Pred::StrEq { field, value, nocase, negate } => {
                event.any_value(*field, |v| str_eq(v, value, *nocase) != *negate)
            }
            Pred::Num { field, op, value } => {
                event.any_value(*field, |v| number(v).is_some_and(|v| op.holds(v, *value)))
            }
            Pred::Regex { field, re, negate } => {
                event.any_value(*field, |v| re.is_match(v) != *negate)
            }
            Pred::True => true,
        }
    }
}

/// A field's text as a number: the empty string is the zero value, and
/// only decimal notation counts (Rust's parser would also take `inf`).
fn number(v: &str) -> Option<f64> {
    let v = v.trim();
    if v.is_empty() {
        return Some(0.0);
    }
    let numeric =
        v.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !numeric || !v.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `lower` is already in lower case when `nocase` is set.
fn str_eq(v: &str, lower: &str, nocase: bool) -> bool {
    if !nocase {
        return v == lower;
    }
    if v.is_ascii() {
        return v.eq_ignore_ascii_case(lower);
    }
    v.to_lowercase() == lower
}
