//! A stable 128-bit hash (XXH3-128) for event ids.
//!
//! De-duplication keys are kept in snapshots and restored on other machines and builds, so the
//! hash must not depend on the process (unlike `ahash`, whose output may change with the CPU's
//! features or the crate version). XXH3 is specified byte for byte (its output is the same on
//! every platform and instruction set); the tests check vectors of the reference C library.
//! It replaced MurmurHash3 x64_128 (snapshot version 3): for ids of 17-128 bytes it is a few
//! multiply-folds instead of a block loop and a byte-wise tail.

use twox_hash::XxHash3_128;

/// The 128-bit hash of an event id: XXH3-128, seed 0.
#[inline]
pub fn event_id_hash(id: &str) -> u128 {
    XxHash3_128::oneshot(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // From the reference C library (libxxhash through Python's `xxhash` 3.x,
        // `xxh3_128_hexdigest`), one per input-length branch of XXH3: 0, 4-8, 17-128 and
        // 129-240 bytes.
        assert_eq!(event_id_hash(""), 0x99aa06d3014798d86001c324468d497f);
        assert_eq!(event_id_hash("hello"), 0xb5e9c1ad071b3e7fc779cfaa5e523818);
        assert_eq!(
            event_id_hash("evt-0000001-abcdefgh"),
            0xe7a76e3870ccae72bceb58bec089e56f
        );
        assert_eq!(
            event_id_hash("The quick brown fox jumps over the lazy dog"),
            0xddd650205ca3e7fa24a1cc2e3a8a7651
        );
        let long: String = (0..200u8).map(|b| (b % 128) as char).collect();
        assert_eq!(long.len(), 200);
        assert_eq!(event_id_hash(&long), 0x2c7e11e68e49e59fdeaafff620ca67b0);
    }

    #[test]
    fn all_tail_lengths_differ() {
        let s = "0123456789abcdefghijklmnopqrstuv";
        let mut seen = std::collections::HashSet::new();
        for n in 0..=s.len() {
            assert!(seen.insert(event_id_hash(&s[..n])), "length {n}");
        }
    }
}
