//! Tripline as a Fluent Bit `filter_wasm` module: the engine and the
//! default rule pack in one core module, so that a Fluent Bit pipeline can
//! tag events in-process instead of sending them over a network hop.
//!
//! Fluent Bit's `wasm` filter loads a wasm32-wasip1 core module (not a
//! component) and calls one exported function per record. This crate is
//! that module. It exports `tripline_filter`, which returns each record
//! either unchanged or with the same `detections` field that
//! `tripline run` appends (both write it through [`tripline_engine::tag`]),
//! and `malloc` and `free`, which the runtime uses for its copies of each
//! record. `docs/fluent-bit.md` says how to configure it.
//!
//! # The calling convention
//!
//! Nothing formal describes it; this is what Fluent Bit's own code does
//! (`plugins/filter_wasm/filter_wasm.c` and `src/wasm/flb_wasm.c`, read at
//! the 4.x releases, and the WAMR runtime it bundles):
//!
//! - With `event_format json`, the filter renders each record's body as
//!   compact JSON text and copies the tag and that text into guest memory
//!   with `wasm_runtime_module_dup_data`, each with one extra byte for its
//!   NUL terminator. It then calls the function with those two addresses,
//!   their lengths without the NUL, and the record's time as seconds and
//!   nanoseconds, all as `i32`.
//! - After the call it checks that the returned address starts a
//!   NUL-terminated string inside linear memory, duplicates that string on
//!   its own heap, and only then frees its two copies with
//!   `wasm_runtime_module_free`. It never frees what the function returned:
//!   the module owns that memory. An empty string drops the record, and so
//!   does a trap (Fluent Bit logs the exception, clears it and goes on with
//!   the same instance). Any other string must parse as a JSON object.
//! - WAMR takes those copies from an "app heap" of `wasm_heap_size` bytes
//!   that it carves out of linear memory, 8 KiB unless configured, and
//!   fails to copy larger records. If the module exports `malloc`
//!   (`i32 -> i32`) and `free` (`i32 -> ()`), WAMR drops the app heap and
//!   calls those instead. This module exports the C library's own pair,
//!   the same allocator Rust uses here, so a record may be as large as
//!   linear memory allows.
//! - Current releases instantiate the module once per filter and keep it;
//!   some older ones instantiated it for every chunk of records. State kept
//!   between calls is therefore a cache, never something a record needs.
//!
//! # Failing safe
//!
//! Nothing a record holds can make the module panic: the engine does not
//! panic on input, and a record it cannot read (not UTF-8, not JSON, not an
//! object, nested too deep) is returned unchanged. A panic cannot be caught
//! on this target, since wasm32 code is built with `panic=abort`; it would
//! trap, and Fluent Bit would drop that one record and carry on. So that a
//! trap in the middle of a call cannot leave half-updated state behind for
//! the next one, the loaded filter is taken out of its slot for the length
//! of a call and put back only at the end: after a trap the slot is empty
//! and the next call loads the rules afresh.

use std::cell::Cell;

use tripline_engine::diag::Source;
use tripline_engine::tag::Tagger;
use tripline_engine::{Engine, Match, Scratch};

include!(concat!(env!("OUT_DIR"), "/default_pack.rs"));

/// The field that holds a matching record's detections: the default of
/// `tripline run --tag-field`, so that both tag alike.
const TAG_FIELD: &str = "detections";

/// Bytes reserved for the tag beyond the record itself. A detection of the
/// default pack takes a few hundred; more only costs a reallocation.
const TAG_ROOM: usize = 4 << 10;

/// The returned string for a record that cannot be read at all.
static EMPTY: u8 = 0;

/// The rules, compiled once, and the buffers every call reuses.
struct Filter {
    engine: Engine,
    scratch: Scratch,
    tagger: Tagger,
    matches: Vec<Match>,
    /// The string the last call returned, NUL-terminated. Fluent Bit
    /// copies it before the next call, so one buffer serves every call and
    /// nothing is left for anyone to free.
    out: Vec<u8>,
}

thread_local! {
    /// The loaded filter, or `None` before the first call and after a trap.
    /// The target has no threads, so this is one slot for the instance.
    static FILTER: Cell<Option<Box<Filter>>> = const { Cell::new(None) };
}

impl Filter {
    /// Compiles the default pack. The build script has already checked that
    /// it compiles, so `None` is not expected; callers still cope with it.
    fn load() -> Option<Box<Filter>> {
        let sources: Vec<Source> =
            DEFAULT_PACK.iter().map(|&(name, text)| Source { name, text }).collect();
        let engine = Engine::load(&sources).ok()?;
        let scratch = engine.scratch();
        let tagger = Tagger::new(TAG_FIELD, engine.rules());
        Some(Box::new(Filter { engine, scratch, tagger, matches: Vec::new(), out: Vec::new() }))
    }

    /// Writes the answer for `record` into `self.out` and returns its
    /// address, or `None` if the buffer cannot grow to hold it.
    fn answer(&mut self, record: &[u8]) -> Option<*const u8> {
        self.out.clear();
        self.matches.clear();
        // A record the engine cannot read is answered unchanged, as
        // `tripline run` forwards it.
        let tagged = self.engine.evaluate(record, &mut self.scratch, &mut self.matches).is_ok()
            && !self.matches.is_empty();
        let room = record.len() + 1 + if tagged { TAG_ROOM } else { 0 };
        self.out.try_reserve(room).ok()?;
        if tagged {
            self.tagger.tag(record, &self.matches, &mut self.out);
        } else {
            self.out.extend_from_slice(record);
        }
        self.out.push(0);
        Some(self.out.as_ptr())
    }
}

/// Fluent Bit's filter callback: returns `record` unchanged, or with a
/// `detections` field appended if it matches any rule of the default pack,
/// as a NUL-terminated string that stays valid until the next call.
///
/// The tag and the record's time are not used: the rules read the record.
///
/// # Safety
///
/// `record` must point to `record_len` readable bytes, and the byte after
/// them must be readable too (Fluent Bit's copy ends with a NUL there).
/// Calls must not overlap, which a single-threaded module guarantees.
#[cfg_attr(target_family = "wasm", export_name = "tripline_filter")]
pub unsafe extern "C" fn tripline_filter(
    _tag: *const u8,
    _tag_len: usize,
    _time_sec: i32,
    _time_nsec: i32,
    record: *const u8,
    record_len: usize,
) -> *const u8 {
    if record_len == 0 {
        return &EMPTY;
    }
    if record.is_null() {
        // Fluent Bit passes a null address when its copy could not be
        // allocated; there is no record to give back.
        return &EMPTY;
    }
    // SAFETY: the caller passes a readable range, as documented above.
    let bytes = unsafe { std::slice::from_raw_parts(record, record_len) };

    let filter = FILTER.take().or_else(Filter::load);
    let (answer, filter) = match filter {
        Some(mut filter) => (filter.answer(bytes), Some(filter)),
        None => (None, None),
    };
    FILTER.set(filter);
    match answer {
        Some(answer) => answer,
        // Out of memory for a copy: hand back the caller's own copy, which
        // is NUL-terminated and which Fluent Bit reads before freeing it.
        // SAFETY: the caller guarantees that the byte after the record is
        // readable.
        None if unsafe { record.add(record_len).read() } == 0 => record,
        None => &EMPTY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls the filter as Fluent Bit does, with a NUL after the record.
    fn call(record: &str) -> String {
        let copy = std::ffi::CString::new(record).unwrap();
        let tag = b"app.log\0";
        // SAFETY: both copies are NUL-terminated and outlive the call.
        let out =
            unsafe { tripline_filter(tag.as_ptr(), 7, 0, 0, copy.as_ptr().cast(), record.len()) };
        // SAFETY: the filter returns a NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(out.cast()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn unmatched_and_unreadable_records_come_back_unchanged() {
        for record in [r#"{"a": 1 }"#, "{", "[1,2]", "not json", " ", "\u{7f}"] {
            assert_eq!(call(record), record);
        }
        assert_eq!(call(""), "");
    }

    #[test]
    fn a_matching_record_gets_its_detections() {
        let record = concat!(
            r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","#,
            r#""userIdentity":{"type":"IAMUser","userName":"alice"},"#,
            r#""sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.30","#,
            r#""eventTime":"2024-05-14T09:01:07Z","awsRegion":"us-east-1"}"#
        );
        let out = call(record);
        assert!(out.starts_with(&record[..record.len() - 1]), "{out}");
        assert!(out.contains(r#","detections":[{"rule":"cloud_api_abuse_t1059_009""#), "{out}");
        assert!(out.ends_with("}]}"), "{out}");
    }
}
