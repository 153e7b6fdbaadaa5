//! The Fluent Bit filter module (`fluentbit/`), loaded in wasmtime and
//! called the way Fluent Bit's `wasm` filter calls it, tags every event
//! exactly as `tripline run` does, keeps its memory flat over many calls,
//! handles large records and survives a trap.
//!
//! The module is built here, once per test run, rather than by the host's
//! build script: only these tests need it, and a plain build of the
//! `tripline` binary should not pay for a second wasm build.
//!
//! What the harness grants. The module is built for wasm32-wasip1, and the
//! Rust standard library there links five WASI functions, all on paths the
//! filter does not take in normal operation (the panic message, the
//! `RUST_BACKTRACE` lookup, process exit) except one: hash tables seed
//! themselves from `random_get`. Each is stubbed by hand below rather than
//! granted through a WASI implementation, so the test states exactly what
//! the module may reach: no file, no clock, no socket, no environment
//! variable. Fluent Bit grants real WASI, which is a superset.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wasmtime::{Caller, Engine, Extern, Linker, Memory, Module, Store, TypedFunc, ValType};

use crate::support::*;

const TARGET: &str = "wasm32-wasip1";

/// The imports the module may have; anything else fails the tests.
const WASI_IMPORTS: [&str; 5] =
    ["environ_get", "environ_sizes_get", "fd_write", "proc_exit", "random_get"];

/// WASI's "bad file descriptor" errno.
const ERRNO_BADF: i32 = 8;

/// The built module, compiled for wasmtime. Built and compiled once.
fn module() -> &'static (Engine, Module) {
    static MODULE: OnceLock<(Engine, Module)> = OnceLock::new();
    MODULE.get_or_init(|| {
        let engine = Engine::default();
        let module = Module::from_file(&engine, build()).unwrap();
        (engine, module)
    })
}

/// Builds the module with a nested cargo, in a target folder of its own so
/// that it neither waits for nor disturbs the outer build's lock.
fn build() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("fluentbit");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--release", "-p", "tripline-fluentbit", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the test build must not reach the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("failed to run cargo to build the Fluent Bit module");
    assert!(
        out.status.success(),
        "building the Fluent Bit module failed; is the target installed? \
         (rustup target add {TARGET})\n{}",
        stderr(&out)
    );
    target_dir.join(TARGET).join("release/tripline_fluentbit.wasm")
}

/// What the module wrote through `fd_write`: nothing, unless it panicked.
#[derive(Default)]
struct Host {
    written: Vec<u8>,
}

fn memory(caller: &mut Caller<'_, Host>) -> Memory {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => memory,
        _ => panic!("the module exports its memory"),
    }
}

fn read_u32(data: &[u8], at: u32) -> wasmtime::Result<u32> {
    let at = at as usize;
    let bytes =
        data.get(at..at + 4).ok_or_else(|| wasmtime::Error::msg("address out of bounds"))?;
    Ok(u32::from_le_bytes(bytes.try_into().unwrap()))
}

fn write_u32(data: &mut [u8], at: u32, value: u32) -> wasmtime::Result<()> {
    let at = at as usize;
    let bytes =
        data.get_mut(at..at + 4).ok_or_else(|| wasmtime::Error::msg("address out of bounds"))?;
    bytes.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// The WASI functions the module imports, each reduced to what the filter
/// may need of it.
fn linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    let wasi = "wasi_snapshot_preview1";
    // Seeds for hash tables. Fixed bytes keep runs reproducible.
    linker
        .func_wrap(wasi, "random_get", |mut caller: Caller<'_, Host>, buf: u32, len: u32| {
            let memory = memory(&mut caller);
            let range = buf as usize..buf as usize + len as usize;
            let out = memory.data_mut(&mut caller).get_mut(range);
            out.ok_or_else(|| wasmtime::Error::msg("address out of bounds"))?.fill(0x5a);
            Ok(0)
        })
        .unwrap();
    // An empty environment.
    linker
        .func_wrap(wasi, "environ_sizes_get", |mut caller: Caller<'_, Host>, n: u32, size: u32| {
            let memory = memory(&mut caller);
            let data = memory.data_mut(&mut caller);
            write_u32(data, n, 0)?;
            write_u32(data, size, 0)?;
            Ok(0)
        })
        .unwrap();
    linker.func_wrap(wasi, "environ_get", |_: u32, _: u32| 0).unwrap();
    // Standard output and error, kept so that a test can show a panic.
    linker
        .func_wrap(
            wasi,
            "fd_write",
            |mut caller: Caller<'_, Host>, fd: u32, iovs: u32, count: u32, written: u32| {
                if fd != 1 && fd != 2 {
                    return Ok(ERRNO_BADF);
                }
                let memory = memory(&mut caller);
                let (data, host) = memory.data_and_store_mut(&mut caller);
                let mut total = 0;
                for i in 0..count {
                    let ptr = read_u32(data, iovs + 8 * i)? as usize;
                    let len = read_u32(data, iovs + 8 * i + 4)? as usize;
                    let bytes = data
                        .get(ptr..ptr + len)
                        .ok_or_else(|| wasmtime::Error::msg("address out of bounds"))?;
                    host.written.extend_from_slice(bytes);
                    total += len as u32;
                }
                write_u32(data, written, total)?;
                Ok(0)
            },
        )
        .unwrap();
    linker
        .func_wrap(wasi, "proc_exit", |code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!("the module called proc_exit({code})")))
        })
        .unwrap();
    linker
}

/// One instance of the module and the exports Fluent Bit uses.
struct Filter {
    store: Store<Host>,
    memory: Memory,
    malloc: TypedFunc<i32, i32>,
    free: TypedFunc<i32, ()>,
    filter: TypedFunc<(i32, i32, i32, i32, i32, i32), i32>,
}

impl Filter {
    fn new() -> Filter {
        let (engine, module) = module();
        let mut store = Store::new(engine, Host::default());
        let instance = linker(engine).instantiate(&mut store, module).unwrap();
        Filter {
            memory: instance.get_memory(&mut store, "memory").unwrap(),
            malloc: instance.get_typed_func(&mut store, "malloc").unwrap(),
            free: instance.get_typed_func(&mut store, "free").unwrap(),
            filter: instance.get_typed_func(&mut store, "tripline_filter").unwrap(),
            store,
        }
    }

    /// Copies `bytes` and a NUL into guest memory with the module's own
    /// `malloc`, as WAMR's `wasm_runtime_module_dup_data` does for Fluent
    /// Bit. Like it, returns 0 if the allocation fails.
    fn dup(&mut self, bytes: &[u8]) -> wasmtime::Result<i32> {
        let ptr = self.malloc.call(&mut self.store, bytes.len() as i32 + 1)?;
        if ptr != 0 {
            let at = ptr as u32 as usize;
            let data = self.memory.data_mut(&mut self.store);
            data[at..at + bytes.len()].copy_from_slice(bytes);
            data[at + bytes.len()] = 0;
        }
        Ok(ptr)
    }

    /// One record through the filter, as `flb_wasm_call_function_format_json`
    /// passes it: copy the tag and the record in, call, check that the
    /// result is a NUL-terminated string inside memory and copy it out, then
    /// free both copies. Never frees the result. An error is a trap.
    fn call(&mut self, tag: &str, record: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let tag_ptr = self.dup(tag.as_bytes())?;
        let record_ptr = self.dup(record)?;
        let (sec, nsec) = (1_715_763_662, 123_000_000);
        let result =
            self.call_raw((tag_ptr, tag.len() as i32, sec, nsec, record_ptr, record.len() as i32));
        for ptr in [tag_ptr, record_ptr] {
            if ptr != 0 {
                self.free.call(&mut self.store, ptr)?;
            }
        }
        result
    }

    /// Calls the filter with these arguments and reads the string it returns.
    fn call_raw(&mut self, args: (i32, i32, i32, i32, i32, i32)) -> wasmtime::Result<Vec<u8>> {
        let out = self.filter.call(&mut self.store, args)? as u32 as usize;
        let data = self.memory.data(&self.store);
        let tail = data.get(out..).unwrap_or_default();
        let len = tail.iter().position(|&b| b == 0).ok_or_else(|| {
            wasmtime::Error::msg(format!("the result at {out} is not a string in memory"))
        })?;
        Ok(tail[..len].to_vec())
    }

    /// Linear memory, in bytes.
    fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// What the module wrote to standard output or error.
    fn written(&self) -> String {
        String::from_utf8_lossy(&self.store.data().written).into_owned()
    }
}

/// Runs every line of `path` through the filter and through `tripline run`
/// and checks that both give the same bytes; returns how many were tagged.
fn agrees_with_run(path: &Path, args: &[&str]) -> usize {
    let events = std::fs::read(path).unwrap();
    let mut run_args = args.to_vec();
    run_args.push(path.to_str().unwrap());
    let out = run_ok(&run_args, b"");
    let expected = lines(&out.stdout);
    let input = lines(&events);
    assert_eq!(expected.len(), input.len(), "{}: one line out per line in", path.display());

    let mut filter = Filter::new();
    let mut wrong = Vec::new();
    let mut tagged = 0;
    for (i, (line, want)) in input.iter().zip(&expected).enumerate() {
        let got = filter.call("app.log", line).unwrap();
        if got != *want {
            wrong.push(format!(
                "{}:{}:\n  module: {}\n  run:    {}",
                path.display(),
                i + 1,
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want)
            ));
        }
        tagged += usize::from(!tagged_rules(&got, "detections").is_empty());
    }
    assert!(wrong.is_empty(), "{} lines differ:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(filter.written(), "", "the module wrote to standard output or error");
    tagged
}

#[test]
fn the_module_imports_stubbed_wasi_only_and_exports_the_filter_abi() {
    let (_, module) = module();
    let mut imports: Vec<String> = module
        .imports()
        .map(|i| {
            assert_eq!(i.module(), "wasi_snapshot_preview1", "{}", i.name());
            i.name().to_string()
        })
        .collect();
    imports.sort();
    assert_eq!(imports, WASI_IMPORTS, "a new import must be reviewed and stubbed here");

    let func = |name: &str| {
        let ty = module.get_export(name).and_then(|e| e.func().cloned());
        let ty = ty.unwrap_or_else(|| panic!("no exported function `{name}`"));
        let params: Vec<bool> = ty.params().map(|p| matches!(p, ValType::I32)).collect();
        let results: Vec<bool> = ty.results().map(|r| matches!(r, ValType::I32)).collect();
        (params, results)
    };
    // What Fluent Bit's filter calls, and what WAMR looks for to allocate
    // its copies of each record in the module's heap.
    assert_eq!(func("tripline_filter"), (vec![true; 6], vec![true]));
    assert_eq!(func("malloc"), (vec![true], vec![true]));
    assert_eq!(func("free"), (vec![true], vec![]));
    assert!(module.get_export("memory").and_then(|e| e.memory().cloned()).is_some());
    // A reactor's `_initialize` or a command's `_start` would change how
    // WAMR instantiates the module; it needs neither.
    assert!(module.get_export("_initialize").is_none() && module.get_export("_start").is_none());
}

#[test]
fn the_fixture_events_are_tagged_as_tripline_run_tags_them() {
    let path = root().join("tests/fixtures/t1059_009/events.ndjson");
    let tagged = agrees_with_run(&path, &[]);
    assert!(tagged > 10, "only {tagged} fixture events tagged");
}

#[test]
fn the_corpus_is_tagged_as_tripline_run_tags_it() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is absent, so there are no public samples to check");
        return;
    };
    let mut tagged = 0;
    for name in ["cloudtrail", "azure"] {
        tagged += agrees_with_run(&dir.join(format!("{name}.ndjson")), &[]);
    }
    assert!(tagged > 0, "nothing in the corpus tagged");
}

/// A record of at least `size` bytes: `fixture` with a long string added.
fn padded(fixture: &str, size: usize) -> Vec<u8> {
    let body = fixture.strip_suffix('}').unwrap();
    let padding = "x".repeat(size);
    format!(r#"{body},"padding":"{padding}"}}"#).into_bytes()
}

fn fixture_line(default_verdict: &str) -> String {
    let dir = root().join("tests/fixtures/t1059_009");
    let events = std::fs::read_to_string(dir.join("events.ndjson")).unwrap();
    let expected = std::fs::read_to_string(dir.join("events.expected.tsv")).unwrap();
    let row = expected.lines().skip(1).position(|l| l.starts_with(&format!("{default_verdict}\t")));
    events.lines().nth(row.unwrap()).unwrap().to_string()
}

#[test]
fn records_over_a_mebibyte_are_tagged_whole() {
    let big = 1 << 20;
    let records = [padded(&fixture_line("1"), big), padded(&fixture_line("0"), big)];
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("fluentbit-large.ndjson");
    std::fs::write(&path, [&records[0][..], b"\n", &records[1][..], b"\n"].concat()).unwrap();
    // `tripline run` skips events over a mebibyte unless told otherwise.
    let limit = (4 << 20).to_string();
    let args = ["--max-event-bytes", &limit, "--batch-bytes", &limit];
    assert_eq!(agrees_with_run(&path, &args), 1);

    // Later calls reuse the memory the first one grew.
    let mut filter = Filter::new();
    for record in &records {
        filter.call("app.log", record).unwrap();
    }
    let grown = filter.memory_size();
    for _ in 0..20 {
        for record in &records {
            filter.call("app.log", record).unwrap();
        }
    }
    assert_eq!(filter.memory_size(), grown);
}

#[test]
fn ten_thousand_calls_leave_memory_as_it_was() {
    let records = [
        fixture_line("1").into_bytes(),
        fixture_line("0").into_bytes(),
        fixture_line("error").into_bytes(),
        b"{\"a\":".to_vec(),
        padded(&fixture_line("1"), 64 << 10),
    ];
    let mut filter = Filter::new();
    let first: Vec<Vec<u8>> = records.iter().map(|r| filter.call("app.log", r).unwrap()).collect();
    let before = filter.memory_size();
    for i in 0..10_000 {
        let k = i % records.len();
        let got = filter.call("app.log", &records[k]).unwrap();
        assert!(got == first[k], "call {i}: the answer changed");
    }
    assert_eq!(filter.memory_size(), before, "memory grew over 10,000 calls");
    assert_eq!(filter.written(), "");
}

#[test]
fn a_trap_costs_one_record_and_the_next_call_works() {
    let mut filter = Filter::new();
    let record = fixture_line("1").into_bytes();
    let want = filter.call("app.log", &record).unwrap();
    assert!(!tagged_rules(&want, "detections").is_empty());

    // A record address past the end of memory makes the module trap while
    // it reads the record, as any fault inside it would; Fluent Bit logs
    // the exception and calls the same instance again.
    let past_end = filter.memory_size() as i32 - 8;
    let trapped = filter.call_raw((0, 0, 0, 0, past_end, 4096));
    assert!(trapped.is_err(), "expected a trap, got {trapped:?}");
    assert_eq!(filter.call("app.log", &record).unwrap(), want);
    let plain = fixture_line("0").into_bytes();
    assert_eq!(filter.call("app.log", &plain).unwrap(), plain);
}
