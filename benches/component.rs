//! The engine natively against the same engine inside the detector
//! component, called once per event and once per batch, on the same
//! generated CloudTrail events. Prints events/s and the ratio to native.
//!
//! Run with `cargo bench -p tripline-benches --bench component`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tripline::component::{self, Limits, Runtime, DEFAULT_COMPONENT};
use tripline_benches::{cloudtrail_events, mean_ns};
use tripline_engine::diag::Source;
use tripline_engine::{lines, Engine};

const EVENTS: usize = 2048;
/// Events per call in the batched case: the `tripline run` default.
const BATCH: usize = 256;

fn main() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();

    let events = cloudtrail_events(EVENTS, 10);
    let event_lines: Vec<&[u8]> = lines(&events).collect();
    let avg = events.len() / EVENTS;

    let text = include_str!("../rules/default/cloud_api_abuse_t1059_009.yaral");
    let engine = Engine::load(&[Source { name: "default", text }]).unwrap();
    let mut scratch = engine.scratch();

    let wasm = component::engine().unwrap();
    let (compiled, _) = tripline::cache::load(&wasm, DEFAULT_COMPONENT, None).unwrap();
    let runtime = Arc::new(Runtime::new(&wasm, compiled, "bench", Limits::default()).unwrap());
    let mut detector = runtime.instantiate().unwrap();
    let batches: Vec<Vec<u8>> = event_lines
        .chunks(BATCH)
        .map(|chunk| chunk.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect())
        .collect();

    // The same verdicts everywhere, or the comparison means nothing.
    let mut native_tagged = 0;
    engine.evaluate_batch(&events, &mut scratch, |r| native_tagged += r.map_or(0, |m| m.len()));
    let component_tagged: usize = batches
        .iter()
        .flat_map(|b| detector.evaluate(b).unwrap())
        .map(|v| v.map_or(0, |d| d.len()))
        .sum();
    assert_eq!(native_tagged, component_tagged);
    assert!(native_tagged > 0);

    let mut group = c.benchmark_group("t1059_009");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("native", |b| {
        b.iter(|| {
            let mut n = 0usize;
            engine.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
            n
        })
    });
    group.bench_function("component_per_event", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in &event_lines {
                n += detector.evaluate(line).unwrap().len();
            }
            n
        })
    });
    group.bench_function("component_per_batch", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for batch in &batches {
                n += detector.evaluate(batch).unwrap().len();
            }
            n
        })
    });
    group.finish();
    c.final_summary();

    println!("\n{EVENTS} CloudTrail events of {avg} bytes on average, 1 in 10 tagged:");
    let native = mean_ns(&out_dir, "t1059_009/native");
    for id in ["native", "component_per_event", "component_per_batch"] {
        let Some(ns) = mean_ns(&out_dir, &format!("t1059_009/{id}")) else { continue };
        let per_sec = EVENTS as f64 / (ns * 1e-9);
        let ratio = native.map_or(f64::NAN, |n| n / ns);
        println!("  {id:<22} {per_sec:>12.0} events/s   {ratio:>5.2} x native");
    }
}
