//! Checks behind `tripline check`: rules that compile but cannot be what
//! their author meant. Each finding is a warning; the rule still loads.
//!
//! - an enum compared with a value the enum does not have;
//! - a comparison that can never hold: a number field against a word, or
//!   one single-valued field required to equal two different values;
//! - a CloudTrail or Azure action name (`CreateUser`,
//!   `roleAssignments/write`) tested against `target.resource.name`, where
//!   SecOps parsers put the affected resource, not the action;
//! - `nocase` on an enum field.
//!
//! Unknown field paths are found while compiling, where paths are resolved.

use crate::compile::{field_name, visit};
use crate::diag::{Code, Diagnostic, Span};
use crate::reader::parse_name;
use crate::syntax::ast::{self, CmpOp, FieldRef, Literal};
use crate::udm::{self, Kind};

/// The warnings for one rule.
pub fn check(rule: &ast::Rule) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(events) = &rule.events else { return out };
    for e in &events.body {
        visit(e, &mut |x| comparison(x, &mut out));
    }
    // A rule that also reads the action where SecOps puts it tests the
    // resource name on purpose, as the default T1059.009 rule does.
    let mut reads_action = false;
    for e in &events.body {
        visit(e, &mut |x| {
            if let ast::Expr::Field(f) = x {
                reads_action |= field_name(f) == "metadata.product_event_type";
            }
        });
    }
    if reads_action {
        out.retain(|d| d.code != Code::ActionInResourceName);
    }
    contradictions(&events.body, &mut out);
    out
}

fn warn(out: &mut Vec<Diagnostic>, code: Code, span: Span, message: String) {
    out.push(Diagnostic::new(code, span, message));
}

/// The UDM kind of a field and whether it can hold several values.
fn kind(f: &FieldRef) -> Option<(Kind, bool)> {
    udm::lookup(&parse_name(&field_name(f))).ok().map(|l| (l.kind, l.repeated))
}

/// The text a literal or a bare word compares with.
fn text(e: &ast::Expr) -> Option<&str> {
    match e {
        ast::Expr::Literal(Literal::Str(s), _) | ast::Expr::Word(s, _) => Some(s),
        _ => None,
    }
}

fn comparison(e: &ast::Expr, out: &mut Vec<Diagnostic>) {
    match e {
        ast::Expr::Compare { lhs, op, rhs, nocase, span } => {
            let (field, other) = match (&**lhs, &**rhs) {
                (ast::Expr::Field(f), o) | (o, ast::Expr::Field(f)) => (f, o),
                (ast::Expr::Quantified { field, .. }, o)
                | (o, ast::Expr::Quantified { field, .. }) => (field, o),
                _ => return,
            };
            enum_value(field, *op, other, *nocase, *span, out);
            numeric(field, other, *span, out);
            if let ast::Expr::Regex(p, _) | ast::Expr::Literal(Literal::Str(p), _) = other {
                action_name(field, p, *span, out);
            }
        }
        ast::Expr::Call { name, args, span, .. } if name == "re.regex" => {
            let pattern = match args.get(1) {
                Some(ast::Expr::Literal(Literal::Str(p), _) | ast::Expr::Regex(p, _)) => Some(p),
                _ => None,
            };
            if let (Some(ast::Expr::Field(f)), Some(p)) = (args.first(), pattern) {
                action_name(f, p, *span, out);
            }
        }
        _ => {}
    }
}

fn enum_value(
    field: &FieldRef,
    op: CmpOp,
    other: &ast::Expr,
    nocase: bool,
    span: Span,
    out: &mut Vec<Diagnostic>,
) {
    let Some((Kind::Enum(name), _)) = kind(field) else { return };
    if nocase {
        warn(
            out,
            Code::NocaseOnEnum,
            span,
            format!(
                "expected no `nocase` on the enum field `{}`: SecOps refuses it, and enum \
                 values are upper case",
                field_name(field)
            ),
        );
    }
    let (Some(values), Some(value)) = (udm::enum_values(name), text(other)) else { return };
    if values.contains(&value) || !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return;
    }
    let hint = closest(value, values).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
    warn(
        out,
        Code::UnknownEnumValue,
        other.span(),
        format!(
            "expected a value of the enum `{name}` for `{}`, found `{value}`{hint}",
            field_name(field)
        ),
    );
}

/// The enum value nearest to `value`, if one is near.
fn closest(value: &str, values: &[&'static str]) -> Option<&'static str> {
    let upper = value.to_ascii_uppercase();
    values
        .iter()
        .map(|v| (distance(&upper, v), *v))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn numeric(field: &FieldRef, other: &ast::Expr, span: Span, out: &mut Vec<Diagnostic>) {
    let Some((Kind::Int | Kind::Float, _)) = kind(field) else { return };
    let Some(value) = text(other) else { return };
    if crate::value::number(value).is_none() {
        warn(
            out,
            Code::NeverHolds,
            span,
            format!(
                "this comparison can never hold: `{}` is a number and `{value}` is not",
                field_name(field)
            ),
        );
    }
}

/// Words that begin CloudTrail API names (`CreateUser`, `PutBucketPolicy`).
const VERBS: &[&str] = &[
    "Add",
    "Associate",
    "Attach",
    "Authorize",
    "Assume",
    "Cancel",
    "Change",
    "Console",
    "Create",
    "Deactivate",
    "Delete",
    "Deregister",
    "Describe",
    "Detach",
    "Disable",
    "Disassociate",
    "Enable",
    "Get",
    "Import",
    "Invoke",
    "List",
    "Modify",
    "Put",
    "Reboot",
    "Register",
    "Remove",
    "Replace",
    "Reset",
    "Restore",
    "Revoke",
    "Run",
    "Set",
    "Start",
    "Stop",
    "Tag",
    "Terminate",
    "Untag",
    "Update",
    "Upload",
];

/// An action-like word in `pattern`: a CloudTrail API name, or an Azure
/// operation (`.../write`, `.../delete`, `.../action`).
fn action_like(pattern: &str) -> Option<String> {
    let words = pattern.split(|c: char| !(c.is_ascii_alphanumeric() || c == '/' || c == '.'));
    for word in words {
        for verb in VERBS {
            let Some(rest) = word.strip_prefix(verb) else { continue };
            if rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                return Some(word.to_string());
            }
        }
        let lower = word.to_ascii_lowercase();
        if ["/write", "/delete", "/action"].iter().any(|s| lower.ends_with(s)) {
            return Some(word.to_string());
        }
    }
    None
}

fn action_name(field: &FieldRef, pattern: &str, span: Span, out: &mut Vec<Diagnostic>) {
    if field_name(field) != "target.resource.name" {
        return;
    }
    let Some(word) = action_like(pattern) else { return };
    warn(
        out,
        Code::ActionInResourceName,
        span,
        format!(
            "expected the API action `{word}` to be tested against \
             `metadata.product_event_type`: SecOps puts CloudTrail and Azure action names \
             there and the affected resource in `target.resource.name`"
        ),
    );
}

/// One single-valued field required, in the same conjunction, to equal two
/// different values.
fn contradictions(lines: &[ast::Expr], out: &mut Vec<Diagnostic>) {
    let mut conjuncts = Vec::new();
    for line in lines {
        flatten(line, &mut conjuncts);
    }
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for c in conjuncts {
        let ast::Expr::Compare { lhs, op: CmpOp::Eq, rhs, nocase: false, span } = c else {
            continue;
        };
        let (field, value) = match (&**lhs, &**rhs) {
            (ast::Expr::Field(f), o) | (o, ast::Expr::Field(f)) => match text(o) {
                Some(v) => (f, v),
                None => continue,
            },
            _ => continue,
        };
        if !matches!(kind(field), Some((_, false))) {
            continue;
        }
        let key = (field.var.clone(), field_name(field));
        match seen.iter().find(|(v, n, _)| *v == key.0 && *n == key.1) {
            Some((_, name, first)) if first != value => warn(
                out,
                Code::NeverHolds,
                *span,
                format!(
                    "this comparison can never hold: `{name}` holds one value and is already \
                     required to be `{first}`, not `{value}`"
                ),
            ),
            Some(_) => {}
            None => seen.push((key.0, key.1, value.to_string())),
        }
    }
}

fn flatten<'e>(e: &'e ast::Expr, out: &mut Vec<&'e ast::Expr>) {
    match e {
        ast::Expr::And(items, _) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_recognised() {
        assert_eq!(action_like("(?i)(CreateUser|Foo)"), Some("CreateUser".into()));
        assert_eq!(action_like("roleAssignments/write"), Some("roleAssignments/write".into()));
        assert_eq!(action_like("my-bucket"), None);
        assert_eq!(action_like("Created"), None);
    }

    #[test]
    fn closest_enum_value() {
        let values = udm::enum_values("EventType").unwrap();
        assert_eq!(closest("USER_LOGON", values), Some("USER_LOGIN"));
        assert_eq!(closest("user_login", values), Some("USER_LOGIN"));
        assert_eq!(closest("SOMETHING_ELSE_ENTIRELY", values), None);
    }
}
