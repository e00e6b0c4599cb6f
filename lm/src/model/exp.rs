//! `exp` over a slice of f32, sixteen at a time with AVX-512, to the bit of the scalar
//! `f32::exp` the fused ops called element by element before (glibc's `expf` as it
//! runs on a CPU with FMA).
//!
//! glibc's `expf` writes x/ln 2 = (k + r)/32 for an integer k: 2^(k/32) comes from a
//! table of 2^(i/32) and the exponent bits, 2^(r/32) from a cubic, all in f64, then
//! the product is rounded to f32 once. The same f64 operations in the same order
//! (the first product fused into both sums that use it, as the FMA build compiles
//! it) give the same bits: the test compares them on every f32 below 88 in
//! magnitude. Larger magnitudes, infinities and NaNs (where glibc takes its slow
//! path) go to the scalar `exp`, as does the tail of a slice and any CPU without
//! AVX-512. The training pass's SwiGLU, log softmax and attention spent ~6% of their
//! threads' time in the scalar calls.

/// `values[i] = exp(values[i])`.
pub(crate) fn exp_in_place(values: &mut [f32]) {
    // x − 0 is x, to the bit, for every x but NaN (which stays NaN).
    exp_shifted_in_place(values, 0.0);
}

/// `values[i] = exp(values[i] − shift)`, the f32 difference first as `(v - shift).exp()`
/// takes it: a softmax's weights from its maximum or log-sum-exp, in one pass.
pub(crate) fn exp_shifted_in_place(values: &mut [f32], shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512 F is present.
        unsafe { avx512::exp_shifted_in_place(values, shift) };
        return;
    }
    scalar(values, shift);
}

fn scalar(values: &mut [f32], shift: f32) {
    for value in values {
        *value = (*value - shift).exp();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// 2^(i/32) as f64 bits, less i in the exponent's lowest bits (i << 47), so that
    /// adding k << 47 for any k ≡ i (mod 32) gives 2^(k/32).
    const TABLE: [u64; 32] = [
        0x3ff0000000000000,
        0x3fefd9b0d3158574,
        0x3fefb5586cf9890f,
        0x3fef9301d0125b51,
        0x3fef72b83c7d517b,
        0x3fef54873168b9aa,
        0x3fef387a6e756238,
        0x3fef1e9df51fdee1,
        0x3fef06fe0a31b715,
        0x3feef1a7373aa9cb,
        0x3feedea64c123422,
        0x3feece086061892d,
        0x3feebfdad5362a27,
        0x3feeb42b569d4f82,
        0x3feeab07dd485429,
        0x3feea47eb03a5585,
        0x3feea09e667f3bcd,
        0x3fee9f75e8ec5f74,
        0x3feea11473eb0187,
        0x3feea589994cce13,
        0x3feeace5422aa0db,
        0x3feeb737b0cdc5e5,
        0x3feec49182a3f090,
        0x3feed503b23e255d,
        0x3feee89f995ad3ad,
        0x3feeff76f2fb5e47,
        0x3fef199bdd85529c,
        0x3fef3720dcef9069,
        0x3fef5818dcfba487,
        0x3fef7c97337b9b5f,
        0x3fefa4afa2a490da,
        0x3fefd0765b6e4540,
    ];
    const STEPS: f64 = 32.0;
    /// 32 / ln 2.
    const STEPS_PER_LN2: f64 = f64::from_bits(0x3ff71547652b82fe) * STEPS;
    /// 1.5 · 2^52: adding it rounds to an integer, kept in the low bits.
    const ROUNDING: f64 = f64::from_bits(0x4338000000000000);
    /// The cubic for 2^(r/32), r in [-1/2, 1/2]: C0 r³ + C1 r² + C2 r + 1.
    const C0: f64 = f64::from_bits(0x3fac6af84b912394) / STEPS / STEPS / STEPS;
    const C1: f64 = f64::from_bits(0x3fcebfce50fac4f3) / STEPS / STEPS;
    const C2: f64 = f64::from_bits(0x3fe62e42ff0c52d6) / STEPS;
    /// |x| bits from which glibc takes its slow path (88.0).
    const LARGE: u32 = 0x42b0_0000;

    /// # Safety
    /// AVX-512 F is available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_shifted_in_place(values: &mut [f32], shift: f32) {
        let mut chunks = values.chunks_exact_mut(16);
        for chunk in &mut chunks {
            // SAFETY: 16 elements; AVX-512 F as the caller guarantees.
            unsafe {
                let x = _mm512_sub_ps(_mm512_loadu_ps(chunk.as_ptr()), _mm512_set1_ps(shift));
                let magnitude =
                    _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MAX));
                if _mm512_cmpge_epu32_mask(magnitude, _mm512_set1_epi32(LARGE as i32)) != 0 {
                    super::scalar(chunk, shift);
                    continue;
                }
                let low = exp8(_mm512_castps512_ps256(x));
                let high = exp8(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(x),
                )));
                _mm256_storeu_ps(chunk.as_mut_ptr(), low);
                _mm256_storeu_ps(chunk.as_mut_ptr().add(8), high);
            }
        }
        super::scalar(chunks.into_remainder(), shift);
    }

    /// exp of eight f32 below 88 in magnitude.
    #[target_feature(enable = "avx512f")]
    fn exp8(x: __m256) -> __m256 {
        let x = _mm512_cvtps_pd(x);
        let steps = _mm512_set1_pd(STEPS_PER_LN2);
        let rounding = _mm512_set1_pd(ROUNDING);
        // k = round(x·32/ln 2) in the low bits of `rounded`; r = x·32/ln 2 − k.
        let rounded = _mm512_fmadd_pd(steps, x, rounding);
        let k = _mm512_sub_pd(rounded, rounding);
        let r = _mm512_fmsub_pd(steps, x, k);
        let bits = _mm512_castpd_si512(rounded);
        // SAFETY: TABLE holds 32 u64, read as four vectors of eight.
        let [t0, t1, t2, t3] = std::array::from_fn(|i| unsafe {
            _mm512_loadu_si512(TABLE.as_ptr().add(8 * i).cast())
        });
        let lower = _mm512_permutex2var_epi64(t0, bits, t1);
        let upper = _mm512_permutex2var_epi64(t2, bits, t3);
        let in_upper = _mm512_test_epi64_mask(bits, _mm512_set1_epi64(16));
        let entry = _mm512_mask_blend_epi64(in_upper, lower, upper);
        let scale = _mm512_castsi512_pd(_mm512_add_epi64(entry, _mm512_slli_epi64::<47>(bits)));
        let cubic_high = _mm512_fmadd_pd(_mm512_set1_pd(C0), r, _mm512_set1_pd(C1));
        let linear = _mm512_fmadd_pd(_mm512_set1_pd(C2), r, _mm512_set1_pd(1.0));
        let poly = _mm512_fmadd_pd(cubic_high, _mm512_mul_pd(r, r), linear);
        _mm512_cvtpd_ps(_mm512_mul_pd(poly, scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits of the scalar `exp` on a spread of every f32 bit pattern (every 997th:
    /// signs, subnormals, the slow path's magnitudes, infinities, NaNs) and on slices
    /// whose tails are not a multiple of sixteen.
    #[test]
    fn equals_the_scalar_exp_to_the_bit() {
        let patterns: Vec<f32> = (0..=u32::MAX)
            .step_by(997)
            .map(f32::from_bits)
            .chain([
                0.0,
                -0.0,
                88.0,
                -88.0,
                87.99,
                -87.99,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ])
            .collect();
        for len in [patterns.len(), 31, 16, 15, 1, 0] {
            let mut got = patterns[..len].to_vec();
            exp_in_place(&mut got);
            assert_scalar_bits(&patterns, 0.0, &got);
        }
    }

    /// `exp(v − shift)` to the bit of the scalar form, for shifts that move values in
    /// and out of the slow path's magnitudes.
    #[test]
    fn the_shifted_form_equals_the_scalar_one_to_the_bit() {
        let patterns: Vec<f32> = (0..=u32::MAX)
            .step_by(9_973)
            .map(f32::from_bits)
            .chain((0..1000).map(|i| i as f32 * 0.37 - 180.0))
            .collect();
        for shift in [0.0, 87.5, -3.25, 1e-3, f32::INFINITY] {
            let mut got = patterns.clone();
            exp_shifted_in_place(&mut got, shift);
            assert_scalar_bits(&patterns, shift, &got);
        }
    }

    fn assert_scalar_bits(patterns: &[f32], shift: f32, got: &[f32]) {
        for (x, got) in patterns.iter().zip(got) {
            let want = (x - shift).exp();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "exp({x:e} − {shift:e}) = {got:e}, the scalar exp {want:e}"
            );
        }
    }
}
