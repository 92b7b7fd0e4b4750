//! [`RuntimeError`], the one error type of the runtime.

use std::path::PathBuf;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The scoring core refused a batch or a configuration.
    #[error(transparent)]
    Engine(#[from] vigil_engine::EngineError),
    /// A history store or the analyst session failed.
    #[error(transparent)]
    Query(#[from] vigil_queries::QueryError),
    /// Building or filtering a batch failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A file operation failed; `what` says which (e.g. "fsync /data/checkpoints/t/0.ckpt").
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file is unreadable or not the one expected.
    #[error("checkpoint {}: {detail}", path.display())]
    Checkpoint { path: PathBuf, detail: String },
    /// Encoding an alert or a checkpoint failed.
    #[error("encoding {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    /// A part of the pipeline (a partition worker, the hooks' outbox writer) has stopped.
    #[error("{0} has stopped")]
    Stopped(String),
    /// A partition worker failed (its error or panic, as it reported it).
    #[error("{0}")]
    Worker(String),
    /// The backtest cannot run on this history or these settings.
    #[error("backtest: {0}")]
    Backtest(String),
    /// The source refused to start, or a restore failed while the source waited for it.
    #[error("{0}")]
    Source(String),
}

impl RuntimeError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<serde_json::Error> for RuntimeError {
    fn from(e: serde_json::Error) -> RuntimeError {
        RuntimeError::Encode {
            what: "JSON",
            detail: e.to_string(),
        }
    }
}

/// The runtime's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
