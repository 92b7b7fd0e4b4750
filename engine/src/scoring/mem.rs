//! Memory hints for the core's large tables: transparent huge pages, populating fresh memory and
//! software prefetch. Public for the `vigil` binary, whose allocator pre-touches its memory with
//! the same hints.
//!
//! `unsafe` lives here and nowhere else in the scoring core because both hints can only be
//! reached through it (`madvise` is a foreign function; `_mm_prefetch` needs a target-feature
//! context, which a safe caller cannot enter without `unsafe`), although neither reads or writes
//! memory: they change where and when memory is mapped or cached, never what it holds.
#![allow(unsafe_code)]

/// Size of a transparent huge page (x86-64, and the usual aarch64 configuration).
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned part of `buf` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`; on hosts where THP is `madvise`, large allocations otherwise get
/// 4 KiB pages and every random access takes a TLB miss and a page walk). Call it before the
/// memory is first written: pages faulted in afterwards are huge. Buffers smaller than 4 MiB are
/// left alone. A hint only: failures (no THP support, not Linux) are ignored.
pub fn huge_pages<T>(buf: &[T]) {
    if std::mem::size_of_val(buf) < 2 * HUGE_PAGE {
        return;
    }
    if let Some((first, len)) = inner_range(buf, HUGE_PAGE) {
        advise(first, len, MADV_HUGEPAGE);
    }
}

/// The `align`-aligned part of `buf`'s bytes as `(start, length)`, if not empty.
fn inner_range<T>(buf: &[T], align: usize) -> Option<(usize, usize)> {
    let start = buf.as_ptr() as usize;
    let first = start.next_multiple_of(align);
    let end = (start + std::mem::size_of_val(buf)) / align * align;
    (end > first).then(|| (first, end - first))
}

/// Asks the kernel to map every page of `buf` writable now (`madvise(MADV_POPULATE_WRITE)`,
/// Linux 5.14), for a freshly allocated zeroed buffer that is about to be written all over in
/// random order: one call maps the pages in a batch, where first touches would take a page fault
/// each, and two for a page that is read before it is written (a hash table's probe reads a slot
/// before it writes it: the read maps the shared zero page, the write then copies it). The
/// contents stay zero. A hint only: failures (older kernel, not Linux) are ignored.
pub fn populate<T>(buf: &[T]) {
    if let Some((first, len)) = inner_range(buf, PAGE) {
        advise(first, len, MADV_POPULATE_WRITE);
    }
}

/// Size of a base page (x86-64; a larger base page only makes the hinted range a subset).
const PAGE: usize = 4096;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    /// The C library's `madvise(2)` (std links the C library on Linux).
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
}

/// `MADV_HUGEPAGE` of Linux's `<asm-generic/mman-common.h>` (the same on every architecture).
const MADV_HUGEPAGE: std::ffi::c_int = 14;
/// `MADV_POPULATE_WRITE` of the same header.
const MADV_POPULATE_WRITE: std::ffi::c_int = 23;

#[cfg(target_os = "linux")]
fn advise(addr: usize, len: usize, advice: std::ffi::c_int) {
    // SAFETY: both advices used here leave the contents and the validity of the memory as they
    // are (`MADV_HUGEPAGE` marks the range as eligible for huge pages; `MADV_POPULATE_WRITE`
    // faults its pages in as a write would, without writing), and the range lies inside a live
    // allocation (page-aligned, as `madvise` requires). The result is deliberately ignored (a
    // hint).
    unsafe {
        madvise(addr as *mut std::ffi::c_void, len, advice);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_addr: usize, _len: usize, _advice: std::ffi::c_int) {}

/// Starts loading the cache line holding `*r` (and, with `lines` > 1, the lines after it) into
/// all cache levels without waiting for it: a loop can issue many of these and the misses
/// overlap, while the instructions retire at once (unlike loads).
#[inline(always)]
pub fn prefetch<T>(r: &T, lines: usize) {
    let p = r as *const T as *const i8;
    for i in 0..lines {
        prefetch_addr(p.wrapping_add(64 * i));
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_addr(p: *const i8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: SSE is part of the x86-64 baseline, so the intrinsic's target feature is always
    // present; a prefetch never faults and has no architectural effect, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_addr(_p: *const i8) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_leave_contents_alone() {
        let mut v: Vec<u64> = Vec::with_capacity(1 << 20);
        huge_pages(v.spare_capacity_mut());
        v.extend(0..1 << 20);
        for (i, x) in v.iter().enumerate().step_by(4096) {
            prefetch(x, 3);
            assert_eq!(*x, i as u64);
        }
        huge_pages(&v[..10]);
        let z = vec![0u128; 1 << 16];
        populate(&z);
        assert!(z.iter().all(|&x| x == 0));
        populate(&z[..3]);
    }
}
