//! The `pixelcnn` command line: train, evaluate and sample PixelCNN image models.

mod allocator;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pixelcnn::device::DeviceChoice;

use commands::autoencoder::{
    InterpolateArgs, ReconstructArgs, interpolate_command, reconstruct_command,
};
use commands::bench::{BenchArgs, bench_command};
use commands::complete::{CompleteArgs, complete_command};
use commands::eval::{EvalArgs, eval_command};
use commands::export::{ExportArgs, export_command, pretrained_command};
use commands::histogram::{HistogramArgs, histogram_command};
use commands::sample::{SampleArgs, sample_command};
use commands::serve::{ServeArgs, serve_command};
use commands::train::{TrainArgs, train_command};
use commands::{RunArgs, gif_command, plot_command};

#[derive(Parser)]
#[command(
    version,
    about = "Gated PixelCNN: train, evaluate and sample autoregressive image models"
)]
struct Cli {
    /// Where tensors are computed.
    #[arg(long, global = true, value_enum, default_value_t = DeviceChoice::Flex)]
    device: DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; without --data-dir on the MNIST test set embedded in the binary.
    Train(TrainArgs),
    /// Negative log-likelihood of the test set, in nats per image and bits per dimension.
    Eval(EvalArgs),
    /// Draw images from a trained model, one pixel at a time, into a grid picture or a folder.
    Sample(SampleArgs),
    /// Keep the top rows of test images and let the model draw the rest.
    Complete(CompleteArgs),
    /// Compare data sets by the likelihood a model gives each image (files of `eval
    /// --per-image`): a histogram of bits/dim, and how well it tells them apart (AUROC).
    Histogram(HistogramArgs),
    /// Rebuild RUN_DIR/progress.gif from the run's sample grids.
    Gif(RunArgs),
    /// Redraw RUN_DIR/loss.png from the run's metrics.
    Plot(RunArgs),
    /// Time the benchmark model of benches/torch/MODEL.md: training step, forward pass, sampling.
    Bench(BenchArgs),
    /// Auto-encoders: each test image beside images decoded from its code.
    Reconstruct(ReconstructArgs),
    /// Auto-encoders: decode codes on the line between two test images' codes.
    Interpolate(InterpolateArgs),
    /// Write a model's weights as one safetensors file, with its settings in the metadata.
    Export(ExportArgs),
    /// List the models shipped inside the binary (use them with --pretrained NAME).
    Pretrained,
    /// A local web page to play with a model: live generation, completing your own drawing,
    /// and where the model is surprised.
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    // The panics the library catches on bad input (in burn's record decoding, a GPU runtime that
    // fails to start) become one error line, not a panic message and an error line.
    pixelcnn::quiet_panic::install();
    let cli = Cli::parse();
    // A long-running server gives memory back after a burst of draws; the rest keep it.
    if !matches!(cli.command, Command::Serve(_)) {
        allocator::keep_freed_memory();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let selected = cli.device.select()?;
    if let Some(rank) = selected.shares_default_gpu {
        eprintln!(
            "warning: rank {rank} of this machine finds no discrete GPU {rank}: it shares the default one"
        );
    }
    let device = selected.device;
    match cli.command {
        Command::Train(args) => train_command(args, &device),
        Command::Eval(args) => eval_command(args, &device),
        Command::Sample(args) => sample_command(args, &device),
        Command::Complete(args) => complete_command(args, &device),
        Command::Gif(args) => gif_command(args),
        Command::Histogram(args) => histogram_command(args),
        Command::Bench(args) => bench_command(args, &device),
        Command::Reconstruct(args) => reconstruct_command(args, &device),
        Command::Interpolate(args) => interpolate_command(args, &device),
        Command::Plot(args) => plot_command(args),
        Command::Export(args) => export_command(args, &device),
        Command::Pretrained => pretrained_command(),
        Command::Serve(args) => serve_command(args, &device),
    }
}
