//! The output head shared by both architectures: ReLU → 1×1 conv → ReLU → 1×1 conv to K logits
//! per sub-pixel, the softmax over intensity levels of PixelCNN (arXiv 1601.06759, Section 2.2).
//! For colour images both convolutions keep each colour group's logits to groups `≤` it
//! (mask B of Section 3.4).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::colour::{ColourMask, Mask, pointwise};
use super::{PixelCnnConfig, conv1x1};

/// Maps features `[B, F, H, W]` to logits `[B, C·K, H, W]`, colour after colour.
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

    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let hidden = pointwise(&self.hidden, relu(features), Some(self.mask(&self.hidden)));
        pointwise(&self.logits, relu(hidden), Some(self.mask(&self.logits)))
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
