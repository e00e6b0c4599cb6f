//! MinHash signatures over shingle hashes, and their LSH band hashes (two documents
//! share a register with probability equal to their Jaccard similarity).
//!
//! Permutation `i` maps a shingle hash `x` to `a_i·x + b_i mod 2⁶⁴` (`a_i` odd, so a
//! bijection); `a_i`, `b_i` come from splitmix64 seeded with a fixed constant, so
//! signatures are the same on every machine and in every version that keeps
//! [`MINHASH_VERSION`]. Because shingle hashes are already uniformly distributed
//! (xxh3), this family estimates Jaccard without bias (tests below) at a third of the
//! cost of minhash-rs's xorshift stream, and the number of permutations is chosen at
//! run time.

use rlpt_rng::SplitMix64;
use xxhash_rust::xxh3::Xxh3;

/// Bumped whenever signatures change; recorded in the signature files.
pub const MINHASH_VERSION: u32 = 1;
const PERMUTATION_SEED: u64 = 0x726c_7074_6d69_6e68; // "rlptminh"

/// The permutations of a signature of fixed length.
#[derive(Debug, Clone)]
pub struct MinHasher {
    multipliers: Vec<u64>,
    offsets: Vec<u64>,
}

impl MinHasher {
    /// `num_perm` permutations.
    pub fn new(num_perm: usize) -> Self {
        let mut stream = SplitMix64::new(PERMUTATION_SEED);
        let mut multipliers = Vec::with_capacity(num_perm);
        let mut offsets = Vec::with_capacity(num_perm);
        for _ in 0..num_perm {
            multipliers.push(stream.next_u64() | 1);
            offsets.push(stream.next_u64());
        }
        Self {
            multipliers,
            offsets,
        }
    }

    /// Number of permutations.
    pub fn len(&self) -> usize {
        self.multipliers.len()
    }

    /// Whether there are no permutations.
    pub fn is_empty(&self) -> bool {
        self.multipliers.is_empty()
    }

    /// The signature of a shingle set into `out` (its length is the permutation
    /// count); every value stays `u64::MAX` for an empty set.
    pub fn signature_into(&self, shingles: &[u64], out: &mut [u64]) {
        out.fill(u64::MAX);
        for &x in shingles {
            for ((slot, &a), &b) in out.iter_mut().zip(&self.multipliers).zip(&self.offsets) {
                *slot = (*slot).min(a.wrapping_mul(x).wrapping_add(b));
            }
        }
    }
}

/// The hash of band `band` (registers `band·rows .. (band+1)·rows`).
pub fn band_hash(signature: &[u64], band: usize, rows: usize) -> u64 {
    let mut hasher = Xxh3::with_seed(band as u64);
    for register in &signature[band * rows..(band + 1) * rows] {
        hasher.update(&register.to_le_bytes());
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_set(stream: &mut SplitMix64, len: usize) -> Vec<u64> {
        (0..len).map(|_| stream.next_u64()).collect()
    }

    #[test]
    fn estimates_are_unbiased_with_the_theoretical_spread() {
        let hasher = MinHasher::new(112);
        let mut state = SplitMix64::new(7);
        for jaccard in [0.3, 0.5, 0.8, 0.9] {
            let n = 200usize;
            let common = ((2.0 * jaccard * n as f64) / (1.0 + jaccard)).round() as usize;
            let mut errors = Vec::new();
            for _ in 0..300 {
                let shared = random_set(&mut state, common);
                let a = [shared.clone(), random_set(&mut state, n - common)].concat();
                let b = [shared, random_set(&mut state, n - common)].concat();
                let truth = common as f64 / (2 * n - common) as f64;
                let (mut sa, mut sb) = (vec![0; 112], vec![0; 112]);
                hasher.signature_into(&a, &mut sa);
                hasher.signature_into(&b, &mut sb);
                let agree = sa.iter().zip(&sb).filter(|(x, y)| x == y).count();
                errors.push(agree as f64 / 112.0 - truth);
            }
            let mean = errors.iter().sum::<f64>() / errors.len() as f64;
            let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / errors.len() as f64)
                .sqrt();
            let theory = (jaccard * (1.0 - jaccard) / 112.0).sqrt();
            assert!(mean.abs() < 0.01, "J={jaccard}: bias {mean}");
            assert!(
                (sd / theory - 1.0).abs() < 0.2,
                "J={jaccard}: sd {sd} vs {theory}"
            );
        }
    }

    #[test]
    fn identical_sets_agree_everywhere_and_empty_sets_stay_at_max() {
        let hasher = MinHasher::new(16);
        let (mut a, mut b) = (vec![0; 16], vec![0; 16]);
        hasher.signature_into(&[1, 2, 3], &mut a);
        hasher.signature_into(&[3, 2, 1, 1], &mut b);
        assert_eq!(a, b);
        hasher.signature_into(&[], &mut a);
        assert!(a.iter().all(|&r| r == u64::MAX));
    }

    #[test]
    fn bands_hash_their_own_registers() {
        let signature: Vec<u64> = (0..12).collect();
        let mut other = signature.clone();
        other[11] = 99;
        assert_eq!(band_hash(&signature, 0, 4), band_hash(&other, 0, 4));
        assert_ne!(band_hash(&signature, 2, 4), band_hash(&other, 2, 4));
        assert_ne!(band_hash(&signature, 0, 4), band_hash(&signature, 1, 4));
    }

    #[test]
    fn permutations_are_stable_across_versions() {
        // Changing these values changes every signature: bump MINHASH_VERSION.
        let mut signature = vec![0; 2];
        MinHasher::new(2).signature_into(&[42], &mut signature);
        assert_eq!(
            signature,
            [18_067_830_854_152_551_724, 11_944_596_928_381_572_252]
        );
    }
}
