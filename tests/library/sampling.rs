//! Autoregressive sampling and completion: reproducible under a seed, greedy at temperature 0,
//! and never touching the pixels it was given.

use burn::prelude::*;
use pixelcnn::model::{PixelCnn, PixelCnnConfig};
use pixelcnn::random;
use pixelcnn::sample::{Sampler, SamplingOptions, complete, draw, sample};

const OPTIONS: SamplingOptions = SamplingOptions {
    levels: 4,
    channels: 1,
    height: 6,
    width: 5,
    temperature: 1.0,
    sampler: Sampler::Naive,
};

/// A small random model. (Weights are drawn lazily from burn's process-wide generator, so
/// tests running in parallel get different ones: each test builds its model once.)
fn model() -> PixelCnn {
    PixelCnnConfig::new(OPTIONS.levels)
        .with_layers(3)
        .with_channels(8)
        .init(&Device::flex())
}

const SAMPLERS: [Sampler; 2] = [Sampler::Naive, Sampler::Cached];

fn draw_images(model: &PixelCnn, sampler: Sampler, temperature: f32, seed: u64) -> Vec<Vec<u8>> {
    let options = SamplingOptions {
        temperature,
        sampler,
        ..OPTIONS
    };
    let mut rng = random::seeded(seed);
    sample(model, 3, None, options, &mut rng, &Device::flex())
}

#[test]
fn the_same_seed_draws_the_same_images() {
    let model = model();
    for sampler in SAMPLERS {
        let first = draw_images(&model, sampler, 1.0, 42);
        assert_eq!(first, draw_images(&model, sampler, 1.0, 42));
        assert_ne!(first, draw_images(&model, sampler, 1.0, 43));
        assert!(first.iter().flatten().all(|&level| level < 4));
        assert_eq!(first[0].len(), 30);
    }
}

#[test]
fn temperature_zero_is_greedy_whatever_the_seed() {
    let model = model();
    for sampler in SAMPLERS {
        let greedy = draw_images(&model, sampler, 0.0, 1);
        assert_eq!(greedy, draw_images(&model, sampler, 0.0, 2));
        // The batch images are drawn alike, so greedy ones are identical.
        assert_eq!(greedy[0], greedy[2]);
    }
}

#[test]
fn completion_keeps_the_given_rows_bit_exact() {
    for sampler in SAMPLERS {
        keeps_given_rows(SamplingOptions { sampler, ..OPTIONS });
    }
}

fn keeps_given_rows(options: SamplingOptions) {
    let kept_rows = 2;
    let known = kept_rows * OPTIONS.width;
    let originals: Vec<Vec<u8>> = (0..4)
        .map(|i| (0..30).map(|p| ((p * 3 + i) % 4) as u8).collect())
        .collect();
    let mut rng = random::seeded(9);
    let completed = complete(
        &model(),
        originals.clone(),
        known,
        None,
        options,
        &mut rng,
        &Device::flex(),
    );
    for (original, done) in originals.iter().zip(&completed) {
        assert_eq!(original[..known], done[..known]);
    }
    assert!(
        originals
            .iter()
            .zip(&completed)
            .any(|(o, d)| o[known..] != d[known..]),
        "the rest is drawn anew"
    );
}

#[test]
fn forward_on_the_rows_so_far_equals_the_full_forward() {
    // The sampler runs the model on rows 0..=r only. Causality makes that the same function;
    // the floating-point sums may be grouped differently for another tensor shape.
    let device = Device::flex();
    let model = model();
    let levels: Vec<i64> = (0..30).map(|p| (p * 7 % 4) as i64).collect();
    let full = model
        .forward(Tensor::from_data(
            TensorData::new(levels.clone(), [1, 1, 6, 5]),
            &device,
        ))
        .unwrap();
    for rows in 1..=6 {
        let cropped = Tensor::from_data(
            TensorData::new(levels[..rows * 5].to_vec(), [1, 1, rows, 5]),
            &device,
        );
        let last_row = |logits: Tensor<5>, row: usize| -> Vec<f32> {
            logits
                .slice([0..1, 0..1, 0..4, row..row + 1, 0..5])
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        let (short, long) = (
            last_row(model.forward(cropped).unwrap(), rows - 1),
            last_row(full.clone(), rows - 1),
        );
        for (a, b) in short.iter().zip(&long) {
            assert!((a - b).abs() < 1e-5, "row {}: {a} vs {b}", rows - 1);
        }
    }
}

#[test]
fn draw_inverts_the_cumulative_distribution() {
    let probabilities = [0.1, 0.0, 0.6, 0.3];
    assert_eq!(draw(&probabilities, 0.05), 0);
    assert_eq!(draw(&probabilities, 0.1), 2);
    assert_eq!(draw(&probabilities, 0.69), 2);
    assert_eq!(draw(&probabilities, 0.71), 3);
    // Rounding: a total a hair below 1 never yields an impossible level.
    assert_eq!(draw(&[0.5, 0.49999, 0.0], 0.999999), 1);
}
