//! A run's folder: `config.json` (what was asked for), `checkpoint.bin` (the latest training
//! state, [`crate::checkpoint`]), `metrics.jsonl` and `losses.csv` ([`crate::run_log`]), the
//! sample grids, the loss plot and the progress animation. Every file is written atomically
//! ([`crate::files`]), so a crash never leaves a half-written one behind.

use std::fs;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::prelude::*;

use crate::checkpoint::{Checkpoint, CheckpointError, MAX_CONFIG_BYTES};
use crate::files::{read_bounded, remove_stale_temporaries, write_atomically};
use crate::model::{PixelCnn, PixelCnnConfig};
use crate::run_config::RunConfig;

/// The files of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint.bin")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// The training loss of every step.
    pub fn losses_path(&self) -> PathBuf {
        self.root.join("losses.csv")
    }

    /// The sample grid written after `step` training steps.
    pub fn samples_path(&self, step: usize) -> PathBuf {
        self.root.join(format!("samples_step{step:07}.png"))
    }

    pub fn progress_gif_path(&self) -> PathBuf {
        self.root.join("progress.gif")
    }

    pub fn loss_plot_path(&self) -> PathBuf {
        self.root.join("loss.png")
    }

    pub fn create(&self) -> Result<(), CheckpointError> {
        fs::create_dir_all(&self.root).map_err(|source| CheckpointError::Io {
            path: self.root.clone(),
            source,
        })
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<(), CheckpointError> {
        let json = serde_json::to_vec_pretty(config).expect("run config serialises");
        Ok(write_atomically(&self.config_path(), &json)?)
    }

    pub fn read_config(&self) -> Result<RunConfig, CheckpointError> {
        let path = self.config_path();
        let bytes = read_bounded(&path, MAX_CONFIG_BYTES)?;
        RunConfig::from_json(&bytes).map_err(|source| CheckpointError::Config { path, source })
    }

    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint_path().is_file()
    }

    /// Writes the training state atomically, removing what an interrupted write left.
    pub fn save_checkpoint(
        &self,
        step: usize,
        config: &PixelCnnConfig,
        model: &PixelCnn,
        average: Option<&PixelCnn>,
        optimizer: &ModuleOptimizer,
    ) -> Result<(), CheckpointError> {
        let path = self.checkpoint_path();
        let bytes =
            Checkpoint::encode(step, config, model, average, optimizer).map_err(|error| {
                CheckpointError::Format {
                    path: path.clone(),
                    error,
                }
            })?;
        remove_stale_temporaries(&path);
        Ok(write_atomically(&path, &bytes)?)
    }

    /// Reads the checkpoint and rebuilds the model it holds on `device`.
    pub fn load_checkpoint(&self, device: &Device) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::read(&self.checkpoint_path(), device)
    }
}

impl RunDir {
    /// Loads the checkpoint and checks that it holds the model `config` describes.
    pub fn load_checkpoint_for(
        &self,
        config: &RunConfig,
        device: &Device,
    ) -> Result<Checkpoint, CheckpointError> {
        let checkpoint = self.load_checkpoint(device)?;
        if checkpoint.config != config.model {
            return Err(CheckpointError::Invalid {
                path: self.checkpoint_path(),
                message: format!(
                    "holds a model {:?}, but {} describes {:?}",
                    checkpoint.config,
                    self.config_path().display(),
                    config.model
                ),
            });
        }
        Ok(checkpoint)
    }
}
