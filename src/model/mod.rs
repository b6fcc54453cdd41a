//! The autoregressive image models: the Gated PixelCNN (arXiv 1606.05328) and the original
//! masked-convolution PixelCNN (arXiv 1601.06759), behind one [`PixelCnn`] module so that the
//! rest of the crate (training, evaluation, sampling, checkpoints) treats them alike.

pub mod autoencoder;
pub mod colour;
pub mod gated;
mod head;
pub mod masked;
#[cfg(test)]
mod parity_tests;
mod size;
pub mod spatial;

use std::sync::Mutex;

use burn::module::{ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use autoencoder::{AutoEncoder, DeconvAutoEncoder, Latent, intensities_to_levels};
pub use gated::GatedPixelCnn;
pub use masked::MaskedPixelCnn;
pub use size::{MAX_FEATURE_VALUES, MAX_IMAGE_SIDE, MAX_PARAMETERS};
pub use spatial::SpatialMap;

/// Which architecture a model uses, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Gated PixelCNN with vertical and horizontal stacks (no blind spot).
    Gated,
    /// Original PixelCNN with masked convolutions (has a blind spot).
    Pixelcnn,
    /// Auto-encoder: a convolutional encoder and a conditional Gated PixelCNN decoder.
    Autoencoder,
    /// Baseline auto-encoder: the same encoder and a deconvolutional decoder, trained by the
    /// likelihood so that its NLL compares with the PixelCNN auto-encoder's.
    AutoencoderDeconv,
    /// The paper's convolutional auto-encoder: the deconvolutional decoder predicts intensities,
    /// trained to minimise the mean squared error.
    #[serde(rename = "autoencoder-mse")]
    AutoencoderMse,
}

/// What training minimises, which also decides how a model is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The negative log-likelihood of a per-pixel softmax, in nats (reported in bits/dim).
    Nll,
    /// The mean squared error of intensities on the input scale x = level/(K−1).
    Mse,
}

impl Architecture {
    pub fn objective(self) -> Objective {
        match self {
            Architecture::AutoencoderMse => Objective::Mse,
            _ => Objective::Nll,
        }
    }
}

/// What a model is conditioned on (arXiv 1606.05328, Section 2.3): p(x|h) = Π p(x_i | x_<i, h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Conditioning {
    /// p(x): no conditioning.
    None,
    /// h is a one-hot class label among `classes`.
    Class { classes: usize },
    /// h is any real vector of dimension `dim`, one per image.
    Embedding { dim: usize },
}

impl Conditioning {
    /// Size of the vector h, if any.
    pub fn dim(self) -> Option<usize> {
        match self {
            Conditioning::None => None,
            Conditioning::Class { classes } => Some(classes),
            Conditioning::Embedding { dim } => Some(dim),
        }
    }
}

/// Hyper-parameters of a model: what a run folder's config and each checkpoint record, so that
/// a model can always be rebuilt with the shape it was trained with. The defaults are those of
/// `pixelcnn train`, which takes them from here.
#[derive(Config, Debug, PartialEq)]
pub struct PixelCnnConfig {
    /// Intensity levels K of the per-pixel softmax (2..=256).
    pub levels: usize,
    #[config(default = "Architecture::Gated")]
    pub arch: Architecture,
    /// Number of layers, the first (causal "mask A") one included.
    #[config(default = 6)]
    pub layers: usize,
    /// Feature channels of each layer.
    #[config(default = 16)]
    pub channels: usize,
    /// Kernel size of the first layer (odd).
    #[config(default = 7)]
    pub first_kernel: usize,
    /// Kernel size of the later layers (odd).
    #[config(default = 3)]
    pub kernel: usize,
    /// Hidden channels of the 1×1 output head.
    #[config(default = 32)]
    pub head_channels: usize,
    /// Colour channels C of the images: 1 (grayscale) or 3 (RGB, modelled R→G→B).
    #[config(default = 1)]
    pub input_channels: usize,
    /// What the model is conditioned on (gated architecture only).
    #[config(default = "Conditioning::None")]
    pub conditioning: Conditioning,
    /// Condition through a map s = m(h) made by a deconvolution network, instead of through h
    /// directly (needs a conditioning).
    #[config(default = "None")]
    pub spatial: Option<SpatialMap>,
    /// The code of an auto-encoder architecture.
    #[config(default = "None")]
    pub latent: Option<Latent>,
}

/// A model of either architecture.
// burn's Module derive does not support boxed fields; a process holds one or two models.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum PixelCnn {
    Gated(GatedPixelCnn),
    Masked(MaskedPixelCnn),
    AutoEncoder(AutoEncoder),
    DeconvAutoEncoder(DeconvAutoEncoder),
    MseAutoEncoder(DeconvAutoEncoder),
}

impl PixelCnnConfig {
    /// Checks values that may come from the command line or from a file.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(2..=256).contains(&self.levels) {
            return Err(InvalidSetting::new(
                "levels",
                format!("levels must be between 2 and 256, got {}", self.levels),
            ));
        }
        if ![1, 3].contains(&self.input_channels) {
            return Err(InvalidSetting::new(
                "input_channels",
                format!(
                    "images must have 1 (grayscale) or 3 (RGB) channels, got {}",
                    self.input_channels
                ),
            ));
        }
        if self.input_channels > 1 && self.arch != Architecture::Gated {
            return Err(InvalidSetting::new(
                "arch",
                "colour images need the gated architecture",
            ));
        }
        if self.channels.min(self.head_channels) < self.input_channels {
            return Err(InvalidSetting::new(
                "channels",
                format!(
                    "{} colours need at least {} feature channels, one group per colour",
                    self.input_channels, self.input_channels
                ),
            ));
        }
        for (setting, name, value) in [
            ("layers", "layers", self.layers),
            ("channels", "channels", self.channels),
            ("head_channels", "head channels", self.head_channels),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(
                    setting,
                    format!("{name} must be at least 1"),
                ));
            }
        }
        if self.conditioning != Conditioning::None && self.arch != Architecture::Gated {
            return Err(InvalidSetting::new(
                "arch",
                "conditioning needs the gated architecture",
            ));
        }
        let autoencoder = matches!(
            self.arch,
            Architecture::Autoencoder
                | Architecture::AutoencoderDeconv
                | Architecture::AutoencoderMse
        );
        match self.latent {
            None if autoencoder => {
                return Err(InvalidSetting::new(
                    "latent",
                    "an auto-encoder needs a code size",
                ));
            }
            Some(_) if !autoencoder => {
                return Err(InvalidSetting::new(
                    "latent",
                    "a code size (latent) needs an auto-encoder architecture: autoencoder, autoencoder-deconv or autoencoder-mse",
                ));
            }
            Some(latent) if latent.dim == 0 => {
                return Err(InvalidSetting::new(
                    "latent",
                    "the code needs at least one value",
                ));
            }
            _ => {}
        }
        if self.spatial.is_some()
            && self.conditioning == Conditioning::None
            && self.arch != Architecture::Autoencoder
        {
            return Err(InvalidSetting::new(
                "spatial",
                "a spatial condition map needs a conditioning (class labels or vectors)",
            ));
        }
        if self.spatial.is_some_and(|map| map.channels == 0) {
            return Err(InvalidSetting::new(
                "spatial",
                "the condition map needs at least one channel",
            ));
        }
        if self.conditioning.dim() == Some(0) {
            return Err(InvalidSetting::new(
                "conditioning",
                "a conditional model needs at least one class or dimension",
            ));
        }
        for (setting, name, value) in [
            ("first_kernel", "first kernel", self.first_kernel),
            ("kernel", "kernel", self.kernel),
        ] {
            if value % 2 == 0 {
                return Err(InvalidSetting::new(
                    setting,
                    format!("{name} size must be odd, got {value}"),
                ));
            }
        }
        self.check_size()
    }

    /// Builds the model with freshly initialised weights on `device`, drawn from burn's
    /// process-wide generator in whatever state it is.
    pub fn init(&self, device: &Device) -> PixelCnn {
        match self.arch {
            Architecture::Gated => PixelCnn::Gated(GatedPixelCnn::new(self, device)),
            Architecture::Pixelcnn => PixelCnn::Masked(MaskedPixelCnn::new(self, device)),
            Architecture::Autoencoder => {
                PixelCnn::AutoEncoder(AutoEncoder::new(self, self.expect_latent(), device))
            }
            Architecture::AutoencoderDeconv => PixelCnn::DeconvAutoEncoder(DeconvAutoEncoder::new(
                self,
                self.expect_latent(),
                self.levels,
                device,
            )),
            Architecture::AutoencoderMse => PixelCnn::MseAutoEncoder(DeconvAutoEncoder::new(
                self,
                self.expect_latent(),
                self.input_channels,
                device,
            )),
        }
    }

    fn expect_latent(&self) -> Latent {
        self.latent
            .expect("an auto-encoder config has a code size (checked by validate)")
    }

    /// Builds the model with initial weights determined by `seed` alone. burn draws weights
    /// lazily from one process-wide generator, so this seeds it and draws every weight at once
    /// while holding a lock that keeps other seeded initialisations out.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> PixelCnn {
        static SEEDED_INIT: Mutex<()> = Mutex::new(());
        let _exclusive = SEEDED_INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let model = self.init(device);
        model.visit(&mut DrawWeights);
        model
    }
}

/// A setting refused: which one, as a run's `config.json` names it (`levels`, `arch`,
/// `batch_size`, `ema_decay`…), and why, in words. A program maps the setting to its own name
/// for it: the command line to its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// What a model predicts for a batch of images ([`PixelCnn::predict`]).
pub enum Prediction {
    /// Logits `[B, C, K, H, W]`: a distribution over the K levels of each sub-pixel.
    Logits(Tensor<5>),
    /// An MSE-trained auto-encoder's reconstructions `[B, C, H, W]`, as intensities on the
    /// input scale x = level/(K−1).
    Intensities(Tensor<4>),
}

/// Asked for the logits of an MSE-trained auto-encoder, which predicts intensities instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an MSE-trained auto-encoder predicts intensities, not a likelihood")]
pub struct NoLogits;

impl PixelCnn {
    /// Logits `[B, C, K, H, W]` for images of levels `[B, C, H, W]` (values in `0..K`), for an
    /// unconditional model; [`NoLogits`] for an MSE-trained auto-encoder.
    pub fn forward(&self, levels: Tensor<4, Int>) -> Result<Tensor<5>, NoLogits> {
        self.forward_conditioned(levels, None)
    }

    /// Logits `[B, C, K, H, W]` for images of levels `[B, C, H, W]` given, for a conditional
    /// model, the conditioning vectors h `[B, d]`. For an auto-encoder h is the code: without
    /// one, the encoder computes it from the images themselves. An MSE-trained auto-encoder has
    /// no distribution to give logits of: [`NoLogits`] (see [`Self::predict`]).
    pub fn forward_conditioned(
        &self,
        levels: Tensor<4, Int>,
        condition: Option<&Tensor<2>>,
    ) -> Result<Tensor<5>, NoLogits> {
        match self.predict(levels, condition) {
            Prediction::Logits(logits) => Ok(logits),
            Prediction::Intensities(_) => Err(NoLogits),
        }
    }

    /// What the model predicts for images of levels `[B, C, H, W]` given `condition` (as for
    /// [`Self::forward_conditioned`]): logits, or an MSE-trained auto-encoder's reconstructions.
    pub fn predict(&self, levels: Tensor<4, Int>, condition: Option<&Tensor<2>>) -> Prediction {
        match self {
            PixelCnn::Gated(model) => Prediction::Logits(model.forward(levels, condition)),
            PixelCnn::Masked(model) => Prediction::Logits(model.forward(levels)),
            PixelCnn::AutoEncoder(model) => Prediction::Logits(model.forward(levels, condition)),
            PixelCnn::DeconvAutoEncoder(model) => {
                Prediction::Logits(model.forward(levels, condition).unsqueeze_dim(1))
            }
            PixelCnn::MseAutoEncoder(model) => Prediction::Intensities(model.forward(levels, None)),
        }
    }

    /// For an MSE-trained auto-encoder, its reconstructions `[B, C, H, W]` of images of levels
    /// `[B, C, H, W]`, as intensities on the input scale x = level/(K−1); `None` for other
    /// models.
    pub fn intensities(&self, levels: Tensor<4, Int>) -> Option<Tensor<4>> {
        match self {
            PixelCnn::MseAutoEncoder(model) => Some(model.forward(levels, None)),
            _ => None,
        }
    }

    /// For an MSE-trained auto-encoder, the intensities `[B, C, H, W]` decoded from the codes h
    /// `[B, m]`; `None` for other models.
    pub fn decode_intensities(&self, code: Tensor<2>) -> Option<Tensor<4>> {
        match self {
            PixelCnn::MseAutoEncoder(model) => Some(model.decode(code)),
            _ => None,
        }
    }

    /// The codes h = f(x) `[B, m]` of an auto-encoder's images; `None` for other models.
    pub fn encode(&self, levels: Tensor<4, Int>) -> Option<Tensor<2>> {
        match self {
            PixelCnn::AutoEncoder(model) => Some(model.encoder.forward(levels)),
            PixelCnn::DeconvAutoEncoder(model) | PixelCnn::MseAutoEncoder(model) => {
                Some(model.encoder.forward(levels))
            }
            _ => None,
        }
    }
}

/// One-hot vectors `[B, classes]` for class labels.
pub fn one_hot(labels: &[usize], classes: usize, device: &Device) -> Tensor<2> {
    let mut data = vec![0.0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        data[row * classes + label] = 1.0;
    }
    Tensor::from_data(TensorData::new(data, [labels.len(), classes]), device)
}

/// Reads every parameter, which makes burn draw the lazily initialised ones.
struct DrawWeights;

impl ModuleVisitor for DrawWeights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        param.val();
    }
}

/// A 1×1 convolution.
fn conv1x1(in_channels: usize, out_channels: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [1, 1]).init(device)
}

/// The network input: levels `0..K` scaled to `[0, 1]`.
fn input_to_float(levels: Tensor<4, Int>, k: usize) -> Tensor<4> {
    levels.float() / (k - 1) as f32
}
