//! The `pixelcnn` command line: train, evaluate and sample PixelCNN image models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;
use rand::rngs::StdRng;

use burn::prelude::{Device, Int, Tensor, TensorData};
use pixelcnn::animation::write_progress_gif;
use pixelcnn::bench::{BenchConfig, model_figures, sampling_figures};
use pixelcnn::checkpoint::{RunConfig, RunDir};
use pixelcnn::data::{DataSource, Embeddings, ImageSet, quantize};
use pixelcnn::device::DeviceChoice;
use pixelcnn::evaluate::{evaluate, heatmap};
use pixelcnn::model::{Architecture, Conditioning, Latent, PixelCnn, PixelCnnConfig, SpatialMap};
use pixelcnn::picture;
use pixelcnn::plot::{loss_plot, read_metrics};
use pixelcnn::sample::{Sampler, SamplingOptions, complete, sample};
use pixelcnn::train::{Outcome, train};

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
    /// Draw images from a trained model, one pixel at a time, into a PNG grid.
    Sample(SampleArgs),
    /// Keep the top rows of test images and let the model draw the rest.
    Complete(CompleteArgs),
    /// Rebuild RUN_DIR/progress.gif from the run's sample grids.
    Gif(RunArgs),
    /// Redraw RUN_DIR/loss.png from the run's metrics.
    Plot(RunArgs),
    /// Time the benchmark model of MODEL_SPEC.md: training step, forward pass, sampling.
    Bench(BenchArgs),
    /// Auto-encoders: each test image beside images decoded from its code.
    Reconstruct(ReconstructArgs),
    /// Auto-encoders: decode codes on the line between two test images' codes.
    Interpolate(InterpolateArgs),
}

#[derive(Args)]
struct ReconstructArgs {
    /// Run folder of an auto-encoder (--arch autoencoder or autoencoder-deconv).
    #[arg(long)]
    run: PathBuf,
    /// Folder with t10k-images-idx3-ubyte[.gz]; default: the run's data, or the embedded set.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of test images.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Images decoded from each code.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Output PNG: one row per test image, [original | decoded...].
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    drawing: DrawingArgs,
}

#[derive(Args)]
struct InterpolateArgs {
    /// Run folder of an auto-encoder (--arch autoencoder or autoencoder-deconv).
    #[arg(long)]
    run: PathBuf,
    /// Folder with t10k-images-idx3-ubyte[.gz]; default: the run's data, or the embedded set.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Index of the first test image.
    #[arg(long)]
    a: usize,
    /// Index of the second test image.
    #[arg(long)]
    b: usize,
    /// Codes on the line from a's code to b's, both ends included.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// Rows of decodings (each row draws every step anew).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Output PNG: rows of [image a | decoded steps... | image b].
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    drawing: DrawingArgs,
}

#[derive(Args)]
struct BenchArgs {
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

#[derive(Args)]
struct TrainArgs {
    /// Run folder for the config, checkpoint, metrics and sample grids.
    #[arg(long)]
    out: PathBuf,
    /// Folder with MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// Optimisation steps [default: 400].
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    /// Passes over the training images, instead of --steps.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate [default: 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the initial weights and the batch order [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between validation, checkpoint and sample grid [default: 200].
    #[arg(long)]
    interval: Option<usize>,
}

/// Model shape; each flag left out takes its default (or, with --resume, the run's value).
#[derive(Args)]
struct ModelArgs {
    /// Architecture: gated (no blind spot) or the original masked pixelcnn [default: gated].
    #[arg(long, value_enum)]
    arch: Option<Architecture>,
    /// Intensity levels K of the softmax, 2..=256 [default: 4].
    #[arg(long)]
    levels: Option<usize>,
    /// Binarised images: the same as --levels 2.
    #[arg(long, conflicts_with = "levels")]
    binarize: bool,
    /// Number of layers, the first included [default: 6].
    #[arg(long)]
    layers: Option<usize>,
    /// Feature channels per layer [default: 16].
    #[arg(long)]
    channels: Option<usize>,
    /// Condition the model on the data's class labels (gated architecture).
    #[arg(long, value_enum, conflicts_with = "condition_file")]
    conditional: Option<ConditionKind>,
    /// Condition the model on vectors: a .npy float32 array [N, d], one row per image of the
    /// training file (gated architecture).
    #[arg(long)]
    condition_file: Option<PathBuf>,
    /// Size m of an auto-encoder's code [default: 16].
    #[arg(long)]
    latent_dim: Option<usize>,
    /// How the condition enters each layer: `vector` adds V·h; `deconv` maps h to a spatial map
    /// s = m(h) with a deconvolution network and adds V*s, so it can depend on location.
    #[arg(long, value_enum)]
    condition_map: Option<ConditionMap>,
}

/// `train --condition-map`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConditionMap {
    /// h enters every layer directly (a bias per channel).
    Vector,
    /// s = m(h), a learned deconvolution network's map of the image's size.
    Deconv,
}

/// What `train --conditional` conditions on.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConditionKind {
    /// The class label of each image, as a one-hot vector.
    Class,
}

#[derive(Args)]
struct EvalArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
    /// Folder with t10k-images-idx3-ubyte[.gz]; default: the run's data, or the embedded set.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a PNG of a few test images beside heat maps of their per-pixel NLL.
    #[arg(long)]
    heatmap: Option<PathBuf>,
    /// For a vector-conditional model: .npy float32 [N, d], one row per image of the test file.
    #[arg(long)]
    condition_file: Option<PathBuf>,
}

#[derive(Args)]
struct SampleArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Output PNG file.
    #[arg(long)]
    out: PathBuf,
    /// Images per grid row [default: about √n; with --class all, n].
    #[arg(long)]
    nrow: Option<usize>,
    /// For a class-conditional model: the class to draw, or `all` for n images of each class.
    #[arg(long)]
    class: Option<String>,
    /// For a vector-conditional model: .npy float32 [N, d] of conditioning vectors.
    #[arg(long)]
    condition_file: Option<PathBuf>,
    /// Draw all n images from vector `index` of --condition-file.
    #[arg(long, requires = "condition_file", conflicts_with = "interpolate")]
    index: Option<usize>,
    /// Walk from vector I to vector J of --condition-file: one grid row of n images per step.
    #[arg(long, num_args = 2, value_names = ["I", "J"], requires = "condition_file")]
    interpolate: Option<Vec<usize>>,
    /// Steps of --interpolate, both ends included.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[command(flatten)]
    drawing: DrawingArgs,
}

/// How images are drawn and shown.
#[derive(Args)]
struct DrawingArgs {
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Softmax temperature; 0 always picks the most likely level.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Upscaling factor of each image (nearest neighbour).
    #[arg(long, default_value_t = 4)]
    scale: u32,
    /// cached: incremental, fast (gated models); naive: one full forward pass per pixel.
    #[arg(long, value_enum, default_value_t = Sampler::Cached)]
    sampler: Sampler,
}

#[derive(Args)]
struct CompleteArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
    /// Folder with t10k-images-idx3-ubyte[.gz]; default: the run's data, or the embedded set.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Rows kept from the top of each image.
    #[arg(long)]
    rows: usize,
    /// Number of test images.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Completions drawn per image.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Output PNG: one row per image, [original | occluded | completions...].
    #[arg(long)]
    out: PathBuf,
    /// For a vector-conditional model: .npy float32 [N, d], one row per image of the test file.
    #[arg(long)]
    condition_file: Option<PathBuf>,
    #[command(flatten)]
    drawing: DrawingArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = cli.device.device()?;
    match cli.command {
        Command::Train(args) => train_command(args, &device),
        Command::Eval(args) => eval_command(args, &device),
        Command::Sample(args) => sample_command(args, &device),
        Command::Complete(args) => complete_command(args, &device),
        Command::Gif(args) => {
            let frames = write_progress_gif(&open_run(&args.run)?.0)?;
            eprintln!(
                "wrote {frames} frames to {}",
                args.run.join("progress.gif").display()
            );
            Ok(())
        }
        Command::Bench(args) => bench_command(args, &device),
        Command::Reconstruct(args) => reconstruct_command(args, &device),
        Command::Interpolate(args) => interpolate_command(args, &device),
        Command::Plot(args) => {
            let run = open_run(&args.run)?.0;
            loss_plot(&read_metrics(&run)?, &run.loss_plot_path())?;
            eprintln!("wrote {}", run.loss_plot_path().display());
            Ok(())
        }
    }
}

fn train_command(args: TrainArgs, device: &Device) -> anyhow::Result<()> {
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
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| stored.as_ref().and_then(|c| c.data_dir.clone()));
    let condition_file = args
        .model
        .condition_file
        .clone()
        .or_else(|| stored.as_ref().and_then(|c| c.condition_file.clone()));
    let data = DataSource::from_option(data_dir.clone())
        .training(read_embeddings(condition_file.as_deref())?)
        .context("cannot load the training data")?;
    let config = run_config(&args, stored.as_ref(), data_dir, condition_file, &data.0)?;
    run.create()?;
    run.write_config(&config)?;
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    match train(&run, &config, data, args.resume, device, &INTERRUPTED)? {
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

/// The code of an auto-encoder (`--latent-dim` is refused by validation for other models).
fn latent(m: &ModelArgs, train_set: &ImageSet) -> Option<Latent> {
    let autoencoder = matches!(
        m.arch,
        Some(Architecture::Autoencoder | Architecture::AutoencoderDeconv)
    );
    (autoencoder || m.latent_dim.is_some()).then(|| Latent {
        dim: m.latent_dim.unwrap_or(16),
        height: train_set.height,
        width: train_set.width,
    })
}

/// The conditioning `train --conditional` or `--condition-file` asks for on `train_set`.
fn conditioning(kind: Option<ConditionKind>, train_set: &ImageSet) -> anyhow::Result<Conditioning> {
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

/// The run's settings: the flags given, over the stored config when resuming, over defaults.
fn run_config(
    args: &TrainArgs,
    stored: Option<&RunConfig>,
    data_dir: Option<PathBuf>,
    condition_file: Option<PathBuf>,
    train_set: &ImageSet,
) -> anyhow::Result<RunConfig> {
    let m = &args.model;
    let levels = if m.binarize { Some(2) } else { m.levels };
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
        None => PixelCnnConfig::new(levels.unwrap_or(4))
            .with_arch(m.arch.unwrap_or(Architecture::Gated))
            .with_layers(m.layers.unwrap_or(6))
            .with_channels(m.channels.unwrap_or(16))
            .with_conditioning(conditioning(m.conditional, train_set)?)
            .with_spatial(
                (m.condition_map == Some(ConditionMap::Deconv)).then(|| SpatialMap {
                    channels: m.channels.unwrap_or(16),
                    height: train_set.height,
                    width: train_set.width,
                }),
            )
            .with_latent(latent(m, train_set)),
    };
    model.validate().map_err(anyhow::Error::msg)?;
    let pick = |given: Option<usize>, stored: Option<usize>, default: usize| {
        given.or(stored).unwrap_or(default)
    };
    let batch_size = pick(args.batch_size, stored.map(|s| s.batch_size), 32);
    let interval = pick(args.interval, stored.map(|s| s.interval), 200);
    if batch_size == 0 || interval == 0 {
        bail!("--batch-size and --interval must be at least 1");
    }
    let steps = match args.epochs {
        Some(epochs) => epochs * (train_set.len() / batch_size.min(train_set.len())),
        None => pick(args.steps, stored.map(|s| s.steps), 400),
    };
    if steps == 0 {
        bail!("--steps and --epochs must be at least 1");
    }
    let learning_rate = args.lr.or(stored.map(|s| s.learning_rate)).unwrap_or(1e-3);
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        bail!("--lr must be a positive number, got {learning_rate}");
    }
    let seed = args.seed.or(stored.map(|s| s.seed)).unwrap_or(0);
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
    Ok(RunConfig {
        model,
        batch_size,
        learning_rate,
        seed,
        steps,
        interval,
        data_dir,
        condition_file,
        image_height: train_set.height,
        image_width: train_set.width,
    })
}

fn eval_command(args: EvalArgs, device: &Device) -> anyhow::Result<()> {
    let (run, config) = open_run(&args.run)?;
    let checkpoint = run.load_checkpoint(device)?;
    let test = test_images(args.data_dir, args.condition_file.as_deref(), &config)?;
    test.check_conditioning(checkpoint.config.conditioning)?;
    let result = evaluate(
        &checkpoint.model,
        &checkpoint.config,
        &test,
        usize::MAX,
        device,
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{} test images: {:.2} nats per image, {:.4} bits/dim",
            result.images, result.nll_nats, result.bits_per_dim
        );
    }
    if let Some(path) = args.heatmap {
        let indices: Vec<usize> = (0..test.len().min(HEATMAP_IMAGES)).collect();
        let picture = heatmap(
            &checkpoint.model,
            &checkpoint.config,
            &test,
            &indices,
            device,
        );
        picture::save_png(&picture, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Test images shown in `eval --heatmap`.
const HEATMAP_IMAGES: usize = 8;

/// The test images of a run: `data_dir`, else the run's own data; checked against the size the
/// model was trained on.
/// Reads `--condition-file`, if given.
fn read_embeddings(path: Option<&Path>) -> anyhow::Result<Option<Embeddings>> {
    Ok(path.map(Embeddings::read_npy).transpose()?)
}

fn test_images(
    data_dir: Option<PathBuf>,
    condition_file: Option<&Path>,
    config: &RunConfig,
) -> anyhow::Result<ImageSet> {
    let test = DataSource::from_option(data_dir.or(config.data_dir.clone()))
        .test(read_embeddings(condition_file)?)
        .context("cannot load the test data")?;
    if (test.height, test.width) != (config.image_height, config.image_width) {
        bail!(
            "the test images are {}×{}, but the model was trained on {}×{}",
            test.height,
            test.width,
            config.image_height,
            config.image_width
        );
    }
    Ok(test)
}

fn sampling_options(config: &RunConfig, drawing: &DrawingArgs) -> anyhow::Result<SamplingOptions> {
    if drawing.scale == 0 {
        bail!("--scale must be at least 1");
    }
    if !(drawing.temperature >= 0.0 && drawing.temperature.is_finite()) {
        bail!(
            "--temperature must be 0 or more, got {}",
            drawing.temperature
        );
    }
    Ok(SamplingOptions {
        levels: config.model.levels,
        height: config.image_height,
        width: config.image_width,
        temperature: drawing.temperature,
        sampler: drawing.sampler,
    })
}

fn sample_command(args: SampleArgs, device: &Device) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let (run, config) = open_run(&args.run)?;
    refuse_autoencoder(&config)?;
    let options = sampling_options(&config, &args.drawing)?;
    let checkpoint = run.load_checkpoint(device)?;
    let (vectors, columns) = sample_conditions(&args, checkpoint.config.conditioning)?;
    let count = vectors.as_ref().map_or(args.n, Vec::len);
    let condition = vectors.map(|rows| {
        let dim = rows[0].len();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Tensor::<2>::from_data(TensorData::new(flat, [count, dim]), device)
    });
    let mut rng = StdRng::seed_from_u64(args.drawing.seed);
    let images = sample(
        &checkpoint.model,
        count,
        condition,
        options,
        &mut rng,
        device,
    );
    let tiles: Vec<_> = images
        .iter()
        .map(|image| picture::levels_tile(image, options.levels, options.height, options.width))
        .collect();
    let columns = args.nrow.unwrap_or(columns);
    picture::save_png(
        &picture::grid(&tiles, columns, args.drawing.scale),
        &args.out,
    )?;
    eprintln!("wrote {count} samples to {}", args.out.display());
    Ok(())
}

/// The conditioning vector of each image to draw and the grid's default number of columns:
/// `--class C` (n images) or `--class all` (a row of n per class) for a class-conditional
/// model; `--index i` (n images) or `--interpolate i j` (a row of n per step) of
/// `--condition-file` for a vector-conditional one; nothing for an unconditional model.
fn sample_conditions(
    args: &SampleArgs,
    conditioning: Conditioning,
) -> anyhow::Result<(Option<Vec<Vec<f32>>>, usize)> {
    let n = args.n;
    let square = |count: usize| (count as f64).sqrt().ceil() as usize;
    let class = args.class.as_deref();
    if class.is_some() && !matches!(conditioning, Conditioning::Class { .. }) {
        bail!("--class needs a class-conditional model; this one is not");
    }
    if args.condition_file.is_some() && !matches!(conditioning, Conditioning::Embedding { .. }) {
        bail!("--condition-file needs a vector-conditional model; this one is not");
    }
    match conditioning {
        Conditioning::None => Ok((None, square(n))),
        Conditioning::Class { classes } => {
            let one_hot = |c: usize| {
                (0..classes)
                    .map(|i| if i == c { 1.0 } else { 0.0 })
                    .collect()
            };
            match class {
                None => bail!(
                    "this model is class-conditional: pass --class 0..{} or --class all",
                    classes - 1
                ),
                Some("all") => {
                    let rows = (0..classes)
                        .flat_map(|c| std::iter::repeat_n(one_hot(c), n))
                        .collect();
                    Ok((Some(rows), n))
                }
                Some(text) => match text.parse::<usize>() {
                    Ok(c) if c < classes => Ok((Some(vec![one_hot(c); n]), square(n))),
                    _ => bail!(
                        "--class must be a class 0..{} or `all`, got `{text}`",
                        classes - 1
                    ),
                },
            }
        }
        Conditioning::Embedding { dim } => {
            let Some(path) = &args.condition_file else {
                bail!(
                    "this model is conditioned on vectors of dimension {dim}: pass --condition-file with --index or --interpolate"
                );
            };
            let vectors = Embeddings::read_npy(path)?;
            if vectors.dim != dim {
                bail!(
                    "{}: vectors of dimension {}, but the model was trained on dimension {dim}",
                    path.display(),
                    vectors.dim
                );
            }
            let row = |i: usize| -> anyhow::Result<&[f32]> {
                if i >= vectors.len() {
                    bail!(
                        "{}: there is no vector {i}; the file holds {}",
                        path.display(),
                        vectors.len()
                    );
                }
                Ok(vectors.row(i))
            };
            match (args.index, args.interpolate.as_deref()) {
                (Some(i), _) => Ok((Some(vec![row(i)?.to_vec(); n]), square(n))),
                (None, Some(&[a, b])) => {
                    if args.steps < 2 {
                        bail!("--steps must be at least 2");
                    }
                    let (a, b) = (row(a)?, row(b)?);
                    let rows = (0..args.steps)
                        .flat_map(|step| {
                            let t = step as f32 / (args.steps - 1) as f32;
                            let h: Vec<f32> =
                                a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
                            std::iter::repeat_n(h, n)
                        })
                        .collect();
                    Ok((Some(rows), n))
                }
                _ => {
                    bail!("pass --index I or --interpolate I J to choose the conditioning vectors")
                }
            }
        }
    }
}

fn complete_command(args: CompleteArgs, device: &Device) -> anyhow::Result<()> {
    let (run, config) = open_run(&args.run)?;
    refuse_autoencoder(&config)?;
    let options = sampling_options(&config, &args.drawing)?;
    if args.rows >= options.height {
        bail!(
            "--rows must be less than the image height {}, got {}",
            options.height,
            args.rows
        );
    }
    if args.n == 0 || args.samples == 0 {
        bail!("--n and --samples must be at least 1");
    }
    let test = test_images(args.data_dir, args.condition_file.as_deref(), &config)?;
    let count = args.n.min(test.len());
    let checkpoint = run.load_checkpoint(device)?;
    let originals: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            test.image(i)
                .iter()
                .map(|&v| quantize(v, options.levels))
                .collect()
        })
        .collect();
    // Every completion of every image in one batch: image i's completions are rows i·S..(i+1)·S.
    let starts: Vec<Vec<u8>> = originals
        .iter()
        .flat_map(|image| std::iter::repeat_n(image.clone(), args.samples))
        .collect();
    let sources: Vec<usize> = (0..count)
        .flat_map(|i| std::iter::repeat_n(i, args.samples))
        .collect();
    test.check_conditioning(checkpoint.config.conditioning)?;
    let condition = test.condition(&sources, checkpoint.config.conditioning, device);
    let mut rng = StdRng::seed_from_u64(args.drawing.seed);
    let known = args.rows * options.width;
    let completions = complete(
        &checkpoint.model,
        starts,
        known,
        condition,
        options,
        &mut rng,
        device,
    );
    let (levels, height, width) = (options.levels, options.height, options.width);
    let mut tiles = Vec::new();
    for (original, drawn) in originals.iter().zip(completions.chunks(args.samples)) {
        tiles.push(picture::levels_tile(original, levels, height, width));
        tiles.push(picture::occluded_tile(
            original, levels, height, width, args.rows,
        ));
        tiles.extend(
            drawn
                .iter()
                .map(|image| picture::levels_tile(image, levels, height, width)),
        );
    }
    let grid = picture::grid(&tiles, args.samples + 2, args.drawing.scale);
    picture::save_png(&grid, &args.out)?;
    eprintln!("wrote {count} completions to {}", args.out.display());
    Ok(())
}

/// A trained auto-encoder, its run config and its test images.
struct AutoEncoderRun {
    config: RunConfig,
    model: PixelCnn,
    test: ImageSet,
    options: SamplingOptions,
}

fn open_autoencoder(
    run: &Path,
    data_dir: Option<PathBuf>,
    drawing: &DrawingArgs,
    device: &Device,
) -> anyhow::Result<AutoEncoderRun> {
    let (run_dir, config) = open_run(run)?;
    let options = sampling_options(&config, drawing)?;
    if config.model.latent.is_none() {
        bail!(
            "{} is not an auto-encoder run: train one with --arch autoencoder or autoencoder-deconv",
            run.display()
        );
    }
    let model = run_dir.load_checkpoint(device)?.model;
    let test = test_images(data_dir, None, &config)?;
    Ok(AutoEncoderRun {
        config,
        model,
        test,
        options,
    })
}

impl AutoEncoderRun {
    /// The codes `[B, m]` of the test images at `indices`.
    fn codes(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let levels = self.test.batch(indices, self.config.model.levels, device);
        self.model
            .encode(levels)
            .expect("checked: the run is an auto-encoder")
    }

    fn tile(&self, image: &[u8]) -> image::RgbImage {
        let o = &self.options;
        picture::levels_tile(image, o.levels, o.height, o.width)
    }

    fn test_tile(&self, index: usize) -> image::RgbImage {
        let levels = self.config.model.levels;
        let image: Vec<u8> = self
            .test
            .image(index)
            .iter()
            .map(|&v| quantize(v, levels))
            .collect();
        self.tile(&image)
    }
}

fn reconstruct_command(args: ReconstructArgs, device: &Device) -> anyhow::Result<()> {
    if args.n == 0 || args.samples == 0 {
        bail!("--n and --samples must be at least 1");
    }
    let ae = open_autoencoder(&args.run, args.data_dir, &args.drawing, device)?;
    let count = args.n.min(ae.test.len());
    let indices: Vec<usize> = (0..count).collect();
    let sources: Vec<usize> = (0..count)
        .flat_map(|i| std::iter::repeat_n(i, args.samples))
        .collect();
    let codes = ae
        .codes(&indices, device)
        .select(0, index_tensor(&sources, device));
    let mut rng = StdRng::seed_from_u64(args.drawing.seed);
    let decoded = sample(
        &ae.model,
        sources.len(),
        Some(codes),
        ae.options,
        &mut rng,
        device,
    );
    let mut tiles = Vec::new();
    for (index, drawn) in indices.iter().zip(decoded.chunks(args.samples)) {
        tiles.push(ae.test_tile(*index));
        tiles.extend(drawn.iter().map(|image| ae.tile(image)));
    }
    let grid = picture::grid(&tiles, args.samples + 1, args.drawing.scale);
    picture::save_png(&grid, &args.out)?;
    eprintln!("wrote {count} reconstructions to {}", args.out.display());
    Ok(())
}

fn interpolate_command(args: InterpolateArgs, device: &Device) -> anyhow::Result<()> {
    if args.steps < 2 || args.samples == 0 {
        bail!("--steps must be at least 2 and --samples at least 1");
    }
    let ae = open_autoencoder(&args.run, args.data_dir, &args.drawing, device)?;
    for index in [args.a, args.b] {
        if index >= ae.test.len() {
            bail!(
                "there is no test image {index}; the set has {}",
                ae.test.len()
            );
        }
    }
    let ends = ae.codes(&[args.a, args.b], device);
    let (start, end) = (ends.clone().narrow(0, 0, 1), ends.narrow(0, 1, 1));
    let line: Vec<Tensor<2>> = (0..args.steps)
        .map(|step| {
            let t = step as f32 / (args.steps - 1) as f32;
            start.clone() * (1.0 - t) + end.clone() * t
        })
        .collect();
    let codes = Tensor::cat(line, 0).repeat_dim(0, args.samples);
    let mut rng = StdRng::seed_from_u64(args.drawing.seed);
    let count = args.steps * args.samples;
    let decoded = sample(&ae.model, count, Some(codes), ae.options, &mut rng, device);
    let mut tiles = Vec::new();
    for row in decoded.chunks(args.steps) {
        tiles.push(ae.test_tile(args.a));
        tiles.extend(row.iter().map(|image| ae.tile(image)));
        tiles.push(ae.test_tile(args.b));
    }
    let grid = picture::grid(&tiles, args.steps + 2, args.drawing.scale);
    picture::save_png(&grid, &args.out)?;
    eprintln!(
        "wrote {} rows of {} steps to {}",
        args.samples,
        args.steps,
        args.out.display()
    );
    Ok(())
}

/// `sample` and `complete` draw from p(x) or p(x|h) for given h; an auto-encoder's h comes
/// from images, through `reconstruct` and `interpolate`.
fn refuse_autoencoder(config: &RunConfig) -> anyhow::Result<()> {
    if config.model.latent.is_some() {
        bail!(
            "this is an auto-encoder: it decodes codes of images; use `pixelcnn reconstruct` or `pixelcnn interpolate`"
        );
    }
    Ok(())
}

fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

fn bench_command(args: BenchArgs, device: &Device) -> anyhow::Result<()> {
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

fn open_run(path: &Path) -> anyhow::Result<(RunDir, RunConfig)> {
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
