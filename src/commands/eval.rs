//! `pixelcnn eval`: test-set likelihood, and per-pixel NLL heat maps; for the MSE-trained
//! auto-encoder, which has no likelihood, its mean squared error.

use std::path::PathBuf;

use anyhow::bail;
use burn::prelude::Device;
use clap::Args;
use pixelcnn::evaluate::{Score, heatmap, score};
use pixelcnn::model::Objective;
use pixelcnn::picture;

use super::{open_run, test_images};

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Run folder written by `pixelcnn train`.
    #[arg(long)]
    run: PathBuf,
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
    /// For a vector-conditional model: .npy float32 [N, d], one row per image of the test file.
    #[arg(long)]
    condition_file: Option<PathBuf>,
}

pub(crate) fn eval_command(args: EvalArgs, device: &Device) -> anyhow::Result<()> {
    if let Some(path) = &args.heatmap {
        picture::format_of(path)?;
    }
    let (run, config) = open_run(&args.run)?;
    if args.heatmap.is_some() && config.model.arch.objective() == Objective::Mse {
        bail!("--heatmap shows per-pixel NLL, and an MSE-trained auto-encoder has no likelihood");
    }
    let checkpoint = run.load_checkpoint_for(&config, device)?;
    let test = test_images(args.data_dir, args.condition_file.as_deref(), &config)?;
    test.check_conditioning(checkpoint.config.conditioning)?;
    let result = score(
        checkpoint.inference_model(),
        &checkpoint.config,
        &test,
        usize::MAX,
        device,
    );
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
        let picture = heatmap(
            checkpoint.inference_model(),
            &checkpoint.config,
            &test,
            &indices,
            device,
        );
        picture::save(&picture, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Test images shown in `eval --heatmap`.
pub(crate) const HEATMAP_IMAGES: usize = 8;
