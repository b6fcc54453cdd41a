//! The PixelCNN auto-encoder of arXiv 1606.05328, Section 2.4: a convolutional encoder maps an
//! image x to a code h = f(x) of m numbers, and a conditional Gated PixelCNN models p(x|h) as
//! the decoder; both are trained together by maximising the likelihood of x.
//!
//! Two baselines replace the PixelCNN by a deconvolutional decoder that sees h alone:
//! - `autoencoder-deconv` predicts every pixel's K-way softmax and is trained by the same
//!   likelihood, so that its negative log-likelihood compares directly with the PixelCNN
//!   auto-encoder's (this comparison is ours, not the paper's);
//! - `autoencoder-mse` predicts every sub-pixel's intensity on the network's input scale
//!   x = level/(K−1) and is trained to minimise the mean squared error, the convolutional
//!   auto-encoder of the paper's Section 3.4. It has no likelihood: it is scored by its error.
//!
//! Both baselines share one decoder, [`DeconvAutoEncoder`], which differs only in its number of
//! outputs per pixel.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::gated::GatedPixelCnn;
use super::{Conditioning, PixelCnnConfig, input_to_float};

/// Size of the code and of the images it encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latent {
    /// m, the number of values in the code h.
    pub dim: usize,
    pub height: usize,
    pub width: usize,
}

impl Latent {
    /// Resolution after the encoder's two stride-2 convolutions.
    fn reduced(&self) -> [usize; 2] {
        [self.height.div_ceil(4), self.width.div_ceil(4)]
    }
}

/// f: two stride-2 3×3 convolutions with ReLU, then a linear layer onto the code.
#[derive(Module, Debug)]
pub struct Encoder {
    first: Conv2d,
    second: Conv2d,
    project: Linear,
    levels: usize,
}

impl Encoder {
    pub fn new(config: &PixelCnnConfig, latent: Latent, device: &Device) -> Self {
        let c = config.channels;
        let strided = |from: usize, to: usize| {
            Conv2dConfig::new([from, to], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let [h, w] = latent.reduced();
        Self {
            first: strided(config.input_channels, c),
            second: strided(c, 2 * c),
            project: LinearConfig::new(2 * c * h * w, latent.dim).init(device),
            levels: config.levels,
        }
    }

    /// h = f(x): `[B, m]` for images of levels `[B, 1, H, W]`.
    pub fn forward(&self, levels: Tensor<4, Int>) -> Tensor<2> {
        let x = input_to_float(levels, self.levels);
        let features = relu(self.second.forward(relu(self.first.forward(x))));
        self.project.forward(features.flatten(1, 3))
    }
}

/// Encoder + conditional Gated PixelCNN decoder.
#[derive(Module, Debug)]
pub struct AutoEncoder {
    pub(crate) encoder: Encoder,
    pub(crate) decoder: GatedPixelCnn,
}

impl AutoEncoder {
    pub fn new(config: &PixelCnnConfig, latent: Latent, device: &Device) -> Self {
        let decoder_config = config
            .clone()
            .with_conditioning(Conditioning::Embedding { dim: latent.dim });
        Self {
            encoder: Encoder::new(config, latent, device),
            decoder: GatedPixelCnn::new(&decoder_config, device),
        }
    }

    /// Logits of p(x|h) with h = `code`, or h = f(x) when no code is given.
    pub fn forward(&self, levels: Tensor<4, Int>, code: Option<&Tensor<2>>) -> Tensor<5> {
        match code {
            Some(h) => self.decoder.forward(levels, Some(h)),
            None => {
                let h = self.encoder.forward(levels.clone());
                self.decoder.forward(levels, Some(&h))
            }
        }
    }
}

/// Encoder + deconvolutional decoder: every pixel's outputs from h alone — K logits for the
/// likelihood-trained baseline, one intensity per colour for the MSE-trained one.
#[derive(Module, Debug)]
pub struct DeconvAutoEncoder {
    pub(crate) encoder: Encoder,
    project: Linear,
    upsample: ConvTranspose2d,
    output: ConvTranspose2d,
    channels: usize,
    reduced: [usize; 2],
    size: [usize; 2],
}

impl DeconvAutoEncoder {
    /// A decoder with `outputs` values per pixel.
    pub fn new(config: &PixelCnnConfig, latent: Latent, outputs: usize, device: &Device) -> Self {
        let c = config.channels;
        let reduced = latent.reduced();
        let transposed = |from: usize, to: usize| {
            ConvTranspose2dConfig::new([from, to], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .init(device)
        };
        Self {
            encoder: Encoder::new(config, latent, device),
            project: LinearConfig::new(latent.dim, 2 * c * reduced[0] * reduced[1]).init(device),
            upsample: transposed(2 * c, c),
            output: transposed(c, outputs),
            channels: 2 * c,
            reduced,
            size: [latent.height, latent.width],
        }
    }

    /// Outputs `[B, outputs, H, W]` from h = `code`, or from h = f(x) when no code is given:
    /// each pixel's from h alone, independently of the other pixels.
    pub fn forward(&self, levels: Tensor<4, Int>, code: Option<&Tensor<2>>) -> Tensor<4> {
        match code {
            Some(h) => self.decode(h.clone()),
            None => self.decode(self.encoder.forward(levels)),
        }
    }

    /// Outputs `[B, outputs, H, W]` of the codes h `[B, m]`.
    pub fn decode(&self, h: Tensor<2>) -> Tensor<4> {
        let [batch, _] = h.dims();
        let map = relu(self.project.forward(h)).reshape([
            batch,
            self.channels,
            self.reduced[0],
            self.reduced[1],
        ]);
        self.output
            .forward(relu(self.upsample.forward(map)))
            .narrow(2, 0, self.size[0])
            .narrow(3, 0, self.size[1])
    }
}

/// Levels `0..K` of decoded intensities `[B, C, H, W]` on the input scale x = level/(K−1): each
/// rounded to the nearest level, one image per row.
pub fn intensities_to_levels(intensities: Tensor<4>, levels: usize) -> Vec<Vec<u8>> {
    let [batch, ..] = intensities.dims();
    let top = (levels - 1) as f32;
    let values: Vec<f32> = intensities
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("intensities are floats");
    let per_image = values.len() / batch.max(1);
    values
        .chunks(per_image.max(1))
        .map(|image| {
            image
                .iter()
                .map(|x| (x * top).round().clamp(0.0, top) as u8)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensities_round_to_the_nearest_level_within_range() {
        let device = Device::flex();
        // K = 4: levels sit at 0, 1/3, 2/3 and 1.
        let values = vec![-0.5f32, 0.1, 0.2, 0.5, 0.6, 0.9, 1.0, 7.0];
        let intensities = Tensor::<4>::from_data(TensorData::new(values, [2, 1, 2, 2]), &device);
        assert_eq!(
            intensities_to_levels(intensities, 4),
            [vec![0, 0, 1, 2], vec![2, 3, 3, 3]]
        );
    }
}
