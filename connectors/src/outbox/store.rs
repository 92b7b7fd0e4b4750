//! [`Outbox`]: the durable, append-only log of alerts and their per-sink delivery state.
//!
//! One directory holds:
//!
//! - `outbox.log`: JSON Lines, one record per line, appended and `fsync`ed before a call
//!   returns. Records: `enqueue` (the whole alert and the sinks it is routed to), `delivered`,
//!   `failed` (parked after the sink's attempts), `retry` (failed → pending) and, written only by
//!   compaction, `done` (every sink delivered; only the id is kept, for de-duplication).
//! - `outbox.lock`: held with an exclusive file lock by the process that has the outbox open, so
//!   two vigil processes never share one; the OS releases it when the process dies (also on
//!   SIGKILL).
//! - `requests/`: retry requests dropped by another process (`vigil alerts retry` while vigil
//!   runs), applied by the running process ([`Outbox::apply_requests`]).
//!
//! Opening replays the log. A torn last line (a crash mid-append) is cut off; a bad line
//! anywhere else is refused with its line number. The log is rewritten (compacted) when it holds
//! many more lines than live records; ids of fully delivered alerts are kept for
//! [`OutboxOptions::done_retention`] so a re-raised alert with the same id is not sent again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::alert::HookAlert;
use crate::error::ConnectorError;

const LOG_FILE: &str = "outbox.log";
const LOCK_FILE: &str = "outbox.lock";
const REQUESTS_DIR: &str = "requests";

/// Tuning of an [`Outbox`].
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxOptions {
    /// How long the ids of fully delivered alerts are remembered (an alert enqueued again with
    /// such an id is ignored). Default 7 days.
    pub done_retention: Duration,
    /// The log is compacted once it has at least this many lines and more than twice as many as
    /// live records. Default 10 000.
    pub compact_min_lines: usize,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            done_retention: Duration::from_secs(7 * 24 * 3600),
            compact_min_lines: 10_000,
        }
    }
}

/// The delivery state of one alert at one sink.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    /// Not delivered yet; the sink's worker will try (again).
    Pending,
    Delivered {
        at_ms: i64,
    },
    /// Parked after `attempts` failed attempts; delivered again only after a retry.
    Failed {
        at_ms: i64,
        attempts: u32,
        error: String,
    },
}

/// A parked delivery, as listed by [`Outbox::failed`].
#[derive(Debug, Clone, PartialEq)]
pub struct FailedDelivery {
    pub alert: HookAlert,
    pub sink: String,
    pub attempts: u32,
    pub error: String,
    pub failed_at_ms: i64,
}

/// Which parked deliveries to retry: empty lists mean "all".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RetryFilter {
    /// Only these sinks (hook names).
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Only these alert ids.
    #[serde(default)]
    pub ids: Vec<String>,
}

impl RetryFilter {
    /// Every parked delivery.
    pub fn all() -> Self {
        RetryFilter::default()
    }

    fn matches(&self, id: &str, sink: &str) -> bool {
        (self.sinks.is_empty() || self.sinks.iter().any(|s| s == sink))
            && (self.ids.is_empty() || self.ids.iter().any(|i| i == id))
    }
}

/// What [`request_retry`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// No process had the outbox open: `count` parked deliveries are pending again and will be
    /// delivered by the next process that starts the hooks.
    Applied { count: usize },
    /// A running process has the outbox open: the request was written to this file and that
    /// process applies it within its poll interval.
    Queued { request: PathBuf },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Enqueue {
        seq: u64,
        ts: i64,
        sinks: Vec<String>,
        alert: HookAlert,
    },
    Delivered {
        id: String,
        sink: String,
        ts: i64,
    },
    Failed {
        id: String,
        sink: String,
        ts: i64,
        attempts: u32,
        error: String,
    },
    Retry {
        id: String,
        sink: String,
        ts: i64,
    },
    Done {
        id: String,
        ts: i64,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    alert: HookAlert,
    enqueued_ms: i64,
    sinks: BTreeMap<String, DeliveryState>,
}

/// The replayed state of a log.
#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    entries: BTreeMap<u64, Entry>,
    by_id: HashMap<String, u64>,
    /// Fully delivered ids → when the last sink confirmed.
    done: HashMap<String, i64>,
    /// Pending (seq) per sink.
    pending: HashMap<String, BTreeSet<u64>>,
}

impl State {
    fn knows(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.done.contains_key(id)
    }

    fn apply(&mut self, rec: Record) {
        match rec {
            Record::Enqueue { seq, ts, sinks, alert } => {
                if self.knows(&alert.id) {
                    return;
                }
                self.next_seq = self.next_seq.max(seq + 1);
                let mut states = BTreeMap::new();
                for s in sinks {
                    self.pending.entry(s.clone()).or_default().insert(seq);
                    states.insert(s, DeliveryState::Pending);
                }
                self.by_id.insert(alert.id.clone(), seq);
                self.entries.insert(
                    seq,
                    Entry {
                        seq,
                        alert,
                        enqueued_ms: ts,
                        sinks: states,
                    },
                );
            }
            Record::Delivered { id, sink, ts } => self.set(&id, &sink, DeliveryState::Delivered { at_ms: ts }),
            Record::Failed {
                id,
                sink,
                ts,
                attempts,
                error,
            } => self.set(
                &id,
                &sink,
                DeliveryState::Failed {
                    at_ms: ts,
                    attempts,
                    error,
                },
            ),
            Record::Retry { id, sink, .. } => self.set(&id, &sink, DeliveryState::Pending),
            Record::Done { id, ts } => {
                if let Some(seq) = self.by_id.remove(&id)
                    && let Some(e) = self.entries.remove(&seq)
                {
                    for s in e.sinks.keys() {
                        self.unpend(s, seq);
                    }
                }
                self.done.insert(id, ts);
            }
        }
    }

    fn unpend(&mut self, sink: &str, seq: u64) {
        if let Some(p) = self.pending.get_mut(sink) {
            p.remove(&seq);
        }
    }

    /// Sets a sink's state; an entry whose sinks are all delivered becomes `done`.
    fn set(&mut self, id: &str, sink: &str, state: DeliveryState) {
        let Some(&seq) = self.by_id.get(id) else { return };
        let Some(entry) = self.entries.get_mut(&seq) else {
            return;
        };
        let Some(slot) = entry.sinks.get_mut(sink) else { return };
        let pending = matches!(state, DeliveryState::Pending);
        *slot = state;
        let all_delivered = entry
            .sinks
            .values()
            .all(|s| matches!(s, DeliveryState::Delivered { .. }));
        let last_ms = entry
            .sinks
            .values()
            .filter_map(|s| match s {
                DeliveryState::Delivered { at_ms } => Some(*at_ms),
                _ => None,
            })
            .max();
        if pending {
            self.pending.entry(sink.to_string()).or_default().insert(seq);
        } else {
            self.unpend(sink, seq);
        }
        if all_delivered {
            self.entries.remove(&seq);
            self.by_id.remove(id);
            self.done.insert(id.to_string(), last_ms.unwrap_or_else(now_ms));
        }
    }

    /// Records that reproduce this state (compaction).
    fn records(&self, keep_done_after_ms: i64) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.entries.len() * 2 + self.done.len());
        let mut done: Vec<(&String, &i64)> = self.done.iter().filter(|(_, t)| **t >= keep_done_after_ms).collect();
        done.sort();
        for (id, ts) in done {
            out.push(Record::Done {
                id: id.clone(),
                ts: *ts,
            });
        }
        for e in self.entries.values() {
            out.push(Record::Enqueue {
                seq: e.seq,
                ts: e.enqueued_ms,
                sinks: e.sinks.keys().cloned().collect(),
                alert: e.alert.clone(),
            });
            for (sink, st) in &e.sinks {
                match st {
                    DeliveryState::Pending => {}
                    DeliveryState::Delivered { at_ms } => out.push(Record::Delivered {
                        id: e.alert.id.clone(),
                        sink: sink.clone(),
                        ts: *at_ms,
                    }),
                    DeliveryState::Failed { at_ms, attempts, error } => out.push(Record::Failed {
                        id: e.alert.id.clone(),
                        sink: sink.clone(),
                        ts: *at_ms,
                        attempts: *attempts,
                        error: error.clone(),
                    }),
                }
            }
        }
        out
    }

    fn live_records(&self) -> usize {
        self.done.len() + self.entries.values().map(|e| 1 + e.sinks.len()).sum::<usize>()
    }

    fn failed(&self) -> Vec<FailedDelivery> {
        let mut out = Vec::new();
        for e in self.entries.values() {
            for (sink, st) in &e.sinks {
                if let DeliveryState::Failed { at_ms, attempts, error } = st {
                    out.push(FailedDelivery {
                        alert: e.alert.clone(),
                        sink: sink.clone(),
                        attempts: *attempts,
                        error: error.clone(),
                        failed_at_ms: *at_ms,
                    });
                }
            }
        }
        out
    }
}

/// Replays log bytes. Returns the state, the number of good lines and the byte length they
/// cover (a torn last line is not covered).
fn replay(bytes: &[u8], path: &Path) -> Result<(State, usize, u64), ConnectorError> {
    let mut state = State::default();
    let mut good_len = 0u64;
    let mut lines = 0usize;
    let mut rest = bytes;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let (line, complete, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        let parsed = if complete {
            serde_json::from_slice::<Record>(line).map_err(|e| e.to_string())
        } else {
            Err("no newline".to_string())
        };
        match parsed {
            Ok(rec) => {
                state.apply(rec);
                lines += 1;
                good_len += line.len() as u64 + 1;
            }
            // The last line: a torn append (a crash mid-write, or blocks the file system
            // allocated but never filled). Nothing after it was acknowledged.
            Err(e) if next.is_empty() => {
                tracing::warn!(path = %path.display(), line = line_no, error = %e, "outbox: cutting off a torn last line");
                break;
            }
            Err(e) => {
                return Err(ConnectorError::Outbox {
                    path: path.display().to_string(),
                    detail: format!("line {line_no} is not a valid record ({e}); refusing to guess"),
                });
            }
        }
        rest = next;
    }
    Ok((state, lines, good_len))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConnectorError + '_ {
    move |source| ConnectorError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), ConnectorError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

struct Inner {
    dir: PathBuf,
    log_path: PathBuf,
    log: File,
    /// Bytes of complete records in the log.
    len: u64,
    lines: usize,
    state: State,
    options: OutboxOptions,
    _lock: File,
}

/// The durable outbox. Cheap to clone (shared); every method does blocking file I/O and, for
/// writes, `fsync`s before returning — call it from a blocking context
/// (`tokio::task::spawn_blocking`) on an async runtime.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Outbox")
            .field("dir", &g.dir)
            .field("live", &g.state.entries.len())
            .field("done", &g.state.done.len())
            .field("lines", &g.lines)
            .finish()
    }
}

impl Outbox {
    /// Opens (creating it if needed) the outbox in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Outbox, ConnectorError> {
        Outbox::open_with(dir, OutboxOptions::default())
    }

    /// Opens the outbox in `dir`: takes the lock (or fails with
    /// [`ConnectorError::OutboxLocked`]), replays the log and cuts off a torn last line.
    pub fn open_with(dir: impl AsRef<Path>, options: OutboxOptions) -> Result<Outbox, ConnectorError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join(REQUESTS_DIR)).map_err(io_err(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ConnectorError::OutboxLocked {
                    path: dir.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let log_path = dir.join(LOG_FILE);
        let existed = log_path.exists();
        let mut log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        if !existed {
            sync_dir(&dir)?;
        }
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).map_err(io_err(&log_path))?;
        let (state, lines, good_len) = replay(&bytes, &log_path)?;
        if good_len < bytes.len() as u64 {
            log.set_len(good_len).map_err(io_err(&log_path))?;
            log.sync_all().map_err(io_err(&log_path))?;
        }
        log.seek(SeekFrom::End(0)).map_err(io_err(&log_path))?;
        let outbox = Outbox {
            inner: Arc::new(Mutex::new(Inner {
                dir,
                log_path,
                log,
                len: good_len,
                lines,
                state,
                options,
                _lock: lock,
            })),
        };
        {
            let mut g = outbox.lock();
            g.maybe_compact()?;
        }
        Ok(outbox)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-applied in a way that
        // matters: records are applied only after they are durable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outbox directory.
    pub fn dir(&self) -> PathBuf {
        self.lock().dir.clone()
    }

    /// Writes `alert` durably, pending at each of `sinks`. Returns false (and writes nothing)
    /// when `sinks` is empty or the id is already known (pending, parked, or delivered within
    /// the retention).
    pub fn enqueue(&self, alert: &HookAlert, sinks: &[String]) -> Result<bool, ConnectorError> {
        Ok(self.enqueue_all(&[(alert.clone(), sinks.to_vec())])?[0])
    }

    /// Writes many alerts with one `fsync`. Returns, per item, whether it was written (see
    /// [`Outbox::enqueue`]; of equal ids in `items` only the first is).
    pub fn enqueue_all(&self, items: &[(HookAlert, Vec<String>)]) -> Result<Vec<bool>, ConnectorError> {
        let mut g = self.lock();
        let ts = now_ms();
        let mut recs = Vec::new();
        let mut written = Vec::with_capacity(items.len());
        let mut seen = BTreeSet::new();
        let mut seq = g.state.next_seq;
        for (alert, sinks) in items {
            let new = !sinks.is_empty() && !g.state.knows(&alert.id) && seen.insert(alert.id.as_str());
            written.push(new);
            if !new {
                continue;
            }
            let sinks: BTreeSet<String> = sinks.iter().cloned().collect();
            recs.push(Record::Enqueue {
                seq,
                ts,
                sinks: sinks.into_iter().collect(),
                alert: alert.clone(),
            });
            seq += 1;
        }
        g.append(recs)?;
        Ok(written)
    }

    /// Up to `limit` alerts pending at `sink`, oldest first.
    pub fn pending(&self, sink: &str, limit: usize) -> Vec<HookAlert> {
        let g = self.lock();
        g.state.pending.get(sink).map_or_else(Vec::new, |p| {
            p.iter()
                .take(limit)
                .filter_map(|seq| g.state.entries.get(seq).map(|e| e.alert.clone()))
                .collect()
        })
    }

    /// Pending deliveries per sink (sinks with none are left out).
    pub fn pending_counts(&self) -> BTreeMap<String, usize> {
        let g = self.lock();
        g.state
            .pending
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(s, p)| (s.clone(), p.len()))
            .collect()
    }

    /// All pending deliveries, every sink.
    pub fn pending_total(&self) -> usize {
        self.pending_counts().values().sum()
    }

    /// Every sink's state for alert `id`, or None when the id is unknown or fully delivered
    /// (see [`Outbox::is_delivered`]).
    pub fn state(&self, id: &str) -> Option<BTreeMap<String, DeliveryState>> {
        let g = self.lock();
        let seq = g.state.by_id.get(id)?;
        g.state.entries.get(seq).map(|e| e.sinks.clone())
    }

    /// Whether alert `id` was delivered to every sink it was routed to (within the retention).
    pub fn is_delivered(&self, id: &str) -> bool {
        self.lock().state.done.contains_key(id)
    }

    /// Records that `sink` confirmed `id`.
    pub fn mark_delivered(&self, id: &str, sink: &str) -> Result<(), ConnectorError> {
        let rec = Record::Delivered {
            id: id.to_string(),
            sink: sink.to_string(),
            ts: now_ms(),
        };
        self.lock().append_if_live(id, sink, rec)
    }

    /// Parks `id` at `sink` as failed after `attempts` attempts (it stays until retried).
    pub fn park(&self, id: &str, sink: &str, attempts: u32, error: &str) -> Result<(), ConnectorError> {
        let rec = Record::Failed {
            id: id.to_string(),
            sink: sink.to_string(),
            ts: now_ms(),
            attempts,
            error: error.to_string(),
        };
        self.lock().append_if_live(id, sink, rec)
    }

    /// Parked deliveries, oldest alert first.
    pub fn failed(&self) -> Vec<FailedDelivery> {
        self.lock().state.failed()
    }

    /// Makes the parked deliveries matching `filter` pending again. Returns how many.
    pub fn retry_failed(&self, filter: &RetryFilter) -> Result<usize, ConnectorError> {
        let mut g = self.lock();
        let ts = now_ms();
        let recs: Vec<Record> = g
            .state
            .failed()
            .into_iter()
            .filter(|f| filter.matches(&f.alert.id, &f.sink))
            .map(|f| Record::Retry {
                id: f.alert.id,
                sink: f.sink,
                ts,
            })
            .collect();
        let n = recs.len();
        g.append(recs)?;
        Ok(n)
    }

    /// Applies the retry requests other processes dropped in `requests/` (see
    /// [`request_retry`]) and removes them. Returns how many deliveries became pending.
    pub fn apply_requests(&self) -> Result<usize, ConnectorError> {
        let dir = self.lock().dir.join(REQUESTS_DIR);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut total = 0;
        for f in files {
            let bytes = std::fs::read(&f).map_err(io_err(&f))?;
            match serde_json::from_slice::<RetryFilter>(&bytes) {
                Ok(filter) => total += self.retry_failed(&filter)?,
                Err(e) => tracing::warn!(file = %f.display(), error = %e, "outbox: ignoring a malformed retry request"),
            }
            std::fs::remove_file(&f).map_err(io_err(&f))?;
        }
        Ok(total)
    }

    /// Rewrites the log with only the live records (and recent delivered ids).
    pub fn compact(&self) -> Result<(), ConnectorError> {
        self.lock().compact()
    }

    /// Lines in the log now (for tests and stats).
    pub fn log_lines(&self) -> usize {
        self.lock().lines
    }
}

impl Inner {
    fn append_if_live(&mut self, id: &str, sink: &str, rec: Record) -> Result<(), ConnectorError> {
        let live = self
            .state
            .by_id
            .get(id)
            .and_then(|seq| self.state.entries.get(seq))
            .is_some_and(|e| e.sinks.contains_key(sink));
        if !live {
            return Ok(());
        }
        self.append(vec![rec])
    }

    /// Appends records, `fsync`s, then applies them. On a write error the file is cut back to
    /// its last good length and nothing is applied.
    fn append(&mut self, recs: Vec<Record>) -> Result<(), ConnectorError> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(recs.len() * 256);
        for r in &recs {
            serde_json::to_writer(&mut buf, r).map_err(|e| ConnectorError::Outbox {
                path: self.log_path.display().to_string(),
                detail: format!("encoding a record: {e}"),
            })?;
            buf.push(b'\n');
        }
        let written = self.log.write_all(&buf).and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            if let Err(cut) = self.log.set_len(self.len) {
                tracing::error!(error = %cut, "outbox: could not cut back a failed append");
            }
            return Err(io_err(&self.log_path)(e));
        }
        self.len += buf.len() as u64;
        self.lines += recs.len();
        for r in recs {
            self.state.apply(r);
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<(), ConnectorError> {
        if self.lines >= self.options.compact_min_lines && self.lines > 2 * self.state.live_records() {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), ConnectorError> {
        let keep_after =
            now_ms().saturating_sub(i64::try_from(self.options.done_retention.as_millis()).unwrap_or(i64::MAX));
        self.state.done.retain(|_, t| *t >= keep_after);
        let recs = self.state.records(keep_after);
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut buf = Vec::with_capacity(recs.len() * 256);
        for r in &recs {
            serde_json::to_writer(&mut buf, r).map_err(|e| ConnectorError::Outbox {
                path: tmp.display().to_string(),
                detail: format!("encoding a record: {e}"),
            })?;
            buf.push(b'\n');
        }
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&buf).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &self.log_path).map_err(io_err(&self.log_path))?;
        sync_dir(&self.dir)?;
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io_err(&self.log_path))?;
        log.seek(SeekFrom::End(0)).map_err(io_err(&self.log_path))?;
        self.log = log;
        self.len = buf.len() as u64;
        self.lines = recs.len();
        Ok(())
    }
}

/// The log of an existing outbox (a mistyped directory is an error, not an empty outbox).
fn existing_log(dir: &Path) -> Result<PathBuf, ConnectorError> {
    let path = dir.join(LOG_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ConnectorError::Outbox {
            path: dir.display().to_string(),
            detail: format!("no outbox here ({LOG_FILE} not found)"),
        })
    }
}

/// Parked deliveries of the outbox in `dir`, read without taking the lock (for
/// `vigil alerts failed` while vigil runs). A torn last line is ignored.
pub fn read_failed(dir: impl AsRef<Path>) -> Result<Vec<FailedDelivery>, ConnectorError> {
    let path = existing_log(dir.as_ref())?;
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    Ok(replay(&bytes, &path)?.0.failed())
}

/// Retries parked deliveries of the outbox in `dir` — what `vigil alerts retry` calls. When no
/// process has the outbox open, applies the retry directly ([`RetryOutcome::Applied`]); when a
/// running vigil has it, leaves a request file that vigil applies within its poll interval
/// ([`RetryOutcome::Queued`]).
pub fn request_retry(dir: impl AsRef<Path>, filter: &RetryFilter) -> Result<RetryOutcome, ConnectorError> {
    let dir = dir.as_ref();
    existing_log(dir)?;
    match Outbox::open(dir) {
        Ok(outbox) => Ok(RetryOutcome::Applied {
            count: outbox.retry_failed(filter)?,
        }),
        Err(ConnectorError::OutboxLocked { .. }) => {
            let req_dir = dir.join(REQUESTS_DIR);
            std::fs::create_dir_all(&req_dir).map_err(io_err(&req_dir))?;
            let name = format!("retry-{:020}-{}", now_ms(), std::process::id());
            let tmp = req_dir.join(format!("{name}.tmp"));
            let done = req_dir.join(format!("{name}.json"));
            let body = serde_json::to_vec(filter).map_err(|e| ConnectorError::Outbox {
                path: tmp.display().to_string(),
                detail: e.to_string(),
            })?;
            {
                let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
                f.write_all(&body).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
            }
            std::fs::rename(&tmp, &done).map_err(io_err(&done))?;
            sync_dir(&req_dir)?;
            Ok(RetryOutcome::Queued { request: done })
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::alert::{HookKind, HookStatus};
    use vigil_engine::scoring::Tier;

    fn alert(i: usize) -> HookAlert {
        HookAlert {
            id: format!("quiet/acct-{i}/1000"),
            kind: HookKind::Quiet,
            status: HookStatus::Raised,
            rule: None,
            account_id: format!("acct-{i}"),
            tier: Tier::Key,
            at_ms: 2_000,
            episode_start_ms: 1_000,
            value: Some(10.0),
            threshold: Some(7.0),
            message: "quiet".into(),
        }
    }

    fn sinks(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn states_survive_reopen_and_ids_are_deduplicated() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let o = Outbox::open(dir.path()).expect("open");
            assert!(o.enqueue(&alert(1), &sinks(&["a", "b"])).expect("enqueue"));
            assert!(o.enqueue(&alert(2), &sinks(&["a"])).expect("enqueue"));
            assert!(!o.enqueue(&alert(1), &sinks(&["a"])).expect("dup"), "same id again");
            assert!(!o.enqueue(&alert(3), &[]).expect("no sinks"), "nothing routed");
            o.mark_delivered(&alert(1).id, "a").expect("delivered");
            o.park(&alert(1).id, "b", 3, "HTTP 503").expect("park");
            o.mark_delivered(&alert(2).id, "a").expect("delivered");
            assert!(Outbox::open(dir.path()).is_err(), "locked while open");
        }
        let o = Outbox::open(dir.path()).expect("reopen");
        assert!(o.is_delivered(&alert(2).id));
        assert!(!o.enqueue(&alert(2), &sinks(&["a"])).expect("dup after done"));
        let st = o.state(&alert(1).id).expect("live");
        assert!(matches!(st["a"], DeliveryState::Delivered { .. }));
        assert!(matches!(&st["b"], DeliveryState::Failed { attempts: 3, error, .. } if error == "HTTP 503"));
        assert_eq!(o.pending_total(), 0);
        let failed = o.failed();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].sink.as_str(), failed[0].alert.id.as_str()),
            ("b", "quiet/acct-1/1000")
        );
        let filter = RetryFilter {
            sinks: vec!["other".into()],
            ids: vec![],
        };
        assert_eq!(o.retry_failed(&filter).expect("retry none"), 0);
        assert_eq!(o.retry_failed(&RetryFilter::all()).expect("retry"), 1);
        assert_eq!(o.pending("b", 10), vec![alert(1)]);
        assert!(o.pending("a", 10).is_empty());
        o.mark_delivered(&alert(1).id, "b").expect("delivered");
        assert!(o.is_delivered(&alert(1).id));
        assert!(o.failed().is_empty());
    }

    #[test]
    fn torn_last_line_is_cut_and_corruption_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let o = Outbox::open(dir.path()).expect("open");
            o.enqueue(&alert(1), &sinks(&["a"])).expect("enqueue");
        }
        let log = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&log).expect("log");
        f.write_all(br#"{"op":"enqueue","seq":9,"ts":1,"sinks":["a"],"al"#)
            .expect("torn");
        drop(f);
        {
            let o = Outbox::open(dir.path()).expect("torn tail is fine");
            assert_eq!(o.pending("a", 10), vec![alert(1)]);
            assert!(o.enqueue(&alert(2), &sinks(&["a"])).expect("enqueue after cut"));
        }
        let o = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(o.pending("a", 10), vec![alert(1), alert(2)]);
        drop(o);
        let text = std::fs::read_to_string(&log).expect("read");
        std::fs::write(&log, format!("garbage\n{text}")).expect("write");
        let err = Outbox::open(dir.path()).expect_err("corrupt first line");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn compaction_keeps_live_records_and_recent_done_ids() {
        let dir = tempfile::tempdir().expect("tmp");
        let opts = OutboxOptions {
            done_retention: Duration::from_secs(3600),
            compact_min_lines: 50,
        };
        let o = Outbox::open_with(dir.path(), opts.clone()).expect("open");
        for i in 0..100 {
            o.enqueue(&alert(i), &sinks(&["a", "b", "c"])).expect("enqueue");
            if i % 10 != 0 {
                for s in ["a", "b", "c"] {
                    o.mark_delivered(&alert(i).id, s).expect("delivered");
                }
            }
        }
        // 370 lines were written; compaction ran on the way (live records: 90 done + 10 × 4).
        assert!(o.log_lines() < 260, "compacted: {} lines", o.log_lines());
        o.compact().expect("compact");
        assert_eq!(o.log_lines(), 90 + 10, "90 done ids + 10 pending enqueues");
        drop(o);
        let o = Outbox::open_with(dir.path(), opts).expect("reopen");
        let pending: Vec<String> = o.pending("c", 1000).into_iter().map(|a| a.id).collect();
        let expected: Vec<String> = (0..100).step_by(10).map(|i| alert(i).id).collect();
        assert_eq!(pending, expected);
        assert!(o.is_delivered(&alert(1).id));
        assert!(!o.enqueue(&alert(1), &sinks(&["a"])).expect("dedup survives compaction"));
        assert_eq!(o.pending_total(), 30);
    }

    #[test]
    fn request_retry_applies_directly_or_queues_for_the_running_process() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let o = Outbox::open(dir.path()).expect("open");
            o.enqueue(&alert(1), &sinks(&["a"])).expect("enqueue");
            o.park(&alert(1).id, "a", 2, "down").expect("park");
        }
        assert_eq!(read_failed(dir.path()).expect("read").len(), 1);
        let missing = dir.path().join("typo");
        assert!(request_retry(&missing, &RetryFilter::all()).is_err(), "no outbox there");
        assert!(read_failed(&missing).is_err());
        assert!(!missing.exists(), "nothing created");
        let out = request_retry(dir.path(), &RetryFilter::all()).expect("retry");
        assert_eq!(out, RetryOutcome::Applied { count: 1 });
        let o = Outbox::open(dir.path()).expect("open");
        assert_eq!(o.pending_total(), 1);
        o.park(&alert(1).id, "a", 2, "down again").expect("park");
        let out = request_retry(dir.path(), &RetryFilter::all()).expect("retry");
        assert!(matches!(out, RetryOutcome::Queued { .. }), "{out:?}");
        assert_eq!(o.pending_total(), 0, "not applied until the owner looks");
        assert_eq!(o.apply_requests().expect("apply"), 1);
        assert_eq!(o.pending_total(), 1);
        assert_eq!(o.apply_requests().expect("nothing left"), 0);
    }
}
