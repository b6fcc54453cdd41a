//! Train a Gated PixelCNN on your own images, held in memory, and score it.
//!
//! The images here are made up: 12 × 12 grayscale squares of random size and place, 400 of
//! them. Put your own bytes in `pixels` (image after image, row after row, values 0..=255), or
//! a burn tensor's, as the comment below shows. The run folder gets the checkpoint, the logs and
//! a sample grid at every interval, as `pixelcnn train` writes them.
//!
//! `cargo run --release --example train_own_images -- [RUN_DIR] [STEPS]`

use std::error::Error;
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use pixelcnn::data::ImageSet;
use pixelcnn::evaluate::evaluate;
use pixelcnn::model::PixelCnnConfig;
use pixelcnn::observer::{Interval, TrainObserver};
use pixelcnn::run_config::RunConfig;
use pixelcnn::run_dir::RunDir;
use pixelcnn::train::{Outcome, train};

const SIDE: usize = 12;

/// Prints each interval's figures: the library itself prints nothing.
struct Report;

impl TrainObserver for Report {
    fn interval(&self, interval: &Interval) {
        let (train, validation) = interval.metrics.loss.train_and_validation();
        println!(
            "step {}: train {train:.4}, validation {validation:.4} bits/dim; grid in {}",
            interval.metrics.step,
            interval.samples.display()
        );
    }
}

/// `count` bright squares of random size and place on a dark background.
fn squares(count: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut next = |below: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % below
    };
    let mut pixels = Vec::with_capacity(count * SIDE * SIDE);
    for _ in 0..count {
        let size = 3 + next(6);
        let (top, left) = (next(SIDE - size + 1), next(SIDE - size + 1));
        for y in 0..SIDE {
            for x in 0..SIDE {
                let inside = (top..top + size).contains(&y) && (left..left + size).contains(&x);
                pixels.push(if inside { 230 } else { 20 });
            }
        }
    }
    pixels
}

fn images(pixels: Vec<u8>) -> ImageSet {
    ImageSet {
        channels: 1,
        height: SIDE,
        width: SIDE,
        pixels,
        labels: None,
        embeddings: None,
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let folder = args.next().unwrap_or_else(|| "runs/own-images".into());
    let steps = args.next().map_or(Ok(300), |s| s.parse())?;
    let device = Device::flex();

    // From a tensor of your own instead, [N, H, W] of 0..=255:
    // let pixels = tensor.into_data().convert::<u8>().into_vec::<u8>()?;
    let (train_set, validation) = (images(squares(400, 1)), images(squares(100, 2)));

    // K = 4 intensity levels, 4 layers of 16 channels; `pixelcnn train`'s defaults otherwise.
    let model = PixelCnnConfig::new(4).with_layers(4).with_channels(16);
    let config = RunConfig {
        steps,
        interval: steps.div_ceil(3),
        batch_size: 16,
        ..RunConfig::new(model, SIDE, SIDE)
    };
    let run = RunDir::new(&folder);
    run.create()?;
    run.write_config(&config)?;
    let never = AtomicBool::new(false);
    let outcome = train(
        &run,
        &config,
        (train_set, validation.clone()),
        false,
        &device,
        &never,
        &Report,
    )?;
    let Outcome::Finished { step, .. } = outcome else {
        return Err("the run was interrupted".into());
    };

    // The run's moving average of the weights, scored on the held-out images.
    let model = run
        .load_checkpoint_for(&config, &device)?
        .into_inference_model();
    let score = evaluate(&model, &config.model, &validation, usize::MAX, &device)?;
    println!(
        "after {step} steps: {:.4} bits/dim on {} held-out images; the run is in {folder}",
        score.bits_per_dim, score.images
    );
    Ok(())
}
