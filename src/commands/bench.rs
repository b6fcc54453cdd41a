//! `pixelcnn bench`: speed figures of the benchmark model.

use burn::prelude::Device;
use clap::Args;
use pixelcnn::bench::{BenchConfig, model_figures, sampling_figures};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Benchmark configuration [default: both].
    #[arg(long, value_enum)]
    config: Option<BenchConfig>,
    /// Time naive against cached sampling (batch 1 and 16) instead of training and inference.
    #[arg(long)]
    sampling: bool,
    /// Print one JSON line per figure.
    #[arg(long)]
    json: bool,
}

pub(crate) fn bench_command(args: BenchArgs, device: &Device) -> anyhow::Result<()> {
    let configs = args
        .config
        .map_or(vec![BenchConfig::S, BenchConfig::P], |c| vec![c]);
    for config in configs {
        let figures = if args.sampling {
            [1, 16]
                .into_iter()
                .flat_map(|batch| sampling_figures(config, batch, device))
                .collect()
        } else {
            model_figures(config, device)
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
