//! A validating JSON scanner that extracts only the values rules read.
//!
//! It walks an event's text once. Keys on a wanted path are followed; every
//! other value is checked for well-formedness and skipped without building
//! anything. Wanted scalars are recorded as byte ranges of the input; only
//! strings with escapes are copied, unescaped, into a scratch arena. After
//! warm-up the scanner allocates nothing per event.

use std::fmt;

use super::trie::{PathTrie, ROOT};

/// How deeply objects and arrays may nest. Deeper events are refused
/// rather than risk the guest's small stack.
pub const MAX_DEPTH: u32 = 128;

/// What kind of value a capture holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Number,
    Bool,
    /// An object stands at a wanted path. It is not a value, but its
    /// presence tells event shapes apart.
    Object,
    /// An array of objects or arrays, or `null`: not a value either.
    Container,
}

/// A value found at a wanted path: `start..end` of the event text, or of
/// the arena when `in_arena` (an unescaped string).
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    pub start: u32,
    pub end: u32,
    pub in_arena: bool,
    pub kind: Kind,
}

/// The values found in one event, by the trie's slot numbers.
#[derive(Debug, Default)]
pub struct Captures {
    slots: Vec<Vec<Capture>>,
    arena: String,
}

impl Captures {
    pub fn new(slot_count: usize) -> Captures {
        Captures { slots: vec![Vec::new(); slot_count], arena: String::new() }
    }

    fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.clear();
        }
        self.arena.clear();
    }

    /// Every capture of `slot`, in the order they appear in the event.
    pub fn get(&self, slot: u16) -> &[Capture] {
        &self.slots[slot as usize]
    }

    /// The text of a capture of the event `line`.
    pub fn text<'a>(&'a self, line: &'a str, cap: &Capture) -> &'a str {
        let (s, e) = (cap.start as usize, cap.end as usize);
        if cap.in_arena {
            &self.arena[s..e]
        } else {
            &line[s..e]
        }
    }
}

/// Why an event is not valid JSON, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset in the event, from 0.
    pub offset: u32,
    pub kind: JsonErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// Not valid UTF-8.
    Utf8,
    /// The top-level value is valid JSON but not an object.
    NotAnObject,
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something else was expected here.
    Expected(&'static str),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JsonErrorKind::Utf8 => write!(f, "invalid UTF-8 at byte {}", self.offset),
            JsonErrorKind::NotAnObject => f.write_str("expected a JSON object at the top level"),
            JsonErrorKind::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            JsonErrorKind::Expected(what) => write!(f, "expected {what} at byte {}", self.offset),
        }
    }
}

/// Scans `line` as one JSON object and records into `out` the values at the
/// paths of `trie`.
///
/// It also checks the line as UTF-8, so that a line it accepts is valid
/// UTF-8 throughout: outside strings the grammar admits only ASCII, and
/// inside them every other byte must belong to a well-formed sequence.
pub fn scan(line: &[u8], trie: &PathTrie, out: &mut Captures) -> Result<(), JsonError> {
    out.clear();
    let mut sc = Scanner { b: line, pos: 0, trie, out };
    sc.ws();
    if sc.peek() != Some(b'{') {
        // Tell "valid JSON, wrong type" apart from "not JSON at all".
        sc.skip_value(0)?;
        sc.ws();
        return Err(match sc.peek() {
            None => sc.err_kind(JsonErrorKind::NotAnObject),
            Some(_) => sc.err("the end of the event"),
        });
    }
    sc.object(ROOT, 0)?;
    sc.ws();
    match sc.peek() {
        None => Ok(()),
        Some(_) => Err(sc.err("the end of the event")),
    }
}

struct Scanner<'a, 'o> {
    b: &'a [u8],
    pos: usize,
    trie: &'a PathTrie,
    out: &'o mut Captures,
}

// The small steps below are forced inline: inside wasm each call also
// saves registers and checks the epoch deadline, which on a 15-byte string
// costs more than scanning it.
impl Scanner<'_, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn err(&self, what: &'static str) -> JsonError {
        self.err_kind(JsonErrorKind::Expected(what))
    }

    fn err_kind(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { offset: self.pos as u32, kind }
    }

    /// Skips whitespace. Compact JSON, what collectors send, has none, so
    /// the loop is kept out of line.
    #[inline(always)]
    fn ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.ws_run();
        }
    }

    #[inline(never)]
    fn ws_run(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn record(&mut self, node: u32, cap: Capture) {
        if let Some(slot) = self.trie.slot(node) {
            self.out.slots[slot as usize].push(cap);
        }
    }

    /// A value at wanted trie node `node`.
    fn value(&mut self, node: u32, depth: u32) -> Result<(), JsonError> {
        let start = self.pos as u32;
        match self.peek() {
            Some(b'{') => {
                let object = Capture { start, end: start, in_arena: false, kind: Kind::Object };
                self.record(node, object);
                if self.trie.has_children(node) {
                    self.object(node, depth)
                } else {
                    self.skip_value(depth)
                }
            }
            Some(b'[') => {
                self.record(node, container(start));
                self.array(node, depth)
            }
            Some(b'"') => {
                let cap = self.string_value()?;
                self.record(node, cap);
                Ok(())
            }
            _ => {
                let kind = self.scalar()?;
                let cap = Capture { start, end: self.pos as u32, in_arena: false, kind };
                self.record(node, cap);
                Ok(())
            }
        }
    }

    /// Skips a value that no rule reads, checking it all the same, at
    /// nesting `depth`. Objects and arrays are walked in one loop rather
    /// than with a call per value, their nesting kept as one bit per level
    /// (set for an object): inside wasm, calls are what skipping costs.
    fn skip_value(&mut self, depth: u32) -> Result<(), JsonError> {
        let mut objects: u128 = 0;
        let mut levels = 0;
        loop {
            // A value starts here.
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth + levels >= MAX_DEPTH {
                        return Err(self.err_kind(JsonErrorKind::TooDeep));
                    }
                    let object = open == b'{';
                    objects = objects << 1 | u128::from(object);
                    levels += 1;
                    self.pos += 1;
                    self.ws();
                    let empty = self.peek() == Some(if object { b'}' } else { b']' });
                    if !empty {
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    self.pos += 1;
                    objects >>= 1;
                    levels -= 1;
                }
                Some(b'"') => {
                    self.skip_string()?;
                }
                _ => {
                    self.scalar()?;
                }
            }
            // After a value: close what ends here, then go on to the next
            // member or element.
            loop {
                if levels == 0 {
                    return Ok(());
                }
                self.ws();
                let object = objects & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ if object => return Err(self.err("`,` or `}` after a member")),
                    _ => return Err(self.err("`,` or `]` after an array element")),
                }
                self.pos += 1;
                objects >>= 1;
                levels -= 1;
            }
        }
    }

    /// A key no rule reads and the `:` after it, with the whitespace
    /// around.
    #[inline(always)]
    fn skip_key(&mut self) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("`\"` to start a key"));
        }
        self.skip_string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("`:` after the key"));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    /// An object whose keys are looked up under trie node `node`.
    fn object(&mut self, node: u32, depth: u32) -> Result<(), JsonError> {
        let depth = self.descend(depth)?;
        self.pos += 1; // `{`
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("`\"` to start a key"));
            }
            let child = self.key_child(node)?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("`:` after the key"));
            }
            self.pos += 1;
            self.ws();
            match child {
                Some(node) => self.value(node, depth)?,
                // Most members no rule reads hold a string or a scalar:
                // skipped here, without a call.
                None => match self.peek() {
                    Some(b'"') => {
                        self.skip_string()?;
                    }
                    Some(b'{' | b'[') => self.skip_value(depth)?,
                    _ => {
                        self.scalar()?;
                    }
                },
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("`,` or `}` after a member")),
            }
        }
    }

    /// Reads a key and returns the trie child it leads to, if any.
    fn key_child(&mut self, node: u32) -> Result<Option<u32>, JsonError> {
        let start = self.pos + 1;
        let escaped = self.skip_string()?;
        let raw = &self.b[start..self.pos - 1];
        if !escaped {
            return Ok(self.trie.child(node, raw));
        }
        let mut key = String::new();
        unescape(raw, &mut key);
        Ok(self.trie.child(node, key.as_bytes()))
    }

    /// An array at wanted node `node`: each element is taken as a value of
    /// `node`, which is how repeated fields are read.
    fn array(&mut self, node: u32, depth: u32) -> Result<(), JsonError> {
        let depth = self.descend(depth)?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(node, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("`,` or `]` after an array element")),
            }
        }
    }

    fn descend(&self, depth: u32) -> Result<u32, JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.err_kind(JsonErrorKind::TooDeep));
        }
        Ok(depth + 1)
    }

    /// Skips a string starting at its `"`, checking escapes and control
    /// characters. Returns whether it held any escape.
    #[inline(always)]
    fn skip_string(&mut self) -> Result<bool, JsonError> {
        self.pos += 1;
        self.pos += plain_len(&self.b[self.pos..]);
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(false);
        }
        self.string_rest()
    }

    /// The rest of a string that is not plain to its end: escapes,
    /// characters outside ASCII, or an error.
    #[inline(never)]
    fn string_rest(&mut self) -> Result<bool, JsonError> {
        let mut escaped = false;
        loop {
            self.pos += plain_len(&self.b[self.pos..]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(0x80..) => match utf8_sequence(&self.b[self.pos..]) {
                    Some(len) => self.pos += len,
                    None => return Err(self.err_kind(JsonErrorKind::Utf8)),
                },
                Some(_) => return Err(self.err("a control character to be escaped")),
                None => return Err(self.err("`\"` to close the string")),
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
                    if !self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                        return Err(self.err("four hex digits after `\\u`"));
                    }
                    self.pos += 1;
                }
            }
            _ => return Err(self.err("a valid escape after `\\`")),
        }
        Ok(())
    }

    /// A wanted string value: borrowed from the event if it has no
    /// escapes, unescaped into the arena otherwise.
    fn string_value(&mut self) -> Result<Capture, JsonError> {
        let start = self.pos + 1;
        let escaped = self.skip_string()?;
        let end = self.pos - 1;
        if !escaped {
            return Ok(Capture {
                start: start as u32,
                end: end as u32,
                in_arena: false,
                kind: Kind::Str,
            });
        }
        let a_start = self.out.arena.len();
        unescape(&self.b[start..end], &mut self.out.arena);
        let a_end = self.out.arena.len();
        Ok(Capture { start: a_start as u32, end: a_end as u32, in_arena: true, kind: Kind::Str })
    }

    /// A number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Result<Kind, JsonError> {
        // `null` reads as a missing value: it is recorded as a container,
        // which no comparison sees.
        let (word, kind): (&[u8; 4], Kind) = match self.peek() {
            Some(b't') => (b"true", Kind::Bool),
            Some(b'f') => (b"alse", Kind::Bool),
            Some(b'n') => (b"null", Kind::Container),
            _ => {
                self.number()?;
                return Ok(Kind::Number);
            }
        };
        // Four bytes compared as one integer (`false` after its `f`).
        let at = self.pos + usize::from(word[0] == b'a');
        let found = self.b.get(at..at + 4).map(|w| u32::from_le_bytes(w.try_into().expect("4")));
        if found != Some(u32::from_le_bytes(*word)) {
            return Err(self.err("a value"));
        }
        self.pos = at + 4;
        Ok(kind)
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("a value")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("a digit after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("a digit in the exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

/// How many bytes at the start of `b` a string can hold as they are: up to
/// the first `"`, `\\`, control character or byte outside ASCII (which
/// [`utf8_sequence`] then checks). Most of an event's bytes are
/// inside strings, so this is the reader's hot path. It tests sixteen bytes
/// per step with SIMD where the target has it (SSE2 on x86_64, simd128 in
/// wasm), and eight per step with word arithmetic otherwise and for the
/// tail. Fewer steps matter twice inside wasm, where each loop iteration
/// also checks the epoch deadline.
#[inline(always)]
fn plain_len(b: &[u8]) -> usize {
    let i = simd::plain_prefix(b);
    match b.get(i) {
        Some(&c) if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) => i,
        _ => i + plain_len_words(&b[i..]),
    }
}

#[inline]
fn plain_len_words(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Flags each byte of `x` that is below `n` (n <= 128). Only the lowest
    // flag is exact, which is the one used.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("the slice is 8 bytes"));
        let hits = below(w ^ (ONES * b'"' as u64), 1)
            | below(w ^ (ONES * b'\\' as u64), 1)
            | below(w, 0x20)
            | w & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..].iter().take_while(|&&c| c != b'"' && c != b'\\' && (0x20..0x80).contains(&c)).count()
}

/// Sixteen bytes per step. `plain_prefix(b)` is [`plain_len`] when a
/// special byte turns up while 16 bytes are left to load; otherwise it
/// stops short, at a multiple of 16, and leaves the rest to the word loop.
mod simd {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn plain_prefix(b: &[u8]) -> usize {
        use std::arch::x86_64::*;
        let mut i = 0;
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is part of x86_64, and `i + 16 <= b.len()`
            // keeps the unaligned 16-byte load inside `b`.
            let special = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // Bytes outside 0x20..0x80 are those at or past 0x60 once
                // 0x20 is taken off, wrapping: `max(w, 0x60) == w`.
                let w = _mm_sub_epi8(v, _mm_set1_epi8(0x20));
                let outside = _mm_cmpeq_epi8(_mm_max_epu8(w, _mm_set1_epi8(0x60)), w);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), outside))
            };
            if special != 0 {
                return i + special.trailing_zeros() as usize;
            }
            i += 16;
        }
        i
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    pub fn plain_prefix(b: &[u8]) -> usize {
        use std::arch::wasm32::*;
        let mut i = 0;
        while i + 16 <= b.len() {
            // SAFETY: wasm loads need no alignment, and `i + 16 <= b.len()`
            // keeps the 16-byte load inside `b`.
            let v = unsafe { v128_load(b.as_ptr().add(i).cast()) };
            // Bytes outside 0x20..0x80 are those at or past 0x60 once 0x20
            // is taken off, wrapping.
            let outside = u8x16_ge(u8x16_sub(v, u8x16_splat(0x20)), u8x16_splat(0x60));
            let special = v128_or(
                v128_or(u8x16_eq(v, u8x16_splat(b'"')), u8x16_eq(v, u8x16_splat(b'\\'))),
                outside,
            );
            let mask = u8x16_bitmask(special);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
        i
    }

    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    #[inline]
    pub fn plain_prefix(_: &[u8]) -> usize {
        0
    }
}

/// The length of the UTF-8 sequence at the start of `b`, whose first byte is
/// outside ASCII, if it is well formed: no overlong form, no surrogate,
/// nothing past U+10FFFF (the Unicode standard's table 3-7).
fn utf8_sequence(b: &[u8]) -> Option<usize> {
    let at = |i: usize, lo: u8, hi: u8| b.get(i).filter(|&&x| (lo..=hi).contains(&x)).map(|_| ());
    let tail = |i: usize| at(i, 0x80, 0xbf);
    match *b.first()? {
        0xc2..=0xdf => tail(1).map(|_| 2),
        0xe0 => at(1, 0xa0, 0xbf).and(tail(2)).map(|_| 3),
        0xe1..=0xec | 0xee..=0xef => tail(1).and(tail(2)).map(|_| 3),
        0xed => at(1, 0x80, 0x9f).and(tail(2)).map(|_| 3),
        0xf0 => at(1, 0x90, 0xbf).and(tail(2)).and(tail(3)).map(|_| 4),
        0xf1..=0xf3 => tail(1).and(tail(2)).and(tail(3)).map(|_| 4),
        0xf4 => at(1, 0x80, 0x8f).and(tail(2)).and(tail(3)).map(|_| 4),
        _ => None,
    }
}

fn container(start: u32) -> Capture {
    Capture { start, end: start, in_arena: false, kind: Kind::Container }
}

/// Appends the unescaped form of `raw`, the inside of a JSON string already
/// checked by the scanner, to `out`. A lone surrogate becomes U+FFFD.
fn unescape(raw: &[u8], out: &mut String) {
    let mut i = 0;
    while i < raw.len() {
        let run = raw[i..].iter().position(|&b| b == b'\\').unwrap_or(raw.len() - i);
        // The scanner checked the whole event as UTF-8 and runs end at an
        // ASCII backslash, so each run is valid UTF-8 on its own.
        out.push_str(std::str::from_utf8(&raw[i..i + run]).unwrap_or("\u{FFFD}"));
        i += run;
        if i >= raw.len() {
            break;
        }
        let c = match raw[i + 1] {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&raw[i + 2..i + 6]);
                i += 4;
                if (0xD800..0xDC00).contains(&hi) && raw[i + 2..].starts_with(b"\\u") {
                    let lo = hex4(&raw[i + 4..i + 8]);
                    if (0xDC00..0xE000).contains(&lo) {
                        i += 6;
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(c).unwrap_or('\u{FFFD}')
                    } else {
                        '\u{FFFD}'
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            other => other as char,
        };
        out.push(c);
        i += 2;
    }
}

fn hex4(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, &d| acc * 16 + (d as char).to_digit(16).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&[&str]]) -> PathTrie {
        let mut t = PathTrie::default();
        for p in paths {
            t.insert(p);
        }
        t
    }

    fn values(line: &str, paths: &[&[&str]]) -> Result<Vec<Vec<String>>, JsonError> {
        let t = trie(paths);
        let mut caps = Captures::new(t.slot_count());
        scan(line.as_bytes(), &t, &mut caps)?;
        Ok((0..paths.len() as u16)
            .map(|s| {
                caps.get(s)
                    .iter()
                    .filter(|c| !matches!(c.kind, Kind::Container | Kind::Object))
                    .map(|c| caps.text(line, c).to_string())
                    .collect()
            })
            .collect())
    }

    #[test]
    fn extracts_only_wanted_paths() {
        let line = r#"{"a":{"b":"x","c":[1,{"d":2}]},"e":"y","f":{"b":"z"}}"#;
        let got = values(line, &[&["a", "b"], &["e"], &["a", "c"]]).unwrap();
        assert_eq!(got, [vec!["x"], vec!["y"], vec!["1"]]);
    }

    #[test]
    fn arrays_give_every_element() {
        let line = r#"{"p":{"ip":["1.1.1.1","2.2.2.2"]},"t":[{"n":"a"},{"n":"b"}]}"#;
        let got = values(line, &[&["p", "ip"], &["t", "n"]]).unwrap();
        assert_eq!(got, [vec!["1.1.1.1", "2.2.2.2"], vec!["a", "b"]]);
    }

    #[test]
    fn escaped_strings_and_keys_are_unescaped() {
        let line = r#"{"k\u0065y":"a\"b\\c\u00e9\ud83d\ude00\n"}"#;
        assert_eq!(values(line, &[&["key"]]).unwrap(), [vec!["a\"b\\cé😀\n"]]);
    }

    #[test]
    fn null_is_not_a_value() {
        assert_eq!(values(r#"{"a":null}"#, &[&["a"]]).unwrap(), [Vec::<String>::new()]);
    }

    #[test]
    fn malformed_json_is_refused_with_its_offset() {
        let cases: &[(&str, u32)] = &[
            (r#"{"a":1,}"#, 7),
            (r#"{"a" 1}"#, 5),
            (r#"{"a":[1 2]}"#, 8),
            (r#"{"a":"b}"#, 8),
            (r#"{"a":01}"#, 6),
            (r#"{"a":tru}"#, 5),
            (r#"{"x":{"y":"\q"}}"#, 12),
            (r#"{"a":1} x"#, 8),
            ("{\"a\":\"\t\"}", 6),
        ];
        for &(line, offset) in cases {
            // Read where `a` is wanted, skipped where nothing is.
            for wanted in [&[&["a"][..]][..], &[&["z"]]] {
                let err = values(line, wanted).unwrap_err();
                assert_eq!(err.offset, offset, "{line} wanting {wanted:?}: {err}");
            }
        }
    }

    #[test]
    fn plain_len_stops_at_the_first_special_byte() {
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n', 0x80, 0xc3, 0xff];
        for len in 0..40 {
            for &special in &specials {
                for filler in [b'a', 0x20, 0x7f, b'!', b'#', b'[', b']'] {
                    let mut bytes = vec![filler; len];
                    assert_eq!(plain_len(&bytes), len);
                    assert_eq!(plain_len_words(&bytes), len);
                    bytes.push(special);
                    bytes.extend_from_slice(b"\"xyz\\");
                    assert_eq!(plain_len(&bytes), len, "filler {filler:#x} special {special:#x}");
                    assert_eq!(plain_len_words(&bytes), len);
                }
            }
        }
    }

    #[test]
    fn top_level_must_be_an_object() {
        let err = values("[1,2]", &[]).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::NotAnObject);
        let err = values("\"x\" 1", &[]).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::Expected("the end of the event"));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(values(&deep, &[]).unwrap_err().kind, JsonErrorKind::TooDeep);
        assert_eq!(values(&deep, &[&["a"]]).unwrap_err().kind, JsonErrorKind::TooDeep);
        // The root object is one level; the limit itself still reads.
        let limit = MAX_DEPTH as usize - 1;
        let nested = |open: &str, close: &str| {
            format!("{{\"a\":{}1{}}}", open.repeat(limit), close.repeat(limit))
        };
        for wanted in [&[&["a"][..]][..], &[]] {
            assert!(values(&nested("[", "]"), wanted).is_ok());
            let objects = nested("{\"k\":", "}");
            assert!(values(&objects, wanted).is_ok(), "{wanted:?}");
            let over = format!("{{\"a\":[{}1{}]}}", "[".repeat(limit), "]".repeat(limit));
            let err = values(&over, wanted).unwrap_err();
            assert_eq!(err.kind, JsonErrorKind::TooDeep);
            assert_eq!(err.offset as usize, 5 + limit, "{wanted:?}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        let samples = [
            r#"{"a":1e5,"b":-0.5E-3,"c":[true,false,null],"d":{}}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":[}"#,
            r#"{"a":"\u12"}"#,
            r#" { "a" : [ ] } "#,
            r#"{"a":{"b":[{"c":"d"}]}}"#,
            r#"{}"#,
            r#"{"#,
        ];
        for s in samples {
            let ours = values(s, &[&["a"]]).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(s).is_ok();
            assert_eq!(ours, theirs, "{s}");
        }
    }

    #[test]
    fn strings_are_checked_as_utf8_like_the_standard_library() {
        // Every sequence of up to three bytes from the edges of UTF-8's
        // ranges, alone and after 15 ASCII bytes (so that it straddles the
        // SIMD block), inside a string, and its first byte outside one.
        let edges = [
            0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1,
            0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
        ];
        let t = trie(&[&["a"]]);
        let mut caps = Captures::new(t.slot_count());
        let mut seqs: Vec<Vec<u8>> = edges.iter().map(|&a| vec![a]).collect();
        for &a in &edges[2..] {
            for &b in &edges {
                seqs.push(vec![a, b]);
                for &c in &[0x41, 0x80, 0xbf, 0xc0] {
                    seqs.push(vec![a, b, c]);
                    seqs.push(vec![a, b, c, 0x80]);
                }
            }
        }
        for seq in &seqs {
            for pad in [0, 15] {
                let mut line = br#"{"a":""#.to_vec();
                line.extend(std::iter::repeat_n(b'x', pad));
                line.extend_from_slice(seq);
                line.extend_from_slice(br#""}"#);
                let ours = scan(&line, &t, &mut caps);
                let std_ok = std::str::from_utf8(&line).is_ok();
                assert_eq!(ours.is_ok(), std_ok, "{seq:x?} after {pad} bytes: {ours:?}");
                if let Err(e) = ours {
                    assert_eq!(e.kind, JsonErrorKind::Utf8, "{seq:x?}");
                    let valid = std::str::from_utf8(&line).unwrap_err().valid_up_to();
                    assert_eq!(e.offset as usize, valid, "{seq:x?} after {pad} bytes");
                }
            }
        }
        // Outside a string, a byte past ASCII is simply not JSON.
        assert!(scan(b"{\"a\":\xc3\xa9}", &t, &mut caps).is_err());
    }
}
