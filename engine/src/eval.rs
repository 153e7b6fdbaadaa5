//! The evaluator: a compiled rule over one event.
//!
//! YARA-L reads a repeated field as if the event were copied once per
//! element: the event matches when one copy satisfies every predicate
//! together. A field that the rule names once can be tested on its own
//! (some element satisfies that predicate), so only fields named more than
//! once, the rule's *correlated* fields, need the copies. The evaluator
//! enumerates those, and only when the event really holds two or more
//! values for them; everything else is a plain existential test over the
//! field's values, which needs no allocation.
//!
//! Under `not`, "some copy satisfies" turns into "some copy fails": a
//! predicate is evaluated for the truth value it must take (`want`), and
//! negation flips it.

use std::borrow::Cow;

use regex::Regex;

use crate::func::{self, Agg, Func, Ty};
use crate::lists::Matcher;
use crate::reader::{Event, FieldId};
use crate::syntax::ast::{ArithOp, CmpOp};
use crate::value::{OutcomeValue, Val};

/// A rule's own number for a field it reads, indexing [`Plan::fields`].
pub type Slot = u16;

/// The most copies of an event one rule looks at. Past it, the fields with
/// the most values are tested on their own, which can only make the rule
/// match more often, never less. Real events stay far below: it takes
/// three correlated fields of sixteen values each.
const MAX_ROWS: usize = 4096;

/// The most values a function call or arithmetic over repeated fields
/// produces; the rest are not looked at.
const MAX_VALUES: usize = 1024;

/// A value-producing expression.
#[derive(Debug)]
pub enum Expr {
    Field(Slot),
    /// The element a quantifier (`any`, `all`) is looking at.
    Elem,
    /// A repeated field taken whole, as `arrays.length` takes it.
    Array(Slot),
    Lit(Val<'static>),
    Placeholder(u16),
    Outcome(u16),
    /// An aggregation of the outcome being computed, by its index in
    /// [`Outcome::aggregates`].
    Agg(u16),
    Call(Func, Box<[Expr]>),
    /// The operation, and whether the result is a whole number.
    Arith(ArithOp, Box<Expr>, Box<Expr>, bool),
    Neg(Box<Expr>),
    If(Box<Pred>, Box<Expr>, Box<Expr>),
}

/// How a comparison reads its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Str,
    Num,
    Bool,
}

/// A compiled predicate.
#[derive(Debug)]
pub enum Pred {
    /// Every one holds. The compiler orders them cheapest first.
    All(Box<[Pred]>),
    Any(Box<[Pred]>),
    Not(Box<Pred>),
    True,
    False,
    /// The fast path for `$e.f = "text"` and `!=`: with `nocase`, `value`
    /// is in lower case.
    StrEq {
        slot: Slot,
        value: Box<str>,
        nocase: bool,
        negate: bool,
    },
    /// `val = /re/`, `re.regex(val, "re")`; `!=` is `negate`.
    Regex {
        val: Expr,
        re: Regex,
        negate: bool,
    },
    Cmp {
        lhs: Expr,
        op: CmpOp,
        rhs: Expr,
        how: How,
        nocase: bool,
    },
    /// `val in %list`, the list compiled into [`Plan::lists`].
    InList {
        val: Expr,
        list: u16,
    },
    /// `any $e.f ...` or `all $e.f ...`: `pred` reads the element as
    /// [`Expr::Elem`].
    Quant {
        all: bool,
        slot: Slot,
        pred: Box<Pred>,
    },
    /// A boolean expression, such as a function that returns one.
    Test(Expr),
}

impl Pred {
    /// Joins predicates with `and`, dropping those that always hold and
    /// putting cheap tests before expensive ones, so that a failing string
    /// test spares the regex.
    pub fn all(preds: Vec<Pred>) -> Pred {
        let mut preds: Vec<Pred> = preds.into_iter().filter(|p| !matches!(p, Pred::True)).collect();
        if preds.iter().any(|p| matches!(p, Pred::False)) {
            return Pred::False;
        }
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
            Pred::True | Pred::False => 0,
            Pred::StrEq { .. } => 1,
            Pred::Cmp { .. } | Pred::InList { .. } => 2,
            Pred::Regex { .. } | Pred::Test(_) | Pred::Quant { .. } => 4,
            Pred::Not(inner) => inner.cost(),
            Pred::All(ps) | Pred::Any(ps) => ps.iter().map(Pred::cost).max().unwrap_or(0).max(3),
        }
    }
}

/// One outcome variable: an expression over the event's first matching
/// copy, in which each aggregation stands for its value over all of them.
#[derive(Debug)]
pub struct Outcome {
    pub expr: Expr,
    pub aggregates: Vec<Aggregate>,
    pub ty: Ty,
}

/// `max(...)`, `array_distinct(...)` and the others.
#[derive(Debug)]
pub struct Aggregate {
    pub agg: Agg,
    pub expr: Expr,
    /// The type of `expr`, which gives the type of `array`'s elements.
    pub ty: Ty,
}

/// A compiled rule: what to read and what to test.
#[derive(Debug, Default)]
pub struct Plan {
    /// The engine-wide field each slot reads.
    pub fields: Vec<FieldId>,
    /// Slots named more than once, which need the event's copies.
    pub correlated: Vec<Slot>,
    pub pred: Option<Pred>,
    /// What each placeholder is bound to.
    pub placeholders: Vec<Expr>,
    pub outcomes: Vec<Outcome>,
    /// The condition, over outcome variables; `None` when it always holds.
    pub condition: Option<Pred>,
    pub lists: Vec<Matcher>,
}

/// What a matching rule reports.
pub struct Hit {
    pub variables: Vec<Vec<String>>,
    pub outcomes: Vec<OutcomeValue>,
}

/// Everything an expression may read.
#[derive(Clone, Copy)]
struct Ctx<'c, 'a> {
    event: &'c Event<'a>,
    plan: &'c Plan,
    /// Per slot: the element this copy of the event holds, for the
    /// correlated fields being enumerated.
    fixed: &'c [Option<Cow<'a, str>>],
    outcomes: &'c [OutcomeValue],
    /// The values of the aggregations of the outcome being computed.
    aggs: &'c [OutcomeValue],
    now: i64,
    elem: Option<&'c Val<'a>>,
}

impl Plan {
    /// Evaluates the rule over `event`; `now` is the evaluation time in
    /// Unix seconds, for `timestamp.current_seconds()`.
    pub fn evaluate<'a>(&self, event: &Event<'a>, now: i64) -> Option<Hit> {
        let pred = self.pred.as_ref()?;
        let mut ctx =
            Ctx { event, plan: self, fixed: &[], outcomes: &[], aggs: &[], now, elem: None };
        let enumerated = self.enumerated(event);
        let wants_rows = !self.placeholders.is_empty() || !self.outcomes.is_empty();
        let rows: Vec<Vec<Option<Cow<'a, str>>>> = if enumerated.is_empty() {
            if !holds(pred, true, &ctx) {
                return None;
            }
            vec![Vec::new()]
        } else {
            let rows = satisfying_rows(pred, &enumerated, self.fields.len(), &ctx, wants_rows);
            if rows.is_empty() {
                return None;
            }
            rows
        };
        let variables = self
            .placeholders
            .iter()
            .map(|source| {
                let mut values: Vec<String> = Vec::new();
                for row in &rows {
                    ctx.fixed = row;
                    eval(source, &ctx, &mut |v| {
                        let t = v.text();
                        if !values.iter().any(|x| *x == *t) {
                            values.push(t.into_owned());
                        }
                        false
                    });
                }
                values
            })
            .collect();
        let mut outcomes = Vec::with_capacity(self.outcomes.len());
        for outcome in &self.outcomes {
            let c = Ctx { fixed: &[], outcomes: &outcomes, ..ctx };
            let value = outcome_value(outcome, &rows, &c);
            outcomes.push(value);
        }
        if let Some(condition) = &self.condition {
            let c = Ctx { fixed: &[], outcomes: &outcomes, ..ctx };
            if !holds(condition, true, &c) {
                return None;
            }
        }
        Some(Hit { variables, outcomes })
    }

    /// The correlated slots that hold two or more values in `event`, with
    /// those values, as many as [`MAX_ROWS`] allows.
    fn enumerated<'a>(&self, event: &Event<'a>) -> Vec<(Slot, Vec<Cow<'a, str>>)> {
        let mut out: Vec<(Slot, Vec<Cow<'a, str>>)> = Vec::new();
        for &slot in &self.correlated {
            let mut count = 0;
            event.each(self.fields[slot as usize], &mut |_| {
                count += 1;
                count >= 2
            });
            if count < 2 {
                continue;
            }
            let mut values = Vec::new();
            event.each(self.fields[slot as usize], &mut |v| {
                values.push(v);
                false
            });
            out.push((slot, values));
        }
        // Keep the product of the counts under the bound, dropping the
        // largest first.
        out.sort_by_key(|(_, v)| v.len());
        let mut product = 1usize;
        let keep = out
            .iter()
            .take_while(|(_, v)| {
                product = product.saturating_mul(v.len());
                product <= MAX_ROWS
            })
            .count();
        out.truncate(keep);
        out
    }
}

/// Every assignment of the enumerated slots under which `pred` holds; only
/// the first unless `all` is asked for.
fn satisfying_rows<'a>(
    pred: &Pred,
    enumerated: &[(Slot, Vec<Cow<'a, str>>)],
    slots: usize,
    ctx: &Ctx<'_, 'a>,
    all: bool,
) -> Vec<Vec<Option<Cow<'a, str>>>> {
    let mut index = vec![0usize; enumerated.len()];
    let mut rows = Vec::new();
    loop {
        let mut fixed: Vec<Option<Cow<'a, str>>> = vec![None; slots];
        for ((slot, values), &i) in enumerated.iter().zip(&index) {
            fixed[*slot as usize] = Some(values[i].clone());
        }
        let c = Ctx { fixed: &fixed, ..*ctx };
        if holds(pred, true, &c) {
            rows.push(fixed);
            if !all {
                return rows;
            }
        }
        // The next assignment, odometer style.
        let mut k = 0;
        loop {
            let Some(i) = index.get_mut(k) else { return rows };
            *i += 1;
            if *i < enumerated[k].1.len() {
                break;
            }
            *i = 0;
            k += 1;
        }
    }
}

impl<'a> Ctx<'_, 'a> {
    fn field(&self, slot: Slot, f: &mut dyn FnMut(Val<'a>) -> bool) -> bool {
        if let Some(Some(v)) = self.fixed.get(slot as usize) {
            return f(Val::Str(v.clone()));
        }
        let mut seen = false;
        let hit = self.event.each(self.plan.fields[slot as usize], &mut |v| {
            seen = true;
            f(Val::Str(v))
        });
        if seen {
            hit
        } else {
            f(Val::str(""))
        }
    }
}

/// Whether some copy of the event gives `pred` the truth value `want`.
fn holds(pred: &Pred, want: bool, ctx: &Ctx<'_, '_>) -> bool {
    match pred {
        Pred::True => want,
        Pred::False => !want,
        Pred::Not(inner) => holds(inner, !want, ctx),
        Pred::All(ps) if want => ps.iter().all(|p| holds(p, true, ctx)),
        Pred::All(ps) => ps.iter().any(|p| holds(p, false, ctx)),
        Pred::Any(ps) if want => ps.iter().any(|p| holds(p, true, ctx)),
        Pred::Any(ps) => ps.iter().all(|p| holds(p, false, ctx)),
        Pred::StrEq { slot, value, nocase, negate } => {
            ctx.field(*slot, &mut |v| (str_eq(&v.text(), value, *nocase) != *negate) == want)
        }
        Pred::Regex { val, re, negate } => {
            eval(val, ctx, &mut |v| (re.is_match(&v.text()) != *negate) == want)
        }
        Pred::Cmp { lhs, op, rhs, how, nocase } => {
            // Most comparisons have a literal on one side: no list needed.
            if let Expr::Lit(r) = rhs {
                return eval(lhs, ctx, &mut |l| compare(&l, *op, r, *how, *nocase) == want);
            }
            if let Expr::Lit(l) = lhs {
                return eval(rhs, ctx, &mut |r| compare(l, *op, &r, *how, *nocase) == want);
            }
            let mut rights: Vec<Val> = Vec::new();
            eval(rhs, ctx, &mut |v| {
                rights.push(v);
                rights.len() >= MAX_VALUES
            });
            eval(lhs, ctx, &mut |l| {
                rights.iter().any(|r| compare(&l, *op, r, *how, *nocase) == want)
            })
        }
        Pred::InList { val, list } => {
            let Some(matcher) = ctx.plan.lists.get(*list as usize) else { return !want };
            eval(val, ctx, &mut |v| matcher.contains(&v.text()) == want)
        }
        Pred::Quant { all, slot, pred } => {
            let mut values = Vec::new();
            ctx.field(*slot, &mut |v| {
                values.push(v);
                false
            });
            let test = |v: &Val<'_>| {
                let c = Ctx { elem: Some(v), ..*ctx };
                holds(pred, true, &c)
            };
            let result = if *all { values.iter().all(test) } else { values.iter().any(test) };
            result == want
        }
        Pred::Test(expr) => eval(expr, ctx, &mut |v| v.truthy() == want),
    }
}

/// Calls `f` with each value `expr` can take in this copy of the event,
/// until it returns `true`; says whether it did.
fn eval<'a>(expr: &Expr, ctx: &Ctx<'_, 'a>, f: &mut dyn FnMut(Val<'a>) -> bool) -> bool {
    match expr {
        Expr::Field(slot) => ctx.field(*slot, f),
        Expr::Elem => f(ctx.elem.cloned().unwrap_or(Val::str(""))),
        Expr::Array(slot) => {
            let mut items = Vec::new();
            let field = ctx.plan.fields[*slot as usize];
            ctx.event.each(field, &mut |v| {
                items.push(Val::Str(v));
                false
            });
            f(Val::List(items))
        }
        Expr::Lit(v) => f(v.clone()),
        Expr::Placeholder(p) => match ctx.plan.placeholders.get(*p as usize) {
            Some(source) => eval(source, ctx, f),
            None => f(Val::str("")),
        },
        Expr::Outcome(i) => match ctx.outcomes.get(*i as usize) {
            Some(v) => f(v.as_val().into_owned()),
            None => f(Val::Int(0)),
        },
        Expr::Agg(i) => match ctx.aggs.get(*i as usize) {
            Some(v) => f(v.as_val().into_owned()),
            None => f(Val::Int(0)),
        },
        Expr::Call(func, args) => {
            let mut lists: Vec<Vec<Val<'a>>> = Vec::with_capacity(args.len());
            for arg in args.iter() {
                let mut values = Vec::new();
                eval(arg, ctx, &mut |v| {
                    values.push(v);
                    values.len() >= MAX_VALUES
                });
                lists.push(values);
            }
            product(&lists, &mut |args| f(func::apply(func, args, ctx.now)))
        }
        Expr::Arith(op, lhs, rhs, int) => {
            let mut rights = Vec::new();
            eval(rhs, ctx, &mut |v| {
                rights.push(v);
                rights.len() >= MAX_VALUES
            });
            eval(lhs, ctx, &mut |l| rights.iter().any(|r| f(arith(*op, &l, r, *int))))
        }
        Expr::Neg(inner) => eval(inner, ctx, &mut |v| {
            f(match v {
                Val::Int(i) => Val::Int(i.wrapping_neg()),
                other => Val::Float(-other.number().unwrap_or(0.0)),
            })
        }),
        Expr::If(cond, then, otherwise) => {
            if holds(cond, true, ctx) {
                eval(then, ctx, f)
            } else {
                eval(otherwise, ctx, f)
            }
        }
    }
}

/// Calls `f` with every combination of one value from each list.
fn product<'a>(lists: &[Vec<Val<'a>>], f: &mut dyn FnMut(&[Val<'a>]) -> bool) -> bool {
    let mut index = vec![0usize; lists.len()];
    if lists.iter().any(Vec::is_empty) {
        return false;
    }
    let mut args: Vec<Val<'a>> = lists.iter().map(|l| l[0].clone()).collect();
    let mut calls = 0;
    loop {
        if f(&args) {
            return true;
        }
        calls += 1;
        if calls >= MAX_VALUES {
            return false;
        }
        let mut k = 0;
        loop {
            let Some(i) = index.get_mut(k) else { return false };
            *i += 1;
            if *i < lists[k].len() {
                args[k] = lists[k][*i].clone();
                break;
            }
            *i = 0;
            args[k] = lists[k][0].clone();
            k += 1;
        }
    }
}

fn arith<'a>(op: ArithOp, l: &Val<'_>, r: &Val<'_>, int: bool) -> Val<'a> {
    if int {
        if let (Some(a), Some(b)) = (l.integer(), r.integer()) {
            let v = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div => a.checked_div(b),
            };
            return v.map_or(Val::Int(0), Val::Int);
        }
    }
    let (a, b) = (l.number().unwrap_or(0.0), r.number().unwrap_or(0.0));
    let v = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div if b == 0.0 => 0.0,
        ArithOp::Div => a / b,
    };
    if int {
        Val::Int(v as i64)
    } else {
        Val::Float(v)
    }
}

fn compare(l: &Val<'_>, op: CmpOp, r: &Val<'_>, how: How, nocase: bool) -> bool {
    use std::cmp::Ordering;
    let ord = match how {
        How::Num => {
            let exact = match (l, r) {
                (Val::Float(_), _) | (_, Val::Float(_)) => None,
                _ => l.integer().zip(r.integer()).filter(|_| is_integral(l) && is_integral(r)),
            };
            match exact {
                Some((a, b)) => a.cmp(&b),
                None => match (l.number(), r.number()) {
                    (Some(a), Some(b)) => match a.partial_cmp(&b) {
                        Some(o) => o,
                        None => return false,
                    },
                    _ => return false,
                },
            }
        }
        How::Bool => l.truthy().cmp(&r.truthy()),
        How::Str => {
            let (a, b) = (l.text(), r.text());
            if nocase {
                if str_eq(&a, &b.to_lowercase(), true) {
                    Ordering::Equal
                } else {
                    a.to_lowercase().cmp(&b.to_lowercase())
                }
            } else {
                a.cmp(&b)
            }
        }
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

fn is_integral(v: &Val<'_>) -> bool {
    match v {
        Val::Int(_) | Val::Bool(_) => true,
        Val::Str(s) => {
            let s = s.trim();
            s.is_empty() || s.trim_start_matches(['-', '+']).bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
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

/// Evaluates an outcome over the copies of the event that matched.
fn outcome_value<'a>(
    outcome: &Outcome,
    rows: &[Vec<Option<Cow<'a, str>>>],
    ctx: &Ctx<'_, 'a>,
) -> OutcomeValue {
    let aggs: Vec<OutcomeValue> =
        outcome.aggregates.iter().map(|a| aggregate(a, rows, ctx)).collect();
    if let (Expr::Agg(0), [_]) = (&outcome.expr, aggs.as_slice()) {
        return aggs.into_iter().next().expect("one aggregate");
    }
    let mut first = None;
    if let Some(row) = rows.first() {
        let c = Ctx { fixed: row, aggs: &aggs, ..*ctx };
        eval(&outcome.expr, &c, &mut |v| {
            first = Some(v.into_owned());
            true
        });
    }
    match (first, outcome.ty) {
        (None, Ty::Int) => OutcomeValue::Int(0),
        (None, Ty::Float) => OutcomeValue::Float(0.0),
        (None, Ty::Bool) => OutcomeValue::Bool(false),
        (None, _) => OutcomeValue::Text(String::new()),
        (Some(v), Ty::Int) => OutcomeValue::Int(v.integer().unwrap_or(0)),
        (Some(v), Ty::Float) => OutcomeValue::Float(v.number().unwrap_or(0.0)),
        (Some(v), Ty::Bool) => OutcomeValue::Bool(v.truthy()),
        (Some(Val::List(items)), _) => {
            OutcomeValue::Texts(items.iter().map(|v| v.text().into_owned()).collect())
        }
        (Some(v), _) => OutcomeValue::Text(v.text().into_owned()),
    }
}

/// One aggregation over every matching copy of the event. Empty strings,
/// the zero value of missing fields, are neither counted nor collected.
fn aggregate<'a>(
    a: &Aggregate,
    rows: &[Vec<Option<Cow<'a, str>>>],
    ctx: &Ctx<'_, 'a>,
) -> OutcomeValue {
    let mut values: Vec<Val<'a>> = Vec::new();
    for row in rows {
        let c = Ctx { fixed: row, ..*ctx };
        eval(&a.expr, &c, &mut |v| {
            match v {
                Val::List(items) => values.extend(items),
                v => values.push(v),
            }
            values.len() >= MAX_VALUES
        });
    }
    let numbers: Vec<f64> = values.iter().filter_map(Val::number).collect();
    let present: Vec<&Val<'a>> =
        values.iter().filter(|v| !matches!(v, Val::Str(s) if s.is_empty())).collect();
    let int = a.ty == Ty::Int || a.ty == Ty::Bool;
    let number = |x: f64| if int { OutcomeValue::Int(x as i64) } else { OutcomeValue::Float(x) };
    match a.agg {
        Agg::Count => OutcomeValue::Int(present.len() as i64),
        Agg::CountDistinct => OutcomeValue::Int(distinct_texts(present.into_iter()).len() as i64),
        Agg::Sum => number(numbers.iter().sum()),
        Agg::Max => number(numbers.into_iter().reduce(f64::max).unwrap_or(0.0)),
        Agg::Min => number(numbers.into_iter().reduce(f64::min).unwrap_or(0.0)),
        Agg::Array | Agg::ArrayDistinct => {
            let texts: Vec<String> = if a.agg == Agg::ArrayDistinct {
                distinct_texts(present.into_iter())
            } else {
                present.iter().map(|v| v.text().into_owned()).collect()
            };
            match a.ty {
                Ty::Int => {
                    OutcomeValue::Ints(texts.iter().filter_map(|t| Val::str(t).integer()).collect())
                }
                Ty::Float => OutcomeValue::Floats(
                    texts.iter().filter_map(|t| Val::str(t).number()).collect(),
                ),
                _ => OutcomeValue::Texts(texts),
            }
        }
    }
}

fn distinct_texts<'v, 'a: 'v>(values: impl Iterator<Item = &'v Val<'a>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let t = v.text();
        if !out.iter().any(|x| *x == *t) {
            out.push(t.into_owned());
        }
    }
    out
}
