//! Exact-in-practice de-duplication of event ids within the allowed lateness, bucketed by the
//! day of event time.
//!
//! # Key and collision probability
//!
//! A duplicate is a redelivery of the same event, so it has the same `account_id` and `ts` as the
//! original. The key of an event is `account index (32 bits) ‖ low 96 bits of
//! XXH3-128(event_id)`, kept in the set of the event's day. Two different events are
//! taken for duplicates only when they belong to the same account, fall on the same day and
//! their 96-bit id hashes are equal: for `n` distinct ids of one account and day the probability
//! of any such collision is at most `n² / 2^97` (`n` = 10^6 gives 6.3·10^-18). Keeping the ids
//! themselves would make it strictly exact at about 3× the memory; the 16-byte key was chosen.
//!
//! # Table
//!
//! Each day's keys are in an open-addressing table of `u128` slots with linear probing (0 marks
//! an empty slot; the key 0 itself is held by a flag). A lookup reads one slot, usually one cache
//! line, with no separate control bytes, and [`DedupWindow::prefetch`] lets a batch start loading
//! the slots of many keys ahead of the inserts, so that their cache misses overlap.
//!
//! Memory: 16 bytes per slot at a load factor between 3/8 and 3/4 (a new day starts at the
//! previous day's size), i.e. 21 to 43 bytes per id; [`DedupWindow::bytes`] reports the real
//! figure. A day's set is dropped as a whole once the watermark has passed the day.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mem;

/// `n` empty slots, mapped at once (`mem::populate`): the inserts read a slot before writing it,
/// which would otherwise take two page faults per page. Not advised for huge pages: a day's
/// table is allocated while events flow, and on the benchmark VM faulting in fresh 2 MiB pages
/// (kernel `clear_page` on memory the host had not backed yet) cost more than the TLB misses
/// they save (3.4-3.6 → 2.8 M events per CPU-second).
fn zeroed_slots(n: usize) -> Vec<u128> {
    let v = vec![0u128; n];
    mem::populate(&v);
    v
}

/// A set of non-zero-hashed `u128` keys: open addressing, linear probing, power-of-two size.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    slots: Vec<u128>,
    len: usize,
    /// The number of keys at which the next insert grows the table: 3/4 of the slots.
    grow_at: usize,
    /// `64 − log2(slots)`: a slot is the top bits of the mixed key.
    shift: u32,
    has_zero: bool,
}

impl KeyTable {
    /// A table that holds `n` keys without growing.
    pub fn with_capacity(n: usize) -> Self {
        let mut t = KeyTable::default();
        if n > 0 {
            t.set_slots(zeroed_slots(Self::slots_for(n)));
        }
        t
    }

    fn slots_for(n: usize) -> usize {
        (n.saturating_mul(4) / 3 + 1).next_power_of_two().max(16)
    }

    /// Takes `slots` (empty, a power of two long) as the slot array; returns the old one.
    fn set_slots(&mut self, slots: Vec<u128>) -> Vec<u128> {
        debug_assert!(slots.len().is_power_of_two());
        self.grow_at = slots.len() / 4 * 3;
        self.shift = 64 - slots.len().trailing_zeros();
        std::mem::replace(&mut self.slots, slots)
    }

    #[inline]
    fn slot(&self, key: u128) -> usize {
        let h = (key as u64) ^ ((key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (h >> self.shift) as usize
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `key` is held.
    pub fn contains(&self, key: u128) -> bool {
        if key == 0 {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let v = self.slots[i];
            if v == key {
                return true;
            }
            if v == 0 {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading the slot of `key` into the cache (see `mem::prefetch`), and the slot
    /// three further on: a linear probe often continues past the end of the first slot's line.
    #[inline]
    pub fn prefetch(&self, key: u128) {
        if !self.slots.is_empty() {
            let i = self.slot(key);
            mem::prefetch(&self.slots[i], 1);
            if let Some(s) = self.slots.get(i + 3) {
                mem::prefetch(s, 1);
            }
        }
    }

    /// Inserts `key`; true when it was not held.
    #[inline]
    pub fn insert(&mut self, key: u128) -> bool {
        if key == 0 {
            let new = !self.has_zero;
            self.has_zero = true;
            self.len += new as usize;
            return new;
        }
        if self.len >= self.grow_at {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let v = self.slots[i];
            if v == key {
                return false;
            }
            if v == 0 {
                self.slots[i] = key;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(16);
        let old = self.set_slots(zeroed_slots(n));
        let mask = n - 1;
        for key in old.into_iter().filter(|&k| k != 0) {
            let mut i = self.slot(key);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = key;
        }
    }

    /// Removes every key, keeping the slots (memory already faulted in).
    fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
        self.has_zero = false;
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.has_zero
            .then_some(0)
            .into_iter()
            .chain(self.slots.iter().copied().filter(|&k| k != 0))
    }

    /// Heap bytes.
    pub fn allocation_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u128>()
    }
}

impl FromIterator<u128> for KeyTable {
    fn from_iter<I: IntoIterator<Item = u128>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut t = KeyTable::with_capacity(iter.size_hint().0);
        for k in iter {
            t.insert(k);
        }
        t
    }
}

impl PartialEq for KeyTable {
    /// Same set of keys.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|k| other.contains(k))
    }
}

/// Serialized as a sequence of keys (as a `HashSet<u128>` would be).
impl Serialize for KeyTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len))?;
        for k in self.iter() {
            seq.serialize_element(&k)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for KeyTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<u128>::deserialize(d)?.into_iter().collect())
    }
}

type KeySet = KeyTable;

const HASH_BITS: u32 = 96;
const HASH_MASK: u128 = (1u128 << HASH_BITS) - 1;

/// The de-duplication key of an event of account `account` whose id hashes to `id_hash`.
#[inline]
pub fn dedup_key(account: u32, id_hash: u128) -> u128 {
    ((account as u128) << HASH_BITS) | (id_hash & HASH_MASK)
}

/// The account index of a key.
#[inline]
pub fn key_account(key: u128) -> u32 {
    (key >> HASH_BITS) as u32
}

/// The seen keys, one set per day of event time, days ascending.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupWindow {
    days: Vec<(i32, KeySet)>,
    /// The largest table dropped with its day, reused (cleared) for a new day that fits in it:
    /// in a steady stream a new day then takes no fresh memory (no page faults while events
    /// flow). Not part of the state (not serialized, ignored by `==`).
    #[serde(skip)]
    spare: Spare,
}

#[derive(Debug, Clone, Default)]
struct Spare(Option<KeySet>);

impl PartialEq for Spare {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl DedupWindow {
    /// Records `key` on `day`; true when it was not seen before (the event is new).
    ///
    /// `keep_from` is the day of the watermark as of this event (`day` is not before it): no
    /// later event can fall on an earlier day, so when `day` starts a new newest day, the days
    /// before `keep_from` are dropped first and the new day can take the largest one's table
    /// (in a stream older than the lateness, the day that leaves the window hands its table to
    /// the day that enters it, in the same batch).
    #[inline(always)]
    pub fn insert(&mut self, day: i32, key: u128, keep_from: i32) -> bool {
        // Nearly every event falls on the newest day.
        match self.days.last_mut() {
            Some((d, s)) if *d == day => s.insert(key),
            _ => self.insert_other_day(day, key, keep_from),
        }
    }

    /// [`DedupWindow::insert`] on a day other than the newest one held.
    #[inline(never)]
    fn insert_other_day(&mut self, day: i32, key: u128, keep_from: i32) -> bool {
        debug_assert!(day >= keep_from, "a late event");
        // Most events fall on the newest day or close to it: search from the back.
        let mut i = self.days.len();
        while i > 0 && self.days[i - 1].0 > day {
            i -= 1;
        }
        if i > 0 && self.days[i - 1].0 == day {
            return self.days[i - 1].1.insert(key);
        }
        // A new newest day starts at the size of the previous one (no rehashing as it fills up
        // at a steady rate); an older day starts empty.
        let cap = if i == self.days.len() {
            let cap = self.days.last().map_or(0, |(_, s)| s.len());
            self.drop_before(keep_from);
            i = self.days.len();
            cap
        } else {
            0
        };
        let want = KeySet::slots_for(cap.max(1));
        let mut set = match self.spare.0.take() {
            Some(mut t) if t.slots.len() >= want && t.slots.len() <= 4 * want => {
                t.clear();
                t
            }
            other => {
                self.spare.0 = other;
                KeySet::with_capacity(cap)
            }
        };
        set.insert(key);
        self.days.insert(i, (day, set));
        true
    }

    /// True when `key` was seen on `day`.
    pub fn contains(&self, day: i32, key: u128) -> bool {
        self.days.iter().any(|(d, s)| *d == day && s.contains(key))
    }

    /// Starts loading the slot `key` would take on `day` (see [`KeyTable::prefetch`]).
    #[inline]
    pub fn prefetch(&self, day: i32, key: u128) {
        // Nearly every event is of the newest day: checked apart from the search (as in
        // `insert`), which keeps the common path short (7 instructions per event fewer in
        // callgrind than the search alone).
        match self.days.last() {
            Some((d, s)) if *d == day => s.prefetch(key),
            _ => {
                if let Some((_, s)) = self.days.iter().rev().find(|(d, _)| *d == day) {
                    s.prefetch(key);
                }
            }
        }
    }

    /// Drops the sets of days before `day`.
    pub fn drop_before(&mut self, day: i32) {
        let n = self.days.iter().take_while(|(d, _)| *d < day).count();
        for (_, t) in self.days.drain(..n) {
            if t.slots.len() > self.spare.0.as_ref().map_or(0, |s| s.slots.len()) {
                self.spare.0 = Some(t);
            }
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.days.iter().map(|(_, s)| s.len()).sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.days.iter().all(|(_, s)| s.is_empty())
    }

    /// Number of day sets held.
    pub fn day_count(&self) -> usize {
        self.days.len()
    }

    /// Heap bytes of the sets (their slot arrays, and the spare one kept for reuse) plus the day
    /// list.
    pub fn bytes(&self) -> usize {
        self.days.capacity() * std::mem::size_of::<(i32, KeySet)>()
            + self.days.iter().map(|(_, s)| s.allocation_size()).sum::<usize>()
            + self.spare.0.as_ref().map_or(0, |s| s.allocation_size())
    }

    /// A copy holding only the keys whose account passes `keep`, with account indices mapped
    /// by `remap` (used for snapshots of a subset of accounts).
    pub fn filtered(&self, mut remap: impl FnMut(u32) -> Option<u32>) -> DedupWindow {
        let days = self
            .days
            .iter()
            .map(|(d, s)| {
                let set: KeySet = s
                    .iter()
                    .filter_map(|k| remap(key_account(k)).map(|a| dedup_key(a, k)))
                    .collect();
                (*d, set)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        DedupWindow {
            days,
            spare: Spare::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_detects_repeat_per_day_and_drops_old_days() {
        let mut w = DedupWindow::default();
        let k = dedup_key(7, 0xdead_beef_u128 << 70 | 5);
        assert_eq!(key_account(k), 7);
        assert!(w.insert(10, k, i32::MIN));
        assert!(!w.insert(10, k, i32::MIN));
        assert!(w.insert(9, k, i32::MIN), "another day is another set");
        assert!(w.insert(11, dedup_key(8, 5), i32::MIN));
        assert_eq!(w.len(), 3);
        assert_eq!(w.day_count(), 3);
        w.drop_before(10);
        assert_eq!(w.len(), 2);
        assert!(!w.contains(9, k));
        assert!(w.contains(10, k));
        let only8 = w.filtered(|a| (a == 8).then_some(0));
        assert_eq!(only8.len(), 1);
        assert!(only8.contains(11, dedup_key(0, 5)));
        assert!(w.bytes() > 0);
    }

    #[test]
    fn a_dropped_days_table_is_reused_empty() {
        let mut w = DedupWindow::default();
        for i in 0..1000u128 {
            assert!(w.insert(5, dedup_key(1, i), i32::MIN));
        }
        assert!(w.insert(6, dedup_key(1, 0), i32::MIN));
        let bytes = w.bytes();
        w.drop_before(6);
        assert_eq!(w.bytes(), bytes, "day 5's table is kept as the spare");
        assert_eq!(w.len(), 1);
        // Day 7 starts at day 6's size (1 key): smaller than the spare, which is kept.
        assert!(w.insert(7, dedup_key(1, 0), i32::MIN));
        for i in 1..1000u128 {
            assert!(w.insert(7, dedup_key(1, i), i32::MIN));
        }
        assert!(w.bytes() > bytes);
        // Day 8 starts at day 7's size (1000 keys) and takes the spare (day 5's table), emptied.
        let before = w.bytes();
        for i in 0..1000u128 {
            assert!(w.insert(8, dedup_key(1, i), i32::MIN), "key {i}");
            assert!(!w.insert(8, dedup_key(1, i), i32::MIN));
        }
        assert_eq!(w.len(), 2001);
        assert!(w.bytes() < before + 1000 * 16, "no new table");
        w.drop_before(8);
        assert!(!w.contains(7, dedup_key(1, 999)));
        assert!(w.contains(8, dedup_key(1, 999)));
        assert!(!w.contains(8, dedup_key(1, 1000)));
    }

    #[test]
    fn the_day_leaving_the_window_hands_its_table_to_the_day_entering_it() {
        let mut w = DedupWindow::default();
        for day in 0..3 {
            for i in 0..1000u128 {
                assert!(w.insert(day, dedup_key(1, i), 0));
            }
        }
        let bytes = w.bytes();
        // Day 3 enters with the watermark on day 1: day 0 leaves first, and its table, emptied,
        // holds day 3's keys.
        for i in 0..1000u128 {
            assert!(w.insert(3, dedup_key(1, i), 1));
        }
        assert_eq!(w.day_count(), 3);
        assert_eq!(w.len(), 3000);
        assert_eq!(w.bytes(), bytes, "no new table");
        assert!(!w.contains(0, dedup_key(1, 5)));
        assert!(w.contains(1, dedup_key(1, 5)));
        assert!(!w.insert(3, dedup_key(1, 5), 1));
        // An older day than the newest does not drop anything.
        assert!(w.insert(2, dedup_key(1, 1000), 2));
        assert_eq!(w.day_count(), 3);
    }

    #[test]
    fn key_table_agrees_with_a_hash_set() {
        let mut t = KeyTable::default();
        let mut reference = std::collections::HashSet::new();
        let mut x = 0x1234_5678_9abc_def0_u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Some repeats, some keys differing only in the account part, and the key 0.
            let key = match i % 7 {
                0 => 0,
                1 => dedup_key((i % 5) as u32, (x % 1000) as u128),
                _ => ((x as u128) << 64) | (x.rotate_left(17) as u128),
            };
            assert_eq!(t.insert(key), reference.insert(key), "key {key}");
        }
        assert_eq!(t.len(), reference.len());
        assert!(reference.iter().all(|&k| t.contains(k)));
        assert!(!t.contains(dedup_key(9, 5)));
        let back: KeyTable = postcard::from_bytes(&postcard::to_allocvec(&t).expect("ser")).expect("de");
        assert_eq!(back, t);
        assert_eq!(back.len(), t.len());
        let mut fewer = back.clone();
        fewer.insert(dedup_key(77, 77));
        assert_ne!(fewer, t);
    }
}
