//! Failure safety of `pixelcnn train`. Killed with SIGKILL at several points — between
//! checkpoints and in the middle of writing one — it never leaves a corrupt checkpoint behind,
//! loses at most one checkpoint interval, and after `--resume` records exactly the per-step
//! losses of a run that was never interrupted. A diverging loss, a full disk and a read-only
//! one each stop it with one clear message and a non-zero exit, keeping the last checkpoint.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use common::synthetic_data;
use pixelcnn::run_dir::RunDir;
use pixelcnn::run_log::read_losses;

const STEPS: usize = 16;
const INTERVAL: usize = 2;

fn train_command(data: &Path, run: &Path, steps: usize, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pixelcnn"));
    command
        .args(["train", "--data-dir", data.to_str().unwrap()])
        .args(["--out", run.to_str().unwrap()])
        .args([
            "--steps",
            &steps.to_string(),
            "--interval",
            &INTERVAL.to_string(),
        ])
        .args(["--layers", "2", "--channels", "4", "--batch-size", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        command.arg("--resume");
    }
    command
}

fn start(data: &Path, run: &Path, resume: bool) -> Child {
    train_command(data, run, STEPS, resume)
        .spawn()
        .expect("the binary starts")
}

/// Runs `train --resume` up to `steps` with `extra` flags; its exit status and standard error.
fn resume_with(data: &Path, run: &Path, steps: usize, extra: &[&str]) -> (bool, String) {
    let output = train_command(data, run, steps, true)
        .args(extra)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!message.contains("panicked"), "{message}");
    (output.status.success(), message)
}

fn checkpoint_step(run: &RunDir) -> usize {
    run.load_checkpoint(&Device::flex())
        .expect("the last checkpoint is intact")
        .step
}

/// Steps logged so far (0 before the log exists or while it has only its header).
fn logged_steps(run: &RunDir) -> usize {
    read_losses(run).map_or(0, |losses| losses.last().map_or(0, |&(step, _)| step))
}

/// Kills `child` with SIGKILL as soon as `now` says so; `false` if it finished first.
fn kill_when(child: &mut Child, mut now: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if now() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
    }
    panic!("the training run neither finished nor reached the kill point in 2 minutes");
}

/// What a kill left behind must be a loadable checkpoint at most one interval old.
fn assert_recoverable(run: &RunDir) {
    let checkpoint = run
        .load_checkpoint(&Device::flex())
        .expect("the checkpoint survives a SIGKILL intact");
    let logged = logged_steps(run);
    assert!(
        logged <= checkpoint.step + INTERVAL,
        "step {logged} was logged but the checkpoint holds step {}: more than one interval lost",
        checkpoint.step
    );
}

/// A synthetic IDX data set of 8×8 images in `dir/data`.
/// The temporary files of checkpoint writes in `run`: `checkpoint.bin.*.tmp`.
fn temporary_checkpoints(run: &Path) -> usize {
    std::fs::read_dir(run).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("checkpoint.bin.") && name.ends_with(".tmp"))
            .count()
    })
}

fn small_data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data(&data, 8, 40, 8);
    data
}

#[test]
fn sigkill_at_any_point_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path());

    let reference = RunDir::new(dir.path().join("reference"));
    assert!(
        start(&data, reference.root(), false)
            .wait()
            .unwrap()
            .success()
    );
    let expected = read_losses(&reference).unwrap();
    assert_eq!(expected.len(), STEPS);

    let run = RunDir::new(dir.path().join("killed"));
    let temp = || temporary_checkpoints(run.root()) > 0;
    // 1. Between checkpoints: once step 5 is logged (the checkpoint holds step 4 at best).
    let mut child = start(&data, run.root(), false);
    assert!(kill_when(&mut child, || logged_steps(&run) >= 5));
    assert_recoverable(&run);
    // 2. In the middle of writing a checkpoint: while its temporary file exists. The file can
    // be renamed between the look and the kill, so try at each checkpoint until one is hit.
    let mut hit_a_write = false;
    while !hit_a_write {
        let mut child = start(&data, run.root(), true);
        if !kill_when(&mut child, temp) {
            break;
        }
        assert_recoverable(&run);
        hit_a_write = temp();
    }
    assert!(hit_a_write, "no kill landed during a checkpoint write");
    // 3. Once more between checkpoints, then run to the end.
    let mut child = start(&data, run.root(), true);
    if kill_when(&mut child, || logged_steps(&run) >= STEPS - 3) {
        assert_recoverable(&run);
        assert!(start(&data, run.root(), true).wait().unwrap().success());
    }
    assert!(!temp(), "the resumed run removed the torn temporary file");
    assert_eq!(
        read_losses(&run).unwrap(),
        expected,
        "per-step losses after three SIGKILLs and resumes equal the uninterrupted run's"
    );
}

/// A fresh run of two steps (interval 2: one checkpoint), after checking that there was
/// nothing to resume.
fn train_two_steps(data: &Path, run: &RunDir) {
    let (ok, message) = resume_with(data, run.root(), 2, &[]);
    assert!(!ok && message.contains("holds no checkpoint"), "{message}");
    assert!(
        train_command(data, run.root(), 2, false)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(checkpoint_step(run), 2);
}

#[test]
fn a_diverging_loss_stops_training_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path());
    let run = RunDir::new(dir.path().join("run"));
    train_two_steps(&data, &run);
    // A learning rate of 1e30 sends the weights to ~1e30 in Adam step 3, so the loss of step 4
    // overflows to NaN.
    let (ok, message) = resume_with(&data, run.root(), 4, &["--lr", "1e30"]);
    assert!(!ok, "training on a NaN loss must fail");
    assert!(
        message.contains("training diverged at step 4: the loss is NaN")
            && message.contains("the last checkpoint is kept"),
        "{message}"
    );
    assert_eq!(checkpoint_step(&run), 2);
}

/// A tmpfs of `size` mounted at `path`, unmounted on drop.
struct SmallDisk<'a> {
    path: &'a Path,
}

impl<'a> SmallDisk<'a> {
    fn mount(path: &'a Path, size: &str) -> Result<Self, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(Self { path })
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path).status();
    }
}

/// A 1 MiB file system at `path`, or `None` (with a note) where this machine cannot mount one
/// and none is required. A file system of its own needs mount rights (root in a container);
/// `.ci/run` sets `PIXELCNN_REQUIRE_MOUNT=1`, so that in CI a failed mount fails the test
/// instead of skipping it.
fn small_disk(path: &Path) -> Option<SmallDisk<'_>> {
    match SmallDisk::mount(path, "1m") {
        Ok(disk) => Some(disk),
        Err(why) if std::env::var_os("PIXELCNN_REQUIRE_MOUNT").is_none() => {
            eprintln!("skipped: cannot mount a small tmpfs here: {why}");
            None
        }
        Err(why) => panic!("PIXELCNN_REQUIRE_MOUNT is set, but mounting a tmpfs failed: {why}"),
    }
}

#[test]
fn a_full_or_read_only_disk_gives_a_clear_error_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mount_point) = (small_data(dir.path()), dir.path().join("disk"));
    std::fs::create_dir_all(&mount_point).unwrap();
    let Some(disk) = small_disk(&mount_point) else {
        return;
    };
    let run = RunDir::new(mount_point.join("run"));
    train_two_steps(&data, &run);
    let before = std::fs::read(run.checkpoint_path()).unwrap();

    // Full: fill every remaining byte, then ask for more steps.
    let filler = mount_point.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 4096];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    let (ok, message) = resume_with(&data, run.root(), 4, &[]);
    assert!(!ok, "a full disk must fail the run");
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(
        message
            .trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1
    );
    assert_eq!(std::fs::read(run.checkpoint_path()).unwrap(), before);
    assert_eq!(temporary_checkpoints(run.root()), 0);

    // Read-only: the same, with the file system's own words.
    std::fs::remove_file(&filler).unwrap();
    disk.remount_read_only();
    let (ok, message) = resume_with(&data, run.root(), 4, &[]);
    assert!(!ok, "a read-only disk must fail the run");
    assert!(message.contains("Read-only file system"), "{message}");
    assert_eq!(std::fs::read(run.checkpoint_path()).unwrap(), before);
    assert_eq!(checkpoint_step(&run), 2);
}
