//! File connector: contract-v1 events from JSON Lines files and Parquet files of events.

pub mod config;
pub mod parquet;
pub mod source;

pub use config::FileSourceConfig;
pub use parquet::{ParquetBatch, ParquetEventSource};
pub use source::{FileBatch, FileSource, RejectedLine};
