//! Append-only, time-partitioned history: Parquet segments on disk plus an in-memory tail.
//!
//! A [`SegmentStore`] holds rows of one schema with one timestamp column. Rows are appended to
//! an in-memory tail; [`SegmentStore::flush_segment`] writes the tail as one Parquet segment and
//! remembers the segment's minimum and maximum timestamp (also stored in the file's key-value
//! metadata, so a store opened from a directory knows them without reading data). The
//! [`SegmentTable`] provider answers queries over segments and tail together and skips every
//! segment whose time range cannot match the query's predicates on the timestamp column; the
//! number of segments scanned and skipped is counted ([`ScanCounters`]) and visible in `EXPLAIN`
//! (only the chosen files appear in the `DataSourceExec`).
//!
//! The tail is kept by key (a partition's rows since its last checkpoint). A pipeline that ties
//! history to checkpoints takes a [`TailCut`] of a key together with the partition's state and
//! [`SegmentStore::commit`]s it as a named segment before the checkpoint is written: a name
//! written again after a crash replaces the file (no duplicates), and
//! [`SegmentStore::discard`] drops what a restored checkpoint does not cover.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::scalar::ScalarValue;

use crate::error::{QueryError, Result};

const META_MIN: &str = "vigil.ts_min_ms";
const META_MAX: &str = "vigil.ts_max_ms";
/// In a segment written by [`SegmentStore::compact`]: the stems of the segments it holds the
/// rows of (comma-separated), which are deleted wherever they are still found.
const META_SUPERSEDES: &str = "vigil.supersedes";

/// One Parquet segment: its file and the range of its timestamp column (epoch ms, inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub path: PathBuf,
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
    pub rows: usize,
    /// Stems of the segments this one replaced ([`SegmentStore::compact`]).
    pub supersedes: Vec<String>,
}

impl SegmentMeta {
    /// The file name without `.parquet`.
    pub fn stem(&self) -> &str {
        stem_of(&self.path)
    }
}

/// How many segments queries read and skipped, since the store was opened.
#[derive(Debug, Default)]
pub struct ScanCounters {
    scans: AtomicU64,
    segments_scanned: AtomicU64,
    segments_pruned: AtomicU64,
}

/// A copy of [`ScanCounters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    pub scans: u64,
    pub segments_scanned: u64,
    pub segments_pruned: u64,
}

impl ScanCounters {
    /// The current counts.
    pub fn snapshot(&self) -> ScanStats {
        ScanStats {
            scans: self.scans.load(Ordering::Relaxed),
            segments_scanned: self.segments_scanned.load(Ordering::Relaxed),
            segments_pruned: self.segments_pruned.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    segments: Vec<SegmentMeta>,
    /// The tail by key, in append order per key ("" for [`SegmentStore::append`]).
    tail: BTreeMap<String, Vec<RecordBatch>>,
    tail_rows: usize,
    next_seq: u64,
    /// Files of segments a compaction replaced, deleted at the next one.
    graveyard: Vec<PathBuf>,
}

/// A key's tail as it was at one moment (see [`SegmentStore::cut`]).
#[derive(Debug, Clone)]
pub struct TailCut {
    key: String,
    batches: Vec<RecordBatch>,
}

impl TailCut {
    /// Rows in the cut.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Parquet segments in a directory plus an in-memory tail, for one schema.
#[derive(Debug, Clone)]
pub struct SegmentStore {
    name: String,
    dir: PathBuf,
    schema: SchemaRef,
    ts_column: usize,
    state: Arc<RwLock<State>>,
    /// Held while the unkeyed tail is written ([`SegmentStore::flush_segment`]): one flush at a
    /// time, without holding `state` during the write.
    flushing: Arc<std::sync::Mutex<()>>,
    counters: Arc<ScanCounters>,
}

fn same_fields(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields().iter()).all(|(x, y)| {
            x.name() == y.name() && x.data_type() == y.data_type() && (x.is_nullable() || !y.is_nullable())
        })
}

impl SegmentStore {
    /// Opens (creating it if missing) the store of table `name` in `dir`: every `*.parquet` file
    /// there is a segment. `ts_column` names the timestamp column used for pruning.
    pub fn open(name: &str, dir: impl AsRef<Path>, schema: SchemaRef, ts_column: &str) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let ts_idx = schema.index_of(ts_column).map_err(|e| QueryError::Schema {
            table: name.to_string(),
            detail: e.to_string(),
        })?;
        if !matches!(
            schema.field(ts_idx).data_type(),
            DataType::Timestamp(TimeUnit::Millisecond, _)
        ) {
            return Err(QueryError::Schema {
                table: name.to_string(),
                detail: format!("{ts_column} must be a millisecond timestamp"),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|e| QueryError::io(&dir, e))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| QueryError::io(&dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        let mut segments = Vec::with_capacity(files.len());
        let mut next_seq = 0;
        for path in files {
            if let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("seg-"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                next_seq = next_seq.max(seq + 1);
            }
            segments.push(read_segment_meta(&path, ts_idx)?);
        }
        // A compaction that stopped before deleting its inputs: they are in the merged segment.
        let superseded: std::collections::HashSet<String> =
            segments.iter().flat_map(|s| s.supersedes.iter().cloned()).collect();
        let mut kept = Vec::with_capacity(segments.len());
        for seg in segments {
            if superseded.contains(seg.stem()) {
                remove_if_present(&seg.path)?;
            } else {
                kept.push(seg);
            }
        }
        let segments = kept;
        Ok(SegmentStore {
            name: name.to_string(),
            dir,
            schema,
            ts_column: ts_idx,
            state: Arc::new(RwLock::new(State {
                segments,
                tail: BTreeMap::new(),
                tail_rows: 0,
                next_seq,
                graveyard: Vec::new(),
            })),
            flushing: Arc::default(),
            counters: Arc::new(ScanCounters::default()),
        })
    }

    /// The table's schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch to the in-memory tail; queries see it at once.
    pub fn append(&self, batch: RecordBatch) -> Result<()> {
        self.append_to("", batch)
    }

    /// Appends a batch to the tail of `key`; queries see it at once.
    pub fn append_to(&self, key: &str, batch: RecordBatch) -> Result<()> {
        if !same_fields(&batch.schema(), &self.schema) {
            return Err(QueryError::Schema {
                table: self.name.clone(),
                detail: format!("expected {:?}, got {:?}", self.schema.fields(), batch.schema().fields()),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = batch.with_schema(self.schema.clone())?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.tail_rows += batch.num_rows();
        match st.tail.get_mut(key) {
            Some(t) => t.push(batch),
            None => {
                st.tail.insert(key.to_string(), vec![batch]);
            }
        }
        Ok(())
    }

    /// The tail of `key` as it is now (the batches are shared, not copied).
    pub fn cut(&self, key: &str) -> TailCut {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        TailCut {
            key: key.to_string(),
            batches: st.tail.get(key).cloned().unwrap_or_default(),
        }
    }

    /// Writes `cut` durably as the segment `<name>.parquet` (temp file, fsync, rename, fsync of
    /// the directory; a segment of that name is replaced), then drops the cut's rows from the
    /// tail (rows appended since stay). Queries see the rows throughout: in the tail until the
    /// segment is in place. Committing the same cut again rewrites the same file and drops
    /// nothing more. `None` (and no file) for an empty cut.
    pub fn commit(&self, cut: TailCut, name: &str) -> Result<Option<SegmentMeta>> {
        self.commit_as(cut, name, true)
    }

    /// [`SegmentStore::commit`], fsynced when `durable`.
    fn commit_as(&self, cut: TailCut, name: &str, durable: bool) -> Result<Option<SegmentMeta>> {
        if cut.batches.is_empty() {
            return Ok(None);
        }
        let path = self.dir.join(format!("{name}.parquet"));
        let meta = write_segment(&path, &self.schema, self.ts_column, &cut.batches, durable, &[])?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.segments.retain(|s| s.path != path);
        st.segments.push(meta.clone());
        if let Some(t) = st.tail.get_mut(&cut.key) {
            // The cut's batches still at the front of the tail (none when committed before).
            let n = t
                .iter()
                .zip(&cut.batches)
                .take_while(|(a, b)| Arc::ptr_eq(a.column(0), b.column(0)))
                .count();
            let rows: usize = t.drain(..n).map(|b| b.num_rows()).sum();
            st.tail_rows -= rows;
            if st.tail.get(&cut.key).is_some_and(Vec::is_empty) {
                st.tail.remove(&cut.key);
            }
        }
        Ok(Some(meta))
    }

    /// Merges the segments named by `stems` (at least two, all of this store) into one new
    /// segment `<into>.parquet`, written durably with their stems in its metadata; the table
    /// then shows it instead of them, and their files are deleted at the next compaction (a
    /// query that already chose them reads them still, never both them and the merged one). A
    /// crash before the deletes is repaired when the store is opened: a file that a segment
    /// supersedes is deleted then. `None` when fewer than two of `stems` are segments.
    pub fn compact(&self, stems: &[String], into: &str) -> Result<Option<SegmentMeta>> {
        let chosen: Vec<SegmentMeta> = {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            stems
                .iter()
                .filter_map(|stem| st.segments.iter().find(|s| s.stem() == stem).cloned())
                .collect()
        };
        if chosen.len() < 2 {
            return Ok(None);
        }
        let mut batches = Vec::new();
        for seg in &chosen {
            let file = File::open(&seg.path).map_err(|e| QueryError::io(&seg.path, e))?;
            let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
                .with_batch_size(64 * 1024)
                .build()?;
            for b in reader {
                batches.push(b?.with_schema(self.schema.clone())?);
            }
        }
        let supersedes: Vec<String> = chosen.iter().map(|s| s.stem().to_string()).collect();
        let path = self.dir.join(format!("{into}.parquet"));
        let meta = write_segment(&path, &self.schema, self.ts_column, &batches, true, &supersedes)?;
        let doomed = {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            st.segments
                .retain(|s| s.path != path && !chosen.iter().any(|c| c.path == s.path));
            st.segments.push(meta.clone());
            let doomed = std::mem::take(&mut st.graveyard);
            st.graveyard = chosen.iter().map(|s| s.path.clone()).collect();
            doomed
        };
        for path in doomed {
            remove_if_present(&path)?;
        }
        Ok(Some(meta))
    }

    /// Empties the tail of `key` and deletes every segment whose file stem `orphan` selects
    /// (history a restored checkpoint does not cover); returns how many were deleted.
    pub fn discard(&self, key: &str, orphan: impl Fn(&str) -> bool) -> Result<usize> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = st.tail.remove(key) {
            st.tail_rows -= t.iter().map(RecordBatch::num_rows).sum::<usize>();
        }
        let mut deleted = 0;
        // Inputs of a compaction whose merged segment this drops go too.
        let mut graveyard = std::mem::take(&mut st.graveyard);
        for path in &graveyard {
            if orphan(stem_of(path)) {
                remove_if_present(path)?;
            }
        }
        graveyard.retain(|p| p.exists());
        st.graveyard = graveyard;
        let mut i = 0;
        while i < st.segments.len() {
            if !orphan(st.segments[i].stem()) {
                i += 1;
                continue;
            }
            if remove_if_present(&st.segments[i].path)? {
                deleted += 1;
            }
            st.segments.remove(i);
        }
        Ok(deleted)
    }

    /// Rows in the in-memory tail.
    pub fn tail_rows(&self) -> usize {
        self.state.read().unwrap_or_else(|e| e.into_inner()).tail_rows
    }

    /// The segments on disk, oldest first.
    pub fn segments(&self) -> Vec<SegmentMeta> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).segments.clone()
    }

    /// Scan counters of the table.
    pub fn counters(&self) -> ScanStats {
        self.counters.snapshot()
    }

    /// Writes the unkeyed tail ([`SegmentStore::append`]) as a new Parquet segment
    /// (`seg-NNNNNN`) and empties it. `None` when that tail is empty. Keyed tails are left to
    /// [`SegmentStore::commit`].
    pub fn flush_segment(&self) -> Result<Option<SegmentMeta>> {
        // Another flush in progress takes these rows (or the next flush does).
        let Ok(_flushing) = self.flushing.try_lock() else {
            return Ok(None);
        };
        let name = {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            if !st.tail.contains_key("") {
                return Ok(None);
            }
            st.next_seq += 1;
            format!("seg-{:06}", st.next_seq - 1)
        };
        // Written without holding the state: appends and scans go on (they see the rows in
        // the tail until the segment is in place).
        self.commit_as(self.cut(""), &name, false)
    }

    /// A DataFusion table over this store (segments and tail).
    pub fn table(&self) -> Arc<SegmentTable> {
        Arc::new(SegmentTable { store: self.clone() })
    }
}

/// Writes `batches` as the Parquet segment `path` (through a temp file renamed into place, so a
/// reader never sees a partial file), with the time range in its metadata; with `durable`, the
/// file and the rename are fsynced.
fn write_segment(
    path: &Path,
    schema: &SchemaRef,
    ts_column: usize,
    batches: &[RecordBatch],
    durable: bool,
    supersedes: &[String],
) -> Result<SegmentMeta> {
    let (mut min, mut max, mut rows) = (i64::MAX, i64::MIN, 0);
    for b in batches {
        rows += b.num_rows();
        let ts = b.column(ts_column).as_primitive::<TimestampMillisecondType>();
        if let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) {
            min = min.min(lo);
            max = max.max(hi);
        }
    }
    let tmp = path.with_extension(format!("parquet.tmp-{}", std::process::id()));
    let file = File::create(&tmp).map_err(|e| QueryError::io(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_key_value_metadata(Some(
            [
                KeyValue::new(META_MIN.to_string(), min.to_string()),
                KeyValue::new(META_MAX.to_string(), max.to_string()),
            ]
            .into_iter()
            .chain((!supersedes.is_empty()).then(|| KeyValue::new(META_SUPERSEDES.to_string(), supersedes.join(","))))
            .collect(),
        ))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    let mut file = writer.into_inner()?;
    if durable {
        file.flush().map_err(|e| QueryError::io(&tmp, e))?;
        file.sync_all().map_err(|e| QueryError::io(&tmp, e))?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| QueryError::io(path, e))?;
    if durable && let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| QueryError::io(dir, e))?;
    }
    Ok(SegmentMeta {
        path: path.to_path_buf(),
        min_ts_ms: min,
        max_ts_ms: max,
        rows,
        supersedes: supersedes.to_vec(),
    })
}

/// Deletes `path`; a file already gone is not an error. True when this call deleted it.
fn remove_if_present(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(QueryError::io(path, e)),
    }
}

/// A segment's file name without `.parquet`.
fn stem_of(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
}

fn read_segment_meta(path: &Path, ts_idx: usize) -> Result<SegmentMeta> {
    let file = File::open(path).map_err(|e| QueryError::io(path, e))?;
    let reader = SerializedFileReader::new(file)?;
    let md = reader.metadata();
    let rows = usize::try_from(md.file_metadata().num_rows()).unwrap_or(0);
    let kv = |key: &str| {
        md.file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.as_deref())
            .and_then(|v| v.parse::<i64>().ok())
    };
    if let (Some(min_ts_ms), Some(max_ts_ms)) = (kv(META_MIN), kv(META_MAX)) {
        let supersedes = md
            .file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == META_SUPERSEDES))
            .and_then(|kv| kv.value.as_deref())
            .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        return Ok(SegmentMeta {
            path: path.to_path_buf(),
            min_ts_ms,
            max_ts_ms,
            rows,
            supersedes,
        });
    }
    // A segment written by another tool: take the range from the row groups' statistics, and
    // never prune it when they are missing.
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for rg in md.row_groups() {
        match rg.column(ts_idx).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(lo), Some(hi)) => {
                    min = min.min(*lo);
                    max = max.max(*hi);
                }
                _ => (min, max) = (i64::MIN, i64::MAX),
            },
            _ => (min, max) = (i64::MIN, i64::MAX),
        }
        if min == i64::MIN {
            break;
        }
    }
    Ok(SegmentMeta {
        path: path.to_path_buf(),
        min_ts_ms: min,
        max_ts_ms: max,
        rows,
        supersedes: Vec::new(),
    })
}

/// An inclusive range of epoch milliseconds a query can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsRange {
    pub lo: i64,
    pub hi: i64,
}

impl TsRange {
    const ALL: TsRange = TsRange {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    fn intersect(self, o: TsRange) -> TsRange {
        TsRange {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        }
    }

    fn overlaps(&self, seg: &SegmentMeta) -> bool {
        seg.max_ts_ms >= self.lo && seg.min_ts_ms <= self.hi
    }
}

/// A timestamp literal as epoch milliseconds, rounded down and up.
fn literal_ms(v: &ScalarValue) -> Option<(i64, i64)> {
    let (x, per_ms): (i64, i64) = match v {
        ScalarValue::TimestampSecond(Some(x), _) => return Some((x.saturating_mul(1000), x.saturating_mul(1000))),
        ScalarValue::TimestampMillisecond(Some(x), _) => (*x, 1),
        ScalarValue::TimestampMicrosecond(Some(x), _) => (*x, 1000),
        ScalarValue::TimestampNanosecond(Some(x), _) => (*x, 1_000_000),
        ScalarValue::Date32(Some(d)) => return Some((i64::from(*d) * 86_400_000, i64::from(*d) * 86_400_000)),
        _ => return None,
    };
    let floor = x.div_euclid(per_ms);
    let ceil = if x.rem_euclid(per_ms) == 0 { floor } else { floor + 1 };
    Some((floor, ceil))
}

fn is_ts_column(e: &Expr, name: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == name,
        Expr::Cast(c) => is_ts_column(&c.expr, name),
        Expr::TryCast(c) => is_ts_column(&c.expr, name),
        _ => false,
    }
}

fn literal_of(e: &Expr) -> Option<(i64, i64)> {
    match e {
        Expr::Literal(v, _) => literal_ms(v),
        _ => None,
    }
}

/// The range of `column` a filter allows; [`TsRange::ALL`] when it says nothing about it.
pub fn filter_range(e: &Expr, column: &str) -> TsRange {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                return filter_range(left, column).intersect(filter_range(right, column));
            }
            if *op == Operator::Or {
                let (a, b) = (filter_range(left, column), filter_range(right, column));
                return TsRange {
                    lo: a.lo.min(b.lo),
                    hi: a.hi.max(b.hi),
                };
            }
            let (op, v) = if is_ts_column(left, column) {
                match literal_of(right) {
                    Some(v) => (*op, v),
                    None => return TsRange::ALL,
                }
            } else if is_ts_column(right, column) {
                match (literal_of(left), op.swap()) {
                    (Some(v), Some(op)) => (op, v),
                    _ => return TsRange::ALL,
                }
            } else {
                return TsRange::ALL;
            };
            // Bounds are widened to whole milliseconds: a range may keep a segment it could
            // skip, never skip one it needs.
            let (floor, ceil) = v;
            match op {
                Operator::Eq => TsRange { lo: floor, hi: ceil },
                Operator::Gt | Operator::GtEq => TsRange {
                    lo: floor,
                    hi: i64::MAX,
                },
                Operator::Lt | Operator::LtEq => TsRange { lo: i64::MIN, hi: ceil },
                _ => TsRange::ALL,
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_ts_column(expr, column) => match (literal_of(low), literal_of(high)) {
            (Some((lo, _)), Some((_, hi))) => TsRange { lo, hi },
            _ => TsRange::ALL,
        },
        _ => TsRange::ALL,
    }
}

/// The DataFusion table of a [`SegmentStore`].
#[derive(Debug)]
pub struct SegmentTable {
    store: SegmentStore,
}

impl SegmentTable {
    /// The store behind the table.
    pub fn store(&self) -> &SegmentStore {
        &self.store
    }
}

#[async_trait]
impl TableProvider for SegmentTable {
    fn schema(&self) -> SchemaRef {
        self.store.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let ts_name = self.store.schema.field(self.store.ts_column).name().clone();
        let range = filters
            .iter()
            .fold(TsRange::ALL, |acc, f| acc.intersect(filter_range(f, &ts_name)));
        let (chosen, pruned, tail) = {
            let st = self.store.state.read().unwrap_or_else(|e| e.into_inner());
            let chosen: Vec<PathBuf> = st
                .segments
                .iter()
                .filter(|s| range.lo <= range.hi && range.overlaps(s))
                .map(|s| s.path.clone())
                .collect();
            let pruned = st.segments.len() - chosen.len();
            let tail: Vec<RecordBatch> = st.tail.values().flatten().cloned().collect();
            (chosen, pruned, tail)
        };
        let c = &self.store.counters;
        c.scans.fetch_add(1, Ordering::Relaxed);
        c.segments_scanned.fetch_add(chosen.len() as u64, Ordering::Relaxed);
        c.segments_pruned.fetch_add(pruned as u64, Ordering::Relaxed);

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !chosen.is_empty() {
            let urls = chosen
                .iter()
                .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(self.store.schema.clone());
            let listing = ListingTable::try_new(config)?;
            inputs.push(listing.scan(state, projection, filters, limit).await?);
        }
        if !tail.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &[tail],
                self.store.schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.store.schema.project(p)?),
                None => self.store.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn ranges_from_filters() {
        let t = |ms: i64| lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())));
        assert_eq!(
            filter_range(&col("ts").gt_eq(t(10)), "ts"),
            TsRange { lo: 10, hi: i64::MAX }
        );
        assert_eq!(
            filter_range(&col("ts").lt(t(10)), "ts"),
            TsRange { lo: i64::MIN, hi: 10 }
        );
        assert_eq!(
            filter_range(&t(10).lt(col("ts")), "ts"),
            TsRange { lo: 10, hi: i64::MAX }
        );
        let both = col("ts").gt_eq(t(10)).and(col("ts").lt_eq(t(20)));
        assert_eq!(filter_range(&both, "ts"), TsRange { lo: 10, hi: 20 });
        assert_eq!(filter_range(&col("other").gt_eq(t(10)), "ts"), TsRange::ALL);
        let either = col("ts").lt(t(5)).or(col("ts").gt(t(50)));
        assert_eq!(filter_range(&either, "ts"), TsRange::ALL);
        let us = lit(ScalarValue::TimestampMicrosecond(Some(10_500), None));
        assert_eq!(
            filter_range(&col("ts").gt_eq(us.clone()), "ts"),
            TsRange { lo: 10, hi: i64::MAX }
        );
        assert_eq!(filter_range(&col("ts").lt(us), "ts"), TsRange { lo: i64::MIN, hi: 11 });
    }
}
