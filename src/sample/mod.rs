//! Autoregressive generation (arXiv 1601.06759, Section 2): pixels are drawn one at a time in
//! raster order, each from the softmax the model predicts given all pixels drawn so far; the
//! sub-pixels of a colour pixel in the order R, G, B, each given the ones before.
//!
//! Two samplers: [`naive`] runs the whole network once per sub-pixel, as the original notebooks
//! do, and stays as the reference; [`cached`] keeps each layer's state and does only the new
//! work, batched across images. Both draw with the same uniform number per sub-pixel, from one
//! random stream per image, but the cached sampler computes each logit with products of other
//! shapes than the full forward pass, so its logits match only to within rounding, and a draw
//! whose number falls between the two cumulative distributions can differ — rarely
//! (`examples/sampler_agreement.rs` measures how rarely on a trained run).
//!
//! [`Generation`] is the streaming form: an iterator that draws one row of the whole batch per
//! step, for live display, progress and cancellation; [`sample`] and [`complete`] run it to the
//! end.

pub mod cached;
pub mod naive;

use std::ops::Range;

use burn::prelude::*;
use rand::Rng;
use rayon::prelude::*;

use crate::model::{AutoEncoder, PixelCnn};
use crate::random::{SeededRng, seeded};
use cached::{CachedGatedPixelCnn, CachedMaskedPixelCnn};

/// Which sampler generates the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Sampler {
    /// Incremental, with per-layer caches, batched across images.
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

/// The random stream of image `image` of a draw from `seed`: one ChaCha stream per image of the
/// same key, so that an image is the same whatever the batch it is drawn in.
pub fn image_stream(seed: u64, image: usize) -> SeededRng {
    let mut rng = seeded(seed);
    rng.set_stream(image as u64);
    rng
}

/// [`image_stream`] of each image of `images`.
pub fn image_streams(seed: u64, images: Range<usize>) -> Vec<SeededRng> {
    images.map(|image| image_stream(seed, image)).collect()
}

/// Draws `count` images from `model`, returning each as levels `0..K`, channel planes after
/// each other, row-major. A conditional model needs `condition`, one vector h per image
/// `[count, d]`; for an auto-encoder, the codes to decode.
///
/// One number from `rng` is the key of the images' random streams: image i draws from
/// [`image_stream`]`(key, i)`, one uniform number per sub-pixel, in raster order, then channel
/// after channel within a pixel — the same for both samplers.
///
/// # Panics
///
/// For an MSE-trained auto-encoder, which has no distribution to draw from
/// ([`PixelCnn::forward_conditioned`] gives [`crate::model::NoLogits`]): callers decode its
/// codes instead ([`PixelCnn::decode_intensities`]).
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
/// draws the rest, with random streams keyed as in [`sample`].
pub fn complete(
    model: &PixelCnn,
    images: Vec<Vec<u8>>,
    known_pixels: usize,
    condition: Option<Tensor<2>>,
    options: SamplingOptions,
    rng: &mut impl Rng,
    device: &Device,
) -> Vec<Vec<u8>> {
    let streams = image_streams(rng.random(), 0..images.len());
    let start = Start {
        images,
        known_pixels,
        streams,
    };
    Generation::new(model, start, condition, options, device).finish()
}

/// Where a [`Generation`] starts: the images (levels, channel planes after each other), of
/// which the first `known_pixels` pixels are kept, and one random stream per image.
pub struct Start {
    pub images: Vec<Vec<u8>>,
    pub known_pixels: usize,
    pub streams: Vec<SeededRng>,
}

impl Start {
    /// Blank images of `options`' size, drawn from [`image_stream`]`(seed, i)` for each `i` of
    /// `images`.
    pub fn blank(options: &SamplingOptions, seed: u64, images: Range<usize>) -> Self {
        let size = options.channels * options.height * options.width;
        Self {
            images: vec![vec![0; size]; images.len()],
            known_pixels: 0,
            streams: image_streams(seed, images),
        }
    }
}

/// `choose(pixel, channel, logits, images)`: given the logits `[B][K]` of a sub-pixel, writes
/// (or leaves) its levels in `images`.
pub type Choose<'c> = dyn FnMut(usize, usize, &[f32], &mut [Vec<u8>]) + Send + 'c;

/// A sampler that advances a batch of images one row at a time.
pub trait RowSampler: Send {
    /// Computes row `row` (after every row above it), calling `choose` for every sub-pixel from
    /// `first_pixel` on in raster order, channel after channel.
    fn row(&mut self, row: usize, images: &mut [Vec<u8>], first_pixel: usize, choose: &mut Choose);
}

/// The sampler of `options` for a batch of `batch` images drawn by `model` on `device`: the
/// cached one covers the gated and masked architectures and the PixelCNN auto-encoder; other
/// models run the naive one. A conditional model needs `condition`, one vector h per image
/// `[B, d]`.
pub fn row_sampler<'a>(
    model: &'a PixelCnn,
    batch: usize,
    condition: Option<Tensor<2>>,
    options: SamplingOptions,
    device: &'a Device,
) -> Box<dyn RowSampler + 'a> {
    let (height, width) = (options.height, options.width);
    match (options.sampler, model) {
        (Sampler::Cached, PixelCnn::Gated(gated))
        | (Sampler::Cached, PixelCnn::AutoEncoder(AutoEncoder { decoder: gated, .. })) => Box::new(
            CachedGatedPixelCnn::new(gated, batch, height, width, condition.as_ref()),
        ),
        (Sampler::Cached, PixelCnn::Masked(masked)) => {
            Box::new(CachedMaskedPixelCnn::new(masked, batch, height, width))
        }
        _ => Box::new(naive::Naive {
            model,
            condition,
            options,
            device,
        }),
    }
}

/// One row of every image, just drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The row's index, from 0 at the top.
    pub index: usize,
    /// The row of each image: its W levels of each channel, channel after channel.
    pub levels: Vec<Vec<u8>>,
}

/// Generation as a stream: each [`Iterator::next`] draws one more row of every image of the
/// batch and yields it, so that a caller can show the images as they are drawn, count rows for
/// a progress bar, or stop: no work happens between calls, and dropping the generation cancels
/// it.
///
/// On the CPU backend a batch of at least [`MIN_GROUP`] images per thread of the pool is split
/// into one group of consecutive images per thread, each group advanced by its own sampler on
/// its own thread: a row of a small batch is hundreds of operations on tensors of a few pixels,
/// which one thread runs faster than the pool can share them out. Each image draws from its own
/// random stream and the products treat the images of a batch independently, so an image is
/// the same whatever group or batch it is drawn in (tested).
pub struct Generation<'a> {
    groups: Vec<Box<dyn RowSampler + 'a>>,
    /// Images of every group but perhaps the last.
    group_size: usize,
    images: Vec<Vec<u8>>,
    known_pixels: usize,
    streams: Vec<SeededRng>,
    options: SamplingOptions,
    next_row: usize,
}

/// The fewest images a group of a split batch has (see [`Generation`]).
pub const MIN_GROUP: usize = 8;

impl<'a> Generation<'a> {
    /// Prepares the generation of `start`'s images by `model` on `device`, with the
    /// [`row_sampler`] of `options`. A conditional model needs `condition`, one vector h per
    /// image `[B, d]`.
    ///
    /// # Panics
    ///
    /// If there is not one random stream per image.
    pub fn new(
        model: &'a PixelCnn,
        start: Start,
        condition: Option<Tensor<2>>,
        options: SamplingOptions,
        device: &'a Device,
    ) -> Self {
        assert_eq!(
            start.streams.len(),
            start.images.len(),
            "one random stream per image"
        );
        let batch = start.images.len();
        let group_size = batch.div_ceil(groups(options, batch, device)).max(1);
        let groups = (0..batch)
            .step_by(group_size)
            .map(|first| {
                let len = group_size.min(batch - first);
                let condition = condition.as_ref().map(|h| h.clone().narrow(0, first, len));
                row_sampler(model, len, condition, options, device)
            })
            .collect();
        Self {
            groups,
            group_size,
            images: start.images,
            known_pixels: start.known_pixels,
            streams: start.streams,
            options,
            next_row: 0,
        }
    }

    /// The images as drawn so far.
    pub fn images(&self) -> &[Vec<u8>] {
        &self.images
    }

    /// Draws every remaining row and returns the images.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.by_ref().for_each(drop);
        self.images
    }
}

impl Iterator for Generation<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let options = self.options;
        let (index, width) = (self.next_row, options.width);
        if index >= options.height {
            return None;
        }
        let plane = options.height * width;
        let known = self.known_pixels;
        let groups = self.groups.par_iter_mut();
        let images = self.images.par_chunks_mut(self.group_size);
        let streams = self.streams.par_chunks_mut(self.group_size);
        // Each group's row on a thread of the pool that the CPU backend's parallel operations
        // use, so that its many small operations do not wait for thread switches.
        groups
            .zip(images)
            .zip(streams)
            .for_each(|((sampler, images), streams)| {
                sampler.row(index, images, known, &mut chooser(options, streams));
            });
        self.next_row += 1;
        let levels = self
            .images
            .iter()
            .map(|image| {
                image
                    .chunks(plane)
                    .flat_map(|channel| &channel[index * width..(index + 1) * width])
                    .copied()
                    .collect()
            })
            .collect();
        Some(Row { index, levels })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.options.height - self.next_row.min(self.options.height);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Generation<'_> {}

/// The `choose` of a group of images: draws each image's sub-pixel from the softmax of its
/// logits at `options`' temperature with the next number of its own random stream.
fn chooser(
    options: SamplingOptions,
    streams: &mut [SeededRng],
) -> impl FnMut(usize, usize, &[f32], &mut [Vec<u8>]) + Send + '_ {
    let plane = options.height * options.width;
    move |pixel, channel, logits, images| {
        let probabilities = softmax(logits, options.levels, options.temperature);
        let rows = probabilities.chunks(options.levels);
        for ((image, probs), rng) in images.iter_mut().zip(rows).zip(streams.iter_mut()) {
            image[channel * plane + pixel] = draw(probs, rng.random::<f32>());
        }
    }
}

/// How many groups a batch of `batch` images is drawn in (see [`Generation`]): one per thread
/// of the pool on the CPU backend with the cached sampler, as long as each has [`MIN_GROUP`]
/// images; otherwise one.
fn groups(options: SamplingOptions, batch: usize, device: &Device) -> usize {
    let cpu = matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_));
    if cpu && options.sampler == Sampler::Cached {
        rayon::current_num_threads().min(batch / MIN_GROUP).max(1)
    } else {
        1
    }
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
