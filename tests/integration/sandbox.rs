//! The component reaches nothing outside: it imports nothing, the host
//! grants nothing, and a component that asks for a file system, sockets,
//! environment variables or clocks is refused before it runs.

use tripline::component::{self, DEFAULT_COMPONENT};
use wasmtime::component::Component;

use crate::support::*;

#[test]
fn the_built_in_component_imports_nothing() {
    let engine = component::engine().unwrap();
    let component = Component::new(&engine, DEFAULT_COMPONENT).unwrap();
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(name, _)| name.to_string()).collect();
    assert_eq!(imports, Vec::<String>::new());
    let exports: Vec<String> = ty.exports(&engine).map(|(name, _)| name.to_string()).collect();
    assert_eq!(exports, ["tripline:detector/detector@0.2.0"]);
}

/// A component that imports one function of `interface` and exports
/// nothing else.
fn importing(interface: &str, func: &str, ty: &str) -> String {
    format!(
        r#"(component
             (import "{interface}" (instance (export "{func}" (func {ty}))))
           )"#
    )
}

#[test]
fn components_that_ask_for_the_outside_are_refused() {
    let cases = [
        (
            "filesystem",
            "wasi:filesystem/preopens@0.2.0",
            "get-directories",
            "(result (list string))",
        ),
        ("sockets", "wasi:sockets/instance-network@0.2.0", "instance-network", "(result u32)"),
        ("environment", "wasi:cli/environment@0.2.0", "get-environment", "(result (list string))"),
        ("clock", "wasi:clocks/wall-clock@0.2.0", "now", "(result u64)"),
        ("random", "wasi:random/random@0.2.0", "get-random-u64", "(result u64)"),
    ];
    for (name, interface, func, ty) in cases {
        let path = component_text(&format!("asks-{name}"), &importing(interface, func, ty));
        let out =
            tripline().args(["info", "--component", path.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(err.contains("imports what the host does not grant"), "{name}: {err}");
        assert!(err.contains(interface), "{name}: {err}");
        assert!(out.stdout.is_empty());
    }
}
