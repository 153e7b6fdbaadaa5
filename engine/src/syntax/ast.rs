//! The syntax tree of a YARA-L 2.0 rule, as written.
//!
//! The tree keeps every construct the parser accepts, including those the
//! compiler does not evaluate yet, so that the compiler can refuse them by
//! name and place instead of the parser stumbling over them.

use crate::diag::Span;

/// `rule name { sections }`
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub name_span: Span,
    pub meta: Vec<MetaEntry>,
    pub events: Option<Section<Vec<Expr>>>,
    pub match_section: Option<Section<MatchSection>>,
    pub outcome: Option<Section<Vec<OutcomeAssign>>>,
    pub condition: Option<Section<Expr>>,
    pub options: Option<Section<Vec<OptionEntry>>>,
}

/// A section's body and the span of its keyword.
#[derive(Clone, Debug, PartialEq)]
pub struct Section<T> {
    pub keyword: Span,
    pub body: T,
}

/// `key = value` in `meta`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaEntry {
    pub key: String,
    pub value: Literal,
    pub span: Span,
}

/// `key = value` in `options`.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionEntry {
    pub key: String,
    pub value: Literal,
    pub span: Span,
}

/// `match: $user, $ip over 10m`, or a sliding window `$user over 1h after
/// $login`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchSection {
    pub vars: Vec<(String, Span)>,
    /// The window in seconds.
    pub window: u64,
    /// For a sliding window: `after` (true) or `before`, and the event
    /// variable the window is anchored on.
    pub sliding: Option<(bool, String, Span)>,
}

/// `$risk_score = max(50)` in `outcome`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeAssign {
    pub var: String,
    pub value: Expr,
    pub span: Span,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `"text"` or `` `text` ``
    Str(String),
    /// `42`, `-1`
    Int(i64),
    /// `1.5`
    Float(f64),
    /// `true`, `false`
    Bool(bool),
}

/// One step of a field path after the event variable.
#[derive(Clone, Debug, PartialEq)]
pub enum PathSeg {
    /// `.principal`
    Name(String),
    /// `["key"]`
    Key(String),
    /// `[0]`
    Index(i64),
}

/// `$e.principal.user.userid`
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRef {
    pub var: String,
    pub path: Vec<PathSeg>,
    pub span: Span,
}

impl FieldRef {
    /// The path as a dotted UDM name (`principal.user.userid`), or `None`
    /// when it holds map keys or indexes.
    pub fn dotted(&self) -> Option<String> {
        let mut out = String::new();
        for seg in &self.path {
            let PathSeg::Name(name) = seg else { return None };
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
        }
        Some(out)
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Arithmetic operators, found in `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// An expression: a predicate in `events` and `condition`, or a value in
/// `outcome` and as an operand of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `a and b`, and the lines of `events`, which are joined by an implied
    /// `and` that binds looser than `or`.
    And(Vec<Expr>, Span),
    /// `a or b`
    Or(Vec<Expr>, Span),
    /// `not a`
    Not(Box<Expr>, Span),
    /// `a = b`, `a != b nocase`, `a < 5`
    Compare {
        lhs: Box<Expr>,
        op: CmpOp,
        rhs: Box<Expr>,
        nocase: bool,
        span: Span,
    },
    /// `a in %list`, `a in regex %list`, `a in cidr %list`, and
    /// `a in %table.column` for a data table.
    InList {
        value: Box<Expr>,
        list: String,
        column: Option<String>,
        kind: ListKind,
        nocase: bool,
        span: Span,
        /// The span of `%list` itself.
        list_span: Span,
    },
    /// `re.regex($e.f, "p")`: a call; `nocase` may follow a call used as a
    /// predicate.
    Call {
        name: String,
        args: Vec<Expr>,
        nocase: bool,
        span: Span,
    },
    /// `any $e.f`, `all $e.f`: the comparison it stands in applies to every
    /// or any element of a repeated field.
    Quantified {
        all: bool,
        field: FieldRef,
        span: Span,
    },
    /// `$e.principal.ip`
    Field(FieldRef),
    /// `$src_ip` (a placeholder or outcome variable) or `$e` (the event
    /// variable itself, in `condition`).
    Var(String, Span),
    /// `#e`
    Count(String, Span),
    /// `/pattern/`
    Regex(String, Span),
    /// `USER_LOGIN`: a bare word, such as an enum value.
    Word(String, Span),
    Literal(Literal, Span),
    /// `a + b`
    Arith {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        span: Span,
    },
    /// `-a`
    Neg(Box<Expr>, Span),
}

/// The kind of reference list lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Plain,
    Regex,
    Cidr,
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::And(_, s)
            | Expr::Or(_, s)
            | Expr::Not(_, s)
            | Expr::Var(_, s)
            | Expr::Count(_, s)
            | Expr::Regex(_, s)
            | Expr::Word(_, s)
            | Expr::Literal(_, s)
            | Expr::Neg(_, s) => *s,
            Expr::Compare { span, .. }
            | Expr::InList { span, .. }
            | Expr::Call { span, .. }
            | Expr::Quantified { span, .. }
            | Expr::Arith { span, .. } => *span,
            Expr::Field(f) => f.span,
        }
    }
}
