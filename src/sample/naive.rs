//! The naive sampler: one full forward pass of the model over the batch for every pixel.

use burn::prelude::*;

use super::SamplingOptions;
use crate::model::PixelCnn;

/// What the passes share: the image shape, the conditioning vectors and the device.
pub struct Context<'a> {
    pub options: SamplingOptions,
    pub condition: Option<&'a Tensor<2>>,
    pub device: &'a Device,
}

/// Walks every pixel from `first_pixel` on in raster order, handing `choose` the logits `[B][K]`
/// of that pixel given `images` so far; `choose` may write the pixel into `images`.
pub fn run(
    model: &PixelCnn,
    images: &mut [Vec<u8>],
    first_pixel: usize,
    context: Context,
    choose: &mut impl FnMut(usize, &[f32], &mut [Vec<u8>]),
) {
    let Context {
        options,
        condition,
        device,
    } = context;
    let (count, levels, width) = (images.len(), options.levels, options.width);
    for pixel in first_pixel..options.height * width {
        let (row, column) = (pixel / width, pixel % width);
        // Rows below the current one cannot influence it (the model is causal), so the
        // forward pass only covers rows 0..=row.
        let logits: Vec<f32> = model
            .forward_conditioned(levels_tensor(images, row + 1, width, device), condition)
            .slice([0..count, 0..levels, row..row + 1, column..column + 1])
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("logits are floats");
        choose(pixel, &logits, images);
    }
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
