//! Location-dependent conditioning (arXiv 1606.05328, Section 2.3): the conditioning vector h
//! is mapped by a deconvolutional network to a feature map s = m(h) with the image's spatial
//! size, and every gated layer adds the 1×1 convolutions `V_f * s` and `V_g * s` to its
//! pre-activations, so that the condition can say *where* things go.

use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Shape of the map s = m(h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpatialMap {
    /// Channels of s.
    pub channels: usize,
    /// Size of the images, and so of s.
    pub height: usize,
    pub width: usize,
}

/// Each transposed convolution doubles the resolution.
const UPSAMPLINGS: usize = 2;

impl SpatialMap {
    /// Resolution of the map before the transposed convolutions.
    fn base(&self) -> [usize; 2] {
        let factor = 1 << UPSAMPLINGS;
        [self.height.div_ceil(factor), self.width.div_ceil(factor)]
    }
}

/// m: a linear layer onto a coarse map, then transposed convolutions that double its size,
/// cropped to the image size.
#[derive(Module, Debug)]
pub struct Deconvolution {
    project: Linear,
    upsample: Vec<ConvTranspose2d>,
    channels: usize,
    base: [usize; 2],
    size: [usize; 2],
}

impl Deconvolution {
    pub fn new(condition_dim: usize, map: SpatialMap, device: &Device) -> Self {
        let base = map.base();
        let channels = map.channels;
        Self {
            project: LinearConfig::new(condition_dim, channels * base[0] * base[1]).init(device),
            upsample: (0..UPSAMPLINGS)
                .map(|_| {
                    ConvTranspose2dConfig::new([channels, channels], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .init(device)
                })
                .collect(),
            channels,
            base,
            size: [map.height, map.width],
        }
    }

    /// s = m(h): `[B, S, H, W]` for h `[B, d]`.
    pub fn forward(&self, h: Tensor<2>) -> Tensor<4> {
        let [batch, _] = h.dims();
        let mut map = relu(self.project.forward(h)).reshape([
            batch,
            self.channels,
            self.base[0],
            self.base[1],
        ]);
        for (index, layer) in self.upsample.iter().enumerate() {
            map = layer.forward(map);
            if index + 1 < self.upsample.len() {
                map = relu(map);
            }
        }
        map.narrow(2, 0, self.size[0]).narrow(3, 0, self.size[1])
    }
}
