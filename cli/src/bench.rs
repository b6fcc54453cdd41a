//! Speed measurements of the benchmark model of `benches/torch/MODEL.md` (configs S and P): a
//! training step, an inference forward pass, and naive against cached sampling, the latter also
//! against the arithmetic limit set by the measured speed of the matrix product. Times are
//! medians of repeated runs after warm-up, printed in the same form as the PyTorch peer.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::Serialize;

use pixelcnn::loss::mean_nll;
use pixelcnn::matmul;
use pixelcnn::model::{PixelCnn, PixelCnnConfig};
use pixelcnn::parallel::{self, Collective, ParallelError, Single, forward_in_shards, in_threads};
use pixelcnn::random;
use pixelcnn::recipe::new_optimizer;
use pixelcnn::sample::{Sampler, SamplingOptions, sample};

/// The two benchmark configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum BenchConfig {
    /// 12 B-layers, 16 channels, K = 4, batch 64 (the seed notebook's).
    #[value(name = "S", alias = "s")]
    S,
    /// 10 B-layers, 64 channels, K = 256, batch 32 (paper-like).
    #[value(name = "P", alias = "p")]
    P,
}

/// Image size of every benchmark.
pub const SIDE: usize = 28;
const WARM_UP: usize = 3;
const REPEATS: usize = 20;

impl BenchConfig {
    /// The model (first "A" layer plus the B-layers) and the training batch size.
    pub fn model(self) -> (PixelCnnConfig, usize) {
        let (b_layers, channels, levels, batch) = match self {
            BenchConfig::S => (12, 16, 4, 64),
            BenchConfig::P => (10, 64, 256, 32),
        };
        let config = PixelCnnConfig::new(levels)
            .with_layers(b_layers + 1)
            .with_channels(channels)
            .with_head_channels(32);
        (config, batch)
    }

    pub fn name(self) -> &'static str {
        match self {
            BenchConfig::S => "S",
            BenchConfig::P => "P",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub config: BenchConfig,
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
}

/// Median wall time of `work` in milliseconds, over `repeats` runs after `warm_up` runs.
pub fn median_ms(warm_up: usize, repeats: usize, mut work: impl FnMut()) -> f64 {
    for _ in 0..warm_up {
        work();
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A batch of `batch` random 28×28 images of levels `0..levels`.
pub fn random_levels(batch: usize, levels: usize, device: &Device) -> Tensor<4, Int> {
    Tensor::<4>::random(
        [batch, 1, SIDE, SIDE],
        burn::tensor::Distribution::Uniform(0.0, levels as f64),
        device,
    )
    .int()
    .clamp(0, levels as i64 - 1)
}

/// Images of the `forward_16` figure.
pub const FORWARD_BATCH: usize = 16;

/// `train_step` (forward, backward and Adam update on one batch, in `train_shards` shards as
/// `train --shards` runs it) and `forward_16` (the logits of [`FORWARD_BATCH`] images in
/// `forward_shards` shards, [`parallel::forward_in_shards`]), each with
/// the rate of arithmetic it reached: the convolutions' [`PixelCnn::flop_per_image`] for the forward
/// pass, and three times that for a training step (the backward pass of a product `X W` is two
/// products of the same size, `∂L/∂X` and `∂L/∂W`; that the first layer needs no `∂L/∂X` is
/// left out).
pub fn model_figures(
    config: BenchConfig,
    (train_shards, forward_shards): (usize, usize),
    device: &Device,
) -> Result<Vec<Figure>, ParallelError> {
    let (model_config, batch) = config.model();
    let train_step = match train_shards {
        1 => train_step_ms(&model_config, batch, &Single, device)?,
        _ => in_threads(train_shards, |rank| {
            train_step_ms(&model_config, batch, rank, device)
        })?
        .swap_remove(0)?,
    };
    let model = model_config.init_seeded(device, 0);
    let input = random_levels(FORWARD_BATCH, model_config.levels, device);
    let mut parted = None;
    let forward_16 = median_ms(WARM_UP, REPEATS, || {
        match forward_in_shards(&model, input.clone(), None, forward_shards) {
            Ok(logits) => _ = logits.sum().into_scalar::<f32>(),
            Err(error) => _ = parted.get_or_insert(error),
        }
    });
    if let Some(error) = parted {
        return Err(error);
    }
    let flop = model.flop_per_image(SIDE, SIDE);
    let gflop_per_s = |images: usize, ms: f64| images as f64 * flop / (ms * 1e6);
    Ok(vec![
        figure(config, "train_step", train_step, "ms"),
        figure(config, "train_step_shards", train_shards as f64, "shards"),
        figure(
            config,
            "train_step_gflop_per_s",
            gflop_per_s(3 * batch, train_step),
            "GFLOP/s",
        ),
        figure(config, "forward_16", forward_16, "ms"),
        figure(config, "forward_16_shards", forward_shards as f64, "shards"),
        figure(
            config,
            "forward_16_gflop_per_s",
            gflop_per_s(16, forward_16),
            "GFLOP/s",
        ),
    ])
}

/// The median time of a training step (forward, backward and Adam update) on this rank's
/// shard of a batch of `batch` random images, the gradients averaged over the ranks.
fn train_step_ms(
    config: &PixelCnnConfig,
    batch: usize,
    collective: &dyn Collective,
    device: &Device,
) -> Result<f64, ParallelError> {
    let training_device = device.clone().autodiff();
    let mut model = config.init_seeded(&training_device, 0);
    let mut optimizer = new_optimizer();
    let shard = parallel::shard(batch, collective)?;
    let targets = random_levels(shard.len(), config.levels, &training_device);
    let mut parted = None;
    let ms = median_ms(WARM_UP, REPEATS, || {
        let loss = mean_nll(model.forward(targets.clone()).unwrap(), targets.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if let Err(error) = parallel::average_gradients(&model, &mut grads, &mut [], collective) {
            parted.get_or_insert(error);
        }
        model = optimizer.step(1e-3, model.clone(), grads);
        // Reading the loss waits for the step to finish on asynchronous devices.
        loss.into_scalar::<f32>();
    });
    parted.map_or(Ok(ms), Err)
}

/// Images per second of the naive and the cached sampler at 28×28 for `batch` images, their
/// ratio, and the cached sampler's fraction of the arithmetic limit: its floating-point
/// operations per second ([`PixelCnn::flop_per_image`] × images/s) over `gemm_flops`, the
/// measured rate of the matrix product ([`gemm_flops`]). The naive sampler is timed once (it
/// takes minutes), the cached one as a median of 3.
pub fn sampling_figures(
    config: BenchConfig,
    batch: usize,
    gemm_flops: f64,
    device: &Device,
) -> Vec<Figure> {
    let (model_config, _) = config.model();
    let model: PixelCnn = model_config.init_seeded(device, 0);
    let draw = |sampler| {
        let options = SamplingOptions {
            channels: 1,
            levels: model_config.levels,
            height: SIDE,
            width: SIDE,
            temperature: 1.0,
            sampler,
        };
        sample(&model, batch, None, options, &mut random::seeded(0), device);
    };
    let naive_ms = median_ms(0, 1, || draw(Sampler::Naive));
    let cached_ms = median_ms(1, 3, || draw(Sampler::Cached));
    let per_second = |ms: f64| batch as f64 / (ms / 1e3);
    let flop = model.flop_per_image(SIDE, SIDE);
    vec![
        figure(
            config,
            &format!("naive_images_per_s_b{batch}"),
            per_second(naive_ms),
            "images/s",
        ),
        figure(
            config,
            &format!("cached_images_per_s_b{batch}"),
            per_second(cached_ms),
            "images/s",
        ),
        figure(
            config,
            &format!("cached_speedup_b{batch}"),
            naive_ms / cached_ms,
            "x",
        ),
        figure(
            config,
            &format!("cached_fraction_of_limit_b{batch}"),
            flop * per_second(cached_ms) / gemm_flops,
            "fraction",
        ),
    ]
}

/// What bounds the cached sampler's speed for `config`: its floating-point operations per
/// 28×28 image, the measured rate of the matrix product, and the images per second at that rate.
pub fn sampling_limit_figures(
    config: BenchConfig,
    gemm_flops: f64,
    device: &Device,
) -> Vec<Figure> {
    let (model_config, _) = config.model();
    let model: PixelCnn = model_config.init_seeded(device, 0);
    let flop = model.flop_per_image(SIDE, SIDE);
    vec![
        figure(config, "sampling_mflop_per_image", flop / 1e6, "MFLOP"),
        figure(config, "gemm_gflop_per_s", gemm_flops / 1e9, "GFLOP/s"),
        figure(config, "limit_images_per_s", gemm_flops / flop, "images/s"),
    ]
}

/// Floating-point operations per second of the matrix product behind every convolution, on a
/// 1024×1024 by 1024×1024 product: the arithmetic limit the sampler is measured against.
pub fn gemm_flops(device: &Device) -> f64 {
    const SIZE: usize = 1024;
    let distribution = burn::tensor::Distribution::Normal(0.0, 1.0);
    let a = Tensor::<2>::random([SIZE, SIZE], distribution, device);
    let b = Tensor::<2>::random([SIZE, SIZE], distribution, device);
    let ms = median_ms(WARM_UP, 10, || {
        matmul(a.clone(), b.clone()).sum().into_scalar::<f32>();
    });
    2.0 * (SIZE * SIZE * SIZE) as f64 / (ms / 1e3)
}

fn figure(config: BenchConfig, name: &str, value: f64, unit: &'static str) -> Figure {
    Figure {
        config,
        figure: name.to_string(),
        value,
        unit,
    }
}
