//! vigil's runtime: between the connectors (sources, sinks) and the engine (the scoring core).
//! Each input partition is a [`actor::PartitionActor`] whose step is deterministic and does no
//! I/O; [`partitions`] runs the actors on a pool of threads and performs their effects;
//! [`pipeline`] routes batches, ticks clocks and ties checkpoints ([`checkpoint`]), history and
//! acknowledgements together; [`outputs`] is `vigil run`'s effects (history, alerts, scores);
//! [`live`] the analyst tables over the running partitions; [`models`] the population model
//! fits handed to every partition; [`backtest`] `vigil evaluate`'s replay of the history scored
//! as of cut-off days; [`metrics`] the Prometheus series.

pub mod actor;
pub mod backtest;
pub mod checkpoint;
pub mod error;
pub mod live;
pub mod metrics;
pub mod models;
pub mod outputs;
pub mod partitions;
pub mod pipeline;

pub use error::{Result, RuntimeError};
