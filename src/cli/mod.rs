//! Subcommands of the `vigil` binary that are thin runners over the library crates.

pub mod alerts;
pub mod analyst;
pub mod backfill;
pub mod evaluate;
pub mod generate;
pub mod model;
pub mod replay;
