//! The peer table: every way of running the T1059.009 detection, side by
//! side on the same generated CloudTrail events, each as a ratio to the
//! plain native filter measured in the same run.
//!
//! - `plain filter`: the baseline (`benches/src/plain.rs`).
//! - `engine, native`: Tripline's engine compiled for this machine.
//! - `component path`: what `tripline run` does per batch, on one core:
//!   one guest call per 256 events, then the tags spliced in.
//! - `tripline run`: the whole process over a file of the same events
//!   repeated, with 1 and 2 workers, start-up and I/O included.
//! - `vrl`: the detection in Vector's VRL (`benches/vrl`), in a process of
//!   its own, which measures the plain filter beside it; its ratio is to
//!   that figure.
//!
//! It also prints the start-up time of `tripline run` on one event and its
//! peak memory over the whole file. `benches/peers.sh` builds what this
//! drives and runs it.
//!
//! In-process figures are taken in alternating turns of a quarter second,
//! so that other work on the machine slows every subject alike; each
//! figure is the median turn.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tripline::batch::{self, Outcome};
use tripline::component::{self, Detector, Limits, Runtime, DEFAULT_COMPONENT};
use tripline::tag::Tagger;
use tripline_benches::{cloudtrail_events, PlainFilter, DEFAULT_RULE};
use tripline_engine::diag::Source;
use tripline_engine::{lines, Engine};

/// Events generated: about 25 MB.
const EVENTS: usize = 20_000;
/// Whole `tripline run` processes read the events this many times over
/// (about 125 MB), so that their figure is mostly steady state rather
/// than start-up, which is measured on its own.
const RUN_COPIES: usize = 5;
/// Events per guest call, as `tripline run` sends them.
const BATCH: usize = 256;
const TURN: Duration = Duration::from_millis(250);
const TURNS: usize = 12;

/// One thing measured in process: it processes all events once and says
/// how many it tagged.
type Subject<'a> = Box<dyn FnMut() -> usize + 'a>;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let events = cloudtrail_events(EVENTS, 10);
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-events.ndjson");
    std::fs::write(&file, &events).unwrap();
    let run_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-run.ndjson");
    std::fs::write(&run_file, events.repeat(RUN_COPIES)).unwrap();
    println!(
        "{EVENTS} generated CloudTrail events of {} bytes on average, 1 in 10 tagged",
        events.len() / EVENTS
    );

    let in_process = measure_in_process(&events);
    let plain_eps = in_process[0].1;
    let tripline = target.join("release/tripline");
    let mut rows: Vec<(String, f64, f64)> =
        in_process.into_iter().map(|(name, eps)| (name, eps, eps / plain_eps)).collect();
    if tripline.is_file() {
        for workers in ["1", "2"] {
            let secs = best_of(3, || {
                let started = Instant::now();
                let status = Command::new(&tripline)
                    .args(["run", "--workers", workers, "--output", "/dev/null"])
                    .arg(&run_file)
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success(), "tripline run failed");
                started.elapsed().as_secs_f64()
            });
            let eps = (EVENTS * RUN_COPIES) as f64 / secs;
            rows.push((format!("tripline run, {workers} worker(s)"), eps, eps / plain_eps));
        }
    } else {
        println!("(no {}: build it with `cargo build --release -p tripline`)", tripline.display());
    }
    match vrl(&target.join("release/tripline-vrl-bench"), &file) {
        Some((vrl_eps, ratio)) => rows.push(("vrl (its own process)".into(), vrl_eps, ratio)),
        None => println!("(no VRL figure: see benches/vrl/README.md to build it)"),
    }

    println!("\n{:<34} {:>12} {:>9}", "", "events/s", "x plain");
    for (name, eps, ratio) in &rows {
        println!("{name:<34} {eps:>12.0} {ratio:>9.2}");
    }
    if tripline.is_file() {
        start_up_and_memory(&tripline, &run_file, &events);
    }
}

/// The plain filter first: the others are ratios to it.
fn measure_in_process(events: &[u8]) -> Vec<(String, f64)> {
    let plain = PlainFilter::new();
    let engine = Engine::load(&[Source { name: "default", text: DEFAULT_RULE }]).unwrap();
    let mut scratch = engine.scratch();
    let wasm = component::engine().unwrap();
    let (compiled, _) = tripline::cache::load(&wasm, DEFAULT_COMPONENT, None).unwrap();
    let runtime = Arc::new(Runtime::new(&wasm, compiled, "peers", Limits::default()).unwrap());
    let mut detector = runtime.instantiate().unwrap();
    let tagger = Tagger::new("detections", &detector.rules().unwrap());
    let batches: Vec<(Vec<u8>, usize)> = lines(events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| {
            (chunk.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect(), chunk.len())
        })
        .collect();

    let (mut plain_out, mut component_out) = (Vec::new(), Vec::new());
    let mut subjects: Vec<(&str, Subject)> = vec![
        ("plain filter", Box::new(|| plain.run(events, &mut plain_out))),
        (
            "engine, native",
            Box::new(|| {
                let mut n = 0;
                engine.evaluate_batch(events, &mut scratch, |r| {
                    n += r.is_ok_and(|m| !m.is_empty()) as usize
                });
                n
            }),
        ),
        (
            "component path, 1 core",
            Box::new(|| component_path(&mut detector, &tagger, &batches, &mut component_out)),
        ),
    ];
    let tagged: Vec<usize> = subjects.iter_mut().map(|(_, run)| run()).collect();
    assert!(tagged.iter().all(|&n| n == tagged[0] && n > 0), "verdicts differ: {tagged:?}");

    let mut per_turn: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for _ in 0..TURNS {
        for (i, (_, run)) in subjects.iter_mut().enumerate() {
            let (started, mut passes) = (Instant::now(), 0);
            while started.elapsed() < TURN {
                run();
                passes += 1;
            }
            per_turn[i].push((passes * EVENTS) as f64 / started.elapsed().as_secs_f64());
        }
    }
    subjects.iter().zip(per_turn).map(|((name, _), eps)| (name.to_string(), median(eps))).collect()
}

/// One guest call per batch, then each event written out as `run` writes
/// it. Returns how many events were tagged.
fn component_path(
    detector: &mut Detector,
    tagger: &Tagger,
    batches: &[(Vec<u8>, usize)],
    out: &mut Vec<u8>,
) -> usize {
    out.clear();
    let mut tagged = 0;
    for (batch, count) in batches {
        let evaluation = batch::evaluate(detector, batch, *count);
        for (i, line) in lines(batch).enumerate() {
            let outcome = evaluation.outcome(i);
            tagged += matches!(outcome, Outcome::Tagged(_)) as usize;
            batch::write(tagger, line, &outcome, out);
            out.push(b'\n');
        }
    }
    tagged
}

/// VRL's events/s and its ratio to the plain filter in its own process.
fn vrl(binary: &Path, file: &Path) -> Option<(f64, f64)> {
    let out = Command::new(binary).arg(file).stderr(Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("RESULT "))?;
    let field = |key: &str| -> Option<f64> {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    Some((field("vrl_eps")?, field("ratio")?))
}

/// `tripline run` on one event, with the cache warm, and its peak
/// resident memory over the whole file, read by GNU time if it is there.
fn start_up_and_memory(tripline: &Path, file: &Path, events: &[u8]) {
    let one = Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-one.ndjson");
    std::fs::write(&one, lines(events).next().unwrap()).unwrap();
    let run_one = || {
        let started = Instant::now();
        let status = Command::new(tripline)
            .args(["run", "--output", "/dev/null"])
            .arg(&one)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        started.elapsed().as_secs_f64()
    };
    run_one(); // fills the component cache
    println!(
        "\nstart-up, tripline run on one event: {:.1} ms (best of 10)",
        best_of(10, run_one) * 1e3
    );

    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        println!("peak memory: not measured (no /usr/bin/time)");
        return;
    }
    for workers in ["1", "2"] {
        let out = Command::new(time)
            .args(["-f", "%M"])
            .arg(tripline)
            .args(["run", "--workers", workers, "--output", "/dev/null"])
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let kib: f64 = text.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(f64::NAN);
        println!(
            "peak memory, tripline run --workers {workers} over {} MB: {:.1} MB",
            std::fs::metadata(file).map_or(0, |m| m.len() >> 20),
            kib / 1024.0
        );
    }
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
