//! The loss plot of a run: the training loss of every step (from `losses.csv`), faint, with a
//! moving average over it, and the validation points of every interval (from `metrics.jsonl`),
//! in bits/dim (or, for the MSE-trained auto-encoder, in mean squared error) against the step. The y axis spans the data, so the curve's shape stays visible
//! once the loss has fallen far below its first values.

use std::path::Path;

use plotters::prelude::*;

use pixelcnn::loss::nats_to_bits;
use pixelcnn::model::Objective;
use pixelcnn::picture::PictureError;

use crate::font::{FONT, save_chart};
use pixelcnn::run_dir::RunDir;
use pixelcnn::run_log::{read_losses, read_metrics};

/// Steps in the moving average of the training loss.
const SMOOTHING: usize = 25;

/// What the plot draws, in bits/dim against the step.
struct Curves {
    raw: Vec<(f64, f64)>,
    smoothed: Vec<(f64, f64)>,
    validation: Vec<(f64, f64)>,
}

/// Draws the run's loss plot into a PNG at `path` (800×500).
pub fn loss_plot(run: &RunDir, objective: Objective, path: &Path) -> Result<(), PictureError> {
    let in_unit = |loss: f64| match objective {
        Objective::Nll => nats_to_bits(loss),
        Objective::Mse => loss,
    };
    let raw: Vec<(f64, f64)> = read_losses(run)?
        .into_iter()
        .map(|(step, loss)| (step as f64, in_unit(loss)))
        .collect();
    let validation = read_metrics(run)?
        .into_iter()
        .map(|m| (m.step as f64, m.loss.train_and_validation().1))
        .collect();
    let curves = Curves {
        smoothed: moving_average(&raw, SMOOTHING),
        raw,
        validation,
    };
    save_chart(path, (800, 500), |buffer, size| {
        draw(&curves, objective, buffer, size)
    })
}

/// The mean of the values within `window / 2` points either side of each point (fewer at the
/// ends): centred, so the average does not lag behind the losses.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    let mut sums = vec![0.0];
    for point in points {
        sums.push(sums.last().expect("starts with 0") + point.1);
    }
    points
        .iter()
        .enumerate()
        .map(|(i, &(step, _))| {
            let (from, to) = (i.saturating_sub(half), (i + half + 1).min(points.len()));
            (step, (sums[to] - sums[from]) / (to - from) as f64)
        })
        .collect()
}

/// The y range: from the lowest value drawn to the highest of the averaged and validation
/// curves (single raw losses above it are cut off), with a margin.
fn y_range(curves: &Curves) -> (f64, f64) {
    let finite = |points: &[(f64, f64)]| -> Vec<f64> {
        points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .collect()
    };
    let lows = [finite(&curves.raw), finite(&curves.validation)].concat();
    let highs = [finite(&curves.smoothed), finite(&curves.validation)].concat();
    let low = lows.iter().copied().fold(f64::INFINITY, f64::min);
    let high = highs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.05).max(1e-3);
    ((low - margin).max(0.0), high + margin)
}

fn draw(
    curves: &Curves,
    objective: Objective,
    buffer: &mut [u8],
    size: (u32, u32),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let last_step = curves
        .raw
        .iter()
        .chain(&curves.validation)
        .map(|p| p.0)
        .fold(1.0, f64::max);
    let (low, high) = y_range(curves);
    let (caption, unit) = match objective {
        Objective::Nll => ("Negative log-likelihood", "bits/dim"),
        Objective::Mse => ("Mean squared error", "mse per sub-pixel"),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..last_step, low..high)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_desc(unit)
        .label_style((FONT, 14))
        .draw()?;
    let in_range = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|&(step, value)| (step, value.min(high)))
            .collect()
    };
    chart.draw_series(LineSeries::new(in_range(&curves.raw), RED.mix(0.25)))?;
    chart
        .draw_series(LineSeries::new(
            in_range(&curves.smoothed),
            RED.stroke_width(2),
        ))?
        .label(format!("train (mean of {SMOOTHING} steps)"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            curves.validation.clone(),
            BLUE.stroke_width(2),
        ))?
        .label("validation")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart.draw_series(
        curves
            .validation
            .iter()
            .map(|&p| Circle::new(p, 3, BLUE.filled())),
    )?;
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
    fn the_moving_average_is_centred_and_shorter_at_the_ends() {
        let points: Vec<(f64, f64)> = [4.0, 2.0, 6.0, 0.0].iter().map(|&v| (0.0, v)).collect();
        let values: Vec<f64> = moving_average(&points, 2).iter().map(|p| p.1).collect();
        assert_eq!(values, [3.0, 4.0, 8.0 / 3.0, 3.0]);
    }

    #[test]
    fn the_y_axis_spans_the_curves_not_single_early_losses() {
        let curves = Curves {
            raw: vec![(1.0, 9.0), (2.0, 0.4), (3.0, 0.2)],
            smoothed: vec![(1.0, 2.0), (2.0, 1.0), (3.0, 0.3)],
            validation: vec![(3.0, 0.25)],
        };
        let (low, high) = y_range(&curves);
        assert!(low < 0.2 && low > 0.0, "low {low}");
        assert!(high > 2.0 && high < 2.5, "high {high}");
    }
}
