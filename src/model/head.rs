//! The output head shared by both architectures: ReLU → 1×1 conv → ReLU → 1×1 conv to K logits
//! per pixel, the softmax over intensity levels of PixelCNN (arXiv 1601.06759, Section 2.2).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{PixelCnnConfig, conv1x1};

/// Maps features `[B, C, H, W]` to logits `[B, K, H, W]`.
#[derive(Module, Debug)]
pub struct OutputHead {
    pub(crate) hidden: Conv2d,
    pub(crate) logits: Conv2d,
}

impl OutputHead {
    pub fn new(config: &PixelCnnConfig, device: &Device) -> Self {
        Self {
            hidden: conv1x1(config.channels, config.head_channels, device),
            logits: conv1x1(config.head_channels, config.levels, device),
        }
    }

    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let hidden = relu(self.hidden.forward(relu(features)));
        self.logits.forward(hidden)
    }
}
