//! Models trained by this project and shipped with the library (cargo feature `pretrained`, on
//! by default), so that a newcomer samples, completes and evaluates good digits seconds after
//! the build, without training or a download. Each is a safetensors file of [`crate::export`]
//! (weights and the run's settings) beside a card that says how it was trained and what it
//! scores, both embedded by the `pixelcnn-models` crate (the repository's `models/` folder); the
//! tables of pretrained models in the README and docs/likelihood.md give the cards' figures.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::export::{ExportError, from_safetensors};
use crate::model::PixelCnn;
use crate::run_config::RunConfig;

/// A shipped model.
#[derive(Clone, Copy)]
pub struct Pretrained {
    pub name: &'static str,
    weights: &'static [u8],
    card: &'static str,
}

/// How a shipped model was trained and what it scores, from `models/NAME.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// What the model is, in a line.
    pub description: String,
    /// The commands that trained it (legs of a long run one after the other).
    pub commands: Vec<String>,
    /// Training steps; the wall time on the 2-core machine it was trained on (which other jobs
    /// shared), and the CPU time the training process used.
    pub steps: usize,
    pub train_hours: f64,
    pub cpu_hours: f64,
    /// Test NLL on the full MNIST test set (10,000 images), as `pixelcnn eval --json` printed
    /// it with `--data-dir` pointing at MNIST's IDX files.
    pub test: Score,
    /// The same on the 1,000 test images embedded in the binary (`eval` without `--data-dir`).
    pub embedded_test: Score,
}

/// A test-set likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub images: usize,
    pub nll_nats: f64,
    pub bits_per_dim: f64,
}

/// Why a name does not give a shipped model.
#[derive(Debug, thiserror::Error)]
#[error("no pretrained model is called {name:?}; the shipped ones are: {known}")]
pub struct UnknownModel {
    name: String,
    known: String,
}

/// Every shipped model.
pub fn all() -> impl Iterator<Item = Pretrained> {
    pixelcnn_models::ALL.iter().map(|m| Pretrained {
        name: m.name,
        weights: m.weights,
        card: m.card,
    })
}

/// The shipped model called `name`.
pub fn find(name: &str) -> Result<Pretrained, UnknownModel> {
    all().find(|m| m.name == name).ok_or_else(|| UnknownModel {
        name: name.to_string(),
        known: all().map(|m| m.name).collect::<Vec<_>>().join(", "),
    })
}

impl Pretrained {
    /// The settings it was trained with.
    pub fn config(&self) -> Result<RunConfig, ExportError> {
        crate::export::read_config(self.weights)
    }

    /// Its settings and weights, on `device`.
    pub fn load(&self, device: &Device) -> Result<(RunConfig, PixelCnn), ExportError> {
        from_safetensors(self.weights.to_vec(), device)
    }

    /// Its card.
    pub fn card(&self) -> Card {
        serde_json::from_str(self.card).expect("the shipped cards are checked by the tests")
    }

    /// The safetensors file as shipped.
    pub fn weights(&self) -> &'static [u8] {
        self.weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_model_loads_with_its_card() {
        let device = Device::flex();
        for model in all() {
            let card = model.card();
            let (config, _) = model.load(&device).unwrap();
            assert_eq!(config, model.config().unwrap(), "{}", model.name);
            assert!(config.data_dir.is_none(), "{}: a local path", model.name);
            assert!(card.test.images == 10_000 && card.embedded_test.images == 1_000);
        }
        let error = find("nope").err().unwrap().to_string();
        assert!(error.contains("mnist-class"), "{error}");
    }
}
