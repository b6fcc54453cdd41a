//! Likelihood evaluation: the average negative log-likelihood of a data set in nats per image
//! and in bits per dimension, the figure PixelCNN papers report. The MSE-trained auto-encoder
//! has no likelihood and is scored by its mean squared error instead, under its own name.

use burn::prelude::*;
use serde::Serialize;

use crate::data::ImageSet;
use crate::loss::{bits_per_dim, pixel_nll, squared_error};
use crate::model::{Objective, PixelCnn, PixelCnnConfig};
use crate::picture;

/// Images per forward pass during evaluation.
const EVAL_BATCH: usize = 100;

/// The likelihood of a data set under a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Likelihood {
    pub images: usize,
    /// Mean negative log-likelihood of one image, in nats.
    pub nll_nats: f64,
    pub bits_per_dim: f64,
}

/// The reconstruction error of a data set under an MSE-trained auto-encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SquaredError {
    pub images: usize,
    /// Mean squared error per sub-pixel, intensities on the scale level/(K−1).
    pub mse: f64,
}

/// How well a model fits a data set, by the objective it was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Score {
    Likelihood(Likelihood),
    SquaredError(SquaredError),
}

impl Score {
    /// Bits/dim, or the mean squared error.
    pub fn value(&self) -> f64 {
        match self {
            Score::Likelihood(l) => l.bits_per_dim,
            Score::SquaredError(e) => e.mse,
        }
    }
}

/// Scores `model` (a non-autodiff one, built from `config`) on the first `limit` images of
/// `set` by its objective: [`evaluate`] or [`evaluate_mse`].
pub fn score(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> Score {
    match config.arch.objective() {
        Objective::Nll => Score::Likelihood(evaluate(model, config, set, limit, device)),
        Objective::Mse => Score::SquaredError(evaluate_mse(model, config, set, limit, device)),
    }
}

/// Evaluates `model` (a non-autodiff one, built from `config`) on the first `limit` images of
/// `set`; a conditional model is given each image's own condition.
pub fn evaluate(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> Likelihood {
    let (count, total_nats) = sum_over_batches(config, set, limit, device, |targets, condition| {
        let logits = model.forward_conditioned(targets.clone(), condition);
        pixel_nll(logits, targets).sum()
    });
    let nll_nats = total_nats / count as f64;
    Likelihood {
        images: count,
        nll_nats,
        bits_per_dim: bits_per_dim(nll_nats, set.values_per_image()),
    }
}

/// The mean squared error per sub-pixel of an MSE-trained auto-encoder's reconstructions of the
/// first `limit` images of `set`.
///
/// # Panics
///
/// If `model` is not an MSE-trained auto-encoder.
pub fn evaluate_mse(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> SquaredError {
    let (count, total) = sum_over_batches(config, set, limit, device, |targets, _| {
        let intensities = model
            .intensities(targets.clone())
            .expect("an MSE-trained auto-encoder");
        squared_error(intensities, targets, config.levels).sum()
    });
    SquaredError {
        images: count,
        mse: total / (count * set.values_per_image()) as f64,
    }
}

/// The number of images scored (the first `limit` of `set`) and the sum of `total` over batches
/// of them; with no images the sum is NaN, so that no figure is claimed.
fn sum_over_batches(
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
    total: impl Fn(Tensor<4, Int>, Option<&Tensor<2>>) -> Tensor<1>,
) -> (usize, f64) {
    let count = set.len().min(limit);
    if count == 0 {
        return (0, f64::NAN);
    }
    let mut sum = 0.0f64;
    for start in (0..count).step_by(EVAL_BATCH) {
        let indices: Vec<usize> = (start..(start + EVAL_BATCH).min(count)).collect();
        let targets = set.batch(&indices, config.levels, device);
        let condition = set.condition(&indices, config.conditioning, device);
        sum += total(targets, condition.as_ref()).into_scalar::<f64>();
    }
    (count, sum)
}

/// The negative log-likelihood in nats of each pixel of `targets` `[B, C, H, W]` under `model`
/// given `condition` (a colour pixel's channels summed): `B·H·W` values, image after image, row
/// by row.
pub fn pixel_surprise(
    model: &PixelCnn,
    targets: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
) -> Vec<f32> {
    let logits = model.forward_conditioned(targets.clone(), condition);
    pixel_nll(logits, targets)
        .sum_dim(1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("NLL values are floats")
}

/// Test images beside heat maps of their per-pixel negative log-likelihood (summed over a
/// colour pixel's channels): where the model is surprised. One row per image; all maps share
/// one colour scale.
pub fn heatmap(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
) -> image::RgbImage {
    let levels = config.levels;
    let targets = set.batch(indices, levels, device);
    let condition = set.condition(indices, config.conditioning, device);
    let nll = pixel_surprise(model, targets, condition.as_ref());
    let pixels = set.height * set.width;
    let max = nll.iter().copied().fold(0.0, f32::max);
    let mut tiles = Vec::with_capacity(2 * indices.len());
    for (&index, values) in indices.iter().zip(nll.chunks(pixels)) {
        let image = set.levels(index, levels);
        tiles.push(picture::levels_tile(&image, levels, set.height, set.width));
        tiles.push(picture::heat_tile(values, max, set.height, set.width));
    }
    picture::grid(&tiles, 2, 4)
}
