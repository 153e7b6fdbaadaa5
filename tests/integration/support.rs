//! Running the built `tripline` binary and reading what it wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `../shared/corpus` beside the repository, if it is there.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/corpus");
    dir.join("README.md").is_file().then_some(dir)
}

/// A `tripline` command that shares one component cache between tests, so
/// the component is compiled once per test run, not once per process.
pub fn tripline() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tripline"));
    cmd.env("TRIPLINE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd` with `stdin` as its standard input.
pub fn run_with_input(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start tripline");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit before reading everything (as --strict does).
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("failed to wait for tripline");
    writer.join().unwrap();
    out
}

/// Runs `tripline run ARGS` over `input` and checks that it succeeded.
pub fn run_ok(args: &[&str], input: &[u8]) -> Output {
    let out = run_with_input(tripline().arg("run").args(args), input);
    assert!(out.status.success(), "tripline run {args:?} failed: {}", stderr(&out));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `bytes`, each without its `\n`.
pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    tripline_engine::lines(bytes).collect()
}

/// The names of the rules in a tagged line's `detections`, or none.
pub fn tagged_rules(line: &[u8], field: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(line) else {
        return Vec::new();
    };
    obj.get(field)
        .and_then(|v| v.as_array())
        .map(|dets| dets.iter().map(|d| d["rule"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A detector component built from a core module in WAT that exports the
/// `tripline:detector` functions by their canonical ABI names.
pub fn component_from_wat(name: &str) -> PathBuf {
    let wat = root().join("tests/components").join(format!("{name}.wat"));
    let mut module = wat::parse_file(&wat).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(root().join("wit")).unwrap();
    let world = resolve.select_world(&[pkg], Some("detector-component")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.wasm"));
    std::fs::write(&out, component).unwrap();
    out
}

/// A component given as component-model WAT text, written to a file.
pub fn component_text(name: &str, text: &str) -> PathBuf {
    let bytes = wat::parse_str(text).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.wasm"));
    std::fs::write(&out, bytes).unwrap();
    out
}
