//! Compiling components once: a cache of precompiled code on disk.
//!
//! Compiling the detector component takes over a second and tens of
//! megabytes; loading precompiled code takes well under a millisecond. The
//! cache keys each entry by the component's SHA-256 and by wasmtime's
//! compatibility hash (its version and the engine settings), so an upgrade
//! or a changed component never loads stale code. A cache that cannot be
//! read or written only costs time: the component is compiled in memory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where precompiled components are kept: `$TRIPLINE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/tripline`, else `~/.cache/tripline`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRIPLINE_CACHE_DIR") {
        return Some(dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(Path::new(&dir).join("tripline"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/tripline"))
}

/// How a component was obtained, for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the cache.
    Cached,
    /// Compiled now, and stored in the cache.
    Compiled,
    /// Compiled now; the cache was off or could not be written.
    CompiledUncached,
}

/// Loads `bytes` (a component binary) through the cache in `dir`.
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> Result<(Component, Origin)> {
    let Some(dir) = dir else {
        return Ok((compile(engine, bytes)?, Origin::CompiledUncached));
    };
    let path = dir.join(format!("{}.cwasm", key(engine, bytes)));
    if path.is_file() {
        // SAFETY: the file is one this function wrote, under a name that
        // holds the digest of its source and wasmtime's compatibility hash;
        // wasmtime checks its header and version before use. The cache
        // folder has the same owner, and so the same trust, as this binary.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, Origin::Cached)),
            Err(_) => {
                // A truncated or foreign file: compile anew and replace it.
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let precompiled = engine
        .precompile_component(bytes)
        .map_err(anyhow::Error::from)
        .context("failed to compile component")?;
    let stored = store(dir, &path, &precompiled).is_ok();
    // SAFETY: `precompiled` was produced by this engine just now.
    let component = unsafe { Component::deserialize(engine, &precompiled) }
        .map_err(anyhow::Error::from)
        .context("failed to load the component just compiled")?;
    Ok((component, if stored { Origin::Compiled } else { Origin::CompiledUncached }))
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("failed to compile component")
}

/// Writes atomically: a reader sees the whole file or none.
fn store(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}", hasher.finish())
}
