//! What a training run reports as it goes, to whoever called it: [`crate::train::train`] prints
//! nothing itself and calls a [`TrainObserver`] instead. The command line's progress bar and
//! messages are one observer; a library user passes their own, or `&()` to see nothing.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::Objective;
use crate::run_config::RunConfig;
use crate::run_log::Metrics;

/// A run about to train (or found already finished).
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub config: &'a RunConfig,
    /// Parameters of the model.
    pub parameters: usize,
    pub train_images: usize,
    pub validation_images: usize,
    /// The step it starts from: 0, or the checkpoint's step when resuming.
    pub step: usize,
    /// With several ranks ([`crate::parallel`]): how many, what they are ("threads" or
    /// "processes") and the images each takes of a step.
    pub ranks: Option<(usize, &'static str, usize)>,
}

/// One optimisation step done.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Steps done, this one included.
    pub step: usize,
    /// Steps the run is to take in all.
    pub steps: usize,
    /// The batch's loss: mean NLL in nats per sub-pixel, or for the MSE-trained auto-encoder
    /// the mean squared error.
    pub loss: f64,
    pub objective: Objective,
    /// The gradient's global norm before clipping, where the run clips.
    pub gradient_norm: Option<f64>,
    pub images_per_second: f64,
}

/// An interval done: validated, and its checkpoint and sample grid written (the library draws no
/// plots: the command line draws the run's loss plot and progress animation when told of this).
#[derive(Debug, Clone)]
pub struct Interval {
    pub metrics: Metrics,
    /// The run's folder.
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub samples: PathBuf,
}

/// How the steps of a run of several ranks spent their time.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Mean wall time of a step.
    pub step: Duration,
    /// Mean time of a step's gradient all-reduce.
    pub reduce: Duration,
}

/// Receives a run's reports, from its first rank only. Each method does nothing unless
/// implemented.
pub trait TrainObserver: Sync {
    /// The run's model and data, once, before the first step.
    fn started(&self, _start: &Start) {}
    /// After each step.
    fn stepped(&self, _step: &Step) {}
    /// After each interval.
    fn interval(&self, _interval: &Interval) {}
    /// Where a run of several ranks spent its time, once it has taken all its steps.
    fn timing(&self, _timing: &Timing) {}
}

/// Reports nothing.
impl TrainObserver for () {}
