//! The cached sampler's per-pixel logits against the full forward pass, for the tests of the
//! CPU backend (`cached_sampling.rs`) and of the GPU one (`wgpu.rs`).

use burn::prelude::*;
use pixelcnn::model::{Conditioning, PixelCnn, PixelCnnConfig, SpatialMap};
use pixelcnn::sample::{Sampler, SamplingOptions, row_sampler};

pub const HEIGHT: usize = 7;
pub const WIDTH: usize = 6;
pub const BATCH: usize = 3;

/// Every kind of model the cached sampler covers, small: grayscale and colour gated models of
/// several shapes, class, vector and spatial-map conditions, the masked PixelCNN.
pub fn models() -> Vec<(&'static str, PixelCnnConfig)> {
    let gated = |layers, channels, first_kernel, kernel, levels, colours| {
        PixelCnnConfig::new(levels)
            .with_input_channels(colours)
            .with_layers(layers)
            .with_channels(channels)
            .with_first_kernel(first_kernel)
            .with_kernel(kernel)
            .with_head_channels(channels + 3)
    };
    let map = SpatialMap {
        channels: 5,
        height: HEIGHT,
        width: WIDTH,
    };
    let class = Conditioning::Class { classes: 3 };
    vec![
        ("grayscale", gated(3, 8, 7, 3, 4, 1)),
        ("grayscale, wide kernels", gated(4, 6, 5, 5, 2, 1)),
        ("grayscale, K = 256", gated(2, 5, 3, 3, 256, 1)),
        ("grayscale, 1×1 later kernels", gated(3, 4, 3, 1, 4, 1)),
        ("colour", gated(3, 9, 5, 3, 4, 3)),
        ("colour, small", gated(2, 6, 3, 3, 8, 3)),
        ("class", gated(4, 8, 7, 3, 4, 1).with_conditioning(class)),
        (
            "vector",
            gated(3, 8, 5, 3, 4, 1).with_conditioning(Conditioning::Embedding { dim: 5 }),
        ),
        (
            "spatial map",
            gated(4, 8, 7, 3, 4, 1)
                .with_conditioning(class)
                .with_spatial(Some(map)),
        ),
        (
            "colour, class",
            gated(2, 6, 3, 3, 4, 3).with_conditioning(class),
        ),
        (
            "masked",
            gated(4, 8, 7, 3, 4, 1).with_arch(pixelcnn::model::Architecture::Pixelcnn),
        ),
    ]
}

/// One conditioning vector per image for `config`'s conditioning: one-hot classes or a
/// pattern of reals.
pub fn condition(config: &PixelCnnConfig, batch: usize, device: &Device) -> Option<Tensor<2>> {
    let values: Vec<f32> = match config.conditioning {
        Conditioning::None => return None,
        Conditioning::Class { classes } => (0..batch * classes)
            .map(|i| f32::from(u8::from(i / classes % classes == i % classes)))
            .collect(),
        Conditioning::Embedding { dim } => (0..batch * dim)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect(),
    };
    let dim = values.len() / batch;
    Some(Tensor::from_data(
        TensorData::new(values, [batch, dim]),
        device,
    ))
}

/// The largest difference between the logits the cached sampler gives for every sub-pixel from
/// `first_pixel` on, following fixed images, and those of one forward pass over the images.
pub fn worst_logit_difference(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    first_pixel: usize,
    device: &Device,
) -> f32 {
    let (levels, colours) = (config.levels, config.input_channels);
    let pixels = HEIGHT * WIDTH;
    let mut images: Vec<Vec<u8>> = (0..BATCH)
        .map(|b| {
            (0..colours * pixels)
                .map(|p| ((p * 5 + b * 3) % levels) as u8)
                .collect()
        })
        .collect();
    let data: Vec<i64> = images.iter().flatten().map(|&l| i64::from(l)).collect();
    let input = Tensor::from_data(
        TensorData::new(data, [BATCH, colours, HEIGHT, WIDTH]),
        device,
    );
    let condition = condition(config, BATCH, device);
    let full: Vec<f32> = model
        .forward_conditioned(input, condition.as_ref())
        .unwrap()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let options = SamplingOptions {
        levels,
        channels: colours,
        height: HEIGHT,
        width: WIDTH,
        temperature: 1.0,
        sampler: Sampler::Cached,
    };
    let mut sampler = row_sampler(model, BATCH, condition, options, device);
    let (mut worst, mut visited) = (0.0f32, 0);
    for row in 0..HEIGHT {
        sampler.row(
            row,
            &mut images,
            first_pixel,
            &mut |pixel, colour, logits, _| {
                visited += 1;
                for b in 0..BATCH {
                    for k in 0..levels {
                        let expected = full[((b * colours + colour) * levels + k) * pixels + pixel];
                        worst = worst.max((logits[b * levels + k] - expected).abs());
                    }
                }
            },
        );
    }
    assert_eq!(
        visited,
        colours * (pixels - first_pixel),
        "sub-pixels visited"
    );
    worst
}
