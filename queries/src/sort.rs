//! Event batches sorted by `(ts, event_id)` in bounded memory: a DataFusion sort that spills to disk.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::compute::{BatchCoalescer, SortOptions};
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, PeakRecordingPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::SessionConfig;
use futures::{Stream, StreamExt};

use crate::error::{QueryError, Result};

/// The default memory limit of a sort: 512 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

/// The largest share of the memory limit set aside for merging sorted runs (DataFusion's
/// `sort_spill_reservation_bytes`, 10 MiB by default, is capped at an eighth of the limit so
/// that small limits leave room for the data).
const MERGE_RESERVE_MAX: usize = 10 << 20;

/// How to sort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortConfig {
    /// Bytes of batches the sort may hold in memory (the DataFusion memory pool's size); beyond
    /// it, sorted runs are spilled to disk and merged at the end.
    pub memory_limit: usize,
    /// Rows per output batch: every batch but the last has exactly this many.
    pub batch_rows: usize,
    /// The directory in which the spill files' temporary directory is made (removed when the
    /// sort is dropped); `None`: the system's temporary directory (`TMPDIR`).
    pub spill_dir: Option<PathBuf>,
}

impl SortConfig {
    /// `memory_limit` bytes, output batches of `batch_rows` rows, spills in the system's
    /// temporary directory.
    pub fn new(memory_limit: usize, batch_rows: usize) -> Self {
        SortConfig {
            memory_limit,
            batch_rows,
            spill_dir: None,
        }
    }
}

/// What a sort spilled to disk and the most memory it reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SortStats {
    /// Spill files written (sorted runs, and runs re-written by multi-pass merges).
    pub spill_files: usize,
    /// Rows written to spill files.
    pub spilled_rows: usize,
    /// Bytes written to spill files.
    pub spilled_bytes: usize,
    /// The peak of the memory reserved in the sort's pool.
    pub peak_reserved: usize,
}

/// Sorts event batches (the schema of `vigil_engine::schema::event_schema()`) by `ts`, then
/// `event_id`, both ascending: the tie-break makes the order of the output the same whatever
/// the order of the input. Rows with equal `ts` and `event_id` (copies of one event) come out
/// next to each other, in no specified order.
///
/// The first poll of the returned stream reads all of `input`, holding at most
/// `config.memory_limit` bytes of batches (as DataFusion accounts them) and spilling sorted runs
/// to disk beyond that; then it merges the runs. `input` is iterated, and the runs sorted, by
/// the thread that polls, which blocks meanwhile: poll from a thread of its own (e.g. through
/// `tokio::runtime::Handle::block_on`) or a blocking task, within a Tokio runtime (the spill
/// files are read on its blocking threads). An error of `input` ends the sort and is the
/// stream's error.
pub fn sort_by_time<I>(input: I, config: &SortConfig) -> Result<SortedBatches>
where
    I: Iterator<Item = Result<RecordBatch>> + Send + 'static,
{
    let schema = vigil_engine::schema::event_schema();
    let batch_rows = config.batch_rows.max(1);
    let pool = Arc::new(PeakRecordingPool::new(Arc::new(TrackConsumersPool::new(
        GreedyMemoryPool::new(config.memory_limit),
        NonZeroUsize::new(4).expect("4 is not zero"),
    ))));
    let disks = match &config.spill_dir {
        Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
        None => DiskManagerMode::OsTmpDirectory,
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(disks))
        .build_arc()?;
    let session = SessionConfig::new()
        .with_batch_size(batch_rows)
        .with_target_partitions(1)
        .with_sort_spill_reservation_bytes(MERGE_RESERVE_MAX.min(config.memory_limit / 8));
    let task = Arc::new(
        TaskContext::default()
            .with_session_config(session)
            .with_runtime(runtime),
    );

    let source = StreamingTableExec::try_new(
        schema.clone(),
        vec![Arc::new(OnceInput::new(schema.clone(), input))],
        None,
        Vec::<LexOrdering>::new(),
        false,
        None,
    )?;
    let ascending = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let ordering = LexOrdering::new([
        PhysicalSortExpr::new(col("ts", &schema)?, ascending),
        PhysicalSortExpr::new(col("event_id", &schema)?, ascending),
    ])
    .ok_or_else(|| DataFusionError::Internal("an empty sort order".into()))?;
    let sort = Arc::new(SortExec::new(ordering, Arc::new(source)));
    let stream = sort.clone().execute(0, task)?;
    Ok(SortedBatches {
        stream,
        coalescer: BatchCoalescer::new(schema, batch_rows),
        sort,
        pool,
        memory_limit: config.memory_limit,
        done: false,
    })
}

/// The sorted rows, in batches of the configured size. The sort's temporary files are removed
/// when this is dropped.
pub struct SortedBatches {
    stream: SendableRecordBatchStream,
    coalescer: BatchCoalescer,
    sort: Arc<SortExec>,
    pool: Arc<PeakRecordingPool>,
    memory_limit: usize,
    done: bool,
}

impl fmt::Debug for SortedBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SortedBatches")
            .field("memory_limit", &self.memory_limit)
            .field("stats", &self.stats())
            .field("done", &self.done)
            .finish()
    }
}

impl SortedBatches {
    /// What the sort spilled so far and its peak reservation. Complete once the first sorted
    /// batch has come out (every run is spilled and merged before that).
    pub fn stats(&self) -> SortStats {
        let m = self.sort.metrics().unwrap_or_default();
        SortStats {
            spill_files: m.spill_count().unwrap_or(0),
            spilled_rows: m.spilled_rows().unwrap_or(0),
            spilled_bytes: m.spilled_bytes().unwrap_or(0),
            peak_reserved: self.pool.max_reserved(),
        }
    }

    /// The error of the sort as the crate's error: the input's own error back, and running out of
    /// memory as [`QueryError::SortMemory`].
    fn error(&self, e: DataFusionError) -> QueryError {
        // DataFusion's own advice names its configuration keys; the root says what did not fit.
        if let root @ DataFusionError::ResourcesExhausted(_) = e.find_root() {
            return QueryError::SortMemory {
                limit: self.memory_limit,
                detail: root.to_string(),
            };
        }
        match e {
            DataFusionError::External(inner) => match inner.downcast::<QueryError>() {
                Ok(q) => *q,
                Err(inner) => QueryError::DataFusion(DataFusionError::External(inner)),
            },
            e => QueryError::DataFusion(e),
        }
    }
}

impl Stream for SortedBatches {
    type Item = Result<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(batch) = this.coalescer.next_completed_batch() {
                return Poll::Ready(Some(Ok(batch)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let pushed = match std::task::ready!(this.stream.poll_next_unpin(cx)) {
                Some(Ok(batch)) => this.coalescer.push_batch(batch),
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(this.error(e))));
                }
                None => {
                    this.done = true;
                    this.coalescer.finish_buffered_batch()
                }
            };
            if let Err(e) = pushed {
                this.done = true;
                return Poll::Ready(Some(Err(e.into())));
            }
        }
    }
}

type BoxedInput = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// The sort's input as a DataFusion partition: the iterator, read once, by whoever polls.
struct OnceInput {
    schema: SchemaRef,
    input: Mutex<Option<BoxedInput>>,
}

impl OnceInput {
    fn new(schema: SchemaRef, input: impl Iterator<Item = Result<RecordBatch>> + Send + 'static) -> Self {
        OnceInput {
            schema,
            input: Mutex::new(Some(Box::new(input))),
        }
    }
}

impl fmt::Debug for OnceInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceInput").finish_non_exhaustive()
    }
}

impl PartitionStream for OnceInput {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(input) = taken else {
            let err = DataFusionError::Execution("the sort's input can be read only once".into());
            return Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async move { Err(err) }),
            ));
        };
        // Read where the sort is polled: the batches are made, sorted and freed on one thread.
        let schema = self.schema.clone();
        let batches = input.map(move |item| {
            item.and_then(|b| conforms(&schema, b))
                .map_err(|e| DataFusionError::External(Box::new(e)))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batches),
        ))
    }
}

/// `batch` when it has the event schema's columns and types.
fn conforms(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    if batch.schema_ref().fields() != schema.fields() {
        return Err(QueryError::Schema {
            table: "sort input".into(),
            detail: format!("expected the event schema, got {}", batch.schema()),
        });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMillisecondType;
    use vigil_engine::{DecodeLimits, Event, EventBatchBuilder, EventKind, SourceMeta};

    use super::*;

    /// A batch of events `(event_id, ts)` of one account, kinds in turn.
    fn batch(events: &[(String, i64)]) -> RecordBatch {
        let mut b = EventBatchBuilder::with_capacity(events.len());
        for (i, (id, ts)) in events.iter().enumerate() {
            let mut e = Event::new(id.clone(), "acct", *ts, EventKind::ALL[i % EventKind::COUNT]);
            if e.kind == EventKind::Purchase {
                e.amount = Some(10.0);
            }
            b.decode_append(
                e.to_json().as_bytes(),
                &SourceMeta::default(),
                &DecodeLimits::default(),
                i64::MAX / 2,
            )
            .expect("a valid event");
        }
        b.finish()
    }

    fn rows(batches: &[RecordBatch]) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        for b in batches {
            let ts = b
                .column(vigil_engine::schema::TS)
                .as_primitive::<TimestampMillisecondType>();
            let ids = b.column(vigil_engine::schema::EVENT_ID).as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((ts.value(i), ids.value(i).to_string()));
            }
        }
        out
    }

    async fn sort(input: Vec<RecordBatch>, config: &SortConfig) -> (Vec<RecordBatch>, SortStats) {
        let mut sorted = sort_by_time(input.into_iter().map(Ok), config).expect("a sort");
        let mut out = Vec::new();
        while let Some(b) = sorted.next().await {
            out.push(b.expect("sorted batch"));
        }
        (out, sorted.stats())
    }

    /// A deterministic permutation of `0..n` (a multiplicative step coprime with `n`).
    fn scrambled(n: usize) -> impl Iterator<Item = usize> {
        (0..n).map(move |i| (i * 7_919 + 13) % n)
    }

    #[tokio::test]
    async fn sorts_by_time_then_event_id_in_batches_of_the_configured_size() {
        // Times repeat (every tenth value), so the tie-break on event_id decides many rows.
        let n = 1_000;
        let events: Vec<(String, i64)> = scrambled(n)
            .map(|i| (format!("e{i:04}"), (i / 10) as i64 * 1_000))
            .collect();
        let input: Vec<RecordBatch> = events.chunks(64).map(batch).collect();
        let (out, stats) = sort(input, &SortConfig::new(DEFAULT_MEMORY_LIMIT, 100)).await;
        let sizes: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![100; 10]);
        let mut want: Vec<(i64, String)> = events.iter().map(|(id, ts)| (*ts, id.clone())).collect();
        want.sort();
        assert_eq!(rows(&out), want);
        assert_eq!(stats.spill_files, 0, "{stats:?}");
        // Every column travels with its row: the kind of e0123 is the one it was given.
        let k = out[0]
            .column(vigil_engine::schema::KIND)
            .as_dictionary::<arrow::datatypes::UInt8Type>();
        let names = k.values().as_string::<i32>();
        let ids = out[0].column(vigil_engine::schema::EVENT_ID).as_string::<i32>();
        for row in 0..out[0].num_rows() {
            let pos = events
                .iter()
                .position(|(id, _)| id == ids.value(row))
                .expect("an input row");
            let kind = EventKind::ALL[(pos % 64) % EventKind::COUNT];
            assert_eq!(names.value(k.keys().value(row) as usize), kind.as_str());
        }
        assert_eq!(out[0].schema(), vigil_engine::schema::event_schema());
    }

    #[tokio::test]
    async fn the_output_does_not_depend_on_the_input_order() {
        let n = 600;
        let events: Vec<(String, i64)> = (0..n)
            .map(|i| (format!("e{:03}", (i * 37) % n), (i % 7) as i64))
            .collect();
        let forward: Vec<RecordBatch> = events.chunks(50).map(batch).collect();
        let mut reversed_events = events.clone();
        reversed_events.reverse();
        let backward: Vec<RecordBatch> = reversed_events.chunks(33).map(batch).collect();
        let config = SortConfig::new(DEFAULT_MEMORY_LIMIT, 128);
        let (a, _) = sort(forward, &config).await;
        let (b, _) = sort(backward, &config).await;
        assert_eq!(rows(&a), rows(&b));
        let sizes: Vec<usize> = a.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![128, 128, 128, 128, 88]);
    }

    #[tokio::test]
    async fn spills_to_disk_under_a_small_memory_limit_and_still_sorts() {
        let n = 20_000;
        let events: Vec<(String, i64)> = scrambled(n)
            .map(|i| (format!("event-{i:06}"), 1_700_000_000_000 + (i as i64 / 3) * 60_000))
            .collect();
        let input: Vec<RecordBatch> = events.chunks(200).map(batch).collect();
        let one_batch = input[0].get_array_memory_size();
        let spill_dir = tempfile::tempdir().expect("a temp dir");
        let config = SortConfig {
            memory_limit: 256 << 10,
            batch_rows: 500,
            spill_dir: Some(spill_dir.path().to_path_buf()),
        };
        assert!(
            one_batch * input.len() > 4 * config.memory_limit,
            "the input ({} B) must be much larger than the limit",
            one_batch * input.len()
        );
        let (out, stats) = sort(input, &config).await;
        assert!(stats.spill_files >= 2, "{stats:?}");
        assert!(stats.spilled_rows >= n / 2, "{stats:?}");
        assert!(stats.spilled_bytes > 0, "{stats:?}");
        assert!(stats.peak_reserved <= config.memory_limit, "{stats:?}");
        let mut want: Vec<(i64, String)> = events.iter().map(|(id, ts)| (*ts, id.clone())).collect();
        want.sort();
        assert_eq!(rows(&out), want);
        assert!(out.iter().all(|b| b.num_rows() == 500));
        // The kinds survive the round trip through the spill files.
        let kinds: usize = out
            .iter()
            .map(|b| b.column(vigil_engine::schema::KIND).null_count())
            .sum();
        assert_eq!(kinds, 0);
    }

    #[tokio::test]
    async fn an_input_error_is_the_sorts_error() {
        let good = batch(&[("a".into(), 1)]);
        let input = vec![Ok(good), Err(QueryError::Accounts("broken input".into()))];
        let mut sorted = sort_by_time(input.into_iter(), &SortConfig::new(DEFAULT_MEMORY_LIMIT, 10)).expect("a sort");
        match sorted.next().await {
            Some(Err(QueryError::Accounts(m))) => assert_eq!(m, "broken input"),
            other => panic!("expected the input's error, got {other:?}"),
        }
        assert!(sorted.next().await.is_none());
    }

    #[tokio::test]
    async fn a_batch_of_another_schema_is_refused() {
        let other = RecordBatch::try_from_iter([(
            "ts",
            Arc::new(arrow::array::Int64Array::from(vec![1])) as arrow::array::ArrayRef,
        )])
        .expect("a batch");
        let mut sorted =
            sort_by_time(std::iter::once(Ok(other)), &SortConfig::new(DEFAULT_MEMORY_LIMIT, 10)).expect("a sort");
        match sorted.next().await {
            Some(Err(QueryError::Schema { table, .. })) => assert_eq!(table, "sort input"),
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_limit_smaller_than_one_batch_is_a_sort_memory_error() {
        let events: Vec<(String, i64)> = (0..2_000).map(|i| (format!("e{i}"), i)).collect();
        let input: Vec<RecordBatch> = events.chunks(1_000).map(batch).collect();
        let mut sorted = sort_by_time(input.into_iter().map(Ok), &SortConfig::new(4 << 10, 100)).expect("a sort");
        match sorted.next().await {
            Some(Err(QueryError::SortMemory { limit, .. })) => assert_eq!(limit, 4 << 10),
            other => panic!("expected a memory error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn no_input_no_output() {
        let (out, stats) = sort(Vec::new(), &SortConfig::new(DEFAULT_MEMORY_LIMIT, 10)).await;
        assert!(out.is_empty());
        assert_eq!(stats.spill_files, 0);
    }
}
