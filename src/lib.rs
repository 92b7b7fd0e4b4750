//! The `vigil` application: the continuous pipeline and the zero-setup demo, on top of the
//! `vigil-connectors` and `vigil-engine` crates. The `vigil` binary (src/main.rs) is its CLI.

pub mod actor;
pub mod alloc;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod live;
pub mod metrics;
pub mod outputs;
pub mod partitions;
pub mod pipeline;
pub mod run;
pub mod sample;
