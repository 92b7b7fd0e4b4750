//! What `vigil replay` keeps in the data directory between runs: the replay partition's
//! checkpoint (its scoring state, the number that names its history segments, and the content
//! hashes of the files replayed into it), so that a file replayed again changes nothing, another
//! file continues from the state the earlier ones left, and an interrupted replay leaves no
//! partial history behind.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use twox_hash::XxHash3_128;
use vigil_engine::scoring::{ScoringCore, ShardId};

use vigil_runtime::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore, PartitionProgress};
use vigil_runtime::pipeline::{PipelineStats, unpartitioned_shard, wall_ms};

/// The content hash of a file (XXH3-128, hex): the identity of a replay's input.
pub fn content_hash(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = XxHash3_128::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(format!("{:032x}", h.finish_128()))
}

/// Takes the next number of `counter`.
pub fn next_seq(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

/// The replay partition's checkpoint as found at the start, and the history numbers used since.
#[derive(Debug)]
pub struct ReplayState {
    store: CheckpointStore,
    input: String,
    restored: Option<Checkpoint>,
    /// The number of the last history segment written (starts at the restored checkpoint's);
    /// shared with the replay's sink, which writes history as it goes.
    seq: Arc<AtomicU64>,
}

impl ReplayState {
    /// The state of the replay partition under `checkpoint_dir`, for input file `file`.
    pub fn open(checkpoint_dir: &Path, file: &Path) -> anyhow::Result<ReplayState> {
        let store = CheckpointStore::open(checkpoint_dir)?;
        let input = content_hash(file)?;
        let restored = store.load(&Self::shard())?;
        let seq = restored.as_ref().map_or(0, |c| c.progress.checkpoints);
        Ok(ReplayState {
            store,
            input,
            restored,
            seq: Arc::new(AtomicU64::new(seq)),
        })
    }

    /// The partition a replay scores into.
    pub fn shard() -> ShardId {
        unpartitioned_shard()
    }

    /// The input's content hash.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// True when this very file was replayed into the data directory before.
    pub fn already_replayed(&self) -> bool {
        self.restored.as_ref().is_some_and(|c| c.inputs.contains(&self.input))
    }

    /// The number of the restored checkpoint (0: none): history numbered after it is not
    /// covered (an interrupted or crashed replay) and is dropped.
    pub fn restored_seq(&self) -> u64 {
        self.restored.as_ref().map_or(0, |c| c.progress.checkpoints)
    }

    /// The scoring state earlier replays left, if any.
    pub fn restored_core(&self) -> anyhow::Result<Option<ScoringCore>> {
        self.restored
            .as_ref()
            .map(|c| ScoringCore::restore(&c.state).context("restoring the replay's checkpoint"))
            .transpose()
    }

    /// The numbers of the history segments written, shared: see [`ReplayState::next_seq`].
    pub fn seq_counter(&self) -> Arc<AtomicU64> {
        self.seq.clone()
    }

    /// The number for the next history segment.
    pub fn next_seq(&self) -> u64 {
        next_seq(&self.seq)
    }

    /// Records the finished replay: the state, the counts added to the earlier ones, and this
    /// input among those replayed. Its history must already be written (segments up to the
    /// last [`ReplayState::next_seq`]).
    /// `state` is the partition's [`ScoringCore::snapshot`].
    pub fn save(self, state: Vec<u8>, stats: &PipelineStats, messages: u64) -> anyhow::Result<()> {
        let (mut progress, mut inputs) = match self.restored {
            Some(c) => (c.progress, c.inputs),
            None => (PartitionProgress::default(), Vec::new()),
        };
        progress.messages += messages;
        progress.valid += stats.events + stats.duplicates + stats.late;
        progress.applied += stats.events;
        progress.duplicates += stats.duplicates;
        progress.late += stats.late;
        progress.dead_lettered += messages.saturating_sub(stats.events + stats.duplicates + stats.late);
        progress.checkpoints = self.seq.load(Ordering::SeqCst);
        inputs.push(self.input);
        let shard = Self::shard();
        Ok(self.store.save(&Checkpoint {
            version: CHECKPOINT_VERSION,
            topic: shard.0.to_string(),
            partition: shard.1,
            written_at_ms: wall_ms(),
            progress,
            state,
            inputs,
        })?)
    }
}
