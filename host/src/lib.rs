//! The `tripline` host: runs detector components inline over log streams.
//!
//! It narrows wasmtime to what a log filter needs: one component kind (the
//! `tripline:detector` world), no imports granted, and every call bounded
//! in time and memory. The binary's commands are in `main.rs`; this crate
//! holds the parts they share and that tests and benchmarks drive.

pub mod batch;
pub mod cache;
pub mod component;
pub mod pool;
pub mod run;
pub mod serve;
pub mod tag;
