//! How `pixelcnn train` shows a run: what it trains on, a progress bar with the loss of each
//! step, each interval's figures and a data-parallel run's timing, on standard error; and at
//! each interval the run's loss plot and progress animation, redrawn in its folder. It is the
//! library's [`TrainObserver`], which the library itself never prints or draws through.

use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use pixelcnn::loss::nats_to_bits;
use pixelcnn::model::Objective;
use pixelcnn::observer::{Interval, Start, Step, Timing, TrainObserver};
use pixelcnn::picture::PictureError;
use pixelcnn::precision::Precision;
use pixelcnn::run_dir::RunDir;
use pixelcnn_cli::animation::write_progress_gif;
use pixelcnn_cli::plot::loss_plot;

/// The progress bar, made when the run starts.
#[derive(Default)]
pub(crate) struct Progress {
    bar: OnceLock<ProgressBar>,
    /// What the run minimises, for the loss plot's unit.
    objective: OnceLock<Objective>,
}

impl Progress {
    /// Leaves the bar as it stands: at the end, or where the run stopped.
    pub(crate) fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.abandon();
        }
    }

    fn print(&self, line: &str) {
        match self.bar.get() {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// The run's progress animation and loss plot, with the interval just done.
    fn draw(&self, interval: &Interval) -> Result<(), PictureError> {
        let run = RunDir::new(&interval.run);
        write_progress_gif(&run)?;
        let objective = self.objective.get().copied().unwrap_or(Objective::Nll);
        loss_plot(&run, objective, &run.loss_plot_path())
    }
}

impl TrainObserver for Progress {
    fn started(&self, start: &Start) {
        let config = start.config;
        let _ = self.objective.set(config.model.arch.objective());
        if let Some(binarization) = config.binarization {
            eprintln!("binarisation: {}", binarization.describe());
        }
        let kind = if config.model.input_channels == 1 {
            "grayscale"
        } else {
            "RGB"
        };
        eprintln!(
            "model: {:?} architecture, {} parameters; data: {} training, {} validation images of {}×{} {kind}",
            config.model.arch,
            start.parameters,
            start.train_images,
            start.validation_images,
            config.image_height,
            config.image_width,
        );
        if config.precision == Precision::Bf16 {
            eprintln!(
                "precision: bf16 operands and f32 sums in the products at least 32 deep and 32 wide, f32 elsewhere"
            );
        }
        if let Some((ranks, members, images)) = start.ranks {
            eprintln!("data-parallel: {ranks} {members}, {images} images each per step");
        }
        if start.step >= config.steps {
            eprintln!(
                "the run already has {} of {} steps",
                start.step, config.steps
            );
            return;
        }
        let bar = ProgressBar::new(config.steps as u64).with_position(start.step as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta}] {msg}",
            )
            .expect("valid template"),
        );
        let _ = self.bar.set(bar);
    }

    fn stepped(&self, step: &Step) {
        let Some(bar) = self.bar.get() else { return };
        bar.set_position(step.step as u64);
        // With clipping on, the norm before clipping, to show how often the ceiling bites.
        let norm = step
            .gradient_norm
            .map_or(String::new(), |n| format!(", gradient norm {n:.3}"));
        let loss = match step.objective {
            Objective::Nll => format!("{:.4} bits/dim", nats_to_bits(step.loss)),
            Objective::Mse => format!("{:.5} mse", step.loss),
        };
        bar.set_message(format!(
            "loss {loss}{norm}, {:.0} img/s",
            step.images_per_second
        ));
    }

    fn interval(&self, interval: &Interval) {
        let metrics = &interval.metrics;
        let (train, validation) = metrics.loss.train_and_validation();
        let unit = metrics.loss.unit();
        let line = format!(
            "step {}: train {train:.4} {unit}, validation {validation:.4} {unit}",
            metrics.step
        );
        self.print(&line);
        // The checkpoint is written already: a picture that cannot be drawn is worth a warning,
        // not the run.
        if let Err(error) = self.draw(interval) {
            self.print(&format!("warning: {error}"));
        }
    }

    fn timing(&self, timing: &Timing) {
        let share = timing.reduce.as_secs_f64() / timing.step.as_secs_f64().max(f64::MIN_POSITIVE);
        eprintln!(
            "data-parallel: {:.1} ms a step, of which the gradients' all-reduce {:.1} ms ({:.1}%)",
            timing.step.as_secs_f64() * 1e3,
            timing.reduce.as_secs_f64() * 1e3,
            100.0 * share
        );
    }
}
