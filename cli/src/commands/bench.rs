//! `pixelcnn bench`: speed figures of the benchmark model.

use burn::prelude::Device;
use clap::Args;
use pixelcnn::parallel;
use pixelcnn::precision::{self, Precision};
use pixelcnn::run_config::MAX_SHARDS;
use pixelcnn_cli::bench::{
    BenchConfig, FORWARD_BATCH, gemm_flops, model_figures, sampling_figures, sampling_limit_figures,
};

use super::values::between;

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Benchmark configuration [default: both].
    #[arg(long, value_enum)]
    config: Option<BenchConfig>,
    /// Time naive against cached sampling (batch 1, 16 and 64), and the cached sampler against
    /// the arithmetic limit, instead of training and inference.
    #[arg(long)]
    sampling: bool,
    /// Train, and compute the forward pass of 16 images, in this many shards side by side, as
    /// `train --shards` does [default: as `train` would for each batch].
    #[arg(long, value_parser = between(1, MAX_SHARDS))]
    shards: Option<usize>,
    /// Precision of the matrix products, as `train --precision` [default: f32].
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Print one JSON line per figure.
    #[arg(long)]
    json: bool,
}

/// The batch sizes of `--sampling`.
const SAMPLING_BATCHES: [usize; 3] = [1, 16, 64];

pub(crate) fn bench_command(args: BenchArgs, device: &Device) -> anyhow::Result<()> {
    let configs = args
        .config
        .map_or(vec![BenchConfig::S, BenchConfig::P], |c| vec![c]);
    if args.precision == Precision::Bf16 && !parallel::on_cpu(device) {
        anyhow::bail!("--precision bf16 is the CPU's mixed precision; a GPU computes in f32");
    }
    let _precision = precision::scoped(args.precision)?;
    let gemm = args.sampling.then(|| gemm_flops(device));
    for config in configs {
        let figures = if let Some(gemm) = gemm {
            let mut figures = sampling_limit_figures(config, gemm, device);
            for batch in SAMPLING_BATCHES {
                figures.extend(sampling_figures(config, batch, gemm, device));
            }
            figures
        } else {
            let batch = config.model().1;
            let shards = |batch| {
                args.shards
                    .unwrap_or_else(|| parallel::default_shards(batch, device))
            };
            model_figures(config, (shards(batch), shards(FORWARD_BATCH)), device)?
        };
        for figure in figures {
            if args.json {
                println!("{}", serde_json::to_string(&figure)?);
            } else {
                println!(
                    "RESULT pixelcnn {} {} {:.2}",
                    config.name(),
                    figure.figure,
                    figure.value
                );
            }
        }
    }
    Ok(())
}
