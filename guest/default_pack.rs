// Shared by the build scripts of the detector component (`guest`) and the
// Fluent Bit module (`fluentbit`), each of which `include!`s it, so that the
// two artefacts are built from one pack, checked the same way.
//
// The pack is found relative to the including crate's manifest, so both
// crates must sit directly in the workspace root.

use std::fmt::Write as _;
use std::path::Path;

/// Checks that every rule of `rules/default/*.yaral` compiles and writes
/// `$OUT_DIR/default_pack.rs`, which defines `DEFAULT_PACK`.
fn embed_default_pack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/default");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the default rule pack {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaral"))
        .collect();
    files.sort();

    let texts: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            println!("cargo:rerun-if-changed={}", p.display());
            let name = format!("rules/default/{}", p.file_name().unwrap().to_string_lossy());
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let sources: Vec<_> =
        texts.iter().map(|(name, text)| tripline_engine::diag::Source { name, text }).collect();
    if let Err(errors) = tripline_engine::Engine::load(&sources) {
        for e in &errors {
            eprintln!("{}", sources[e.source].render(&e.diag));
        }
        panic!("the default rule pack does not compile");
    }

    let mut out = String::from("/// The default rule pack: (source name, text).\n");
    out.push_str("pub static DEFAULT_PACK: &[(&str, &str)] = &[\n");
    for (file, (name, _)) in files.iter().zip(&texts) {
        writeln!(out, "    ({name:?}, include_str!({:?})),", file.canonicalize().unwrap()).unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("default_pack.rs");
    std::fs::write(dest, out).unwrap();
}
