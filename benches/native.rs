//! Native costs: the event reader alone, the engine, a full
//! `serde_json::Value` parse, and the plain native filter that everything
//! is measured against (see `PlainFilter`), over events of 200 B to 64 KB.
//! Prints events/s, ns per byte and ratios to the plain filter; ns per
//! byte shows whether cost grows linearly with size.
//!
//! Run with `cargo bench -p tripline-benches --bench native`.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tripline_benches::{mean_ns, sized_events, PlainFilter, DEFAULT_RULE};
use tripline_engine::diag::Source;
use tripline_engine::reader::Reader;
use tripline_engine::{lines, Engine};

const SIZES: [usize; 5] = [200, 1024, 4096, 16384, 65536];

fn main() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let engine = Engine::load(&[Source { name: "default", text: DEFAULT_RULE }]).unwrap();
    let plain = PlainFilter::new();
    // The event reader alone: one scan per event for the fields the rule
    // reads, and the source recognised, with no rule evaluated.
    let reader = Reader::new(engine.fields());
    let mut captures = reader.scratch();

    let mut report = Vec::new();
    for size in SIZES {
        let count = (1 << 20) / size.max(512);
        let events = sized_events(count, size);
        let avg = events.len() / count;
        let mut scratch = engine.scratch();
        let mut out = Vec::new();

        let mut engine_tagged = 0;
        engine.evaluate_batch(&events, &mut scratch, |r| engine_tagged += r.map_or(0, |m| m.len()));
        assert_eq!(plain.run(&events, &mut out), engine_tagged, "same verdicts");

        let group_name = format!("native_{size}");
        let mut group = c.benchmark_group(&group_name);
        group.throughput(Throughput::Bytes(events.len() as u64));
        group.bench_function("plain_filter", |b| b.iter(|| plain.run(&events, &mut out)));
        group.bench_function("engine", |b| {
            b.iter(|| {
                let mut n = 0usize;
                engine.evaluate_batch(&events, &mut scratch, |r| n += r.map_or(0, |m| m.len()));
                n
            })
        });
        group.bench_function("reader", |b| {
            b.iter(|| lines(&events).filter(|l| reader.read(l, &mut captures).is_ok()).count())
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
        for id in ["plain_filter", "engine", "reader", "serde_value"] {
            let Some(ns) = mean_ns(&out_dir, &format!("{group}/{id}")) else { continue };
            let per_sec = count as f64 / (ns * 1e-9);
            let per_byte = ns / (count * avg) as f64;
            let ratio = base.map_or(f64::NAN, |b| b / ns);
            println!(
                "  {avg:>6} B  {id:<13} {per_sec:>10.0} events/s  \
                 {per_byte:>5.2} ns/B  {ratio:>5.2} x"
            );
        }
    }
}
