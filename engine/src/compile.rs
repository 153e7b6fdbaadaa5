//! The compiler: a rule's syntax tree to an evaluation plan.
//!
//! It resolves field paths to the reader's field numbers and gives every
//! expression a type, compiles every regex and reference list once, binds
//! placeholders, and decides whether the rule can run on one event at a
//! time. A rule that joins several events, or counts events across a
//! window, is still checked whole but gets no plan: it is reported as
//! needing windowed evaluation. A rule either compiles whole or yields all
//! of its problems; [`crate::check`] adds warnings about what compiles but
//! cannot be what the author meant.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, Span};
use crate::eval::{Aggregate, Expr, How, Outcome, Plan, Pred, Slot};
use crate::func::{self, Agg, Func, Param, Trim, Ty, Tz};
use crate::lists::{Matcher, RefList};
use crate::re2;
use crate::reader::{parse_name, write_name, FieldId, Step};
use crate::syntax::ast::{self, ArithOp, CmpOp, FieldRef, ListKind, Literal, PathSeg};
use crate::udm::{self, Kind};
use crate::value::Val;

/// A meta value, as written.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// The name of the source the rule came from.
    pub source_name: String,
    pub meta: Vec<(String, MetaValue)>,
    /// Placeholder names without `$`, in order of assignment.
    pub placeholders: Vec<String>,
    /// Outcome variable names without `$`, in order.
    pub outcome_names: Vec<String>,
    /// Why the rule cannot run on one event at a time, if it cannot. Such a
    /// rule is loaded and checked but never matches.
    pub windowed: Option<String>,
    /// What `tripline check` warns about.
    pub warnings: Vec<Diagnostic>,
    pub(crate) plan: Plan,
}

impl Rule {
    /// The text of meta key `key`, if it is set to a string.
    pub fn meta_text(&self, key: &str) -> Option<&str> {
        self.meta.iter().find_map(|(k, v)| match v {
            MetaValue::Text(t) if k == key => Some(t.as_str()),
            _ => None,
        })
    }
}

/// The UDM fields that compiled rules read, numbered in order of first use.
#[derive(Debug, Default)]
pub struct FieldTable {
    names: Vec<String>,
    ids: HashMap<String, FieldId>,
}

impl FieldTable {
    fn intern(&mut self, name: String) -> FieldId {
        if let Some(&id) = self.ids.get(&name) {
            return id;
        }
        let id = self.names.len() as FieldId;
        self.ids.insert(name.clone(), id);
        self.names.push(name);
        id
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// What a rule is compiled against.
#[derive(Clone, Copy, Debug)]
pub struct Options<'l> {
    /// The reference lists the host gave, and data table columns as lists
    /// named `table.column`.
    pub lists: &'l [RefList],
    /// A list not given is a warning and reads as empty, rather than an
    /// error: for checking rules without their data.
    pub absent_lists_ok: bool,
}

/// Compiles one parsed rule. Field names go into `fields`, shared by every
/// rule of the set.
pub fn compile(
    rule: &ast::Rule,
    source_name: &str,
    fields: &mut FieldTable,
    options: &Options<'_>,
) -> Result<Rule, Vec<Diagnostic>> {
    let windowed = windowed_reason(rule);
    let mut local = FieldTable::default();
    let table = if windowed.is_some() { &mut local } else { fields };
    let mut cx = Compiler::new(table, options, windowed.is_some());
    let plan = cx.rule(rule);
    let warnings = std::mem::take(&mut cx.warnings);
    let mut diags = cx.diags;
    for d in diags.iter_mut() {
        d.rule.get_or_insert_with(|| rule.name.clone());
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let meta = rule
        .meta
        .iter()
        .map(|m| {
            let value = match &m.value {
                Literal::Str(s) => MetaValue::Text(s.clone()),
                Literal::Int(i) => MetaValue::Integer(*i),
                Literal::Float(f) => MetaValue::Text(f.to_string()),
                Literal::Bool(b) => MetaValue::Boolean(*b),
            };
            (m.key.clone(), value)
        })
        .collect();
    let mut warnings = warnings;
    warnings.extend(crate::check::check(rule));
    for w in &mut warnings {
        w.rule.get_or_insert_with(|| rule.name.clone());
    }
    warnings.sort_by_key(|w| w.span.start);
    Ok(Rule {
        name: rule.name.clone(),
        source_name: source_name.to_string(),
        meta,
        placeholders: cx.placeholders.iter().map(|p| p.name.clone()).collect(),
        outcome_names: cx.outcome_names,
        windowed,
        warnings,
        plan: if cx.check_only { Plan::default() } else { plan },
    })
}

/// Why a rule needs more than one event to decide, if it does: several
/// event variables, a count of events, or a condition on an aggregate over
/// a match window.
fn windowed_reason(rule: &ast::Rule) -> Option<String> {
    let mut vars: Vec<String> = Vec::new();
    if let Some(events) = &rule.events {
        for e in &events.body {
            event_vars(e, &mut vars);
        }
    }
    if vars.len() > 1 {
        let names: Vec<String> = vars.iter().map(|v| format!("`${v}`")).collect();
        return Some(format!("it joins {} event variables: {}", vars.len(), names.join(", ")));
    }
    let condition = &rule.condition.as_ref()?.body;
    let mut reason = None;
    visit(condition, &mut |e| match e {
        ast::Expr::Compare { lhs, op, rhs, .. } => {
            let count = |x: &ast::Expr| match x {
                ast::Expr::Literal(Literal::Int(n), _) => Some(*n),
                _ => None,
            };
            let one_event = match (&**lhs, &**rhs) {
                (ast::Expr::Count(..), r) => count(r).map(|n| cmp_int(1, *op, n)),
                (l, ast::Expr::Count(..)) => count(l).map(|n| cmp_int(n, *op, 1)),
                _ => None,
            };
            if one_event == Some(false) {
                reason.get_or_insert_with(|| {
                    "its condition counts events, and one event does not satisfy it".to_string()
                });
            }
        }
        ast::Expr::Not(inner, _) if matches!(**inner, ast::Expr::Var(..)) => {
            reason.get_or_insert_with(|| "its condition requires an event to be absent".into());
        }
        ast::Expr::Var(name, _) if rule.match_section.is_some() => {
            let aggregate = rule
                .outcome
                .as_ref()
                .and_then(|o| o.body.iter().find(|a| a.var == *name && counts_events(&a.value)));
            if aggregate.is_some() {
                reason.get_or_insert_with(|| {
                    format!("its condition tests `${name}`, a count or sum over the match window")
                });
            }
        }
        _ => {}
    });
    reason
}

fn cmp_int(a: i64, op: CmpOp, b: i64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// Whether an outcome expression aggregates in a way that grows with the
/// number of events in a window.
fn counts_events(e: &ast::Expr) -> bool {
    let mut found = false;
    visit(e, &mut |x| {
        if let ast::Expr::Call { name, .. } = x {
            found |= matches!(
                name.as_str(),
                "count" | "count_distinct" | "sum" | "array" | "array_distinct"
            );
        }
    });
    found
}

fn event_vars(e: &ast::Expr, out: &mut Vec<String>) {
    visit(e, &mut |x| {
        let var = match x {
            ast::Expr::Field(f) => &f.var,
            ast::Expr::Quantified { field, .. } => &field.var,
            _ => return,
        };
        if !out.contains(var) {
            out.push(var.clone());
        }
    });
}

/// Calls `f` on `e` and every expression inside it.
pub(crate) fn visit(e: &ast::Expr, f: &mut dyn FnMut(&ast::Expr)) {
    f(e);
    match e {
        ast::Expr::And(items, _) | ast::Expr::Or(items, _) => {
            items.iter().for_each(|i| visit(i, f))
        }
        ast::Expr::Call { args, .. } => args.iter().for_each(|i| visit(i, f)),
        ast::Expr::Not(inner, _) | ast::Expr::Neg(inner, _) => visit(inner, f),
        ast::Expr::Compare { lhs, rhs, .. } | ast::Expr::Arith { lhs, rhs, .. } => {
            visit(lhs, f);
            visit(rhs, f);
        }
        ast::Expr::InList { value, .. } => visit(value, f),
        _ => {}
    }
}

/// The field path of a reference as the reader names it.
pub(crate) fn field_name(f: &FieldRef) -> String {
    write_name(&steps(f))
}

fn steps(f: &FieldRef) -> Vec<Step> {
    f.path
        .iter()
        .map(|s| match s {
            PathSeg::Name(n) => Step::Name(n.clone()),
            PathSeg::Key(k) => Step::Key(k.clone()),
            PathSeg::Index(i) => Step::Index(*i),
        })
        .collect()
}

struct Placeholder {
    name: String,
    /// Where it is assigned: the span of the comparison that binds it.
    binding: Span,
    /// The compiled expression it is bound to.
    source: Expr,
    ty: Ty,
    /// Bound straight to a field, so that match variables filter on it.
    from_field: bool,
}

/// Where an expression is being compiled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Events,
    Outcome,
    Condition,
}

struct Compiler<'f, 'l> {
    fields: &'f mut FieldTable,
    lists: &'l [RefList],
    absent_lists_ok: bool,
    /// Checking only: the rule needs windowed evaluation, so expressions
    /// over several events are fine and no plan is kept.
    check_only: bool,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    event_vars: Vec<String>,
    slot_names: Vec<String>,
    plan: Plan,
    placeholders: Vec<Placeholder>,
    /// Placeholders seen but not yet compiled, with their binding span.
    pending: Vec<(String, Span)>,
    outcome_names: Vec<String>,
    outcome_tys: Vec<Ty>,
    list_keys: Vec<(String, ListKind, bool)>,
    section: Section,
    /// The aggregates of the outcome being compiled.
    aggregates: Vec<Aggregate>,
}

impl<'f, 'l> Compiler<'f, 'l> {
    fn new(fields: &'f mut FieldTable, options: &Options<'l>, check_only: bool) -> Self {
        Compiler {
            fields,
            lists: options.lists,
            absent_lists_ok: options.absent_lists_ok,
            check_only,
            diags: Vec::new(),
            warnings: Vec::new(),
            event_vars: Vec::new(),
            slot_names: Vec::new(),
            plan: Plan::default(),
            placeholders: Vec::new(),
            pending: Vec::new(),
            outcome_names: Vec::new(),
            outcome_tys: Vec::new(),
            list_keys: Vec::new(),
            section: Section::Events,
            aggregates: Vec::new(),
        }
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, span, message));
    }

    fn warn(&mut self, code: Code, span: Span, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(code, span, message));
    }

    fn unsupported(&mut self, span: Span, what: &str) {
        self.error(Code::Unsupported, span, format!("{what} is not supported"));
    }

    fn rule(&mut self, rule: &ast::Rule) -> Plan {
        let events = rule.events.as_ref().expect("the parser requires an events section");
        for e in &events.body {
            event_vars(e, &mut self.event_vars);
        }
        if self.event_vars.is_empty() {
            self.error(
                Code::Expected,
                events.keyword,
                "expected at least one event field such as `$e.metadata.event_type` in `events`",
            );
        }
        // Placeholders first, so that every use knows what it stands for.
        let mut conjuncts = Vec::new();
        for e in &events.body {
            flatten_and(e, &mut conjuncts);
        }
        for e in &conjuncts {
            if let Some((name, span)) = self.binding(e) {
                if !self.pending.iter().any(|(n, _)| *n == name) {
                    self.pending.push((name, span));
                }
            }
        }
        for (name, span) in self.pending.clone() {
            let source = conjuncts.iter().find(|e| e.span() == span).copied();
            if let Some(ast::Expr::Compare { lhs, rhs, .. }) = source {
                let other = if matches!(**lhs, ast::Expr::Var(..)) { rhs } else { lhs };
                let from_field = matches!(**other, ast::Expr::Field(_));
                let (source, ty) = self.expr(other).unwrap_or((Expr::Lit(Val::str("")), Ty::Str));
                self.placeholders.push(Placeholder { name, binding: span, source, ty, from_field });
            }
        }
        self.pending.clear();
        let mut preds: Vec<Pred> = events.body.iter().map(|e| self.pred(e, false)).collect();

        let allow_zero = self.options(rule);
        if let Some(m) = &rule.match_section {
            for (var, span) in &m.body.vars {
                let Some(i) = self.placeholders.iter().position(|p| p.name == *var) else {
                    self.error(
                        Code::BadPlaceholder,
                        *span,
                        format!("expected `${var}` to be a placeholder assigned in `events`"),
                    );
                    continue;
                };
                // Match variables never group on a zero value, unless the
                // rule allows it.
                let p = &self.placeholders[i];
                if !allow_zero && p.from_field {
                    let (how, zero) = match p.ty {
                        Ty::Int | Ty::Float => (How::Num, Val::Int(0)),
                        _ => (How::Str, Val::str("")),
                    };
                    let lhs = Expr::Placeholder(i as u16);
                    let rhs = Expr::Lit(zero);
                    preds.push(Pred::Cmp { lhs, op: CmpOp::Ne, rhs, how, nocase: false });
                }
            }
            if let Some((_, anchor, span)) = &m.body.sliding {
                if !self.event_vars.contains(anchor) {
                    self.error(
                        Code::UnknownVariable,
                        *span,
                        format!(
                            "expected an event variable after `before` or `after`, \
                             found `${anchor}`"
                        ),
                    );
                }
            }
        }
        if let Some(outcome) = &rule.outcome {
            self.section = Section::Outcome;
            for assign in &outcome.body {
                self.outcome(assign);
            }
        }
        let condition = rule.condition.as_ref().expect("the parser requires a condition section");
        self.section = Section::Condition;
        let condition = self.condition(&condition.body);
        let mut plan = std::mem::take(&mut self.plan);
        plan.pred = Some(Pred::all(preds));
        plan.condition = match condition {
            Pred::True => None,
            other => Some(other),
        };
        plan.placeholders = self
            .placeholders
            .iter_mut()
            .map(|p| std::mem::replace(&mut p.source, Expr::Lit(Val::str(""))))
            .collect();
        plan.correlated = correlated(&plan);
        plan
    }

    /// The options; returns `allow_zero_values`.
    fn options(&mut self, rule: &ast::Rule) -> bool {
        let mut allow_zero = false;
        for opt in rule.options.iter().flat_map(|o| &o.body) {
            match (opt.key.as_str(), &opt.value) {
                ("allow_zero_values", Literal::Bool(b)) => allow_zero = *b,
                ("allow_zero_values", _) => self.error(
                    Code::BadOption,
                    opt.span,
                    "expected `allow_zero_values = true` or `false`",
                ),
                (key, _) => self.error(
                    Code::BadOption,
                    opt.span,
                    format!("expected a known option such as `allow_zero_values`, found `{key}`"),
                ),
            }
        }
        allow_zero
    }

    /// If `e` assigns a placeholder (`$p = expr` or `expr = $p`), its name
    /// and the span of the assignment.
    fn binding(&self, e: &ast::Expr) -> Option<(String, Span)> {
        let ast::Expr::Compare { lhs, op: CmpOp::Eq, rhs, span, .. } = e else { return None };
        let is_value = |x: &ast::Expr| {
            matches!(x, ast::Expr::Field(_) | ast::Expr::Call { .. } | ast::Expr::Arith { .. })
        };
        match (&**lhs, &**rhs) {
            (ast::Expr::Var(name, _), other) | (other, ast::Expr::Var(name, _))
                if is_value(other) && !self.event_vars.contains(name) =>
            {
                Some((name.clone(), *span))
            }
            _ => None,
        }
    }

    fn field(&mut self, f: &FieldRef) -> Option<(Slot, Ty)> {
        if !self.event_vars.contains(&f.var) {
            let known = self.event_vars.first().cloned().unwrap_or_else(|| "e".into());
            self.error(
                Code::UnknownVariable,
                f.span,
                format!("expected an event variable such as `${known}`, found `${}`", f.var),
            );
            return None;
        }
        if f.path.is_empty() {
            self.error(Code::Expected, f.span, "expected a field path after the event variable");
            return None;
        }
        let steps = steps(f);
        let name = write_name(&steps);
        let ty = self.field_type(f, &steps);
        let slot = match self.slot_names.iter().position(|n| *n == name) {
            Some(slot) => slot,
            None => {
                self.slot_names.push(name.clone());
                let id = self.fields.intern(name);
                self.plan.fields.push(id);
                self.slot_names.len() - 1
            }
        };
        Some((slot as Slot, ty))
    }

    /// The type of a field from the UDM tree, warning about paths that do
    /// not exist. Entity-graph paths (`$g.graph...`) are not checked.
    fn field_type(&mut self, f: &FieldRef, steps: &[Step]) -> Ty {
        if matches!(steps.first(), Some(Step::Name(n)) if n == "graph") {
            return Ty::Str;
        }
        match udm::lookup(steps) {
            Ok(leaf) => match leaf.kind {
                Kind::Int => Ty::Int,
                Kind::Float => Ty::Float,
                Kind::Bool => Ty::Bool,
                _ => Ty::Str,
            },
            Err(at) => {
                let known = write_name(&steps[..at]);
                let wrong = write_name(&steps[at..at + 1]);
                let place = if known.is_empty() { String::new() } else { format!(" in `{known}`") };
                self.warn(
                    Code::UnknownField,
                    f.span,
                    format!(
                        "expected a UDM field, found `{}`: no field `{wrong}`{place}",
                        field_name(f)
                    ),
                );
                Ty::Str
            }
        }
    }

    /// Compiles a value expression and gives its type.
    fn expr(&mut self, e: &ast::Expr) -> Option<(Expr, Ty)> {
        use ast::Expr as A;
        Some(match e {
            A::Field(f) => {
                let (slot, ty) = self.field(f)?;
                (Expr::Field(slot), ty)
            }
            A::Literal(lit, _) => literal(lit),
            A::Word(w, _) => (Expr::Lit(Val::Str(w.clone().into())), Ty::Str),
            A::Var(name, span) => return self.var(name, *span),
            A::Count(var, span) => {
                if self.section != Section::Condition {
                    self.error(
                        Code::Expected,
                        *span,
                        format!("expected `#{var}` only in the condition"),
                    );
                    return None;
                }
                // A rule that runs per event sees its one event.
                (Expr::Lit(Val::Int(1)), Ty::Int)
            }
            A::Regex(_, span) => {
                self.error(
                    Code::BadComparison,
                    *span,
                    "expected a regex literal only after `=` or `!=`, or as a pattern argument",
                );
                return None;
            }
            A::Call { name, args, nocase, span } => return self.call(name, args, *nocase, *span),
            A::Arith { op, lhs, rhs, .. } => {
                let (l, lt) = self.expr(lhs)?;
                let (r, rt) = self.expr(rhs)?;
                let int = *op != ArithOp::Div && lt != Ty::Float && rt != Ty::Float;
                let ty = if int { Ty::Int } else { Ty::Float };
                (Expr::Arith(*op, Box::new(l), Box::new(r), int), ty)
            }
            A::Neg(inner, _) => {
                let (x, ty) = self.expr(inner)?;
                (Expr::Neg(Box::new(x)), if ty == Ty::Float { Ty::Float } else { Ty::Int })
            }
            A::Quantified { span, .. } => {
                self.error(
                    Code::BadComparison,
                    *span,
                    "expected `any` or `all` before a field that is compared or passed to a \
                     function",
                );
                return None;
            }
            A::And(..) | A::Or(..) | A::Not(..) | A::Compare { .. } | A::InList { .. } => {
                let pred = self.pred(e, true);
                (
                    Expr::If(Box::new(pred), Box::new(lit_bool(true)), Box::new(lit_bool(false))),
                    Ty::Bool,
                )
            }
        })
    }

    fn var(&mut self, name: &str, span: Span) -> Option<(Expr, Ty)> {
        if name == ELEM {
            return Some((Expr::Elem, Ty::Str));
        }
        if let Some(i) = self.placeholders.iter().position(|p| p.name == name) {
            return Some((Expr::Placeholder(i as u16), self.placeholders[i].ty));
        }
        if self.section != Section::Events {
            if let Some(i) = self.outcome_names.iter().position(|o| o == name) {
                return Some((Expr::Outcome(i as u16), self.outcome_tys[i]));
            }
        }
        if self.event_vars.iter().any(|v| v == name) {
            self.error(
                Code::BadComparison,
                span,
                format!(
                    "expected a field of `${name}` such as `${name}.metadata.event_type`, \
                     found the event variable itself"
                ),
            );
        } else if self.pending.iter().any(|(n, _)| n == name) {
            // Used in its own binding while that is compiled; not an error.
        } else {
            let (what, code) = match self.section {
                Section::Events => ("a placeholder assigned in `events`", Code::BadPlaceholder),
                _ => ("a placeholder or an outcome variable defined before", Code::UnknownVariable),
            };
            self.error(code, span, format!("expected `${name}` to be {what}"));
        }
        None
    }

    fn call(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        nocase: bool,
        span: Span,
    ) -> Option<(Expr, Ty)> {
        if name == "if" {
            return self.if_call(args, span);
        }
        if let Some(agg) = Agg::from_name(name) {
            return self.aggregate(agg, name, args, span);
        }
        let Some(sig) = func::sig(name) else {
            if func::known_only(name) {
                if !self.check_only {
                    self.unsupported(span, &format!("function `{name}` outside windowed rules"));
                    return None;
                }
                for a in args {
                    self.expr(a);
                }
                return Some((Expr::Lit(Val::str("")), Ty::Str));
            }
            self.error(
                Code::UnknownFunction,
                span,
                format!("expected a YARA-L function, found `{name}`"),
            );
            return None;
        };
        if args.len() < sig.min || args.len() > sig.max {
            let expected = match (sig.min, sig.max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            self.error(
                Code::BadArguments,
                span,
                format!(
                    "expected {expected} argument{} to `{name}`, found {}",
                    if expected == "1" { "" } else { "s" },
                    args.len()
                ),
            );
            return None;
        }
        let mut compiled = Vec::new();
        let mut pattern = None;
        let mut consts: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, arg) in args.iter().enumerate() {
            let param = sig.params.get(i).or(sig.params.last()).copied().unwrap_or(Param::Scalar);
            match param {
                Param::Scalar => match self.expr(arg) {
                    Some((e, _)) => compiled.push(e),
                    None => ok = false,
                },
                Param::Array => match arg {
                    ast::Expr::Field(f) => match self.field(f) {
                        Some((slot, _)) => compiled.push(Expr::Array(slot)),
                        None => ok = false,
                    },
                    other => match self.expr(other) {
                        Some((e, _)) => compiled.push(e),
                        None => ok = false,
                    },
                },
                Param::Pattern => match arg {
                    ast::Expr::Literal(Literal::Str(p), s) | ast::Expr::Regex(p, s) => {
                        match self.regex(p, nocase, *s) {
                            Some(re) => pattern = Some(re),
                            None => ok = false,
                        }
                    }
                    other => {
                        self.error(
                            Code::BadArguments,
                            other.span(),
                            format!(
                                "expected a constant pattern as argument {} of `{name}`",
                                i + 1
                            ),
                        );
                        ok = false;
                    }
                },
                Param::Const => match arg {
                    ast::Expr::Literal(Literal::Str(s), _) => consts.push(s.clone()),
                    other => {
                        self.error(
                            Code::BadArguments,
                            other.span(),
                            format!("expected a constant string as argument {} of `{name}`", i + 1),
                        );
                        ok = false;
                    }
                },
            }
        }
        if !ok {
            return None;
        }
        let func = self.func(name, pattern, &consts, args, span)?;
        Some((Expr::Call(func, compiled.into()), sig.ret))
    }

    /// The compiled function, with its constant arguments checked.
    fn func(
        &mut self,
        name: &str,
        pattern: Option<regex::Regex>,
        consts: &[String],
        args: &[ast::Expr],
        span: Span,
    ) -> Option<Func> {
        let zone = |cx: &mut Self, i: usize| -> Option<Tz> {
            let Some(z) = consts.get(i) else { return Some(Tz::Fixed(0)) };
            let parsed = Tz::parse(z);
            if parsed.is_none() {
                let at = args.get(i + 1).map_or(span, ast::Expr::span);
                cx.error(
                    Code::Unsupported,
                    at,
                    format!(
                        "time zone `{z}` is not supported: expected `UTC`, an offset such as \
                         `-05:00`, or a zone of the table in engine/src/func.rs"
                    ),
                );
            }
            parsed
        };
        Some(match name {
            "re.regex" => Func::Regex(pattern?),
            "re.capture" => {
                let re = pattern?;
                let groups = re.captures_len() - 1;
                if groups > 1 {
                    self.error(
                        Code::BadArguments,
                        args[1].span(),
                        format!(
                            "expected a pattern with at most one capture group, found {groups}"
                        ),
                    );
                    return None;
                }
                Func::Capture(re, groups == 1)
            }
            "re.replace" => Func::Replace(pattern?),
            "strings.contains" => Func::Contains,
            "strings.starts_with" => Func::StartsWith,
            "strings.ends_with" => Func::EndsWith,
            "strings.to_lower" => Func::Lower,
            "strings.to_upper" => Func::Upper,
            "strings.concat" => Func::Concat,
            "strings.coalesce" => Func::Coalesce,
            "strings.base64_decode" => Func::Base64Decode,
            "strings.length" => Func::Length,
            "strings.trim" => Func::Trim(Trim::Both),
            "strings.ltrim" => Func::Trim(Trim::Left),
            "strings.rtrim" => Func::Trim(Trim::Right),
            "strings.reverse" => Func::Reverse,
            "strings.count_substrings" => Func::CountSubstrings,
            "strings.extract_domain" => Func::ExtractDomain,
            "strings.extract_hostname" => Func::ExtractHostname,
            "strings.url_decode" => Func::UrlDecode,
            "strings.split" => Func::Split,
            "net.ip_in_range_cidr" => {
                if let Some(ast::Expr::Literal(Literal::Str(c), s)) = args.get(1) {
                    if func::Cidr::parse(c).is_none() {
                        self.error(
                            Code::BadArguments,
                            *s,
                            format!("expected an address range such as `10.0.0.0/8`, found `{c}`"),
                        );
                        return None;
                    }
                }
                Func::IpInCidr
            }
            "timestamp.current_seconds" | "timestamp.now" => Func::Now,
            "timestamp.get_hour" => Func::Hour(zone(self, 0)?),
            "timestamp.get_minute" => Func::Minute(zone(self, 0)?),
            "timestamp.get_day_of_week" => Func::DayOfWeek(zone(self, 0)?),
            "timestamp.get_week" => Func::Week(zone(self, 0)?),
            "timestamp.get_date" => Func::Date(zone(self, 0)?),
            "timestamp.get_timestamp" => {
                let fmt = consts.first().cloned().unwrap_or_else(|| "%F %T".into());
                Func::Timestamp(zone(self, 1)?, fmt.into())
            }
            "timestamp.as_unix_seconds" => Func::AsUnixSeconds(zone(self, 0)?),
            "math.abs" => Func::Abs,
            "math.round" => Func::Round,
            "math.ceil" => Func::Ceil,
            "math.floor" => Func::Floor,
            "math.log" => Func::Log,
            "math.sqrt" => Func::Sqrt,
            "math.pow" => Func::Pow,
            "arrays.length" | "arrays.size" => Func::ArrLength,
            "arrays.contains" => Func::ArrContains,
            "arrays.join_string" => Func::ArrJoin,
            "arrays.index_to_str" => Func::ArrIndex(Ty::Str),
            "arrays.index_to_int" => Func::ArrIndex(Ty::Int),
            "arrays.index_to_float" => Func::ArrIndex(Ty::Float),
            "arrays.concat" => Func::ArrConcat,
            "cast.as_int" => Func::AsInt,
            "cast.as_float" => Func::AsFloat,
            "cast.as_string" => Func::AsString,
            "cast.as_bool" => Func::AsBool,
            _ => unreachable!("every name in func::SIGS has a case: {name}"),
        })
    }

    fn if_call(&mut self, args: &[ast::Expr], span: Span) -> Option<(Expr, Ty)> {
        if !(2..=3).contains(&args.len()) {
            self.error(
                Code::BadArguments,
                span,
                format!(
                    "expected `if(condition, then)` or `if(condition, then, else)`, found {} \
                     arguments",
                    args.len()
                ),
            );
            return None;
        }
        let cond = self.pred(&args[0], true);
        let (then, ty) = self.expr(&args[1])?;
        let otherwise = match args.get(2) {
            Some(e) => self.expr(e)?.0,
            None => zero(ty),
        };
        Some((Expr::If(Box::new(cond), Box::new(then), Box::new(otherwise)), ty))
    }

    fn aggregate(
        &mut self,
        agg: Agg,
        name: &str,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<(Expr, Ty)> {
        if self.section != Section::Outcome {
            self.error(
                Code::Expected,
                span,
                format!("expected the aggregation `{name}` only in the `outcome` section"),
            );
            return None;
        }
        let [arg] = args else {
            self.error(
                Code::BadArguments,
                span,
                format!("expected 1 argument to `{name}`, found {}", args.len()),
            );
            return None;
        };
        let (expr, ty) = self.expr(arg)?;
        let out_ty = match agg {
            Agg::Count | Agg::CountDistinct => Ty::Int,
            Agg::Sum | Agg::Max | Agg::Min if ty == Ty::Int || ty == Ty::Bool => Ty::Int,
            Agg::Sum | Agg::Max | Agg::Min => Ty::Float,
            Agg::Array | Agg::ArrayDistinct => Ty::List,
        };
        self.aggregates.push(Aggregate { agg, expr, ty });
        Some((Expr::Agg((self.aggregates.len() - 1) as u16), out_ty))
    }

    fn outcome(&mut self, assign: &ast::OutcomeAssign) {
        let taken = self.outcome_names.contains(&assign.var)
            || self.placeholders.iter().any(|p| p.name == assign.var);
        if taken {
            self.error(
                Code::BadPlaceholder,
                assign.span,
                format!(
                    "expected `${}` to be assigned once, found a second assignment",
                    assign.var
                ),
            );
            return;
        }
        self.aggregates.clear();
        let compiled = self.expr(&assign.value);
        let aggregates = std::mem::take(&mut self.aggregates);
        let (expr, ty) = compiled.unwrap_or((Expr::Lit(Val::str("")), Ty::Str));
        self.outcome_names.push(assign.var.clone());
        self.outcome_tys.push(ty);
        self.plan.outcomes.push(Outcome { expr, aggregates, ty });
    }

    fn condition(&mut self, cond: &ast::Expr) -> Pred {
        use ast::Expr as A;
        match cond {
            A::Var(v, span) => {
                if self.event_vars.contains(v) {
                    return Pred::True;
                }
                if !self.outcome_names.contains(v) {
                    let event = self.event_vars.first().cloned().unwrap_or_else(|| "e".into());
                    self.error(
                        Code::UnknownVariable,
                        *span,
                        format!(
                            "expected an event variable such as `${event}` or an outcome \
                             variable in the condition, found `${v}`"
                        ),
                    );
                    return Pred::True;
                }
                match self.var(v, *span) {
                    Some((e, _)) => Pred::Test(e),
                    None => Pred::True,
                }
            }
            A::And(items, _) => Pred::all(items.iter().map(|i| self.condition(i)).collect()),
            A::Or(items, _) => Pred::Any(items.iter().map(|i| self.condition(i)).collect()),
            A::Not(inner, _) => {
                let p = self.condition(inner);
                Pred::Not(Box::new(p))
            }
            other => self.pred(other, true),
        }
    }

    /// Compiles a predicate. `branch`: inside `or`, `not` or a function
    /// argument, where a placeholder cannot be assigned.
    fn pred(&mut self, e: &ast::Expr, branch: bool) -> Pred {
        use ast::Expr as A;
        match e {
            A::And(items, _) => Pred::all(items.iter().map(|i| self.pred(i, branch)).collect()),
            A::Or(items, _) => Pred::Any(items.iter().map(|i| self.pred(i, true)).collect()),
            A::Not(inner, _) => Pred::Not(Box::new(self.pred(inner, true))),
            A::Compare { lhs, op, rhs, nocase, span } => {
                self.compare(lhs, *op, rhs, *nocase, *span, branch)
            }
            A::InList { value, list, column, kind, nocase, span, list_span } => {
                // A data table column is tested as the list of its values.
                let list = match column {
                    Some(column) => format!("{list}.{column}"),
                    None => list.clone(),
                };
                if let A::Quantified { span, .. } = &**value {
                    self.error(
                        Code::BadComparison,
                        *span,
                        "expected a field without `any` or `all` before `in`: reference lists \
                         test every value",
                    );
                    return Pred::True;
                }
                let _ = span;
                let Some(list) = self.list(&list, *kind, *nocase, *list_span) else {
                    return Pred::True;
                };
                match self.expr(value) {
                    Some((val, _)) => Pred::InList { val, list },
                    None => Pred::True,
                }
            }
            A::Call { name, args, nocase, span } => self.call_pred(name, args, *nocase, *span),
            A::Var(name, span) if self.section == Section::Condition => match self.var(name, *span)
            {
                Some((e, _)) => Pred::Test(e),
                None => Pred::True,
            },
            A::Literal(Literal::Bool(b), _) => {
                if *b {
                    Pred::True
                } else {
                    Pred::False
                }
            }
            other => {
                self.error(
                    Code::Expected,
                    other.span(),
                    "expected a predicate such as `$e.field = \"value\"` or `re.regex(...)`",
                );
                Pred::True
            }
        }
    }

    /// A function call used as a predicate: it must return a boolean.
    fn call_pred(&mut self, name: &str, args: &[ast::Expr], nocase: bool, span: Span) -> Pred {
        // `re.regex(any $e.f, ...)`, `net.ip_in_range_cidr(all $e.ip, ...)`
        if let Some((i, all, field)) = args.iter().enumerate().find_map(|(i, a)| match a {
            ast::Expr::Quantified { all, field, .. } => Some((i, *all, field)),
            _ => None,
        }) {
            let Some((slot, _)) = self.field(field) else { return Pred::True };
            let mut rewritten = args.to_vec();
            rewritten[i] = elem_marker(field.span);
            let inner = self.call_pred(name, &rewritten, nocase, span);
            return Pred::Quant { all, slot, pred: Box::new(inner) };
        }
        if name == "re.regex" && args.len() == 2 {
            if let ast::Expr::Literal(Literal::Str(p), s) | ast::Expr::Regex(p, s) = &args[1] {
                let val = self.expr(&args[0]);
                let re = self.regex(p, nocase, *s);
                return match (val, re) {
                    (Some((val, _)), Some(re)) => Pred::Regex { val, re, negate: false },
                    _ => Pred::True,
                };
            }
        }
        match self.call(name, args, nocase, span) {
            Some((e, Ty::Bool)) => Pred::Test(e),
            Some((_, _)) => {
                self.error(
                    Code::Expected,
                    span,
                    format!(
                        "expected a predicate, found `{name}(...)`, which does not return a \
                         boolean; compare it with a value"
                    ),
                );
                Pred::True
            }
            None => Pred::True,
        }
    }

    fn list(&mut self, name: &str, kind: ListKind, nocase: bool, span: Span) -> Option<u16> {
        let key = (name.to_string(), kind, nocase);
        if let Some(i) = self.list_keys.iter().position(|k| *k == key) {
            return Some(i as u16);
        }
        let what = if name.contains('.') { "data table column" } else { "reference list" };
        let entries: &[String] = match self.lists.iter().find(|l| l.name == name) {
            Some(list) => &list.entries,
            None if self.absent_lists_ok => {
                self.warn(
                    Code::ListNotGiven,
                    span,
                    format!(
                        "the {what} `%{name}` was not given, so its entries were not checked; \
                         running the rule needs it"
                    ),
                );
                &[]
            }
            None => {
                let given: Vec<String> =
                    self.lists.iter().map(|l| format!("`%{}`", l.name)).collect();
                let given = if given.is_empty() { "none".to_string() } else { given.join(", ") };
                self.error(
                    Code::UnknownList,
                    span,
                    format!(
                        "expected a {what} given to the engine, found `%{name}` (given: {given})"
                    ),
                );
                return None;
            }
        };
        let matcher = match kind {
            ListKind::Plain => Ok(Matcher::plain(entries, nocase)),
            ListKind::Regex => Matcher::regex(entries, nocase),
            ListKind::Cidr => Matcher::cidr(entries),
        };
        match matcher {
            Ok(m) => {
                self.list_keys.push(key);
                self.plan.lists.push(m);
                Some((self.plan.lists.len() - 1) as u16)
            }
            Err(bad) => {
                self.error(
                    Code::BadListEntry,
                    span,
                    format!(
                        "expected every entry of `%{name}` to be valid, found entry {}: {}",
                        bad.entry, bad.message
                    ),
                );
                None
            }
        }
    }

    fn compare(
        &mut self,
        lhs: &ast::Expr,
        op: CmpOp,
        rhs: &ast::Expr,
        nocase: bool,
        span: Span,
        branch: bool,
    ) -> Pred {
        use ast::Expr as A;
        // The binding of a placeholder holds by definition.
        if let Some(p) = self.placeholders.iter().find(|p| p.binding == span) {
            if branch {
                let name = p.name.clone();
                self.error(
                    Code::BadPlaceholder,
                    span,
                    format!("expected placeholder `${name}` to be assigned outside `or` and `not`"),
                );
            }
            return Pred::True;
        }
        if let Some((name, vspan)) = [lhs, rhs].iter().find_map(|x| match x {
            A::Var(n, s)
                if self.section == Section::Events
                    && n != ELEM
                    && !self.placeholders.iter().any(|p| p.name == *n)
                    && !self.event_vars.contains(n) =>
            {
                Some((n.clone(), *s))
            }
            _ => None,
        }) {
            let msg = if branch {
                format!("expected placeholder `${name}` to be assigned outside `or` and `not`")
            } else {
                format!("expected placeholder `${name}` to be assigned a field or function value")
            };
            self.error(Code::BadPlaceholder, vspan, msg);
            return Pred::True;
        }
        // `any $e.f = x`, `all $e.f != x`
        for (q, other, flipped) in [(lhs, rhs, false), (rhs, lhs, true)] {
            if let A::Quantified { all, field, .. } = q {
                let Some((slot, _)) = self.field(field) else { return Pred::True };
                let elem = elem_marker(field.span);
                let (l, r) = if flipped { (other, &elem) } else { (&elem, other) };
                let inner = self.compare(l, op, r, nocase, span, true);
                return Pred::Quant { all: *all, slot, pred: Box::new(inner) };
            }
        }
        // A regex literal on either side.
        for (re_side, other) in [(rhs, lhs), (lhs, rhs)] {
            if let A::Regex(pattern, rspan) = re_side {
                let negate = match op {
                    CmpOp::Eq => false,
                    CmpOp::Ne => true,
                    other => {
                        self.error(
                            Code::BadComparison,
                            span,
                            format!(
                                "expected `=` or `!=` before a regex, found `{}`",
                                other.as_str()
                            ),
                        );
                        return Pred::True;
                    }
                };
                let val = self.expr(other);
                let re = self.regex(pattern, nocase, *rspan);
                return match (val, re) {
                    (Some((val, _)), Some(re)) => Pred::Regex { val, re, negate },
                    _ => Pred::True,
                };
            }
        }
        let reads = |x: &A| !matches!(x, A::Literal(..) | A::Word(..));
        if !reads(lhs) && !reads(rhs) {
            self.error(
                Code::BadComparison,
                span,
                "expected a comparison between an event field and a value or placeholder",
            );
            return Pred::True;
        }
        if let (A::Field(a), A::Field(b)) = (lhs, rhs) {
            if a.var == b.var && field_name(a) == field_name(b) {
                self.error(
                    Code::BadComparison,
                    span,
                    format!(
                        "expected two different fields, found `{}` compared with itself",
                        field_name(a)
                    ),
                );
                return Pred::True;
            }
        }
        let Some((l, lt)) = self.expr(lhs) else { return Pred::True };
        let Some((r, rt)) = self.expr(rhs) else { return Pred::True };
        let numeric = |t: Ty| t == Ty::Int || t == Ty::Float;
        let how = if numeric(lt) || numeric(rt) {
            How::Num
        } else if lt == Ty::Bool || rt == Ty::Bool {
            How::Bool
        } else {
            How::Str
        };
        let is_text_literal = |x: &A| matches!(x, A::Literal(Literal::Str(_), _) | A::Word(..));
        if how != How::Num && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            let text = is_text_literal(lhs) || is_text_literal(rhs) || how == How::Bool;
            if text {
                self.error(
                    Code::BadComparison,
                    span,
                    format!(
                        "expected `=` or `!=` before a string or boolean, found `{}`",
                        op.as_str()
                    ),
                );
                return Pred::True;
            }
        }
        // The common case, kept allocation-free.
        if let (Expr::Field(slot), Expr::Lit(Val::Str(s)), How::Str) = (&l, &r, how) {
            if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                let value = if nocase { s.to_lowercase() } else { s.to_string() };
                return Pred::StrEq {
                    slot: *slot,
                    value: value.into(),
                    nocase,
                    negate: op == CmpOp::Ne,
                };
            }
        }
        if let (Expr::Lit(Val::Str(s)), Expr::Field(slot), How::Str) = (&l, &r, how) {
            if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                let value = if nocase { s.to_lowercase() } else { s.to_string() };
                return Pred::StrEq {
                    slot: *slot,
                    value: value.into(),
                    nocase,
                    negate: op == CmpOp::Ne,
                };
            }
        }
        Pred::Cmp { lhs: l, op, rhs: r, how, nocase }
    }

    fn regex(&mut self, pattern: &str, nocase: bool, span: Span) -> Option<regex::Regex> {
        match re2::compile(pattern, nocase) {
            Ok(re) => Some(re),
            Err(err) => {
                let place = err
                    .offset
                    .map(|o| format!(" at character {} of the pattern", o + 1))
                    .unwrap_or_default();
                self.error(
                    Code::BadRegex,
                    span,
                    format!("expected a valid regular expression{place}: {}", err.message),
                );
                None
            }
        }
    }
}

/// Stands in, in a rewritten tree, for the element a quantifier visits.
fn elem_marker(span: Span) -> ast::Expr {
    ast::Expr::Var(ELEM.to_string(), span)
}

/// A name no rule can write, since variables are words.
const ELEM: &str = " element";

fn literal(lit: &Literal) -> (Expr, Ty) {
    match lit {
        Literal::Str(s) => (Expr::Lit(Val::Str(s.clone().into())), Ty::Str),
        Literal::Int(i) => (Expr::Lit(Val::Int(*i)), Ty::Int),
        Literal::Float(f) => (Expr::Lit(Val::Float(*f)), Ty::Float),
        Literal::Bool(b) => (lit_bool(*b), Ty::Bool),
    }
}

fn lit_bool(b: bool) -> Expr {
    Expr::Lit(Val::Bool(b))
}

fn zero(ty: Ty) -> Expr {
    Expr::Lit(match ty {
        Ty::Int => Val::Int(0),
        Ty::Float => Val::Float(0.0),
        Ty::Bool => Val::Bool(false),
        Ty::Str | Ty::List => Val::str(""),
    })
}

fn flatten_and<'e>(e: &'e ast::Expr, out: &mut Vec<&'e ast::Expr>) {
    match e {
        ast::Expr::And(items, _) => items.iter().for_each(|i| flatten_and(i, out)),
        other => out.push(other),
    }
}

/// The slots a plan reads unmodified in more than one place. A
/// placeholder's reads count once for its binding and once per use.
fn correlated(plan: &Plan) -> Vec<Slot> {
    let mut counts = vec![0u32; plan.fields.len()];
    let mut source_slots: Vec<Vec<Slot>> = Vec::new();
    for source in &plan.placeholders {
        let mut slots = Vec::new();
        count_expr(source, &[], &mut |s| slots.push(s));
        for &s in &slots {
            counts[s as usize] += 1;
        }
        source_slots.push(slots);
    }
    let mut bump = |s: Slot| counts[s as usize] += 1;
    if let Some(pred) = &plan.pred {
        count_pred(pred, &source_slots, &mut bump);
    }
    for o in &plan.outcomes {
        count_expr(&o.expr, &source_slots, &mut bump);
        for a in &o.aggregates {
            count_expr(&a.expr, &source_slots, &mut bump);
        }
    }
    counts.iter().enumerate().filter(|(_, &n)| n >= 2).map(|(i, _)| i as Slot).collect()
}

fn count_pred(p: &Pred, sources: &[Vec<Slot>], f: &mut dyn FnMut(Slot)) {
    match p {
        Pred::All(ps) | Pred::Any(ps) => ps.iter().for_each(|p| count_pred(p, sources, f)),
        Pred::Not(inner) => count_pred(inner, sources, f),
        Pred::True | Pred::False | Pred::Quant { .. } => {}
        Pred::StrEq { slot, .. } => f(*slot),
        Pred::Regex { val, .. } | Pred::InList { val, .. } | Pred::Test(val) => {
            count_expr(val, sources, f)
        }
        Pred::Cmp { lhs, rhs, .. } => {
            count_expr(lhs, sources, f);
            count_expr(rhs, sources, f);
        }
    }
}

fn count_expr(e: &Expr, sources: &[Vec<Slot>], f: &mut dyn FnMut(Slot)) {
    match e {
        Expr::Field(s) => f(*s),
        Expr::Placeholder(p) => {
            sources.get(*p as usize).into_iter().flatten().for_each(|&s| f(s));
        }
        Expr::Call(_, args) => args.iter().for_each(|a| count_expr(a, sources, f)),
        Expr::Arith(_, a, b, _) => {
            count_expr(a, sources, f);
            count_expr(b, sources, f);
        }
        Expr::Neg(inner) => count_expr(inner, sources, f),
        Expr::If(c, a, b) => {
            count_pred(c, sources, f);
            count_expr(a, sources, f);
            count_expr(b, sources, f);
        }
        Expr::Elem | Expr::Array(_) | Expr::Lit(_) | Expr::Outcome(_) | Expr::Agg(_) => {}
    }
}

/// The reader's name for a path written in a rule, for tests.
pub fn canonical(name: &str) -> String {
    write_name(&parse_name(name))
}
