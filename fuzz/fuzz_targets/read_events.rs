//! Arbitrary bytes as one event line, read by the engine and by serde_json.
//! `Engine::evaluate` must never panic, and it must refuse the line as
//! malformed or not an object exactly when `serde_json::from_slice::<Value>`
//! refuses it or reads something other than an object, apart from the
//! differences below.
//!
//! Run from the repository root on stable Rust (cargo-fuzz passes nightly
//! flags, which `RUSTC_BOOTSTRAP=1` lets the stable compiler take):
//!
//! ```sh
//! cargo install cargo-fuzz
//! mkdir -p fuzz/corpus/read_events
//! RUSTC_BOOTSTRAP=1 cargo fuzz run read_events --target-dir target/fuzz \
//!     fuzz/corpus/read_events -- -max_total_time=1200
//! ```
//!
//! Lines of `samples/*.ndjson` and `engine/tests/rules/*.events.ndjson`,
//! one per file, make a good seed corpus.
//!
//! Differences from serde_json's `Value` that the engine means to have:
//!
//! - A line of ASCII whitespace only (form feed included) is `Empty`, not
//!   malformed: NDJSON framing, not JSON, decides that it holds no event.
//! - Escapes of lone UTF-16 surrogates (`"\ud800"`) are read as U+FFFD.
//!   RFC 8259's grammar admits them (section 8.2 leaves their meaning to
//!   the reader, section 9 says a parser must accept every text the
//!   grammar admits); serde_json refuses them in a `String`.
//! - Numbers beyond f64 (`1e400`) are read: the engine compares number
//!   text, and RFC 8259 section 6 leaves range to implementations.
//! - Nesting: the engine reads up to `MAX_DEPTH` (128) levels of objects
//!   and arrays, the top-level value included, and refuses deeper lines as
//!   `TooDeep`. serde_json's limit, also 128, counts down to zero and so
//!   reads only 127: lines of exactly 128 levels are read by the engine
//!   only.
//!
//! For those the target holds the engine to the grammar itself: serde_json
//! deserializing `IgnoredAny` checks RFC 8259's grammar without building
//! values, so without surrogate, range or depth limits (it skips nesting
//! iteratively), but it does not check UTF-8, which the target checks
//! apart. Two things are not differences: both readers take duplicate keys
//! (serde_json keeps the last, the engine every one), and both refuse
//! invalid UTF-8 (the engine anywhere in the line, serde_json in strings
//! and, outside them, as a syntax error).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;
use tripline_engine::diag::Source;
use tripline_engine::reader::json::MAX_DEPTH;
use tripline_engine::{Engine, EventError};

/// The default rule reads fields that raw CloudTrail, Azure and Entra ID
/// records map to; the others read UDM fields through every kind of
/// reader plan: plain and repeated fields, map keys, indexes, `.seconds`
/// of a timestamp, and `additional.fields` without its `fields` level.
const EXTRA_RULES: &str = r#"
rule udm_fields {
  events:
    $e.metadata.product_name = "x" nocase
    $e.principal.ip = $ip
    net.ip_in_range_cidr($e.target.ip, "10.0.0.0/8")
    $e.target.resource.attribute.labels["k"] = "v"
    $e.security_result[0].severity != "LOW"
  condition:
    $e
}

rule udm_values {
  events:
    (
      $e.metadata.event_timestamp.seconds > 1000 or
      $e.additional.fields["a"] = /b+/ or
      $e.target.port = 443 or
      $e.principal.hostname = "hé"
    )
  outcome:
    $host = array_distinct($e.principal.hostname)
  condition:
    $e
}
"#;

/// The engine, loaded once: loading compiles regexes, which would take
/// most of each run's time.
fn engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let default = include_str!("../../rules/default/cloud_api_abuse_t1059_009.yaral");
        let sources = [
            Source { name: "cloud_api_abuse_t1059_009.yaral", text: default },
            Source { name: "udm.yaral", text: EXTRA_RULES },
        ];
        Engine::load(&sources).unwrap_or_else(|errors| {
            let shown: Vec<String> =
                errors.iter().map(|e| sources[e.source].render(&e.diag)).collect();
            panic!("the fuzz rules must load:\n{}", shown.join("\n"))
        })
    })
}

/// How deeply the line's objects and arrays nest, counting brackets outside
/// strings. Exact for valid JSON; for other text, exact up to the first
/// error, which is as far as the engine reads.
fn nesting(line: &[u8]) -> u32 {
    let (mut depth, mut max, mut in_string, mut escaped) = (0u32, 0u32, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Whether serde_json refused a grammatical line for one of the documented
/// differences, and for no other reason.
fn known_difference(error: &serde_json::Error, nesting: u32) -> bool {
    let message = error.to_string();
    // serde_json's 128 counts the levels it may still enter, the engine's
    // the levels it has entered.
    message.starts_with("recursion limit exceeded") && nesting >= MAX_DEPTH
        || message.starts_with("number out of range")
        // A trailing surrogate alone is also reported as "leading".
        || message.starts_with("lone leading surrogate in hex escape")
        || message.starts_with("unexpected end of hex escape")
}

fn shown(line: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(line))
}

fuzz_target!(|line: &[u8]| {
    let engine = engine();
    let mut scratch = engine.scratch();
    scratch.set_now(1_700_000_000);
    let mut out = Vec::new();
    let ours = engine.evaluate(line, &mut scratch, &mut out);
    let theirs = serde_json::from_slice::<Value>(line);
    let shown = shown(line);

    // Empty lines are told apart before any JSON is read.
    let blank = line.iter().all(u8::is_ascii_whitespace);
    assert_eq!(blank, ours == Err(EventError::Empty), "{shown}: {ours:?}");
    if blank {
        assert!(theirs.is_err(), "serde_json reads a blank line {shown}");
        return;
    }

    // What the engine must make of the line, from the grammar.
    let grammatical =
        std::str::from_utf8(line).is_ok() && serde_json::from_slice::<IgnoredAny>(line).is_ok();
    let depth = nesting(line);
    if (grammatical && depth > MAX_DEPTH) || ours == Err(EventError::TooDeep) {
        assert!(depth > MAX_DEPTH, "{depth} levels read as too deep: {shown}");
        assert_eq!(ours, Err(EventError::TooDeep), "{depth} levels: {shown}");
        assert!(theirs.is_err(), "serde_json reads {depth} levels: {shown}");
        return;
    }
    let object = line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match (grammatical, &ours) {
        (true, Ok(())) if object => {}
        (true, Err(EventError::NotAnObject)) if !object => {}
        (false, Err(EventError::Malformed(_))) => {}
        (true, other) => panic!(
            "valid JSON{}, the engine gives {other:?}: {shown}",
            if object { ", an object" } else { " but not an object" }
        ),
        (false, other) => panic!("invalid JSON, the engine gives {other:?}: {shown}"),
    }

    // And serde_json's `Value` must agree but for the known differences.
    match (&theirs, grammatical) {
        (Ok(v), true) => assert_eq!(v.is_object(), object, "{shown}"),
        (Ok(_), false) => panic!("serde_json reads what it finds ungrammatical: {shown}"),
        (Err(_), false) => {}
        (Err(e), true) => {
            assert!(
                known_difference(e, depth),
                "serde_json refuses ({e}), the engine reads {shown}"
            )
        }
    }
});
