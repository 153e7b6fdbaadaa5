//! The lexer: rule text to tokens.
//!
//! YARA-L needs one token of context: `/` starts a regex literal where no
//! operand has just ended (after `=`, `!=`, `(` or `,`), and is a division
//! sign everywhere else. Problems are
//! collected, not fatal; the bad characters are skipped so that the parser
//! can go on and report what follows.

use crate::diag::{Code, Diagnostic, Span};

/// One token. Words are kept as written; the parser compares keywords
/// without regard to case.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// `events`, `re`, `nocase`, `USER_LOGIN`
    Word(String),
    /// `$e`, `$src_ip`: the name without the `$`.
    Var(String),
    /// `#e`: an event count.
    Count(String),
    /// `%allowlist`: a reference list.
    List(String),
    /// `"text"`, with escapes resolved.
    Str(String),
    /// `` `text` ``: a raw string, taken as written.
    Raw(String),
    /// `/pattern/`, with `\/` resolved to `/`.
    Regex(String),
    Int(i64),
    Float(f64),
    /// `5m`, `1h`, `30s`, `2d`: a duration in seconds.
    Duration(u64),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    /// `!`, as in the condition `$e1 and !$e2`.
    Bang,
    Eof,
}

impl Tok {
    /// How the token is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Var(v) => format!("`${v}`"),
            Tok::Count(v) => format!("`#{v}`"),
            Tok::List(v) => format!("`%{v}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Raw(_) => "a raw string".into(),
            Tok::Regex(_) => "a regex literal".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Duration(_) => "a duration".into(),
            Tok::Eof => "the end of the source".into(),
            other => format!("`{}`", other.punct()),
        }
    }

    fn punct(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Bang => "!",
            _ => "?",
        }
    }

    /// Whether this is the word `kw`, in any case.
    pub fn is_word(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

/// A token and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `text` into tokens, ending with [`Tok::Eof`]. Problems go to
/// `diags`; the tokens around them are still returned.
pub fn lex(text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Token> {
    let mut lx = Lexer { text, bytes: text.as_bytes(), pos: 0, tokens: Vec::new(), diags };
    lx.run();
    lx.tokens
}

struct Lexer<'a, 'd> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    diags: &'d mut Vec<Diagnostic>,
}

impl Lexer<'_, '_> {
    fn run(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'/' if self.peek(1) == Some(b'/') => self.line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
                b'/' if self.regex_allowed() => self.regex(),
                b'"' => self.string(),
                b'`' => self.raw(),
                b'$' | b'#' | b'%' => self.sigil(b),
                b'0'..=b'9' => self.number(),
                b if is_word_start(b) => {
                    let word = self.take_while(is_word_byte).to_string();
                    self.push(Tok::Word(word), start);
                }
                _ => self.punct(start),
            }
        }
        let end = self.text.len();
        self.tokens.push(Token { tok: Tok::Eof, span: Span::new(end, end) });
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.tokens.push(Token { tok, span: Span::new(start, self.pos) });
    }

    fn error(&mut self, code: Code, start: usize, end: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, Span::new(start, end), message));
    }

    fn take_while(&mut self, pred: fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(|&b| pred(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// A regex literal may stand where an operand starts: after a
    /// comparison operator, or as a function argument. A division sign
    /// never can, since it needs an operand on its left.
    fn regex_allowed(&self) -> bool {
        matches!(
            self.tokens.last().map(|t| &t.tok),
            Some(Tok::Eq | Tok::Ne | Tok::LParen | Tok::Comma)
        )
    }

    fn line_comment(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|&b| b != b'\n') {
            self.pos += 1;
        }
    }

    fn block_comment(&mut self) {
        let start = self.pos;
        match self.text[self.pos + 2..].find("*/") {
            Some(i) => self.pos += 2 + i + 2,
            None => {
                self.pos = self.text.len();
                self.error(Code::Unterminated, start, start + 2, "expected `*/` to close comment");
            }
        }
    }

    fn sigil(&mut self, sigil: u8) {
        let start = self.pos;
        self.pos += 1;
        let name = self.take_while(is_word_byte).to_string();
        if name.is_empty() {
            let c = sigil as char;
            self.error(
                Code::UnexpectedChar,
                start,
                start + 1,
                format!("expected a name after `{c}`"),
            );
            return;
        }
        let tok = match sigil {
            b'$' => Tok::Var(name),
            b'#' => Tok::Count(name),
            _ => Tok::List(name),
        };
        self.push(tok, start);
    }

    fn number(&mut self) {
        let start = self.pos;
        self.take_while(|b| b.is_ascii_digit());
        let mut float = false;
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|b| b.is_ascii_digit()) {
            float = true;
            self.pos += 1;
            self.take_while(|b| b.is_ascii_digit());
        }
        let digits = &self.text[start..self.pos];
        // A unit right after the digits makes a duration, as in `over 5m`.
        if !float {
            if let Some(unit) = self.peek(0).and_then(duration_unit) {
                if !self.peek(1).is_some_and(is_word_byte) {
                    self.pos += 1;
                    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)) {
                        Some(secs) => self.push(Tok::Duration(secs), start),
                        None => {
                            self.error(Code::BadNumber, start, self.pos, "duration is too long")
                        }
                    }
                    return;
                }
            }
        }
        if self.peek(0).is_some_and(is_word_byte) {
            let end =
                self.pos + self.text[self.pos..].bytes().take_while(|&b| is_word_byte(b)).count();
            let found = &self.text[start..end];
            self.pos = end;
            // SecOps takes rule names that start with a digit, and Google's
            // own published rules use them (`rule 1_03_excessive_logins`).
            if self.tokens.last().is_some_and(|t| t.tok.is_word("rule")) {
                let name = found.to_string();
                self.push(Tok::Word(name), start);
                return;
            }
            self.error(Code::BadNumber, start, end, format!("expected a number, found `{found}`"));
            self.push(Tok::Int(0), start);
            return;
        }
        let tok = if float {
            digits.parse().map(Tok::Float).ok()
        } else {
            digits.parse().map(Tok::Int).ok()
        };
        match tok {
            Some(tok) => self.push(tok, start),
            None => {
                self.error(Code::BadNumber, start, self.pos, "number does not fit in 64 bits");
                self.push(Tok::Int(0), start);
            }
        }
    }

    fn string(&mut self) {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                self.error(Code::Unterminated, start, start + 1, "expected `\"` to close string");
                // Keep a token, so that the parser does not report the
                // missing literal a second time.
                self.push(Tok::Str(out), start);
                return;
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\n' => {
                    self.error(
                        Code::Unterminated,
                        start,
                        start + 1,
                        "expected `\"` before end of line",
                    );
                    self.push(Tok::Str(out), start);
                    return;
                }
                b'\\' => {
                    let esc = self.peek(1);
                    let resolved = match esc {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'n') => Some('\n'),
                        Some(b't') => Some('\t'),
                        Some(b'r') => Some('\r'),
                        _ => None,
                    };
                    match resolved {
                        Some(c) => out.push(c),
                        None => {
                            let shown = self.text[self.pos + 1..].chars().next().unwrap_or(' ');
                            let end = self.pos + 1 + shown.len_utf8();
                            self.error(
                                Code::BadEscape,
                                self.pos,
                                end,
                                format!(
                                    "expected one of `\\\"`, `\\\\`, `\\n`, `\\t`, `\\r`, \
                                     found `\\{shown}`; write `\\\\{shown}` or use a backtick \
                                     string"
                                ),
                            );
                            out.push('\\');
                            out.push(shown);
                        }
                    }
                    self.pos += 1 + esc.map_or(0, |_| {
                        self.text[self.pos + 1..].chars().next().map_or(1, char::len_utf8)
                    });
                }
                _ => {
                    let c = self.text[self.pos..].chars().next().expect("pos is in bounds");
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        self.push(Tok::Str(out), start);
    }

    fn raw(&mut self) {
        let start = self.pos;
        match self.text[start + 1..].find('`') {
            Some(len) => {
                self.pos = start + 1 + len + 1;
                self.push(Tok::Raw(self.text[start + 1..start + 1 + len].to_string()), start);
            }
            None => {
                self.pos = self.text.len();
                self.error(
                    Code::Unterminated,
                    start,
                    start + 1,
                    "expected `` ` `` to close raw string",
                );
                self.push(Tok::Raw(String::new()), start);
            }
        }
    }

    fn regex(&mut self) {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.bytes.get(self.pos) {
                None | Some(b'\n') => {
                    self.error(Code::Unterminated, start, start + 1, "expected `/` to close regex");
                    self.push(Tok::Regex(out), start);
                    return;
                }
                Some(b'/') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') if self.peek(1) == Some(b'/') => {
                    out.push('/');
                    self.pos += 2;
                }
                Some(b'\\') if self.peek(1).is_some() => {
                    // Other escapes belong to the regex syntax; keep both.
                    out.push('\\');
                    self.pos += 1;
                    let c = self.text[self.pos..].chars().next().expect("pos is in bounds");
                    out.push(c);
                    self.pos += c.len_utf8();
                }
                Some(_) => {
                    let c = self.text[self.pos..].chars().next().expect("pos is in bounds");
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        self.push(Tok::Regex(out), start);
    }

    fn punct(&mut self, start: usize) {
        let two = |lx: &Self, next: u8| lx.peek(1) == Some(next);
        let (tok, len) = match self.bytes[start] {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b':' => (Tok::Colon, 1),
            b'.' => (Tok::Dot, 1),
            b'=' => (Tok::Eq, 1),
            b'!' if two(self, b'=') => (Tok::Ne, 2),
            b'!' => (Tok::Bang, 1),
            b'<' if two(self, b'=') => (Tok::Le, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if two(self, b'=') => (Tok::Ge, 2),
            b'>' => (Tok::Gt, 1),
            b'+' => (Tok::Plus, 1),
            b'-' => (Tok::Minus, 1),
            b'*' => (Tok::Star, 1),
            b'/' => (Tok::Slash, 1),
            _ => {
                let c = self.text[start..].chars().next().expect("start is in bounds");
                self.pos += c.len_utf8();
                let shown =
                    if c.is_control() { c.escape_debug().to_string() } else { c.to_string() };
                self.error(Code::UnexpectedChar, start, self.pos, format!("unexpected `{shown}`"));
                return;
            }
        };
        self.pos += len;
        self.push(tok, start);
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn duration_unit(b: u8) -> Option<u64> {
    match b {
        b's' => Some(1),
        b'm' => Some(60),
        b'h' => Some(3600),
        b'd' => Some(86400),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        let mut diags = Vec::new();
        let out = lex(text, &mut diags).into_iter().map(|t| t.tok).collect();
        assert!(diags.is_empty(), "{diags:?}");
        out
    }

    #[test]
    fn field_paths_are_words_and_dots() {
        assert_eq!(
            toks("$e.principal.ip = $src_ip"),
            [
                Tok::Var("e".into()),
                Tok::Dot,
                Tok::Word("principal".into()),
                Tok::Dot,
                Tok::Word("ip".into()),
                Tok::Eq,
                Tok::Var("src_ip".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn slash_after_equals_starts_a_regex() {
        assert_eq!(
            toks(r"= /a\/b\d/ 4 / 2"),
            [Tok::Eq, Tok::Regex(r"a/b\d".into()), Tok::Int(4), Tok::Slash, Tok::Int(2), Tok::Eof]
        );
    }

    #[test]
    fn strings_resolve_escapes_and_raw_strings_do_not() {
        assert_eq!(
            toks(r#""a\"b\\c" `\d+\.`"#),
            [Tok::Str("a\"b\\c".into()), Tok::Raw(r"\d+\.".into()), Tok::Eof]
        );
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            toks("a // x\n/* y\n z */ b"),
            [Tok::Word("a".into()), Tok::Word("b".into()), Tok::Eof]
        );
    }

    #[test]
    fn durations_and_numbers() {
        assert_eq!(
            toks("5m 10 1.5 2d"),
            [Tok::Duration(300), Tok::Int(10), Tok::Float(1.5), Tok::Duration(172800), Tok::Eof]
        );
    }

    #[test]
    fn problems_are_collected_and_lexing_goes_on() {
        let mut diags = Vec::new();
        let tokens = lex("a @ \"x\\q\" b", &mut diags);
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::UnexpectedChar, Code::BadEscape]);
        assert_eq!(tokens.last().unwrap().tok, Tok::Eof);
        assert!(tokens.iter().any(|t| t.tok == Tok::Word("b".into())));
    }
}
