//! Integration tests: the `tripline` binary and the built detector
//! component, driven through the real host. One module per area.

mod check;
mod cli;
mod corpus;
mod fixtures;
mod fluentbit;
mod limits;
mod sandbox;
mod serve;
mod support;
mod yaral;
