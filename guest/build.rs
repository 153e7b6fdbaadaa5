//! Embeds the default rule pack (`rules/default/*.yaral`) in the component
//! and refuses to build if any rule in it does not compile.

include!("default_pack.rs");

fn main() {
    embed_default_pack();
}
