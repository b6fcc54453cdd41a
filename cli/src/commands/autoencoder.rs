//! `pixelcnn reconstruct` and `pixelcnn interpolate`: pictures of an auto-encoder's codes. A
//! likelihood-trained decoder draws each decoding; the MSE-trained one decodes its intensities
//! deterministically, rounded to the nearest level, so its repeated decodings are identical.

use std::path::PathBuf;

use anyhow::bail;
use burn::prelude::{Device, Int, Tensor, TensorData};
use clap::Args;
use pixelcnn::data::ImageSet;
use pixelcnn::model::{PixelCnn, intensities_to_levels};
use pixelcnn::picture;
use pixelcnn::random;
use pixelcnn::run_config::RunConfig;
use pixelcnn::sample::{SamplingOptions, sample};

use super::values::at_least;
use super::{DrawingArgs, ModelChoice, check_grid, sampling_options, test_images};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ReconstructArgs {
    /// An auto-encoder: a run of --arch autoencoder, autoencoder-deconv or autoencoder-mse, or
    /// a shipped one.
    #[command(flatten)]
    model: ModelChoice,
    /// Test data of the run's kind (IDX t10k files, CIFAR-10 test_batch.bin, or an image folder
    /// whose every tenth image is used); default: the run's own data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of test images.
    #[arg(long, default_value_t = 8, value_parser = at_least(1usize))]
    n: usize,
    /// Images decoded from each code (an MSE-trained auto-encoder repeats its one decoding).
    #[arg(long, default_value_t = 4, value_parser = at_least(1usize))]
    samples: usize,
    /// Output picture, one row per test image, [original | decoded...]: .png, .jpg, .jpeg, .gif
    /// or .bmp (any case) by its name.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    drawing: DrawingArgs,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct InterpolateArgs {
    /// An auto-encoder: a run of --arch autoencoder, autoencoder-deconv or autoencoder-mse, or
    /// a shipped one.
    #[command(flatten)]
    model: ModelChoice,
    /// Test data of the run's kind (IDX t10k files, CIFAR-10 test_batch.bin, or an image folder
    /// whose every tenth image is used); default: the run's own data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Index of the first test image.
    #[arg(long, value_parser = at_least(0usize))]
    a: usize,
    /// Index of the second test image.
    #[arg(long, value_parser = at_least(0usize))]
    b: usize,
    /// Codes on the line from a's code to b's, both ends included.
    #[arg(long, default_value_t = 8, value_parser = at_least(2usize))]
    points: usize,
    /// Rows of decodings (each row draws every point anew; an MSE-trained auto-encoder repeats
    /// its one row).
    #[arg(long, default_value_t = 1, value_parser = at_least(1usize))]
    samples: usize,
    /// Output picture, rows of [image a | decoded points... | image b]: .png, .jpg, .jpeg, .gif
    /// or .bmp (any case) by its name.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    drawing: DrawingArgs,
}

/// A trained auto-encoder, its run config and its test images.
pub(crate) struct AutoEncoderRun {
    config: RunConfig,
    model: PixelCnn,
    test: ImageSet,
    options: SamplingOptions,
}

impl AutoEncoderRun {
    /// The codes `[B, m]` of the test images at `indices`.
    fn codes(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let levels = self.test.batch(indices, self.config.model.levels, device);
        self.model
            .encode(levels)
            .expect("checked: the run is an auto-encoder")
    }

    /// The decodings of `codes` `[N, m]`: drawn from p(x|h), or an MSE-trained auto-encoder's
    /// intensities rounded to the nearest level.
    fn decode(&self, codes: Tensor<2>, seed: u64, device: &Device) -> Vec<Vec<u8>> {
        if let Some(intensities) = self.model.decode_intensities(codes.clone()) {
            return intensities_to_levels(intensities, self.options.levels);
        }
        let [count, _] = codes.dims();
        let mut rng = random::seeded(seed);
        sample(
            &self.model,
            count,
            Some(codes),
            self.options,
            &mut rng,
            device,
        )
    }

    fn tile(&self, image: &[u8]) -> image::RgbImage {
        let o = &self.options;
        picture::levels_tile(image, o.levels, o.height, o.width)
    }

    fn test_tile(&self, index: usize) -> image::RgbImage {
        self.tile(&self.test.levels(index, self.config.model.levels))
    }
}

pub(crate) fn open_autoencoder(
    choice: &ModelChoice,
    data_dir: Option<PathBuf>,
    drawing: &DrawingArgs,
    device: &Device,
) -> anyhow::Result<AutoEncoderRun> {
    let config = choice.config()?;
    let options = sampling_options(&config, drawing);
    if config.model.latent.is_none() {
        bail!(
            "{} is not an auto-encoder: train one with --arch autoencoder, autoencoder-deconv or autoencoder-mse",
            choice.describe()
        );
    }
    let model = choice.load(&config, device)?;
    let test = test_images(data_dir, None, &config)?;
    Ok(AutoEncoderRun {
        config,
        model,
        test,
        options,
    })
}

pub(crate) fn reconstruct_command(args: ReconstructArgs, device: &Device) -> anyhow::Result<()> {
    picture::check_target(&args.out)?;
    let ae = open_autoencoder(&args.model, args.data_dir, &args.drawing, device)?;
    let count = args.n.min(ae.test.len());
    let columns = args.samples.saturating_add(1);
    let (scale, instead) = (args.drawing.scale, "lower --n, --samples or --scale");
    check_grid(
        count.saturating_mul(columns),
        columns,
        &ae.options,
        scale,
        instead,
    )?;
    let indices: Vec<usize> = (0..count).collect();
    let sources: Vec<usize> = (0..count)
        .flat_map(|i| std::iter::repeat_n(i, args.samples))
        .collect();
    let codes = ae
        .codes(&indices, device)
        .select(0, index_tensor(&sources, device));
    let decoded = ae.decode(codes, args.drawing.seed, device);
    let mut tiles = Vec::new();
    for (index, drawn) in indices.iter().zip(decoded.chunks(args.samples)) {
        tiles.push(ae.test_tile(*index));
        tiles.extend(drawn.iter().map(|image| ae.tile(image)));
    }
    let grid = picture::grid(&tiles, columns, scale);
    picture::save(&grid, &args.out)?;
    eprintln!("wrote {count} reconstructions to {}", args.out.display());
    Ok(())
}

pub(crate) fn interpolate_command(args: InterpolateArgs, device: &Device) -> anyhow::Result<()> {
    picture::check_target(&args.out)?;
    let ae = open_autoencoder(&args.model, args.data_dir, &args.drawing, device)?;
    let columns = args.points.saturating_add(2);
    let (scale, instead) = (args.drawing.scale, "lower --points, --samples or --scale");
    check_grid(
        columns.saturating_mul(args.samples),
        columns,
        &ae.options,
        scale,
        instead,
    )?;
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
    let line: Vec<Tensor<2>> = (0..args.points)
        .map(|point| {
            let t = point as f32 / (args.points - 1) as f32;
            start.clone() * (1.0 - t) + end.clone() * t
        })
        .collect();
    let codes = Tensor::cat(line, 0).repeat_dim(0, args.samples);
    let decoded = ae.decode(codes, args.drawing.seed, device);
    let mut tiles = Vec::new();
    for row in decoded.chunks(args.points) {
        tiles.push(ae.test_tile(args.a));
        tiles.extend(row.iter().map(|image| ae.tile(image)));
        tiles.push(ae.test_tile(args.b));
    }
    let grid = picture::grid(&tiles, columns, scale);
    picture::save(&grid, &args.out)?;
    eprintln!(
        "wrote {} rows of {} points to {}",
        args.samples,
        args.points,
        args.out.display()
    );
    Ok(())
}

pub(crate) fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}
