//! Data-parallel training on MPI (`--features mpi`; Open MPI's `mpirun` on the PATH): two ranks
//! with batch B train as one process with batch B — per-step losses within a relative 1e-5 and
//! final weights within 1e-5 — for an unconditional and a class-conditional model; a rank killed
//! with SIGKILL ends the job with an error within seconds, the checkpoint on disk loads, and
//! `--resume` continues to the losses of an uninterrupted run; Ctrl-C on `mpirun` saves a
//! checkpoint; resuming a data-parallel run is exact; a batch the ranks cannot share, and
//! shards inside the ranks, are refused.

#[path = "cli/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::*;
use common::pixelcnn;
use pixelcnn::export::to_safetensors;
use pixelcnn::run_dir::RunDir;
use safetensors::SafeTensors;

/// The arguments of `mpirun` for `ranks` local processes of the test binary.
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &ranks.to_string(),
        ])
        .args(["-x", "OMP_NUM_THREADS=1", env!("CARGO_BIN_EXE_pixelcnn")])
        .args(args);
    command
}

fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("losses.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

fn assert_same_losses(one: &[f64], two: &[f64]) {
    assert_eq!(one.len(), two.len());
    for (step, (a, b)) in one.iter().zip(two).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs(),
            "step {}: {a} vs {b}",
            step + 1
        );
    }
}

/// The largest difference between the weights of two runs' checkpoints.
fn weight_difference(one: &Path, two: &Path) -> f32 {
    let device = Device::flex();
    let export = |run: &Path| {
        let dir = RunDir::new(run);
        let config = dir.read_config().unwrap();
        let checkpoint = dir.load_checkpoint(&device).unwrap();
        to_safetensors(&checkpoint.model, &config).unwrap()
    };
    let (a, b) = (export(one), export(two));
    let (a, b) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut largest = 0.0f32;
    for (name, tensor) in a.tensors() {
        let other = b.tensor(&name).unwrap();
        let floats = |bytes: &[u8]| -> Vec<f32> {
            bytes
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        for (x, y) in floats(tensor.data()).iter().zip(floats(other.data())) {
            largest = largest.max((x - y).abs());
        }
    }
    largest
}

const SMALL: &[&str] = &[
    "--layers",
    "3",
    "--channels",
    "8",
    "--batch-size",
    "8",
    "--interval",
    "10",
];

#[test]
fn two_ranks_train_as_one_process_with_the_whole_batch() {
    for conditioning in [&[][..], &["--conditional", "class"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        let (one_arg, two_arg) = (one.to_str().unwrap(), two.to_str().unwrap());
        let steps = ["--steps", "20"];
        let args = |out| [&["train", "--out", out][..], SMALL, &steps, conditioning].concat();
        succeeded(pixelcnn(&args(one_arg)));
        let message = succeeded(mpirun(2, &args(two_arg)).output().unwrap());
        assert!(
            message.contains("data-parallel: 2 processes, 4 images each"),
            "{message}"
        );
        assert_same_losses(&losses(&one), &losses(&two));
        let difference = weight_difference(&one, &two);
        assert!(
            difference < 1e-5,
            "{conditioning:?}: weights differ by {difference}"
        );
        // Rank 0 alone wrote the folder: one line per step, one metrics line per interval.
        assert_eq!(losses(&two).len(), 20);
        let metrics = std::fs::read_to_string(two.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 2);
    }
}

#[test]
fn resuming_a_data_parallel_run_is_exact_and_an_uneven_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    let (straight_arg, resumed_arg) = (straight.to_str().unwrap(), resumed.to_str().unwrap());
    let train = |out, steps| [&["train", "--out", out, "--steps", steps][..], SMALL].concat();
    succeeded(mpirun(2, &train(straight_arg, "20")).output().unwrap());
    succeeded(mpirun(2, &train(resumed_arg, "10")).output().unwrap());
    let resume = [&train(resumed_arg, "20")[..], &["--resume"]].concat();
    succeeded(mpirun(2, &resume).output().unwrap());
    assert_eq!(losses(&straight), losses(&resumed));
    assert_eq!(weight_difference(&straight, &resumed), 0.0);

    let uneven = dir.path().join("uneven");
    let args = [
        "train",
        "--out",
        uneven.to_str().unwrap(),
        "--batch-size",
        "7",
    ];
    let output = mpirun(2, &args).output().unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        message.contains("a batch of 7 images cannot be split evenly across 2"),
        "{message}"
    );

    // Shards are threads of one process; under mpirun each process is a rank already.
    let args = ["train", "--out", uneven.to_str().unwrap(), "--shards", "2"];
    let output = mpirun(2, &args).output().unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        message.contains("under mpirun each process is already a rank"),
        "{message}"
    );
}

/// Waits (at most 2 minutes) until the run in `run` has logged its first interval.
fn wait_for_first_interval(run: &Path) {
    let started = Instant::now();
    while !run.join("metrics.jsonl").is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent's pid is the second field after the command's closing parenthesis.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(&parent.to_string())
        })
        .collect()
}

#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes_to_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let (killed, straight) = (dir.path().join("killed"), dir.path().join("straight"));
    let killed_arg = killed.to_str().unwrap();
    let long = [
        &["train", "--out", killed_arg, "--steps", "1000000"][..],
        SMALL,
    ]
    .concat();
    let mut job = mpirun(2, &long).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_first_interval(&killed);
    let ranks = children(job.id());
    assert_eq!(ranks.len(), 2, "mpirun's children: {ranks:?}");
    let kill = Command::new("kill")
        .args(["-KILL", &ranks[1].to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let killed_at = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the job hung after a rank died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let checkpoint = RunDir::new(&killed)
        .load_checkpoint(&Device::flex())
        .unwrap();
    assert!(
        checkpoint.step >= 10 && checkpoint.step.is_multiple_of(10),
        "{}",
        checkpoint.step
    );

    // Resumed to 40 steps, it matches a run that was never interrupted.
    let resume = [
        &["train", "--out", killed_arg, "--resume", "--steps", "40"][..],
        SMALL,
    ]
    .concat();
    succeeded(mpirun(2, &resume).output().unwrap());
    let straight_arg = straight.to_str().unwrap();
    let whole = [
        &["train", "--out", straight_arg, "--steps", "40"][..],
        SMALL,
    ]
    .concat();
    succeeded(mpirun(2, &whole).output().unwrap());
    assert_eq!(losses(&killed), losses(&straight));
}

#[test]
fn ctrl_c_on_mpirun_saves_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let long = [
        &[
            "train",
            "--out",
            run.to_str().unwrap(),
            "--steps",
            "1000000",
        ][..],
        SMALL,
    ]
    .concat();
    let job = mpirun(2, &long).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_first_interval(&run);
    let kill = Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = job.wait_with_output().unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    let saved = message
        .split("interrupted at step ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no checkpoint message: {message}"));
    let checkpoint = RunDir::new(&run).load_checkpoint(&Device::flex()).unwrap();
    assert_eq!(checkpoint.step.to_string(), saved);
}

/// The same on `wgpu` (CI: Mesa's software Vulkan driver, which both ranks share).
#[cfg(feature = "wgpu")]
#[test]
fn two_wgpu_ranks_train_as_one_wgpu_process() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let tiny = [
        "--layers",
        "2",
        "--channels",
        "4",
        "--batch-size",
        "4",
        "--steps",
        "6",
    ];
    let args = |out: &Path| {
        let out = out.to_str().unwrap().to_string();
        let mut args = vec![
            "--device".to_string(),
            "wgpu".into(),
            "train".into(),
            "--out".into(),
            out,
        ];
        args.extend(tiny.iter().map(|a| a.to_string()));
        args
    };
    let strings = args(&one);
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    succeeded(pixelcnn(&refs));
    let strings = args(&two);
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    succeeded(mpirun(2, &refs).output().unwrap());
    assert_same_losses(&losses(&one), &losses(&two));
}
