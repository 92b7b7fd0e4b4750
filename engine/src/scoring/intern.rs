//! Account id interning: account id strings to dense `u32` indices.
//!
//! An open-addressing table (linear probing, power-of-two size, load ≤ 3/4) of 8-byte slots,
//! each `tag << 32 | (index + 1)` where the tag is the high 32 bits of the id's `ahash` (fixed
//! seeds) and 0 marks an empty slot. A slot's position comes from its tag, so the table grows
//! without rehashing the ids. A lookup usually reads one slot (one cache line, no separate
//! control bytes); the id itself lives once, in `ids`, and a tag match is confirmed by comparing
//! ids. The table is backed by huge pages where the host allows (`mem::huge_pages`) and
//! is not serialized: it is rebuilt from `ids` on restore.

use ahash::RandomState;

use super::mem;

/// Interned account ids.
#[derive(Debug, Clone)]
pub struct Interner {
    slots: Vec<u64>,
    len: usize,
    hasher: RandomState,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            slots: Vec::new(),
            len: 0,
            hasher: RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
        }
    }
}

#[inline]
fn tag(hash: u64) -> u64 {
    hash >> 32
}

/// Home slot of a tag in a table of `slots.len()` = 2^bits slots.
#[inline]
fn home(tag: u64, len: usize) -> usize {
    (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - len.trailing_zeros())) as usize
}

fn zeroed_slots(n: usize) -> Vec<u64> {
    let v = vec![0u64; n];
    mem::huge_pages(&v);
    v
}

impl Interner {
    /// An interner over `ids` (index = position).
    pub fn from_ids(ids: &[Box<str>]) -> Self {
        let mut i = Interner::default();
        i.reserve(ids.len());
        for (idx, id) in ids.iter().enumerate() {
            let h = i.hash(id);
            i.insert_new(h, idx as u32);
        }
        i
    }

    fn reserve(&mut self, n: usize) {
        let want = (n.saturating_mul(4) / 3 + 1).next_power_of_two().max(16);
        if want <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, zeroed_slots(want));
        let mask = want - 1;
        for v in old.into_iter().filter(|&v| v != 0) {
            let mut i = home(v >> 32, want);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = v;
        }
    }

    /// Inserts an index not held yet.
    fn insert_new(&mut self, hash: u64, idx: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.reserve(self.len + 1);
        }
        let t = tag(hash);
        let mask = self.slots.len() - 1;
        let mut i = home(t, self.slots.len());
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (t << 32) | (idx as u64 + 1);
        self.len += 1;
    }

    /// The hash of an id.
    #[inline]
    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The index of `id` (with its precomputed `hash`), if interned.
    #[inline]
    pub fn get(&self, hash: u64, id: &str, ids: &[Box<str>]) -> Option<u32> {
        self.probe(hash, |j| *ids[j as usize] == *id)
    }

    /// The first index whose stored tag matches `hash`, unverified: a cheap first step for batch
    /// lookups; the caller checks the id and falls back to [`Interner::intern`].
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        self.probe(hash, |_| true)
    }

    /// Walks the probe sequence of `hash` to the first index whose tag matches and that
    /// `accept` takes; `None` at the first empty slot.
    #[inline(always)]
    fn probe(&self, hash: u64, mut accept: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let t = tag(hash);
        let mask = self.slots.len() - 1;
        let mut i = home(t, self.slots.len());
        loop {
            let v = self.slots[i];
            if v == 0 {
                return None;
            }
            if v >> 32 == t {
                let j = (v as u32).wrapping_sub(1);
                if accept(j) {
                    return Some(j);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading the home slot of `hash` into the cache (see `mem::prefetch`), ahead of
    /// [`Interner::candidate`].
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            mem::prefetch(&self.slots[home(tag(hash), self.slots.len())], 1);
        }
    }

    /// The index of `id`, interning it (pushing onto `ids`) when new. Returns `(index, new)`.
    #[inline]
    pub fn intern(&mut self, hash: u64, id: &str, ids: &mut Vec<Box<str>>) -> (u32, bool) {
        if let Some(i) = self.get(hash, id, ids) {
            return (i, false);
        }
        let idx = ids.len() as u32;
        assert!(idx < u32::MAX, "at most 2^32 - 1 accounts");
        ids.push(id.into());
        self.insert_new(hash, idx);
        (idx, true)
    }

    /// Heap bytes of the table.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_densely_and_finds_again() {
        let mut it = Interner::default();
        let mut ids = Vec::new();
        for n in 0..10_000 {
            let id = format!("a{n}");
            assert_eq!(it.intern(it.hash(&id), &id, &mut ids), (n, true));
        }
        for n in (0..10_000).rev() {
            let id = format!("a{n}");
            let h = it.hash(&id);
            assert_eq!(it.intern(h, &id, &mut ids), (n, false));
            assert_eq!(it.get(h, &id, &ids), Some(n));
        }
        assert_eq!(it.get(it.hash("nope"), "nope", &ids), None);
        let back = Interner::from_ids(&ids);
        assert_eq!(back.get(back.hash("a1234"), "a1234", &ids), Some(1234));
        assert!(back.bytes() >= 8 * 10_000);
    }

    #[test]
    fn tag_collisions_are_resolved_by_the_id() {
        // Same hash (hence tag and home) for two ids: the candidate is the first, `get` checks.
        let mut it = Interner::default();
        let mut ids: Vec<Box<str>> = Vec::new();
        let h = 0xdead_beef_0000_0001;
        assert_eq!(it.intern(h, "x", &mut ids), (0, true));
        assert_eq!(it.intern(h, "y", &mut ids), (1, true));
        assert_eq!(it.candidate(h), Some(0));
        assert_eq!(it.get(h, "y", &ids), Some(1));
        assert_eq!(it.get(h, "x", &ids), Some(0));
        assert_eq!(it.get(h, "z", &ids), None);
    }
}
