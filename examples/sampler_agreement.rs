//! How often the cached sampler draws what the naive one draws, on a trained run.
//!
//! The cached sampler computes each pixel's logits with products of other shapes (another order
//! of summation) and agrees with the full forward pass only to within rounding, so
//! a uniform number that falls between the two cumulative distributions draws different levels.
//!
//! 1. Given context: for every pixel of the run's test images, the logits of both given the
//!    true pixels before it, and the chance, over the uniform number both samplers share, that
//!    their inverse-CDF draws differ (the total width of the gaps between the two cumulative
//!    distributions): exact, with no sampling noise.
//! 2. Free running: images drawn by both samplers from the same seed, compared pixel by pixel
//!    (once two draws differ, the rest of the image has another context).
//!
//! `cargo run --release --example sampler_agreement -- RUN_DIR [FREE_IMAGES]`

use std::error::Error;

use burn::prelude::*;
use pixelcnn::model::PixelCnn;
use pixelcnn::run_dir::RunDir;
use pixelcnn::sample::{Sampler, SamplingOptions, row_sampler, sample, softmax};

const BATCH: usize = 100;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let run = RunDir::new(
        args.next()
            .ok_or("usage: sampler_agreement RUN_DIR [FREE_IMAGES]")?,
    );
    let free: usize = args.next().map_or(Ok(256), |n| n.parse())?;
    let device = Device::flex();
    let config = run.read_config()?;
    let model = run
        .load_checkpoint_for(&config, &device)?
        .into_inference_model();
    if !matches!(model, PixelCnn::Gated(_) | PixelCnn::Masked(_)) {
        return Err("this measurement covers unconditional gated and masked models".into());
    }
    if config.model.conditioning.dim().is_some() || config.model.input_channels != 1 {
        return Err("this measurement covers unconditional grayscale runs".into());
    }
    let test = config.data_source(None)?.test(None)?;
    let (levels, height, width) = (config.model.levels, test.height, test.width);
    let options = |sampler| SamplingOptions {
        levels,
        channels: 1,
        height,
        width,
        temperature: 1.0,
        sampler,
    };

    let (mut pixels, mut differ, mut largest) = (0usize, 0.0f64, 0.0f64);
    for start in (0..test.len()).step_by(BATCH) {
        let indices: Vec<usize> = (start..(start + BATCH).min(test.len())).collect();
        let mut images: Vec<Vec<u8>> = indices.iter().map(|&i| test.levels(i, levels)).collect();
        let full: Vec<f32> = model
            .forward(test.batch(&indices, levels, &device))?
            .permute([0, 1, 3, 4, 2])
            .into_data()
            .convert::<f32>()
            .try_into_vec()?;
        let mut cached = row_sampler(
            &model,
            indices.len(),
            None,
            options(Sampler::Cached),
            &device,
        );
        for row in 0..height {
            cached.row(row, &mut images, 0, &mut |pixel, _, logits, _| {
                for (b, row) in logits.chunks(levels).enumerate() {
                    let reference = &full[(b * height * width + pixel) * levels..][..levels];
                    let gap = cdf_gap(&softmax(row, levels, 1.0), &softmax(reference, levels, 1.0));
                    differ += gap;
                    largest = largest.max(gap);
                    pixels += 1;
                }
            });
        }
    }
    println!(
        "given context: {} test images, {pixels} pixels: chance that a draw differs {:.3e} on \
         average (largest {largest:.3e}); expected differing draws per image {:.2e}",
        test.len(),
        differ / pixels as f64,
        differ / test.len() as f64
    );

    let draw = |sampler| {
        sample(
            &model,
            free,
            None,
            options(sampler),
            &mut pixelcnn::random::seeded(1),
            &device,
        )
    };
    let (naive, cached) = (draw(Sampler::Naive), draw(Sampler::Cached));
    let same_images = naive.iter().zip(&cached).filter(|(a, b)| a == b).count();
    let same_pixels: usize = naive
        .iter()
        .zip(&cached)
        .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
        .sum();
    println!(
        "free running, seed 1: {same_images} of {free} images identical; {:.4}% of pixels identical",
        100.0 * same_pixels as f64 / (free * height * width) as f64
    );
    Ok(())
}

/// The chance over a uniform number u that the inverse-CDF draws from `p` and `q` differ: the
/// length of the union of the gaps between their cumulative sums.
fn cdf_gap(p: &[f32], q: &[f32]) -> f64 {
    let (mut a, mut b, mut gap) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in p.iter().zip(q).take(p.len() - 1) {
        a += f64::from(*x);
        b += f64::from(*y);
        gap += (a - b).abs();
    }
    gap
}
