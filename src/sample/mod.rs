//! Autoregressive generation (arXiv 1601.06759, Section 2): pixels are drawn one at a time in
//! raster order, each from the softmax the model predicts given all pixels drawn so far; the
//! sub-pixels of a colour pixel in the order R, G, B, each given the ones before.
//!
//! Two samplers: [`naive`] runs the whole network once per sub-pixel, as the original notebooks
//! do; [`cached`] keeps each layer's state and does only the new work, for the gated
//! architecture. Both draw with the same uniform number per sub-pixel, but the cached sampler's
//! logits match the forward pass only to within rounding (its own loops, `tanh` and `exp`), so
//! a draw whose number falls between the two cumulative distributions can differ — rarely
//! (`examples/sampler_agreement.rs` measures how rarely on a trained run).

pub mod cached;
pub mod naive;

use burn::prelude::*;
use rand::Rng;

use crate::model::{AutoEncoder, PixelCnn};
use cached::CachedGatedPixelCnn;

/// Which sampler generates the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Sampler {
    /// Incremental, with per-layer caches (gated architecture; the masked one falls back to
    /// naive).
    Cached,
    /// One full forward pass per pixel.
    Naive,
}

/// How to draw each pixel.
#[derive(Debug, Clone, Copy)]
pub struct SamplingOptions {
    /// Intensity levels K of the model.
    pub levels: usize,
    /// Colour channels C: 1 (grayscale) or 3 (R, G, B).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Divides the logits before the softmax; 0 always picks the most likely level.
    pub temperature: f32,
    pub sampler: Sampler,
}

/// Draws `count` images from `model`, returning each as levels `0..K`, channel planes after
/// each other, row-major. A
/// conditional model needs `condition`, one vector h per image `[count, d]`; for an
/// auto-encoder, the codes to decode.
///
/// The random numbers come from `rng`: one uniform number per sub-pixel — in raster order, then
/// channel after channel within a pixel, then image after image — the same for both samplers.
pub fn sample(
    model: &PixelCnn,
    count: usize,
    condition: Option<Tensor<2>>,
    options: SamplingOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Vec<Vec<u8>> {
    let blank = vec![vec![0u8; options.channels * options.height * options.width]; count];
    complete(model, blank, 0, condition, options, rng, device)
}

/// Keeps the first `known_pixels` pixels (raster order, all their channels) of each image and
/// draws the rest.
pub fn complete(
    model: &PixelCnn,
    mut images: Vec<Vec<u8>>,
    known_pixels: usize,
    condition: Option<Tensor<2>>,
    options: SamplingOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Vec<Vec<u8>> {
    let plane = options.height * options.width;
    let mut choose = |pixel: usize, channel: usize, logits: &[f32], images: &mut [Vec<u8>]| {
        if pixel >= known_pixels {
            let probabilities = softmax(logits, options.levels, options.temperature);
            for (image, probs) in images.iter_mut().zip(probabilities.chunks(options.levels)) {
                image[channel * plane + pixel] = draw(probs, rng.random::<f32>());
            }
        }
    };
    match (options.sampler, model) {
        (Sampler::Cached, PixelCnn::Gated(gated))
        | (Sampler::Cached, PixelCnn::AutoEncoder(AutoEncoder { decoder: gated, .. })) => {
            let condition = condition.map(condition_rows);
            CachedGatedPixelCnn::new(
                gated,
                images.len(),
                options.height,
                options.width,
                condition,
            )
            .run(&mut images, choose);
        }
        _ => {
            let context = naive::Context {
                options,
                condition: condition.as_ref(),
                device,
            };
            naive::run(model, &mut images, known_pixels, context, &mut choose);
        }
    }
    images
}

/// The rows of a conditioning tensor `[B, d]` as vectors.
fn condition_rows(condition: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, dim] = condition.dims();
    let values: Vec<f32> = condition
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("conditioning vectors are floats");
    values.chunks(dim).map(<[f32]>::to_vec).collect()
}

/// Softmax of each row of `logits` (`[count][K]`) at `temperature`; at 0 a one-hot vector on
/// the most likely level.
pub fn softmax(logits: &[f32], levels: usize, temperature: f32) -> Vec<f32> {
    let mut probabilities = Vec::with_capacity(logits.len());
    for row in logits.chunks(levels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if temperature <= 0.0 {
            let best = row.iter().position(|&l| l == max).unwrap_or(0);
            probabilities.extend((0..levels).map(|l| if l == best { 1.0 } else { 0.0 }));
            continue;
        }
        let start = probabilities.len();
        probabilities.extend(row.iter().map(|&l| ((l - max) / temperature).exp()));
        let total: f32 = probabilities[start..].iter().sum();
        for p in &mut probabilities[start..] {
            *p /= total;
        }
    }
    probabilities
}

/// The level whose cumulative probability first exceeds `uniform` (inverse-CDF sampling).
pub fn draw(probabilities: &[f32], uniform: f32) -> u8 {
    let mut cumulative = 0.0;
    for (level, &p) in probabilities.iter().enumerate() {
        cumulative += p;
        if uniform < cumulative {
            return level as u8;
        }
    }
    // Rounding can leave the total a hair below 1: fall back to the last likely level.
    probabilities
        .iter()
        .rposition(|&p| p > 0.0)
        .unwrap_or(probabilities.len() - 1) as u8
}
