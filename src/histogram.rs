//! Data sets side by side by the likelihood a model gives each image: a histogram of per-image
//! bits/dim, each set's summary, and the AUROC of telling two sets apart by it. This is how
//! Nalisnick et al. 2019 (arXiv 1810.09136) showed that a likelihood model can give images
//! unlike its training data a *higher* likelihood than its own test set, and how Ren et al.
//! 2019 (arXiv 1906.02845) score out-of-distribution detection.

use std::path::Path;

use plotters::prelude::*;

use crate::picture::{FONT, PictureError, register_font};

/// The header line of a per-image file, as `pixelcnn eval --per-image` writes it.
pub const PER_IMAGE_HEADER: &str = "image,label,nats,bits_per_dim";

/// Why a per-image file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerImageError {
    #[error("not a file of per-image likelihoods (its first line is not `{PER_IMAGE_HEADER}`)")]
    Header,
    #[error("line {line}: expected image,label,nats,bits_per_dim with a finite bits_per_dim")]
    Line { line: usize },
    #[error("no images")]
    Empty,
}

/// The bits/dim column of a per-image file's text: its header, then at least one line of four
/// fields whose last is a finite number.
pub fn parse_per_image(text: &[u8]) -> Result<Vec<f64>, PerImageError> {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines();
    if lines.next() != Some(PER_IMAGE_HEADER) {
        return Err(PerImageError::Header);
    }
    let values = lines
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            match fields[..] {
                [_, _, _, bits] => bits.parse::<f64>().ok().filter(|v| v.is_finite()),
                _ => None,
            }
            .ok_or(PerImageError::Line { line: i + 2 })
        })
        .collect::<Result<Vec<f64>, _>>()?;
    if values.is_empty() {
        return Err(PerImageError::Empty);
    }
    Ok(values)
}

/// Bins of the histogram over the range of all sets' values.
const BINS: usize = 60;

/// One set's per-image bits/dim, with the name the legend gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub label: String,
    pub bits_per_dim: Vec<f64>,
}

/// Count, mean and median of a set's per-image bits/dim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub images: usize,
    pub mean: f64,
    pub median: f64,
}

impl Scores {
    /// The set's count, mean and median; `None` for an empty set.
    pub fn summary(&self) -> Option<Summary> {
        let values = &self.bits_per_dim;
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = match sorted.len() % 2 {
            1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
        };
        Some(Summary {
            images: values.len(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            median,
        })
    }
}

/// The area under the ROC curve of flagging an image as not `inside` when its bits/dim is
/// high: the probability that an image of `outside` scores more bits/dim than one of `inside`,
/// ties counting half (the Mann–Whitney statistic). 1 separates the sets perfectly; 0.5 is
/// chance; below 0.5 the model likes `outside` better than its own data. `None` if either set
/// is empty.
pub fn auroc(inside: &[f64], outside: &[f64]) -> Option<f64> {
    if inside.is_empty() || outside.is_empty() {
        return None;
    }
    let mut sorted = inside.to_vec();
    sorted.sort_by(f64::total_cmp);
    let wins: f64 = outside
        .iter()
        .map(|&value| {
            let below = sorted.partition_point(|&v| v < value);
            let tied = sorted[below..].partition_point(|&v| v <= value);
            below as f64 + tied as f64 / 2.0
        })
        .sum();
    Some(wins / (inside.len() as f64 * outside.len() as f64))
}

/// Draws the sets' histograms of per-image bits/dim over one another into a picture at `path`
/// (800×500; its format by the extension, as [`crate::picture::save`]), each normalised to
/// the fraction of its images per bin so that sets of different sizes compare.
pub fn histogram_plot(sets: &[Scores], path: &Path) -> Result<(), PictureError> {
    register_font();
    let (width, height) = (800u32, 500u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    draw(sets, &mut buffer, (width, height)).map_err(|e| PictureError::Draw(e.to_string()))?;
    let picture =
        image::RgbImage::from_raw(width, height, buffer).expect("buffer has the right size");
    crate::picture::save(&picture, path)
}

/// The fraction of `values` in each of [`BINS`] bins of equal width from `low` to `high`.
fn fractions(values: &[f64], low: f64, high: f64) -> Vec<f64> {
    let mut counts = vec![0usize; BINS];
    let width = (high - low) / BINS as f64;
    for &value in values.iter().filter(|v| v.is_finite()) {
        let bin = ((value - low) / width) as usize;
        counts[bin.min(BINS - 1)] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

/// The x range: the lowest to the highest finite value of all sets, with a margin.
fn x_range(sets: &[Scores]) -> (f64, f64) {
    let finite = sets
        .iter()
        .flat_map(|set| &set.bits_per_dim)
        .copied()
        .filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.02).max(1e-3);
    (low - margin, high + margin)
}

const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

fn draw(
    sets: &[Scores],
    buffer: &mut [u8],
    size: (u32, u32),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (low, high) = x_range(sets);
    let binned: Vec<Vec<f64>> = sets
        .iter()
        .map(|set| fractions(&set.bits_per_dim, low, high))
        .collect();
    let top = binned.iter().flatten().copied().fold(0.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Per-image negative log-likelihood", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(low..high, 0.0..top.max(1e-3))?;
    chart
        .configure_mesh()
        .x_desc("bits/dim")
        .y_desc("fraction of images")
        .label_style((FONT, 14))
        .draw()?;
    let width = (high - low) / BINS as f64;
    for (i, (set, bins)) in sets.iter().zip(&binned).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(bins.iter().enumerate().map(|(b, &fraction)| {
                let x = low + b as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, fraction)], colour.mix(0.35).filled())
            }))?
            .label(&set.label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_pairs_in_which_the_outside_image_scores_higher() {
        // Outside 3 beats inside 1 and 2; outside 2 beats 1 and ties 2: (2 + 1.5) / 4.
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 2.0]), Some(3.5 / 4.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(1.0));
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), Some(0.5));
        assert_eq!(auroc(&[], &[1.0]), None);
    }

    #[test]
    fn auroc_agrees_with_counting_every_pair() {
        let inside: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let outside: Vec<f64> = (0..150).map(|i| ((i * 53) % 89) as f64 / 9.0).collect();
        let mut wins = 0.0;
        for &o in &outside {
            for &i in &inside {
                wins += if o > i {
                    1.0
                } else if o == i {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let expected = wins / (inside.len() * outside.len()) as f64;
        assert!((auroc(&inside, &outside).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn the_summary_gives_the_mean_and_the_median() {
        let scores = |values: &[f64]| Scores {
            label: "set".into(),
            bits_per_dim: values.to_vec(),
        };
        let odd = scores(&[3.0, 1.0, 8.0]).summary().unwrap();
        assert_eq!((odd.images, odd.mean, odd.median), (3, 4.0, 3.0));
        assert_eq!(scores(&[4.0, 1.0, 2.0, 3.0]).summary().unwrap().median, 2.5);
        assert_eq!(scores(&[]).summary(), None);
    }

    #[test]
    fn each_set_is_binned_as_fractions_of_its_images_and_the_top_value_lands_in_the_last_bin() {
        let bins = fractions(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
        assert_eq!(bins.len(), BINS);
        assert_eq!(bins[0], 0.25);
        assert_eq!(bins[BINS / 2], 0.25);
        assert_eq!(bins[BINS - 1], 0.5);
        assert!((bins.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
