//! Account id interning: account id strings to dense `u32` indices.
//!
//! A `hashbrown::HashTable<u32>` keyed by the `ahash` of the id (fixed seeds) holds only the
//! index; the id itself lives once, in `ids`. The table is not serialized: it is rebuilt from
//! `ids` on restore.

use ahash::RandomState;
use hashbrown::HashTable;

/// Interned account ids.
#[derive(Debug, Clone)]
pub struct Interner {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            table: HashTable::new(),
            hasher: RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
        }
    }
}

impl Interner {
    /// An interner over `ids` (index = position).
    pub fn from_ids(ids: &[Box<str>]) -> Self {
        let mut i = Interner::default();
        i.table.reserve(ids.len(), |_| 0);
        for (idx, id) in ids.iter().enumerate() {
            let h = i.hash(id);
            let hasher = &i.hasher;
            i.table
                .insert_unique(h, idx as u32, |&j| hasher.hash_one(&*ids[j as usize]));
        }
        i
    }

    /// The hash of an id.
    #[inline]
    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The index of `id` (with its precomputed `hash`), if interned.
    #[inline]
    pub fn get(&self, hash: u64, id: &str, ids: &[Box<str>]) -> Option<u32> {
        self.table.find(hash, |&j| &*ids[j as usize] == id).copied()
    }

    /// The first index whose stored hash tag matches `hash`, unverified: a cheap first step for
    /// batch lookups; the caller checks the id and falls back to [`Interner::intern`].
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        self.table.find(hash, |_| true).copied()
    }

    /// The index of `id`, interning it (pushing onto `ids`) when new. Returns `(index, new)`.
    #[inline]
    pub fn intern(&mut self, hash: u64, id: &str, ids: &mut Vec<Box<str>>) -> (u32, bool) {
        if let Some(i) = self.get(hash, id, ids) {
            return (i, false);
        }
        let idx = ids.len() as u32;
        ids.push(id.into());
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, idx, |&j| hasher.hash_one(&*ids[j as usize]));
        (idx, true)
    }

    /// Heap bytes of the table.
    pub fn bytes(&self) -> usize {
        self.table.allocation_size()
    }
}
