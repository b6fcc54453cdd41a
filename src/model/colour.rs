//! Colour sub-pixels in R→G→B order (arXiv 1601.06759, Section 3.4 "Masked Convolution";
//! arXiv 1606.05328, Section 2.1): each pixel's distribution factorises as
//! `p(R | x<i) · p(G | x<i, R) · p(B | x<i, R, G)`.
//!
//! Feature channels are split into C contiguous groups, one per colour. Only connections *at
//! the current pixel* need restricting — the vertical stack sees whole pixels above, and the
//! horizontal stack whole pixels to the left. At the current pixel, group c may see input
//! colours `< c` in the first layer (mask A) and feature groups `≤ c` after it (mask B). With one
//! colour every mask is all ones (or, for mask A, all zeros), and nothing is masked.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// The colour group of `channel` among `channels` feature channels split into `colours` groups.
pub fn group(channel: usize, channels: usize, colours: usize) -> usize {
    channel * colours / channels
}

/// Which same-pixel connections a mask keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Group c sees input groups `< c`: the first layer must not see the sub-pixel it predicts.
    A,
    /// Group c sees input groups `≤ c`.
    B,
}

/// The group layout of a 1×1 convolution's output channels: the two halves of a gate's
/// pre-activations are each split into groups (`period` = half the outputs); otherwise
/// `period` is the number of outputs.
#[derive(Debug, Clone, Copy)]
pub struct ColourMask {
    pub colours: usize,
    pub mask: Mask,
    pub period: usize,
}

impl ColourMask {
    /// Whether output channel `out` may see input channel `input` of `inputs`.
    pub fn allows(&self, out: usize, input: usize, inputs: usize) -> bool {
        let out_group = group(out % self.period, self.period, self.colours);
        let in_group = group(input, inputs, self.colours);
        match self.mask {
            Mask::A => in_group < out_group,
            Mask::B => in_group <= out_group,
        }
    }

    /// The mask of the 1×1 convolution `conv` as a matrix `[out, in]` of ones and zeros, or
    /// `None` for one colour, where nothing is masked.
    pub fn for_conv(&self, conv: &Conv2d) -> Option<Tensor<2>> {
        let [outputs, inputs, _, _] = conv.weight.dims();
        (self.colours > 1).then(|| self.weights(outputs, inputs, &conv.weight.device()))
    }

    /// The mask as a matrix `[out, in]` of ones and zeros.
    pub fn weights(&self, outputs: usize, inputs: usize, device: &Device) -> Tensor<2> {
        let values: Vec<f32> = (0..outputs)
            .flat_map(|o| (0..inputs).map(move |i| f32::from(u8::from(self.allows(o, i, inputs)))))
            .collect();
        Tensor::from_data(TensorData::new(values, [outputs, inputs]), device)
    }
}
