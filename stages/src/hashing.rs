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

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
