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

/// Granule of the memory areas mimalloc manages: 512 slices of 64 KiB (`MI_ARENA_MIN_SIZE`).
const ARENA_GRANULE: usize = 32 << 20;

/// Largest area handed to mimalloc at once (its arenas hold at most 16 GiB, `MI_ARENA_MAX_SIZE`,
/// its bitmap included).
const ARENA_MAX: usize = 8 << 30;

/// Size of a base page: the step of the touch that backs up `MADV_POPULATE_WRITE`.
const PAGE: usize = 4096;

/// A memory area pre-faulted by [`pretouch`]: its address range, now mimalloc's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pretouched {
    /// Address of the first byte.
    pub start: usize,
    /// Length in bytes (the request rounded up to 32 MiB).
    pub len: usize,
}

/// Maps `bytes` of memory now, on transparent huge pages where the kernel allows, writes every
/// page of it, and hands it to mimalloc as an arena it uses before asking the OS for more: the
/// allocator's version of the JVM's `-XX:+AlwaysPreTouch`. The scoring core's state grows into
/// fresh memory as accounts gain daily entries, and the first write to a fresh page costs a
/// page fault and a page clear in the middle of a batch, which on a virtual machine whose host
/// reclaims the guest's free memory (balloon free page reporting) runs at about 1.5 ns per byte,
/// a fifth to a third of the batch time on the days when the accounts spill to the heap
/// (BENCHMARKS.md, "Round of 2026-11-24, eighth session"). Sized to the state's peak, it moves
/// that cost to start-up (`[memory] pretouch_mb` in `vigil.toml`). The memory is pinned: mimalloc
/// never returns it to the OS, so the process keeps it for its lifetime.
///
/// Call it early in `main`, after [`use_huge_pages`]. `mib` MiB are rounded up to 32 MiB (the
/// smallest area mimalloc manages); 0 does nothing. More than the machine has available
/// (`MemAvailable` of `/proc/meminfo`) is refused with `InvalidInput` before anything is mapped:
/// writing it would end in the kernel's out-of-memory killer.
pub fn pretouch(mib: usize) -> std::io::Result<Vec<Pretouched>> {
    let too_much =
        |detail: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("pretouch: {detail}"));
    let bytes = mib
        .checked_next_multiple_of(ARENA_GRANULE >> 20)
        .and_then(|m| m.checked_mul(1 << 20))
        .ok_or_else(|| too_much(format!("{mib} MiB is more than the address space")))?;
    if let Some(available) = available_memory()
        && bytes > available
    {
        return Err(too_much(format!(
            "{} MiB asked for, {} MiB available",
            bytes >> 20,
            available >> 20
        )));
    }
    let mut areas = Vec::new();
    let mut left = bytes;
    while left > 0 {
        let len = left.min(ARENA_MAX);
        areas.push(pretouch_area(len)?);
        left -= len;
    }
    Ok(areas)
}

/// Memory the kernel can hand out without swapping (`MemAvailable` of `/proc/meminfo`), in
/// bytes; `None` where it cannot be read (not Linux).
fn available_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// One area of [`pretouch`]: `len` is a multiple of [`ARENA_GRANULE`], at most [`ARENA_MAX`].
fn pretouch_area(len: usize) -> std::io::Result<Pretouched> {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::mem::MaybeUninit;
    // 2 MiB alignment: whole huge pages, and the 64 KiB slice alignment mimalloc needs.
    let layout = Layout::from_size_align(len, 2 << 20).map_err(std::io::Error::other)?;
    // SAFETY: `layout` has a non-zero size. The area comes from the system allocator (not
    // mimalloc, which is about to manage it) and is never freed: mimalloc owns it from the
    // `mi_manage_os_memory_ex` below until the process exits.
    let p = unsafe { System.alloc(layout) };
    if p.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            "pretouch: no memory",
        ));
    }
    // SAFETY: `p` is valid for `len` bytes and nothing else refers to it yet; `MaybeUninit`
    // makes no claim about the contents.
    let area: &[MaybeUninit<u8>] = unsafe { std::slice::from_raw_parts(p.cast(), len) };
    vigil_engine::scoring::mem::huge_pages(area);
    vigil_engine::scoring::mem::populate(area);
    // Where `MADV_POPULATE_WRITE` is missing (Linux before 5.14) the pages are faulted in by a
    // write each; where it worked these writes find them mapped. Zeros keep `is_zero` below
    // true: the area is a fresh anonymous mapping, which reads as zero (glibc serves a request
    // above its mmap threshold, at most 32 MiB, with an `mmap` of its own, and this request is
    // larger: 32 MiB or more plus the alignment).
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `off < len`, inside the area, which nothing else uses yet.
        unsafe { p.add(off).write_volatile(0) };
    }
    let mut id: libmimalloc_sys::mi_arena_id_t = std::ptr::null_mut();
    // SAFETY: the area is 2 MiB-aligned, `len` bytes long (a multiple of mimalloc's minimum),
    // committed (mapped and written), zero, and owned by no one else; pinned tells mimalloc
    // never to decommit it. Not exclusive: every heap allocates from it.
    let managed =
        unsafe { libmimalloc_sys::mi_manage_os_memory_ex(p.cast(), len, true, true, true, -1, false, &mut id) };
    if !managed {
        // SAFETY: mimalloc refused the area, so it is still ours, from `System.alloc(layout)`.
        unsafe { System.dealloc(p, layout) };
        return Err(std::io::Error::other("pretouch: mimalloc did not take the area"));
    }
    Ok(Pretouched { start: p as usize, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of the mapping that holds `addr` (its `Rss` in `/proc/self/smaps`).
    fn resident_around(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("procfs");
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = (a..b).contains(&addr);
            } else if inside && let Some(rest) = line.strip_prefix("Rss:") {
                let kib: usize = rest.trim().trim_end_matches("kB").trim().parse().expect("number");
                return kib * 1024;
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn pretouch_maps_the_whole_area_at_once() {
        assert!(pretouch(0).expect("nothing to do").is_empty());
        let areas = pretouch(100).expect("pretouch");
        // 100 MiB rounds up to 4 granules of 32 MiB, one area.
        assert_eq!(areas.len(), 1);
        assert_eq!(areas[0].len, 128 << 20);
        assert_eq!(areas[0].start % (2 << 20), 0);
        // Resident now, before any allocation touched it: a fresh mapping would hold none of it.
        let resident = resident_around(areas[0].start);
        assert!(resident >= 128 << 20, "{resident} bytes resident");
        // And the allocator works on: a large allocation, written and read back.
        let v: Vec<u64> = (0..(8 << 20)).collect();
        assert_eq!(v.iter().sum::<u64>(), (8 << 20) * ((8 << 20) - 1) / 2);
    }

    #[test]
    fn pretouch_refuses_more_than_the_machine_has_before_mapping_anything() {
        for mib in [usize::MAX, usize::MAX >> 20, 1 << 30] {
            let err = pretouch(mib).expect_err("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{mib}: {err}");
            assert!(err.to_string().starts_with("pretouch: "), "{err}");
        }
        // 1 PiB: the message says what is available.
        let err = pretouch(1 << 30).expect_err("refused");
        assert!(err.to_string().contains("MiB available"), "{err}");
    }
}
