//! The `pixelcnn` binary end to end on a tiny synthetic data set, and its error messages: every
//! bad input ends with one clear message and a non-zero exit code, never a panic.

use crate::common;

use std::path::Path;

use common::{TINY, cifar_records, context_free_bits, f32_bytes, npy, pixelcnn, synthetic_data};
use pixelcnn::data::{DataSource, Dataset};
use pixelcnn::model::PixelCnnConfig;
use pixelcnn::recipe::NEW_RUN;
use std::process::{Command, Output};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that the command failed cleanly with a message containing `needle`.
fn assert_fails_with(args: &[&str], needle: &str) {
    let output = pixelcnn(args);
    let message = stderr(&output);
    assert!(!output.status.success(), "{args:?} succeeded");
    assert!(message.contains(needle), "{args:?}: {message}");
    assert!(
        !message.contains("panicked"),
        "{args:?} panicked: {message}"
    );
}

fn train_tiny(data: &Path, run: &Path) {
    let mut args = vec![
        "train",
        "--out",
        run.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(TINY);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn train_eval_sample_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    for file in [
        "config.json",
        "checkpoint.bin",
        "metrics.jsonl",
        "samples.png",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_pictures(&run);

    let run_arg = run.to_str().unwrap();
    let output = pixelcnn(&["eval", "--run", run_arg, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["images"], 10);
    let (nats, bits) = (
        json["nll_nats"].as_f64().unwrap(),
        json["bits_per_dim"].as_f64().unwrap(),
    );
    assert!(nats > 0.0);
    assert!((bits - nats / (64.0 * std::f64::consts::LN_2)).abs() < 1e-9);

    let grid = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let args = [
            "sample",
            "--run",
            run_arg,
            "--n",
            "3",
            "--out",
            path.to_str().unwrap(),
            "--seed",
            seed,
        ];
        let output = pixelcnn(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::read(path).unwrap()
    };
    let first = grid("a.png", "5");
    let decoded = image::load_from_memory(&first).unwrap();
    // 3 images in 2 columns and 2 rows of 8×8 tiles scaled 4×, with 2-pixel gaps.
    assert_eq!((decoded.width(), decoded.height()), (70, 70));
    assert_eq!(
        first,
        grid("b.png", "5"),
        "the same seed gives the same picture"
    );
}

/// The pictures of a run with two intervals: grids, a two-frame GIF and the loss plot.
fn assert_pictures(run: &Path) {
    use image::AnimationDecoder;
    // 16 samples in 4 columns of 8×8 tiles scaled 4×, with 2-pixel gaps: 4·34 + 2.
    for grid in [
        "samples.png",
        "samples_step0000002.png",
        "samples_step0000004.png",
    ] {
        let picture = image::open(run.join(grid)).unwrap();
        assert_eq!((picture.width(), picture.height()), (138, 138), "{grid}");
    }
    let gif = std::fs::File::open(run.join("progress.gif")).unwrap();
    let frames = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(gif))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 2);
    // Each frame is a grid with a 20-pixel label strip above it.
    assert_eq!(frames[0].buffer().dimensions(), (138, 158));
    let plot = image::open(run.join("loss.png")).unwrap();
    assert_eq!((plot.width(), plot.height()), (800, 500));

    // `gif` and `plot` rebuild them.
    std::fs::remove_file(run.join("progress.gif")).unwrap();
    std::fs::remove_file(run.join("loss.png")).unwrap();
    for command in ["gif", "plot"] {
        let output = pixelcnn(&[command, "--run", run.to_str().unwrap()]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(run.join("progress.gif").is_file() && run.join("loss.png").is_file());
}

#[test]
fn complete_and_heatmap_write_grids_of_the_expected_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    let run_arg = run.to_str().unwrap();
    let completion = dir.path().join("complete.png");
    let output = pixelcnn(&[
        "complete",
        "--run",
        run_arg,
        "--rows",
        "3",
        "--n",
        "2",
        "--samples",
        "3",
        "--out",
        completion.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // 2 rows of [original | occluded | 3 completions], 8×8 tiles scaled 4×.
    let picture = image::open(&completion).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (5 * 34 + 2, 2 * 34 + 2)
    );

    let heatmap = dir.path().join("heat.png");
    let output = pixelcnn(&[
        "eval",
        "--run",
        run_arg,
        "--heatmap",
        heatmap.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // 8 of the 10 test images, each beside its heat map.
    let picture = image::open(&heatmap).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (2 * 34 + 2, 8 * 34 + 2)
    );

    assert_fails_with(
        &[
            "complete", "--run", run_arg, "--rows", "8", "--out", "x.png",
        ],
        "--rows must be less than the image height 8",
    );
    assert_fails_with(
        &[
            "sample",
            "--run",
            run_arg,
            "--out",
            "x.png",
            "--temperature=-1",
        ],
        "invalid value '-1' for '--temperature <TEMPERATURE>': must be a number ≥ 0",
    );
}

#[test]
fn bad_flags_and_inputs_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_arg = out.to_str().unwrap();
    assert_fails_with(
        &["train", "--out", out_arg, "--bogus"],
        "unexpected argument",
    );
    assert_fails_with(
        &["train", "--out", out_arg, "--levels", "1"],
        "'--levels <LEVELS>': must be a whole number from 2 to 256",
    );
    assert_fails_with(
        &["train", "--out", out_arg, "--levels", "300"],
        "'--levels <LEVELS>': must be a whole number from 2 to 256",
    );
    assert_fails_with(
        &["train", "--out", out_arg, "--steps", "0"],
        "'--steps <STEPS>': must be a whole number ≥ 1",
    );
    assert_fails_with(
        &["train", "--out", out_arg, "--arch", "resnet"],
        "invalid value 'resnet'",
    );
    #[cfg(not(feature = "wgpu"))]
    assert_fails_with(
        &["--device", "wgpu", "eval", "--run", out_arg],
        "built without the `wgpu` feature",
    );
    assert_fails_with(
        &["--device", "cuda", "eval", "--run", out_arg],
        "built without the `cuda` feature",
    );
    assert_fails_with(&["eval", "--run", out_arg], "is not a trained run");
    assert_fails_with(
        &["sample", "--run", out_arg, "--out", "x.png"],
        "is not a trained run",
    );
    assert_fails_with(
        &["train", "--out", out_arg, "--resume"],
        "no checkpoint to resume from",
    );
    let missing = dir.path().join("nowhere");
    assert_fails_with(
        &[
            "train",
            "--out",
            out_arg,
            "--data-dir",
            missing.to_str().unwrap(),
        ],
        "not a folder",
    );
}

#[test]
fn corrupt_or_mismatched_data_and_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());

    assert_fails_with(
        &["train", "--out", run_arg, "--data-dir", data_arg],
        "already holds a run",
    );
    assert_fails_with(
        &["train", "--out", run_arg, "--resume", "--channels", "6"],
        "--channels 6 (the run has 4)",
    );

    // Test images of another size than the model was trained on.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    synthetic_data(&other, 10, 12, 4);
    assert_fails_with(
        &[
            "eval",
            "--run",
            run_arg,
            "--data-dir",
            other.to_str().unwrap(),
        ],
        "the test images are 10×10 grayscale, but the model was trained on 8×8 grayscale",
    );

    assert_fails_with(
        &[
            "train",
            "--out",
            run_arg,
            "--resume",
            "--data-dir",
            other.to_str().unwrap(),
        ],
        "cannot resume on 10×10 images: the run was trained on 8×8",
    );

    // A truncated image file.
    let images = other.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 7]).unwrap();
    assert_fails_with(
        &[
            "train",
            "--out",
            dir.path().join("r2").to_str().unwrap(),
            "--data-dir",
            other.to_str().unwrap(),
        ],
        "file truncated",
    );

    // A config.json edited by hand: an impossible value, or another model than the checkpoint's.
    let config_path = run.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("\"interval\": 2", "\"interval\": 0"),
    )
    .unwrap();
    assert_fails_with(&["eval", "--run", run_arg], "interval must be at least 1");
    std::fs::write(
        &config_path,
        config.replace("\"channels\": 4", "\"channels\": 5"),
    )
    .unwrap();
    assert_fails_with(&["eval", "--run", run_arg], "holds a model");
    std::fs::write(
        &config_path,
        config.replace("\"layers\": 2", "\"layers\": 1000000"),
    )
    .unwrap();
    assert_fails_with(
        &["sample", "--run", run_arg, "--out", "unused.png"],
        "parameters, more than the ceiling of 268435456",
    );
    std::fs::write(&config_path, &config).unwrap();

    // A damaged checkpoint.
    let checkpoint = run.join("checkpoint.bin");
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails_with(&["eval", "--run", run_arg], "truncated");
}

#[test]
fn class_conditional_train_sample_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let mut args = vec![
        "train",
        "--out",
        run.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--conditional",
        "class",
    ];
    args.extend_from_slice(TINY);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["conditioning"]["kind"], "class");
    assert_eq!(config["model"]["conditioning"]["classes"], 3);
    // The training grid: each of the 3 classes twice, one class per column.
    let grid = image::open(run.join("samples.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (3 * 34 + 2, 2 * 34 + 2));

    let run_arg = run.to_str().unwrap();
    let out = dir.path().join("classes.png");
    let out_arg = out.to_str().unwrap();
    let output = pixelcnn(&[
        "sample", "--run", run_arg, "--class", "all", "--n", "4", "--out", out_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let grid = image::open(&out).unwrap();
    // One row per class, 4 images each.
    assert_eq!((grid.width(), grid.height()), (4 * 34 + 2, 3 * 34 + 2));
    let output = pixelcnn(&[
        "sample", "--run", run_arg, "--class", "2", "--n", "2", "--out", out_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = pixelcnn(&["eval", "--run", run_arg, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));

    assert_fails_with(
        &["sample", "--run", run_arg, "--out", out_arg],
        "pass --class 0..2 or --class all",
    );
    assert_fails_with(
        &["sample", "--run", run_arg, "--class", "3", "--out", out_arg],
        "--class must be a class 0..2 or `all`, got `3`",
    );
    assert_fails_with(
        &[
            "train",
            "--out",
            run_arg,
            "--resume",
            "--conditional",
            "class",
            "--arch",
            "pixelcnn",
        ],
        "--arch Pixelcnn (the run has Gated)",
    );
    let plain = dir.path().join("plain");
    train_tiny(&data, &plain);
    assert_fails_with(
        &[
            "sample",
            "--run",
            plain.to_str().unwrap(),
            "--class",
            "1",
            "--out",
            out_arg,
        ],
        "--class needs a class-conditional model",
    );
    let masked = dir.path().join("masked");
    assert_fails_with(
        &[
            "train",
            "--out",
            masked.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--conditional",
            "class",
            "--arch",
            "pixelcnn",
        ],
        "conditioning needs the gated architecture (--arch)",
    );
}

#[test]
fn vector_conditional_train_sample_interpolate_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let vectors =
        |count: usize| -> Vec<f32> { (0..count * 3).map(|i| ((i * 7) % 5) as f32 / 5.0).collect() };
    let (train_h, test_h, wrong_h) = (
        dir.path().join("train.npy"),
        dir.path().join("test.npy"),
        dir.path().join("wrong.npy"),
    );
    std::fs::write(
        &train_h,
        npy("<f4", &[40, 3], false, &f32_bytes(&vectors(40))),
    )
    .unwrap();
    std::fs::write(
        &test_h,
        npy("<f4", &[10, 3], false, &f32_bytes(&vectors(10))),
    )
    .unwrap();
    std::fs::write(
        &wrong_h,
        npy("<f4", &[10, 2], false, &f32_bytes(&[0.0; 20])),
    )
    .unwrap();
    let mut args = vec![
        "train",
        "--out",
        run.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--condition-file",
        train_h.to_str().unwrap(),
    ];
    args.extend_from_slice(TINY);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["conditioning"]["kind"], "embedding");
    assert_eq!(config["model"]["conditioning"]["dim"], 3);

    let (run_arg, test_arg) = (run.to_str().unwrap(), test_h.to_str().unwrap());
    let out = dir.path().join("walk.png");
    let out_arg = out.to_str().unwrap();
    let output = pixelcnn(&[
        "sample",
        "--run",
        run_arg,
        "--condition-file",
        test_arg,
        "--interpolate",
        "0",
        "4",
        "--points",
        "3",
        "--n",
        "2",
        "--out",
        out_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // One row of 2 images per interpolation point.
    let grid = image::open(&out).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 * 34 + 2, 3 * 34 + 2));
    let output = pixelcnn(&[
        "sample",
        "--run",
        run_arg,
        "--condition-file",
        test_arg,
        "--index",
        "3",
        "--n",
        "2",
        "--out",
        out_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = pixelcnn(&[
        "eval",
        "--run",
        run_arg,
        "--condition-file",
        test_arg,
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    assert_fails_with(
        &["sample", "--run", run_arg, "--out", out_arg],
        "pass --condition-file",
    );
    assert_fails_with(
        &[
            "sample",
            "--run",
            run_arg,
            "--condition-file",
            test_arg,
            "--out",
            out_arg,
        ],
        "pass --index I or --interpolate I J",
    );
    assert_fails_with(
        &[
            "sample",
            "--run",
            run_arg,
            "--condition-file",
            test_arg,
            "--index",
            "10",
            "--out",
            out_arg,
        ],
        "there is no vector 10",
    );
    // --points counts the interpolation's grid rows; --steps is training's alone.
    let walk = |flag: &'static str, points: &'static str| {
        vec![
            "sample",
            "--run",
            run_arg,
            "--condition-file",
            test_arg,
            "--interpolate",
            "0",
            "4",
            flag,
            points,
            "--out",
            out_arg,
        ]
    };
    assert_fails_with(
        &walk("--points", "1"),
        "'--points <POINTS>': must be a whole number ≥ 2",
    );
    assert_fails_with(&walk("--steps", "3"), "unexpected argument '--steps'");
    assert_fails_with(
        &[
            "eval",
            "--run",
            run_arg,
            "--condition-file",
            wrong_h.to_str().unwrap(),
        ],
        "dimension 2, but the model was trained on dimension 3",
    );
    assert_fails_with(
        &["eval", "--run", run_arg],
        "it needs a condition file with one vector per image",
    );
    assert_fails_with(
        &[
            "train",
            "--out",
            dir.path().join("r2").to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--condition-file",
            test_arg,
        ],
        "40 images but 10 conditioning vectors",
    );
}

#[test]
fn spatial_condition_map_trains_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec![
        "train",
        "--out",
        run_arg,
        "--data-dir",
        data_arg,
        "--conditional",
        "class",
        "--condition-map",
        "deconv",
    ];
    args.extend_from_slice(TINY);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["spatial"]["height"], 8);
    let out = dir.path().join("s.png");
    let output = pixelcnn(&[
        "sample",
        "--run",
        run_arg,
        "--class",
        "all",
        "--n",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = pixelcnn(&["eval", "--run", run_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fails_with(
        &[
            "train",
            "--out",
            dir.path().join("r2").to_str().unwrap(),
            "--data-dir",
            data_arg,
            "--condition-map",
            "deconv",
        ],
        "a spatial condition map needs a conditioning",
    );
    assert_fails_with(
        &[
            "train",
            "--out",
            run_arg,
            "--resume",
            "--condition-map",
            "vector",
        ],
        "--condition-map vector (the run has deconv)",
    );
}

#[test]
fn a_new_runs_model_and_the_help_take_the_library_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let output = pixelcnn(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--steps",
        "1",
        "--batch-size",
        "8",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let defaults = PixelCnnConfig::new(4);
    assert_eq!(config["model"], serde_json::to_value(&defaults).unwrap());
    assert_eq!(config["recipe"], serde_json::to_value(NEW_RUN).unwrap());

    let help = String::from_utf8(pixelcnn(&["train", "--help"]).stdout).unwrap();
    for shown in [
        "[default: gated]".to_string(),
        format!("the first included [default: {}]", defaults.layers),
        format!(
            "Feature channels per layer [default: {}]",
            defaults.channels
        ),
        format!("no average [default: {}]", NEW_RUN.ema_decay.unwrap()),
        format!("no clipping [default: {}]", NEW_RUN.clip_grad_norm.unwrap()),
    ] {
        assert!(help.contains(&shown), "{shown}: {help}");
    }
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());
    let child = Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args([
            "train",
            "--out",
            run_arg,
            "--data-dir",
            data_arg,
            "--steps",
            "1000000",
        ])
        .args([
            "--interval",
            "20",
            "--layers",
            "2",
            "--channels",
            "4",
            "--batch-size",
            "8",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way: the first interval has been logged.
    let started = std::time::Instant::now();
    while !run.join("metrics.jsonl").is_file() {
        assert!(started.elapsed().as_secs() < 60, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        message.contains("checkpoint saved. Resume with: pixelcnn train --out"),
        "{message}"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["steps"], 1_000_000);

    // The interrupted run continues from its checkpoint (here to a smaller total: done at once).
    let resumed = pixelcnn(&["train", "--out", run_arg, "--resume", "--steps", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("the run already has"),
        "{}",
        stderr(&resumed)
    );
}

#[test]
fn autoencoders_train_reconstruct_and_interpolate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let data_arg = data.to_str().unwrap();
    for arch in ["autoencoder", "autoencoder-deconv", "autoencoder-mse"] {
        let run = dir.path().join(arch);
        let run_arg = run.to_str().unwrap();
        let mut args = vec![
            "train",
            "--out",
            run_arg,
            "--data-dir",
            data_arg,
            "--arch",
            arch,
            "--latent-dim",
            "4",
        ];
        args.extend_from_slice(TINY);
        let output = pixelcnn(&args);
        assert!(output.status.success(), "{arch}: {}", stderr(&output));
        let output = pixelcnn(&["eval", "--run", run_arg, "--json"]);
        assert!(output.status.success(), "{arch}: {}", stderr(&output));
        let score: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        // The MSE-trained baseline has an error and no likelihood; the others the reverse.
        let mse = arch == "autoencoder-mse";
        assert_eq!(score["mse"].is_f64(), mse, "{arch}: {score}");
        assert_eq!(score["bits_per_dim"].is_f64(), !mse, "{arch}: {score}");

        let reconstruct = |name: &str, seed: &str| {
            let path = dir.path().join(format!("{arch}-{name}"));
            let output = pixelcnn(&[
                "reconstruct",
                "--run",
                run_arg,
                "--n",
                "3",
                "--samples",
                "2",
                "--seed",
                seed,
                "--out",
                path.to_str().unwrap(),
            ]);
            assert!(output.status.success(), "{arch}: {}", stderr(&output));
            std::fs::read(path).unwrap()
        };
        let first = reconstruct("a.png", "1");
        let picture = image::load_from_memory(&first).unwrap();
        // 3 rows of [original | 2 decodings], 8×8 tiles scaled 4×.
        assert_eq!(
            (picture.width(), picture.height()),
            (3 * 34 + 2, 3 * 34 + 2)
        );
        assert_eq!(
            first,
            reconstruct("b.png", "1"),
            "{arch}: same seed, same picture"
        );

        let walk = dir.path().join(format!("{arch}-walk.png"));
        let output = pixelcnn(&[
            "interpolate",
            "--run",
            run_arg,
            "--a",
            "0",
            "--b",
            "5",
            "--points",
            "4",
            "--out",
            walk.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{arch}: {}", stderr(&output));
        let picture = image::open(&walk).unwrap();
        // [image a | 4 points | image b].
        assert_eq!((picture.width(), picture.height()), (6 * 34 + 2, 34 + 2));
        // Other formats by the name; an unknown one refused before anything is drawn.
        let walk = dir.path().join(format!("{arch}-walk.JPEG"));
        let mut args = vec!["interpolate", "--run", run_arg, "--a", "0", "--b", "5"];
        args.extend(["--out", walk.to_str().unwrap()]);
        let output = pixelcnn(&args);
        assert!(output.status.success(), "{arch}: {}", stderr(&output));
        assert_magic(&walk, JPEG);
        let tiff = dir.path().join("rec.tiff");
        let tiff_arg = tiff.to_str().unwrap();
        assert_fails_with(
            &["reconstruct", "--run", run_arg, "--out", tiff_arg],
            "rec.tiff: a picture's name must end in .png, .jpg, .jpeg, .gif or .bmp",
        );
        assert!(!tiff.exists());

        assert_fails_with(
            &["sample", "--run", run_arg, "--out", "x.png"],
            "use `pixelcnn reconstruct`",
        );
        assert_fails_with(
            &[
                "interpolate",
                "--run",
                run_arg,
                "--a",
                "0",
                "--b",
                "99",
                "--out",
                "x.png",
            ],
            "there is no test image 99",
        );
        assert_fails_with(
            &[
                "interpolate",
                "--run",
                run_arg,
                "--a",
                "0",
                "--b",
                "5",
                "--points",
                "1",
                "--out",
                "x.png",
            ],
            "'--points <POINTS>': must be a whole number ≥ 2",
        );
    }
    let plain = dir.path().join("plain");
    train_tiny(&data, &plain);
    assert_fails_with(
        &[
            "reconstruct",
            "--run",
            plain.to_str().unwrap(),
            "--out",
            "x.png",
        ],
        "is not an auto-encoder: train one",
    );
    let other = dir.path().join("other");
    let other_arg = other.to_str().unwrap();
    assert_fails_with(
        &[
            "train",
            "--out",
            other_arg,
            "--data-dir",
            data_arg,
            "--latent-dim",
            "4",
        ],
        "a code size (latent) needs an auto-encoder architecture",
    );
    assert_fails_with(
        &[
            "train",
            "--out",
            other_arg,
            "--data-dir",
            data_arg,
            "--arch",
            "autoencoder",
            "--latent-dim",
            "0",
        ],
        "'--latent-dim <LATENT_DIM>': must be a whole number ≥ 1",
    );
}

/// Whether a picture has any pixel whose channels differ: a colour picture.
fn has_colour(path: &Path) -> bool {
    image::open(path)
        .unwrap()
        .to_rgb8()
        .pixels()
        .any(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
}

#[test]
fn cifar10_trains_evaluates_and_samples_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("cifar"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("data_batch_1.bin"), cifar_records(20)).unwrap();
    std::fs::write(data.join("test_batch.bin"), cifar_records(4)).unwrap();
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec![
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        data_arg,
        "--out",
        run_arg,
        "--levels",
        "8",
    ];
    // Long enough to learn from the context: 300 steps of 6 channels, two per colour (~4 s).
    args.extend_from_slice(&[
        "--steps",
        "300",
        "--interval",
        "300",
        "--layers",
        "2",
        "--channels",
        "6",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
    ]);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // 16 samples in 4 columns of 32×32 tiles scaled 4×, with 2-pixel gaps: 4·130 + 2.
    let picture = image::open(run.join("samples.png")).unwrap();
    assert_eq!((picture.width(), picture.height()), (522, 522));

    let output = pixelcnn(&["eval", "--run", run_arg, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["images"], 4);
    let (nats, bits) = (
        json["nll_nats"].as_f64().unwrap(),
        json["bits_per_dim"].as_f64().unwrap(),
    );
    // Bits per sub-pixel: over 32·32·3 dimensions.
    assert!((bits - nats / (3072.0 * std::f64::consts::LN_2)).abs() < 1e-9);
    // Each colour plane is flat but for one pixel: the context predicts nearly every level.
    // Measured: 0.05 bits/dim (0.002–0.054 over seeds 0–3), where a model of the training
    // set's level frequencies scores 0.27 on these images.
    let source = DataSource::new(Dataset::Cifar10, Some(data.clone()), None).unwrap();
    let (training, _) = source.training(None).unwrap();
    let baseline = context_free_bits(&training, &source.test(None).unwrap(), 8);
    assert!(
        bits > 0.0 && bits < 0.5 * baseline,
        "{bits} bits/dim, not clearly below the context-free {baseline}"
    );

    let out = dir.path().join("colour.png");
    let output = pixelcnn(&[
        "sample",
        "--run",
        run_arg,
        "--n",
        "16",
        "--scale",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let picture = image::open(&out).unwrap();
    assert_eq!((picture.width(), picture.height()), (138, 138));
    // Training images 11 to 19 are coloured (their R, G and B levels differ); a model that has
    // learned them draws some of those among 16.
    assert!(has_colour(&out), "an RGB model draws colour pictures");

    let other = dir.path().join("other");
    assert_fails_with(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--out",
            other.to_str().unwrap(),
        ],
        "the cifar10 and folder data sets need a data folder",
    );
    assert_fails_with(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            data_arg,
            "--out",
            other.to_str().unwrap(),
            "--arch",
            "pixelcnn",
        ],
        "colour images need the gated architecture",
    );
    assert_fails_with(
        &["train", "--out", run_arg, "--resume", "--dataset", "mnist"],
        "cannot resume on other data",
    );
    assert_fails_with(
        &[
            "train",
            "--image-size",
            "8",
            "--out",
            other.to_str().unwrap(),
        ],
        "--image-size and --color apply to --dataset folder only",
    );
}

#[test]
fn image_folder_trains_in_grayscale_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    for (class, colour) in [("red", [220u8, 30, 30]), ("blue", [30, 30, 220])] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..6u8 {
            let picture = image::RgbImage::from_fn(10, 12, |x, y| {
                let bright = (x + y + u32::from(i)) % 4 == 0;
                image::Rgb(if bright { colour } else { [0, 0, 0] })
            });
            picture
                .save(data.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    for (colour, is_colour) in [("auto", true), ("gray", false)] {
        let run = dir.path().join(format!("run-{colour}"));
        let mut args = vec![
            "train",
            "--dataset",
            "folder",
            "--data-dir",
            data.to_str().unwrap(),
            "--image-size",
            "8",
            "--color",
            colour,
            "--out",
            run.to_str().unwrap(),
            "--conditional",
            "class",
        ];
        args.extend_from_slice(TINY);
        let output = pixelcnn(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["model"]["input_channels"],
            if is_colour { 3 } else { 1 }
        );
        assert_eq!(config["image_size"], 8);
        assert_eq!(config["model"]["conditioning"]["classes"], 2);
        let out = dir.path().join(format!("{colour}.png"));
        let output = pixelcnn(&[
            "sample",
            "--run",
            run.to_str().unwrap(),
            "--class",
            "1",
            "--n",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(has_colour(&out), is_colour);
        // The held-out images (every tenth: one of the 12) are the evaluation set.
        let output = pixelcnn(&["eval", "--run", run.to_str().unwrap(), "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["images"], 1);
    }
    assert_fails_with(
        &[
            "train",
            "--dataset",
            "folder",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        "a folder data set needs an image size",
    );
}

#[test]
fn the_mse_autoencoder_logs_resumes_and_is_scored_as_mse() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let run = dir.path().join("mse");
    let run_arg = run.to_str().unwrap();
    let train = |args: &[&str]| {
        let output = pixelcnn(&[&["train", "--out", run_arg], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stderr(&output)
    };
    let data_arg = data.to_str().unwrap();
    let arch = [
        "--data-dir",
        data_arg,
        "--arch",
        "autoencoder-mse",
        "--latent-dim",
        "4",
    ];
    let first = train(&[&arch[..], TINY].concat());
    assert!(
        first.contains("validation") && first.contains("mse"),
        "{first}"
    );
    assert!(!first.contains("bits"), "{first}");
    let resumed = train(&["--resume", "--steps", "6"]);
    assert!(resumed.contains("step 6: train"), "{resumed}");
    let losses = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let steps: Vec<&str> = losses
        .lines()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps, ["step", "1", "2", "3", "4", "5", "6"], "{losses}");
    assert!(losses.starts_with("step,train_mse\n"), "{losses}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    for line in metrics.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record["val_mse"].as_f64().unwrap() < 1.0, "{line}");
        assert!(!line.contains("bits") && !line.contains("nats"), "{line}");
    }
    let text = pixelcnn(&["eval", "--run", run_arg]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("10 test images: mean squared error"),
        "{text}"
    );
    assert_fails_with(
        &["eval", "--run", run_arg, "--heatmap", "x.png"],
        "an MSE-trained auto-encoder has no likelihood",
    );
    // Decoding is deterministic: the 3 decodings of each code are one picture repeated.
    let out = dir.path().join("reconstructions.png");
    let output = pixelcnn(&[
        "reconstruct",
        "--run",
        run_arg,
        "--n",
        "2",
        "--samples",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let picture = image::open(&out).unwrap().to_rgb8();
    use image::GenericImageView;
    let tile = |row: u32, column: u32| {
        picture
            .view(2 + column * 34, 2 + row * 34, 32, 32)
            .to_image()
    };
    for row in 0..2 {
        assert_eq!(tile(row, 1), tile(row, 2));
        assert_eq!(tile(row, 1), tile(row, 3));
    }
}

/// The first bytes of each picture format.
const PNG: &[u8] = &[0x89, b'P', b'N', b'G'];
const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF];
const GIF: &[u8] = b"GIF8";
const BMP: &[u8] = b"BM";

fn assert_magic(path: &Path, magic: &[u8]) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(magic),
        "{}: {:x?}",
        path.display(),
        &bytes[..8]
    );
}

#[test]
fn negative_numbers_are_values_whose_range_the_message_names() {
    // (command, flag, value, the allowed range): every numeric flag of every command.
    let cases: &[(&str, &str, &str, &str)] = &[
        ("train", "--steps", "-1", "whole number ≥ 1"),
        ("train", "--epochs", "-1", "whole number ≥ 1"),
        ("train", "--batch-size", "-5", "whole number ≥ 1"),
        ("train", "--interval", "-2", "whole number ≥ 1"),
        ("train", "--lr", "-0.1", "number > 0"),
        ("train", "--seed", "-1", "whole number ≥ 0"),
        ("train", "--levels", "-4", "whole number from 2 to 256"),
        ("train", "--layers", "-1", "whole number ≥ 1"),
        ("train", "--channels", "-8", "whole number ≥ 1"),
        ("train", "--latent-dim", "-1", "whole number ≥ 1"),
        (
            "train",
            "--image-size",
            "-28",
            "whole number from 1 to 1024",
        ),
        ("sample", "--n", "-3", "whole number ≥ 1"),
        ("sample", "--temperature", "-1", "number ≥ 0"),
        ("sample", "--seed", "-7", "whole number ≥ 0"),
        ("sample", "--scale", "-2", "whole number ≥ 1"),
        ("sample", "--nrow", "-4", "whole number ≥ 1"),
        ("sample", "--index", "-1", "whole number ≥ 0"),
        ("sample", "--points", "-5", "whole number ≥ 2"),
        ("complete", "--rows", "-1", "whole number ≥ 0"),
        ("complete", "--n", "-1", "whole number ≥ 1"),
        ("complete", "--samples", "-2", "whole number ≥ 1"),
        ("complete", "--temperature", "-0.5", "number ≥ 0"),
        ("reconstruct", "--n", "-1", "whole number ≥ 1"),
        ("reconstruct", "--samples", "-1", "whole number ≥ 1"),
        ("reconstruct", "--scale", "-1", "whole number ≥ 1"),
        ("interpolate", "--a", "-1", "whole number ≥ 0"),
        ("interpolate", "--b", "-2", "whole number ≥ 0"),
        ("interpolate", "--points", "-3", "whole number ≥ 2"),
        ("interpolate", "--samples", "-1", "whole number ≥ 1"),
    ];
    for &(command, flag, value, range) in cases {
        let mut args = vec![command, "--out", "o.png", flag, value];
        if command != "train" {
            args.extend(["--run", "r"]);
        }
        let output = pixelcnn(&args);
        let message = stderr(&output);
        assert!(
            !output.status.success(),
            "{command} {flag} {value} succeeded"
        );
        let expected = format!("invalid value '{value}' for '{flag} <");
        assert!(
            message.contains(&expected) && message.contains(&format!(">': must be a {range}")),
            "{command} {flag} {value}: {message}"
        );
    }
    // Both numbers of --interpolate I J, and a value beyond the type.
    assert_fails_with(
        &[
            "sample",
            "--run",
            "r",
            "--out",
            "o.png",
            "--interpolate",
            "0",
            "-2",
        ],
        "invalid value '-2' for '--interpolate <I> <J>': must be a whole number ≥ 0",
    );
    assert_fails_with(
        &[
            "sample",
            "--run",
            "r",
            "--out",
            "o.png",
            "--n",
            "99999999999999999999999",
        ],
        "must be a whole number ≥ 1, and this one is too large",
    );
}

/// A tiny trained run in `dir`/run, on 8×8 images.
fn tiny_run(dir: &Path) -> std::path::PathBuf {
    let (data, run) = (dir.join("data"), dir.join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    run
}

#[test]
fn pictures_take_the_format_their_name_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let run_arg = run.to_str().unwrap();
    for (name, magic) in [
        ("s.png", PNG),
        ("s.jpg", JPEG),
        ("s.JPG", JPEG),
        ("s.jpeg", JPEG),
        ("s.Gif", GIF),
        ("s.bmp", BMP),
    ] {
        let path = dir.path().join(name);
        let output = pixelcnn(&[
            "sample",
            "--run",
            run_arg,
            "--n",
            "3",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_magic(&path, magic);
        let picture = image::open(&path).unwrap();
        assert_eq!((picture.width(), picture.height()), (70, 70), "{name}");
    }
    let heatmap = dir.path().join("heat.bmp");
    let output = pixelcnn(&[
        "eval",
        "--run",
        run_arg,
        "--heatmap",
        heatmap.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_magic(&heatmap, BMP);
    let completion = dir.path().join("c.jpeg");
    let completion_arg = completion.to_str().unwrap();
    let output = pixelcnn(&[
        "complete",
        "--run",
        run_arg,
        "--rows",
        "3",
        "--out",
        completion_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_magic(&completion, JPEG);

    // Any other name is refused, before the model is loaded: the checkpoint is not even read.
    let unloadable = dir.path().join("unloadable");
    std::fs::create_dir(&unloadable).unwrap();
    std::fs::copy(run.join("config.json"), unloadable.join("config.json")).unwrap();
    std::fs::write(unloadable.join("checkpoint.bin"), b"not a checkpoint").unwrap();
    let unloadable_arg = unloadable.to_str().unwrap();
    let accepted = "a picture's name must end in .png, .jpg, .jpeg, .gif or .bmp (any case)";
    for name in ["x.tiff", "x.webp", "x", "x.png.txt"] {
        let path = dir.path().join(name);
        let path_arg = path.to_str().unwrap();
        let needle = format!("{path_arg}: {accepted}");
        for args in [
            vec!["sample", "--run", unloadable_arg, "--out", path_arg],
            vec!["eval", "--run", unloadable_arg, "--heatmap", path_arg],
            vec![
                "complete",
                "--run",
                unloadable_arg,
                "--rows",
                "3",
                "--out",
                path_arg,
            ],
        ] {
            assert_fails_with(&args, &needle);
        }
        assert!(!path.exists(), "{name} was written");
    }
}

#[test]
fn an_unwritable_path_or_unreadable_picture_reports_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let run_arg = run.to_str().unwrap();
    let missing = dir.path().join("missing").join("x.png");
    let missing_arg = missing.to_str().unwrap();
    for args in [
        vec!["sample", "--run", run_arg, "--n", "2", "--out", missing_arg],
        vec!["eval", "--run", run_arg, "--heatmap", missing_arg],
        vec![
            "complete",
            "--run",
            run_arg,
            "--rows",
            "3",
            "--n",
            "1",
            "--out",
            missing_arg,
        ],
    ] {
        let output = pixelcnn(&args);
        let message = stderr(&output);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(message.contains(missing_arg), "{args:?}: {message}");
        assert_eq!(
            message.matches("os error 2").count(),
            1,
            "{args:?}: {message}"
        );
    }
    // A damaged sample grid: image's decoding error is shown once, not again as its source.
    std::fs::write(run.join("samples_step0000002.png"), b"not a picture").unwrap();
    let output = pixelcnn(&["gif", "--run", run_arg]);
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(message.contains("samples_step0000002.png"), "{message}");
    assert_eq!(
        message.matches("Invalid PNG signature").count(),
        1,
        "{message}"
    );
}

#[test]
fn big_grids_are_refused_before_drawing_and_out_dir_writes_one_picture_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let run_arg = run.to_str().unwrap();
    // Refused with the run's model unreadable: before loading it, let alone drawing.
    let unloadable = dir.path().join("unloadable");
    std::fs::create_dir(&unloadable).unwrap();
    std::fs::copy(run.join("config.json"), unloadable.join("config.json")).unwrap();
    std::fs::write(unloadable.join("checkpoint.bin"), b"not a checkpoint").unwrap();
    let big = dir.path().join("big.png");
    let big_arg = big.to_str().unwrap();
    let unloadable_arg = unloadable.to_str().unwrap();
    assert_fails_with(
        &[
            "sample",
            "--run",
            unloadable_arg,
            "--n",
            "5000",
            "--out",
            big_arg,
        ],
        "a grid of 5000 images is too many for one picture (at most 1024): lower --n, --scale or --nrow, or write one PNG per image with --out-dir DIR",
    );
    // 2 columns of 8·1100 pixels and 2-pixel gaps; 600 columns of 8·4 pixels.
    let sample = |flags: &[&'static str]| {
        let mut args = vec!["sample", "--run", unloadable_arg, "--out", big_arg];
        args.extend_from_slice(flags);
        args
    };
    assert_fails_with(
        &sample(&["--n", "4", "--scale", "1100"]),
        "a grid of 17606×17606 pixels is too large for one picture (at most 16384 a side)",
    );
    assert_fails_with(
        &sample(&["--n", "600", "--nrow", "600"]),
        "a grid of 20402×36 pixels is too large",
    );
    assert!(!big.exists());

    // 70 images, more than one batch, both ways from the same seed: the files of --out-dir
    // are the tiles of the grid (9 columns of 8×8 tiles, 2-pixel gaps, at --scale 1).
    let grid_path = dir.path().join("grid.png");
    let folder = dir.path().join("folder");
    let common = [
        "sample", "--run", run_arg, "--n", "70", "--seed", "3", "--scale",
    ];
    let mut grid_args = common.to_vec();
    grid_args.extend(["1", "--out", grid_path.to_str().unwrap()]);
    let output = pixelcnn(&grid_args);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut folder_args = common.to_vec();
    folder_args.extend(["2", "--out-dir", folder.to_str().unwrap()]);
    let output = pixelcnn(&folder_args);
    assert!(output.status.success(), "{}", stderr(&output));
    let grid = image::open(&grid_path).unwrap().to_rgb8();
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..70).map(|i| format!("{i:04}.png")).collect();
    assert_eq!(names, expected);
    for (index, name) in names.iter().enumerate() {
        let path = folder.join(name);
        assert_magic(&path, PNG);
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (16, 16), "{name}: --scale 2");
        let (top, left) = (2 + (index as u32 / 9) * 10, 2 + (index as u32 % 9) * 10);
        for (x, y, pixel) in image.enumerate_pixels() {
            assert_eq!(
                pixel,
                grid.get_pixel(left + x / 2, top + y / 2),
                "{name} at {x},{y}"
            );
        }
    }
    assert_fails_with(
        &[
            "sample",
            "--run",
            run_arg,
            "--out",
            "a.png",
            "--out-dir",
            "d",
        ],
        "cannot be used with",
    );
    assert_fails_with(
        &["sample", "--run", run_arg],
        "<--out <OUT>|--out-dir <OUT_DIR>>",
    );
}

#[test]
fn serve_answers_on_its_address_and_refuses_what_it_cannot_serve() {
    use std::io::{Read, Write};

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    assert_fails_with(
        &["serve", "--pretrained", "mnist-class", "--addr", &taken],
        "cannot listen on",
    );
    assert_fails_with(
        &["serve", "--pretrained", "nope"],
        "no pretrained model is called",
    );
    assert_fails_with(
        &[
            "serve",
            "--pretrained",
            "mnist-class",
            "--addr",
            "localhost",
        ],
        "invalid value 'localhost'",
    );
    assert_fails_with(
        &["serve", "--pretrained", "mnist-class", "--max-draws", "0"],
        "'--max-draws <MAX_DRAWS>'",
    );
    // 64 draws of 1,024 images of the 20 × 64 model: 64 · 1,024 · 2.3 MB, 140 GiB.
    assert_fails_with(
        &[
            "serve",
            "--pretrained",
            "mnist-binarized",
            "--max-images",
            "1024",
            "--max-draws",
            "64",
        ],
        "--max-images 1024 with --max-draws 64 could hold 143374 MB at once",
    );

    let (mut server, address) = start_server(&[]);
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /api/model HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"nll_nats\":104.5327"), "{answer}");

    // Ctrl-C stops it at once, though a client holds a connection with half a request.
    let mut silent = std::net::TcpStream::connect(&address).unwrap();
    write!(silent, "GET /api/mo").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let interrupted = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let started = std::time::Instant::now();
    while server.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(5) {
            server.kill().unwrap();
            panic!("serve still ran 5 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Started as one of several processes by mpirun, a build without the `mpi` feature refuses to
/// train rather than have each process train alone into the same folder.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_to_be_one_of_several_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args(["train", "--out", out.to_str().unwrap(), "--steps", "1"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(
        message.contains("built without the `mpi` feature"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written");
}

/// `train` with `args` on synthetic data into `run`, in a pool of `threads` threads.
fn train_in_threads(data: &Path, run: &Path, threads: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args(["train", "--out", run.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--layers", "2", "--channels", "4", "--batch-size", "16"])
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap()
}

/// The run's `config.json`.
fn stored_config(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap()
}

#[test]
fn shards_default_to_the_threads_are_kept_on_resume_and_must_divide_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let run = |name: &str| dir.path().join(name);

    // A pool of two threads trains a batch of 16 in two shards of 8; one thread in one.
    let output = train_in_threads(&data, &run("two"), "2", &["--steps", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("data-parallel: 2 threads, 8 images each per step"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stored_config(&run("two"))["shards"], 2);
    let output = train_in_threads(&data, &run("one"), "1", &["--steps", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("data-parallel"));
    assert_eq!(stored_config(&run("one"))["shards"], 1);

    // Resuming keeps the run's shards, whatever the threads; --shards changes them.
    let resume = ["--steps", "4", "--resume"];
    let output = train_in_threads(&data, &run("two"), "1", &resume);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stored_config(&run("two"))["shards"], 2);
    let output = train_in_threads(
        &data,
        &run("one"),
        "2",
        &["--shards", "4", "--steps", "6", "--resume"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("data-parallel: 4 threads, 4 images each per step"));
    assert_eq!(stored_config(&run("one"))["shards"], 4);

    for (shards, needle) in [
        ("3", "a batch of 16 images cannot be split into 3 shards"),
        ("0", "--shards"),
        ("65", "--shards"),
    ] {
        let output = train_in_threads(&data, &run("bad"), "2", &["--shards", shards]);
        let message = stderr(&output);
        assert!(!output.status.success(), "--shards {shards} succeeded");
        assert!(message.contains(needle), "--shards {shards}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn precision_is_kept_in_the_run_and_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let run = dir.path().join("run");
    let bf16 = ["--precision", "bf16", "--steps", "2"];
    let output = train_in_threads(&data, &run, "2", &bf16);
    if !pixelcnn::precision::bf16_available() {
        assert!(!output.status.success());
        assert!(stderr(&output).contains("needs a processor with AVX-512 BF16"));
        return;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("precision: bf16 operands"));
    assert_eq!(stored_config(&run)["precision"], "bf16");
    let output = train_in_threads(&data, &run, "2", &["--steps", "4", "--resume"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stored_config(&run)["precision"], "bf16");
    let f32 = ["--precision", "f32", "--steps", "6", "--resume"];
    let output = train_in_threads(&data, &run, "2", &f32);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("precision:"));
    assert_eq!(stored_config(&run)["precision"], "f32");
    // A new run is f32 unless asked; other precisions are refused.
    let output = train_in_threads(&data, &dir.path().join("new"), "2", &["--steps", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stored_config(&dir.path().join("new"))["precision"], "f32");
    let output = train_in_threads(&data, &dir.path().join("bad"), "2", &["--precision", "f16"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--precision"),
        "{}",
        stderr(&output)
    );
}

/// The validation bits/dim of a run's last interval.
fn last_validation(run: &Path) -> f64 {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    last["val_bits_per_dim"].as_f64().unwrap()
}

#[test]
fn a_run_grown_from_another_starts_at_its_likelihood_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let run = |name: &str| dir.path().join(name);
    let train = |name: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
            .args(["train", "--out", run(name).to_str().unwrap()])
            .args(["--data-dir", data.to_str().unwrap(), "--batch-size", "16"])
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let source = [
        "--binarize",
        "--layers",
        "2",
        "--channels",
        "4",
        "--steps",
        "30",
    ];
    let output = train("source", &[&source[..], &["--interval", "30"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let trained = last_validation(&run("source"));

    // Two more layers, and a rate too small to move the weights in its one step: the grown run
    // validates as its source does, where a fresh 4-layer model is far off.
    let source_dir = run("source");
    let init = ["--init-from", source_dir.to_str().unwrap()];
    let still = [
        "--layers",
        "4",
        "--steps",
        "1",
        "--interval",
        "1",
        "--lr",
        "1e-12",
    ];
    for (name, start) in [("grown", &init[..]), ("fresh", &["--binarize"][..])] {
        let output = train(name, &[start, &still[..]].concat());
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let (grown, fresh) = (
        last_validation(&run("grown")),
        last_validation(&run("fresh")),
    );
    assert!((grown - trained).abs() < 1e-5, "{grown} vs {trained}");
    assert!((fresh - trained).abs() > 0.03, "{fresh} vs {trained}");

    // The model's other flags and the binarisation come from the source; its step is recorded.
    let config = stored_config(&run("grown"));
    assert_eq!(config["model"]["layers"], 4);
    assert_eq!(config["model"]["channels"], 4);
    assert_eq!(config["binarization"], "dynamic");
    assert_eq!(config["init_from"]["step"], 30);
    let output = train("grown", &["--steps", "2", "--resume"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stored_config(&run("grown"))["init_from"]["step"], 30);

    let missing = run("missing");
    for (flags, needle) in [
        (&["--channels", "8"][..], "channels 8 (the source has 4)"),
        (
            &["--layers", "1"][..],
            "the source has 2 layers, more than the 1",
        ),
        (&["--arch", "pixelcnn"][..], "only a Gated PixelCNN"),
        (&["--resume"][..], "cannot be used with"),
        (
            &["--init-from", missing.to_str().unwrap()][..],
            "no checkpoint to start from",
        ),
    ] {
        let start = if flags[0] == "--init-from" {
            &[][..]
        } else {
            &init[..]
        };
        let output = train("bad", &[start, flags].concat());
        let message = stderr(&output);
        assert!(!output.status.success(), "{flags:?} succeeded");
        assert!(message.contains(needle), "{flags:?}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
    assert!(
        !run("bad").join("config.json").exists(),
        "nothing is written"
    );
}

#[test]
fn fashion_mnist_runs_keep_their_dataset_and_name_their_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec![
        "train",
        "--out",
        run_arg,
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data_arg,
        "--conditional",
        "class",
        "--head-channels",
        "5",
    ];
    args.extend_from_slice(TINY);
    let output = pixelcnn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = stored_config(&run);
    assert_eq!(config["dataset"], "fashion-mnist");
    assert_eq!(config["model"]["head_channels"], 5);

    let out = dir.path().join("trousers.png");
    let out_arg = out.to_str().unwrap();
    for class in ["trouser", "Pullover", "0"] {
        let output = pixelcnn(&[
            "sample", "--run", run_arg, "--class", class, "--n", "2", "--out", out_arg,
        ]);
        assert!(output.status.success(), "{class}: {}", stderr(&output));
    }
    // The synthetic set has 3 classes: the names of the first three are offered.
    assert_fails_with(
        &[
            "sample", "--run", run_arg, "--class", "dress", "--out", out_arg,
        ],
        "--class must be a class 0..2 (t-shirt, trouser, pullover) or `all`, got `dress`",
    );
    assert_fails_with(
        &["train", "--out", run_arg, "--resume", "--dataset", "mnist"],
        "the run was trained on --dataset fashion-mnist",
    );
    assert_fails_with(
        &[
            "train",
            "--out",
            run_arg,
            "--resume",
            "--head-channels",
            "6",
        ],
        "--head-channels 6 (the run has 5)",
    );
}

#[test]
fn eval_writes_each_images_likelihood_and_histogram_compares_sets() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    let csv = dir.path().join("own.csv");
    let output = pixelcnn(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--json",
        "--per-image",
        csv.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("image,label,nats,bits_per_dim"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 10);
    assert_eq!((rows[4][0], rows[4][1]), ("4", "1")); // synthetic labels are i mod 3
    let bits: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    let mean = bits.iter().sum::<f64>() / 10.0;
    assert!((mean - summary["bits_per_dim"].as_f64().unwrap()).abs() < 1e-9);
    let nats: f64 = rows[0][2].parse().unwrap();
    assert!((nats / (64.0 * std::f64::consts::LN_2) - bits[0]).abs() < 1e-9);

    // Two hand-made sets: 3 beats 1 and 2, 2 beats 1 and ties 2: AUROC (2 + 1.5) / 4.
    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("image,label,nats,bits_per_dim\n{body}")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let first = write("a.csv", "0,,1,1.0\n1,,2,2.0\n");
    let second = write("b.csv", "0,,3,3.0\n1,,2,2.0\n");
    let picture = dir.path().join("h.png");
    let picture_arg = picture.to_str().unwrap();
    let output = pixelcnn(&[
        "histogram",
        &first,
        &second,
        "--label",
        "own",
        "--out",
        picture_arg,
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sets: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sets[0]["label"], "own");
    assert_eq!(sets[1]["label"], "b.csv");
    assert_eq!(sets[0]["auroc_against_first"], serde_json::Value::Null);
    assert_eq!(sets[1]["auroc_against_first"], 0.875);
    assert_eq!(sets[1]["mean_bits_per_dim"], 2.5);
    assert_eq!(image::open(&picture).unwrap().width(), 800);
    let output = pixelcnn(&["histogram", &first, &second, "--out", picture_arg]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("AUROC against a.csv 0.8750"));

    let bad_header = dir.path().join("c.csv");
    std::fs::write(&bad_header, "image,bits\n0,1.0\n").unwrap();
    let bad_header = bad_header.to_str().unwrap().to_string();
    let short_line = write("f.csv", "0,1.0\n");
    let not_finite = write("d.csv", "0,,1,NaN\n");
    let empty = write("e.csv", "");
    let folder = dir.path().to_str().unwrap();
    for (file, needle) in [
        (bad_header.as_str(), "not a file of per-image likelihoods"),
        (
            not_finite.as_str(),
            "line 2: expected image,label,nats,bits_per_dim",
        ),
        (
            short_line.as_str(),
            "line 2: expected image,label,nats,bits_per_dim",
        ),
        (empty.as_str(), "no images"),
        (folder, "not a regular file"),
        ("/nonexistent.csv", "/nonexistent.csv: No such file"),
    ] {
        assert_fails_with(&["histogram", file, "--out", picture_arg], needle);
    }
    assert_fails_with(
        &[
            "histogram",
            &first,
            "--label",
            "x",
            "--label",
            "y",
            "--out",
            picture_arg,
        ],
        "2 --label for 1 files",
    );
}

#[test]
fn an_out_that_is_a_folder_is_refused_before_any_work_and_nothing_is_left_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 10);
    train_tiny(&data, &run);
    let run_arg = run.to_str().unwrap();
    let folder = dir.path().join("taken.png");
    std::fs::create_dir(&folder).unwrap();
    let taken = folder.to_str().unwrap();
    for args in [
        &["sample", "--run", run_arg, "--out", taken][..],
        &["complete", "--run", run_arg, "--rows", "3", "--out", taken],
        &["export", "--run", run_arg, "--out", taken],
        &["eval", "--run", run_arg, "--heatmap", taken],
        &["eval", "--run", run_arg, "--per-image", taken],
    ] {
        assert_fails_with(
            args,
            "taken.png: is a folder, where a file is to be written",
        );
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0, "{args:?}");
    }
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("tmp"))
        .collect();
    assert!(siblings.is_empty(), "temporary files left: {siblings:?}");
}

/// `pixelcnn serve --pretrained mnist-class` with `args` on a free port of 127.0.0.1, once it
/// says it serves, and its address.
fn start_server(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_pixelcnn"))
        .args([
            "serve",
            "--pretrained",
            "mnist-class",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let serving = lines.next().unwrap().unwrap();
    let address = serving
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {serving:?}"))
        .to_string();
    (server, address)
}

/// `VmRSS` and `VmHWM` (the peak) of process `pid`, in bytes.
fn resident_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn serve_gives_the_memory_of_a_draw_back() {
    use std::io::{Read, Write};

    let (mut server, address) = start_server(&["--max-images", "1024"]);
    let (before, _) = resident_memory(server.id());
    let body = r#"{"n": 1024, "seed": 1, "class": "all"}"#;
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /api/generate HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("event: done"), "{:.300}", answer);
    // The draw has ended once its last row is sent; its thread frees what it held soon after
    // (within the deadline even while other tests load the machine).
    const MB: u64 = 1 << 20;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (after, peak) = loop {
        let (after, peak) = resident_memory(server.id());
        if after < before + 64 * MB || std::time::Instant::now() > deadline {
            break (after, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        peak > before + 200 * MB,
        "the draw held {} MB",
        (peak - before) / MB
    );
    assert!(
        after < before + 64 * MB,
        "{} MB before, {} MB 10 s after",
        before / MB,
        after / MB
    );
}
