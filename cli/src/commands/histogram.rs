//! `pixelcnn histogram`: data sets side by side by the likelihood a model gives each image, from
//! the CSV files of `eval --per-image`: a histogram picture, each set's mean and median, and the
//! AUROC of telling each later set apart from the first by bits/dim.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use pixelcnn::files::read_bounded;
use pixelcnn::per_image::{Scores, auroc, parse_per_image};
use pixelcnn::picture;
use pixelcnn_cli::histogram::histogram_plot;

#[derive(Args)]
pub(crate) struct HistogramArgs {
    /// CSV files written by `eval --per-image`: the first the model's own test set, each other
    /// one told apart from it by AUROC.
    #[arg(required = true, num_args = 1..=4)]
    files: Vec<PathBuf>,
    /// The legend's name of each file, in order [default: the file's name].
    #[arg(long)]
    label: Vec<String>,
    /// Output picture: .png, .jpg, .jpeg, .gif or .bmp (any case) by its name.
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// Largest CSV file read: 10 million images' lines.
const MAX_CSV_BYTES: u64 = 512 << 20;

pub(crate) fn histogram_command(args: HistogramArgs) -> anyhow::Result<()> {
    picture::check_target(&args.out)?;
    if args.label.len() > args.files.len() {
        bail!(
            "{} --label for {} files: give at most one per file",
            args.label.len(),
            args.files.len()
        );
    }
    let sets = args
        .files
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let label = args.label.get(i).cloned().unwrap_or_else(|| {
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                )
            });
            Ok(Scores {
                label,
                bits_per_dim: read_per_image(path)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    report(&sets, args.json);
    histogram_plot(&sets, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Prints each set's summary and, for each set after the first, the AUROC against the first.
fn report(sets: &[Scores], json: bool) {
    let first = &sets[0];
    let rows: Vec<serde_json::Value> = sets
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let summary = set.summary().expect("read_per_image refuses an empty file");
            let against_first = (i > 0)
                .then(|| auroc(&first.bits_per_dim, &set.bits_per_dim))
                .flatten();
            if !json {
                let auroc_text = against_first.map_or(String::new(), |a| {
                    format!("; AUROC against {} {a:.4}", first.label)
                });
                println!(
                    "{}: {} images, mean {:.4} bits/dim, median {:.4}{auroc_text}",
                    set.label, summary.images, summary.mean, summary.median
                );
            }
            serde_json::json!({
                "label": set.label,
                "images": summary.images,
                "mean_bits_per_dim": summary.mean,
                "median_bits_per_dim": summary.median,
                "auroc_against_first": against_first,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
    }
}

/// The bits/dim column of an `eval --per-image` file: a regular file of at most
/// [`MAX_CSV_BYTES`] ([`parse_per_image`] says what it must hold).
fn read_per_image(path: &Path) -> anyhow::Result<Vec<f64>> {
    let bytes = read_bounded(path, MAX_CSV_BYTES)?;
    parse_per_image(&bytes).with_context(|| format!("{}", path.display()))
}
