//! Runs the detector component over generated events for a while, with
//! wasmtime writing a perf map, so that `perf record` names guest
//! functions:
//!
//! ```sh
//! cargo build --release -p tripline-benches --example profile_component
//! perf record -g -o /tmp/perf.data target/release/examples/profile_component 10
//! perf report -i /tmp/perf.data --no-children
//! ```
//!
//! The argument is how many seconds to run, or, as `--calls N`, how many
//! calls of 256 events to make: under `valgrind --tool=callgrind`, the
//! difference in instructions between two call counts is the cost of the
//! calls alone, repeatable on a busy machine. `TRIPLINE_NO_EPOCH=1` turns
//! off epoch interruption, to see what the deadline checks cost;
//! `TRIPLINE_BENCH_COMPONENT=path.wasm` runs another build of the component.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tripline::component::{Limits, Runtime, DEFAULT_COMPONENT};
use tripline_benches::cloudtrail_events;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, ProfilingStrategy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (seconds, calls) = match args.as_slice() {
        [flag, n] if flag == "--calls" => (u64::MAX, n.parse().expect("--calls N")),
        [s] => (s.parse().expect("seconds"), u64::MAX),
        _ => (10, u64::MAX),
    };
    let epoch = std::env::var_os("TRIPLINE_NO_EPOCH").is_none();
    let mut config = Config::new();
    config.epoch_interruption(epoch);
    config.wasm_component_model(true);
    config.profiler(ProfilingStrategy::PerfMap);
    let engine = Engine::new(&config).unwrap();
    let bytes = match std::env::var_os("TRIPLINE_BENCH_COMPONENT") {
        Some(path) => std::fs::read(path).expect("TRIPLINE_BENCH_COMPONENT names a file"),
        None => DEFAULT_COMPONENT.to_vec(),
    };
    let component = Component::new(&engine, &bytes).unwrap();
    let limits = Limits { deadline: Duration::from_secs(3600), ..Limits::default() };
    let runtime = Arc::new(Runtime::new(&engine, component, "profile", limits).unwrap());
    let mut detector = runtime.instantiate().unwrap();

    let events = cloudtrail_events(256, 10);
    let started = Instant::now();
    let until = started.checked_add(Duration::from_secs(seconds));
    let mut made = 0u64;
    while made < calls && until.is_none_or(|t| Instant::now() < t) {
        detector.evaluate(&events).unwrap();
        made += 1;
    }
    let per_sec = (made * 256) as f64 / started.elapsed().as_secs_f64();
    println!("{per_sec:.0} events/s (epoch interruption {})", if epoch { "on" } else { "off" });
}
