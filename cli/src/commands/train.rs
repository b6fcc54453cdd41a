//! `pixelcnn train`: the run's settings from flags, the stored run and defaults; then training.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use burn::prelude::Device;
use clap::{Args, ValueEnum};
use pixelcnn::data::{Binarization, DataSource, Dataset, FolderOptions, ImageSet};
use pixelcnn::model::{
    Architecture, Conditioning, InvalidSetting, Latent, MAX_IMAGE_SIDE, PixelCnnConfig, SpatialMap,
};
use pixelcnn::parallel;
use pixelcnn::precision::Precision;
use pixelcnn::recipe::grow::check_growable;
use pixelcnn::recipe::{NEW_RUN, Recipe};
use pixelcnn::run_config::{InitFrom, MAX_SHARDS, RunConfig};
use pixelcnn::run_dir::RunDir;
use pixelcnn::train::{Outcome, train, train_on};

use super::progress::Progress;
use super::read_embeddings;
use super::values::{self, at_least, between, positive};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct TrainArgs {
    /// Run folder for the config, checkpoint, metrics and sample grids.
    #[arg(long)]
    out: PathBuf,
    /// Kind of data in --data-dir [default: mnist].
    #[arg(long, value_enum)]
    dataset: Option<Dataset>,
    /// The data: for mnist, IDX files (train-images-idx3-ubyte[.gz], t10k-…; without it, the
    /// MNIST test set built into the binary); for fashion-mnist, the same four files (without
    /// it, those of Debian's package dataset-fashion-mnist); for cifar10, data_batch_1.bin … test_batch.bin;
    /// for folder, PNG/JPEG images, directly or in one sub-folder per class.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// --dataset folder: every image is centre-cropped to a square and resized (bilinear) to
    /// this size × this size.
    #[arg(long, value_parser = between(1, MAX_IMAGE_SIDE))]
    image_size: Option<usize>,
    /// --dataset folder: read the images as grayscale or RGB; auto picks RGB if any image has
    /// colour [default: auto].
    #[arg(long, value_enum)]
    color: Option<ColorMode>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start from the weights of the trained run in this folder (its moving average where it
    /// keeps one), and deeper than it where --layers asks for more layers: the new layers start
    /// by adding nothing, so the run begins at that run's likelihood (docs/usage.md, `train`). Every
    /// model flag left out, and --binarize unless --levels is given, takes that run's value.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Optimisation steps [default: 400].
    #[arg(long, conflicts_with = "epochs", value_parser = at_least(1usize))]
    steps: Option<usize>,
    /// Passes over the training images, instead of --steps.
    #[arg(long, value_parser = at_least(1usize))]
    epochs: Option<usize>,
    /// Images per step [default: 32].
    #[arg(long, value_parser = at_least(1usize))]
    batch_size: Option<usize>,
    /// Adam learning rate [default: 0.003].
    #[arg(long, value_parser = positive::<f64>)]
    lr: Option<f64>,
    /// Seed of the initial weights and the batch order [default: 0].
    #[arg(long, value_parser = at_least(0u64))]
    seed: Option<u64>,
    /// Steps between validation, checkpoint and sample grid [default: 200].
    #[arg(long, value_parser = at_least(1usize))]
    interval: Option<usize>,
    /// Split each batch into this many shards trained side by side, each on its own share of
    /// the CPU's threads (their gradients averaged as data-parallel ranks would) [default: one
    /// per thread, fewer so that each has at least 8 images and they divide the batch; 1 on a
    /// GPU or under mpirun; with --resume, the run's].
    #[arg(long, value_parser = between(1, MAX_SHARDS))]
    shards: Option<usize>,
    /// Precision of the matrix products: f32, or bf16 operands with f32 accumulation on a
    /// processor with AVX-512 BF16 (faster for models of 16 channels and more; docs/speed.md)
    /// [default: f32; with --resume, the run's].
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    #[command(flatten)]
    recipe: RecipeArgs,
}

/// The optimisation recipe; each flag left out takes the run's value when resuming, else that
/// of [`NEW_RUN`].
#[derive(Args)]
pub(crate) struct RecipeArgs {
    /// Steps of linear learning-rate warm-up from 0 [default: 0].
    #[arg(long, value_parser = at_least(0usize))]
    warmup_steps: Option<usize>,
    /// Steps over which the learning rate halves (exponential decay); 0: no decay [default: 0].
    #[arg(long, value_parser = at_least(0usize))]
    lr_half_life: Option<usize>,
    #[arg(long, value_parser = values::fraction, help = with_default(
        "Decay of the moving average of the weights that validation, eval and sampling use, in [0, 1); 0: no average",
        NEW_RUN.ema_decay.unwrap_or(0.0),
    ))]
    ema: Option<f64>,
    #[arg(long, value_parser = values::non_negative::<f64>, help = with_default(
        "Ceiling on the global norm of each step's gradient; 0: no clipping",
        NEW_RUN.clip_grad_norm.unwrap_or(0.0),
    ))]
    clip_grad_norm: Option<f64>,
}

impl RecipeArgs {
    /// The flags given, over the stored recipe, over the defaults.
    fn over(&self, stored: Recipe) -> Recipe {
        let off_if_zero = |given: Option<f64>, stored: Option<f64>| {
            given.map_or(stored, |v| (v > 0.0).then_some(v))
        };
        Recipe {
            warmup_steps: self.warmup_steps.unwrap_or(stored.warmup_steps),
            lr_half_life: self
                .lr_half_life
                .map_or(stored.lr_half_life, |h| (h > 0).then_some(h)),
            ema_decay: off_if_zero(self.ema, stored.ema_decay),
            clip_grad_norm: off_if_zero(self.clip_grad_norm, stored.clip_grad_norm),
        }
    }
}

/// Levels K of a new run's model without --levels or --binarize.
const DEFAULT_LEVELS: usize = 4;

/// A new run's model for every flag left out: the library's defaults.
fn model_defaults() -> PixelCnnConfig {
    PixelCnnConfig::new(DEFAULT_LEVELS)
}

/// `text` with a default that clap does not know, shown as clap shows its own.
fn with_default(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

/// Model shape; each flag left out takes its default (or, with --resume, the run's value).
#[derive(Args)]
pub(crate) struct ModelArgs {
    #[arg(long, value_enum, help = with_default(
        "Architecture: gated (no blind spot) or the original masked pixelcnn",
        model_defaults().arch.to_possible_value().expect("no variant is skipped").get_name(),
    ))]
    arch: Option<Architecture>,
    #[arg(long, value_parser = between(2usize, 256), help = with_default(
        "Intensity levels K of the softmax, 2..=256",
        DEFAULT_LEVELS,
    ))]
    levels: Option<usize>,
    /// Binarised images (2 levels): `dynamic` (the default when the flag is given alone)
    /// draws each pixel as on with probability intensity/255 each time an image is used, and
    /// binarises the test images once with a fixed seed, as published binarised-MNIST figures
    /// do; `threshold` sets a pixel when its intensity is at least 128.
    #[arg(
        long,
        value_enum,
        conflicts_with = "levels",
        num_args = 0..=1,
        default_missing_value = "dynamic"
    )]
    binarize: Option<Binarization>,
    #[arg(long, value_parser = at_least(1usize), help = with_default(
        "Number of layers, the first included",
        model_defaults().layers,
    ))]
    layers: Option<usize>,
    #[arg(
        long,
        value_parser = at_least(1usize),
        help = with_default("Feature channels per layer", model_defaults().channels)
    )]
    channels: Option<usize>,
    #[arg(long, value_parser = at_least(1usize), help = with_default(
        "Hidden channels of the 1×1 output head before the K-way softmax",
        model_defaults().head_channels,
    ))]
    head_channels: Option<usize>,
    /// Condition the model on the data's class labels (gated architecture).
    #[arg(long, value_enum, conflicts_with = "condition_file")]
    conditional: Option<ConditionKind>,
    /// Condition the model on vectors: a .npy float32 array [N, d], one row per image of the
    /// training file (gated architecture).
    #[arg(long)]
    condition_file: Option<PathBuf>,
    /// Size m of an auto-encoder's code [default: 16].
    #[arg(long, value_parser = at_least(1usize))]
    latent_dim: Option<usize>,
    /// How the condition enters each layer: `vector` adds V·h; `deconv` maps h to a spatial map
    /// s = m(h) with a deconvolution network and adds V*s, so it can depend on location.
    #[arg(long, value_enum)]
    condition_map: Option<ConditionMap>,
}

/// `train --condition-map`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConditionMap {
    /// h enters every layer directly (a bias per channel).
    Vector,
    /// s = m(h), a learned deconvolution network's map of the image's size.
    Deconv,
}

/// `train --color`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorMode {
    Auto,
    Gray,
    Rgb,
}

/// What `train --conditional` conditions on.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConditionKind {
    /// The class label of each image, as a one-hot vector.
    Class,
}

pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn train_command(args: TrainArgs, device: &Device) -> anyhow::Result<()> {
    // One process, or one rank of `mpirun -np N` (src/parallel/).
    let collective = parallel::from_environment()?;
    let leader = collective.rank() == 0;
    let run = RunDir::new(&args.out);
    let stored = if args.resume {
        if !run.has_checkpoint() {
            bail!(
                "{} holds no checkpoint to resume from",
                run.checkpoint_path().display()
            );
        }
        Some(run.read_config()?)
    } else {
        if run.has_checkpoint() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        None
    };
    let source = args
        .init_from
        .as_deref()
        .map(|path| Source::read(path, device))
        .transpose()?;
    let data = DataChoice::new(&args, stored.as_ref())?;
    let condition_file = args
        .model
        .condition_file
        .clone()
        .or_else(|| stored.as_ref().and_then(|c| c.condition_file.clone()));
    let sets = data
        .source()?
        .training(read_embeddings(condition_file.as_deref())?)
        .context("cannot load the training data")?;
    let mut config = run_config(
        &args,
        Stored {
            run: stored.as_ref(),
            source: source.as_ref(),
        },
        data,
        condition_file,
        &sets.0,
        device,
    )?;
    if collective.ranks() > 1 {
        if args.shards.is_some_and(|shards| shards > 1) {
            bail!(
                "--shards splits the batch across threads of one process; under mpirun each process is already a rank: leave --shards out"
            );
        }
        config.shards = 1;
    }
    if config.shards > 1 && !parallel::on_cpu(device) {
        bail!(
            "this run trains in {} shards, which share out a CPU's threads; on a GPU pass --shards 1",
            config.shards
        );
    }
    if config.precision == Precision::Bf16 && !parallel::on_cpu(device) {
        bail!(
            "--precision bf16 is the CPU's mixed precision; a GPU computes in f32: pass --precision f32"
        );
    }
    // Every rank has looked at the folder before rank 0 writes to it.
    collective.barrier()?;
    if leader {
        run.create()?;
        run.write_config(&config)?;
    }
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let progress = Progress::default();
    let outcome = match collective.ranks() {
        1 => train(
            &run,
            &config,
            sets,
            args.resume,
            device,
            &INTERRUPTED,
            &progress,
        ),
        _ => {
            let context = pixelcnn::train::Context {
                device,
                interrupt: &INTERRUPTED,
                collective: collective.as_ref(),
                observer: &progress,
            };
            train_on(&run, &config, sets, args.resume, &context)
        }
    };
    progress.finish();
    let outcome = outcome?;
    if !leader {
        return Ok(());
    }
    match outcome {
        Outcome::Finished { step, .. } => {
            eprintln!(
                "finished {step} steps; samples in {}",
                run.root().join("samples.png").display()
            );
        }
        Outcome::Interrupted { step } => {
            eprintln!(
                "interrupted at step {step}; checkpoint saved. Resume with: pixelcnn train --out {} --resume",
                args.out.display()
            );
        }
    }
    Ok(())
}

/// The trained run `--init-from` names.
pub(crate) struct Source {
    path: PathBuf,
    /// Its settings, with the model its checkpoint holds.
    config: RunConfig,
    /// The step of its checkpoint.
    step: usize,
}

impl Source {
    fn read(path: &std::path::Path, device: &Device) -> anyhow::Result<Self> {
        let run = RunDir::new(path);
        if !run.has_checkpoint() {
            bail!(
                "--init-from {}: no checkpoint to start from",
                path.display()
            );
        }
        let checkpoint = run.load_checkpoint(device)?;
        let config = RunConfig {
            model: checkpoint.config,
            ..run.read_config()?
        };
        Ok(Self {
            path: path.to_path_buf(),
            config,
            step: checkpoint.step,
        })
    }
}

/// What a run's settings fall back on before the defaults: the run itself when resuming, the
/// run it starts from (`--init-from`) for a new one.
#[derive(Clone, Copy)]
pub(crate) struct Stored<'a> {
    run: Option<&'a RunConfig>,
    source: Option<&'a Source>,
}

/// The data a run trains on: from the flags, or from the stored run when resuming.
pub(crate) struct DataChoice {
    dataset: Dataset,
    dir: Option<PathBuf>,
    image_size: Option<usize>,
    channels: Option<usize>,
}

impl DataChoice {
    fn new(args: &TrainArgs, stored: Option<&RunConfig>) -> anyhow::Result<Self> {
        let channels = match args.color {
            None | Some(ColorMode::Auto) => None,
            Some(ColorMode::Gray) => Some(1),
            Some(ColorMode::Rgb) => Some(3),
        };
        let Some(stored) = stored else {
            let dataset = args.dataset.unwrap_or_default();
            if dataset != Dataset::Folder && (args.image_size.is_some() || args.color.is_some()) {
                bail!("--image-size and --color apply to --dataset folder only");
            }
            return Ok(Self {
                dataset,
                dir: args.data_dir.clone(),
                image_size: args.image_size,
                channels,
            });
        };
        if args.dataset.is_some_and(|d| d != stored.dataset)
            || args
                .image_size
                .is_some_and(|s| Some(s) != stored.image_size)
            || channels.is_some_and(|c| c != stored.model.input_channels)
        {
            bail!(
                "cannot resume on other data: the run was trained on --dataset {}{}",
                stored.dataset.name(),
                stored
                    .image_size
                    .map_or(String::new(), |s| format!(" --image-size {s}"))
            );
        }
        Ok(Self {
            dataset: stored.dataset,
            dir: args.data_dir.clone().or(stored.data_dir.clone()),
            image_size: stored.image_size,
            channels: Some(stored.model.input_channels),
        })
    }

    fn source(&self) -> anyhow::Result<DataSource> {
        let folder = self.image_size.map(|size| FolderOptions {
            size,
            channels: self.channels,
        });
        Ok(DataSource::new(self.dataset, self.dir.clone(), folder)?)
    }
}

/// The code of an auto-encoder (`--latent-dim` is refused by validation for other models).
pub(crate) fn latent(m: &ModelArgs, train_set: &ImageSet) -> Option<Latent> {
    let autoencoder = matches!(
        m.arch,
        Some(
            Architecture::Autoencoder
                | Architecture::AutoencoderDeconv
                | Architecture::AutoencoderMse
        )
    );
    (autoencoder || m.latent_dim.is_some()).then(|| Latent {
        dim: m.latent_dim.unwrap_or(16),
        height: train_set.height,
        width: train_set.width,
    })
}

/// The conditioning `train --conditional` or `--condition-file` asks for on `train_set`.
pub(crate) fn conditioning(
    kind: Option<ConditionKind>,
    train_set: &ImageSet,
) -> anyhow::Result<Conditioning> {
    if let Some(embeddings) = &train_set.embeddings {
        return Ok(Conditioning::Embedding {
            dim: embeddings.dim,
        });
    }
    match kind {
        None => Ok(Conditioning::None),
        Some(ConditionKind::Class) => match train_set.classes() {
            Some(classes) => Ok(Conditioning::Class { classes }),
            None => bail!("--conditional class needs labels: the training data has no label file"),
        },
    }
}

/// A new run's model: the flags given, over the model of the run it starts from, if any, else
/// over [`model_defaults`].
fn new_model(
    m: &ModelArgs,
    levels: Option<usize>,
    train_set: &ImageSet,
    source: Option<&Source>,
) -> anyhow::Result<PixelCnnConfig> {
    let mut model = match source {
        Some(source) => source.config.model.clone(),
        None => model_defaults()
            .with_input_channels(train_set.channels)
            .with_conditioning(conditioning(m.conditional, train_set)?)
            .with_latent(latent(m, train_set)),
    };
    model.levels = levels.unwrap_or(model.levels);
    model.arch = m.arch.unwrap_or(model.arch);
    model.layers = m.layers.unwrap_or(model.layers);
    model.channels = m.channels.unwrap_or(model.channels);
    model.head_channels = m.head_channels.unwrap_or(model.head_channels);
    if let Some(map) = m.condition_map {
        model.spatial = (map == ConditionMap::Deconv).then_some(SpatialMap {
            channels: model.channels,
            height: train_set.height,
            width: train_set.width,
        });
    }
    if let Some(source) = source {
        check_growable(&source.config.model, &model)
            .map_err(|e| anyhow::anyhow!("--init-from {}: {e}", source.path.display()))?;
        let (trained, given) = (source.config.model.input_channels, train_set.channels);
        if trained != given {
            bail!(
                "--init-from {}: that run was trained on {} images, but these are {}",
                source.path.display(),
                colour_mode(trained),
                colour_mode(given)
            );
        }
    }
    Ok(model)
}

fn colour_mode(channels: usize) -> &'static str {
    if channels == 1 { "grayscale" } else { "RGB" }
}

/// The run's settings: the flags given, over the stored config when resuming, over defaults.
pub(crate) fn run_config(
    args: &TrainArgs,
    Stored {
        run: stored,
        source,
    }: Stored,
    data: DataChoice,
    condition_file: Option<PathBuf>,
    train_set: &ImageSet,
    device: &Device,
) -> anyhow::Result<RunConfig> {
    let m = &args.model;
    let levels = if m.binarize.is_some() {
        Some(2)
    } else {
        m.levels
    };
    let model = match stored {
        Some(stored) => {
            let s = &stored.model;
            let mismatches: Vec<String> = [
                (
                    "--arch",
                    m.arch.map(|a| format!("{a:?}")),
                    format!("{:?}", s.arch),
                ),
                (
                    "--levels",
                    levels.map(|v| v.to_string()),
                    s.levels.to_string(),
                ),
                (
                    "--layers",
                    m.layers.map(|v| v.to_string()),
                    s.layers.to_string(),
                ),
                (
                    "--channels",
                    m.channels.map(|v| v.to_string()),
                    s.channels.to_string(),
                ),
                (
                    "--head-channels",
                    m.head_channels.map(|v| v.to_string()),
                    s.head_channels.to_string(),
                ),
                (
                    "--latent-dim",
                    m.latent_dim.map(|v| v.to_string()),
                    s.latent.map_or("none".to_string(), |l| l.dim.to_string()),
                ),
                (
                    "--condition-map",
                    m.condition_map.map(|map| match map {
                        ConditionMap::Vector => "vector".to_string(),
                        ConditionMap::Deconv => "deconv".to_string(),
                    }),
                    if s.spatial.is_some() {
                        "deconv"
                    } else {
                        "vector"
                    }
                    .to_string(),
                ),
                (
                    "--conditional",
                    m.conditional.map(|_| "class".to_string()),
                    match s.conditioning {
                        Conditioning::Class { .. } => "class".to_string(),
                        _ => "none".to_string(),
                    },
                ),
            ]
            .into_iter()
            .filter_map(|(flag, given, have)| {
                given
                    .filter(|g| *g != have)
                    .map(|g| format!("{flag} {g} (the run has {have})"))
            })
            .collect();
            if !mismatches.is_empty() {
                bail!(
                    "cannot resume with a different model shape: {}",
                    mismatches.join(", ")
                );
            }
            s.clone()
        }
        None => new_model(m, levels, train_set, source)?,
    };
    model.validate().map_err(in_flags)?;
    let new = RunConfig::new(model.clone(), train_set.height, train_set.width);
    let pick = |given: Option<usize>, stored: Option<usize>, default: usize| {
        given.or(stored).unwrap_or(default)
    };
    let batch_size = pick(
        args.batch_size,
        stored.map(|s| s.batch_size),
        new.batch_size,
    );
    let interval = pick(args.interval, stored.map(|s| s.interval), new.interval);
    let steps = match args.epochs {
        Some(epochs) => epochs.saturating_mul(train_set.len() / batch_size.min(train_set.len())),
        None => pick(args.steps, stored.map(|s| s.steps), new.steps),
    };
    let learning_rate = args
        .lr
        .or(stored.map(|s| s.learning_rate))
        .unwrap_or(new.learning_rate);
    let seed = args.seed.or(stored.map(|s| s.seed)).unwrap_or(new.seed);
    let binarization = match stored {
        Some(s) if m.binarize.is_some_and(|b| Some(b) != s.binarization) => bail!(
            "cannot resume with another binarisation: the run's is {}",
            s.binarization
                .map_or("none (K-level intensities)".to_string(), |b| b.describe())
        ),
        Some(s) => s.binarization,
        None => m.binarize.or_else(|| {
            let source = source.filter(|_| m.levels.is_none())?;
            source.config.binarization
        }),
    };
    if let Some(s) = stored {
        if s.seed != seed || s.batch_size != batch_size {
            bail!(
                "cannot resume with a different --seed or --batch-size: the batch order would change"
            );
        }
        if (s.image_height, s.image_width) != (train_set.height, train_set.width) {
            bail!(
                "cannot resume on {}×{} images: the run was trained on {}×{}",
                train_set.height,
                train_set.width,
                s.image_height,
                s.image_width
            );
        }
    }
    let config = RunConfig {
        model,
        batch_size,
        learning_rate,
        seed,
        steps,
        interval,
        dataset: data.dataset,
        data_dir: data.dir,
        image_size: data.image_size,
        condition_file,
        image_height: train_set.height,
        image_width: train_set.width,
        binarization,
        recipe: args.recipe.over(stored.map_or(NEW_RUN, |s| s.recipe)),
        shards: args
            .shards
            .or(stored.map(|s| s.shards))
            .unwrap_or_else(|| parallel::default_shards(batch_size.min(train_set.len()), device)),
        precision: args
            .precision
            .or(stored.map(|s| s.precision))
            .unwrap_or_default(),
        init_from: match stored {
            Some(s) => s.init_from.clone(),
            None => source.map(|s| InitFrom {
                run: s.path.clone(),
                step: s.step,
            }),
        },
    };
    // The checks a stored config.json gets, such as the ceiling on the model's size.
    config.validate().map_err(in_flags)?;
    Ok(config)
}

/// A setting the library refuses, told in the command line's terms: with the flag that sets
/// it, where `train` has one.
fn in_flags(error: InvalidSetting) -> anyhow::Error {
    match flag_of(error.setting) {
        Some(flag) => anyhow::anyhow!("{} ({flag})", error.message),
        None => error.into(),
    }
}

/// The flag of `train` that sets the run config's `setting`.
fn flag_of(setting: &str) -> Option<&'static str> {
    Some(match setting {
        "levels" => "--levels",
        "arch" => "--arch",
        "layers" => "--layers",
        "channels" => "--channels",
        "head_channels" => "--head-channels",
        "input_channels" => "--color",
        "conditioning" => "--conditional",
        "latent" => "--latent-dim",
        "spatial" => "--condition-map",
        "batch_size" => "--batch-size",
        "steps" => "--steps",
        "interval" => "--interval",
        "shards" => "--shards",
        "learning_rate" => "--lr",
        "image_size" => "--image-size",
        "binarization" => "--binarize",
        "warmup_steps" => "--warmup-steps",
        "lr_half_life" => "--lr-half-life",
        "ema_decay" => "--ema",
        "clip_grad_norm" => "--clip-grad-norm",
        "init_from" => "--init-from",
        _ => return None,
    })
}
