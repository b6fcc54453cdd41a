//! Likelihood evaluation: the average negative log-likelihood of a data set in nats per image
//! and in bits per dimension, the figure PixelCNN papers report.

use burn::prelude::*;
use serde::Serialize;

use crate::data::ImageSet;
use crate::loss::{bits_per_dim, pixel_nll};
use crate::model::{PixelCnn, PixelCnnConfig};
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

/// Evaluates `model` (a non-autodiff one, built from `config`) on the first `limit` images of
/// `set`; a conditional model is given each image's own condition.
pub fn evaluate(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> Likelihood {
    let count = set.len().min(limit);
    let dims = set.values_per_image();
    let mut total_nats = 0.0f64;
    for start in (0..count).step_by(EVAL_BATCH) {
        let indices: Vec<usize> = (start..(start + EVAL_BATCH).min(count)).collect();
        let targets = set.batch(&indices, config.levels, device);
        let condition = set.condition(&indices, config.conditioning, device);
        let logits = model.forward_conditioned(targets.clone(), condition.as_ref());
        total_nats += pixel_nll(logits, targets).sum().into_scalar::<f64>();
    }
    let nll_nats = if count == 0 {
        f64::NAN
    } else {
        total_nats / count as f64
    };
    Likelihood {
        images: count,
        nll_nats,
        bits_per_dim: bits_per_dim(nll_nats, dims),
    }
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
    let logits = model.forward_conditioned(targets.clone(), condition.as_ref());
    let nll: Vec<f32> = pixel_nll(logits, targets)
        .sum_dim(1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("NLL values are floats");
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
