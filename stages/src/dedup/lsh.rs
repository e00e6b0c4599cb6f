//! Choosing LSH bands × rows: the pair `(b, r)` with `b·r ≤ P` that minimises the
//! weighted area of false positives (∫₀ᵗ P(candidate | s) ds) plus false negatives
//! (∫ₜ¹ P(not candidate | s) ds), where P(candidate | s) = 1 − (1 − sʳ)ᵇ.
//!
//! When candidates are verified against the threshold (the default), a false positive
//! costs only a comparison, so false negatives weigh 0.95 and false positives 0.05:
//! at t = 0.8 and P = 112 that is datatrove's 14 × 8. Without verification both
//! weigh 0.5 (9 × 12 at t = 0.8).

/// LSH banding: `bands` bands of `rows` registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Banding {
    /// Number of bands.
    pub bands: usize,
    /// Registers per band.
    pub rows: usize,
}

impl Banding {
    /// Probability that a pair of Jaccard similarity `s` shares at least one band.
    pub fn candidate_probability(self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }
}

/// Weight of false negatives when candidates are verified (false positives: 1 − it).
pub const VERIFIED_FALSE_NEGATIVE_WEIGHT: f64 = 0.95;
/// Weight of false negatives when candidates are kept unverified.
pub const UNVERIFIED_FALSE_NEGATIVE_WEIGHT: f64 = 0.5;

/// The banding of at most `num_perm` registers that minimises the weighted error.
pub fn optimal_banding(threshold: f64, num_perm: usize, false_negative_weight: f64) -> Banding {
    let mut best = (
        f64::INFINITY,
        Banding {
            bands: 1,
            rows: num_perm,
        },
    );
    for bands in 1..=num_perm {
        for rows in 1..=num_perm / bands {
            let banding = Banding { bands, rows };
            let false_positives = integrate(|s| banding.candidate_probability(s), 0.0, threshold);
            let false_negatives =
                integrate(|s| 1.0 - banding.candidate_probability(s), threshold, 1.0);
            let error = (1.0 - false_negative_weight) * false_positives
                + false_negative_weight * false_negatives;
            if error < best.0 {
                best = (error, banding);
            }
        }
    }
    best.1
}

/// Midpoint rule; the integrands are smooth and monotone.
fn integrate(f: impl Fn(f64) -> f64, from: f64, to: f64) -> f64 {
    const STEPS: usize = 256;
    let width = (to - from) / STEPS as f64;
    (0..STEPS)
        .map(|i| f(from + (i as f64 + 0.5) * width))
        .sum::<f64>()
        * width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_defaults_match_datatrove_and_unverified_balance_errors() {
        let verified = optimal_banding(0.8, 112, VERIFIED_FALSE_NEGATIVE_WEIGHT);
        assert_eq!(verified, Banding { bands: 14, rows: 8 });
        let balanced = optimal_banding(0.8, 112, UNVERIFIED_FALSE_NEGATIVE_WEIGHT);
        assert_eq!(balanced, Banding { bands: 9, rows: 12 });
    }

    #[test]
    fn candidate_probability_rises_through_the_threshold() {
        let banding = Banding { bands: 14, rows: 8 };
        assert!(banding.candidate_probability(0.5) < 0.06);
        assert!(banding.candidate_probability(0.8) > 0.9);
        assert!(banding.candidate_probability(0.95) > 0.9999);
    }
}
