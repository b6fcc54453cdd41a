//! The cached sampler against the tensor model: the same logits at every pixel (within 1e-4)
//! and, with the same random numbers, the same images as the naive sampler.

use burn::prelude::*;
use pixelcnn::model::{Conditioning, PixelCnn, PixelCnnConfig, SpatialMap, one_hot};
use pixelcnn::random;
use pixelcnn::sample::cached::CachedGatedPixelCnn;
use pixelcnn::sample::{Sampler, SamplingOptions, sample};

const HEIGHT: usize = 7;
const WIDTH: usize = 6;

/// (layers, channels, first kernel, kernel, levels, colours)
type Shape = (usize, usize, usize, usize, usize, usize);

const CONFIGS: [Shape; 6] = [
    (3, 8, 7, 3, 4, 1),
    (4, 6, 5, 5, 2, 1),
    (2, 5, 3, 3, 256, 1),
    (5, 12, 7, 3, 16, 1),
    (3, 9, 5, 3, 4, 3),
    (2, 6, 3, 3, 8, 3),
];

fn model((layers, channels, first_kernel, kernel, levels, colours): Shape) -> PixelCnn {
    PixelCnnConfig::new(levels)
        .with_input_channels(colours)
        .with_layers(layers)
        .with_channels(channels)
        .with_first_kernel(first_kernel)
        .with_kernel(kernel)
        .with_head_channels(channels + 3)
        .init_seeded(&Device::flex(), layers as u64 * 31 + channels as u64)
}

#[test]
fn cached_logits_match_the_full_forward_pass() {
    let device = Device::flex();
    for config in CONFIGS {
        let (levels, colours) = (config.4, config.5);
        let model = model(config);
        let PixelCnn::Gated(gated) = &model else {
            unreachable!()
        };
        let pixels = HEIGHT * WIDTH;
        let mut images: Vec<Vec<u8>> = (0..3)
            .map(|b| {
                (0..colours * pixels)
                    .map(|p| ((p * 5 + b * 3) % levels) as u8)
                    .collect()
            })
            .collect();
        let data: Vec<i64> = images.iter().flatten().map(|&l| i64::from(l)).collect();
        let full: Vec<f32> = model
            .forward(Tensor::from_data(
                TensorData::new(data, [3, colours, HEIGHT, WIDTH]),
                &device,
            ))
            .into_data()
            .try_into_vec()
            .unwrap();
        let mut worst = 0.0f32;
        let mut visited = 0;
        CachedGatedPixelCnn::new(gated, 3, HEIGHT, WIDTH, None).run(
            &mut images,
            |pixel, colour, logits, _| {
                visited += 1;
                for b in 0..3 {
                    for k in 0..levels {
                        let expected = full[((b * colours + colour) * levels + k) * pixels + pixel];
                        worst = worst.max((logits[b * levels + k] - expected).abs());
                    }
                }
            },
        );
        assert_eq!(visited, colours * pixels);
        assert!(worst < 1e-4, "{config:?}: logits differ by {worst}");
    }
}

#[test]
fn cached_and_naive_samplers_draw_identical_images() {
    for config in CONFIGS {
        let model = model(config);
        let draw = |sampler| {
            let options = SamplingOptions {
                levels: config.4,
                channels: config.5,
                height: HEIGHT,
                width: WIDTH,
                temperature: 1.0,
                sampler,
            };
            sample(
                &model,
                4,
                None,
                options,
                &mut random::seeded(5),
                &Device::flex(),
            )
        };
        let cached = draw(Sampler::Cached);
        assert_eq!(cached, draw(Sampler::Naive), "{config:?}");
        assert!(
            cached.windows(2).any(|pair| pair[0] != pair[1]),
            "images differ from each other"
        );
    }
}

#[test]
fn cached_sampler_follows_the_class_condition() {
    let config = PixelCnnConfig::new(4)
        .with_layers(4)
        .with_channels(8)
        .with_conditioning(Conditioning::Class { classes: 3 });
    follows_the_condition(config.clone().init_seeded(&Device::flex(), 21));
    let map = SpatialMap {
        channels: 5,
        height: HEIGHT,
        width: WIDTH,
    };
    follows_the_condition(
        config
            .with_spatial(Some(map))
            .init_seeded(&Device::flex(), 22),
    );
}

fn follows_the_condition(model: PixelCnn) {
    let device = Device::flex();
    let classes = [0, 2, 1, 2];
    let draw = |sampler| {
        let options = SamplingOptions {
            levels: 4,
            channels: 1,
            height: HEIGHT,
            width: WIDTH,
            temperature: 1.0,
            sampler,
        };
        let h = one_hot(&classes, 3, &device);
        sample(&model, 4, Some(h), options, &mut random::seeded(8), &device)
    };
    assert_eq!(draw(Sampler::Cached), draw(Sampler::Naive));

    // Per-pixel logits against the full forward pass, given the classes.
    let PixelCnn::Gated(gated) = &model else {
        unreachable!()
    };
    let mut images: Vec<Vec<u8>> = (0..4)
        .map(|b| (0..HEIGHT * WIDTH).map(|p| ((p + b) % 4) as u8).collect())
        .collect();
    let data: Vec<i64> = images.iter().flatten().map(|&l| i64::from(l)).collect();
    let h = one_hot(&classes, 3, &device);
    let input = Tensor::from_data(TensorData::new(data, [4, 1, HEIGHT, WIDTH]), &device);
    let full: Vec<f32> = model
        .forward_conditioned(input, Some(&h))
        .into_data()
        .try_into_vec()
        .unwrap();
    let vectors: Vec<Vec<f32>> = classes
        .iter()
        .map(|&c| (0..3).map(|i| if i == c { 1.0 } else { 0.0 }).collect())
        .collect();
    let pixels = HEIGHT * WIDTH;
    let mut worst = 0.0f32;
    let cached = CachedGatedPixelCnn::new(gated, 4, HEIGHT, WIDTH, Some(vectors));
    cached.run(&mut images, |pixel, _, logits, _| {
        for b in 0..4 {
            for k in 0..4 {
                let expected = full[(b * 4 + k) * pixels + pixel];
                worst = worst.max((logits[b * 4 + k] - expected).abs());
            }
        }
    });
    assert!(worst < 1e-4, "logits differ by {worst}");
}
