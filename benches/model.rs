//! `cargo bench -p pixelcnn-benches --bench model`: the gated layer, the inference forward pass
//! and the training step of the benchmark model (`pixelcnn bench` configs S and P), measured by
//! criterion.

use burn::optim::GradientsParams;
use burn::prelude::*;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use pixelcnn::loss::mean_nll;
use pixelcnn::model::gated::GatedLayerConfig;
use pixelcnn::recipe::new_optimizer;
use pixelcnn_cli::bench::{BenchConfig, SIDE, random_levels};

// The program's allocator settings (not library API), so that the figures match `pixelcnn bench`.
#[path = "../cli/src/allocator.rs"]
mod allocator;

/// One B-layer (3×3) on 16 channels-last feature maps of 28×28, for each configuration's
/// channel count.
fn gated_layer(c: &mut Criterion) {
    // As the pixelcnn binary does.
    allocator::keep_freed_memory();
    let device = Device::flex();
    for config in [BenchConfig::S, BenchConfig::P] {
        let channels = config.model().0.channels;
        let layer = GatedLayerConfig::new(channels, channels, 3, false).init(&device);
        let input = Tensor::<4>::random(
            [16, SIDE, SIDE, channels],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        c.bench_function(&format!("gated_layer/{}", config.name()), |b| {
            b.iter(|| {
                let (v, h, s) = layer.forward(input.clone(), input.clone(), None);
                (v.sum() + h.sum() + s.sum()).into_scalar::<f32>()
            })
        });
    }
}

/// The whole model: a forward pass on 16 images and a training step on one batch. Each
/// sample is one run (flat sampling): a step takes seconds.
fn model(c: &mut Criterion) {
    allocator::keep_freed_memory();
    let device = Device::flex();
    let mut group = c.benchmark_group("model");
    group.sampling_mode(SamplingMode::Flat);
    for config in [BenchConfig::S, BenchConfig::P] {
        let (model_config, batch) = config.model();
        let inference = model_config.init_seeded(&device, 0);
        let input = random_levels(16, model_config.levels, &device);
        group.bench_function(format!("forward_16/{}", config.name()), |b| {
            b.iter(|| {
                inference
                    .forward(input.clone())
                    .unwrap()
                    .sum()
                    .into_scalar::<f32>()
            })
        });

        let training = device.clone().autodiff();
        let mut model = model_config.init_seeded(&training, 0);
        let mut optimizer = new_optimizer();
        let targets = random_levels(batch, model_config.levels, &training);
        group.bench_function(format!("train_step/{}", config.name()), |b| {
            b.iter(|| {
                let loss = mean_nll(model.forward(targets.clone()).unwrap(), targets.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(1e-3, model.clone(), grads);
                loss.into_scalar::<f32>()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = gated_layer, model
}
criterion_main!(benches);
