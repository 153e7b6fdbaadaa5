//! Arbitrary bytes as a YARA-L source: loading must return rules or
//! diagnostics, never panic, and whatever loads must evaluate sample
//! events without panicking either.
//!
//! Run from the repository root with a nightly toolchain:
//!
//! ```sh
//! cargo install cargo-fuzz
//! mkdir -p fuzz/corpus/parse_rules
//! cargo +nightly fuzz run parse_rules fuzz/corpus/parse_rules \
//!     engine/tests/rules engine/tests/diagnostics -- -max_total_time=600
//! ```
//!
//! The engine's rule and diagnostic tests seed the corpus; `engine/tests/rule_fuzz.rs`
//! runs a deterministic generator over the same property on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tripline_engine::diag::Source;
use tripline_engine::{Engine, RefList};

const EVENTS: &[&str] = &[
    concat!(
        r#"{"metadata":{"event_type":"USER_LOGIN","event_timestamp":"2024-01-01T00:00:00Z"},"#,
        r#""principal":{"ip":["10.0.0.1","8.8.8.8"],"hostname":"h"},"target":{"port":443,"#,
        r#""resource":{"attribute":{"labels":[{"key":"k","value":"v"}]}}}}"#,
    ),
    concat!(
        r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","#,
        r#""sourceIPAddress":"198.51.100.1","userIdentity":{"arn":"arn:aws:iam::1:user/a"}}"#,
    ),
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lists = [RefList { name: "l".into(), entries: vec!["a".into(), "10.0.0.0/8".into()] }];
    let sources = [Source { name: "fuzz.yaral", text: &text }];
    match Engine::load_with_lists(&sources, &lists) {
        Ok(engine) => {
            let mut scratch = engine.scratch();
            scratch.set_now(1_700_000_000);
            let mut out = Vec::new();
            for event in EVENTS {
                out.clear();
                let _ = engine.evaluate(event.as_bytes(), &mut scratch, &mut out);
            }
        }
        Err(errors) => {
            for e in &errors {
                // Rendering walks the source by the error's span.
                let _ = sources[e.source].render(&e.diag);
            }
        }
    }
});
