//! The JSON Lines file source: the same decode path as Kafka, for backfill and tests. Each
//! line is a message; its 0-based line number is the `kafka_offset` column; invalid lines are
//! returned with their reason and original bytes, never dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use vigil_engine::{DecodeLimits, EventBatchBuilder, InvalidReason, SourceMeta};

use super::config::FileSourceConfig;
use crate::error::ConnectorError;

/// A line that is not a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    /// 0-based line number.
    pub line: u64,
    pub reason: InvalidReason,
    /// The line's bytes, unchanged (without the line terminator).
    pub bytes: Vec<u8>,
}

/// One batch of valid events from the file and the lines refused while reading it.
#[derive(Debug)]
pub struct FileBatch {
    pub batch: RecordBatch,
    pub rejected: Vec<RejectedLine>,
}

/// Reads a JSON Lines file batch by batch.
pub struct FileSource<R> {
    reader: R,
    builder: EventBatchBuilder,
    limits: DecodeLimits,
    max_rows: usize,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R> std::fmt::Debug for FileSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("line", &self.line).finish()
    }
}

impl FileSource<BufReader<File>> {
    /// Opens the configured file.
    pub fn open(config: &FileSourceConfig) -> Result<Self, ConnectorError> {
        let file = File::open(&config.path).map_err(|source| ConnectorError::Io {
            path: config.path.display().to_string(),
            source,
        })?;
        Ok(Self::from_reader(
            BufReader::with_capacity(1 << 20, file),
            config.limits(),
            config.max_batch_rows,
        ))
    }
}

impl<R: BufRead> FileSource<R> {
    /// Reads from any buffered reader.
    pub fn from_reader(reader: R, limits: DecodeLimits, max_rows: usize) -> Self {
        FileSource {
            reader,
            builder: EventBatchBuilder::with_capacity(max_rows.min(65_536)),
            limits,
            max_rows: max_rows.max(1),
            line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Reads one line into `buf`, at most `limit + 1` bytes of it kept (a longer line is
    /// invalid anyway and need not be held whole). Returns false at end of input.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.buf.clear();
        let cap = self.limits.max_message_bytes as u64 + 2;
        let n = (&mut self.reader).take(cap).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        if self.buf.last() != Some(&b'\n') && n as u64 == cap {
            // Over-long line: skip the rest of it.
            let mut sink = Vec::new();
            self.reader.read_until(b'\n', &mut sink)?;
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(true)
    }

    /// The next batch, or `None` at end of file.
    pub fn next_batch(&mut self) -> Result<Option<FileBatch>, ConnectorError> {
        if self.done {
            return Ok(None);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut rejected = Vec::new();
        while self.builder.len() < self.max_rows {
            let more = self.read_line().map_err(|source| ConnectorError::Io {
                path: "file source".into(),
                source,
            })?;
            if !more {
                self.done = true;
                break;
            }
            let line = self.line;
            self.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let meta = SourceMeta {
                offset: Some(line as i64),
                ..SourceMeta::default()
            };
            if let Err(reason) = self.builder.decode_append(&self.buf, &meta, &self.limits, now) {
                rejected.push(RejectedLine {
                    line,
                    reason,
                    bytes: self.buf.clone(),
                });
            }
        }
        if self.builder.is_empty() && rejected.is_empty() {
            return Ok(None);
        }
        Ok(Some(FileBatch {
            batch: self.builder.finish(),
            rejected,
        }))
    }
}

impl<R: BufRead> Iterator for FileSource<R> {
    type Item = Result<FileBatch, ConnectorError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_valid_and_returns_invalid_lines_with_bytes() {
        let text = concat!(
            r#"{"event_id":"e1","account_id":"a","ts":1000,"kind":"activity"}"#,
            "\n",
            "not json\n",
            "\n",
            r#"{"event_id":"e2","account_id":"a","ts":"1970-01-01T00:00:02Z","kind":"purchase","amount":5}"#,
            "\r\n",
            r#"{"event_id":"e3","account_id":"b","ts":3000,"kind":"nope"}"#,
        );
        let mut src = FileSource::from_reader(text.as_bytes(), DecodeLimits::default(), 2);
        let first = src.next_batch().expect("reads").expect("a batch");
        assert_eq!(first.batch.num_rows(), 2);
        assert_eq!(first.rejected.len(), 1);
        assert_eq!(first.rejected[0].line, 1);
        assert_eq!(first.rejected[0].reason.code(), "not_json");
        assert_eq!(first.rejected[0].bytes, b"not json");
        let rows = vigil_engine::events_from_batch(&first.batch).expect("schema");
        assert_eq!(rows[1].0.ts_ms, 2000);
        assert_eq!(rows[1].1.offset, Some(3));
        let second = src.next_batch().expect("reads").expect("a batch");
        assert_eq!(second.batch.num_rows(), 0);
        assert_eq!(second.rejected[0].reason.code(), "unknown_kind");
        assert!(src.next_batch().expect("reads").is_none());
    }

    #[test]
    fn over_long_line_is_rejected_and_reading_continues() {
        let limits = DecodeLimits {
            max_message_bytes: 80,
            ..DecodeLimits::default()
        };
        let long = format!(
            r#"{{"event_id":"{}","account_id":"a","ts":1,"kind":"activity"}}"#,
            "x".repeat(200)
        );
        let text = format!(
            "{long}\n{}\n",
            r#"{"event_id":"e","account_id":"a","ts":1,"kind":"activity"}"#
        );
        let mut src = FileSource::from_reader(text.as_bytes(), limits, 100);
        let b = src.next_batch().expect("reads").expect("batch");
        assert_eq!(b.batch.num_rows(), 1);
        assert_eq!(b.rejected.len(), 1);
        assert_eq!(b.rejected[0].reason.code(), "too_large");
    }
}
