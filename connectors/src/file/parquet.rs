//! The Parquet event source: a Parquet file of events (a history segment, an export) read batch
//! by batch as event batches. Columns are taken by name and cast to the event schema's types;
//! rows lacking a required value (`missing_field`) or naming an unknown kind (`unknown_kind`)
//! are left out and counted by reason, as the JSON Lines source counts invalid lines.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::datatypes::UInt8Type;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use vigil_engine::{EventKind, InvalidReason};

use crate::error::ConnectorError;

/// Rows left out of a batch, by [`InvalidReason::index`].
pub type RejectedCounts = [u64; InvalidReason::CODES.len()];

/// One batch read from a Parquet file of events.
#[derive(Debug)]
pub struct ParquetBatch {
    /// The valid rows as an event batch ([`vigil_engine::schema::event_schema`]).
    pub events: RecordBatch,
    /// Rows read from the file for this batch (valid and left out).
    pub rows: u64,
    /// Rows left out, by reason.
    pub rejected: RejectedCounts,
}

/// A Parquet file of events, read in batches.
pub struct ParquetEventSource {
    path: PathBuf,
    rows: u64,
    reader: ParquetRecordBatchReader,
}

impl std::fmt::Debug for ParquetEventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetEventSource")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

fn bad_file(path: &Path, detail: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::BadFile {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl ParquetEventSource {
    /// Opens `path`, to read `batch_rows` rows at a time.
    pub fn open(path: &Path, batch_rows: usize) -> Result<ParquetEventSource, ConnectorError> {
        let file = File::open(path).map_err(|e| ConnectorError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| bad_file(path, format!("not a readable Parquet file: {e}")))?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let reader = builder
            .with_batch_size(batch_rows.max(1))
            .build()
            .map_err(|e| bad_file(path, e))?;
        Ok(ParquetEventSource {
            path: path.to_path_buf(),
            rows,
            reader,
        })
    }

    /// Rows in the file.
    pub fn total_rows(&self) -> u64 {
        self.rows
    }
}

impl Iterator for ParquetEventSource {
    type Item = Result<ParquetBatch, ConnectorError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(bad_file(&self.path, e))),
        };
        Some(
            conform(&batch)
                .map(|(events, rejected)| ParquetBatch {
                    events,
                    rows: batch.num_rows() as u64,
                    rejected,
                })
                .map_err(|e| bad_file(&self.path, format!("not a Parquet file of events: {e}"))),
        )
    }
}

/// A batch of any Parquet schema as an event batch: the event schema's columns by name, cast
/// to its types (missing nullable columns are null). Rows lacking a required value, naming an
/// unknown kind or timed before 1970 are left out and counted. Fails when a required column is
/// missing or a column cannot be cast.
pub fn conform(batch: &RecordBatch) -> Result<(RecordBatch, RejectedCounts), String> {
    let schema = vigil_engine::schema::event_schema();
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let col = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => arrow::compute::cast(c, field.data_type())
                .map_err(|e| format!("column `{}` as {}: {e}", field.name(), field.data_type()))?,
            None if field.is_nullable() => new_null_array(field.data_type(), n),
            None => return Err(format!("required column `{}` is missing", field.name())),
        };
        columns.push(col);
    }
    let mut rejected = [0u64; InvalidReason::CODES.len()];
    let missing = InvalidReason::MissingField(vigil_engine::Field::EventId).index();
    let unknown = InvalidReason::UnknownKind { kind: String::new() }.index();
    let early = InvalidReason::TsOutOfRange { ts_ms: 0, min_ms: 0 }.index();
    let min_ts_ms = vigil_engine::DecodeLimits::default().min_ts_ms;
    let ts = columns[vigil_engine::schema::TS].as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    let kind = columns[vigil_engine::schema::KIND].as_dictionary::<UInt8Type>();
    let names = kind.values().as_string::<i32>();
    let known: Vec<bool> = (0..names.len())
        .map(|i| names.is_valid(i) && EventKind::parse(names.value(i)).is_some())
        .collect();
    let required: Vec<&ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_nullable())
        .map(|(i, _)| &columns[i])
        .collect();
    let keep: BooleanArray = (0..n)
        .map(|row| {
            if required.iter().any(|c| c.is_null(row)) {
                rejected[missing] += 1;
                return Some(false);
            }
            if !known.get(kind.keys().value(row) as usize).copied().unwrap_or(false) {
                rejected[unknown] += 1;
                return Some(false);
            }
            if ts.value(row) < min_ts_ms {
                rejected[early] += 1;
                return Some(false);
            }
            Some(true)
        })
        .collect();
    // Required columns may hold nulls until the rows above are filtered out.
    let lenient = arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    );
    let kept = RecordBatch::try_new(Arc::new(lenient), columns)
        .and_then(|all| arrow::compute::filter_record_batch(&all, &keep))
        .map_err(|e| e.to_string())?;
    let events = RecordBatch::try_new(schema.clone(), kept.columns().to_vec()).map_err(|e| e.to_string())?;
    Ok((events, rejected))
}

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn write(path: &Path, batch: &RecordBatch) {
        let mut w = ArrowWriter::try_new(File::create(path).expect("create"), batch.schema(), None).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
    }

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    #[test]
    fn rows_are_cast_and_bad_ones_counted_and_a_missing_required_column_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ts = Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true);
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, true),
            Field::new("account_id", DataType::Utf8, true),
            ts,
            // Plain strings, not the schema's dictionary: cast by name.
            Field::new("kind", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                strings(&[Some("a"), Some("b"), None, Some("d")]),
                strings(&[Some("x"), Some("x"), Some("x"), Some("x")]),
                Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3, -86_400_000])),
                strings(&[Some("activity"), Some("teleport"), Some("purchase"), Some("activity")]),
            ],
        )
        .expect("batch");
        let path = dir.path().join("events.parquet");
        write(&path, &batch);
        let mut src = ParquetEventSource::open(&path, 100).expect("open");
        assert_eq!(src.total_rows(), 4);
        let b = src.next().expect("a batch").expect("valid file");
        assert_eq!((b.rows, b.events.num_rows()), (4, 1));
        assert_eq!(b.events.schema(), vigil_engine::schema::event_schema());
        let missing = InvalidReason::MissingField(vigil_engine::Field::EventId).index();
        let unknown = InvalidReason::UnknownKind { kind: String::new() }.index();
        let early = InvalidReason::TsOutOfRange { ts_ms: 0, min_ms: 0 }.index();
        assert_eq!((b.rejected[missing], b.rejected[unknown], b.rejected[early]), (1, 1, 1));
        assert!(src.next().is_none());

        let no_ts = batch.project(&[0, 1, 3]).expect("project");
        let path = dir.path().join("no-ts.parquet");
        write(&path, &no_ts);
        let err = ParquetEventSource::open(&path, 100)
            .expect("open")
            .next()
            .expect("a batch")
            .expect_err("ts is required");
        assert!(err.to_string().contains("required column `ts` is missing"), "{err}");
    }
}
