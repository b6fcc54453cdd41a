//! The histogram of `pixelcnn histogram`: the per-image bits/dim of several data sets
//! ([`pixelcnn::per_image::Scores`]) over one another, each as the fraction of its images per bin.

use std::path::Path;

use pixelcnn::per_image::Scores;
use pixelcnn::picture::PictureError;
use plotters::prelude::*;

use crate::font::{FONT, save_chart};

/// Bins of the histogram over the range of all sets' values.
const BINS: usize = 60;

/// Draws the sets' histograms of per-image bits/dim over one another into a picture at `path`
/// (800×500; its format by the extension, as [`pixelcnn::picture::save`]), each normalised to
/// the fraction of its images per bin so that sets of different sizes compare.
pub fn histogram_plot(sets: &[Scores], path: &Path) -> Result<(), PictureError> {
    save_chart(path, (800, 500), |buffer, size| draw(sets, buffer, size))
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
    fn each_set_is_binned_as_fractions_of_its_images_and_the_top_value_lands_in_the_last_bin() {
        let bins = fractions(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
        assert_eq!(bins.len(), BINS);
        assert_eq!(bins[0], 0.25);
        assert_eq!(bins[BINS / 2], 0.25);
        assert_eq!(bins[BINS - 1], 0.5);
        assert!((bins.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
