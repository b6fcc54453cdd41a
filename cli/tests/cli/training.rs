//! Training on a small real subset, checkpoints that restore a model exactly, and resuming an
//! interrupted run bit for bit.

use crate::common;

use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use common::{context_free_bits, data, small_config as config};
use pixelcnn::checkpoint::{CheckpointError, FormatError};
use pixelcnn::data::Binarization;
use pixelcnn::model::PixelCnn;
use pixelcnn::observer::{Interval, Start, Step, Timing, TrainObserver};
use pixelcnn::recipe::{Recipe, new_optimizer};
use pixelcnn::run_config::RunConfig;
use pixelcnn::run_dir::RunDir;
use pixelcnn::run_log::{IntervalLoss, Metrics, read_losses};
use pixelcnn::train::{Outcome, train};

fn metrics(run: &RunDir) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.metrics_path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Logits of `model` (of `levels` levels) on a fixed batch.
fn logits(model: &PixelCnn, levels: usize) -> Vec<f32> {
    let (_, validation) = data();
    let input = validation.batch(&[0, 1, 2, 3], levels, &Device::flex());
    model
        .forward(input)
        .unwrap()
        .into_data()
        .try_into_vec()
        .unwrap()
}

/// Logits of the run's checkpointed model (of `levels` levels) on a fixed batch.
fn checkpoint_logits(run: &RunDir, levels: usize) -> Vec<f32> {
    logits(&run.load_checkpoint(&Device::flex()).unwrap().model, levels)
}

fn train_run(run: &RunDir, config: &RunConfig, resume: bool) -> Outcome {
    run.create().unwrap();
    train(
        run,
        config,
        data(),
        resume,
        &Device::flex(),
        &AtomicBool::new(false),
        &(),
    )
    .unwrap()
}

#[test]
fn a_short_training_run_lowers_the_loss_clearly_below_a_context_free_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let outcome = train_run(&run, &config(300, 100), false);
    let Outcome::Finished {
        step: 300,
        last:
            Some(Metrics {
                loss: IntervalLoss::Nll {
                    val_bits_per_dim, ..
                },
                ..
            }),
    } = outcome
    else {
        panic!("unexpected outcome {outcome:?}");
    };
    let lines = metrics(&run);
    assert_eq!(lines.len(), 3);
    let first_train = lines[0]["train_bits_per_dim"].as_f64().unwrap();
    let last_train = lines[2]["train_bits_per_dim"].as_f64().unwrap();
    let (train_set, validation) = data();
    let baseline = context_free_bits(&train_set, &validation, 4);
    eprintln!(
        "train {first_train} -> {last_train}, validation {val_bits_per_dim} bits/dim; \
         context-free {baseline}"
    );
    assert!(
        last_train < 0.75 * first_train,
        "{first_train} -> {last_train}"
    );
    // Measured: 0.51 bits/dim after 300 steps, where the context-free figure is 0.80.
    assert!(
        val_bits_per_dim < 0.8 * baseline,
        "validation {val_bits_per_dim} bits/dim, not clearly below the {baseline} of a model \
         that learned only how often each level occurs"
    );
    assert!(run.samples_path(300).is_file());
}

#[test]
fn a_checkpoint_restores_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let device = Device::flex();
    let config = config(1, 1).model;
    let model = config.init_seeded(&device, 3);
    let (_, validation) = data();
    let input = validation.batch(&[5, 6], 4, &device);
    let before: Vec<f32> = model
        .forward(input.clone())
        .unwrap()
        .into_data()
        .try_into_vec()
        .unwrap();
    run.save_checkpoint(7, &config, &model, None, &new_optimizer())
        .unwrap();
    let restored = run.load_checkpoint(&device).unwrap();
    assert_eq!(restored.step, 7);
    assert_eq!(restored.config, config);
    let after: Vec<f32> = restored
        .model
        .forward(input)
        .unwrap()
        .into_data()
        .try_into_vec()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn resuming_continues_exactly_like_an_uninterrupted_run() {
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = RunDir::new(straight_dir.path());
    train_run(&straight, &config(24, 12), false);

    let resumed_dir = tempfile::tempdir().unwrap();
    let resumed = RunDir::new(resumed_dir.path());
    train_run(&resumed, &config(12, 12), false);
    let outcome = train_run(&resumed, &config(24, 12), true);
    assert!(matches!(outcome, Outcome::Finished { step: 24, .. }));

    assert_eq!(
        checkpoint_logits(&straight, 4),
        checkpoint_logits(&resumed, 4)
    );
    assert_eq!(metrics(&straight), metrics(&resumed));
}

/// A dynamically binarised run with every part of the recipe.
fn binarised_config(steps: usize, interval: usize) -> RunConfig {
    let mut config = config(steps, interval);
    config.model.levels = 2;
    config.binarization = Some(Binarization::Dynamic);
    config.recipe = Recipe {
        warmup_steps: 5,
        lr_half_life: Some(20),
        ema_decay: Some(0.9),
        clip_grad_norm: Some(0.5),
    };
    config
}

#[test]
fn dynamic_binarisation_and_the_recipe_resume_exactly() {
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = RunDir::new(straight_dir.path());
    train_run(&straight, &binarised_config(24, 12), false);

    let resumed_dir = tempfile::tempdir().unwrap();
    let resumed = RunDir::new(resumed_dir.path());
    train_run(&resumed, &binarised_config(12, 12), false);
    train_run(&resumed, &binarised_config(24, 12), true);

    let device = Device::flex();
    let [a, b] = [&straight, &resumed].map(|run| run.load_checkpoint(&device).unwrap());
    assert_eq!(logits(&a.model, 2), logits(&b.model, 2));
    let [average_a, average_b] = [&a, &b].map(|c| logits(c.average.as_ref().unwrap(), 2));
    assert_eq!(average_a, average_b);
    assert_ne!(
        average_a,
        logits(&a.model, 2),
        "the average is not the weights"
    );
    assert_eq!(metrics(&straight), metrics(&resumed));

    // Each ingredient changes the training: threshold binarisation, or no recipe, trains
    // other weights from the same seed.
    for change in [
        |c: &mut RunConfig| c.binarization = Some(Binarization::Threshold),
        |c: &mut RunConfig| c.recipe = Recipe::default(),
    ] {
        let mut other = binarised_config(12, 12);
        change(&mut other);
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        train_run(&run, &other, false);
        assert_ne!(metrics(&run)[0], metrics(&resumed)[0], "{other:?}");
    }
}

#[test]
fn an_interrupt_saves_a_checkpoint_at_the_current_step() {
    for shards in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.create().unwrap();
        let interrupted = AtomicBool::new(true);
        let config = RunConfig {
            shards,
            ..config(50, 25)
        };
        let outcome = train(
            &run,
            &config,
            data(),
            false,
            &Device::flex(),
            &interrupted,
            &(),
        );
        assert!(
            matches!(outcome, Ok(Outcome::Interrupted { step: 0 })),
            "{shards} shards: {outcome:?}"
        );
        assert_eq!(run.load_checkpoint(&Device::flex()).unwrap().step, 0);
    }
}

#[test]
fn resuming_with_another_model_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    train_run(&run, &config(2, 2), false);
    let mut other = config(4, 2);
    other.model = other.model.with_channels(12);
    run.create().unwrap();
    let error = train(
        &run,
        &other,
        data(),
        true,
        &Device::flex(),
        &AtomicBool::new(false),
        &(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("channels: 8") && error.contains("channels: 12"),
        "{error}"
    );
}

#[test]
fn corrupt_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let device = Device::flex();
    let config = config(1, 1).model;
    run.save_checkpoint(1, &config, &config.init(&device), None, &new_optimizer())
        .unwrap();
    let good = std::fs::read(run.checkpoint_path()).unwrap();
    let load_error = |bytes: &[u8]| {
        std::fs::write(run.checkpoint_path(), bytes).unwrap();
        match run.load_checkpoint(&device) {
            Ok(_) => panic!("a corrupt checkpoint loaded"),
            Err(e) => e.to_string(),
        }
    };
    assert!(load_error(&good[..good.len() - 10]).contains("truncated"));
    assert!(load_error(b"garbage!garbage!").contains("not a pixelcnn checkpoint"));
    let mut other_version = good.clone();
    other_version[8] = 99;
    assert!(load_error(&other_version).contains("format version 99"));
    // A flipped byte anywhere after the version is refused by the checksum.
    for at in [20, 28, good.len() / 2, good.len() - 40, good.len() - 1] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x10;
        let error = load_error(&flipped);
        let typed = run.load_checkpoint(&device).err().unwrap();
        assert!(
            matches!(
                typed,
                CheckpointError::Format {
                    error: FormatError::Damaged { .. },
                    ..
                }
            ),
            "byte {at}: {typed:?}"
        );
        assert!(error.contains("damaged"), "byte {at}: {error}");
        assert!(error.contains("checkpoint.bin"), "byte {at}: {error}");
    }
    // Past the checksum (recomputed here), the sections are checked too.
    let resealed = |mut bytes: Vec<u8>| {
        let end = bytes.len() - 4;
        let checksum = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&checksum.to_le_bytes());
        bytes
    };
    let mut bad_config = good.clone();
    bad_config[28] = b'#';
    assert!(load_error(&resealed(bad_config)).contains("corrupt model config"));
    let mut trailing = good[..good.len() - 4].to_vec();
    trailing.extend([0; 5]);
    assert!(load_error(&resealed(trailing)).contains("unexpected bytes"));
    // The file that failed to load names itself.
    assert!(load_error(&good[..4]).contains("checkpoint.bin"));
    // A (sparse) gibibyte behind a small model's header is refused before it is read.
    std::fs::write(run.checkpoint_path(), &good).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(run.checkpoint_path())
        .unwrap();
    file.set_len(1 << 30).unwrap();
    let error = run.load_checkpoint(&device).err().unwrap().to_string();
    assert!(
        error.contains("1073741824 bytes, more than a checkpoint of its model can hold"),
        "{error}"
    );
}

/// Trains `config` in a fresh run folder inside a pool of `threads` threads.
fn train_in_pool(config: &RunConfig, threads: usize) -> (tempfile::TempDir, RunDir) {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| train_run(&run, config, false));
    (dir, run)
}

#[test]
fn a_run_in_two_shards_trains_as_one_and_does_not_depend_on_the_thread_count() {
    let sharded = RunConfig {
        shards: 2,
        precision: Default::default(),
        ..binarised_config(20, 10)
    };
    let (_one_dir, one) = train_in_pool(&binarised_config(20, 10), 2);
    let (_two_dir, two) = train_in_pool(&sharded, 2);
    let [one_losses, two_losses] = [&one, &two].map(|run| read_losses(run).unwrap());
    assert_eq!(one_losses.len(), 20);
    for (&(step, a), &(_, b)) in one_losses.iter().zip(&two_losses) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "step {step}: {a} vs {b}");
    }
    let [a, b] = [&one, &two].map(|run| checkpoint_logits(run, 2));
    let largest = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(largest < 1e-4, "logits differ by {largest}");

    // The shards' sums are in rank order and each shard's arithmetic does not depend on its
    // threads: in a pool of one thread (each shard gets one of its own) or of three (two and
    // one) the shards train the same weights bit for bit as in a pool of two.
    for threads in [1, 3] {
        let (_dir, run) = train_in_pool(&sharded, threads);
        assert_eq!(read_losses(&run).unwrap(), two_losses, "{threads} threads");
        assert_eq!(checkpoint_logits(&run, 2), b, "{threads} threads");
    }

    // A sharded run resumes exactly.
    let dir = tempfile::tempdir().unwrap();
    let resumed = RunDir::new(dir.path());
    train_run(
        &resumed,
        &RunConfig {
            steps: 10,
            ..sharded.clone()
        },
        false,
    );
    train_run(&resumed, &sharded, true);
    assert_eq!(read_losses(&resumed).unwrap(), two_losses);
    assert_eq!(metrics(&resumed), metrics(&two));
}

#[test]
fn when_the_first_shard_cannot_write_its_log_the_run_stops_with_that_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    run.create().unwrap();
    // A folder where the per-step losses go: the first shard, which writes the logs, fails to
    // open it while the second waits for it at the first gradient sum.
    std::fs::create_dir(dir.path().join("losses.csv")).unwrap();
    let config = RunConfig {
        shards: 2,
        precision: Default::default(),
        ..config(4, 2)
    };
    let outcome = train(
        &run,
        &config,
        data(),
        false,
        &Device::flex(),
        &AtomicBool::new(false),
        &(),
    );
    let error = outcome.expect_err("the log cannot be written").to_string();
    assert!(error.contains("losses.csv"), "{error}");
    assert!(!error.contains("another training thread"), "{error}");
}

/// Every report of a run, in order, as text.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl TrainObserver for Recorder {
    fn started(&self, start: &Start) {
        let line = format!("started at {} of {}", start.step, start.config.steps);
        self.0.lock().unwrap().push(line);
    }

    fn stepped(&self, step: &Step) {
        assert!(step.loss.is_finite() && step.images_per_second > 0.0);
        let line = format!("step {} of {}", step.step, step.steps);
        self.0.lock().unwrap().push(line);
    }

    fn interval(&self, interval: &Interval) {
        // Reported once the interval's checkpoint and grid are written.
        let checkpoint = std::fs::read(&interval.checkpoint).unwrap();
        assert!(interval.samples.is_file());
        let step = u64::from_le_bytes(checkpoint[12..20].try_into().unwrap());
        let line = format!("interval {} (checkpoint at {step})", interval.metrics.step);
        self.0.lock().unwrap().push(line);
    }

    fn timing(&self, timing: &Timing) {
        assert!(timing.reduce <= timing.step);
        self.0.lock().unwrap().push("timing".into());
    }
}

#[test]
fn a_run_reports_to_its_observer_once_per_event_from_one_rank() {
    for shards in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.create().unwrap();
        let recorder = Recorder::default();
        let config = RunConfig {
            shards,
            precision: Default::default(),
            ..config(4, 2)
        };
        let interrupt = AtomicBool::new(false);
        train(
            &run,
            &config,
            data(),
            false,
            &Device::flex(),
            &interrupt,
            &recorder,
        )
        .unwrap();
        let mut expected = vec!["started at 0 of 4".to_string()];
        for step in 1..=4 {
            expected.push(format!("step {step} of 4"));
            if step % 2 == 0 {
                expected.push(format!("interval {step} (checkpoint at {step})"));
            }
        }
        if shards > 1 {
            expected.push("timing".into());
        }
        assert_eq!(*recorder.0.lock().unwrap(), expected, "{shards} shards");
        // A finished run resumed reports where it stands and nothing else.
        let again = Recorder::default();
        train(
            &run,
            &config,
            data(),
            true,
            &Device::flex(),
            &interrupt,
            &again,
        )
        .unwrap();
        assert_eq!(*again.0.lock().unwrap(), ["started at 4 of 4"]);
    }
}
