//! The parser: tokens to the syntax tree of each rule.
//!
//! Precedence, loosest first: the implied `and` between the lines of
//! `events`; `or`; `and`; `not`; comparisons; `+ -`; `* /`; unary `-`.
//! So `a or b` on one line and `c` on the next is `(a or b) and c`, as in
//! Google SecOps.
//!
//! A problem inside a section is recorded and the parser skips to the next
//! section, so that one pass reports the problems of every section and rule.

use super::ast::*;
use super::lexer::{Tok, Token};
use crate::diag::{Code, Diagnostic, Span};

/// How deep expressions may nest. The guest runs on a small stack, and no
/// real rule comes near this.
pub const MAX_DEPTH: u32 = 48;

const SECTIONS: [&str; 6] = ["meta", "events", "match", "outcome", "condition", "options"];

/// How "expected" messages name the sections.
const SECTION_LIST: &str =
    "a section (`meta:`, `events:`, `match:`, `outcome:`, `condition:`, `options:`)";

/// Words that mean something in expressions and so cannot be enum names.
const RESERVED: [&str; 11] =
    ["and", "or", "not", "nocase", "in", "regex", "cidr", "any", "all", "over", "rule"];

/// Parses every rule in `tokens`. Rules with problems are left out of the
/// result; their problems go to `diags`.
pub fn parse(tokens: &[Token], diags: &mut Vec<Diagnostic>) -> Vec<Rule> {
    let mut p = Parser { tokens, pos: 0, depth: 0, diags, rule_failed: false };
    let mut rules = Vec::new();
    while p.peek() != &Tok::Eof {
        if let Some(rule) = p.rule() {
            rules.push(rule);
        }
    }
    rules
}

struct Parser<'t, 'd> {
    tokens: &'t [Token],
    pos: usize,
    depth: u32,
    diags: &'d mut Vec<Diagnostic>,
    /// Set when the rule being parsed had a problem.
    rule_failed: bool,
}

/// A parse failure already recorded in the diagnostics.
struct Failed;

type PResult<T> = Result<T, Failed>;

impl Parser<'_, '_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    fn bump(&mut self) -> Token {
        let tok = self.tokens[self.pos].clone();
        if tok.tok != Tok::Eof {
            self.pos += 1;
        }
        tok
    }

    /// Steps back over a token just taken by `bump`.
    fn unbump(&mut self, tok: &Tok) {
        if tok != &Tok::Eof {
            self.pos -= 1;
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, kw: &str) -> bool {
        if self.peek().is_word(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn fail<T>(&mut self, code: Code, span: Span, message: String) -> PResult<T> {
        self.diags.push(Diagnostic::new(code, span, message));
        self.rule_failed = true;
        Err(Failed)
    }

    fn expected<T>(&mut self, what: &str) -> PResult<T> {
        let found = self.peek().describe();
        self.fail(Code::Expected, self.span(), format!("expected {what}, found {found}"))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<Span> {
        if self.peek() == &tok {
            Ok(self.bump().span)
        } else {
            self.expected(what)
        }
    }

    /// Whether the parser stands at `name:` for a section name.
    fn at_section(&self) -> bool {
        matches!(self.peek(), Tok::Word(w) if SECTIONS.iter().any(|s| w.eq_ignore_ascii_case(s)))
            && self.peek_at(1) == &Tok::Colon
    }

    /// Whether the current section's body is over.
    fn at_section_end(&self) -> bool {
        self.at_section() || matches!(self.peek(), Tok::RBrace | Tok::Eof)
    }

    /// After a problem: skips to the next section or the end of the rule.
    fn recover(&mut self) {
        while !self.at_section_end() && !self.peek().is_word("rule") {
            self.bump();
        }
    }

    fn rule(&mut self) -> Option<Rule> {
        self.rule_failed = false;
        self.depth = 0;
        let first_diag = self.diags.len();
        let rule = self.rule_body();
        let name = rule.as_ref().map(|r| r.name.clone());
        // Every problem found inside the rule is labelled with its name.
        if let Some(name) = &name {
            for d in &mut self.diags[first_diag..] {
                d.rule.get_or_insert_with(|| name.clone());
            }
        }
        match rule {
            Some(rule) if !self.rule_failed => Some(rule),
            _ => None,
        }
    }

    fn rule_body(&mut self) -> Option<Rule> {
        if !self.peek().is_word("rule") {
            let _ = self.expected::<()>("`rule`");
            // Skip to the next `rule` keyword, or to the end.
            self.bump();
            while !self.peek().is_word("rule") && self.peek() != &Tok::Eof {
                self.bump();
            }
            return None;
        }
        self.bump();
        let (name, name_span) = match self.peek().clone() {
            Tok::Word(w) if !w.eq_ignore_ascii_case("rule") => (w, self.bump().span),
            _ => {
                let _ = self.expected::<()>("a rule name");
                ("<unnamed>".to_string(), self.span())
            }
        };
        let mut rule = Rule {
            name,
            name_span,
            meta: Vec::new(),
            events: None,
            match_section: None,
            outcome: None,
            condition: None,
            options: None,
        };
        if self.expect(Tok::LBrace, "`{` after the rule name").is_err() {
            self.recover();
        }
        let mut seen: Vec<String> = Vec::new();
        loop {
            match self.peek() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Eof => {
                    let _ = self.expected::<()>("`}` to close the rule");
                    break;
                }
                Tok::Word(w) if w.eq_ignore_ascii_case("rule") => {
                    let _ = self.expected::<()>("`}` to close the rule");
                    break;
                }
                _ => {}
            }
            if !self.at_section() {
                let _ = self.expected::<()>(SECTION_LIST);
                self.bump();
                self.recover();
                continue;
            }
            let keyword = self.span();
            let Tok::Word(word) = self.bump().tok else {
                unreachable!("at_section checked a word")
            };
            self.bump(); // the colon
            let section = word.to_ascii_lowercase();
            if seen.contains(&section) {
                let _ = self.fail::<()>(
                    Code::DuplicateSection,
                    keyword,
                    format!("expected one `{section}` section per rule, found a second"),
                );
            }
            seen.push(section.clone());
            if self.section(&section, keyword, &mut rule).is_err() {
                self.recover();
            }
        }
        for (section, present) in
            [("events", rule.events.is_some()), ("condition", rule.condition.is_some())]
        {
            if !present && !self.rule_failed {
                let _ = self.fail::<()>(
                    Code::MissingSection,
                    rule.name_span,
                    format!("expected a `{section}` section in rule `{}`", rule.name),
                );
            }
        }
        Some(rule)
    }

    fn section(&mut self, name: &str, keyword: Span, rule: &mut Rule) -> PResult<()> {
        match name {
            "meta" => {
                rule.meta = self.key_values("a meta key")?.into_iter().map(meta_entry).collect()
            }
            "options" => {
                let body =
                    self.key_values("an option name")?.into_iter().map(option_entry).collect();
                rule.options = Some(Section { keyword, body });
            }
            "events" => {
                let mut body = Vec::new();
                while !self.at_section_end() {
                    body.push(self.or_expr()?);
                }
                rule.events = Some(Section { keyword, body });
            }
            "match" => rule.match_section = Some(Section { keyword, body: self.match_body()? }),
            "outcome" => {
                let mut body = Vec::new();
                while !self.at_section_end() {
                    let start = self.span();
                    let Tok::Var(var) = self.peek().clone() else {
                        return self.expected("an outcome variable such as `$risk_score`");
                    };
                    self.bump();
                    self.expect(Tok::Eq, "`=` after the outcome variable")?;
                    let value = self.or_expr()?;
                    body.push(OutcomeAssign { var, span: start.to(value.span()), value });
                }
                rule.outcome = Some(Section { keyword, body });
            }
            "condition" => {
                if self.at_section_end() {
                    return self.expected("a condition such as `$e`");
                }
                let body = self.or_expr()?;
                if !self.at_section_end() {
                    return self.expected("the end of the condition");
                }
                rule.condition = Some(Section { keyword, body });
            }
            _ => unreachable!("at_section admits only known sections"),
        }
        Ok(())
    }

    fn key_values(&mut self, what: &str) -> PResult<Vec<(String, Literal, Span)>> {
        let mut out = Vec::new();
        while !self.at_section_end() {
            let start = self.span();
            let Tok::Word(key) = self.peek().clone() else { return self.expected(what) };
            if self.peek_at(1) == &Tok::Colon {
                return self.expected(SECTION_LIST);
            }
            self.bump();
            self.expect(Tok::Eq, "`=`")?;
            let value = match self.bump().tok {
                Tok::Str(s) | Tok::Raw(s) => Literal::Str(s),
                Tok::Int(i) => Literal::Int(i),
                Tok::Float(f) => Literal::Float(f),
                Tok::Minus if matches!(self.peek(), Tok::Int(_)) => {
                    let Tok::Int(i) = self.bump().tok else { unreachable!("checked above") };
                    Literal::Int(-i)
                }
                Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
                Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
                other => {
                    self.unbump(&other);
                    return self.expected("a string, number or boolean");
                }
            };
            out.push((key, value, start.to(self.prev_span())));
        }
        Ok(out)
    }

    fn match_body(&mut self) -> PResult<MatchSection> {
        let mut vars = Vec::new();
        loop {
            let Tok::Var(v) = self.peek().clone() else {
                return self.expected("a placeholder such as `$user`");
            };
            vars.push((v, self.bump().span));
            if !self.eat(&Tok::Comma) {
                break;
            }
            // A comma after the last placeholder (`$user, $host, over 5m`)
            // is a slip that a published Google rule makes; it changes
            // nothing.
            if self.peek().is_word("over") || self.peek().is_word("by") {
                break;
            }
        }
        // `over` for a hop or sliding window; `by` as SecOps' newer syntax
        // writes a tumbling one.
        if !self.eat_word("over") && !self.eat_word("by") {
            return self.expected("`over` and a window such as `5m`");
        }
        let window = match self.bump().tok {
            Tok::Duration(window) => window,
            other => {
                self.unbump(&other);
                return self.expected("a window such as `5m`, `1h` or `2d`");
            }
        };
        let after = self.peek().is_word("after");
        let sliding = if after || self.peek().is_word("before") {
            self.bump();
            let Tok::Var(anchor) = self.peek().clone() else {
                return self.expected("the event variable the sliding window follows");
            };
            Some((after, anchor, self.bump().span))
        } else {
            None
        };
        Ok(MatchSection { vars, window, sliding })
    }

    /// Runs `f` one nesting level deeper, refusing to pass [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            let span = self.span();
            return self.fail(
                Code::TooDeep,
                span,
                format!("expected expressions nested at most {MAX_DEPTH} deep"),
            );
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        self.nested(|p| {
            let first = p.and_expr()?;
            if !p.peek().is_word("or") {
                return Ok(first);
            }
            let mut items = vec![first];
            while p.eat_word("or") {
                items.push(p.and_expr()?);
            }
            let span = items[0].span().to(items[items.len() - 1].span());
            Ok(Expr::Or(items, span))
        })
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let first = self.not_expr()?;
        if !self.peek().is_word("and") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_word("and") {
            items.push(self.not_expr()?);
        }
        let span = items[0].span().to(items[items.len() - 1].span());
        Ok(Expr::And(items, span))
    }

    fn not_expr(&mut self) -> PResult<Expr> {
        if self.peek().is_word("not") || self.peek() == &Tok::Bang {
            let start = self.bump().span;
            let inner = self.nested(|p| p.not_expr())?;
            let span = start.to(inner.span());
            return Ok(Expr::Not(Box::new(inner), span));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let lhs = self.value_expr()?;
        let op = match self.peek() {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => return self.in_list(lhs, false),
            Tok::Word(w) if w.eq_ignore_ascii_case("not") && self.peek_at(1).is_word("in") => {
                self.bump();
                return self.in_list(lhs, true);
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("nocase") => {
                let Expr::Call { name, args, span, .. } = lhs else {
                    return self.expected("a comparison operator before `nocase`");
                };
                let span = span.to(self.bump().span);
                return Ok(Expr::Call { name, args, nocase: true, span });
            }
            _ => return Ok(lhs),
        };
        self.bump();
        if matches!(self.peek(), Tok::List(_)) && matches!(op, CmpOp::Eq | CmpOp::Ne) {
            // `$e.f = %table.column` joins the event with a data table: the
            // field must equal a value of the column.
            return self.list_operand(lhs, ListKind::Plain, op == CmpOp::Ne);
        }
        let rhs = self.value_expr()?;
        let nocase = self.eat_word("nocase");
        let span = lhs.span().to(self.prev_span());
        Ok(Expr::Compare { lhs: Box::new(lhs), op, rhs: Box::new(rhs), nocase, span })
    }

    fn in_list(&mut self, value: Expr, negated: bool) -> PResult<Expr> {
        self.bump(); // `in`
        let kind = if self.eat_word("regex") {
            ListKind::Regex
        } else if self.eat_word("cidr") {
            ListKind::Cidr
        } else {
            ListKind::Plain
        };
        self.list_operand(value, kind, negated)
    }

    /// `%list` or `%table.column`, tested against `value`.
    fn list_operand(&mut self, value: Expr, kind: ListKind, negated: bool) -> PResult<Expr> {
        let Tok::List(list) = self.peek().clone() else {
            return self.expected("a reference list such as `%allowlist`");
        };
        let mut list_span = self.bump().span;
        // `%table.column` names a column of a data table.
        let column = if self.peek() == &Tok::Dot && matches!(self.peek_at(1), Tok::Word(_)) {
            self.bump();
            let Tok::Word(column) = self.bump().tok else { unreachable!("checked a word") };
            list_span = list_span.to(self.prev_span());
            Some(column)
        } else {
            None
        };
        let nocase = self.eat_word("nocase");
        let span = value.span().to(self.prev_span());
        let expr =
            Expr::InList { value: Box::new(value), list, column, kind, nocase, span, list_span };
        Ok(if negated { Expr::Not(Box::new(expr), span) } else { expr })
    }

    fn value_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.term()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Arith { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
    }

    fn term(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Arith { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.peek() == &Tok::Minus {
            let start = self.bump().span;
            let inner = self.nested(|p| p.unary())?;
            let span = start.to(inner.span());
            return Ok(match inner {
                Expr::Literal(Literal::Int(i), _) => Expr::Literal(Literal::Int(-i), span),
                Expr::Literal(Literal::Float(f), _) => Expr::Literal(Literal::Float(-f), span),
                other => Expr::Neg(Box::new(other), span),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        if self.at_section_end() {
            return self.expected("a field, placeholder, literal or function call");
        }
        let token = self.bump();
        let span = token.span;
        Ok(match token.tok {
            Tok::LParen => {
                let inner = self.or_expr()?;
                self.expect(Tok::RParen, "`)`")?;
                // Keep the parentheses' span only for error positions of
                // the group as a whole; the tree has no node for them.
                inner
            }
            Tok::Var(var) => {
                if self.peek() == &Tok::Dot || self.peek() == &Tok::LBracket {
                    Expr::Field(self.field_path(var, span)?)
                } else {
                    Expr::Var(var, span)
                }
            }
            Tok::Count(var) => Expr::Count(var, span),
            Tok::Str(s) | Tok::Raw(s) => Expr::Literal(Literal::Str(s), span),
            Tok::Regex(r) => Expr::Regex(r, span),
            Tok::Int(i) => Expr::Literal(Literal::Int(i), span),
            Tok::Float(f) => Expr::Literal(Literal::Float(f), span),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => {
                Expr::Literal(Literal::Bool(true), span)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => {
                Expr::Literal(Literal::Bool(false), span)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("any") || w.eq_ignore_ascii_case("all") => {
                let Tok::Var(var) = self.peek().clone() else {
                    return self
                        .expected(&format!("a field such as `$e.principal.ip` after `{w}`"));
                };
                let var_span = self.bump().span;
                let field = self.field_path(var, var_span)?;
                let span = span.to(field.span);
                Expr::Quantified { all: w.eq_ignore_ascii_case("all"), field, span }
            }
            Tok::Word(w) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => {
                self.word_or_call(w, span)?
            }
            other => {
                self.unbump(&other);
                return self.expected("a field, placeholder, literal or function call");
            }
        })
    }

    fn word_or_call(&mut self, first: String, start: Span) -> PResult<Expr> {
        let mut name = first;
        while self.peek() == &Tok::Dot && matches!(self.peek_at(1), Tok::Word(_)) {
            self.bump();
            let Tok::Word(part) = self.bump().tok else { unreachable!("checked a word") };
            name.push('.');
            name.push_str(&part);
        }
        if self.peek() != &Tok::LParen {
            if name.contains('.') {
                return self.expected(&format!("`(` to call `{name}`"));
            }
            return Ok(Expr::Word(name, start.to(self.prev_span())));
        }
        self.bump();
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                args.push(self.nested(|p| p.or_expr())?);
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(Tok::Comma, "`,` or `)` in the argument list")?;
            }
        }
        Ok(Expr::Call { name, args, nocase: false, span: start.to(self.prev_span()) })
    }

    fn field_path(&mut self, var: String, start: Span) -> PResult<FieldRef> {
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let Tok::Word(name) = self.peek().clone() else {
                        return self.expected("a field name after `.`");
                    };
                    self.bump();
                    path.push(PathSeg::Name(name));
                }
                Tok::LBracket => {
                    self.bump();
                    let seg = match self.bump().tok {
                        Tok::Str(key) | Tok::Raw(key) => PathSeg::Key(key),
                        Tok::Int(i) => PathSeg::Index(i),
                        other => {
                            self.unbump(&other);
                            return self.expected(
                                "a map key such as `[\"name\"]` or an index such as `[0]`",
                            );
                        }
                    };
                    self.expect(Tok::RBracket, "`]`")?;
                    path.push(seg);
                }
                _ => break,
            }
        }
        Ok(FieldRef { var, path, span: start.to(self.prev_span()) })
    }
}

fn meta_entry((key, value, span): (String, Literal, Span)) -> MetaEntry {
    MetaEntry { key, value, span }
}

fn option_entry((key, value, span): (String, Literal, Span)) -> OptionEntry {
    OptionEntry { key, value, span }
}
