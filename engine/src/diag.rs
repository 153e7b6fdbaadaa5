//! Diagnostics: what went wrong in a rule source, where, and under which code.
//!
//! Every stage (lexer, parser, compiler) reports problems as [`Diagnostic`]s
//! that point at a byte span of the source. Line and column are worked out
//! only when a diagnostic is shown, from the [`Source`] it belongs to.

use std::fmt;

/// A stable error code. Codes are never reused for a different problem.
///
/// The first digit names the stage: 1 for the lexer, 2 for the parser, 3 for
/// the compiler, 4 for the checks behind `tripline check`. Codes that start
/// with `W` are warnings: the rule loads, but is probably not what its
/// author meant.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// A character that starts no token: `$e.f = @x`.
    UnexpectedChar,
    /// A string, raw string or regex literal with no closing delimiter.
    Unterminated,
    /// An escape a double-quoted string does not allow: `"a\qb"`.
    BadEscape,
    /// A number too large or malformed: `99999999999999999999`.
    BadNumber,
    /// A token that does not fit the grammar here: `rule { ... }` (no name).
    Expected,
    /// An expression nested deeper than the parser allows.
    TooDeep,
    /// A section keyword used twice in one rule: two `events:` sections.
    DuplicateSection,
    /// A rule with no `events` or no `condition` section.
    MissingSection,
    /// Two rules with one name in the set being loaded.
    DuplicateRule,
    /// Valid YARA-L that this engine does not evaluate yet: `match:`.
    Unsupported,
    /// A regular expression the regex engine refuses: `re.regex($e.f, "(")`.
    BadRegex,
    /// A condition that names a variable the events section does not
    /// define: `condition: $x` in a rule over `$e`.
    UnknownVariable,
    /// A function that does not exist: `strings.frobnicate($e.f)`.
    UnknownFunction,
    /// A function called with the wrong number or kind of arguments.
    BadArguments,
    /// A placeholder that is used but never assigned, or assigned where
    /// its value would depend on which branch matched: `$x` inside `or`.
    BadPlaceholder,
    /// An `options` entry that does not exist or has a wrong value.
    BadOption,
    /// A comparison between operands that cannot be compared:
    /// `"a" = "b"`, or a field with itself.
    BadComparison,
    /// A reference list the host did not give: `$e.f in %nowhere`.
    UnknownList,
    /// A list entry that is not valid for its use: `in cidr %l` with an
    /// entry `10.0.0.0/33`.
    BadListEntry,
    /// Warning: a field path the UDM does not have: `$e.principal.hostnme`.
    UnknownField,
    /// Warning: an enum value that does not exist:
    /// `$e.metadata.event_type = "USER_LOGON"`.
    UnknownEnumValue,
    /// Warning: a comparison that can never hold:
    /// `$e.target.port = "https"`, or one field equal to two values.
    NeverHolds,
    /// Warning: a CloudTrail or Azure action name compared with
    /// `target.resource.name`, where SecOps puts the affected resource:
    /// `$e.target.resource.name = "CreateUser"`.
    ActionInResourceName,
    /// Warning: `nocase` on an enum field, which SecOps refuses:
    /// `$e.metadata.event_type = "user_login" nocase`.
    NocaseOnEnum,
    /// Warning, from `tripline check` only: a reference list or data table
    /// column that was not given, so its entries could not be checked:
    /// `$e.principal.ip in cidr %office_ranges`. Rules that run need it.
    ListNotGiven,
    /// Warning: an escape that double-quoted strings do not have, in a
    /// `meta` value, where it is kept as written:
    /// `description = "writes to \TEMPLATE\LAYOUTS"`.
    MetaEscape,
}

impl Code {
    /// The code as written in messages and documentation, e.g. `E0201`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnexpectedChar => "E0101",
            Code::Unterminated => "E0102",
            Code::BadEscape => "E0103",
            Code::BadNumber => "E0104",
            Code::Expected => "E0201",
            Code::TooDeep => "E0202",
            Code::DuplicateSection => "E0203",
            Code::MissingSection => "E0204",
            Code::DuplicateRule => "E0301",
            Code::Unsupported => "E0302",
            Code::BadRegex => "E0303",
            Code::UnknownVariable => "E0304",
            Code::UnknownFunction => "E0305",
            Code::BadArguments => "E0306",
            Code::BadPlaceholder => "E0307",
            Code::BadOption => "E0308",
            Code::BadComparison => "E0309",
            Code::UnknownList => "E0310",
            Code::BadListEntry => "E0311",
            Code::UnknownField => "W0401",
            Code::UnknownEnumValue => "W0402",
            Code::NeverHolds => "W0403",
            Code::ActionInResourceName => "W0404",
            Code::NocaseOnEnum => "W0405",
            Code::ListNotGiven => "W0406",
            Code::MetaEscape => "W0407",
        }
    }

    /// Whether the code is a warning rather than an error.
    pub fn is_warning(self) -> bool {
        self.as_str().starts_with('W')
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A half-open byte range `start..end` of a rule source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    /// The smallest span that covers both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// One problem in a rule source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    /// What was expected and what was found.
    pub message: String,
    /// The rule the problem is in, once its name is known.
    pub rule: Option<String>,
    pub span: Span,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), rule: None, span }
    }
}

/// A rule source text with the name diagnostics use for it.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// A diagnostic's position as people read it: lines and columns from 1,
/// columns and length in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub length: u32,
}

impl Source<'_> {
    /// Works out the line, column and length of `span`. A span that runs
    /// past the end of its line is cut at the line's end.
    pub fn position(&self, span: Span) -> Position {
        let start = (span.start as usize).min(self.text.len());
        let before = &self.text[..start];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() as u32 + 1;
        let column = self.text[line_start..start].chars().count() as u32 + 1;
        let rest = &self.text[start..];
        let line_rest = &rest[..rest.find('\n').unwrap_or(rest.len())];
        let end = (span.end as usize).saturating_sub(start).min(line_rest.len());
        let length = line_rest[..floor_char_boundary(line_rest, end)].chars().count().max(1);
        Position { line, column, length: length as u32 }
    }

    /// The text of line `line` (from 1), without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        self.text.split('\n').nth(line as usize - 1).unwrap_or("").trim_end_matches('\r')
    }

    /// Renders `diag` for a terminal: the code and message, the place, and
    /// the source line with a caret under the span.
    pub fn render(&self, diag: &Diagnostic) -> String {
        let pos = self.position(diag.span);
        render_at(self, pos, diag.code.as_str(), &diag.message, diag.rule.as_deref())
    }
}

/// Renders a diagnostic already resolved to a [`Position`], as the host
/// receives them from the component.
pub fn render_at(
    src: &Source<'_>,
    pos: Position,
    code: &str,
    message: &str,
    rule: Option<&str>,
) -> String {
    let line_text = src.line_text(pos.line);
    let gutter = pos.line.to_string().len();
    let rule = rule.map(|r| format!(" in rule `{r}`")).unwrap_or_default();
    // Keep tabs so that the caret lines up under tab-indented source.
    let pad: String = line_text
        .chars()
        .take(pos.column.saturating_sub(1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let sp = " ".repeat(gutter);
    let level = if code.starts_with('W') { "warning" } else { "error" };
    format!(
        "{level}[{code}]: {message}\n{sp} --> {name}:{line}:{col}{rule}\n{sp} |\n{line:>gutter$} | \
         {line_text}\n{sp} | {pad}{carets}\n",
        name = src.name,
        line = pos.line,
        col = pos.column,
        carets = "^".repeat(pos.length.max(1) as usize),
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_characters_from_one() {
        let src = Source { name: "r.yaral", text: "rule a {\n  événement: x\n}" };
        let at = src.text.find("x").unwrap();
        let pos = src.position(Span::new(at, at + 1));
        assert_eq!(pos, Position { line: 2, column: 14, length: 1 });
    }

    #[test]
    fn render_puts_a_caret_under_the_span() {
        let src = Source { name: "r.yaral", text: "rule a {\n  evnts:\n}" };
        let mut diag = Diagnostic::new(Code::Expected, Span::new(11, 16), "expected a section");
        diag.rule = Some("a".into());
        let text = src.render(&diag);
        assert_eq!(
            text,
            "error[E0201]: expected a section\n  --> r.yaral:2:3 in rule `a`\n  |\n2 |   evnts:\n  \
             |   ^^^^^\n"
        );
    }
}
