//! The naive sampler: one full forward pass of the model over the batch for every sub-pixel.

use burn::prelude::*;

use super::{Choose, RowSampler, SamplingOptions};
use crate::model::PixelCnn;

/// The model, the image shape, the conditioning vectors and the device.
pub struct Naive<'a> {
    pub model: &'a PixelCnn,
    pub condition: Option<Tensor<2>>,
    pub options: SamplingOptions,
    pub device: &'a Device,
}

impl RowSampler for Naive<'_> {
    /// Runs the model on rows `0..=row` for each sub-pixel of `row` from `first_pixel` on.
    fn row(&mut self, row: usize, images: &mut [Vec<u8>], first_pixel: usize, choose: &mut Choose) {
        let (count, levels, width) = (images.len(), self.options.levels, self.options.width);
        for pixel in (row * width).max(first_pixel)..(row + 1) * width {
            let column = pixel % width;
            for channel in 0..self.options.channels {
                // Rows below the current one cannot influence it (the model is causal), so the
                // forward pass only covers rows 0..=row.
                let input = levels_tensor(images, self.options, row + 1, self.device);
                let logits: Vec<f32> = self
                    .model
                    .forward_conditioned(input, self.condition.as_ref())
                    .expect("samplers draw from models with logits (see `sample`)")
                    .slice([
                        0..count,
                        channel..channel + 1,
                        0..levels,
                        row..row + 1,
                        column..column + 1,
                    ])
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .expect("logits are floats");
                choose(pixel, channel, &logits, images);
            }
        }
    }
}

/// The first `rows` rows of every channel of `images` as a tensor `[B, C, rows, W]`.
fn levels_tensor(
    images: &[Vec<u8>],
    options: SamplingOptions,
    rows: usize,
    device: &Device,
) -> Tensor<4, Int> {
    let (plane, kept) = (options.height * options.width, rows * options.width);
    let data: Vec<i64> = images
        .iter()
        .flat_map(|image| image.chunks(plane).flat_map(|p| &p[..kept]))
        .map(|&l| i64::from(l))
        .collect();
    Tensor::from_data(
        TensorData::new(data, [images.len(), options.channels, rows, options.width]),
        device,
    )
}
