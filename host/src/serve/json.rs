//! Where each event of a JSON body starts and ends.
//!
//! A JSON batch is cut into its events so that each can be evaluated and
//! tagged on its own, then put back where it was, with every byte between
//! events left as it came: nothing is decoded or re-encoded. The scanner
//! checks that the whole body is well-formed JSON, so that a body that is
//! not gets a 400 naming the place, and records the byte range of each
//! top-level event. It keeps an explicit stack instead of recursing, so no
//! nesting can overflow the thread's stack; how deep an event may nest is
//! the component's to judge, as it is for NDJSON lines.

use std::fmt;
use std::ops::Range;

/// How the events of a JSON body are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One array; its elements are the events.
    Array,
    /// One value, or several one after another with optional whitespace
    /// between them: a single event, or the concatenated objects that some
    /// Fluent Bit versions send as `application/json` for `json_lines` and
    /// `json_stream`.
    Sequence,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Array => "json array",
            Layout::Sequence => "json values",
        }
    }
}

/// Why a body is not JSON, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset in the (decompressed) body, from 0.
    pub offset: usize,
    pub expected: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {} at byte {}", self.expected, self.offset)
    }
}

/// The layout of `body` and the byte range of each event in it. A body of
/// nothing but whitespace holds no events.
pub fn split(body: &[u8]) -> Result<(Layout, Vec<Range<usize>>), JsonError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(JsonError { offset: e.valid_up_to(), expected: "valid UTF-8" });
    }
    let mut sc = Scanner { b: body, pos: 0, stack: Vec::new() };
    let mut events = Vec::new();
    sc.ws();
    if sc.peek() != Some(b'[') {
        while sc.pos < body.len() {
            let start = sc.pos;
            sc.value()?;
            events.push(start..sc.pos);
            sc.ws();
        }
        return Ok((Layout::Sequence, events));
    }
    sc.pos += 1;
    sc.ws();
    if sc.peek() == Some(b']') {
        sc.pos += 1;
    } else {
        loop {
            sc.ws();
            let start = sc.pos;
            sc.value()?;
            events.push(start..sc.pos);
            sc.ws();
            match sc.peek() {
                Some(b',') => sc.pos += 1,
                Some(b']') => {
                    sc.pos += 1;
                    break;
                }
                _ => return Err(sc.expected("`,` or `]`")),
            }
        }
    }
    sc.ws();
    if sc.pos < body.len() {
        return Err(sc.expected("the end of the body after the array"));
    }
    Ok((Layout::Array, events))
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    /// The closing bracket of each container the scanner is inside.
    stack: Vec<u8>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn expected(&self, what: &'static str) -> JsonError {
        JsonError { offset: self.pos, expected: what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// One whole value, starting at the current position.
    fn value(&mut self) -> Result<(), JsonError> {
        self.stack.clear();
        loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() != Some(b'}') {
                        self.stack.push(b'}');
                        self.key()?;
                        continue;
                    }
                    self.pos += 1;
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() != Some(b']') {
                        self.stack.push(b']');
                        continue;
                    }
                    self.pos += 1;
                }
                Some(b'"') => self.string()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.expected("a JSON value")),
            }
            // A value just ended: close every container it completes, up
            // to the next member or element.
            loop {
                let Some(&close) = self.stack.last() else { return Ok(()) };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    _ if close == b'}' => return Err(self.expected("`,` or `}`")),
                    _ => return Err(self.expected("`,` or `]`")),
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.expected("a string key"));
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.expected("`:`"));
        }
        self.pos += 1;
        Ok(())
    }

    fn string(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            // Most bytes need no look: skip to the next one that does.
            let rest = &self.b[self.pos..];
            let skip = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            let Some(skip) = skip else {
                self.pos = self.b.len();
                return Err(self.expected("`\"` to close the string"));
            };
            self.pos += skip;
            match self.b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.escape()?,
                _ => return Err(self.expected("a control character to be escaped")),
            }
        }
    }

    fn escape(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
            Some(b'u') => {
                self.pos += 1;
                for _ in 0..4 {
                    if !self.peek().is_some_and(|h| h.is_ascii_hexdigit()) {
                        return Err(self.expected("four hex digits after `\\u`"));
                    }
                    self.pos += 1;
                }
            }
            _ => return Err(self.expected("an escape such as `\\n` or `\\u00e9`")),
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        if !self.b[self.pos..].starts_with(word) {
            return Err(self.expected("a JSON value"));
        }
        self.pos += word.len();
        Ok(())
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.expected("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.expected("a digit after the decimal point"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.expected("a digit in the exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> Vec<&str> {
        let (_, ranges) = split(body.as_bytes()).unwrap();
        ranges.into_iter().map(|r| &body[r]).collect()
    }

    #[test]
    fn finds_the_elements_of_an_array() {
        let body = " [ {\"a\": [1, {\"b\": \"]\"}]} ,\n{}, 3 ,\"x\\\"\" ]\n";
        assert_eq!(split(body.as_bytes()).unwrap().0, Layout::Array);
        assert_eq!(events(body), ["{\"a\": [1, {\"b\": \"]\"}]}", "{}", "3", "\"x\\\"\""]);
        assert_eq!(events("[]"), Vec::<&str>::new());
        assert_eq!(events(" [ ] "), Vec::<&str>::new());
    }

    #[test]
    fn finds_values_one_after_another() {
        assert_eq!(split(b"{\"a\":1}").unwrap().0, Layout::Sequence);
        assert_eq!(events(" {\"a\":1} "), ["{\"a\":1}"]);
        assert_eq!(events("{\"a\":1}\n{\"b\":\n2}\n"), ["{\"a\":1}", "{\"b\":\n2}"]);
        assert_eq!(events("{}{}"), ["{}", "{}"]);
        assert_eq!(events(""), Vec::<&str>::new());
        assert_eq!(events(" \n"), Vec::<&str>::new());
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let err = |body: &str| split(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(err("[{\"a\":1}"), "expected `,` or `]` at byte 8");
        assert_eq!(err("{\"a\" 1}"), "expected `:` at byte 5");
        assert_eq!(err("{\"a\":1,}"), "expected a string key at byte 7");
        assert_eq!(err("[1] x"), "expected the end of the body after the array at byte 4");
        assert_eq!(err("{\"a\":tru}"), "expected a JSON value at byte 5");
        assert_eq!(err("{\"a\":\"x"), "expected `\"` to close the string at byte 7");
        assert_eq!(err("[\"\\x\"]"), "expected an escape such as `\\n` or `\\u00e9` at byte 3");
        assert_eq!(err("[-]"), "expected a digit at byte 2");
        assert_eq!(err("[1.]"), "expected a digit after the decimal point at byte 3");
        assert_eq!(err("not json"), "expected a JSON value at byte 0");
        assert_eq!(split(b"[\"\xff\"]").unwrap_err().expected, "valid UTF-8");
    }

    #[test]
    fn agrees_with_serde_json_on_single_values() {
        let cases = [
            "{}",
            "[]",
            "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}",
            "[1, -0, 0.5, -1.5e10, 2E-3, 1e+2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "[\"\\u00e9\\n\\t\\/\\\\\\\"\"]",
            "[\"\\u00g9\"]",
            "[\"a\tb\"]",
            "{\"a\":1,}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{1:2}",
            "[nul]",
            "[true false]",
            "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
            "[[[[[[]]]]]",
            "[\"é\", \"日本\"]",
            " \t\r\n[ 1 ] \t\r\n",
        ];
        for case in cases {
            let ours = split(case.as_bytes()).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(ours, theirs, "{case}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 1_000_000;
        let body = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(split(body.as_bytes()).unwrap().1.len(), 1);
    }
}
