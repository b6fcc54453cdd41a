//! Naive autoregressive sampling (arXiv 1601.06759, Section 2): pixels are drawn one at a time
//! in raster order, each from the softmax the model predicts given all pixels drawn so far. Each
//! pixel costs one full forward pass over the batch.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::Rng;

use crate::model::PixelCnn;

/// How to draw each pixel.
#[derive(Debug, Clone, Copy)]
pub struct SamplingOptions {
    /// Intensity levels K of the model.
    pub levels: usize,
    pub height: usize,
    pub width: usize,
    /// Divides the logits before the softmax; 0 always picks the most likely level.
    pub temperature: f32,
}

/// Draws `count` images from `model`, returning each as levels `0..K`, row-major.
///
/// The random numbers come from `rng`: one uniform number per sub-pixel, in raster order and
/// image after image within a pixel.
pub fn sample(
    model: &PixelCnn,
    count: usize,
    options: SamplingOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Vec<Vec<u8>> {
    let blank = vec![vec![0u8; options.height * options.width]; count];
    complete(model, blank, 0, options, rng, device)
}

/// Keeps the first `known_pixels` pixels (raster order) of each image and draws the rest.
pub fn complete(
    model: &PixelCnn,
    mut images: Vec<Vec<u8>>,
    known_pixels: usize,
    options: SamplingOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Vec<Vec<u8>> {
    let SamplingOptions {
        levels,
        height,
        width,
        temperature,
    } = options;
    let count = images.len();
    for pixel in known_pixels..height * width {
        let (row, column) = (pixel / width, pixel % width);
        // Rows below the current one cannot influence it (the model is causal), so the
        // forward pass only covers rows 0..=row.
        let input = levels_tensor(&images, row + 1, width, device);
        let logits = model
            .forward(input)
            .slice([0..count, 0..levels, row..row + 1, column..column + 1])
            .reshape([count, levels]);
        let probabilities = pixel_probabilities(logits, temperature);
        for (image, probs) in images.iter_mut().zip(probabilities.chunks(levels)) {
            image[pixel] = draw(probs, rng.random::<f32>());
        }
    }
    images
}

/// The first `height` rows of `images` as a tensor `[B, 1, height, width]`.
fn levels_tensor(
    images: &[Vec<u8>],
    height: usize,
    width: usize,
    device: &Device,
) -> Tensor<4, Int> {
    let data: Vec<i64> = images
        .iter()
        .flat_map(|image| &image[..height * width])
        .map(|&l| i64::from(l))
        .collect();
    Tensor::from_data(
        TensorData::new(data, [images.len(), 1, height, width]),
        device,
    )
}

/// Softmax probabilities `[count · K]` of `logits` `[count, K]` at `temperature`; at 0 a
/// one-hot vector on the most likely level.
fn pixel_probabilities(logits: Tensor<2>, temperature: f32) -> Vec<f32> {
    let [count, levels] = logits.dims();
    if temperature <= 0.0 {
        let best: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .expect("argmax gives integers");
        let mut one_hot = vec![0.0; count * levels];
        for (i, &b) in best.iter().enumerate() {
            one_hot[i * levels + b as usize] = 1.0;
        }
        return one_hot;
    }
    softmax(logits / temperature, 1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("softmax gives floats")
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
