//! A stable 128-bit hash (MurmurHash3 x64_128) for event ids.
//!
//! De-duplication keys are kept in snapshots and restored on other machines and builds, so the
//! hash must not depend on the process (unlike `ahash`, whose output may change with the CPU's
//! features or the crate version). MurmurHash3 is specified byte for byte; the tests check the
//! reference vectors.

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[inline]
fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

#[inline]
fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// MurmurHash3_x64_128 of `bytes` with `seed`, as `(h1, h2)` (the reference's two output words).
pub fn murmur3_x64_128(bytes: &[u8], seed: u64) -> (u64, u64) {
    let mut h1 = seed;
    let mut h2 = seed;
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        let (a, b) = block.split_at(8);
        let k1 = u64::from_le_bytes(a.try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        h1 ^= mix_k1(k1);
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(k2);
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        let mut k2 = 0u64;
        for (i, &b) in tail[8..].iter().enumerate() {
            k2 |= (b as u64) << (8 * i);
        }
        h2 ^= mix_k2(k2);
    }
    if !tail.is_empty() {
        let mut k1 = 0u64;
        for (i, &b) in tail[..tail.len().min(8)].iter().enumerate() {
            k1 |= (b as u64) << (8 * i);
        }
        h1 ^= mix_k1(k1);
    }
    let len = bytes.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The 128-bit hash of an event id, `h2 << 64 | h1`, seed 0.
#[inline]
pub fn event_id_hash(id: &str) -> u128 {
    let (h1, h2) = murmur3_x64_128(id.as_bytes(), 0);
    ((h2 as u128) << 64) | h1 as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // Published MurmurHash3_x64_128 vectors (the reference C++ implementation).
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0),
            (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347)
        );
        assert_eq!(murmur3_x64_128(b"hello", 0).0, 0xcbd8_a7b3_41bd_9b02);
        assert_eq!(
            murmur3_x64_128(b"hello", 42),
            (0xc4b8_b3c9_60af_6f08, 0x2334_b875_b0ef_bc7a)
        );
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
