//! The original PixelCNN of van den Oord et al. 2016, *Pixel Recurrent Neural Networks*
//! (arXiv 1601.06759), Section 3.4: a stack of masked convolutions with ReLU. The first layer uses
//! mask A (the current pixel is hidden), later layers mask B (the current position is visible).
//!
//! Masked k×k convolutions leave a blind spot: pixels above and to the right of the current one
//! that no stack of such layers ever reaches. It is kept here so that users can compare it with
//! the gated architecture, which removes the blind spot.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::head::OutputHead;
use super::{PixelCnnConfig, input_to_float};
use crate::ops::channels_last::to_channels_last;

/// The masked-convolution PixelCNN.
#[derive(Module, Debug)]
pub struct MaskedPixelCnn {
    pub(crate) layers: Vec<MaskedConv2d>,
    pub(crate) head: OutputHead,
    pub(crate) levels: usize,
}

impl MaskedPixelCnn {
    /// Builds the model described by `config` with freshly initialised weights on `device`.
    pub fn new(config: &PixelCnnConfig, device: &Device) -> Self {
        let layers = (0..config.layers)
            .map(|index| {
                let first = index == 0;
                let in_channels = if first {
                    config.input_channels
                } else {
                    config.channels
                };
                let kernel = if first {
                    config.first_kernel
                } else {
                    config.kernel
                };
                MaskedConv2d {
                    conv: Conv2dConfig::new([in_channels, config.channels], [kernel, kernel])
                        .init(device),
                    hides_center: first,
                }
            })
            .collect();
        Self {
            layers,
            head: OutputHead::new(config, device),
            levels: config.levels,
        }
    }

    /// Logits `[B, 1, K, H, W]` for images of levels `[B, 1, H, W]` (values in `0..K`).
    pub fn forward(&self, levels: Tensor<4, Int>) -> Tensor<5> {
        let (first, later) = self
            .layers
            .split_first()
            .expect("a PixelCNN has at least one layer");
        let mut features = first.forward(self.input(levels));
        for layer in later {
            features = layer.residual(features.clone(), layer.forward(relu(features)));
        }
        self.head.forward(to_channels_last(features))
    }

    /// The network input of images of levels `[B, C, H, W]`: intensities `[B, C, H, W]`.
    pub(crate) fn input(&self, levels: Tensor<4, Int>) -> Tensor<4> {
        input_to_float(levels, self.levels)
    }
}

/// A k×k convolution whose weights are multiplied by a raster-order causal mask.
#[derive(Module, Debug)]
pub struct MaskedConv2d {
    pub(crate) conv: Conv2d,
    /// Mask A (true) hides the centre position; mask B (false) keeps it.
    hides_center: bool,
}

impl MaskedConv2d {
    /// The convolution over a whole map `[B, C, H, W]`, zero-padded to keep its size.
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let half = self.kernel() / 2;
        self.convolve(input, [half, half])
    }

    /// The output `[B, C_out, 1, 1]` at the centre of a `k × k` window `[B, C, k, k]` of its
    /// input: what [`MaskedConv2d::forward`] computes at one position (the cached sampler).
    pub(crate) fn at_centre(&self, window: Tensor<4>) -> Tensor<4> {
        self.convolve(window, [0, 0])
    }

    /// Kernel size k of the `k × k` window.
    pub(crate) fn kernel(&self) -> usize {
        self.conv.weight.dims()[3]
    }

    /// The features after this layer: its input `features` plus `output`, the residual
    /// connection of every layer after the first (where the shapes agree).
    pub(crate) fn residual(&self, features: Tensor<4>, output: Tensor<4>) -> Tensor<4> {
        features + output
    }

    fn convolve(&self, input: Tensor<4>, padding: [usize; 2]) -> Tensor<4> {
        let weight = self.conv.weight.val();
        let [_, _, kh, kw] = weight.dims();
        let mask = Tensor::<4>::from_data(
            TensorData::new(causal_mask(kh, kw, self.hides_center), [1, 1, kh, kw]),
            &weight.device(),
        );
        let options = ConvOptions::new([1, 1], padding, [1, 1], 1);
        conv2d(
            input,
            weight * mask,
            self.conv.bias.as_ref().map(|bias| bias.val()),
            options,
        )
    }
}

/// 1 for kernel positions before the centre in raster order (and the centre itself unless
/// `hides_center`), 0 after.
pub fn causal_mask(height: usize, width: usize, hides_center: bool) -> Vec<f32> {
    let (cy, cx) = (height / 2, width / 2);
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (y, x)))
        .map(|(y, x)| {
            let visible = y < cy || (y == cy && (x < cx || (x == cx && !hides_center)));
            if visible { 1.0 } else { 0.0 }
        })
        .collect()
}
