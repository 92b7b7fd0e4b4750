//! An account's daily entries: one per (day of event time, kind) with events, the newest inside
//! the account's state and the older ones on the heap, with running sums that answer the recent
//! windows without reading the entries.

use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// Days are stored biased by this in entry keys; days beyond ±2^27 (367,000 years) are clamped.
pub(super) const DAY_BIAS: i64 = 1 << 27;

/// No day (the newest day of an empty ring).
const NO_DAY: i32 = i32::MIN;

/// Kind codes are stored xor this in entry keys, which puts activity (code 1) at 15.
const KIND_XOR: u8 = 15 ^ EventKind::Activity as u8;

/// The key of `(day, kind)`: sorting by key sorts by day, then by `kind ^ KIND_XOR`, so that a
/// day's activity entry (most events) is its last: an update's search from the newest entry back
/// finds it first.
#[inline]
pub(super) fn entry_key(day: i32, kind: u8) -> u32 {
    day_end_key(day) & !15 | (kind ^ KIND_XOR) as u32
}

/// The greatest key of `day` (that of activity).
#[inline]
pub(super) fn day_end_key(day: i32) -> u32 {
    ((((day as i64) + DAY_BIAS) as u32) << 4) | 15
}

/// One (day, kind) with events: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayEntry {
    /// `(day + 2^27) << 4 | (kind ^ KIND_XOR)`: see [`entry_key`].
    pub(super) key: u32,
    /// Events of this kind on this day (saturating).
    pub(super) count: u32,
    /// Sum of the kind's value field, fixed point (saturating).
    pub(super) amount: u64,
}

impl DayEntry {
    /// The day number.
    #[inline]
    pub fn day(&self) -> i32 {
        ((self.key >> 4) as i64 - DAY_BIAS) as i32
    }

    /// The kind code (or `KIND_SURVEY_NO_SCORE`).
    #[inline]
    pub fn kind(&self) -> u8 {
        (self.key & 15) as u8 ^ KIND_XOR
    }
}

const EMPTY_ENTRY: DayEntry = DayEntry {
    key: 0,
    count: 0,
    amount: 0,
};

/// Entries held inline in the account's state: the newest ones, which most updates read.
pub const INLINE_ENTRIES: usize = 7;

/// Inline entries moved to the heap at once when a new entry finds the inline ones full.
const ARCHIVE_ENTRIES: usize = 4;

/// Capacity of an account's first heap part, in entries: three moves of inline entries (192
/// bytes; a first part of twice the inline capacity took more fresh memory per account, one of
/// 8 entries more reallocations).
const FIRST_HEAP: usize = 3 * ARCHIVE_ENTRIES;

/// Days counted by `DayRing`: the short and spike windows up to this long are answered
/// without reading any entry.
pub const RING_DAYS: usize = 8;

const ACTIVITY: u8 = EventKind::Activity as u8;
const COMPLAINT: u8 = EventKind::Complaint as u8;

/// Per-day counts of activity and of complaints over the newest [`RING_DAYS`] days with either:
/// the short window's activity and the spike window's complaints without a walk over the
/// entries. A slot at its type's maximum means "saturated, unknown" (the entries answer then).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct DayRing {
    /// Activity count of day `d` at `d mod RING_DAYS`, for the days `(day − RING_DAYS, day]`.
    activity: [u16; RING_DAYS],
    /// Complaint count of day `d`, the same way.
    complaints: [u8; RING_DAYS],
    /// The newest day counted (`NO_DAY` when none).
    day: i32,
}

impl DayRing {
    const EMPTY: DayRing = DayRing {
        activity: [0; RING_DAYS],
        complaints: [0; RING_DAYS],
        day: NO_DAY,
    };

    #[inline]
    fn slot(day: i32) -> usize {
        day.rem_euclid(RING_DAYS as i32) as usize
    }

    /// Adds `added` events of `kind` (activity or complaint) on `day`, moving the ring forward
    /// when `day` is newer than its newest.
    #[inline]
    fn add(&mut self, day: i32, kind: u8, added: u32) {
        if self.day == NO_DAY || day > self.day {
            if self.day == NO_DAY || day - self.day >= RING_DAYS as i32 {
                *self = DayRing { day, ..DayRing::EMPTY };
            } else {
                for d in self.day + 1..=day {
                    self.activity[Self::slot(d)] = 0;
                    self.complaints[Self::slot(d)] = 0;
                }
                self.day = day;
            }
        } else if day <= self.day - RING_DAYS as i32 {
            return; // before the ring: in no window the ring answers for
        }
        let s = Self::slot(day);
        if kind == ACTIVITY {
            self.activity[s] = self.activity[s].saturating_add(added.min(u16::MAX as u32) as u16);
        } else {
            self.complaints[s] = self.complaints[s].saturating_add(added.min(u8::MAX as u32) as u8);
        }
    }

    /// Forgets the days before `day` (evicted).
    fn clear_before(&mut self, day: i32) {
        if self.day == NO_DAY {
            return;
        }
        for d in (self.day - RING_DAYS as i32 + 1)..day.min(self.day + 1) {
            self.activity[Self::slot(d)] = 0;
            self.complaints[Self::slot(d)] = 0;
        }
    }

    /// The slots (bit `d mod RING_DAYS`) of the ring's days within `[from, now_day]`, when the
    /// ring answers for that window: `now_day` is not before its newest day and the window is at
    /// most [`RING_DAYS`] long. No slot when the ring counted nothing.
    #[inline]
    fn slots(&self, from: i32, now_day: i32) -> Option<u8> {
        if self.day == NO_DAY {
            return Some(0);
        }
        if now_day < self.day || now_day - from >= RING_DAYS as i32 {
            return None;
        }
        let lo = from.max(self.day - RING_DAYS as i32 + 1);
        if lo > self.day {
            return Some(0);
        }
        let days = (self.day - lo + 1) as u32;
        Some((((1u32 << days) - 1) as u8).rotate_left(Self::slot(lo) as u32))
    }

    /// Activity of `[from, now_day]`, when the ring answers and no day in it saturated.
    #[inline]
    fn activity(&self, from: i32, now_day: i32) -> Option<u32> {
        let slots = self.slots(from, now_day)?;
        // A fixed-length pass over every slot (vectorized), the others masked out.
        let (mut sum, mut saturated) = (0u32, false);
        for (i, &c) in self.activity.iter().enumerate() {
            let c = if slots & (1 << i) != 0 { c } else { 0 };
            saturated |= c == u16::MAX;
            sum += c as u32;
        }
        (!saturated).then_some(sum)
    }

    /// Complaints of `[from, now_day]` and the first day with one, when the ring answers and no
    /// day in it saturated.
    #[inline]
    fn complaints(&self, from: i32, now_day: i32) -> Option<(u32, Option<i32>)> {
        let slots = self.slots(from, now_day)?;
        let (mut sum, mut saturated, mut with) = (0u32, false, 0u8);
        for (i, &c) in self.complaints.iter().enumerate() {
            let c = if slots & (1 << i) != 0 { c } else { 0 };
            saturated |= c == u8::MAX;
            with |= ((c != 0) as u8) << i;
            sum += c as u32;
        }
        if saturated {
            return None;
        }
        // The first day with a complaint: the newest day's slot, less the distance back to the
        // oldest slot with one (slots rotated so that bit 7 is the newest day).
        let first = (with != 0).then(|| {
            let back = with.rotate_right((Self::slot(self.day) + 1) as u32 % RING_DAYS as u32);
            self.day - (RING_DAYS as i32 - 1) + back.trailing_zeros() as i32
        });
        Some((sum, first))
    }

    /// The ring of `entries` (ascending).
    fn of<'a>(entries: impl DoubleEndedIterator<Item = &'a DayEntry> + Clone) -> DayRing {
        let counted = |e: &&DayEntry| e.kind() == ACTIVITY || e.kind() == COMPLAINT;
        let mut ring = DayRing::EMPTY;
        if let Some(newest) = entries.clone().rev().find(counted).map(|e| e.day()) {
            let from = newest - RING_DAYS as i32 + 1;
            for e in entries.rev().take_while(|e| e.day() >= from).filter(counted) {
                ring.add(e.day(), e.kind(), e.count);
            }
        }
        ring
    }
}

/// An account's daily entries, ascending by key, in two parts: up to [`INLINE_ENTRIES`] of the
/// newest inside the account's state (the same cache lines as the rest of it, no allocation), and
/// the older ones on the heap, each below every inline key. Updates land on recent days (the
/// lateness window), so they mostly read and write the inline part only; when it is full, its
/// oldest `ARCHIVE_ENTRIES` move to the end of the heap part. The heap part is a ring buffer:
/// eviction moves its start and leaves the entries where they are (a `memmove` of the whole
/// part per account and day was the most of an update in a full 90-day window), and appends wrap
/// around its end. Alongside, running sums kept by
/// every change: the held activity count (the long window's activity) and a `DayRing` (the
/// short window's activity, the spike window's complaints). Serializes as one sequence, like a
/// `Vec<DayEntry>`; the sums are derived.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Entries {
    ring: DayRing,
    /// Number of inline entries; 0 only when there is no entry at all.
    len: u8,
    /// Index in `heap` of the oldest heap entry: the held ones run from it for `heap_len`,
    /// wrapping at the end. Always 0 in a heap of over [`MOVING_HEAD_MAX`] entries (eviction moves
    /// those down instead).
    heap_head: u16,
    /// Sum of the counts of the activity entries held, saturating at `u32::MAX` (then unknown).
    activity: u32,
    heap_len: u32,
    /// The older entries: `heap_len` of them from `heap_head` on, wrapping; the rest is spare
    /// capacity (a boxed slice, a `u32` length and a `u16` start: 8 bytes fewer than a
    /// `VecDeque` in the state's hot lines).
    heap: Box<[DayEntry]>,
    /// The newest entries, ascending.
    inline: [DayEntry; INLINE_ENTRIES],
}

impl Default for Entries {
    fn default() -> Self {
        Entries {
            ring: DayRing::EMPTY,
            len: 0,
            heap_head: 0,
            activity: 0,
            heap_len: 0,
            heap: Box::default(),
            inline: [EMPTY_ENTRY; INLINE_ENTRIES],
        }
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// Iterator over an account's entries, oldest first.
pub type EntryIter<'a> = std::iter::Chain<
    std::iter::Chain<std::slice::Iter<'a, DayEntry>, std::slice::Iter<'a, DayEntry>>,
    std::slice::Iter<'a, DayEntry>,
>;

/// The largest heap part whose start moves on eviction (one that `heap_head` can index).
const MOVING_HEAD_MAX: usize = u16::MAX as usize + 1;

impl Entries {
    /// The heap (older) entries, in two slices: from the start to the end of the buffer, and the
    /// rest, wrapped around to its beginning.
    #[inline]
    fn older(&self) -> (&[DayEntry], &[DayEntry]) {
        let (head, h, cap) = (self.heap_head as usize, self.heap_len as usize, self.heap.len());
        if head + h <= cap {
            (&self.heap[head..head + h], &[])
        } else {
            (&self.heap[head..], &self.heap[..head + h - cap])
        }
    }

    /// The index in `heap` of the `k`-th held heap entry (`k` up to `heap_len`, the slot after
    /// the newest).
    #[inline]
    fn heap_slot(&self, k: usize) -> usize {
        let i = self.heap_head as usize + k;
        if i >= self.heap.len() { i - self.heap.len() } else { i }
    }

    /// The newest heap entry.
    #[inline]
    fn older_last(&self) -> Option<&DayEntry> {
        let h = self.heap_len as usize;
        (h > 0).then(|| &self.heap[self.heap_slot(h - 1)])
    }

    /// The inline entries: the newest ones, below which every other entry lies.
    #[inline]
    pub fn recent(&self) -> &[DayEntry] {
        &self.inline[..self.len as usize]
    }

    /// All entries, ascending by key.
    #[inline]
    pub fn iter(&self) -> EntryIter<'_> {
        let (a, b) = self.older();
        a.iter().chain(b).chain(self.recent())
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap_len as usize + self.len as usize
    }

    /// True when there is no entry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest entry.
    #[inline]
    pub fn first(&self) -> Option<&DayEntry> {
        if self.heap_len > 0 {
            Some(&self.heap[self.heap_head as usize])
        } else {
            self.recent().first()
        }
    }

    /// The newest entry.
    #[inline]
    pub fn last(&self) -> Option<&DayEntry> {
        self.recent().last()
    }

    /// The number of entries of days before `day`, counted from the oldest: when they are the
    /// days leaving the window, a few entries of a list up to the long window's length (a binary
    /// search would take a cache miss per probe).
    pub fn count_before(&self, day: i32) -> usize {
        self.iter().take_while(|e| e.day() < day).count()
    }

    /// Adds one event to the entry `key` with `amount` (saturating), creating the entry if
    /// needed.
    #[inline]
    pub fn add(&mut self, key: u32, amount: u64) {
        let n = self.len as usize;
        debug_assert!(n > 0 || self.heap_len == 0);
        // Searched from the newest back: most keys are of the newest day, so only the newest
        // entries' line is read.
        let mut i = n;
        while i > 0 && self.inline[i - 1].key > key {
            i -= 1;
        }
        // The inline part takes every key from its oldest on, and any key after the heap's.
        if i > 0 || self.older_last().is_none_or(|e| key > e.key) {
            if i > 0 && self.inline[i - 1].key == key {
                let added = bump(&mut self.inline[i - 1], amount);
                let e = self.inline[i - 1];
                self.count(&e, added);
                return;
            }
            let e = DayEntry { key, count: 1, amount };
            self.count(&e, 1);
            if n < INLINE_ENTRIES {
                // Most entries are of the newest day and go last: no move (and no `memmove`).
                if i < n {
                    self.inline.copy_within(i..n, i + 1);
                }
                self.inline[i] = e;
                self.len += 1;
            } else {
                self.archive(i, e);
            }
        } else {
            self.add_older(key, amount);
        }
    }

    /// [`Entries::add`] of a key at or before the heap part's newest.
    #[inline(never)]
    fn add_older(&mut self, key: u32, amount: u64) {
        // Rare (older than the inline entries): search and insert in one slice.
        self.make_contiguous();
        let h = self.heap_len as usize;
        let mut i = h;
        while i > 0 && self.heap[i - 1].key > key {
            i -= 1;
        }
        if i > 0 && self.heap[i - 1].key == key {
            let added = bump(&mut self.heap[i - 1], amount);
            let e = self.heap[i - 1];
            self.count(&e, added);
        } else {
            let e = DayEntry { key, count: 1, amount };
            self.count(&e, 1);
            self.reserve(1);
            self.heap.copy_within(i..h, i + 1);
            self.heap[i] = e;
            self.heap_len += 1;
        }
    }

    /// The inline part is full and `e` goes at inline position `i`: moves the oldest
    /// [`ARCHIVE_ENTRIES`] of the part to the end of the heap part, with `e` when it is older
    /// than the ones that stay.
    #[cold]
    #[inline(never)]
    fn archive(&mut self, i: usize, e: DayEntry) {
        const M: usize = ARCHIVE_ENTRIES;
        let n = self.len as usize;
        let moved = self.inline;
        if i < M {
            self.push_older(&[&moved[..i], &[e], &moved[i..M]]);
            self.inline.copy_within(M..n, 0);
            self.len = (n - M) as u8;
        } else {
            self.push_older(&[&moved[..M]]);
            self.inline.copy_within(M..i, 0);
            self.inline.copy_within(i..n, i - M + 1);
            self.inline[i - M] = e;
            self.len = (n - M + 1) as u8;
        }
    }

    /// Appends `parts` to the heap part (a few entries, each to its slot: the part may wrap).
    fn push_older(&mut self, parts: &[&[DayEntry]]) {
        self.reserve(parts.iter().map(|p| p.len()).sum());
        for &e in parts.iter().flat_map(|p| p.iter()) {
            let i = self.heap_slot(self.heap_len as usize);
            self.heap[i] = e;
            self.heap_len += 1;
        }
    }

    /// Room on the heap for `more` entries (doubling, from [`FIRST_HEAP`]); a grown part starts
    /// at index 0.
    fn reserve(&mut self, more: usize) {
        let h = self.heap_len as usize;
        if h + more > self.heap.len() {
            let cap = (2 * self.heap.len()).max(FIRST_HEAP).max(h + more);
            let mut grown = vec![EMPTY_ENTRY; cap].into_boxed_slice();
            let (a, b) = self.older();
            grown[..a.len()].copy_from_slice(a);
            grown[a.len()..h].copy_from_slice(b);
            self.heap = grown;
            self.heap_head = 0;
        }
    }

    /// Moves the heap part's entries to start at index 0.
    fn make_contiguous(&mut self) {
        let head = self.heap_head as usize;
        if head != 0 {
            self.heap.rotate_left(head);
            self.heap_head = 0;
        }
    }

    /// Keeps the running sums: the activity sum and the ring.
    #[inline]
    fn count(&mut self, e: &DayEntry, added: u32) {
        let k = e.kind();
        if k == ACTIVITY || k == COMPLAINT {
            if k == ACTIVITY {
                self.activity = self.activity.saturating_add(added);
            }
            self.ring.add(e.day(), k, added);
        }
    }

    /// Sum of the counts of the activity entries held; `None` when it passed `u32::MAX`.
    #[inline]
    pub fn activity(&self) -> Option<u32> {
        (self.activity != u32::MAX).then_some(self.activity)
    }

    /// Activity of the days `[from, now_day]` from the ring, when it answers: `now_day` is not
    /// before the newest day counted, the window is at most [`RING_DAYS`] days, and no day in it
    /// saturated.
    #[inline]
    pub fn ring_activity(&self, from: i32, now_day: i32) -> Option<u32> {
        self.ring.activity(from, now_day)
    }

    /// Complaints of the days `[from, now_day]` and the first day with one, from the ring, when
    /// it answers (as for [`Entries::ring_activity`]).
    #[inline]
    pub fn ring_complaints(&self, from: i32, now_day: i32) -> Option<(u32, Option<i32>)> {
        self.ring.complaints(from, now_day)
    }

    /// The activity sum recomputed from entries.
    fn sum_activity<'a>(entries: impl Iterator<Item = &'a DayEntry>) -> u32 {
        entries
            .filter(|e| e.kind() == ACTIVITY)
            .fold(0u32, |a, e| a.saturating_add(e.count))
    }

    /// Removes the first `n` entries (whole days: the ones before a day): the heap part's start
    /// moves past them (no entry moves); the heap part is released when the rest fits inline.
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        if n == 0 {
            return;
        }
        let kept_from = self.iter().nth(n).map_or(i32::MAX, |e| e.day());
        self.activity = match self.activity() {
            Some(a) => a - Self::sum_activity(self.iter().take(n)),
            None => Self::sum_activity(self.iter().skip(n)),
        };
        self.ring.clear_before(kept_from);
        let h = self.heap_len as usize;
        if n < h {
            if self.heap.len() <= MOVING_HEAD_MAX {
                self.heap_head = self.heap_slot(n) as u16;
            } else {
                self.heap.copy_within(n..h, 0); // a heap part this large starts at 0
            }
            self.heap_len -= n as u32;
        } else {
            let m = n - h;
            let len = self.len as usize;
            self.inline.copy_within(m..len, 0);
            self.len = (len - m) as u8;
            self.heap_len = 0;
        }
        let (h, len) = (self.heap_len as usize, self.len as usize);
        if h + len <= INLINE_ENTRIES {
            self.inline.copy_within(..len, h);
            for k in 0..h {
                self.inline[k] = self.heap[self.heap_slot(k)];
            }
            self.len = (h + len) as u8;
            self.heap = Box::default();
            self.heap_len = 0;
            self.heap_head = 0;
        }
    }

    /// Reads the inline entries' lines, for a pass of independent loads ahead of the dependent
    /// work.
    #[inline]
    pub fn touch(&self) -> u32 {
        self.inline[0].key ^ self.inline[INLINE_ENTRIES - 1].key
    }

    /// Prefetches the heap slots an update may write: when the inline part is full, a new entry
    /// moves its oldest [`ARCHIVE_ENTRIES`] to the slots after the heap part's newest (the
    /// lines of those slots only: not the newest entry's, which the move does not read). When
    /// the part is full it grows instead, into a new allocation.
    #[inline]
    pub fn prefetch_heap(&self) {
        let h = self.heap_len as usize;
        if self.len as usize == INLINE_ENTRIES && h + ARCHIVE_ENTRIES <= self.heap.len() {
            super::mem::prefetch(&self.heap[self.heap_slot(h)], 1);
            super::mem::prefetch(&self.heap[self.heap_slot(h + ARCHIVE_ENTRIES - 1)], 1);
        }
    }

    /// Prefetches up to `lines` lines of the heap part back from its newest entry (whatever the
    /// inline part holds), within the part's allocation.
    #[inline]
    pub fn prefetch_newest_older(&self, lines: usize) {
        let (a, b) = self.older();
        // The newest entries are at the end of `b` when the part wraps, else of `a`.
        let part = if b.is_empty() { a } else { b };
        if let Some(last) = part.last() {
            const PER_LINE: usize = 64 / std::mem::size_of::<DayEntry>();
            let back = (lines * PER_LINE).min(part.len()) - 1;
            super::mem::prefetch(&part[part.len() - 1 - back], lines.min(back / PER_LINE + 1));
            super::mem::prefetch(last, 1);
        }
    }

    /// Prefetches the oldest entry's line: eviction reads the entries from there.
    #[inline]
    pub fn prefetch_front(&self) {
        if let Some(e) = self.first() {
            super::mem::prefetch(e, 1);
        }
    }

    /// Prefetches every line of the heap part, for a pass that reads all entries (the daily
    /// sweep's window sums) a few accounts ahead.
    #[inline]
    pub fn prefetch_older(&self) {
        let (a, b) = self.older();
        for part in [a, b] {
            if let (Some(first), Some(last)) = (part.first(), part.last()) {
                let lines = (last as *const DayEntry as usize) / 64 - (first as *const DayEntry as usize) / 64 + 1;
                super::mem::prefetch(first, lines);
            }
        }
    }

    /// Heap bytes (the older entries and their spare capacity).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.heap)
    }

    fn from_vec(v: Vec<DayEntry>) -> Self {
        let k = v.len().min(INLINE_ENTRIES);
        let h = v.len() - k;
        let mut out = Entries::default();
        out.inline[..k].copy_from_slice(&v[h..]);
        out.len = k as u8;
        if h > 0 {
            out.heap = v[..h].into();
            out.heap_len = h as u32;
        }
        out.activity = Self::sum_activity(out.iter());
        out.ring = DayRing::of(out.iter());
        out
    }
}

/// Adds one event to `e` with `amount` (both saturating); returns the count added (0 or 1).
#[inline]
fn bump(e: &mut DayEntry, amount: u64) -> u32 {
    let count = e.count.saturating_add(1);
    let added = count - e.count;
    e.count = count;
    e.amount = e.amount.saturating_add(amount);
    added
}

impl Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Entries::from_vec(Vec::<DayEntry>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_key_round_trips_and_sorts() {
        for (d, k) in [(0, 0u8), (-5, 3), (20_000, 12), (-(1 << 27), 13), ((1 << 27) - 1, 15)] {
            let e = DayEntry {
                key: entry_key(d, k),
                count: 1,
                amount: 0,
            };
            assert_eq!((e.day(), e.kind()), (d, k));
        }
        assert!(entry_key(-1, 0) < entry_key(0, 15));
        // Within a day, activity last.
        assert!(
            (0..16)
                .filter(|&k| k != ACTIVITY)
                .all(|k| entry_key(5, k) < entry_key(5, ACTIVITY))
        );
        assert_eq!(entry_key(5, ACTIVITY), day_end_key(5));
        assert!((0..16).all(|k| entry_key(5, k) <= day_end_key(5) && entry_key(5, k) > day_end_key(4)));
    }

    #[test]
    fn a_saturated_ring_day_sends_the_window_to_the_entries() {
        let mut e = Entries::default();
        for _ in 0..300 {
            e.add(entry_key(10, COMPLAINT), 0);
        }
        e.add(entry_key(11, COMPLAINT), 0);
        e.add(entry_key(11, ACTIVITY), 0);
        assert_eq!(e.ring_complaints(10, 12), None, "day 10 saturated");
        assert_eq!(e.ring_complaints(11, 12), Some((1, Some(11))));
        assert_eq!(e.ring_activity(10, 12), Some(1));
        // Before the newest day counted, or longer than the ring: the entries answer.
        assert_eq!(e.ring_activity(10, 10), None);
        assert_eq!(e.ring_activity(5, 12), Some(1), "8 days");
        assert_eq!(e.ring_activity(4, 12), None, "9 days");
    }

    /// One step of [`entries_follow_a_sorted_map`]: add an event to `(day, kind)`, or evict the
    /// days before `day`.
    #[derive(Debug, Clone)]
    enum Step {
        Add(i32, u8, u64),
        Evict(i32),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let kind = prop_oneof![Just(ACTIVITY), Just(COMPLAINT), 0u8..14];
        prop_oneof![
            12 => (0i32..40, kind.clone(), 0u64..1000).prop_map(|(d, k, a)| Step::Add(d, k, a)),
            // Most events on the newest days, as in a stream.
            12 => (30i32..40, kind, 0u64..1000).prop_map(|(d, k, a)| Step::Add(d, k, a)),
            1 => (0i32..40).prop_map(Step::Evict),
        ]
    }

    proptest::proptest! {
        /// The two parts, the running activity sum and the ring agree with a sorted map of the
        /// same events after every step, and after a serde round trip.
        #[test]
        fn entries_follow_a_sorted_map(steps in proptest::collection::vec(step(), 1..200)) {
            use std::collections::BTreeMap;
            let mut e = Entries::default();
            let mut model: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
            let check = |e: &Entries, model: &BTreeMap<u32, (u32, u64)>| {
                let got: Vec<(u32, u32, u64)> = e.iter().map(|x| (x.key, x.count, x.amount)).collect();
                let want: Vec<(u32, u32, u64)> = model.iter().map(|(&k, &(c, a))| (k, c, a)).collect();
                assert_eq!(got, want);
                assert_eq!(e.len(), want.len());
                assert!(e.heap_len == 0 || e.len as usize > 0, "a heap part only below inline entries");
                let sum = |kind: u8, from: i32, to: i32| -> u32 {
                    e.iter()
                        .filter(|x| x.kind() == kind && x.day() >= from && x.day() <= to)
                        .map(|x| x.count)
                        .sum()
                };
                let first_complaint = |from: i32, to: i32| {
                    e.iter().find(|x| x.kind() == COMPLAINT && x.day() >= from && x.day() <= to).map(|x| x.day())
                };
                assert_eq!(e.activity(), Some(sum(ACTIVITY, i32::MIN, i32::MAX)));
                let newest = if e.ring.day == NO_DAY { 0 } else { e.ring.day };
                for now_day in newest..newest + 10 {
                    for len in 1..=RING_DAYS as i32 {
                        let from = now_day - len + 1;
                        assert_eq!(e.ring_activity(from, now_day), Some(sum(ACTIVITY, from, now_day)), "{from}..={now_day}");
                        assert_eq!(
                            e.ring_complaints(from, now_day),
                            Some((sum(COMPLAINT, from, now_day), first_complaint(from, now_day))),
                            "{from}..={now_day}"
                        );
                    }
                    if e.ring.day != NO_DAY {
                        assert_eq!(e.ring_activity(now_day - RING_DAYS as i32, now_day), None, "too long");
                    }
                }
            };
            for s in steps {
                match s {
                    Step::Add(day, kind, amount) => {
                        e.add(entry_key(day, kind), amount);
                        let m = model.entry(entry_key(day, kind)).or_insert((0, 0));
                        m.0 += 1;
                        m.1 += amount;
                    }
                    Step::Evict(day) => {
                        e.drop_front(e.count_before(day));
                        model.retain(|&k, _| DayEntry { key: k, count: 0, amount: 0 }.day() >= day);
                    }
                }
                check(&e, &model);
            }
            let back: Entries = postcard::from_bytes(&postcard::to_allocvec(&e).expect("ser")).expect("de");
            assert_eq!(&back, &e);
            check(&back, &model);
        }
    }
}
