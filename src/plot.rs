//! The loss plot of a run: training loss and validation bits/dim against the step, read from
//! `metrics.jsonl`.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::checkpoint::RunDir;
use crate::picture::{FONT, register_font};
use crate::train::Metrics;

/// Reads every line of the run's `metrics.jsonl`.
pub fn read_metrics(run: &RunDir) -> anyhow::Result<Vec<Metrics>> {
    let path = run.metrics_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(number, line)| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not a metrics record",
                    path.display(),
                    number + 1
                )
            })
        })
        .collect()
}

/// Draws `metrics` into a PNG at `path` (800×500).
pub fn loss_plot(metrics: &[Metrics], path: &Path) -> anyhow::Result<()> {
    register_font();
    let (width, height) = (800u32, 500u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    draw(metrics, &mut buffer, (width, height))
        .map_err(|e| anyhow::anyhow!("cannot draw the loss plot: {e}"))?;
    let picture =
        image::RgbImage::from_raw(width, height, buffer).expect("buffer has the right size");
    crate::picture::save_png(&picture, path)?;
    Ok(())
}

fn draw(
    metrics: &[Metrics],
    buffer: &mut [u8],
    size: (u32, u32),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let last_step = metrics.iter().map(|m| m.step).max().unwrap_or(1).max(1) as f64;
    let values = metrics
        .iter()
        .flat_map(|m| [m.train_bits_per_dim, m.val_bits_per_dim])
        .filter(|v| v.is_finite());
    let top = values.fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("Negative log-likelihood", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..last_step, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_desc("bits/dim")
        .label_style((FONT, 14))
        .draw()?;
    let series = [
        (
            "train",
            RED,
            metrics
                .iter()
                .map(|m| (m.step as f64, m.train_bits_per_dim))
                .collect::<Vec<_>>(),
        ),
        (
            "validation",
            BLUE,
            metrics
                .iter()
                .map(|m| (m.step as f64, m.val_bits_per_dim))
                .collect(),
        ),
    ];
    for (name, colour, points) in series {
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, colour.filled())),
        )?;
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
