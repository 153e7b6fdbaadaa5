//! Native costs: the event reader alone, the engine, and the plain native
//! filter that everything is measured against, over events of 200 B to
//! 64 KB. Prints events/s, ns per byte and ratios to the plain filter.
//!
//! The plain filter is what a careful engineer would write by hand for
//! this one detection: serde_json into a borrowed struct of just the
//! fields the rule reads, the `regex` crate, the tag spliced into the line.
//!
//! Run with `cargo bench -p tripline-benches --bench native`.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use regex::Regex;
use serde::Deserialize;
use tripline_benches::{mean_ns, sized_events};
use tripline_engine::diag::Source;
use tripline_engine::{lines, Engine};

const SIZES: [usize; 5] = [200, 1024, 4096, 16384, 65536];

#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow)]
    user_identity: Option<Identity<'a>>,
}

/// The hand-written filter: returns how many events it tagged.
fn plain_filter(events: &[u8], re: &Regex, out: &mut Vec<u8>) -> usize {
    let mut tagged = 0;
    for line in lines(events) {
        out.clear();
        let Ok(record) = serde_json::from_slice::<Record>(line) else {
            out.extend_from_slice(line);
            continue;
        };
        let hit = record.event_source.is_some()
            && record.event_name.as_deref().is_some_and(|n| re.is_match(n));
        if !hit {
            out.extend_from_slice(line);
            continue;
        }
        tagged += 1;
        out.extend_from_slice(&line[..line.len() - 1]);
        out.extend_from_slice(
            br#","detections":[{"rule":"cloud_api_abuse_t1059_009","variables":{"src_ip":"#,
        );
        serde_json::to_writer(&mut *out, record.source_ip.as_deref().unwrap_or("")).unwrap();
        out.extend_from_slice(br#","actor":"#);
        let actor = record.user_identity.as_ref().and_then(|u| u.arn.as_deref()).unwrap_or("");
        serde_json::to_writer(&mut *out, actor).unwrap();
        out.extend_from_slice(b"}}]}");
    }
    tagged
}

fn main() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let text = include_str!("../rules/default/cloud_api_abuse_t1059_009.yaral");
    let engine = Engine::load(&[Source { name: "default", text }]).unwrap();
    let pattern = text.lines().find(|l| l.trim_start().starts_with("`(?i)")).unwrap().trim();
    let re = Regex::new(pattern.trim_matches('`')).unwrap();

    let mut report = Vec::new();
    for size in SIZES {
        let count = (1 << 20) / size.max(512);
        let events = sized_events(count, size);
        let avg = events.len() / count;
        let mut scratch = engine.scratch();
        let mut out = Vec::new();

        let mut engine_tagged = 0;
        engine.evaluate_batch(&events, &mut scratch, |r| engine_tagged += r.map_or(0, |m| m.len()));
        assert_eq!(plain_filter(&events, &re, &mut out), engine_tagged, "same verdicts");

        let group_name = format!("native_{size}");
        let mut group = c.benchmark_group(&group_name);
        group.throughput(Throughput::Bytes(events.len() as u64));
        group.bench_function("plain_filter", |b| b.iter(|| plain_filter(&events, &re, &mut out)));
        group.bench_function("engine", |b| {
            b.iter(|| {
                let mut n = 0usize;
                engine.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
                n
            })
        });
        group.bench_function("serde_value", |b| {
            b.iter(|| {
                lines(&events)
                    .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
                    .count()
            })
        });
        group.finish();
        report.push((group_name, count, avg));
    }
    c.final_summary();

    println!("\nevents/s, ns per byte, and ratio to the plain native filter:");
    for (group, count, avg) in report {
        let base = mean_ns(&out_dir, &format!("{group}/plain_filter"));
        for id in ["plain_filter", "engine", "serde_value"] {
            let Some(ns) = mean_ns(&out_dir, &format!("{group}/{id}")) else { continue };
            let per_sec = count as f64 / (ns * 1e-9);
            let per_byte = ns / (count * avg) as f64;
            let ratio = base.map_or(f64::NAN, |b| b / ns);
            println!(
                "  {avg:>6} B  {id:<13} {per_sec:>10.0} events/s  {per_byte:>5.2} ns/B  {ratio:>5.2} x"
            );
        }
    }
}
