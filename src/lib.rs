//! The `vigil` application: the CLI's commands wired from the crates below it (`vigil-runtime`
//! for the pipeline, `vigil-connectors`, `vigil-queries`, `vigil-engine`), the configuration and
//! the zero-setup demo. The `vigil` binary (src/main.rs) is its CLI.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod run;
pub mod sample;
