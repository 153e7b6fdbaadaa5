//! The detector component against the plain native filter, side by side on
//! the same generated CloudTrail events: the filter, the engine natively,
//! and the engine inside the component called once per event and once per
//! batch. A second rule set, one rule that reads one field and never
//! matches, leaves only the cost of reading events, natively and in wasm.
//! Then a sweep of the events per call, from 1 to 2048. Prints events/s
//! and the ratio to the plain filter.
//!
//! Run with `cargo bench -p tripline-benches --bench component`. Set
//! `TRIPLINE_BENCH_COMPONENT=path.wasm` to measure another build of the
//! component (one built without SIMD, say) in place of the built-in one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tripline::component::{self, Detector, Limits, RuleSource, Runtime, DEFAULT_COMPONENT};
use tripline_benches::{cloudtrail_events, mean_ns, PlainFilter, DEFAULT_RULE};
use tripline_engine::diag::Source;
use tripline_engine::{lines, Engine};

const EVENTS: usize = 2048;
/// Events per call in the batched case: the `tripline run` default.
const BATCH: usize = 256;
/// Events per call in the sweep that chose that default.
const SWEEP: [usize; 7] = [1, 4, 16, 64, 256, 1024, 2048];

const SCAN_ONLY: &str = r#"rule scan_only {
  events:
    $e.metadata.product_name = "none of these events"
  condition:
    $e
}
"#;

fn tagged(detector: &mut Detector, batches: &[Vec<u8>]) -> usize {
    let verdicts = batches.iter().flat_map(|b| detector.evaluate(b).unwrap());
    verdicts.map(|v| v.map_or(0, |d| d.len())).sum()
}

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
    let batches = batched(&event_lines, BATCH);

    let wasm = component::engine().unwrap();
    let bytes = match std::env::var_os("TRIPLINE_BENCH_COMPONENT") {
        Some(path) => std::fs::read(path).unwrap(),
        None => DEFAULT_COMPONENT.to_vec(),
    };
    let (compiled, _) = tripline::cache::load(&wasm, &bytes, None).unwrap();
    let runtime = Arc::new(Runtime::new(&wasm, compiled, "bench", Limits::default()).unwrap());
    let plain = PlainFilter::new();
    let mut out = Vec::new();

    let mut group = c.benchmark_group("component");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("plain_filter", |b| b.iter(|| plain.run(&events, &mut out)));
    for (set, text) in [("t1059_009", DEFAULT_RULE), ("scan_only", SCAN_ONLY)] {
        let engine = Engine::load(&[Source { name: set, text }]).unwrap();
        let mut scratch = engine.scratch();
        let mut detector = runtime.instantiate().unwrap();
        let source = RuleSource { name: set.into(), text: text.into() };
        detector.load_rules(&[source]).unwrap().unwrap();

        // The same verdicts everywhere, or the comparison means nothing.
        let mut native_tagged = 0;
        engine.evaluate_batch(&events, &mut scratch, |r| native_tagged += r.map_or(0, |m| m.len()));
        assert_eq!(tagged(&mut detector, &batches), native_tagged);
        if set == "t1059_009" {
            assert_eq!(plain.run(&events, &mut out), native_tagged);
            assert!(native_tagged > 0);
        }

        group.bench_function(format!("{set}_native"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                engine.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
                n
            })
        });
        if set == "t1059_009" {
            group.bench_function(format!("{set}_component_per_event"), |b| {
                b.iter(|| {
                    event_lines.iter().map(|l| detector.evaluate(l).unwrap().len()).sum::<usize>()
                })
            });
        }
        group.bench_function(format!("{set}_component_per_batch"), |b| {
            b.iter(|| tagged(&mut detector, &batches))
        });
    }
    group.finish();

    // The batch size: per-call costs shrink with it, while the buffers in
    // and out, and the guest memory that holds them, grow.
    let mut sweep = c.benchmark_group("batch_size");
    sweep.throughput(Throughput::Elements(EVENTS as u64));
    let mut detector = runtime.instantiate().unwrap();
    let source = RuleSource { name: "t1059_009".into(), text: DEFAULT_RULE.into() };
    detector.load_rules(&[source]).unwrap().unwrap();
    for size in SWEEP {
        let batches = batched(&event_lines, size);
        sweep.bench_function(size.to_string(), |b| b.iter(|| tagged(&mut detector, &batches)));
    }
    sweep.finish();
    c.final_summary();

    println!("\n{EVENTS} CloudTrail events of {avg} bytes on average, 1 in 10 tagged:");
    let base = mean_ns(&out_dir, "component/plain_filter");
    let ids = [
        "plain_filter",
        "t1059_009_native",
        "t1059_009_component_per_event",
        "t1059_009_component_per_batch",
        "scan_only_native",
        "scan_only_component_per_batch",
    ];
    for id in ids {
        let Some(ns) = mean_ns(&out_dir, &format!("component/{id}")) else { continue };
        let per_sec = EVENTS as f64 / (ns * 1e-9);
        let ratio = base.map_or(f64::NAN, |b| b / ns);
        println!("  {id:<32} {per_sec:>10.0} events/s  {ratio:>5.2} x plain filter");
    }
    println!("\nThe component per call of N events (N x {avg} bytes):");
    for size in SWEEP {
        let Some(ns) = mean_ns(&out_dir, &format!("batch_size/{size}")) else { continue };
        let per_sec = EVENTS as f64 / (ns * 1e-9);
        let ratio = base.map_or(f64::NAN, |b| b / ns);
        println!(
            "  {size:>5} events per call  {per_sec:>10.0} events/s  {ratio:>5.2} x plain filter"
        );
    }
}

/// The events as NDJSON buffers of `size` lines each, one per call.
fn batched(lines: &[&[u8]], size: usize) -> Vec<Vec<u8>> {
    let joined =
        |chunk: &[&[u8]]| chunk.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    lines.chunks(size).map(joined).collect()
}
