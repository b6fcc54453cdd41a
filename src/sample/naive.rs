//! The naive sampler: one full forward pass of the model over the batch for every sub-pixel.

use burn::prelude::*;

use super::SamplingOptions;
use crate::model::PixelCnn;

/// What the passes share: the image shape, the conditioning vectors and the device.
pub struct Context<'a> {
    pub options: SamplingOptions,
    pub condition: Option<&'a Tensor<2>>,
    pub device: &'a Device,
}

/// Walks every pixel from `first_pixel` on in raster order and each of its channels in turn,
/// handing `choose(pixel, channel, logits)` the logits `[B][K]` of that sub-pixel given
/// `images` so far; `choose` may write the sub-pixel into `images`.
pub fn run(
    model: &PixelCnn,
    images: &mut [Vec<u8>],
    first_pixel: usize,
    context: Context,
    choose: &mut impl FnMut(usize, usize, &[f32], &mut [Vec<u8>]),
) {
    let Context {
        options,
        condition,
        device,
    } = context;
    let (count, levels, width) = (images.len(), options.levels, options.width);
    for pixel in first_pixel..options.height * width {
        let (row, column) = (pixel / width, pixel % width);
        for channel in 0..options.channels {
            // Rows below the current one cannot influence it (the model is causal), so the
            // forward pass only covers rows 0..=row.
            let input = levels_tensor(images, options, row + 1, device);
            let logits: Vec<f32> = model
                .forward_conditioned(input, condition)
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
