//! The cached sampler against the tensor model: the same logits at every pixel (within 1e-4)
//! for every kind of model; the same images for an image drawn alone and as part of a batch,
//! and for a batch drawn in one group or split into groups on several threads;
//! with the same random numbers, the same images as the naive sampler; and a stream that does no
//! work beyond the rows asked for.

use crate::parity;

use burn::prelude::*;
use parity::{HEIGHT, WIDTH, condition, models, worst_logit_difference};
use pixelcnn::model::PixelCnnConfig;
use pixelcnn::random;
use pixelcnn::sample::{Generation, MIN_GROUP, Sampler, SamplingOptions, Start, sample};

fn options(config: &PixelCnnConfig, sampler: Sampler) -> SamplingOptions {
    SamplingOptions {
        levels: config.levels,
        channels: config.input_channels,
        height: HEIGHT,
        width: WIDTH,
        temperature: 1.0,
        sampler,
    }
}

#[test]
fn cached_logits_match_the_full_forward_pass() {
    let device = Device::flex();
    for (seed, (name, config)) in models().into_iter().enumerate() {
        let model = config.init_seeded(&device, seed as u64 + 40);
        let worst = worst_logit_difference(&model, &config, 0, &device);
        assert!(worst < 1e-4, "{name}: logits differ by {worst}");
    }
}

#[test]
fn cached_logits_match_after_given_pixels() {
    // Completion: rows 0 and 1 given in full (no horizontal stack runs there) and the first
    // three pixels of row 2.
    let device = Device::flex();
    for (seed, (name, config)) in models().into_iter().enumerate() {
        let model = config.init_seeded(&device, seed as u64 + 70);
        let worst = worst_logit_difference(&model, &config, 2 * WIDTH + 3, &device);
        assert!(worst < 1e-4, "{name}: logits differ by {worst}");
    }
}

/// Images `images` of a draw of `config`'s model from `seed`, in one batch.
fn draw(
    model: &pixelcnn::model::PixelCnn,
    config: &PixelCnnConfig,
    seed: u64,
    images: std::ops::Range<usize>,
    all: usize,
) -> Vec<Vec<u8>> {
    let device = Device::flex();
    let options = options(config, Sampler::Cached);
    // The conditions of all the images; those of `images` drawn here.
    let condition =
        condition(config, all, &device).map(|h| h.narrow(0, images.start, images.len()));
    let start = Start::blank(&options, seed, images);
    Generation::new(model, start, condition, options, &device).finish()
}

#[test]
fn an_image_drawn_in_a_batch_equals_the_image_drawn_alone() {
    let device = Device::flex();
    for (seed, (name, config)) in models().into_iter().enumerate() {
        let model = config.init_seeded(&device, seed as u64 + 90);
        let batch = draw(&model, &config, 3, 0..16, 16);
        assert!(
            batch.windows(2).any(|pair| pair[0] != pair[1]),
            "{name}: the images differ from each other"
        );
        for i in [0, 5, 15] {
            assert_eq!(
                batch[i],
                draw(&model, &config, 3, i..i + 1, 16)[0],
                "{name}: image {i}"
            );
        }
        assert_eq!(batch[4..8], draw(&model, &config, 3, 4..8, 16), "{name}");
    }
}

#[test]
fn a_batch_split_into_groups_on_several_threads_draws_the_same_images() {
    // On the CPU a batch is drawn in one group of consecutive images per thread of the pool,
    // each with its own sampler, when each group has at least MIN_GROUP images.
    let device = Device::flex();
    let in_pool = |threads: usize, work: &(dyn Fn() -> Vec<Vec<u8>> + Sync)| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
        pool.build().unwrap().install(work)
    };
    let batch = 3 * MIN_GROUP;
    for (seed, (name, config)) in models().into_iter().enumerate() {
        let model = config.init_seeded(&device, seed as u64 + 130);
        let work = || draw(&model, &config, 7, 0..batch, batch);
        assert_eq!(in_pool(3, &work), in_pool(1, &work), "{name}");
    }
}

#[test]
fn cached_and_naive_samplers_draw_identical_images() {
    let device = Device::flex();
    for (seed, (name, config)) in models().into_iter().enumerate() {
        let model = config.init_seeded(&device, seed as u64 + 110);
        let draw = |sampler| {
            let h = condition(&config, 4, &device);
            let options = options(&config, sampler);
            sample(&model, 4, h, options, &mut random::seeded(5), &device)
        };
        let cached = draw(Sampler::Cached);
        assert_eq!(cached, draw(Sampler::Naive), "{name}");
        assert!(
            cached.windows(2).any(|pair| pair[0] != pair[1]),
            "{name}: images differ from each other"
        );
    }
}

#[test]
fn a_stream_yields_each_row_and_stops_when_dropped() {
    let device = Device::flex();
    let config = PixelCnnConfig::new(256).with_layers(2).with_channels(4);
    let model = config.init_seeded(&device, 1);
    let options = SamplingOptions {
        height: 40,
        width: 40,
        ..options(&config, Sampler::Cached)
    };
    let start = Start::blank(&options, 9, 0..4);
    let mut generation = Generation::new(&model, start, None, options, &device);
    assert_eq!(generation.len(), 40);
    let rows: Vec<_> = generation.by_ref().take(2).collect();
    assert_eq!(rows.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(generation.len(), 38);
    let images = generation.images();
    for (b, image) in images.iter().enumerate() {
        assert_eq!(
            rows[1].levels[b],
            image[40..80],
            "the row yielded is the image's"
        );
        assert!(
            image[80..].iter().all(|&l| l == 0),
            "no pixel after the rows asked for is drawn"
        );
    }
    // With K = 256 levels, 320 drawn pixels all at level 0 would be a broken sampler.
    assert!(
        images
            .iter()
            .any(|image| image[..80].iter().any(|&l| l > 0))
    );
    drop(generation);
}
