//! `pixelcnn sample`: drawing images from scratch, for unconditional and conditional models,
//! into one grid picture or a folder of one picture per image. Images are drawn [`BATCH`] at a
//! time, so that memory stays bounded, each batch streamed row by row, so that a progress bar
//! can show how long a long draw has left.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::{Device, Tensor, TensorData};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use pixelcnn::checkpoint::CheckpointError;
use pixelcnn::data::{Dataset, Embeddings};
use pixelcnn::model::{Conditioning, PixelCnn};
use pixelcnn::picture;
use pixelcnn::sample::{Generation, SamplingOptions, Start};

use super::values::at_least;
use super::{DrawingArgs, ModelChoice, check_grid, refuse_autoencoder, sampling_options};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
#[command(group(ArgGroup::new("target").required(true).args(["out", "out_dir"])))]
pub(crate) struct SampleArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// Number of images (with --class all or --interpolate: per class or point).
    #[arg(long, default_value_t = 16, value_parser = at_least(1usize))]
    n: usize,
    /// Output picture, a grid of the images: .png, .jpg, .jpeg, .gif or .bmp (any case) by its
    /// name. At most 1024 images and 16384 pixels a side; for more, --out-dir.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of --out: a folder (made if missing) of one PNG per image, 0000.png, 0001.png, …,
    /// for any number of images.
    #[arg(long, conflicts_with = "nrow")]
    out_dir: Option<PathBuf>,
    /// Images per grid row [default: about √n; with --class all, n].
    #[arg(long, value_parser = at_least(1usize))]
    nrow: Option<usize>,
    /// For a class-conditional model: the class to draw, by number or, where the data set names
    /// its classes, by name (`sneaker`, `ankle-boot`; `pixelcnn pretrained` lists them), or `all`
    /// for n images of each class.
    #[arg(long)]
    class: Option<String>,
    /// For a vector-conditional model: .npy float32 [N, d] of conditioning vectors.
    #[arg(long)]
    condition_file: Option<PathBuf>,
    /// Draw all n images from vector `index` of --condition-file.
    #[arg(
        long,
        requires = "condition_file",
        conflicts_with = "interpolate",
        value_parser = at_least(0usize)
    )]
    index: Option<usize>,
    /// Walk from vector I to vector J of --condition-file: one grid row of n images per point.
    #[arg(
        long,
        num_args = 2,
        value_names = ["I", "J"],
        requires = "condition_file",
        value_parser = at_least(0usize)
    )]
    interpolate: Option<Vec<usize>>,
    /// Points on the line of --interpolate, both ends included.
    #[arg(long, default_value_t = 5, requires = "interpolate", value_parser = at_least(2usize))]
    points: usize,
    #[command(flatten)]
    drawing: DrawingArgs,
}

/// Images drawn at a time: the cached sampler's batch, and the bound of its memory.
const BATCH: usize = 64;

pub(crate) fn sample_command(args: SampleArgs, device: &Device) -> anyhow::Result<()> {
    let config = args.model.config()?;
    refuse_autoencoder(&config)?;
    let options = sampling_options(&config, &args.drawing);
    // Planned from the config, which loading the checkpoint checks it agrees with, so that a
    // plan or target that cannot work is refused before the model is loaded.
    let plan = sample_plan(&args, config.model.conditioning, config.dataset)?;
    let target = Target::new(&args, &plan, &options)?;
    let model = args.model.load(&config, device)?;
    let draws = Draws {
        model: &model,
        plan: &plan,
        options,
        seed: args.drawing.seed,
    };
    target.write(&draws, args.drawing.scale, device)
}

/// What `sample` draws: `count` images, the conditioning vector of each, and the grid's
/// default number of columns.
struct Plan {
    count: usize,
    columns: usize,
    /// The conditioning vector of image `i`, for a conditional model: made when its batch is
    /// drawn, so that memory does not grow with the number of images.
    condition: Option<Box<dyn Fn(usize) -> Vec<f32>>>,
}

impl Plan {
    /// `groups` groups of `n` images, each image of group `g` conditioned on `vector(g)`.
    fn groups(
        n: usize,
        groups: usize,
        columns: usize,
        vector: impl Fn(usize) -> Vec<f32> + 'static,
    ) -> anyhow::Result<Self> {
        let count = n.checked_mul(groups).with_context(|| {
            format!("--n {n} times {groups} is more images than can be counted")
        })?;
        Ok(Self {
            count,
            columns,
            condition: Some(Box::new(move |image| vector(image / n))),
        })
    }
}

/// The images to draw: `--class C` (n images) or `--class all` (a row of n per class) for a
/// class-conditional model; `--index i` (n images) or `--interpolate i j` (a row of n per
/// point) of `--condition-file` for a vector-conditional one; n images of an unconditional one.
fn sample_plan(
    args: &SampleArgs,
    conditioning: Conditioning,
    dataset: Dataset,
) -> anyhow::Result<Plan> {
    let n = args.n;
    let class = args.class.as_deref();
    if class.is_some() && !matches!(conditioning, Conditioning::Class { .. }) {
        bail!("--class needs a class-conditional model; this one is not");
    }
    if args.condition_file.is_some() && !matches!(conditioning, Conditioning::Embedding { .. }) {
        bail!("--condition-file needs a vector-conditional model; this one is not");
    }
    match conditioning {
        Conditioning::None => Ok(Plan {
            count: n,
            columns: square(n),
            condition: None,
        }),
        Conditioning::Class { classes } => {
            let one_hot = move |c: usize| {
                (0..classes)
                    .map(|i| if i == c { 1.0 } else { 0.0 })
                    .collect()
            };
            match class {
                None => bail!(
                    "this model is class-conditional: pass --class 0..{} or --class all",
                    classes - 1
                ),
                Some("all") => Plan::groups(n, classes, n, one_hot),
                Some(text) => match dataset.class_of(text, classes) {
                    Some(c) => Plan::groups(n, 1, square(n), move |_| one_hot(c)),
                    None => bail!(
                        "--class must be a class 0..{}{} or `all`, got `{text}`",
                        classes - 1,
                        dataset.class_names().map_or(String::new(), |names| {
                            format!(" ({})", names[..classes.min(names.len())].join(", "))
                        })
                    ),
                },
            }
        }
        Conditioning::Embedding { dim } => vector_plan(args, dim),
    }
}

/// [`sample_plan`] of a model conditioned on vectors of dimension `dim`.
fn vector_plan(args: &SampleArgs, dim: usize) -> anyhow::Result<Plan> {
    let n = args.n;
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
    let row = |i: usize| -> anyhow::Result<Vec<f32>> {
        if i >= vectors.len() {
            bail!(
                "{}: there is no vector {i}; the file holds {}",
                path.display(),
                vectors.len()
            );
        }
        Ok(vectors.row(i).to_vec())
    };
    match (args.index, args.interpolate.as_deref()) {
        (Some(i), _) => {
            let h = row(i)?;
            Plan::groups(n, 1, square(n), move |_| h.clone())
        }
        (None, Some(&[a, b])) => {
            let (a, b, points) = (row(a)?, row(b)?, args.points);
            Plan::groups(n, points, n, move |point| {
                let t = point as f32 / (points - 1) as f32;
                a.iter().zip(&b).map(|(x, y)| x + t * (y - x)).collect()
            })
        }
        _ => bail!("pass --index I or --interpolate I J to choose the conditioning vectors"),
    }
}

/// About √count: the columns of a square grid of `count` images.
fn square(count: usize) -> usize {
    (count as f64).sqrt().ceil() as usize
}

/// Where `sample` writes its images.
enum Target<'a> {
    /// One picture of a grid of `columns` images per row.
    Grid { path: &'a Path, columns: usize },
    /// A folder of one PNG per image.
    Folder(&'a Path),
}

impl<'a> Target<'a> {
    /// `--out` or `--out-dir`, checked before any drawing: the picture's format and size, or the
    /// folder, made if missing.
    fn new(args: &'a SampleArgs, plan: &Plan, options: &SamplingOptions) -> anyhow::Result<Self> {
        if let Some(path) = &args.out {
            picture::check_target(path)?;
            let columns = args.nrow.unwrap_or(plan.columns);
            let instead = "lower --n, --scale or --nrow, or write one PNG per image with --out-dir DIR instead of --out";
            check_grid(plan.count, columns, options, args.drawing.scale, instead)?;
            return Ok(Self::Grid { path, columns });
        }
        let dir = args
            .out_dir
            .as_ref()
            .expect("clap requires --out or --out-dir");
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self::Folder(dir))
    }

    fn write(&self, draws: &Draws, scale: u32, device: &Device) -> anyhow::Result<()> {
        let count = draws.plan.count;
        match *self {
            Self::Grid { path, columns } => {
                let mut tiles = Vec::with_capacity(count);
                draws.run(device, |_, images| {
                    tiles.extend(images.iter().map(|image| draws.tile(image)));
                    Ok(())
                })?;
                picture::save(&picture::grid(&tiles, columns, scale), path)?;
                eprintln!("wrote {count} samples to {}", path.display());
            }
            Self::Folder(dir) => {
                let digits = (count - 1).to_string().len().max(4);
                let name = |index: usize| dir.join(format!("{index:0digits$}.png"));
                draws.run(device, |first, images| {
                    for (index, image) in (first..).zip(&images) {
                        let picture = picture::scaled(&draws.tile(image), scale);
                        picture::save(&picture, &name(index))?;
                    }
                    Ok(())
                })?;
                eprintln!(
                    "wrote {count} samples to {} … {}",
                    name(0).display(),
                    name(count - 1).display()
                );
            }
        }
        Ok(())
    }
}

/// The images of a [`Plan`], drawn by `model` from `seed`.
struct Draws<'a> {
    model: &'a PixelCnn,
    plan: &'a Plan,
    options: SamplingOptions,
    seed: u64,
}

impl Draws<'_> {
    /// Draws the images [`BATCH`] at a time, handing each batch to `each` with the index of its
    /// first image, with a progress bar of the rows drawn. Image i draws from its own random
    /// stream of the seed, so it is the same whatever the batch it falls in.
    fn run(
        &self,
        device: &Device,
        mut each: impl FnMut(usize, Vec<Vec<u8>>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let count = self.plan.count;
        let batches = count.div_ceil(BATCH);
        let bar = rows_bar(batches * self.options.height, batches);
        for first in (0..count).step_by(BATCH) {
            let images = first..count.min(first + BATCH);
            let condition = self.plan.condition.as_ref().map(|vector| {
                let rows: Vec<Vec<f32>> = images.clone().map(vector).collect();
                let dim = rows[0].len();
                let flat: Vec<f32> = rows.concat();
                Tensor::<2>::from_data(TensorData::new(flat, [images.len(), dim]), device)
            });
            let start = Start::blank(&self.options, self.seed, images);
            let mut generation =
                Generation::new(self.model, start, condition, self.options, device);
            generation.by_ref().for_each(|_| bar.inc(1));
            each(first, generation.finish())?;
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn tile(&self, image: &[u8]) -> image::RgbImage {
        let o = &self.options;
        picture::levels_tile(image, o.levels, o.height, o.width)
    }
}

/// A bar of the `rows` image rows to draw in `batches` batches, with the time spent and an
/// estimate of the time left, on stderr when it is a terminal (and nowhere otherwise).
pub(crate) fn rows_bar(rows: usize, batches: usize) -> ProgressBar {
    let bar = ProgressBar::new(rows as u64);
    let unit = if batches > 1 {
        format!("rows of {batches} batches")
    } else {
        "rows".to_string()
    };
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta}}]");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    bar
}
