//! Training with bf16 products (`--precision bf16`): it learns as the f32 run does without
//! being the f32 run, resumes bit for bit, and is refused with one error on a processor
//! without AVX-512 BF16. The precision is process-wide, so these tests have their own binary
//! and take turns.

#[path = "cli/common/mod.rs"]
mod common;

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use common::{context_free_bits, data, small_config};
use pixelcnn::precision::{self, Precision};
use pixelcnn::run_config::RunConfig;
use pixelcnn::run_dir::RunDir;
use pixelcnn::train::{Outcome, TrainError, train};

/// One test at a time: each sets the process-wide precision.
static TURN: Mutex<()> = Mutex::new(());

/// A model wide enough (64 channels: products 64 to 128 wide and 64 to 384 deep) that its
/// stacks' products, forward and backward, run in bf16.
fn config(steps: usize, precision: Precision) -> RunConfig {
    let small = small_config(steps, 20);
    RunConfig {
        model: small.model.with_channels(64),
        precision,
        ..small
    }
}

fn train_run(run: &RunDir, config: &RunConfig, resume: bool) -> Result<Outcome, TrainError> {
    run.create().unwrap();
    let interrupt = AtomicBool::new(false);
    train(
        run,
        config,
        data(),
        resume,
        &Device::flex(),
        &interrupt,
        &(),
    )
}

/// Each interval's validation bits/dim.
fn validation_bits(run: &RunDir) -> Vec<f64> {
    std::fs::read_to_string(run.metrics_path())
        .unwrap()
        .lines()
        .map(|line| {
            let metrics: serde_json::Value = serde_json::from_str(line).unwrap();
            metrics["val_bits_per_dim"].as_f64().unwrap()
        })
        .collect()
}

/// Logits of the run's checkpointed model on a fixed batch, in f32.
fn checkpoint_logits(run: &RunDir) -> Vec<f32> {
    let _f32 = precision::scoped(Precision::F32).unwrap();
    let model = run.load_checkpoint(&Device::flex()).unwrap().model;
    let input = data().1.batch(&[0, 1, 2, 3], 4, &Device::flex());
    model
        .forward(input)
        .unwrap()
        .into_data()
        .try_into_vec()
        .unwrap()
}

/// Whether this processor runs bf16; where it does not, `PIXELCNN_REQUIRE_BF16` (set by CI)
/// turns the tests that need it into failures instead of the refusal checked below.
fn bf16_here() -> bool {
    let available = precision::bf16_available();
    assert!(
        available || std::env::var_os("PIXELCNN_REQUIRE_BF16").is_none(),
        "PIXELCNN_REQUIRE_BF16 is set but this processor lacks AVX-512 BF16"
    );
    available
}

#[test]
fn bf16_training_follows_f32_training_without_being_it() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (f32_run, bf16_run) = (
        RunDir::new(dir.path()),
        RunDir::new(dir.path().join("bf16")),
    );
    let refused = train_run(&bf16_run, &config(60, Precision::Bf16), false);
    if !bf16_here() {
        assert!(
            matches!(refused, Err(TrainError::Precision(_))),
            "{refused:?}"
        );
        return;
    }
    refused.unwrap();
    train_run(&f32_run, &config(60, Precision::F32), false).unwrap();
    let (f32_bits, bf16_bits) = (validation_bits(&f32_run), validation_bits(&bf16_run));
    let (train_set, validation) = data();
    let baseline = context_free_bits(&train_set, &validation, 4);
    for (step, (&full, &mixed)) in f32_bits.iter().zip(&bf16_bits).enumerate() {
        let at = format!("interval {step}: f32 {full}, bf16 {mixed}");
        assert_ne!(full, mixed, "bf16 products must differ from f32 ones: {at}");
        assert!((full - mixed).abs() <= 0.02 * full, "{at}");
    }
    let last = *bf16_bits.last().unwrap();
    assert!(
        last < 0.8 * baseline,
        "bf16 {last} vs context-free {baseline}"
    );
}

#[test]
fn a_bf16_run_resumes_bit_for_bit() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if !bf16_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (straight, resumed) = (RunDir::new(dir.path()), RunDir::new(dir.path().join("r")));
    train_run(&straight, &config(40, Precision::Bf16), false).unwrap();
    train_run(&resumed, &config(20, Precision::Bf16), false).unwrap();
    train_run(&resumed, &config(40, Precision::Bf16), true).unwrap();
    assert_eq!(validation_bits(&straight), validation_bits(&resumed));
    assert_eq!(checkpoint_logits(&straight), checkpoint_logits(&resumed));
}

#[test]
fn a_precision_holds_for_its_call_and_no_longer() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(precision::current(), Precision::F32);
    // A bf16 run, or its refusal where the processor lacks bf16, leaves the products in f32.
    let _ = train_run(&RunDir::new(dir.path()), &config(2, Precision::Bf16), false);
    assert_eq!(precision::current(), Precision::F32);
    if !bf16_here() {
        assert!(precision::scoped(Precision::Bf16).is_err());
        assert_eq!(precision::current(), Precision::F32);
        return;
    }
    let outer = precision::scoped(Precision::Bf16).unwrap();
    {
        let _inner = precision::scoped(Precision::F32).unwrap();
        assert_eq!(precision::current(), Precision::F32);
    }
    assert_eq!(precision::current(), Precision::Bf16);
    // An f32 run inside it computes in f32 and gives the caller's bf16 back.
    let run = RunDir::new(dir.path().join("f32"));
    train_run(&run, &config(2, Precision::F32), false).unwrap();
    assert_eq!(precision::current(), Precision::Bf16);
    drop(outer);
    assert_eq!(precision::current(), Precision::F32);
}
