//! Builds the detector component that the `tripline` binary embeds.
//!
//! The guest crate is compiled for `wasm32-unknown-unknown`, so that its
//! core module imports nothing, and then wrapped as a component with
//! `wit-component`. The guest gets a target folder of its own under the
//! shared one: a nested cargo cannot take the lock of the outer build's.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-unknown-unknown";

/// 128-bit SIMD lets the JSON scanner and `memchr` test 16 bytes per step
/// (see benches/component.rs for what it buys).
const GUEST_RUSTFLAGS: &str = "-Ctarget-feature=+simd128";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().expect("host/ sits in the workspace root");
    for watched in
        ["engine/src", "engine/Cargo.toml", "guest", "wit", "rules/default", "Cargo.lock"]
    {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "tripline-guest", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build must not reach the wasm build,
        // which gets its own: wasm SIMD, which every wasmtime runs.
        .env("CARGO_ENCODED_RUSTFLAGS", GUEST_RUSTFLAGS)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("failed to run cargo to build the guest");
    if !status.success() {
        panic!(
            "building the detector component failed; is the target installed? \
             (rustup target add {GUEST_TARGET})"
        );
    }

    let core = target_dir.join(GUEST_TARGET).join("release/tripline_guest.wasm");
    let module = std::fs::read(&core)
        .unwrap_or_else(|e| panic!("failed to read the guest module {}: {e}", core.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|enc| enc.validate(true).encode())
        .unwrap_or_else(|e| panic!("failed to encode the guest as a component: {e:#}"));
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("tripline_detector.wasm");
    std::fs::write(&out, component).unwrap();
}
