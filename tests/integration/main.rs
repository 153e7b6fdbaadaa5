//! Integration tests: the `tripline` binary and the built detector
//! component, driven through the real host. One module per area.

mod cli;
mod corpus;
mod fixtures;
mod limits;
mod sandbox;
mod support;
