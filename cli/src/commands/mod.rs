//! The subcommands of `pixelcnn`, one module each, and what they share: opening a run folder,
//! its test images, and how images are drawn.

pub(crate) mod autoencoder;
pub(crate) mod bench;
pub(crate) mod complete;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod histogram;
pub(crate) mod progress;
pub(crate) mod sample;
pub(crate) mod serve;
pub(crate) mod train;
pub(crate) mod values;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::Device;
use clap::Args;
use pixelcnn::data::{Embeddings, ImageSet};
use pixelcnn::model::PixelCnn;
use pixelcnn::picture::{self, MAX_GRID_SIDE, MAX_GRID_TILES};
use pixelcnn::pretrained;
use pixelcnn::run_config::RunConfig;
use pixelcnn::run_dir::RunDir;
use pixelcnn::sample::{Sampler, SamplingOptions};
use pixelcnn_cli::animation::write_progress_gif;
use pixelcnn_cli::plot::loss_plot;

/// How images are drawn and shown.
#[derive(Args)]
pub(crate) struct DrawingArgs {
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0, value_parser = values::at_least(0u64))]
    seed: u64,
    /// Softmax temperature; 0 always picks the most likely level.
    #[arg(long, default_value_t = 1.0, value_parser = values::non_negative::<f32>)]
    temperature: f32,
    /// Upscaling factor of each image (nearest neighbour).
    #[arg(long, default_value_t = 4, value_parser = values::at_least(1u32))]
    scale: u32,
    /// cached: incremental, batched, fast (gated and masked models); naive: one full forward pass
    /// per pixel.
    #[arg(long, value_enum, default_value_t = Sampler::Cached)]
    sampler: Sampler,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
}

/// The model a command uses: a run folder, a model shipped inside the binary, or a weights file
/// of `pixelcnn export`.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ModelChoice {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Instead of --run: a model shipped inside the binary, by name (`pixelcnn pretrained`
    /// lists them).
    #[arg(long)]
    pub(crate) pretrained: Option<String>,
    /// Instead of --run: a safetensors file written by `pixelcnn export`, here or elsewhere (the
    /// run's settings are in its metadata).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
}

impl ModelChoice {
    /// The settings the model was trained with.
    pub(crate) fn config(&self) -> anyhow::Result<RunConfig> {
        match (&self.run, &self.pretrained, &self.weights) {
            (Some(run), _, _) => Ok(open_run(run)?.1),
            (_, Some(name), _) => Ok(pretrained::find(name)?.config()?),
            (_, _, Some(file)) => Ok(pixelcnn::export::read_file_config(file)?),
            (None, None, None) => unreachable!("clap requires --run, --pretrained or --weights"),
        }
    }

    /// The model to evaluate and sample (a run's moving average of the weights, if it keeps
    /// one), checked against `config`.
    pub(crate) fn load(&self, config: &RunConfig, device: &Device) -> anyhow::Result<PixelCnn> {
        let (read, model) = match (&self.run, &self.pretrained, &self.weights) {
            (Some(run), _, _) => {
                let checkpoint = RunDir::new(run).load_checkpoint_for(config, device)?;
                return Ok(checkpoint.into_inference_model());
            }
            (_, Some(name), _) => pretrained::find(name)?.load(device)?,
            (_, _, Some(file)) => pixelcnn::export::read_file(file, device)?,
            (None, None, None) => unreachable!("clap requires --run, --pretrained or --weights"),
        };
        if read != *config {
            bail!("{} changed while it was read", self.describe());
        }
        Ok(model)
    }

    /// The run folder, `pretrained NAME` or the weights file, for messages.
    pub(crate) fn describe(&self) -> String {
        match (&self.run, &self.pretrained, &self.weights) {
            (Some(run), _, _) => run.display().to_string(),
            (_, Some(name), _) => format!("pretrained model {name}"),
            (_, _, file) => file
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
        }
    }
}

/// Reads `--condition-file`, if given.
pub(crate) fn read_embeddings(path: Option<&Path>) -> anyhow::Result<Option<Embeddings>> {
    Ok(path.map(Embeddings::read_npy).transpose()?)
}

/// The test images of a run: `data_dir`, else the run's own data, with their conditioning
/// vectors if given, binarised as the run was; checked against the size the model was trained
/// on, to hold at least one image, and to hold the labels or vectors the model is conditioned
/// on (every command that reads test images checks them here, the same way).
pub(crate) fn test_images(
    data_dir: Option<PathBuf>,
    condition_file: Option<&Path>,
    config: &RunConfig,
) -> anyhow::Result<ImageSet> {
    let test = config
        .data_source(data_dir)?
        .test(read_embeddings(condition_file)?)
        .context("cannot load the test data")?
        .for_evaluation(config.binarization);
    let trained = (
        config.model.input_channels,
        config.image_height,
        config.image_width,
    );
    if (test.channels, test.height, test.width) != trained {
        bail!(
            "the test images are {}, but the model was trained on {}",
            describe(test.channels, test.height, test.width),
            describe(trained.0, trained.1, trained.2)
        );
    }
    if test.is_empty() {
        bail!("the test data holds no images");
    }
    if config.model.latent.is_none() {
        // An auto-encoder conditions on its own code, never on the data's labels or vectors.
        test.check_conditioning(config.model.conditioning)?;
    }
    Ok(test)
}

/// "28×28 grayscale" or "32×32 RGB".
pub(crate) fn describe(channels: usize, height: usize, width: usize) -> String {
    let kind = if channels == 1 { "grayscale" } else { "RGB" };
    format!("{height}×{width} {kind}")
}

pub(crate) fn sampling_options(config: &RunConfig, drawing: &DrawingArgs) -> SamplingOptions {
    SamplingOptions {
        levels: config.model.levels,
        channels: config.model.input_channels,
        height: config.image_height,
        width: config.image_width,
        temperature: drawing.temperature,
        sampler: drawing.sampler,
    }
}

/// Refuses, before any drawing, a grid of more than [`MAX_GRID_TILES`] images of `options`' size
/// or more than [`MAX_GRID_SIDE`] pixels on a side; `instead` says how to get a smaller one.
pub(crate) fn check_grid(
    tiles: usize,
    columns: usize,
    options: &SamplingOptions,
    scale: u32,
    instead: &str,
) -> anyhow::Result<()> {
    if tiles > MAX_GRID_TILES {
        bail!(
            "a grid of {tiles} images is too many for one picture (at most {MAX_GRID_TILES}): {instead}"
        );
    }
    let tile = (options.width as u32, options.height as u32);
    let (width, height) = picture::grid_size(tiles, columns, tile, scale);
    if width.max(height) > MAX_GRID_SIDE {
        bail!(
            "a grid of {width}×{height} pixels is too large for one picture (at most {MAX_GRID_SIDE} a side): {instead}"
        );
    }
    Ok(())
}

/// `sample` and `complete` draw from p(x) or p(x|h) for given h; an auto-encoder's h comes
/// from images, through `reconstruct` and `interpolate`.
pub(crate) fn refuse_autoencoder(config: &RunConfig) -> anyhow::Result<()> {
    if config.model.latent.is_some() {
        bail!(
            "this is an auto-encoder: it decodes codes of images; use `pixelcnn reconstruct` or `pixelcnn interpolate`"
        );
    }
    Ok(())
}

pub(crate) fn open_run(path: &Path) -> anyhow::Result<(RunDir, RunConfig)> {
    let run = RunDir::new(path);
    if !run.has_checkpoint() {
        bail!(
            "{} is not a trained run: {} is missing",
            path.display(),
            run.checkpoint_path().display()
        );
    }
    let config = run.read_config()?;
    Ok((run, config))
}

/// `pixelcnn gif`: rebuilds the run's progress animation.
pub(crate) fn gif_command(args: RunArgs) -> anyhow::Result<()> {
    let run = open_run(&args.run)?.0;
    let frames = write_progress_gif(&run)?;
    eprintln!(
        "wrote {frames} frames to {}",
        run.progress_gif_path().display()
    );
    Ok(())
}

/// `pixelcnn plot`: redraws the run's loss plot.
pub(crate) fn plot_command(args: RunArgs) -> anyhow::Result<()> {
    let (run, config) = open_run(&args.run)?;
    loss_plot(&run, config.model.arch.objective(), &run.loss_plot_path())?;
    eprintln!("wrote {}", run.loss_plot_path().display());
    Ok(())
}
