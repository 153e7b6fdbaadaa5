//! Arbitrary bytes as a YARA-L source: loading must return rules or
//! diagnostics, never panic, and whatever loads must evaluate sample
//! events without panicking either.
//!
//! Run from the repository root. cargo-fuzz passes nightly compiler flags
//! (`-Zsanitizer=address`, coverage instrumentation); `RUSTC_BOOTSTRAP=1`
//! lets the stable compiler take them, address sanitizer included:
//!
//! ```sh
//! cargo install cargo-fuzz
//! mkdir -p fuzz/corpus/parse_rules
//! cp engine/tests/rules/*.yaral engine/tests/diagnostics/*.yaral tests/check/*.yaral \
//!     fuzz/corpus/parse_rules/
//! RUSTC_BOOTSTRAP=1 cargo fuzz run parse_rules --target-dir target/fuzz \
//!     fuzz/corpus/parse_rules -- -dict=fuzz/yaral.dict -max_total_time=1800
//! ```
//!
//! `fuzz/yaral.dict` holds YARA-L keywords, operators, functions and UDM
//! paths for libFuzzer to splice in. `fuzz/corpus` and `fuzz/artifacts`
//! are git-ignored; crashes land in `fuzz/artifacts/parse_rules`, and
//! `RUSTC_BOOTSTRAP=1 cargo fuzz tmin parse_rules --target-dir target/fuzz <file>`
//! minimizes one. `engine/tests/rule_fuzz.rs` runs a deterministic
//! generator over the same property as a plain test.

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
