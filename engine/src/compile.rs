//! The compiler: a rule's syntax tree to an evaluation plan.
//!
//! It resolves field paths to the reader's field numbers, compiles every
//! regex once, binds placeholders, and refuses, by name and place, every
//! construct the evaluator does not run. A rule either compiles whole or
//! yields all of its problems.

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

use crate::diag::{Code, Diagnostic, Span};
use crate::eval::{NumOp, Pred};
use crate::reader::FieldId;
use crate::syntax::ast::{self, CmpOp, Expr, FieldRef, Literal};

/// The most a compiled regex may take, in bytes. It bounds guest memory;
/// real detection patterns need a few kilobytes.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

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
    /// Placeholder names without `$`, in order of first appearance.
    pub placeholders: Vec<String>,
    /// The field each placeholder is bound to, by position.
    pub(crate) bindings: Vec<FieldId>,
    pub(crate) pred: Pred,
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

/// Functions of YARA-L 2.0 that exist but are not evaluated yet. A call to
/// one of them is refused as unsupported; any other name is unknown.
const KNOWN_FUNCTIONS: &[&str] = &[
    "re.capture",
    "re.replace",
    "strings.base64_decode",
    "strings.coalesce",
    "strings.concat",
    "strings.contains",
    "strings.count_substrings",
    "strings.ends_with",
    "strings.extract_domain",
    "strings.extract_hostname",
    "strings.from_base64",
    "strings.length",
    "strings.ltrim",
    "strings.reverse",
    "strings.rtrim",
    "strings.split",
    "strings.starts_with",
    "strings.to_lower",
    "strings.to_upper",
    "strings.trim",
    "strings.url_decode",
    "net.ip_in_range_cidr",
    "timestamp.current_seconds",
    "timestamp.get_date",
    "timestamp.get_day_of_week",
    "timestamp.get_hour",
    "timestamp.get_minute",
    "timestamp.get_timestamp",
    "timestamp.get_week",
    "timestamp.now",
    "math.abs",
    "math.log",
    "math.round",
    "arrays.concat",
    "arrays.length",
    "arrays.index_to_str",
    "hash.fingerprint2011",
    "cast.as_float",
    "cast.as_string",
    "window.avg",
    "window.first",
    "window.last",
    "window.median",
    "window.mode",
    "window.stddev",
    "window.variance",
];

/// Compiles one parsed rule. Field names go into `fields`, shared by every
/// rule of the set.
pub fn compile(
    rule: &ast::Rule,
    source_name: &str,
    fields: &mut FieldTable,
) -> Result<Rule, Vec<Diagnostic>> {
    let mut cx = Compiler { fields, diags: Vec::new(), event_var: None, placeholders: Vec::new() };
    let pred = cx.rule(rule);
    let mut diags = cx.diags;
    if !diags.is_empty() {
        for d in &mut diags {
            d.rule.get_or_insert_with(|| rule.name.clone());
        }
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
    let (placeholders, bindings) = cx.placeholders.into_iter().map(|(n, f, _)| (n, f)).unzip();
    Ok(Rule {
        name: rule.name.clone(),
        source_name: source_name.to_string(),
        meta,
        placeholders,
        bindings,
        pred,
    })
}

struct Compiler<'f> {
    fields: &'f mut FieldTable,
    diags: Vec<Diagnostic>,
    /// The rule's one event variable and where it was first used.
    event_var: Option<(String, Span)>,
    /// Placeholder, bound field, and where it was bound.
    placeholders: Vec<(String, FieldId, Span)>,
}

impl Compiler<'_> {
    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> Pred {
        self.diags.push(Diagnostic::new(code, span, message));
        Pred::True
    }

    fn unsupported(&mut self, span: Span, what: &str) -> Pred {
        self.error(Code::Unsupported, span, format!("{what} is not supported yet"))
    }

    fn rule(&mut self, rule: &ast::Rule) -> Pred {
        let events = rule.events.as_ref().expect("the parser requires an events section");
        let preds: Vec<Pred> = events.body.iter().map(|e| self.predicate(e, false)).collect();
        if let Some(m) = &rule.match_section {
            self.unsupported(m.keyword, "`match` (windowed evaluation across events)");
        }
        if let Some(o) = &rule.outcome {
            self.unsupported(o.keyword, "the `outcome` section");
        }
        if let Some(opts) = &rule.options {
            for opt in &opts.body {
                self.option(opt);
            }
        }
        let condition = rule.condition.as_ref().expect("the parser requires a condition section");
        self.condition(&condition.body);
        Pred::all(preds)
    }

    fn option(&mut self, opt: &ast::OptionEntry) {
        match (opt.key.as_str(), &opt.value) {
            // Zero values are filtered only for match variables, which
            // single-event rules do not have, so the option changes nothing.
            ("allow_zero_values", Literal::Bool(_)) => {}
            ("allow_zero_values", _) => {
                self.error(
                    Code::BadOption,
                    opt.span,
                    "expected `allow_zero_values = true` or `false`",
                );
            }
            (key, _) => {
                self.error(
                    Code::BadOption,
                    opt.span,
                    format!("expected a known option such as `allow_zero_values`, found `{key}`"),
                );
            }
        }
    }

    fn condition(&mut self, cond: &Expr) {
        let Some((event, _)) = self.event_var.clone() else { return };
        match cond {
            Expr::Var(v, _) if *v == event => {}
            Expr::Var(v, span) => {
                self.error(
                    Code::UnknownVariable,
                    *span,
                    format!(
                        "expected the event variable `${event}` in the condition, found `${v}`"
                    ),
                );
            }
            other => {
                self.unsupported(other.span(), "a condition other than the event variable alone");
            }
        }
    }

    /// `branch`: inside `or` or `not`, where a placeholder may not be bound.
    fn predicate(&mut self, expr: &Expr, branch: bool) -> Pred {
        match expr {
            Expr::And(items, _) => {
                Pred::all(items.iter().map(|e| self.predicate(e, branch)).collect())
            }
            Expr::Or(items, _) => {
                Pred::Any(items.iter().map(|e| self.predicate(e, true)).collect())
            }
            Expr::Not(inner, _) => Pred::Not(Box::new(self.predicate(inner, true))),
            Expr::Compare { lhs, op, rhs, nocase, span } => {
                self.compare(lhs, *op, rhs, *nocase, *span, branch)
            }
            Expr::Call { name, args, nocase, span } => self.call(name, args, *nocase, *span),
            Expr::InList { span, .. } => self.unsupported(*span, "a reference list (`in %list`)"),
            other => self.error(
                Code::Expected,
                other.span(),
                "expected a predicate such as `$e.field = \"value\"` or `re.regex(...)`",
            ),
        }
    }

    fn field(&mut self, f: &FieldRef) -> Option<FieldId> {
        match &self.event_var {
            None => self.event_var = Some((f.var.clone(), f.span)),
            Some((v, _)) if *v != f.var => {
                let msg = format!(
                    "a second event variable `${}` beside `${v}` (rules over several events need \
                     windowed evaluation)",
                    f.var
                );
                self.unsupported(f.span, &msg);
                return None;
            }
            Some(_) => {}
        }
        if f.path.is_empty() {
            self.error(Code::Expected, f.span, "expected a field path after the event variable");
            return None;
        }
        let Some(name) = f.dotted() else {
            self.unsupported(f.span, "a map key or index in a field path");
            return None;
        };
        Some(self.fields.intern(name))
    }

    fn compare(
        &mut self,
        lhs: &Expr,
        op: CmpOp,
        rhs: &Expr,
        nocase: bool,
        span: Span,
        branch: bool,
    ) -> Pred {
        // Put the field on the left: `"x" = $e.f` means `$e.f = "x"`.
        let (lhs, op, rhs) = match (lhs, rhs) {
            (Expr::Field(_), _) | (Expr::Var(..), Expr::Field(_)) => (lhs, op, rhs),
            (_, Expr::Field(_)) => (rhs, flip(op), lhs),
            _ => (lhs, op, rhs),
        };
        match (lhs, rhs) {
            (Expr::Field(f), Expr::Var(name, vspan)) | (Expr::Var(name, vspan), Expr::Field(f)) => {
                self.bind(f, name, *vspan, op, branch)
            }
            (Expr::Field(f), Expr::Literal(lit, _)) => {
                let Some(field) = self.field(f) else { return Pred::True };
                self.literal(field, op, lit, nocase, span)
            }
            (Expr::Field(f), Expr::Word(word, _)) => {
                let Some(field) = self.field(f) else { return Pred::True };
                self.literal(field, op, &Literal::Str(word.clone()), nocase, span)
            }
            (Expr::Field(f), Expr::Regex(pattern, rspan)) => {
                let Some(field) = self.field(f) else { return Pred::True };
                let negate = match op {
                    CmpOp::Eq => false,
                    CmpOp::Ne => true,
                    other => {
                        let msg = format!(
                            "expected `=` or `!=` before a regex, found `{}`",
                            other.as_str()
                        );
                        return self.error(Code::BadComparison, span, msg);
                    }
                };
                match self.regex(pattern, nocase, *rspan) {
                    Some(re) => Pred::Regex { field, re, negate },
                    None => Pred::True,
                }
            }
            (Expr::Field(_), Expr::Field(_)) => {
                self.unsupported(span, "a comparison between two fields")
            }
            (Expr::Call { name, span, .. }, _) | (_, Expr::Call { name, span, .. }) => {
                self.function(name, *span)
            }
            _ => self.error(
                Code::BadComparison,
                span,
                "expected a comparison between an event field and a value or placeholder",
            ),
        }
    }

    fn literal(
        &mut self,
        field: FieldId,
        op: CmpOp,
        lit: &Literal,
        nocase: bool,
        span: Span,
    ) -> Pred {
        let eq_op = |c: &mut Self| match op {
            CmpOp::Eq => Some(false),
            CmpOp::Ne => Some(true),
            other => {
                let msg = format!(
                    "expected `=` or `!=` before a string or boolean, found `{}`",
                    other.as_str()
                );
                c.error(Code::BadComparison, span, msg);
                None
            }
        };
        match lit {
            Literal::Str(s) => match eq_op(self) {
                Some(negate) => Pred::str_eq(field, s, nocase, negate),
                None => Pred::True,
            },
            Literal::Bool(b) => match eq_op(self) {
                Some(negate) => {
                    Pred::str_eq(field, if *b { "true" } else { "false" }, true, negate)
                }
                None => Pred::True,
            },
            Literal::Int(i) => Pred::Num { field, op: NumOp::from(op), value: *i as f64 },
            Literal::Float(f) => Pred::Num { field, op: NumOp::from(op), value: *f },
        }
    }

    fn bind(&mut self, f: &FieldRef, name: &str, span: Span, op: CmpOp, branch: bool) -> Pred {
        let Some(field) = self.field(f) else { return Pred::True };
        if op != CmpOp::Eq {
            return self.unsupported(span, "a placeholder compared with other than `=`");
        }
        if branch {
            return self.error(
                Code::BadPlaceholder,
                span,
                format!("expected placeholder `${name}` to be assigned outside `or` and `not`"),
            );
        }
        if self.placeholders.iter().any(|(n, ..)| n == name) {
            return self
                .unsupported(span, &format!("assigning placeholder `${name}` twice (a join)"));
        }
        self.placeholders.push((name.to_string(), field, span));
        Pred::True
    }

    fn call(&mut self, name: &str, args: &[Expr], nocase: bool, span: Span) -> Pred {
        if name != "re.regex" {
            return self.function(name, span);
        }
        let [Expr::Field(f), pattern] = args else {
            return self.error(
                Code::BadArguments,
                span,
                format!(
                    "expected `re.regex(field, pattern)`, found {} argument{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                ),
            );
        };
        let (Expr::Literal(Literal::Str(pattern), pspan) | Expr::Regex(pattern, pspan)) = pattern
        else {
            return self.error(
                Code::BadArguments,
                pattern.span(),
                "expected a string pattern as the second argument of `re.regex`",
            );
        };
        let Some(field) = self.field(f) else { return Pred::True };
        match self.regex(pattern, nocase, *pspan) {
            Some(re) => Pred::Regex { field, re, negate: false },
            None => Pred::True,
        }
    }

    fn function(&mut self, name: &str, span: Span) -> Pred {
        if name == "re.regex" || KNOWN_FUNCTIONS.contains(&name) {
            self.unsupported(span, &format!("function `{name}` in this position"))
        } else {
            self.error(
                Code::UnknownFunction,
                span,
                format!("expected a YARA-L function, found `{name}`"),
            )
        }
    }

    fn regex(&mut self, pattern: &str, nocase: bool, span: Span) -> Option<Regex> {
        let built = RegexBuilder::new(pattern)
            .case_insensitive(nocase)
            .size_limit(REGEX_SIZE_LIMIT)
            .build();
        match built {
            Ok(re) => Some(re),
            Err(err) => {
                let text = err.to_string();
                let last = text.lines().last().unwrap_or("").trim();
                let detail = last.strip_prefix("error: ").unwrap_or(last).to_string();
                self.error(
                    Code::BadRegex,
                    span,
                    format!("expected a valid regular expression: {detail}"),
                );
                None
            }
        }
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        same => same,
    }
}
