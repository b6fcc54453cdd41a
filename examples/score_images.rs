//! Score images by their likelihood under a model shipped in the library: each image's negative
//! log-likelihood, the set's mean, and the images the model finds most and least likely.
//!
//! The images are the MNIST test digits embedded in the library; score your own by building an
//! `ImageSet` of them (see `train_own_images`).
//!
//! `cargo run --release --example score_images -- [IMAGES]`

use std::error::Error;

use burn::prelude::*;
use pixelcnn::data::DataSource;
use pixelcnn::evaluate::{Likelihood, image_nll};
use pixelcnn::pretrained;

fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(200), |n| n.parse())?;
    let device = Device::flex();
    let (config, model) = pretrained::find("mnist-class")?.load(&device)?;
    // The 1,000 held-out digits of the embedded set, as the model was trained to see them.
    let images = DataSource::Embedded
        .test(None)?
        .for_evaluation(config.binarization);

    let nats = image_nll(&model, &config.model, &images, count, &device)?;
    let mean = Likelihood::of_images(&nats, images.values_per_image());
    println!(
        "{} images: {:.2} nats per image, {:.4} bits/dim",
        mean.images, mean.nll_nats, mean.bits_per_dim
    );
    let mut order: Vec<usize> = (0..nats.len()).collect();
    order.sort_by(|&a, &b| nats[a].total_cmp(&nats[b]));
    let labels = images.labels.as_deref().unwrap_or_default();
    for (what, index) in [("most", order[0]), ("least", order[order.len() - 1])] {
        let label = labels
            .get(index)
            .map_or(String::new(), |l| format!(" (a {l})"));
        println!(
            "{what} likely: image {index}{label}, {:.2} nats",
            nats[index]
        );
    }
    Ok(())
}
