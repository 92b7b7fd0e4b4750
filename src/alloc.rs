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

/// Lets mimalloc ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for the segments it
/// maps from now on. Call it first thing in `main`: memory mapped before keeps base pages. A
/// hint: where the kernel has no THP it has no effect.
pub fn use_huge_pages() {
    // SAFETY: `mi_option_set` stores an option value in mimalloc's option table (an atomic
    // store); it touches no allocation, and `mi_option_allow_large_os_pages` is a valid option.
    unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) }
}
