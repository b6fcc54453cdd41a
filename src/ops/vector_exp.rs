//! An exponential the compiler can vectorise, for the fused kernels of the gate
//! (arXiv 1606.05328, equation 2) and of the softmax likelihood (arXiv 1601.06759, Section 2.2):
//! the standard library's `f32::exp` is a call the loops cannot vectorise.

/// `e^x` to within a few units in the last place, written with plain arithmetic so that loops
/// over it vectorise: `e^x = 2^n e^r` with `n` the nearest integer to `x / ln 2` and a degree-6
/// polynomial for `e^r`, `|r| ≤ ln 2 / 2`. Arguments are clamped to where `f32` neither
/// overflows nor underflows to zero, so the callers' quotients stay finite.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer without a rounding call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // The low bits of `rounded` hold n; moved into the exponent field they make 2^n.
    let n_bits = rounded.to_bits().wrapping_sub(ROUND.to_bits());
    let two_to_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e_r * two_to_n
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn the_vectorisable_exponential_is_accurate() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let exact = (x as f64).exp();
            worst = worst.max(((exp(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 4e-7, "largest relative error {worst}");
    }
}
