//! A deterministic property test of the event reader against serde_json.
//!
//! Random JSON objects are generated from a small xorshift PRNG, written
//! out with random whitespace and escapes, then mutated (truncated, bytes
//! flipped, quotes, backslashes and control characters inserted). For every
//! line, `Engine::evaluate` must
//!
//! - return `Ok` when serde_json parses the line as a JSON object (nested
//!   less than 100 deep), and `Err` when serde_json rejects it;
//! - return `Err(EventError::NotAnObject)` for valid JSON that is not an
//!   object;
//! - never panic.
//!
//! For the generated (unmutated) lines the matches are also checked against
//! the value tree the line was written from.
//!
//! Two differences from serde_json are known and left out of the main
//! property: escapes of lone UTF-16 surrogates (`"\ud800"`) and numbers
//! beyond the range of f64 (`1e400`). RFC 8259's grammar admits both;
//! serde_json refuses them and the engine reads them (a lone surrogate as
//! U+FFFD). `known_differences_from_serde_json` states them.
//!
//! `TRIPLINE_FUZZ_SEED` and `TRIPLINE_FUZZ_CASES` change the seed and the
//! number of generated objects.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;
use tripline_engine::diag::Source;
use tripline_engine::{Engine, EventError, Match, Scratch};

/// `metadata.product_name` holding this is a match of rule `s`; its
/// characters need every kind of JSON escape.
const TARGET: &str = "q\"\\\n\té😀/";

const RULES: &str = r#"
rule r { events: $e.metadata.product_name = "x" condition: $e }
rule s { events: $e.metadata.product_name = "q\"\\\n\té😀/" condition: $e }
"#;

const DEFAULT_SEED: u64 = 0x7269_706c_696e_6521;
const DEFAULT_CASES: usize = 3000;

/// xorshift64*: small, fast and good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A JSON value as generated, keeping duplicate keys and the text of
/// numbers, as the engine sees them.
#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

// No raw-source keys (`eventName`, `operationName`, ...): a line must be
// read either as UDM or as no known source.
const KEYS: &[&str] = &[
    "metadata",
    "product_name",
    "principal",
    "ip",
    "a",
    "b",
    "",
    "é",
    "x",
    "Metadata",
    "product_name ",
    "k\"ey",
    "back\\slash",
];

const STRINGS: &[&str] = &["x", TARGET, "", "X", "x ", " x", "xx", "q", "null", "1"];

const CHARS: &[char] = &[
    'a',
    'b',
    'x',
    'Z',
    '0',
    '9',
    ' ',
    '"',
    '\\',
    '/',
    '\n',
    '\t',
    '\r',
    '\u{0}',
    '\u{1}',
    '\u{8}',
    '\u{c}',
    '\u{1f}',
    '\u{7f}',
    'é',
    'ß',
    '€',
    '\u{2028}',
    '😀',
    '\u{10ffff}',
    '{',
    '}',
    '[',
    ':',
];

fn gen_string(rng: &mut Rng) -> String {
    if rng.chance(40) {
        return rng.pick(STRINGS).to_string();
    }
    (0..rng.below(8)).map(|_| *rng.pick(CHARS)).collect()
}

fn gen_number(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.chance(20) {
        s.push('-');
    }
    if rng.chance(25) {
        s.push('0');
    } else {
        s.push(char::from(b'1' + rng.below(9) as u8));
        for _ in 0..rng.below(16) {
            s.push(char::from(b'0' + rng.below(10) as u8));
        }
    }
    if rng.chance(30) {
        s.push('.');
        for _ in 0..1 + rng.below(6) {
            s.push(char::from(b'0' + rng.below(10) as u8));
        }
    }
    if rng.chance(20) {
        s.push(*rng.pick(&['e', 'E']));
        if let Some(sign) = rng.pick(&[None, Some('+'), Some('-')]) {
            s.push(*sign);
        }
        s.push_str(&rng.below(31).to_string());
    }
    s
}

fn gen_scalar(rng: &mut Rng) -> Json {
    match rng.below(6) {
        0 => Json::Null,
        1 => Json::Bool(rng.chance(50)),
        2 => Json::Num(gen_number(rng)),
        _ => Json::Str(gen_string(rng)),
    }
}

fn gen_value(rng: &mut Rng, depth: usize) -> Json {
    if depth >= 6 || rng.chance(55) {
        return gen_scalar(rng);
    }
    if rng.chance(50) {
        Json::Arr((0..rng.below(4)).map(|_| gen_value(rng, depth + 1)).collect())
    } else {
        gen_object(rng, depth + 1)
    }
}

fn gen_object(rng: &mut Rng, depth: usize) -> Json {
    Json::Obj(
        (0..rng.below(4))
            .map(|_| (rng.pick(KEYS).to_string(), gen_value(rng, depth + 1)))
            .collect(),
    )
}

/// A value for `metadata.product_name`: mostly strings the rules look for.
fn gen_product(rng: &mut Rng) -> Json {
    match rng.below(10) {
        0..=5 => Json::Str(rng.pick(STRINGS).to_string()),
        6 => Json::Arr((0..rng.below(4)).map(|_| gen_product(rng)).collect()),
        7 => gen_value(rng, 4),
        _ => gen_scalar(rng),
    }
}

fn gen_metadata(rng: &mut Rng) -> Json {
    match rng.below(10) {
        0..=5 => {
            let mut members = match gen_object(rng, 3) {
                Json::Obj(m) => m,
                _ => unreachable!("gen_object makes objects"),
            };
            for _ in 0..1 + rng.below(2) {
                let at = rng.below(members.len() + 1);
                members.insert(at, ("product_name".to_string(), gen_product(rng)));
            }
            Json::Obj(members)
        }
        6 => Json::Arr((0..rng.below(3)).map(|_| gen_metadata(rng)).collect()),
        7 => Json::Null,
        _ => gen_value(rng, 4),
    }
}

fn gen_event(rng: &mut Rng) -> Json {
    let mut members = match gen_object(rng, 1) {
        Json::Obj(m) => m,
        _ => unreachable!("gen_object makes objects"),
    };
    if rng.chance(75) {
        for _ in 0..1 + rng.below(2) {
            let at = rng.below(members.len() + 1);
            members.insert(at, ("metadata".to_string(), gen_metadata(rng)));
        }
    }
    Json::Obj(members)
}

fn ws(rng: &mut Rng, out: &mut String) {
    if rng.chance(20) {
        for _ in 0..1 + rng.below(2) {
            out.push(*rng.pick(&[' ', ' ', ' ', '\t', '\r', '\n']));
        }
    }
}

fn hex4(rng: &mut Rng, n: u32, out: &mut String) {
    let s = format!("\\u{n:04x}");
    out.push_str(&if rng.chance(50) { s.to_uppercase().replace("\\U", "\\u") } else { s });
}

fn write_str(rng: &mut Rng, s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let escape = rng.chance(20);
        match c {
            '"' if !escape => out.push_str("\\\""),
            '\\' if !escape => out.push_str("\\\\"),
            '\u{8}' if !escape => out.push_str("\\b"),
            '\u{c}' if !escape => out.push_str("\\f"),
            '\n' if !escape => out.push_str("\\n"),
            '\r' if !escape => out.push_str("\\r"),
            '\t' if !escape => out.push_str("\\t"),
            '/' if escape => out.push_str("\\/"),
            c if escape || c < ' ' || c == '"' || c == '\\' => {
                let mut units = [0u16; 2];
                for &u in c.encode_utf16(&mut units).iter() {
                    hex4(rng, u32::from(u), out);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(rng: &mut Rng, v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => write_str(rng, s, out),
        Json::Arr(items) => {
            out.push('[');
            ws(rng, out);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    ws(rng, out);
                }
                write_json(rng, item, out);
                ws(rng, out);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            out.push('{');
            ws(rng, out);
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    ws(rng, out);
                }
                write_str(rng, k, out);
                ws(rng, out);
                out.push(':');
                ws(rng, out);
                write_json(rng, v, out);
                ws(rng, out);
            }
            out.push('}');
        }
    }
}

/// The values the engine must read for `metadata.product_name`, and
/// whether the event is a UDM event (a top-level `metadata` that is an
/// object, an array or null).
fn oracle(event: &Json) -> (bool, Vec<String>) {
    fn leaf(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Str(s) => out.push(s.clone()),
            Json::Num(n) => out.push(n.clone()),
            Json::Bool(b) => out.push(b.to_string()),
            Json::Arr(items) => items.iter().for_each(|i| leaf(i, out)),
            Json::Null | Json::Obj(_) => {}
        }
    }
    fn metadata(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Obj(members) => {
                for (k, v) in members {
                    if k == "product_name" {
                        leaf(v, out);
                    }
                }
            }
            Json::Arr(items) => items.iter().for_each(|i| metadata(i, out)),
            _ => {}
        }
    }
    let Json::Obj(members) = event else { return (false, Vec::new()) };
    let mut udm = false;
    let mut values = Vec::new();
    for (_, v) in members.iter().filter(|(k, _)| k == "metadata") {
        udm |= matches!(v, Json::Obj(_) | Json::Arr(_) | Json::Null);
        metadata(v, &mut values);
    }
    (udm, values)
}

fn mutate(rng: &mut Rng, line: &[u8]) -> Vec<u8> {
    const NASTY: &[u8] = &[
        b'"', b'"', b'\\', b'\\', 0x00, 0x01, 0x08, b'\n', b'\t', 0x1f, 0x7f, b'{', b'}', b'[',
        b']', b',', b':', b'u', b'e', b'-', b'.', b'0', 0xc3, 0xff, 0x80,
    ];
    let mut out = line.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 => out.truncate(at),
            1 if at < out.len() => out[at] = rng.next() as u8,
            2 if at < out.len() => out[at] ^= 1 << rng.below(8),
            3 => out.insert(at, *rng.pick(NASTY)),
            4 if at < out.len() => {
                out.remove(at);
            }
            5 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            6 => {
                let hex = b"0123456789abcdefABCDEFd8\"\\";
                let mut esc = b"\\u".to_vec();
                esc.extend((0..rng.below(5)).map(|_| *rng.pick(hex)));
                out.splice(at..at, esc);
            }
            _ => out.insert(at, *rng.pick(NASTY)),
        }
    }
    out
}

/// What serde_json makes of a line.
#[derive(Debug)]
enum Verdict {
    Object { depth: usize },
    NotObject,
    Invalid(String),
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn serde_verdict(line: &[u8]) -> Verdict {
    match serde_json::from_slice::<Value>(line) {
        Ok(v @ Value::Object(_)) => Verdict::Object { depth: depth(&v) },
        Ok(_) => Verdict::NotObject,
        Err(e) => Verdict::Invalid(e.to_string()),
    }
}

/// The line with every `\uD800`..`\uDFFF` escape replaced by `\u0041`, the
/// same length. Where serde_json refuses a line only for its surrogates,
/// it accepts this one.
fn without_surrogates(line: &[u8]) -> Vec<u8> {
    let mut out = line.to_vec();
    let mut i = 0;
    while i + 6 <= out.len() {
        let esc = &out[i..i + 6];
        let is_surrogate = esc[0] == b'\\'
            && esc[1] == b'u'
            && matches!(esc[2], b'd' | b'D')
            && matches!(esc[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            && esc[4].is_ascii_hexdigit()
            && esc[5].is_ascii_hexdigit();
        if is_surrogate {
            out[i + 2..i + 6].copy_from_slice(b"0041");
            i += 6;
        } else {
            i += 1;
        }
    }
    out
}

/// Whether serde_json refuses `line` only for one of the known differences.
fn known_difference(line: &[u8], serde_error: &str) -> bool {
    serde_error.contains("number out of range")
        || matches!(serde_verdict(&without_surrogates(line)), Verdict::Object { .. })
}

fn shown(line: &[u8]) -> String {
    match std::str::from_utf8(line) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("{:?} (bytes {line:02x?})", String::from_utf8_lossy(line)),
    }
}

fn load() -> Engine {
    Engine::load(&[Source { name: "fuzz.yaral", text: RULES }])
        .unwrap_or_else(|e| panic!("the test rules must load: {e:?}"))
}

fn evaluate(
    engine: &Engine,
    scratch: &mut Scratch,
    line: &[u8],
) -> Result<Result<Vec<Match>, EventError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut matches = Vec::new();
        engine.evaluate(line, scratch, &mut matches).map(|()| matches)
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string())
    })
}

#[derive(Default, Debug)]
struct Stats {
    lines: usize,
    ok: usize,
    err: usize,
    matched_r: usize,
    matched_s: usize,
    udm_without_match: usize,
    known_differences: usize,
}

struct Run<'e> {
    engine: &'e Engine,
    scratch: Scratch,
    stats: Stats,
    failures: Vec<String>,
}

impl Run<'_> {
    fn fail(&mut self, line: &[u8], what: String) {
        if self.failures.len() < 25 {
            self.failures.push(format!("{what}\n    line: {}", shown(line)));
        }
    }

    /// Checks `line` against serde_json; returns the engine's matches when
    /// it read the line.
    fn check(&mut self, line: &[u8]) -> Option<Vec<Match>> {
        self.stats.lines += 1;
        let ours = match evaluate(self.engine, &mut self.scratch, line) {
            Ok(ours) => ours,
            Err(panic) => {
                self.fail(line, format!("evaluate panicked: {panic}"));
                return None;
            }
        };
        match &ours {
            Ok(_) => self.stats.ok += 1,
            Err(_) => self.stats.err += 1,
        }
        match (serde_verdict(line), ours) {
            (Verdict::Object { depth }, Ok(m)) if depth < 100 => return Some(m),
            (Verdict::Object { depth }, Err(e)) if depth < 100 => {
                self.fail(line, format!("serde_json reads an object, the engine refuses: {e}"))
            }
            (Verdict::Object { .. }, _) => {}
            (Verdict::NotObject, Err(EventError::NotAnObject)) => {}
            (Verdict::NotObject, other) => self.fail(
                line,
                format!("valid JSON but not an object: expected NotAnObject, got {other:?}"),
            ),
            (Verdict::Invalid(_), Err(EventError::NotAnObject)) => {
                self.fail(line, "invalid JSON reported as NotAnObject".to_string())
            }
            (Verdict::Invalid(_), Err(_)) => {}
            (Verdict::Invalid(msg), Ok(_)) => {
                if known_difference(line, &msg) {
                    self.stats.known_differences += 1;
                } else {
                    self.fail(line, format!("serde_json refuses ({msg}), the engine reads it"));
                }
            }
        }
        None
    }

    /// Checks a generated line, whose matches the value tree tells.
    fn check_generated(&mut self, event: &Json, line: &[u8]) {
        let Some(matches) = self.check(line) else {
            if matches!(serde_verdict(line), Verdict::Object { .. }) {
                return; // already reported
            }
            self.fail(line, "a generated line must be valid JSON".to_string());
            return;
        };
        let (udm, values) = oracle(event);
        let want_r = udm && values.iter().any(|v| v == "x");
        let want_s = udm && values.iter().any(|v| v == TARGET);
        let got = |rule: u32| matches.iter().any(|m| m.rule == rule);
        let (got_r, got_s) = (got(0), got(1));
        if (got_r, got_s) != (want_r, want_s) {
            self.fail(
                line,
                format!(
                    "expected r={want_r} s={want_s}, matched r={got_r} s={got_s} \
                     (udm={udm}, product_name values {values:?})"
                ),
            );
        }
        self.stats.matched_r += usize::from(got_r);
        self.stats.matched_s += usize::from(got_s);
        self.stats.udm_without_match += usize::from(udm && !got_r && !got_s);
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn reader_agrees_with_serde_json() {
    let seed = env_or("TRIPLINE_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_or("TRIPLINE_FUZZ_CASES", DEFAULT_CASES);
    let engine = load();
    let mut run = Run {
        engine: &engine,
        scratch: engine.scratch(),
        stats: Stats::default(),
        failures: vec![],
    };
    let mut rng = Rng::new(seed);

    for _ in 0..cases {
        let event = gen_event(&mut rng);
        let mut text = String::new();
        ws(&mut rng, &mut text);
        write_json(&mut rng, &event, &mut text);
        ws(&mut rng, &mut text);
        run.check_generated(&event, text.as_bytes());
        for _ in 0..2 {
            let mutated = mutate(&mut rng, text.as_bytes());
            run.check(&mutated);
        }
    }

    // Valid JSON that is not an object.
    for _ in 0..cases / 10 {
        let mut text = String::new();
        let value = loop {
            let v = gen_value(&mut rng, 2);
            if !matches!(v, Json::Obj(_)) {
                break v;
            }
        };
        write_json(&mut rng, &value, &mut text);
        run.check(text.as_bytes());
    }

    // Deep nesting: under 100 levels must be read, far beyond the reader's
    // limit must be refused (serde_json refuses it too).
    for levels in (1..100).step_by(7).chain([99, 130, 200, 1000]) {
        for open in [b'[', b'{'] {
            let mut line = b"{\"a\":".to_vec();
            for _ in 1..levels {
                line.extend_from_slice(if open == b'[' { b"[" } else { b"{\"a\":" });
            }
            line.push(b'1');
            for _ in 1..levels {
                line.push(if open == b'[' { b']' } else { b'}' });
            }
            line.push(b'}');
            run.check(&line);
        }
    }

    let stats = &run.stats;
    eprintln!("seed {seed:#x}: {stats:?}");
    assert!(run.failures.is_empty(), "seed {seed:#x}:\n{}", run.failures.join("\n"));
    // The generator must reach both outcomes and both rules.
    assert!(stats.lines >= 3 * cases, "{stats:?}");
    assert!(stats.ok >= cases && stats.err >= cases / 2, "{stats:?}");
    assert!(stats.matched_r >= cases / 20 && stats.matched_s >= cases / 20, "{stats:?}");
    assert!(stats.udm_without_match >= cases / 20, "{stats:?}");
}

/// Lines the engine reads although serde_json refuses them. Both are
/// allowed by RFC 8259's grammar, which leaves lone surrogates'
/// meaning to the reader and number ranges to the implementation. This
/// test states what the engine does; change it if the engine is made to
/// refuse them.
#[test]
fn known_differences_from_serde_json() {
    let engine = load();
    let mut scratch = engine.scratch();
    let lines: [&[u8]; 4] = [
        br#"{"metadata":{"product_name":"\ud800"}}"#,
        br#"{"metadata":{"product_name":"\udc00x"}}"#,
        br#"{"metadata":{"product_name":"x"},"n":1e400}"#,
        br#"{"metadata":{"product_name":"x"},"n":-1e99999}"#,
    ];
    for line in lines {
        let serde = serde_verdict(line);
        assert!(matches!(serde, Verdict::Invalid(_)), "{}: {serde:?}", shown(line));
        let mut matches = Vec::new();
        let ours = engine.evaluate(line, &mut scratch, &mut matches);
        assert_eq!(ours, Ok(()), "{}", shown(line));
    }
}
