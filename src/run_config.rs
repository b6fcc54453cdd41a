//! A run's settings: what `config.json` in its folder records — the model, the data, the
//! optimisation and how the run computes — checked when read, so that a hand-edited or hostile
//! file is refused before it is used.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Binarization, DataError, DataSource, Dataset, FolderOptions};
use crate::model::{InvalidSetting, MAX_FEATURE_VALUES, MAX_IMAGE_SIDE, PixelCnnConfig};
use crate::precision::Precision;
use crate::recipe::{NEW_RUN, Recipe};

/// Why a `config.json` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not the fields of a run config.
    #[error("{0}")]
    Json(String),
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
}

/// The training settings recorded in a run folder's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: PixelCnnConfig,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Total optimisation steps of the run.
    pub steps: usize,
    /// Steps between validations, checkpoints and sample grids.
    pub interval: usize,
    /// The kind of data in `data_dir`.
    #[serde(default)]
    pub dataset: Dataset,
    /// `None`: the MNIST test set embedded in the binary.
    pub data_dir: Option<PathBuf>,
    /// The side images of a `folder` data set are resized and cropped to.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// The conditioning vectors of a vector-conditional model's training images.
    #[serde(default)]
    pub condition_file: Option<PathBuf>,
    /// Size of the training images, and so of generated ones.
    pub image_height: usize,
    pub image_width: usize,
    /// How a K = 2 run binarises its images; `None`: the K-level quantisation.
    #[serde(default)]
    pub binarization: Option<Binarization>,
    /// Learning-rate schedule, weight averaging and gradient clipping.
    #[serde(default)]
    pub recipe: Recipe,
    /// The shards each batch is split into, trained side by side on the threads of one process
    /// ([`crate::parallel::in_threads`]); runs from before shards have 1.
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// The precision of the matrix products ([`crate::precision`]); runs from before have f32.
    #[serde(default)]
    pub precision: Precision,
    /// The trained run a new run started from (`train --init-from`, [`crate::recipe::grow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<InitFrom>,
}

/// Where a run's first weights came from: the run folder `run` at its step `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitFrom {
    pub run: PathBuf,
    pub step: usize,
}

fn one_shard() -> usize {
    1
}

/// The most shards a run may ask for: each is a thread holding a copy of the model.
pub const MAX_SHARDS: usize = 64;

impl RunConfig {
    /// A new run of `model` on images of `height` × `width`, with `pixelcnn train`'s defaults:
    /// 400 steps of batch 32, Adam at 3e-3, seed 0, validation and a checkpoint every 200 steps,
    /// the recipe of [`NEW_RUN`], one shard, f32 products, and data from the caller (no data
    /// set or folder recorded). Change what you need with struct update syntax.
    pub fn new(model: PixelCnnConfig, height: usize, width: usize) -> Self {
        Self {
            model,
            batch_size: 32,
            learning_rate: 3e-3,
            seed: 0,
            steps: 400,
            interval: 200,
            dataset: Dataset::default(),
            data_dir: None,
            image_size: None,
            condition_file: None,
            image_height: height,
            image_width: width,
            binarization: None,
            recipe: NEW_RUN,
            shards: 1,
            precision: Precision::F32,
            init_from: None,
        }
    }

    /// Parses and checks the contents of a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::Json(format!("not a valid run config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that may have been edited by hand.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.model.validate()?;
        for (name, value) in [
            ("batch_size", self.batch_size),
            ("steps", self.steps),
            ("interval", self.interval),
            ("image_height", self.image_height),
            ("image_width", self.image_width),
            ("shards", self.shards),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(
                    name,
                    format!("{name} must be at least 1"),
                ));
            }
        }
        if self.shards > MAX_SHARDS || !self.batch_size.is_multiple_of(self.shards) {
            return Err(InvalidSetting::new(
                "shards",
                format!(
                    "a batch of {} images cannot be split into {} shards: shards must divide the batch size and be at most {MAX_SHARDS}",
                    self.batch_size, self.shards
                ),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(InvalidSetting::new(
                "learning_rate",
                format!(
                    "learning_rate must be a positive number, got {}",
                    self.learning_rate
                ),
            ));
        }
        self.validate_recipe()?;
        if self.image_size == Some(0) {
            return Err(InvalidSetting::new(
                "image_size",
                "image_size must be at least 1",
            ));
        }
        self.check_image_size()?;
        let image = (self.image_height, self.image_width);
        let spatial = self.model.spatial.map(|s| (s.height, s.width));
        let latent = self.model.latent.map(|l| (l.height, l.width));
        if [spatial, latent]
            .into_iter()
            .flatten()
            .any(|size| size != image)
        {
            return Err(InvalidSetting::new(
                "image_height",
                format!(
                    "the model's condition map or code is sized for other images than {}×{}",
                    image.0, image.1
                ),
            ));
        }
        Ok(())
    }

    /// Checks the binarisation and the optimisation recipe.
    fn validate_recipe(&self) -> Result<(), InvalidSetting> {
        if self.binarization.is_some() && self.model.levels != 2 {
            return Err(InvalidSetting::new(
                "binarization",
                format!(
                    "binarization needs a model of 2 levels, not {}",
                    self.model.levels
                ),
            ));
        }
        self.recipe.validate()
    }

    /// Refuses images larger than [`MAX_IMAGE_SIDE`] a side, and a model whose forward pass
    /// on one image would exceed [`MAX_FEATURE_VALUES`].
    fn check_image_size(&self) -> Result<(), InvalidSetting> {
        let side = self
            .image_height
            .max(self.image_width)
            .max(self.image_size.unwrap_or(0));
        if side > MAX_IMAGE_SIDE {
            return Err(InvalidSetting::new(
                "image_size",
                format!(
                    "images of {side} pixels a side are larger than the ceiling of {MAX_IMAGE_SIDE}"
                ),
            ));
        }
        let values = self
            .model
            .feature_values(self.image_height, self.image_width);
        if values > MAX_FEATURE_VALUES {
            return Err(InvalidSetting::new(
                "image_size",
                format!(
                    "the model would compute {values} feature values per {}×{} image, more than the ceiling of {MAX_FEATURE_VALUES} (check layers, channels and the image size)",
                    self.image_height, self.image_width
                ),
            ));
        }
        Ok(())
    }

    /// Where the run's images come from: its own data, or the same kind of data in `dir`.
    pub fn data_source(&self, dir: Option<PathBuf>) -> Result<DataSource, DataError> {
        let folder = self.image_size.map(|size| FolderOptions {
            size,
            channels: Some(self.model.input_channels),
        });
        DataSource::new(self.dataset, dir.or(self.data_dir.clone()), folder)
    }
}
