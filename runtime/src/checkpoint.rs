//! Per-partition checkpoints: the scoring state of one Kafka partition's accounts plus the next
//! offset to read and the partition's running counts, written atomically (temp file, fsync,
//! rename, fsync of the directory) under a state directory shared by every process of a
//! consumer group: `<dir>/<topic>/<partition>.ckpt`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use vigil_connectors::kafka::PartitionOwner;
use vigil_engine::scoring::ShardId;

use crate::error::{Result, RuntimeError};

/// Version of the checkpoint file layout (the engine snapshot inside has its own).
/// 2: the progress counts checkpoints (they number the partition's history segments); a
/// replay's checkpoint lists the inputs replayed.
pub const CHECKPOINT_VERSION: u32 = 2;

/// A partition's position and running counts, over every process that ever owned it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Next offset to read (where a restore resumes); `None` before anything was read.
    pub next_offset: Option<i64>,
    /// Messages read: valid + dead-lettered.
    pub messages: u64,
    /// Valid events handed to the scoring core.
    pub valid: u64,
    /// Events applied to state.
    pub applied: u64,
    /// Events dropped as duplicates of an applied event id.
    pub duplicates: u64,
    /// Events older than the watermark (counted, not applied).
    pub late: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Checkpoints written of the partition, this one included: the number of the history
    /// segments written with it (history after the restored checkpoint's number is dropped).
    pub checkpoints: u64,
}

/// One partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub topic: String,
    pub partition: i32,
    /// Wall-clock time of writing, epoch ms.
    pub written_at_ms: i64,
    pub progress: PartitionProgress,
    /// The partition's scoring state ([`vigil_engine::scoring::ScoringCore::snapshot`]).
    pub state: Vec<u8>,
    /// For a replay's partition: the content hashes of the input files replayed into it (a file
    /// replayed again changes nothing). Empty for Kafka partitions.
    pub inputs: Vec<String>,
}

/// A checkpoint of version 1 (before history was tied to checkpoints): read and upgraded, so
/// that partitions keep their state across the upgrade (their history before it stays in the
/// unnumbered segments it was written to).
#[derive(Serialize, Deserialize)]
struct CheckpointV1 {
    version: u32,
    topic: String,
    partition: i32,
    written_at_ms: i64,
    /// next offset, messages, valid, applied, duplicates, late, dead-lettered.
    progress: (Option<i64>, u64, u64, u64, u64, u64, u64),
    state: Vec<u8>,
}

impl From<CheckpointV1> for Checkpoint {
    fn from(c: CheckpointV1) -> Checkpoint {
        let (next_offset, messages, valid, applied, duplicates, late, dead_lettered) = c.progress;
        Checkpoint {
            version: CHECKPOINT_VERSION,
            topic: c.topic,
            partition: c.partition,
            written_at_ms: c.written_at_ms,
            progress: PartitionProgress {
                next_offset,
                messages,
                valid,
                applied,
                duplicates,
                late,
                dead_lettered,
                checkpoints: 0,
            },
            state: c.state,
            inputs: Vec::new(),
        }
    }
}

/// The directory of checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// Opens (creates) the store.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CheckpointStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(format!("creating {}", dir.display()), e))?;
        Ok(CheckpointStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(topic).join(format!("{partition}.ckpt"))
    }

    /// The checkpoint of a partition, if one was written.
    pub fn load(&self, shard: &ShardId) -> Result<Option<Checkpoint>> {
        let path = self.path(&shard.0, shard.1);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RuntimeError::io(format!("reading {}", path.display()), e)),
        };
        let bad = |detail: String| RuntimeError::Checkpoint {
            path: path.clone(),
            detail,
        };
        let (version, _) = postcard::take_from_bytes::<u32>(&bytes).map_err(|e| bad(format!("decoding: {e}")))?;
        let ckpt: Checkpoint = if version == 1 {
            postcard::from_bytes::<CheckpointV1>(&bytes)
                .map_err(|e| bad(format!("decoding: {e}")))?
                .into()
        } else {
            postcard::from_bytes(&bytes).map_err(|e| bad(format!("decoding: {e}")))?
        };
        if ckpt.version != CHECKPOINT_VERSION {
            return Err(bad(format!(
                "version {} (this build reads {CHECKPOINT_VERSION})",
                ckpt.version
            )));
        }
        if ckpt.topic != *shard.0 || ckpt.partition != shard.1 {
            return Err(bad(format!("it is for {}/{}", ckpt.topic, ckpt.partition)));
        }
        Ok(Some(ckpt))
    }

    /// Writes a checkpoint atomically: a reader (or a restart after a crash at any moment) sees
    /// the previous checkpoint or this one, never a mix.
    pub fn save(&self, ckpt: &Checkpoint) -> Result<()> {
        let path = self.path(&ckpt.topic, ckpt.partition);
        let dir = path.parent().expect("checkpoint paths have a parent");
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let bytes = postcard::to_allocvec(ckpt).map_err(|e| RuntimeError::Encode {
            what: "checkpoint",
            detail: e.to_string(),
        })?;
        let tmp = dir.join(format!(".{}.ckpt.tmp-{}", ckpt.partition, std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
            f.write_all(&bytes).map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("renaming to", &path))?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", dir))?;
        Ok(())
    }

    /// Every checkpoint in the store, in topic and partition order.
    pub fn load_all(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        let Ok(topics) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        let listing = |e| RuntimeError::io(format!("listing {}", self.dir.display()), e);
        for topic in topics {
            let topic = topic.map_err(listing)?;
            if !topic.file_type().map_err(listing)?.is_dir() {
                continue;
            }
            let name = topic.file_name().to_string_lossy().to_string();
            for f in std::fs::read_dir(topic.path()).map_err(listing)? {
                let f = f.map_err(listing)?.file_name().to_string_lossy().to_string();
                let Some(p) = f.strip_suffix(".ckpt").and_then(|p| p.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(c) = self.load(&(Arc::from(name.as_str()), p))? {
                    out.push(c);
                }
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }
}

/// Maps an I/O error of `what` (a verb) on `path`.
fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RuntimeError + 'a {
    move |e| RuntimeError::io(format!("{what} {}", path.display()), e)
}

/// A request from the Kafka source's rebalance callback to the pipeline.
#[derive(Debug)]
pub enum OwnerRequest {
    /// Restore these partitions; reply with where to start each.
    Assigned(
        Vec<ShardId>,
        std::sync::mpsc::SyncSender<Result<Vec<Option<i64>>, String>>,
    ),
    /// Checkpoint these partitions and let them go; reply when done.
    Revoked(Vec<ShardId>, std::sync::mpsc::SyncSender<()>),
}

/// The [`PartitionOwner`] of `vigil run`: forwards assignment and revocation to the pipeline,
/// which restores and checkpoints partition state.
#[derive(Debug)]
pub struct CheckpointOwner {
    tx: mpsc::UnboundedSender<OwnerRequest>,
    assign_timeout: Duration,
}

impl CheckpointOwner {
    /// An owner and the receiving end for the pipeline.
    pub fn new(assign_timeout: Duration) -> (CheckpointOwner, mpsc::UnboundedReceiver<OwnerRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (CheckpointOwner { tx, assign_timeout }, rx)
    }
}

impl PartitionOwner for CheckpointOwner {
    fn assigned(&self, partitions: &[ShardId]) -> Result<Vec<Option<i64>>, String> {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(OwnerRequest::Assigned(partitions.to_vec(), reply))
            .map_err(|_| "the pipeline has stopped".to_string())?;
        rx.recv_timeout(self.assign_timeout)
            .map_err(|e| format!("restoring partition state: {e}"))?
    }

    fn revoked(&self, partitions: &[ShardId], timeout: Duration) {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(OwnerRequest::Revoked(partitions.to_vec(), reply)).is_err() {
            return;
        }
        match rx.recv_timeout(timeout) {
            Ok(()) => {}
            // The pipeline has finished (it checkpoints everything it holds when it stops).
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                tracing::debug!(partitions = partitions.len(), "revocation after the pipeline stopped");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                partitions = partitions.len(),
                ?timeout,
                "revocation: checkpoint not confirmed in time"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ckpt(topic: &str, partition: i32, next: i64) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            topic: topic.into(),
            partition,
            written_at_ms: 1,
            progress: PartitionProgress {
                next_offset: Some(next),
                messages: next as u64,
                ..Default::default()
            },
            state: vec![1, 2, 3],
            inputs: Vec::new(),
        }
    }

    #[test]
    fn save_load_replace_and_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path().join("ckpt")).expect("open");
        let shard: ShardId = (Arc::from("events.v1"), 3);
        assert_eq!(store.load(&shard).expect("load"), None);
        store.save(&ckpt("events.v1", 3, 10)).expect("save");
        store.save(&ckpt("events.v1", 3, 20)).expect("replace");
        store.save(&ckpt("events.v1", 0, 5)).expect("save");
        assert_eq!(store.load(&shard).expect("load"), Some(ckpt("events.v1", 3, 20)));
        let all = store.load_all().expect("list");
        assert_eq!(all.iter().map(|c| c.partition).collect::<Vec<_>>(), vec![0, 3]);
        // No temp files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("ckpt").join("events.v1"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.iter().all(|n| n.ends_with(".ckpt")), "{names:?}");
    }

    #[test]
    fn a_version_1_checkpoint_is_read_and_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("open");
        let v1 = CheckpointV1 {
            version: 1,
            topic: "t".into(),
            partition: 5,
            written_at_ms: 7,
            progress: (Some(40), 40, 39, 36, 2, 1, 1),
            state: vec![9, 8],
        };
        std::fs::create_dir_all(dir.path().join("t")).expect("mkdir");
        std::fs::write(
            dir.path().join("t").join("5.ckpt"),
            postcard::to_allocvec(&v1).expect("encode"),
        )
        .expect("write");
        let c = store.load(&(Arc::from("t"), 5)).expect("load").expect("present");
        assert_eq!(c.version, CHECKPOINT_VERSION);
        assert_eq!(
            c.progress,
            PartitionProgress {
                next_offset: Some(40),
                messages: 40,
                valid: 39,
                applied: 36,
                duplicates: 2,
                late: 1,
                dead_lettered: 1,
                checkpoints: 0,
            }
        );
        assert_eq!((c.state, c.inputs), (vec![9, 8], Vec::<String>::new()));
    }

    #[test]
    fn a_torn_or_foreign_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("open");
        std::fs::create_dir_all(dir.path().join("t")).expect("mkdir");
        std::fs::write(dir.path().join("t").join("1.ckpt"), b"\x01\x02").expect("write");
        assert!(store.load(&(Arc::from("t"), 1)).is_err());
        store.save(&ckpt("t", 2, 1)).expect("save");
        std::fs::rename(dir.path().join("t").join("2.ckpt"), dir.path().join("t").join("4.ckpt")).expect("mv");
        assert!(
            store.load(&(Arc::from("t"), 4)).is_err(),
            "a file for another partition is refused"
        );
    }
}
