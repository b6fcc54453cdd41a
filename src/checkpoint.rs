//! Run folders and checkpoints.
//!
//! A run folder holds `config.json` (what was asked for), `checkpoint.bin` (the latest
//! training state), `metrics.jsonl` and sample grids. A checkpoint is one file — a header, the
//! model configuration, the model weights, the optimiser state and, when the run keeps one, the
//! moving average of the weights — written to a temporary file
//! and renamed over the old one, so a crash never leaves a half-written checkpoint behind.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{Binarization, DataError, DataSource, Dataset, FolderOptions};
use crate::files::{
    FileError, open_bounded, read_bounded, remove_stale_temporaries, write_atomically,
};
use crate::model::{MAX_FEATURE_VALUES, MAX_IMAGE_SIDE, PixelCnn, PixelCnnConfig};
use crate::precision::Precision;
use crate::recipe::{NEW_RUN, Recipe};

const MAGIC: &[u8; 8] = b"PXCNNCKP";
/// Version of the checkpoint layout; bumped whenever it or a model's weights change. Version 2:
/// the gated layer's vertical stack became the paper's one ⌈k/2⌉×k convolution (version 1 held
/// a factorised 1×k then column convolution and an extra 1×1 input path). Version 3 adds a
/// section for the moving average of the weights (empty without one); version 2 files, which
/// lack it, are still read. Version 4 ends in a CRC-32 of all the bytes before it, which every
/// load verifies, so that a damaged file is refused instead of used; earlier files, which lack
/// it, are read unchecked.
pub const FORMAT_VERSION: u32 = 4;
/// The first version that ends in a checksum.
const CHECKSUMMED: u32 = 4;

/// Why a run folder or checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The I/O error is the source, so that a report of the error chain shows it once.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] FileError),
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
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not a valid run config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that may have been edited by hand.
    pub fn validate(&self) -> Result<(), String> {
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
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.shards > MAX_SHARDS || !self.batch_size.is_multiple_of(self.shards) {
            return Err(format!(
                "a batch of {} images cannot be split into {} shards: shards must divide the batch size and be at most {MAX_SHARDS}",
                self.batch_size, self.shards
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(format!(
                "learning_rate must be a positive number, got {}",
                self.learning_rate
            ));
        }
        self.validate_recipe()?;
        if self.image_size == Some(0) {
            return Err("image_size must be at least 1".into());
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
            return Err(format!(
                "the model's condition map or code is sized for other images than {}×{}",
                image.0, image.1
            ));
        }
        Ok(())
    }

    /// Checks the binarisation and the optimisation recipe.
    fn validate_recipe(&self) -> Result<(), String> {
        if self.binarization.is_some() && self.model.levels != 2 {
            return Err(format!(
                "binarization needs a model of 2 levels, not {}",
                self.model.levels
            ));
        }
        self.recipe.validate()
    }

    /// Refuses images larger than [`MAX_IMAGE_SIDE`] a side, and a model whose forward pass
    /// on one image would exceed [`MAX_FEATURE_VALUES`].
    fn check_image_size(&self) -> Result<(), String> {
        let side = self
            .image_height
            .max(self.image_width)
            .max(self.image_size.unwrap_or(0));
        if side > MAX_IMAGE_SIDE {
            return Err(format!(
                "images of {side} pixels a side are larger than the ceiling of {MAX_IMAGE_SIDE}"
            ));
        }
        let values = self
            .model
            .feature_values(self.image_height, self.image_width);
        if values > MAX_FEATURE_VALUES {
            return Err(format!(
                "the model would compute {values} feature values per {}×{} image, more than the ceiling of {MAX_FEATURE_VALUES} (check layers, channels and the image size)",
                self.image_height, self.image_width
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

/// The state needed to continue training exactly where it stopped.
pub struct Checkpoint {
    pub step: usize,
    pub config: PixelCnnConfig,
    /// The trained weights.
    pub model: PixelCnn,
    /// The exponential moving average of the weights, if the run keeps one.
    pub average: Option<PixelCnn>,
    pub optimizer: ModuleOptimizer,
}

impl Checkpoint {
    /// The model to evaluate and sample: the moving average of the weights if the run keeps
    /// one, else the trained weights.
    pub fn into_inference_model(self) -> PixelCnn {
        self.average.unwrap_or(self.model)
    }

    /// [`Checkpoint::into_inference_model`], borrowed.
    pub fn inference_model(&self) -> &PixelCnn {
        self.average.as_ref().unwrap_or(&self.model)
    }
}

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
        RunConfig::from_json(&bytes).map_err(|message| CheckpointError::Invalid { path, message })
    }

    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint_path().is_file()
    }

    /// Writes the training state atomically.
    pub fn save_checkpoint(
        &self,
        step: usize,
        config: &PixelCnnConfig,
        model: &PixelCnn,
        average: Option<&PixelCnn>,
        optimizer: &ModuleOptimizer,
    ) -> Result<(), CheckpointError> {
        let path = self.checkpoint_path();
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.clone(),
            message,
        };
        let serialise = |model: &PixelCnn| {
            model
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| invalid(format!("cannot serialise the model: {e}")))
        };
        let weights = serialise(model)?;
        let average = average.map(serialise).transpose()?;
        let average: &[u8] = average.as_deref().unwrap_or_default();
        let optimizer_state = optimizer
            .into_bytes()
            .map_err(|e| invalid(format!("cannot serialise the optimiser: {e}")))?;
        let config_json = serde_json::to_vec(config).expect("model config serialises");

        let mut file = Vec::with_capacity(weights.len() + optimizer_state.len() + 1024);
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.extend_from_slice(&(step as u64).to_le_bytes());
        for section in [
            &config_json[..],
            &weights[..],
            &optimizer_state[..],
            average,
        ] {
            file.extend_from_slice(&(section.len() as u64).to_le_bytes());
            file.extend_from_slice(section);
        }
        let checksum = crc32fast::hash(&file);
        file.extend_from_slice(&checksum.to_le_bytes());
        remove_stale_temporaries(&path);
        Ok(write_atomically(&path, &file)?)
    }

    /// Reads the checkpoint and rebuilds the model it holds on `device`. The file's size is
    /// checked against what its header's model can fill before the rest of it is read.
    pub fn load_checkpoint(&self, device: &Device) -> Result<Checkpoint, CheckpointError> {
        let path = self.checkpoint_path();
        let invalid = |message| CheckpointError::Invalid {
            path: path.clone(),
            message,
        };
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let (mut file, size) = open_bounded(&path, u64::MAX)?;
        let mut head = Vec::new();
        (&mut file)
            .take(HEADER_BYTES + MAX_CONFIG_BYTES)
            .read_to_end(&mut head)
            .map_err(io)?;
        let limit = match size_limit(&head) {
            Ok(limit) => limit,
            // Decoding what was read names the fault as for any file: a damaged one by its
            // checksum, an older one by what does not parse.
            Err(message) => {
                let message = Checkpoint::decode(&head, device).err().unwrap_or(message);
                return Err(invalid(message));
            }
        };
        if size > limit {
            return Err(invalid(format!(
                "{size} bytes, more than a checkpoint of its model can hold ({limit})"
            )));
        }
        let mut bytes = head;
        file.take(limit).read_to_end(&mut bytes).map_err(io)?;
        Checkpoint::decode(&bytes, device).map_err(invalid)
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

impl Checkpoint {
    /// Parses a checkpoint file's bytes and rebuilds its model on `device`.
    pub fn decode(bytes: &[u8], device: &Device) -> Result<Self, String> {
        decode_checkpoint(bytes, device)
    }
}

/// The largest `config.json`, and model config section of a checkpoint, read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Magic, version, step and the config section's length.
const HEADER_BYTES: u64 = 8 + 4 + 8 + 8;

/// The most bytes a checkpoint whose first bytes are `head` can take: its header and config,
/// and for each parameter of that model its weight, Adam's two moments and the moving average
/// (16 bytes), with a quarter and a mebibyte to spare for the records' own structure.
fn size_limit(head: &[u8]) -> Result<u64, String> {
    let mut reader = SectionReader { bytes: head };
    reader.take(MAGIC.len() + 4 + 8)?;
    let config_len = reader.u64()?;
    if config_len > MAX_CONFIG_BYTES {
        return Err(format!(
            "its model config takes {config_len} bytes, more than the {MAX_CONFIG_BYTES} allowed"
        ));
    }
    let config: PixelCnnConfig = serde_json::from_slice(reader.take(config_len as usize)?)
        .map_err(|e| format!("corrupt model config: {e}"))?;
    config.validate()?;
    let parameters = config.parameter_count().saturating_mul(20);
    Ok(HEADER_BYTES + config_len + parameters + (1 << 20))
}

fn decode_checkpoint(bytes: &[u8], device: &Device) -> Result<Checkpoint, String> {
    let mut reader = SectionReader { bytes };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err("not a pixelcnn checkpoint (bad magic bytes)".into());
    }
    let version = u32::from_le_bytes(reader.take(4)?.try_into().expect("4 bytes"));
    if !(2..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "checkpoint format version {version}, but this pixelcnn reads versions 2 to {FORMAT_VERSION}{}",
            if version == 1 {
                " (version 1 models used an earlier form of the gated layer: train them again)"
            } else {
                ""
            }
        ));
    }
    if version >= CHECKSUMMED {
        reader.bytes = verified(bytes, reader.bytes)?;
    }
    let step = reader.u64()? as usize;
    let config: PixelCnnConfig = serde_json::from_slice(reader.section()?)
        .map_err(|e| format!("corrupt model config: {e}"))?;
    config.validate()?;
    let weights = reader.section()?;
    let optimizer_state = reader.section()?;
    let average = if version >= 3 {
        Some(reader.section()?).filter(|a| !a.is_empty())
    } else {
        None
    };
    if !reader.bytes.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the end",
            reader.bytes.len()
        ));
    }
    let model = load_weights(&config, weights, device, "model weights")?;
    let average = average
        .map(|a| load_weights(&config, a, device, "averaged weights"))
        .transpose()?;
    let optimizer = without_panics("optimiser state", || {
        new_optimizer()
            .from_bytes(Bytes::from_bytes_vec(optimizer_state.to_vec()))
            .map_err(|e| format!("corrupt optimiser state: {e}"))
    })?;
    Ok(Checkpoint {
        step,
        config,
        model,
        average,
        optimizer,
    })
}

/// `rest`, the part of `file` after its version, less the CRC-32 of everything before it that
/// ends `file`, if that checksum is right.
fn verified<'a>(file: &[u8], rest: &'a [u8]) -> Result<&'a [u8], String> {
    let Some(split) = rest.len().checked_sub(4) else {
        return Err("file is truncated".into());
    };
    let (rest, stored) = rest.split_at(split);
    let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&file[..file.len() - 4]);
    if stored != computed {
        return Err(format!(
            "the file is damaged or truncated: it ends in the checksum {stored:08x}, but its bytes sum to {computed:08x}"
        ));
    }
    Ok(rest)
}

/// Rebuilds the model `config` describes from serialised `weights` (the `what` of messages).
fn load_weights(
    config: &PixelCnnConfig,
    weights: &[u8],
    device: &Device,
    what: &str,
) -> Result<PixelCnn, String> {
    check_weights_fit(config, weights)?;
    without_panics(what, || {
        let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
            .map_err(|e| format!("corrupt {what}: {e}"))?;
        config
            .init(device)
            .try_load_record(record)
            .map_err(|e| format!("{what} do not fit the model {config:?}: {e}"))
    })
}

/// Refuses weights too short for the model `config` describes (4 bytes a parameter), before
/// that model is built: a crafted config could otherwise ask for more memory than the file
/// could ever fill.
fn check_weights_fit(config: &PixelCnnConfig, weights: &[u8]) -> Result<(), String> {
    let parameters = config.parameter_count();
    let needed = parameters.saturating_mul(4);
    if (weights.len() as u64) < needed {
        return Err(format!(
            "the model weights take {} bytes, but the {parameters} parameters of the model config need {needed}",
            weights.len()
        ));
    }
    Ok(())
}

/// Runs burn's record decoding, which panics on some malformed records (found by fuzzing), and
/// reports such a panic as a corrupt `what` instead of letting it end the program. The panic
/// message is kept off standard error (see [`crate::quiet_panic`]).
fn without_panics<T>(what: &str, decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    crate::quiet_panic::catch_quietly(decode)
        .unwrap_or_else(|_| Err(format!("corrupt {what}: the record is malformed")))
}

/// The optimiser of every run: Adam with PyTorch's epsilon.
pub fn new_optimizer() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

/// Reads length-prefixed sections, reporting truncation instead of panicking.
struct SectionReader<'a> {
    bytes: &'a [u8],
}

impl<'a> SectionReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < count {
            return Err("file is truncated".into());
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn section(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.u64()?).map_err(|_| "section length overflows")?;
        self.take(len)
    }
}
