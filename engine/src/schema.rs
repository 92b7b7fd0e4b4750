//! The one Arrow schema of an event batch: contract-v1 columns plus source metadata.
//!
//! `kind` is a `Dictionary(UInt8, Utf8)` column; batches built by [`crate::EventBatchBuilder`]
//! use the fixed dictionary of [`crate::EventKind::ALL`], so a key is the kind's code.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const EVENT_ID: usize = 0;
pub const ACCOUNT_ID: usize = 1;
pub const TS: usize = 2;
pub const KIND: usize = 3;
pub const USER_ID: usize = 4;
pub const AMOUNT: usize = 5;
pub const COST: usize = 6;
pub const SCORE: usize = 7;
pub const CATEGORY: usize = 8;
pub const ATTRS: usize = 9;
pub const KAFKA_TOPIC: usize = 10;
pub const KAFKA_PARTITION: usize = 11;
pub const KAFKA_OFFSET: usize = 12;
pub const KAFKA_TIMESTAMP: usize = 13;

/// The timestamp type of `ts` and `kafka_timestamp`: milliseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The type of the `kind` column.
pub fn kind_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
}

static EVENT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("account_id", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("kind", kind_type(), false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("cost", DataType::Float64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("attrs", DataType::Utf8, true),
        Field::new("kafka_topic", DataType::Utf8, true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        Field::new("kafka_timestamp", timestamp_type(), true),
    ]))
});

/// The schema of every event RecordBatch vigil produces.
pub fn event_schema() -> SchemaRef {
    EVENT_SCHEMA.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_indices_match_names() {
        let s = event_schema();
        let expect = [
            (EVENT_ID, "event_id"),
            (ACCOUNT_ID, "account_id"),
            (TS, "ts"),
            (KIND, "kind"),
            (USER_ID, "user_id"),
            (AMOUNT, "amount"),
            (COST, "cost"),
            (SCORE, "score"),
            (CATEGORY, "category"),
            (ATTRS, "attrs"),
            (KAFKA_TOPIC, "kafka_topic"),
            (KAFKA_PARTITION, "kafka_partition"),
            (KAFKA_OFFSET, "kafka_offset"),
            (KAFKA_TIMESTAMP, "kafka_timestamp"),
        ];
        assert_eq!(s.fields().len(), expect.len());
        for (i, name) in expect {
            assert_eq!(s.field(i).name(), name);
        }
    }
}
