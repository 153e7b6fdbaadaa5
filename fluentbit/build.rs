//! Embeds the default rule pack (`rules/default/*.yaral`) in the module
//! and refuses to build if any rule in it does not compile. The detector
//! component's build script does the same with the same code, so that the
//! two artefacts always carry the same pack.

include!("../guest/default_pack.rs");

fn main() {
    embed_default_pack();
    if std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f == "wasm") {
        for symbol in ["malloc", "free"] {
            println!("cargo:rustc-link-arg-cdylib=--export={symbol}");
        }
    }
}
