//! Maximum-likelihood training (arXiv 1601.06759, Section 5.1): Adam on the mean per-pixel
//! cross-entropy, with periodic validation in bits/dim, sample grids, and atomic checkpoints
//! from which an interrupted run resumes exactly where it stopped. Binarised runs draw their
//! binary images as [`crate::data::binarize`] says; the learning-rate schedule, the moving
//! average of the weights and gradient clipping are [`crate::recipe`]'s. The MSE-trained
//! auto-encoder baseline is trained the same way on the mean squared error, and its losses are
//! logged, shown and plotted as such, never as a likelihood.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::seq::SliceRandom;

use crate::checkpoint::CheckpointError;
use crate::data::binarize::{self, Binarization};
use crate::data::{DataError, ImageSet};
use crate::evaluate::{Likelihood, Score, SquaredError, score};
use crate::loss::{bits_per_dim, mean_nll, nats_to_bits, squared_error};
use crate::model::{
    Conditioning, NoLogits, Objective, PixelCnn, PixelCnnConfig, Prediction, intensities_to_levels,
    one_hot,
};
use crate::observer::{Interval, Start, Step, Timing as TimingReport, TrainObserver};
use crate::parallel::{self, Collective, ParallelError, Single};
use crate::picture::{self, PictureError};
use crate::precision;
use crate::random;
use crate::recipe::new_optimizer;
use crate::recipe::{average, clipping, grow};
use crate::run_config::RunConfig;
use crate::run_dir::RunDir;
use crate::run_log::{IntervalLoss, LogError, LossLog, Metrics, append_metrics, roll_back};
use crate::sample::{Sampler, SamplingOptions, sample};

/// Validation images scored at each interval.
const VALIDATION_LIMIT: usize = 1_000;
/// Images in each interval's sample grid.
const GRID_IMAGES: usize = 16;
/// Seed of the sample grids, fixed so that grids of one run show the model's progress.
const GRID_SEED: u64 = 0x5eed;

/// Why training stopped without finishing. A run that diverged keeps its last checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged at step {step}: the loss is {loss}; the last checkpoint is kept")]
    NonFiniteLoss { step: usize, loss: f64 },
    #[error(
        "training diverged at step {step}: the gradient of {parameter} is not finite; the last checkpoint is kept"
    )]
    NonFiniteGradient { step: usize, parameter: String },
    #[error(
        "training diverged at step {step}: the validation loss is {loss}; the last checkpoint is kept"
    )]
    NonFiniteValidation { step: usize, loss: f64 },
    /// The data does not fit the model's conditioning.
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Log(#[from] LogError),
    /// The sample grid of an interval.
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// The model's objective is not the one its config names.
    #[error(transparent)]
    NoLogits(#[from] NoLogits),
    /// The processes of a data-parallel run cannot share the batch.
    #[error(transparent)]
    Parallel(#[from] ParallelError),
    #[error(transparent)]
    Precision(#[from] precision::Unsupported),
    /// The run this one starts from (`init_from`) cannot give it its first weights.
    #[error("cannot start from the run given: {0}")]
    InitFrom(String),
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Finished { step: usize, last: Option<Metrics> },
    Interrupted { step: usize },
}

/// The order in which training images are visited: a fresh permutation per epoch, derived from
/// the seed and the epoch number, so that step `n` always sees the same batch — also after a
/// resume.
struct BatchOrder {
    seed: u64,
    images: usize,
    batch_size: usize,
    epoch: Option<(usize, Vec<usize>)>,
}

impl BatchOrder {
    fn new(seed: u64, images: usize, batch_size: usize) -> Self {
        Self {
            seed,
            images,
            batch_size,
            epoch: None,
        }
    }

    fn batch(&mut self, step: usize) -> &[usize] {
        let per_epoch = self.images / self.batch_size;
        let (epoch, position) = (step / per_epoch, step % per_epoch);
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.images).collect();
            order.shuffle(&mut random::seeded(self.seed ^ (epoch as u64) << 20));
            self.epoch = Some((epoch, order));
        }
        let order = &self.epoch.as_ref().expect("set above").1;
        &order[position * self.batch_size..(position + 1) * self.batch_size]
    }
}

/// Trains (or, with `resume`, continues training from its checkpoint) the run in `run` on the
/// training and validation sets given, stopping early with a checkpoint when `interrupt` is
/// set. It prints nothing: progress goes to `observer`. A run of several shards trains them side
/// by side as ranks in threads of this process ([`parallel::in_threads`]).
pub fn train(
    run: &RunDir,
    config: &RunConfig,
    sets: (ImageSet, ImageSet),
    resume: bool,
    device: &Device,
    interrupt: &AtomicBool,
    observer: &dyn TrainObserver,
) -> Result<Outcome, TrainError> {
    let rank_of = |collective: &dyn Collective, sets| {
        let context = Context {
            device,
            interrupt,
            collective,
            observer,
        };
        train_on(run, config, sets, resume, &context)
    };
    let _precision = precision::scoped(config.precision)?;
    if config.shards == 1 {
        return rank_of(&Single, sets);
    }
    let outcomes = parallel::in_threads(config.shards, |rank| rank_of(rank, sets.clone()))?;
    first_cause(outcomes)
}

/// The outcome of the ranks of a run in threads: rank 0's, unless it stopped because another
/// rank had failed, then that failure.
fn first_cause(outcomes: Vec<Result<Outcome, TrainError>>) -> Result<Outcome, TrainError> {
    let departed = |outcome: &Result<Outcome, TrainError>| {
        matches!(outcome, Err(TrainError::Parallel(ParallelError::Departed)))
    };
    let mut outcomes = outcomes.into_iter();
    let leader = outcomes.next().expect("a run has at least one rank");
    match departed(&leader) {
        true => outcomes.find(|o| !departed(o)).unwrap_or(leader),
        false => leader,
    }
}

/// Where a rank of a run trains: its device, the flag that interrupts it, the ranks it trains
/// with and who hears of its progress.
pub struct Context<'a> {
    pub device: &'a Device,
    pub interrupt: &'a AtomicBool,
    pub collective: &'a dyn Collective,
    pub observer: &'a dyn TrainObserver,
}

/// [`train`] as one of the ranks of `context.collective` ([`crate::parallel`]): each global
/// batch is split across the ranks and their gradients averaged; rank 0 alone writes the run
/// folder (logs, checkpoints, pictures) and reports progress; validation is split across the
/// ranks too. Ctrl-C on any rank stops every rank at the same step.
pub fn train_on(
    run: &RunDir,
    config: &RunConfig,
    (train_set, validation): (ImageSet, ImageSet),
    resume: bool,
    context: &Context,
) -> Result<Outcome, TrainError> {
    let Context {
        device,
        interrupt,
        collective,
        observer,
    } = *context;
    // Held by each rank; where `train` holds it already, this one finds and restores the same.
    let _precision = precision::scoped(config.precision)?;
    let batch_size = config.batch_size.min(train_set.len());
    let shard = parallel::shard(batch_size, collective)?;
    let leader = collective.rank() == 0;
    for set in [&train_set, &validation] {
        set.check_conditioning(config.model.conditioning)?;
    }
    let training_device = device.clone().autodiff();
    let (mut step, mut model, average, mut optimizer) = if resume {
        let checkpoint = run.load_checkpoint_for(config, &training_device)?;
        if leader {
            roll_back(run, checkpoint.step)?;
        }
        let average = checkpoint.average.map(|a| a.valid());
        (
            checkpoint.step,
            checkpoint.model,
            average,
            checkpoint.optimizer,
        )
    } else {
        (
            0,
            initial_model(config, &training_device)?,
            None,
            new_optimizer(),
        )
    };
    // A run that asks for an average and has none yet starts it from the current weights.
    let mut average = config
        .recipe
        .ema_decay
        .map(|_| average.unwrap_or_else(|| model.valid()));
    let validation = validation.for_evaluation(config.binarization);
    if leader {
        observer.started(&Start {
            config,
            parameters: model.num_params(),
            train_images: train_set.len(),
            validation_images: validation.len(),
            step,
            ranks: (collective.ranks() > 1)
                .then(|| (collective.ranks(), collective.members(), shard.len())),
        });
    }
    if step >= config.steps {
        return Ok(Outcome::Finished { step, last: None });
    }

    let objective = config.model.arch.objective();
    let mut losses = leader.then(|| LossLog::open(run, objective)).transpose()?;
    let mut order = BatchOrder::new(config.seed, train_set.len(), batch_size);
    let mut window = LossWindow::default();
    let mut timing = Timing::default();
    let mut last = None;
    while step < config.steps {
        let started = Instant::now();
        let indices = order.batch(step);
        // The whole batch is drawn (its binarisation too), so that a shard is the same images
        // and pixels as in one process.
        let targets = training_batch(&train_set, indices, config, step, &training_device).narrow(
            0,
            shard.start,
            shard.len(),
        );
        let indices = &indices[shard.clone()];
        let condition = train_set.condition(indices, config.model.conditioning, &training_device);
        let loss = batch_loss(&model, &config.model, targets, condition.as_ref());
        let local_loss = loss.clone().into_scalar::<f64>();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        // The loss and the Ctrl-C flag travel in the gradients' all-reduce, so that every rank
        // logs the batch's loss and stops at the same step.
        let stop = f32::from(u8::from(interrupt.load(Ordering::SeqCst)));
        let mut extra = [local_loss as f32, stop];
        let reducing = Instant::now();
        parallel::average_gradients(&model, &mut grads, &mut extra, collective)?;
        timing.reduce += reducing.elapsed();
        let loss_value = match collective.ranks() {
            1 => local_loss,
            ranks => f64::from(extra[0]) / ranks as f64,
        };
        if extra[1] > 0.0 {
            if leader {
                run.save_checkpoint(step, &config.model, &model, average.as_ref(), &optimizer)?;
            }
            return Ok(Outcome::Interrupted { step });
        }
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss: loss_value,
            });
        }
        if let Some(parameter) = non_finite_gradient(&model, &grads) {
            return Err(TrainError::NonFiniteGradient {
                step: step + 1,
                parameter,
            });
        }
        let gradient_norm = config
            .recipe
            .clip_grad_norm
            .map(|ceiling| clipping::clip(&model, &mut grads, ceiling));
        let learning_rate = config.recipe.learning_rate(config.learning_rate, step);
        model = optimizer.step(learning_rate, model, grads);
        if let (Some(decay), Some(averaged)) = (config.recipe.ema_decay, average.take()) {
            let decay = average::effective_decay(decay, step);
            average = Some(average::update(averaged, &model.valid(), decay));
        }
        step += 1;
        timing.steps += started.elapsed();
        timing.count += 1;
        if let Some(losses) = losses.as_mut() {
            losses.record(step, loss_value)?;
        }
        window.add(loss_value);
        if leader {
            observer.stepped(&Step {
                step,
                steps: config.steps,
                loss: loss_value,
                objective,
                gradient_norm,
                images_per_second: batch_size as f64 / started.elapsed().as_secs_f64(),
            });
        }
        if step % config.interval == 0 || step == config.steps {
            let inference = average.clone().unwrap_or_else(|| model.valid());
            let validation_score = validate(&inference, config, &validation, device, collective)?;
            if leader {
                let metrics = finish_interval(
                    run,
                    config,
                    step,
                    &inference,
                    (&validation, validation_score),
                    &mut window,
                    device,
                )?;
                run.save_checkpoint(step, &config.model, &model, average.as_ref(), &optimizer)?;
                observer.interval(&Interval {
                    metrics,
                    run: run.root().to_path_buf(),
                    checkpoint: run.checkpoint_path(),
                    samples: run.samples_path(step),
                });
                last = Some(metrics);
            }
        }
    }
    if leader && collective.ranks() > 1 {
        observer.timing(&timing.report());
    }
    Ok(Outcome::Finished { step, last })
}

/// A new run's weights: drawn from its seed or, for a run that starts from another, grown from
/// that run's ([`grow`]).
fn initial_model(config: &RunConfig, device: &Device) -> Result<PixelCnn, TrainError> {
    let fresh = config.model.init_seeded(device, config.seed);
    let Some(from) = &config.init_from else {
        return Ok(fresh);
    };
    let source = RunDir::new(&from.run).load_checkpoint(device)?;
    if source.step != from.step {
        return Err(TrainError::InitFrom(format!(
            "{} is at step {}, no longer at the step {} this run starts from",
            from.run.display(),
            source.step,
            from.step
        )));
    }
    grow::check_growable(&source.config, &config.model)
        .map_err(|e| TrainError::InitFrom(e.to_string()))?;
    Ok(grow::grow(source.into_inference_model(), fresh))
}

/// Where the time of a data-parallel run's steps went.
#[derive(Default)]
struct Timing {
    steps: std::time::Duration,
    reduce: std::time::Duration,
    count: u32,
}

impl Timing {
    fn report(&self) -> TimingReport {
        let count = self.count.max(1);
        TimingReport {
            step: self.steps / count,
            reduce: self.reduce / count,
        }
    }
}

/// The validation score, the validation images split across the ranks and their sums reduced.
fn validate(
    model: &PixelCnn,
    config: &RunConfig,
    validation: &ImageSet,
    device: &Device,
    collective: &dyn Collective,
) -> Result<Score, TrainError> {
    let count = validation.len().min(VALIDATION_LIMIT);
    let ranks = collective.ranks();
    if ranks == 1 {
        return Ok(score(model, &config.model, validation, count, device)?);
    }
    let per_rank = count.div_ceil(ranks);
    let start = (collective.rank() * per_rank).min(count);
    let end = (start + per_rank).min(count);
    let mine = validation.select(&(start..end).collect::<Vec<_>>());
    let mut sums = [(end - start) as f32, 0.0];
    if end > start {
        sums[1] = match score(model, &config.model, &mine, end - start, device)? {
            Score::Likelihood(l) => l.nll_nats * l.images as f64,
            Score::SquaredError(e) => e.mse * e.images as f64,
        } as f32;
    }
    collective.sum(&mut sums)?;
    let mean = f64::from(sums[1]) / f64::from(sums[0]);
    Ok(match config.model.arch.objective() {
        Objective::Nll => Score::Likelihood(Likelihood {
            images: count,
            nll_nats: mean,
            bits_per_dim: bits_per_dim(mean, validation.values_per_image()),
        }),
        Objective::Mse => Score::SquaredError(SquaredError {
            images: count,
            mse: mean,
        }),
    })
}

/// The metrics line and the sample grid at the end of an interval, after validation.
fn finish_interval(
    run: &RunDir,
    config: &RunConfig,
    step: usize,
    inference: &PixelCnn,
    (validation, validation_score): (&ImageSet, Score),
    window: &mut LossWindow,
    device: &Device,
) -> Result<Metrics, TrainError> {
    let levels = config.model.levels;
    if !validation_score.value().is_finite() {
        let loss = validation_score.value();
        return Err(TrainError::NonFiniteValidation { step, loss });
    }
    let train = window.take_mean();
    let loss = match validation_score {
        Score::Likelihood(likelihood) => IntervalLoss::Nll {
            train_nats_per_dim: train,
            train_bits_per_dim: nats_to_bits(train),
            val_bits_per_dim: likelihood.bits_per_dim,
        },
        Score::SquaredError(error) => IntervalLoss::Mse {
            train_mse: train,
            val_mse: error.mse,
        },
    };
    let metrics = Metrics { step, loss };
    append_metrics(run, &metrics)?;
    let options = SamplingOptions {
        levels,
        channels: validation.channels,
        height: validation.height,
        width: validation.width,
        temperature: 1.0,
        sampler: Sampler::Cached,
    };
    let (count, condition, columns) = grid_conditions(inference, &config.model, validation, device);
    let decoded = condition
        .clone()
        .and_then(|code| inference.decode_intensities(code));
    let images = match decoded {
        Some(intensities) => intensities_to_levels(intensities, levels),
        None => {
            let mut rng = random::seeded(GRID_SEED);
            sample(inference, count, condition, options, &mut rng, device)
        }
    };
    let tiles: Vec<_> = images
        .iter()
        .map(|image| picture::levels_tile(image, levels, options.height, options.width))
        .collect();
    let grid = picture::grid(&tiles, columns, 4);
    picture::save(&grid, &run.samples_path(step))?;
    picture::save(&grid, &run.root().join("samples.png"))?;
    Ok(metrics)
}

/// The number of images in the sample grid, their conditions and the grid's columns: a 4×4 grid
/// for an unconditional model, each class twice (one class per column) for a class-conditional
/// one, the vectors (or an auto-encoder's codes) of the first 16 validation images.
fn grid_conditions(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    validation: &ImageSet,
    device: &Device,
) -> (usize, Option<Tensor<2>>, usize) {
    let first: Vec<usize> = (0..GRID_IMAGES.min(validation.len())).collect();
    // An auto-encoder decodes the codes of the first validation images.
    if config.latent.is_some() {
        let codes = model.encode(validation.batch(&first, config.levels, device));
        return (first.len(), codes, 4);
    }
    let conditioning = config.conditioning;
    match conditioning {
        Conditioning::None => (GRID_IMAGES, None, 4),
        Conditioning::Class { classes } => {
            let labels: Vec<usize> = (0..2 * classes).map(|i| i % classes).collect();
            (
                labels.len(),
                Some(one_hot(&labels, classes, device)),
                classes,
            )
        }
        Conditioning::Embedding { .. } => {
            let condition = validation.condition(&first, conditioning, device);
            (first.len(), condition, 4)
        }
    }
}

/// The training images at `indices` as levels; a dynamically binarised run draws the binary
/// pixels of step `step` from its own generator.
fn training_batch(
    train_set: &ImageSet,
    indices: &[usize],
    config: &RunConfig,
    step: usize,
    device: &Device,
) -> Tensor<4, Int> {
    let levels = config.model.levels;
    match config.binarization {
        Some(Binarization::Dynamic) => {
            let chosen = train_set.select(indices);
            let binary = chosen.binarized(&mut binarize::training_rng(config.seed, step));
            let all: Vec<usize> = (0..indices.len()).collect();
            binary.batch(&all, levels, device)
        }
        _ => train_set.batch(indices, levels, device),
    }
}

/// The loss of one batch: the mean NLL per sub-pixel in nats, or the mean squared error of an
/// MSE-trained auto-encoder's reconstructions.
fn batch_loss(
    model: &PixelCnn,
    config: &PixelCnnConfig,
    targets: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
) -> Tensor<1> {
    match model.predict(targets.clone(), condition) {
        Prediction::Intensities(intensities) => {
            squared_error(intensities, targets, config.levels).mean()
        }
        Prediction::Logits(logits) => mean_nll(logits, targets),
    }
}

/// Training losses since the last interval.
#[derive(Default)]
struct LossWindow {
    sum: f64,
    count: usize,
}

impl LossWindow {
    fn add(&mut self, loss: f64) {
        self.sum += loss;
        self.count += 1;
    }

    fn take_mean(&mut self) -> f64 {
        let mean = self.sum / self.count.max(1) as f64;
        *self = Self::default();
        mean
    }
}

/// The name of the first parameter of `model` whose gradient holds a NaN or an infinity, if any.
fn non_finite_gradient(model: &PixelCnn, grads: &GradientsParams) -> Option<String> {
    let mut visitor = GradientSums {
        grads,
        path: Vec::new(),
        sums: Vec::new(),
    };
    model.visit(&mut visitor);
    let (names, sums): (Vec<String>, Vec<Tensor<1>>) = visitor.sums.into_iter().unzip();
    // One sum of magnitudes per parameter: NaN or infinite exactly when a value is.
    let sums: Vec<f32> = Tensor::cat(sums, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("sums are floats");
    names
        .into_iter()
        .zip(sums)
        .find_map(|(name, sum)| (!sum.is_finite()).then_some(name))
}

/// Collects the sum of magnitudes of each parameter's gradient, named by its module path.
struct GradientSums<'a> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    sums: Vec<(String, Tensor<1>)>,
}

impl ModuleVisitor for GradientSums<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sum = grad.abs().sum().reshape([1]);
            self.sums.push((self.path.join("."), sum));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PixelCnnConfig;

    #[test]
    fn the_batch_order_of_seed_0_is_pinned() {
        // Exact resume, and the same run from the same seed, rest on this order: a change of
        // generator or of rand's shuffle changes it.
        let mut order = BatchOrder::new(0, 10, 3);
        assert_eq!(order.batch(0), [1, 0, 7]);
        assert_eq!(order.batch(2), [5, 9, 8]);
        // The first batch of the second epoch.
        assert_eq!(order.batch(3), [5, 8, 1]);
    }

    #[test]
    fn a_nan_or_infinite_gradient_is_found_and_named() {
        let device = Device::flex();
        let model = PixelCnnConfig::new(4)
            .with_layers(2)
            .with_channels(4)
            .init_seeded(&device, 0);
        let PixelCnn::Gated(gated) = &model else {
            unreachable!()
        };
        let weight = &gated.layers[1].skip.weight;
        let mut grads = GradientsParams::new();
        grads.register(weight.id, weight.val().zeros_like());
        assert_eq!(non_finite_gradient(&model, &grads), None);
        for bad in [f32::NAN, f32::INFINITY] {
            let mut values = vec![0.0f32; weight.val().shape().num_elements()];
            values[3] = bad;
            let tensor = Tensor::<4>::from_data(TensorData::new(values, weight.dims()), &device);
            grads.register(weight.id, tensor);
            let name = non_finite_gradient(&model, &grads);
            assert_eq!(name.as_deref(), Some("Gated.layers.1.skip.weight"), "{bad}");
        }
    }
}
