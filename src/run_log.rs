//! The append-only logs of a training run — `metrics.jsonl` (one line per interval) and
//! `losses.csv` (the training loss of every step) — and their rollback to a checkpoint: a run
//! killed after logging a step but before checkpointing it redoes that step on resume, so lines
//! past the checkpoint are dropped first and every step appears exactly once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::checkpoint::{RunDir, write_atomically};
use serde::{Deserialize, Serialize};

const LOSSES_HEADER: &str = "step,train_nats_per_dim";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    /// Mean training loss since the previous line, in nats per dimension.
    pub train_nats_per_dim: f64,
    pub train_bits_per_dim: f64,
    pub val_bits_per_dim: f64,
}

/// Appends one line to `metrics.jsonl`.
pub fn append_metrics(run: &RunDir, metrics: &Metrics) -> anyhow::Result<()> {
    let line = serde_json::to_string(metrics).expect("metrics serialise");
    append_line(
        &mut open_append(&run.metrics_path())?,
        &run.metrics_path(),
        &line,
    )
}

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

/// `losses.csv`, open for appending one line per step.
pub struct LossLog {
    file: File,
    path: std::path::PathBuf,
}

impl LossLog {
    /// Opens (or starts, with its header) the run's loss log.
    pub fn open(run: &RunDir) -> anyhow::Result<Self> {
        let path = run.losses_path();
        let fresh = !path.exists();
        let mut file = open_append(&path)?;
        if fresh {
            append_line(&mut file, &path, LOSSES_HEADER)?;
        }
        Ok(Self { file, path })
    }

    /// Records the training loss of `step` (counted from 1), in nats per dimension, with every
    /// digit needed to read back the same `f64`.
    pub fn record(&mut self, step: usize, loss: f64) -> anyhow::Result<()> {
        append_line(&mut self.file, &self.path, &format!("{step},{loss:?}"))
    }
}

/// Drops every line of the run's logs for steps after `step`, and any torn last line.
pub fn roll_back(run: &RunDir, step: usize) -> anyhow::Result<()> {
    keep_lines(&run.metrics_path(), |line| {
        serde_json::from_str::<Metrics>(line).is_ok_and(|m| m.step <= step)
    })?;
    keep_lines(&run.losses_path(), |line| {
        line == LOSSES_HEADER || loss_line_step(line).is_some_and(|s| s <= step)
    })
}

/// The per-step losses recorded in `losses.csv`, as `(step, nats per dimension)`.
pub fn read_losses(run: &RunDir) -> anyhow::Result<Vec<(usize, f64)>> {
    let path = run.losses_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .skip(1)
        .map(|line| {
            let (step, loss) = line.split_once(',').unwrap_or((line, ""));
            Ok((step.parse()?, loss.parse()?))
        })
        .collect::<Result<_, Box<dyn std::error::Error + Send + Sync>>>()
        .map_err(|e| anyhow::anyhow!("{}: not a loss log: {e}", path.display()))
}

fn loss_line_step(line: &str) -> Option<usize> {
    let (step, loss) = line.split_once(',')?;
    loss.parse::<f64>().ok()?;
    step.parse().ok()
}

/// Rewrites `path` atomically with only the lines `keep` accepts; a missing file stays missing.
fn keep_lines(path: &Path, keep: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A line without its newline was torn by a crash mid-write.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let kept: String = complete
        .lines()
        .filter(|line| keep(line))
        .flat_map(|line| [line, "\n"])
        .collect();
    if kept != text {
        write_atomically(path, kept.as_bytes())?;
    }
    Ok(())
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn append_line(file: &mut File, path: &Path, line: &str) -> anyhow::Result<()> {
    file.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
