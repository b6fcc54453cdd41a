//! `pixelcnn complete`: the model draws the rest of test images from their top rows, for
//! unconditional and conditional models, with a progress bar of the rows drawn.

use std::path::PathBuf;

use anyhow::bail;
use burn::prelude::Device;
use clap::Args;
use pixelcnn::picture;
use pixelcnn::sample::{Generation, Start, image_streams};

use super::sample::rows_bar;
use super::values::at_least;
use super::{
    DrawingArgs, ModelChoice, check_grid, refuse_autoencoder, sampling_options, test_images,
};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct CompleteArgs {
    #[command(flatten)]
    model: ModelChoice,
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

pub(crate) fn complete_command(args: CompleteArgs, device: &Device) -> anyhow::Result<()> {
    let config = args.model.config()?;
    refuse_autoencoder(&config)?;
    picture::check_target(&args.out)?;
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
    let columns = args.samples.saturating_add(2);
    let instead = "lower --n, --samples or --scale";
    let scale = args.drawing.scale;
    check_grid(
        count.saturating_mul(columns),
        columns,
        &options,
        scale,
        instead,
    )?;
    let model = args.model.load(&config, device)?;
    let originals: Vec<Vec<u8>> = (0..count).map(|i| test.levels(i, options.levels)).collect();
    // Every completion of every image in one batch: image i's completions are rows i·S..(i+1)·S.
    let starts: Vec<Vec<u8>> = originals
        .iter()
        .flat_map(|image| std::iter::repeat_n(image.clone(), args.samples))
        .collect();
    let sources: Vec<usize> = (0..count)
        .flat_map(|i| std::iter::repeat_n(i, args.samples))
        .collect();
    let condition = test.condition(&sources, config.model.conditioning, device);
    let start = Start {
        streams: image_streams(args.drawing.seed, 0..starts.len()),
        images: starts,
        known_pixels: args.rows * options.width,
    };
    let mut generation = Generation::new(&model, start, condition, options, device);
    let bar = rows_bar(options.height, 1);
    generation.by_ref().for_each(|_| bar.inc(1));
    bar.finish_and_clear();
    let completions = generation.finish();
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
    let grid = picture::grid(&tiles, columns, scale);
    picture::save(&grid, &args.out)?;
    eprintln!("wrote {count} completions to {}", args.out.display());
    Ok(())
}
