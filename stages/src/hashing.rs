//! Stable 64-bit hashing shared by the stages: word hashes and the hash of a window of
//! them. Changing anything here changes dedup signatures and decontamination indexes.

use xxhash_rust::xxh3::xxh3_64_with_seed;

const COMBINE: u64 = 0x9E37_79B9_7F4A_7C15;

/// The hash of a word (any bytes) under a seed.
pub fn word_hash(word: &str, seed: u64) -> u64 {
    xxh3_64_with_seed(word.as_bytes(), seed)
}

/// One hash for a window of word hashes: a polynomial in them, then splitmix64's
/// finaliser (so windows of different lengths or orders differ).
pub fn combine(window: &[u64]) -> u64 {
    let folded = window.iter().fold(0u64, |acc, &word| {
        acc.wrapping_mul(COMBINE).wrapping_add(word)
    });
    mix(folded ^ window.len() as u64)
}

/// [`combine`] of every window of `n` consecutive hashes, computed incrementally (the
/// polynomial rolls in O(1) per window): equal to `hashes.windows(n).map(combine)`.
pub fn window_hashes(hashes: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    let n = n.max(1);
    let top = (1..n).fold(1u64, |power, _| power.wrapping_mul(COMBINE));
    let mut folded = hashes
        .iter()
        .take(n.saturating_sub(1))
        .fold(0u64, |acc, &word| {
            acc.wrapping_mul(COMBINE).wrapping_add(word)
        });
    (n - 1..hashes.len()).map(move |last| {
        folded = folded.wrapping_mul(COMBINE).wrapping_add(hashes[last]);
        let value = mix(folded ^ n as u64);
        folded = folded.wrapping_sub(hashes[last + 1 - n].wrapping_mul(top));
        value
    })
}

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_windows_equal_combined_windows() {
        let hashes: Vec<u64> = (0..40u64).map(|i| mix(i * 7 + 1)).collect();
        for n in [1, 2, 5, 13, 40] {
            let rolled: Vec<u64> = window_hashes(&hashes, n).collect();
            let direct: Vec<u64> = hashes.windows(n).map(combine).collect();
            assert_eq!(rolled, direct, "n = {n}");
        }
        assert_eq!(window_hashes(&hashes[..3], 5).count(), 0);
    }
}
