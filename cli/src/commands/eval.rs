//! `pixelcnn eval`: test-set likelihood, and per-pixel NLL heat maps; for the MSE-trained
//! auto-encoder, which has no likelihood, its mean squared error.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::prelude::Device;
use clap::Args;
use pixelcnn::data::ImageSet;
use pixelcnn::evaluate::{Likelihood, Score, heatmap, image_nll, score};
use pixelcnn::files::{check_file_target, write_atomically};
use pixelcnn::loss::bits_per_dim;
use pixelcnn::model::Objective;
use pixelcnn::picture;

use super::{ModelChoice, test_images};

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// Test data of the run's kind (IDX t10k files, CIFAR-10 test_batch.bin, or an image folder
    /// whose every tenth image is used); default: the run's own data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a picture of a few test images beside heat maps of their per-pixel NLL: .png,
    /// .jpg, .jpeg, .gif or .bmp (any case) by its name.
    #[arg(long)]
    heatmap: Option<PathBuf>,
    /// Also write each test image's negative log-likelihood to this CSV file (columns image,
    /// label, nats, bits_per_dim), for `pixelcnn histogram`; the figures printed are then their
    /// mean.
    #[arg(long)]
    per_image: Option<PathBuf>,
    /// For a vector-conditional model: .npy float32 [N, d], one row per image of the test file.
    #[arg(long)]
    condition_file: Option<PathBuf>,
}

pub(crate) fn eval_command(args: EvalArgs, device: &Device) -> anyhow::Result<()> {
    if let Some(path) = &args.heatmap {
        picture::check_target(path)?;
    }
    if let Some(path) = &args.per_image {
        check_file_target(path)?;
    }
    let config = args.model.config()?;
    let mse = config.model.arch.objective() == Objective::Mse;
    if args.heatmap.is_some() && mse {
        bail!("--heatmap shows per-pixel NLL, and an MSE-trained auto-encoder has no likelihood");
    }
    if args.per_image.is_some() && mse {
        bail!("--per-image writes each image's NLL, and an MSE-trained auto-encoder has none");
    }
    let model = args.model.load(&config, device)?;
    let test = test_images(args.data_dir, args.condition_file.as_deref(), &config)?;
    let result = match &args.per_image {
        Some(path) => {
            let nats = image_nll(&model, &config.model, &test, usize::MAX, device)?;
            write_per_image(path, &nats, &test)?;
            Score::Likelihood(Likelihood::of_images(&nats, test.values_per_image()))
        }
        None => score(&model, &config.model, &test, usize::MAX, device)?,
    };
    if let Some(binarization) = config.binarization {
        eprintln!("binarisation: {}", binarization.describe());
    }
    if args.json {
        let mut json = serde_json::to_value(result)?;
        if let Some(binarization) = config.binarization {
            json["binarization"] = serde_json::to_value(binarization)?;
        }
        println!("{json}");
    } else {
        match result {
            Score::Likelihood(l) => println!(
                "{} test images: {:.2} nats per image, {:.4} bits/dim",
                l.images, l.nll_nats, l.bits_per_dim
            ),
            Score::SquaredError(e) => println!(
                "{} test images: mean squared error {:.5} per sub-pixel (intensities in [0, 1]); no likelihood",
                e.images, e.mse
            ),
        }
    }
    if let Some(path) = args.heatmap {
        let indices: Vec<usize> = (0..test.len().min(HEATMAP_IMAGES)).collect();
        let picture = heatmap(&model, &config.model, &test, &indices, device)?;
        picture::save(&picture, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `eval --per-image`'s CSV: one line per image of `test`, `nats` its NLL.
fn write_per_image(path: &Path, nats: &[f64], test: &ImageSet) -> anyhow::Result<()> {
    let mut csv = String::from("image,label,nats,bits_per_dim\n");
    let dims = test.values_per_image();
    for (index, &value) in nats.iter().enumerate() {
        let label = test
            .labels
            .as_ref()
            .map_or(String::new(), |labels| labels[index].to_string());
        let bits = bits_per_dim(value, dims);
        writeln!(csv, "{index},{label},{value},{bits}").expect("writing to a String");
    }
    write_atomically(path, csv.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Test images shown in `eval --heatmap`.
pub(crate) const HEATMAP_IMAGES: usize = 8;
