//! Cost per event as the rule count grows: 1, 10 and 100 generated rules
//! of the kinds detection teams write (equality chains, regexes with
//! `nocase`, placeholders, map keys, functions, outcomes), over the same
//! generated CloudTrail events, in the engine natively and in the detector
//! component called once per batch of 256, and natively with the
//! prefilter turned off (`unfiltered`), to show what it saves. Prints the
//! time per event and per rule-event.
//!
//! Run with `cargo bench -p tripline-benches --bench rules`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tripline::component::{self, Limits, RuleSource, Runtime, DEFAULT_COMPONENT};
use tripline_benches::{cloudtrail_events, mean_ns};
use tripline_engine::diag::Source;
use tripline_engine::{lines, Engine};

const EVENTS: usize = 2048;
const BATCH: usize = 256;
const COUNTS: [usize; 3] = [1, 10, 100];

/// Rule `i` of a generated set. Four shapes take turns; constants vary
/// with `i` so that rules do not share their work.
fn rule(i: usize) -> String {
    let actions = ["CreateAccessKey", "GetObject", "DescribeInstances", "GetCallerIdentity"];
    let action = actions[i % actions.len()];
    match i % 4 {
        0 => format!(
            r#"rule r{i} {{
  meta:
    severity = "HIGH"
  events:
    $e.metadata.product_name = "AWS CloudTrail"
    re.regex($e.metadata.product_event_type,
      `(?i)^({action}|CreateUser{i}|AttachUserPolicy|PutBucketPolicy)$`)
    $e.principal.ip = $src_ip
    $e.principal.user.userid = $actor
  outcome:
    $risk_score = max(50 + if($e.principal.location.name = "eu-west-1", 25))
  condition:
    $e
}}
"#
        ),
        1 => format!(
            r#"rule r{i} {{
  events:
    (
      $e.metadata.product_event_type = "{action}" or
      $e.metadata.product_event_type = "StopLogging{i}" or
      $e.metadata.product_event_type = "DeleteTrail" or
      $e.metadata.product_event_type = "PutEventSelectors"
    )
    $e.security_result.action = "ALLOW"
    $e.target.application = /amazonaws\.com$/ nocase
  condition:
    $e
}}
"#
        ),
        2 => format!(
            r#"rule r{i} {{
  events:
    $e.network.http.user_agent = /aws-cli\/2\.{}/ nocase
    not net.ip_in_range_cidr($e.principal.ip, "10.0.0.0/8")
    $e.principal.location.name = $region
  match:
    $region over 10m
  condition:
    $e
}}
"#,
            i % 20
        ),
        _ => format!(
            r#"rule r{i} {{
  events:
    $e.target.resource.attribute.labels["Recipient Account Id"] = "111122223333"
    strings.contains(strings.to_lower($e.principal.user.userid), "deploy-{}")
  outcome:
    $users = array_distinct($e.principal.user.user_display_name)
  condition:
    $e
}}
"#,
            i % 17
        ),
    }
}

fn rule_set(count: usize) -> String {
    (0..count).map(rule).collect()
}

fn main() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let events = cloudtrail_events(EVENTS, 10);
    let batches: Vec<Vec<u8>> = lines(&events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| chunk.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect())
        .collect();
    let wasm = component::engine().unwrap();
    let (compiled, _) = tripline::cache::load(&wasm, DEFAULT_COMPONENT, None).unwrap();
    let runtime = Arc::new(Runtime::new(&wasm, compiled, "bench", Limits::default()).unwrap());

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for count in COUNTS {
        let text = rule_set(count);
        let engine = Engine::load(&[Source { name: "generated", text: &text }])
            .unwrap_or_else(|e| panic!("generated rules must load: {e:?}"));
        let mut scratch = engine.scratch();
        let mut native_hits = 0;
        engine.evaluate_batch(&events, &mut scratch, |r| native_hits += r.map_or(0, |m| m.len()));
        assert!(native_hits > 0, "the generated rules match nothing");

        let mut detector = runtime.instantiate().unwrap();
        let sources = [RuleSource { name: "generated".into(), text: text.clone() }];
        detector.load_rules(&sources).unwrap().unwrap();
        let hits: usize = batches
            .iter()
            .flat_map(|b| detector.evaluate(b).unwrap())
            .map(|v| v.map_or(0, |d| d.len()))
            .sum();
        assert_eq!(hits, native_hits, "native and component verdicts differ");

        group.bench_function(format!("native_{count}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                engine.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
                n
            })
        });
        let mut unfiltered = Engine::load(&[Source { name: "generated", text: &text }]).unwrap();
        unfiltered.set_prefilter(false);
        group.bench_function(format!("unfiltered_{count}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                unfiltered.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
                n
            })
        });
        group.bench_function(format!("component_{count}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for batch in &batches {
                    n += detector.evaluate(batch).unwrap().len();
                }
                n
            })
        });
    }
    group.finish();
    c.final_summary();

    println!("\n{EVENTS} CloudTrail events; time per event, and per rule and event:");
    for path in ["native", "unfiltered", "component"] {
        for count in COUNTS {
            let Some(ns) = mean_ns(&out_dir, &format!("rules/{path}_{count}")) else { continue };
            let per_event = ns / EVENTS as f64;
            let per_rule = per_event / count as f64;
            println!(
                "  {path:<10} {count:>3} rule(s)  {per_event:>9.0} ns/event  \
                 {per_rule:>7.0} ns/rule-event"
            );
        }
    }
}
