//! The append-only logs of a training run — `metrics.jsonl` (one line per interval) and
//! `losses.csv` (the training loss of every step) — and their rollback to a checkpoint: a run
//! killed after logging a step but before checkpointing it redoes that step on resume, so lines
//! past the checkpoint are dropped first and every step appears exactly once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::files::{FileError, write_atomically};
use crate::model::Objective;
use crate::run_dir::RunDir;
use serde::{Deserialize, Serialize};

/// Why a run's log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot open {}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} line {line}: not a metrics record", path.display())]
    Metrics {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{} line {line}: not a loss record (step,loss): {message}", path.display())]
    Losses {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Rewriting a log after a rollback failed.
    #[error(transparent)]
    Rewrite(#[from] FileError),
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    #[serde(flatten)]
    pub loss: IntervalLoss,
}

/// The losses of an interval, named by their unit so that a squared error is never read as a
/// likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntervalLoss {
    /// A likelihood-trained model.
    Nll {
        /// Mean training loss since the previous line, in nats per dimension.
        train_nats_per_dim: f64,
        train_bits_per_dim: f64,
        val_bits_per_dim: f64,
    },
    /// The MSE-trained auto-encoder: mean squared error per sub-pixel, intensities in `[0, 1]`.
    Mse { train_mse: f64, val_mse: f64 },
}

impl IntervalLoss {
    /// The training and validation figures in the unit of [`Self::unit`].
    pub fn train_and_validation(&self) -> (f64, f64) {
        match *self {
            IntervalLoss::Nll {
                train_bits_per_dim,
                val_bits_per_dim,
                ..
            } => (train_bits_per_dim, val_bits_per_dim),
            IntervalLoss::Mse { train_mse, val_mse } => (train_mse, val_mse),
        }
    }

    pub fn unit(&self) -> &'static str {
        match self {
            IntervalLoss::Nll { .. } => "bits/dim",
            IntervalLoss::Mse { .. } => "mse",
        }
    }
}

/// Appends one line to `metrics.jsonl`.
pub fn append_metrics(run: &RunDir, metrics: &Metrics) -> Result<(), LogError> {
    let line = serde_json::to_string(metrics).expect("metrics serialise");
    append_line(
        &mut open_append(&run.metrics_path())?,
        &run.metrics_path(),
        &line,
    )
}

/// Reads every line of the run's `metrics.jsonl`.
pub fn read_metrics(run: &RunDir) -> Result<Vec<Metrics>, LogError> {
    let path = run.metrics_path();
    read_text(&path)?
        .lines()
        .enumerate()
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|source| LogError::Metrics {
                path: path.clone(),
                line: number + 1,
                source,
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
    /// Opens (or starts, with its header naming the loss) the run's loss log.
    pub fn open(run: &RunDir, objective: Objective) -> Result<Self, LogError> {
        let path = run.losses_path();
        let fresh = !path.exists();
        let mut file = open_append(&path)?;
        if fresh {
            let header = match objective {
                Objective::Nll => "step,train_nats_per_dim",
                Objective::Mse => "step,train_mse",
            };
            append_line(&mut file, &path, header)?;
        }
        Ok(Self { file, path })
    }

    /// Records the training loss of `step` (counted from 1), in nats per dimension or as a mean
    /// squared error, with every digit needed to read back the same `f64`.
    pub fn record(&mut self, step: usize, loss: f64) -> Result<(), LogError> {
        append_line(&mut self.file, &self.path, &format!("{step},{loss:?}"))
    }
}

/// Drops every line of the run's logs for steps after `step`, and any torn last line.
pub fn roll_back(run: &RunDir, step: usize) -> Result<(), LogError> {
    keep_lines(&run.metrics_path(), |line| {
        serde_json::from_str::<Metrics>(line).is_ok_and(|m| m.step <= step)
    })?;
    keep_lines(&run.losses_path(), |line| {
        line.starts_with("step,") || loss_line_step(line).is_some_and(|s| s <= step)
    })
}

/// The per-step losses recorded in `losses.csv`, as `(step, loss)`: nats per dimension, or the
/// mean squared error of an MSE-trained model.
pub fn read_losses(run: &RunDir) -> Result<Vec<(usize, f64)>, LogError> {
    let path = run.losses_path();
    read_text(&path)?
        .lines()
        .enumerate()
        .skip(1)
        .map(|(number, line)| {
            let (step, loss) = line.split_once(',').unwrap_or((line, ""));
            let message = |e: &dyn std::fmt::Display| LogError::Losses {
                path: path.clone(),
                line: number + 1,
                message: e.to_string(),
            };
            Ok((
                step.parse().map_err(|e| message(&e))?,
                loss.parse().map_err(|e| message(&e))?,
            ))
        })
        .collect()
}

fn loss_line_step(line: &str) -> Option<usize> {
    let (step, loss) = line.split_once(',')?;
    loss.parse::<f64>().ok()?;
    step.parse().ok()
}

/// Rewrites `path` atomically with only the lines `keep` accepts; a missing file stays missing.
fn keep_lines(path: &Path, keep: impl Fn(&str) -> bool) -> Result<(), LogError> {
    if !path.exists() {
        return Ok(());
    }
    let text = read_text(path)?;
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

fn read_text(path: &Path) -> Result<String, LogError> {
    std::fs::read_to_string(path).map_err(|source| LogError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn append_line(file: &mut File, path: &Path, line: &str) -> Result<(), LogError> {
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|source| LogError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_log_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(run.losses_path(), "step,train_nats_per_dim\n1,0.5\n2,x\n").unwrap();
        let error = read_losses(&run).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "losses.csv line 3: not a loss record (step,loss): invalid float literal"
            ),
            "{error}"
        );

        std::fs::write(run.metrics_path(), "{}\n").unwrap();
        let error = read_metrics(&run).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("metrics.jsonl line 1: not a metrics record"),
            "{error}"
        );
        assert!(
            std::error::Error::source(&error).is_some(),
            "the JSON error is the source"
        );
    }
}
