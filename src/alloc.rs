//! The process's memory allocator: mimalloc, its segments backed by transparent huge pages.
//!
//! The scoring core keeps each account's older daily entries in a heap allocation of its own:
//! gigabytes in a 90-day window over a million accounts, read and written at random. On 4 KiB
//! pages nearly every such access also misses the TLB and walks page tables that do not fit
//! the caches; on 2 MiB pages the walks mostly stay cached (BENCHMARKS.md, "Round of
//! 2026-11-24, fifth session"). Declared here, in the library, so that the `vigil` binary and
//! the benchmarks run on the same allocator.
#![allow(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `include/mimalloc.h`, v3 as built here: the option
/// before `mi_option_use_numa_nodes`), which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Lets mimalloc ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for the segments it
/// maps from now on, and keep them whole: freed memory is kept for reuse instead of purged. A
/// purge returns 64 KiB pages to the kernel, which splits the 2 MiB page around them into base
/// pages; the heap parts that an account's entries grow out of are freed all the time, and
/// with purging about a fifth of a 90-day state ended up on base pages (BENCHMARKS.md, "Round
/// of 2026-11-24, seventh session"). The cost: the resident size stays at its high-water mark,
/// which it would reach over time anyway with the kernel's default settings: khugepaged
/// collapses split ranges back into huge pages, refilling the purged ones.
/// Call it first thing in `main`: memory mapped before keeps base pages. A hint: where the
/// kernel has no THP it has no effect.
pub fn use_huge_pages() {
    // SAFETY: `mi_option_set` stores an option value in mimalloc's option table (an atomic
    // store); it touches no allocation, and both options are valid ones (purge delay -1: never).
    unsafe {
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}
