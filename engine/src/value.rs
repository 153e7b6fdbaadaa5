//! Values as expressions produce them, and the values of outcome variables.
//!
//! Event fields arrive as text (JSON numbers keep their text too); a value
//! is read as a number or a boolean only where the expression needs one,
//! which is how YARA-L compares a port with `1024` or a string field with
//! `"1024"`.

use std::borrow::Cow;
use std::fmt;

/// A value during evaluation. Text borrows from the event where it can.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A repeated field taken whole, or what `strings.split` returns.
    List(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    pub fn str(s: &'a str) -> Val<'a> {
        Val::Str(Cow::Borrowed(s))
    }

    /// The value as text, as `strings.concat` and string comparisons see
    /// it. Lists give their first element.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Int(i) => Cow::Owned(i.to_string()),
            Val::Float(f) => Cow::Owned(float_text(*f)),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Val::List(items) => items.first().map_or(Cow::Borrowed(""), |v| v.text()),
        }
    }

    /// The value as a number: the empty string is the zero value, and only
    /// decimal notation counts (Rust's parser would also take `inf`).
    pub fn number(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Str(s) => number(s),
            Val::List(items) => items.first().and_then(Val::number),
        }
    }

    /// The value as a whole number, without going through `f64` when it is
    /// one already, so that large integers compare exactly.
    pub fn integer(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Str(s) => s.trim().parse().ok().or_else(|| number(s).map(|f| f as i64)),
            other => other.number().map(|f| f as i64),
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Str(s) => s.eq_ignore_ascii_case("true"),
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::List(items) => !items.is_empty(),
        }
    }

    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Int(i) => Val::Int(i),
            Val::Float(f) => Val::Float(f),
            Val::Bool(b) => Val::Bool(b),
            Val::List(items) => Val::List(items.into_iter().map(Val::into_owned).collect()),
        }
    }
}

/// A field's text as a number; see [`Val::number`].
pub fn number(v: &str) -> Option<f64> {
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

/// A float as YARA-L prints it: integral values without a fraction.
pub fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The value of an outcome variable for one detection.
#[derive(Clone, Debug, PartialEq)]
pub enum OutcomeValue {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Texts(Vec<String>),
}

impl fmt::Display for OutcomeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeValue::Int(i) => write!(f, "{i}"),
            OutcomeValue::Float(x) => f.write_str(&float_text(*x)),
            OutcomeValue::Text(t) => f.write_str(t),
            OutcomeValue::Bool(b) => write!(f, "{b}"),
            OutcomeValue::Ints(v) => write!(f, "{v:?}"),
            OutcomeValue::Floats(v) => write!(f, "{v:?}"),
            OutcomeValue::Texts(v) => write!(f, "{v:?}"),
        }
    }
}

impl OutcomeValue {
    /// The value as an expression sees it when a condition or a later
    /// outcome reads the variable.
    pub fn as_val(&self) -> Val<'_> {
        match self {
            OutcomeValue::Int(i) => Val::Int(*i),
            OutcomeValue::Float(f) => Val::Float(*f),
            OutcomeValue::Text(t) => Val::str(t),
            OutcomeValue::Bool(b) => Val::Bool(*b),
            OutcomeValue::Ints(v) => Val::List(v.iter().map(|&i| Val::Int(i)).collect()),
            OutcomeValue::Floats(v) => Val::List(v.iter().map(|&f| Val::Float(f)).collect()),
            OutcomeValue::Texts(v) => Val::List(v.iter().map(|t| Val::str(t)).collect()),
        }
    }
}
