//! vigil's scoring core: the event contract v1 and everything computed from it. Does no I/O.
//!
//! - [`event`]: the event model (kinds, owned events, validation with typed reasons).
//! - [`schema`]: the one Arrow schema of an event batch.
//! - [`decode`]: JSON message → validated event → rows of a [`arrow::record_batch::RecordBatch`].

pub mod decode;
pub mod error;
pub mod event;
pub mod models;
pub mod rules;
pub mod schema;
pub mod scoring;

pub use decode::{DecodeLimits, EventBatchBuilder, EventRef, RowMeta, SourceMeta, decode, events_from_batch};
pub use error::{EngineError, Field, InvalidReason};
pub use event::{Event, EventKind};
