//! The training objective and the likelihood units of the papers: the negative log-likelihood of
//! a per-pixel K-way softmax (arXiv 1601.06759, Section 2.2), reported in nats and in bits per
//! dimension, `bits/dim = nats / (pixels · ln 2)`; and the squared error of the MSE-trained
//! auto-encoder baseline.

use burn::prelude::*;

use crate::ops::softmax_nll::softmax_nll;

/// Negative log-likelihood in nats of each sub-pixel, `[B, C, H, W]`, for logits
/// `[B, C, K, H, W]` and targets `[B, C, H, W]` (levels in `0..K`). The log-softmax is the
/// numerically stable one.
pub fn pixel_nll(logits: Tensor<5>, targets: Tensor<4, Int>) -> Tensor<4> {
    let [batch, colours, levels, height, width] = logits.dims();
    let rows = batch * colours * height * width;
    // The model's logits are channels-last underneath: for one colour this is a view.
    let logits = logits.permute([0, 1, 3, 4, 2]).reshape([rows, levels]);
    softmax_nll(logits, targets.reshape([rows])).reshape([batch, colours, height, width])
}

/// Mean negative log-likelihood per sub-pixel in nats: the training loss.
pub fn mean_nll(logits: Tensor<5>, targets: Tensor<4, Int>) -> Tensor<1> {
    pixel_nll(logits, targets).mean()
}

/// Squared error of each sub-pixel `[B, C, H, W]` between decoded intensities and the targets'
/// levels (`0..K`), both on the network's input scale x = level/(K−1): the objective of the
/// MSE-trained auto-encoder (arXiv 1606.05328, Section 3.4), which has no likelihood.
pub fn squared_error(intensities: Tensor<4>, targets: Tensor<4, Int>, levels: usize) -> Tensor<4> {
    let x = targets.float() / (levels - 1) as f32;
    (intensities - x).powi_scalar(2)
}

/// Converts nats per dimension into bits per dimension.
pub fn nats_to_bits(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

/// Bits per dimension of a whole image's negative log-likelihood `nats` over `dims` sub-pixels.
pub fn bits_per_dim(nats: f64, dims: usize) -> f64 {
    nats_to_bits(nats / dims as f64)
}
