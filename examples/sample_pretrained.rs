//! Load a model shipped in the library and draw from it: a grid of digits, one row per class.
//!
//! `cargo run --release --example sample_pretrained -- [OUT.png] [PER_CLASS]`

use std::error::Error;

use burn::prelude::*;
use pixelcnn::model::{Conditioning, one_hot};
use pixelcnn::picture;
use pixelcnn::pretrained;
use pixelcnn::random;
use pixelcnn::sample::{Sampler, SamplingOptions, sample};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "digits.png".into());
    let per_class: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let device = Device::flex();

    let (config, model) = pretrained::find("mnist-class")?.load(&device)?;
    let Conditioning::Class { classes } = config.model.conditioning else {
        return Err("mnist-class is class-conditional".into());
    };
    let options = SamplingOptions {
        levels: config.model.levels,
        channels: config.model.input_channels,
        height: config.image_height,
        width: config.image_width,
        temperature: 1.0,
        sampler: Sampler::Cached,
    };
    // Image i is of class i / per_class: a row of `per_class` images per class.
    let labels: Vec<usize> = (0..classes * per_class).map(|i| i / per_class).collect();
    let condition = one_hot(&labels, classes, &device);
    let mut rng = random::seeded(7);
    let images = sample(
        &model,
        labels.len(),
        Some(condition),
        options,
        &mut rng,
        &device,
    );

    let tiles: Vec<_> = images
        .iter()
        .map(|levels| picture::levels_tile(levels, options.levels, options.height, options.width))
        .collect();
    picture::save(
        &picture::grid(&tiles, per_class, 3),
        std::path::Path::new(&out),
    )?;
    println!(
        "{} digits, {per_class} of each class, in {out}",
        images.len()
    );
    Ok(())
}
