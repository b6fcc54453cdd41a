//! `pixelcnn sample` and `pixelcnn complete`: drawing images, from scratch or from the top rows
//! of test images, for unconditional and conditional models.

use std::path::PathBuf;

use anyhow::bail;
use burn::prelude::{Device, Tensor, TensorData};
use clap::Args;
use pixelcnn::data::Embeddings;
use pixelcnn::model::Conditioning;
use pixelcnn::picture;
use pixelcnn::random;
use pixelcnn::sample::{complete, sample};

use super::values::at_least;
use super::{DrawingArgs, open_run, refuse_autoencoder, sampling_options, test_images};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct SampleArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 16, value_parser = at_least(1usize))]
    n: usize,
    /// Output picture: .png, .jpg, .jpeg, .gif or .bmp (any case) by its name.
    #[arg(long)]
    out: PathBuf,
    /// Images per grid row [default: about √n; with --class all, n].
    #[arg(long, value_parser = at_least(1usize))]
    nrow: Option<usize>,
    /// For a class-conditional model: the class to draw, or `all` for n images of each class.
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

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct CompleteArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
    /// Test data of the run's kind (IDX t10k files, CIFAR-10 test_batch.bin, or an image folder
    /// whose every tenth image is used); default: the run's own data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Rows kept from the top of each image.
    #[arg(long, value_parser = at_least(0usize))]
    rows: usize,
    /// Number of test images.
    #[arg(long, default_value_t = 8, value_parser = at_least(1usize))]
    n: usize,
    /// Completions drawn per image.
    #[arg(long, default_value_t = 4, value_parser = at_least(1usize))]
    samples: usize,
    /// Output picture, one row per image, [original | occluded | completions...]: .png, .jpg,
    /// .jpeg, .gif or .bmp (any case) by its name.
    #[arg(long)]
    out: PathBuf,
    /// For a vector-conditional model: .npy float32 [N, d], one row per image of the test file.
    #[arg(long)]
    condition_file: Option<PathBuf>,
    #[command(flatten)]
    drawing: DrawingArgs,
}

pub(crate) fn sample_command(args: SampleArgs, device: &Device) -> anyhow::Result<()> {
    let (run, config) = open_run(&args.run)?;
    refuse_autoencoder(&config)?;
    picture::format_of(&args.out)?;
    let options = sampling_options(&config, &args.drawing);
    let checkpoint = run.load_checkpoint_for(&config, device)?;
    let (vectors, columns) = sample_conditions(&args, checkpoint.config.conditioning)?;
    let count = vectors.as_ref().map_or(args.n, Vec::len);
    let condition = vectors.map(|rows| {
        let dim = rows[0].len();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Tensor::<2>::from_data(TensorData::new(flat, [count, dim]), device)
    });
    let mut rng = random::seeded(args.drawing.seed);
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
    picture::save(
        &picture::grid(&tiles, columns, args.drawing.scale),
        &args.out,
    )?;
    eprintln!("wrote {count} samples to {}", args.out.display());
    Ok(())
}

/// The conditioning vector of each image to draw and the grid's default number of columns:
/// `--class C` (n images) or `--class all` (a row of n per class) for a class-conditional
/// model; `--index i` (n images) or `--interpolate i j` (a row of n per point) of
/// `--condition-file` for a vector-conditional one; nothing for an unconditional model.
pub(crate) fn sample_conditions(
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
                    let (a, b) = (row(a)?, row(b)?);
                    let rows = (0..args.points)
                        .flat_map(|point| {
                            let t = point as f32 / (args.points - 1) as f32;
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

pub(crate) fn complete_command(args: CompleteArgs, device: &Device) -> anyhow::Result<()> {
    let (run, config) = open_run(&args.run)?;
    refuse_autoencoder(&config)?;
    picture::format_of(&args.out)?;
    let options = sampling_options(&config, &args.drawing);
    if args.rows >= options.height {
        bail!(
            "--rows must be less than the image height {}, got {}",
            options.height,
            args.rows
        );
    }
    let test = test_images(args.data_dir, args.condition_file.as_deref(), &config)?;
    let count = args.n.min(test.len());
    let checkpoint = run.load_checkpoint_for(&config, device)?;
    let originals: Vec<Vec<u8>> = (0..count).map(|i| test.levels(i, options.levels)).collect();
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
    let mut rng = random::seeded(args.drawing.seed);
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
    picture::save(&grid, &args.out)?;
    eprintln!("wrote {count} completions to {}", args.out.display());
    Ok(())
}
