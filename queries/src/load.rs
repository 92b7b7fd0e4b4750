//! Events from JSON Lines (one contract-v1 message per line) into an event batch.

use arrow::array::RecordBatch;
use vigil_engine::{DecodeLimits, EventBatchBuilder, SourceMeta};

use crate::error::{QueryError, Result};

/// Decodes every non-empty line of `text` (lines starting with `#` or `//` are comments) as a
/// contract-v1 event. An invalid line is an error naming its line number. The future-skew rule
/// is not applied (history files are loaded at any time).
pub fn events_from_jsonl(text: &str) -> Result<RecordBatch> {
    let mut b = EventBatchBuilder::with_capacity(1024);
    let limits = DecodeLimits::default();
    let meta = SourceMeta::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        b.decode_append(line.as_bytes(), &meta, &limits, i64::MAX / 2)
            .map_err(|e| QueryError::Schema {
                table: "events".into(),
                detail: format!("line {}: {e}", i + 1),
            })?;
    }
    Ok(b.finish())
}
