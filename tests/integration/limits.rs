//! Each call into a component is bounded in time and memory. When a bound
//! trips, the batch goes out untagged and counted, and a fresh instance
//! takes over. The misbehaving components are built from `tests/components`.

use std::time::{Duration, Instant};

use crate::support::*;

const CREATE_USER: &str = r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com"}"#;

fn three_events() -> Vec<u8> {
    format!("{CREATE_USER}\n{{\"a\":1}}\n{CREATE_USER}\n").into_bytes()
}

#[test]
fn a_guest_that_never_returns_is_stopped_by_the_deadline() {
    let spin = component_from_wat("spin");
    let started = Instant::now();
    let out = run_ok(
        &["--component", spin.to_str().unwrap(), "--call-timeout", "50", "--batch-events", "1"],
        &three_events(),
    );
    // Three batches, three deadlines of 50 ms; far less than the time a
    // runaway guest would take, with ample room for a slow machine.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out.stdout, three_events(), "every event forwarded unchanged");
    let err = stderr(&out);
    assert!(err.contains("trapped in `evaluate`: deadline of 50 ms exceeded"), "{err}");
    assert!(err.contains(&format!("component `{}`", spin.display())), "{err}");
    assert!(err.contains("lost to traps 3") && err.contains("3 traps"), "{err}");
}

#[test]
fn traps_on_several_workers_keep_order_and_count() {
    let spin = component_from_wat("spin");
    let data: Vec<u8> = (0..6).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
    let args =
        ["--component", spin.to_str().unwrap(), "--call-timeout", "50", "--batch-events", "1"];
    let out = run_ok(&[&args[..], &["--workers", "3"]].concat(), &data);
    assert_eq!(out.stdout, data, "every event forwarded unchanged, in order");
    let err = stderr(&out);
    assert!(err.contains("lost to traps 6") && err.contains("6 traps"), "{err}");
    for line in 1..=6 {
        assert!(err.contains(&format!("<stdin>:{line}-{line}: component")), "{err}");
    }
}

#[test]
fn a_guest_that_grows_without_end_is_stopped_by_the_memory_limit() {
    let hog = component_from_wat("hog");
    let out = run_ok(
        &["--component", hog.to_str().unwrap(), "--memory-limit", "8", "--batch-events", "2"],
        &three_events(),
    );
    assert_eq!(out.stdout, three_events());
    let err = stderr(&out);
    assert!(err.contains("memory limit of 8 MiB reached"), "{err}");
    assert!(err.contains("<stdin>:1-2:") && err.contains("<stdin>:3-3:"), "{err}");
    assert!(err.contains("lost to traps 3") && err.contains("2 traps"), "{err}");
}

#[test]
fn the_real_component_recovers_after_hitting_its_memory_limit() {
    // One event too big for 8 MiB of guest memory, between two that fit.
    let big = format!(
        r#"{{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","pad":"{}"}}"#,
        "x".repeat(12 << 20)
    );
    let data = format!("{CREATE_USER}\n{big}\n{CREATE_USER}\n");
    let args = ["--memory-limit", "8", "--batch-events", "1", "--max-event-bytes", "100000000"];
    let out = run_ok(&args, data.as_bytes());
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], big.as_bytes());
    assert_eq!(tagged_rules(got[0], "detections").len(), 1);
    assert_eq!(tagged_rules(got[2], "detections").len(), 1, "a fresh instance took over");
    let err = stderr(&out);
    assert!(err.contains("component `tripline-detector@"), "{err}");
    assert!(err.contains("memory limit of 8 MiB reached"), "{err}");
    assert!(err.contains("3 events read, 2 tagged, 1 errored") && err.contains("1 traps"), "{err}");
}

#[test]
fn a_guest_that_breaks_the_contract_loses_only_its_batch() {
    let mute = component_from_wat("mute");
    let out = run_ok(&["--component", mute.to_str().unwrap()], &three_events());
    assert_eq!(out.stdout, three_events());
    let err = stderr(&out);
    assert!(err.contains("returned 0 verdicts for 3 events"), "{err}");
    assert!(err.contains("lost to traps 3"), "{err}");
}

#[test]
fn strict_fails_on_a_trap() {
    let spin = component_from_wat("spin");
    let args = ["run", "--strict", "--component", spin.to_str().unwrap(), "--call-timeout", "20"];
    let out = run_with_input(tripline().args(args), &three_events());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("deadline of 20 ms exceeded"), "{}", stderr(&out));
}
