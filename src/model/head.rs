//! The output head shared by both architectures: ReLU → 1×1 conv → ReLU → 1×1 conv to K logits
//! per sub-pixel, the softmax over intensity levels of PixelCNN (arXiv 1601.06759, Section 2.2).
//! For colour images both convolutions keep each colour group's logits to groups `≤` it
//! (mask B of Section 3.4).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::colour::{ColourMask, Mask};
use super::{PixelCnnConfig, conv1x1};
use crate::ops::channels_last::pointwise;

/// Maps channels-last features `[B, H, W, F]` to logits `[B, C, K, H, W]`.
#[derive(Module, Debug)]
pub struct OutputHead {
    pub(crate) hidden: Conv2d,
    pub(crate) logits: Conv2d,
    pub(crate) colours: usize,
}

impl OutputHead {
    pub fn new(config: &PixelCnnConfig, device: &Device) -> Self {
        let colours = config.input_channels;
        Self {
            hidden: conv1x1(config.channels, config.head_channels, device),
            logits: conv1x1(config.head_channels, colours * config.levels, device),
            colours,
        }
    }

    pub fn forward(&self, features: Tensor<4>) -> Tensor<5> {
        let hidden = pointwise(
            &self.hidden,
            relu(features),
            self.mask(&self.hidden).for_conv(&self.hidden),
        );
        let logits = pointwise(
            &self.logits,
            relu(hidden),
            self.mask(&self.logits).for_conv(&self.logits),
        );
        // The K logits of each colour are contiguous: `[B, H, W, C·K]`, colour after colour.
        let [batch, height, width, outputs] = logits.dims();
        logits
            .reshape([batch, height, width, self.colours, outputs / self.colours])
            .permute([0, 3, 4, 1, 2])
    }

    /// The colour mask of `conv`, one of this head's convolutions.
    pub(crate) fn mask(&self, conv: &Conv2d) -> ColourMask {
        ColourMask {
            colours: self.colours,
            mask: Mask::B,
            period: conv.weight.dims()[0],
        }
    }
}
