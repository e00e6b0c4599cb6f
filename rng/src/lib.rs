//! # rlpt-rng
//!
//! The one pseudo-random stream rlpt draws from: SplitMix64 (Steele, Lea and Flood,
//! 2014). Small, fast, and defined by its seed alone — the same numbers on every
//! platform and in every version, which is what rlpt's reproducibility rests on:
//! MinHash permutations (so dedup output bytes), sampling in generation, the
//! trainer's data order and draws, bootstrap intervals, and the tests' generated
//! inputs all come from it. Not for cryptography.

#![deny(missing_docs)]

/// A SplitMix64 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The state, from which [`SplitMix64::new`] continues the same stream.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1) (the top 53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference stream of seed 1234567 (Vigna's splitmix64.c), and a stream
    /// continued from its state.
    #[test]
    fn the_stream_is_splitmix64s() {
        let mut rng = SplitMix64::new(1234567);
        let first: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821,
            ]
        );
        let mut resumed = SplitMix64::new(rng.state());
        assert_eq!(resumed.next_u64(), rng.next_u64());
        let uniform = SplitMix64::new(7).next_f64();
        assert!((0.0..1.0).contains(&uniform));
    }
}
