//! Likelihood evaluation: the average negative log-likelihood of a data set in nats per image
//! and in bits per dimension, the figure PixelCNN papers report. The MSE-trained auto-encoder
//! has no likelihood and is scored by its mean squared error instead, under its own name.

use std::convert::Infallible;

use burn::prelude::*;
use serde::Serialize;

use crate::data::ImageSet;
use crate::loss::{bits_per_dim, pixel_nll, squared_error};
use crate::model::{NoLogits, Objective, PixelCnn, PixelCnnConfig};
use crate::parallel::{self, Collective};
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

impl Likelihood {
    /// The mean of per-image NLLs `nats` (as [`image_nll`] gives them) of images of `dims`
    /// sub-pixels; NaN figures for no images, so that none is claimed.
    pub fn of_images(nats: &[f64], dims: usize) -> Self {
        let nll_nats = nats.iter().sum::<f64>() / nats.len() as f64;
        Self {
            images: nats.len(),
            nll_nats,
            bits_per_dim: bits_per_dim(nll_nats, dims),
        }
    }
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
) -> Result<Score, NoLogits> {
    Ok(match config.arch.objective() {
        Objective::Nll => Score::Likelihood(evaluate(model, config, set, limit, device)?),
        Objective::Mse => Score::SquaredError(evaluate_mse(model, config, set, limit, device)),
    })
}

/// Evaluates `model` (a non-autodiff one, built from `config`) on the first `limit` images of
/// `set`; a conditional model is given each image's own condition.
pub fn evaluate(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> Result<Likelihood, NoLogits> {
    let (count, total_nats) =
        sum_over_batches(config, set, limit, device, |targets, condition| {
            let logits = model.forward_conditioned(targets.clone(), condition)?;
            Ok(pixel_nll(logits, targets).sum())
        })?;
    let nll_nats = total_nats / count as f64;
    Ok(Likelihood {
        images: count,
        nll_nats,
        bits_per_dim: bits_per_dim(nll_nats, set.values_per_image()),
    })
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
    let Ok((count, total)) = sum_over_batches(config, set, limit, device, |targets, _| {
        let intensities = model
            .intensities(targets.clone())
            .expect("an MSE-trained auto-encoder");
        Ok::<_, Infallible>(squared_error(intensities, targets, config.levels).sum())
    });
    SquaredError {
        images: count,
        mse: total / (count * set.values_per_image()) as f64,
    }
}

/// The negative log-likelihood in nats of each of the first `limit` images of `set` under
/// `model` (a non-autodiff one, built from `config`), each given its own condition: the
/// per-image figures whose mean [`evaluate`] reports, for histograms and for telling data sets
/// apart by likelihood.
pub fn image_nll(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
) -> Result<Vec<f64>, NoLogits> {
    let per_batch = over_batches(config, set, limit, device, |targets, condition| {
        let logits = model.forward_conditioned(targets.clone(), condition)?;
        let nll = pixel_nll(logits, targets);
        let [batch, colours, height, width] = nll.dims();
        Ok(nll
            .reshape([batch, colours * height * width])
            .sum_dim(1)
            .into_data()
            .convert::<f64>()
            .try_into_vec()
            .expect("NLL values are floats"))
    });
    let per_batch = per_batch
        .into_iter()
        .collect::<Result<Vec<Vec<f64>>, _>>()?;
    Ok(per_batch.into_iter().flatten().collect())
}

/// The number of images scored (the first `limit` of `set`) and the sum of `total` over batches
/// of them, added in batch order; with no images the sum is NaN, so that no figure is claimed.
fn sum_over_batches<E: Send>(
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
    total: impl Fn(Tensor<4, Int>, Option<&Tensor<2>>) -> Result<Tensor<1>, E> + Sync,
) -> Result<(usize, f64), E> {
    let count = set.len().min(limit);
    if count == 0 {
        return Ok((0, f64::NAN));
    }
    let totals = over_batches(config, set, limit, device, |targets, condition| {
        Ok(total(targets, condition)?.into_scalar::<f64>())
    });
    let totals = totals.into_iter().collect::<Result<Vec<f64>, E>>()?;
    Ok((count, totals.into_iter().sum()))
}

/// `score` of each batch of [`EVAL_BATCH`] of the first `limit` images of `set`, in batch
/// order. On the CPU backend the batches are shared out among one thread per thread of the
/// pool, each running its batches' operations on its own ([`crate::parallel::in_threads`]):
/// the figures are the same however many threads there are.
fn over_batches<T: Send>(
    config: &PixelCnnConfig,
    set: &ImageSet,
    limit: usize,
    device: &Device,
    score: impl Fn(Tensor<4, Int>, Option<&Tensor<2>>) -> T + Sync,
) -> Vec<T> {
    let count = set.len().min(limit);
    let batches: Vec<_> = (0..count)
        .step_by(EVAL_BATCH)
        .map(|start| (start..(start + EVAL_BATCH).min(count)).collect::<Vec<_>>())
        .collect();
    let score_batch = |indices: &Vec<usize>| {
        let targets = set.batch(indices, config.levels, device);
        let condition = set.condition(indices, config.conditioning, device);
        score(targets, condition.as_ref())
    };
    let shards = parallel::cpu_threads(device).min(batches.len());
    let by_shard = match shards {
        0 | 1 => None,
        _ => parallel::in_threads(shards, |rank| {
            let mine = batches.iter().skip(rank.rank()).step_by(shards);
            mine.map(score_batch).collect::<Vec<_>>()
        })
        .ok(),
    };
    let Some(by_shard) = by_shard else {
        return batches.iter().map(score_batch).collect();
    };
    // Batch b was scored by shard b mod shards, as its (b / shards)-th.
    let mut shards_in_order: Vec<_> = by_shard.into_iter().map(Vec::into_iter).collect();
    (0..batches.len())
        .map(|b| {
            shards_in_order[b % shards]
                .next()
                .expect("each shard scored its batches")
        })
        .collect()
}

/// The negative log-likelihood in nats of each pixel of `targets` `[B, C, H, W]` under `model`
/// given `condition` (a colour pixel's channels summed): `B·H·W` values, image after image, row
/// by row.
pub fn pixel_surprise(
    model: &PixelCnn,
    targets: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
) -> Result<Vec<f32>, NoLogits> {
    let logits = model.forward_conditioned(targets.clone(), condition)?;
    Ok(pixel_nll(logits, targets)
        .sum_dim(1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("NLL values are floats"))
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
) -> Result<image::RgbImage, NoLogits> {
    let levels = config.levels;
    let targets = set.batch(indices, levels, device);
    let condition = set.condition(indices, config.conditioning, device);
    let nll = pixel_surprise(model, targets, condition.as_ref())?;
    let pixels = set.height * set.width;
    let max = nll.iter().copied().fold(0.0, f32::max);
    let mut tiles = Vec::with_capacity(2 * indices.len());
    for (&index, values) in indices.iter().zip(nll.chunks(pixels)) {
        let image = set.levels(index, levels);
        tiles.push(picture::levels_tile(&image, levels, set.height, set.width));
        tiles.push(picture::heat_tile(values, max, set.height, set.width));
    }
    Ok(picture::grid(&tiles, 2, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` grayscale images of 8×8 with varied pixels, and a small model of K = 4.
    fn images_and_model(count: usize, device: &Device) -> (ImageSet, PixelCnnConfig, PixelCnn) {
        let set = ImageSet {
            channels: 1,
            height: 8,
            width: 8,
            pixels: (0..count * 64).map(|i| (i * 37 % 251) as u8).collect(),
            labels: None,
            embeddings: None,
        };
        let config = PixelCnnConfig::new(4).with_layers(2).with_channels(4);
        let model = config.init_seeded(device, 0);
        (set, config, model)
    }

    #[test]
    fn the_score_is_the_same_however_many_threads_share_the_batches() {
        let device = Device::flex();
        // 250 images: three batches, the last a half one.
        let (set, config, model) = images_and_model(250, &device);
        let in_pool = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| evaluate(&model, &config, &set, 250, &device).unwrap())
        };
        let one = in_pool(1);
        assert_eq!(one.images, 250);
        for threads in [2, 3, 4] {
            assert_eq!(in_pool(threads).nll_nats, one.nll_nats, "{threads} threads");
        }
        // Each batch counts once: the first 100 images alone score differently.
        let first = evaluate(&model, &config, &set, 100, &device).unwrap();
        assert_ne!(first.nll_nats, one.nll_nats);
    }

    #[test]
    fn each_images_nll_is_its_own_and_their_mean_is_the_sets_likelihood() {
        let device = Device::flex();
        let (set, config, model) = images_and_model(150, &device);
        let nats = image_nll(&model, &config, &set, usize::MAX, &device).unwrap();
        assert_eq!(nats.len(), 150);
        let whole = evaluate(&model, &config, &set, usize::MAX, &device).unwrap();
        let mean = Likelihood::of_images(&nats, 64);
        assert_eq!(mean.images, whole.images);
        // The set's figure sums each batch in f32: equal to f32 rounding.
        assert!((mean.nll_nats - whole.nll_nats).abs() < 1e-6 * whole.nll_nats);
        assert!((mean.bits_per_dim - whole.bits_per_dim).abs() < 1e-6 * whole.bits_per_dim);
        // Image 120 (in the second batch) scored alone gives its own figure.
        let alone = ImageSet {
            pixels: set.pixels[120 * 64..121 * 64].to_vec(),
            ..set.clone()
        };
        let single = evaluate(&model, &config, &alone, 1, &device)
            .unwrap()
            .nll_nats;
        assert!(
            (nats[120] - single).abs() < 1e-4,
            "{} vs {single}",
            nats[120]
        );
        assert!((nats[120] - nats[121]).abs() > 1e-3);
    }
}
