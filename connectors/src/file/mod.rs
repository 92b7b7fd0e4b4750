//! File connector: contract-v1 events from JSON Lines files.

pub mod config;
pub mod source;

pub use config::FileSourceConfig;
pub use source::{FileBatch, FileSource, RejectedLine};
