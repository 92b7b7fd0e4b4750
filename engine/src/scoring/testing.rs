//! Helpers for tests, benchmarks and tools: owned events to an event batch.

use std::borrow::Cow;

use arrow::record_batch::RecordBatch;

use crate::decode::{EventBatchBuilder, EventRef, SourceMeta};
use crate::event::Event;

/// The events as one batch of [`crate::schema::event_schema`] (built by
/// [`EventBatchBuilder`], so `kind` keys are the kinds' codes), no source metadata.
pub fn events_to_batch(events: &[Event]) -> RecordBatch {
    let mut b = EventBatchBuilder::with_capacity(events.len());
    let meta = SourceMeta::default();
    for e in events {
        let r = EventRef {
            event_id: Cow::Borrowed(&e.event_id),
            account_id: Cow::Borrowed(&e.account_id),
            ts_ms: e.ts_ms,
            kind: e.kind,
            user_id: e.user_id.as_deref().map(Cow::Borrowed),
            amount: e.amount,
            cost: e.cost,
            score: e.score,
            category: e.category.as_deref().map(Cow::Borrowed),
            attrs: e.attrs.as_deref(),
        };
        b.append(&r, &meta);
    }
    b.finish()
}
