//! The Gated PixelCNN of van den Oord et al. 2016, *Conditional Image Generation with PixelCNN
//! Decoders* (arXiv 1606.05328), Section 2.2 and Figure 2.
//!
//! Each layer has two stacks (Figure 2). The vertical stack is one ⌈k/2⌉×k convolution of the
//! layer's vertical input into the 2C gate pre-activations: at row i it covers rows i−⌊k/2⌋…i and
//! all k columns, so it sees everything above and the current row, and its gated output is the
//! next layer's vertical input. What it passes to the horizontal stack is the same
//! pre-activations shifted down one row, through a 1×1 convolution (the "link"), so the
//! horizontal stack only ever receives rows strictly above. The horizontal stack is a
//! 1×(⌊k/2⌋+1) convolution over the pixels to the left in the current row (and, after the first
//! layer, the current position, whose features already depend only on earlier pixels); the link
//! is added to it before the gate `tanh(a) ⊙ σ(b)`, and a 1×1 convolution of the gate gives the
//! skip output, another the horizontal output, plus the layer's input after the first layer
//! (the residual). Because the vertical stack's receptive field widens with every layer in the
//! rows above, nothing above is out of reach: there is no blind spot. Both stacks are built from
//! convolutions padded on one side only, never from masked weights.
//!
//! The layers work on channels-last maps `[B, H, W, C]`, where every one of these convolutions
//! is a matrix product (see `ops::channels_last`).
//!
//! For colour images the horizontal stack sees the pixels strictly to the left through its
//! convolution, and the current pixel through a separate 1×1 convolution masked by colour group
//! (see [`super::colour`]), as are the 1×1 convolutions that mix groups after the gate.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::colour::{ColourMask, Mask};
use super::head::OutputHead;
use super::spatial::Deconvolution;
use super::{PixelCnnConfig, conv1x1, input_to_float};
use crate::ops::channels_last::{
    pointwise, pointwise_matrix, pointwise_product, to_channels_last, window_matrix, window_product,
};
use crate::ops::gate::gate;

/// Gated PixelCNN: a stack of [`GatedLayer`]s whose skip outputs are summed into an
/// output head that predicts K logits per pixel.
#[derive(Module, Debug)]
pub struct GatedPixelCnn {
    pub(crate) layers: Vec<GatedLayer>,
    /// m of Section 2.3, for location-dependent conditioning.
    pub(crate) condition_map: Option<Deconvolution>,
    pub(crate) head: OutputHead,
    pub(crate) levels: usize,
}

impl GatedPixelCnn {
    /// Builds the model described by `config` with freshly initialised weights on `device`.
    pub fn new(config: &PixelCnnConfig, device: &Device) -> Self {
        let layers = (0..config.layers)
            .map(|index| {
                let first = index == 0;
                GatedLayerConfig {
                    in_channels: if first {
                        config.input_channels
                    } else {
                        config.channels
                    },
                    channels: config.channels,
                    kernel: if first {
                        config.first_kernel
                    } else {
                        config.kernel
                    },
                    first,
                    condition_dim: match config.spatial {
                        Some(map) => Some(map.channels),
                        None => config.conditioning.dim(),
                    },
                    spatial: config.spatial.is_some(),
                    colours: config.input_channels,
                }
                .init(device)
            })
            .collect();
        let condition_map = config
            .spatial
            .zip(config.conditioning.dim())
            .map(|(map, dim)| Deconvolution::new(dim, map, device));
        Self {
            layers,
            condition_map,
            head: OutputHead::new(config, device),
            levels: config.levels,
        }
    }

    /// Logits `[B, C, K, H, W]` for images of levels `[B, C, H, W]` (values in `0..K`) and, for
    /// a conditional model, the conditioning vectors h `[B, d]`.
    pub fn forward(&self, levels: Tensor<4, Int>, condition: Option<&Tensor<2>>) -> Tensor<5> {
        let x = self.input(levels);
        let [_, height, width, _] = x.dims();
        let (mut vertical, mut horizontal) = (x.clone(), x);
        let condition = condition.map(|h| self.condition(h, height, width));
        let mut skips: Option<Tensor<4>> = None;
        for layer in &self.layers {
            let (v, h, skip) = layer.forward(vertical, horizontal, condition.as_ref());
            vertical = v;
            horizontal = h;
            skips = Some(match skips {
                Some(sum) => sum + skip,
                None => skip,
            });
        }
        self.head
            .forward(skips.expect("a Gated PixelCNN has at least one layer"))
    }

    /// The network input of images of levels `[B, C, H, W]`: channels-last intensities.
    pub(crate) fn input(&self, levels: Tensor<4, Int>) -> Tensor<4> {
        to_channels_last(input_to_float(levels, self.levels))
    }

    /// What the layers are conditioned on for the vectors h `[B, d]` and images of
    /// `height × width`: h itself, or the map s = m(h).
    pub(crate) fn condition(&self, h: &Tensor<2>, height: usize, width: usize) -> Condition {
        match &self.condition_map {
            // The map covers the whole image; an input of its top rows gets the top of the map.
            Some(map) => Condition::Map(to_channels_last(
                map.forward(h.clone())
                    .narrow(2, 0, height)
                    .narrow(3, 0, width),
            )),
            None => Condition::Vector(h.clone()),
        }
    }
}

/// Shape of one [`GatedLayer`].
#[derive(Debug, Clone)]
pub struct GatedLayerConfig {
    in_channels: usize,
    channels: usize,
    kernel: usize,
    /// The first layer must not see the current pixel ("mask A") and has no residual.
    first: bool,
    /// Size of the conditioning vector h, or channels of the map s, if any.
    condition_dim: Option<usize>,
    /// Condition through a map s (1×1 convolutions) rather than a vector h (linear layer).
    spatial: bool,
    /// Colour channels C of the image: feature channels form C groups.
    colours: usize,
}

impl GatedLayerConfig {
    /// An unconditional grayscale layer: `in_channels` inputs, `channels` features, a
    /// `kernel`-wide window; the `first` layer does not see the current pixel.
    pub fn new(in_channels: usize, channels: usize, kernel: usize, first: bool) -> Self {
        Self {
            in_channels,
            channels,
            kernel,
            first,
            condition_dim: None,
            spatial: false,
            colours: 1,
        }
    }

    /// The layer with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> GatedLayer {
        let (c_in, c, k) = (self.in_channels, self.channels, self.kernel);
        let p = k / 2;
        let colour = self.colours > 1;
        // With colours, the current pixel comes through `current_pixel` instead.
        let sees_current = usize::from(!self.first && !colour);
        GatedLayer {
            // Padding p+1 rows above and none below gives H+1 output rows; output row r covers
            // input rows r-p-1..=r-1. Rows 1..=H are the vertical stack (row i sees rows
            // i-p..=i); rows 0..H are the same pre-activations shifted down one row for the link
            // into the horizontal stack (row i sees only rows strictly above i).
            vertical: Conv2dConfig::new([c_in, 2 * c], [p + 1, k])
                .with_padding(PaddingConfig2d::Explicit(p + 1, p, 0, p))
                .init(device),
            vertical_to_horizontal: conv1x1(2 * c, 2 * c, device),
            // Padding on the left only: output column j covers input columns j-p..=j. The first
            // layer pads one more column and drops the last output, so it covers j-p-1..=j-1.
            horizontal: Conv2dConfig::new([c_in, 2 * c], [1, p + 1])
                .with_padding(PaddingConfig2d::Explicit(0, p + 1 - sees_current, 0, 0))
                .init(device),
            current_pixel: colour.then(|| conv1x1(c_in, 2 * c, device)),
            skip: conv1x1(c, c, device),
            horizontal_output: conv1x1(c, c, device),
            condition: self
                .condition_dim
                .filter(|_| !self.spatial)
                .map(|d| LinearConfig::new(d, 4 * c).with_bias(false).init(device)),
            condition_map: self.condition_dim.filter(|_| self.spatial).map(|s| {
                Conv2dConfig::new([s, 4 * c], [1, 1])
                    .with_bias(false)
                    .init(device)
            }),
            first: self.first,
            colours: self.colours,
        }
    }
}

/// One gated layer (Figure 2 of the paper): vertical stack, horizontal stack, the v→h link, the
/// gated activation, a skip output and, after the first layer, a residual connection.
#[derive(Module, Debug)]
pub struct GatedLayer {
    /// The vertical stack's ⌈k/2⌉×k convolution into the 2C gate pre-activations.
    pub(crate) vertical: Conv2d,
    /// The 1×1 link of the shifted vertical pre-activations into the horizontal stack.
    pub(crate) vertical_to_horizontal: Conv2d,
    pub(crate) horizontal: Conv2d,
    /// Colour images only: the current pixel's contribution to the horizontal stack, masked so
    /// that each colour group sees only earlier sub-pixels (mask A) or groups (mask B).
    pub(crate) current_pixel: Option<Conv2d>,
    pub(crate) skip: Conv2d,
    pub(crate) horizontal_output: Conv2d,
    /// `V h` of Section 2.3: the conditioning vector's contribution to the pre-activations of
    /// the vertical stack (first 2C outputs) and of the horizontal stack (last 2C).
    pub(crate) condition: Option<Linear>,
    /// `V * s`: the same for a condition map s, as a 1×1 convolution.
    pub(crate) condition_map: Option<Conv2d>,
    pub(crate) first: bool,
    pub(crate) colours: usize,
}

/// What a layer is conditioned on: h itself, or the map s = m(h) (channels-last).
pub enum Condition {
    Vector(Tensor<2>),
    Map(Tensor<4>),
}

impl GatedLayer {
    /// Returns the vertical-stack output, the horizontal-stack output and the skip output, all
    /// channels-last `[B, H, W, C]`, for channels-last inputs.
    ///
    /// It is written with the step functions below, which the cached sampler
    /// (`crate::sample::cached`) applies to the few rows and positions a new pixel changes.
    pub fn forward(
        &self,
        vertical_in: Tensor<4>,
        horizontal_in: Tensor<4>,
        condition: Option<&Condition>,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [batch, height, width, _] = vertical_in.dims();
        let matrices = self.matrices();
        // Output row r covers rows r-p-1..=r-1: rows 1..=H are the vertical stack (row i sees
        // rows i-p..=i), rows 0..H the same shifted down one row for the link.
        let padded = self.vertical_preactivations(&matrices, vertical_in, -1, height + 1);
        // The link of all H+1 rows, then its rows 0..H: the product reads `padded` in place,
        // where rows 0..H of every image would first be copied out.
        let mut link = self.link(&matrices, padded.clone()).narrow(1, 0, height);
        let mut vertical = padded.narrow(1, 1, height);
        if let Some([on_vertical, on_horizontal]) = self.condition_terms(condition, batch) {
            vertical = vertical + on_vertical;
            link = link + on_horizontal;
        }
        let vertical_out = gate(vertical);
        let horizontal = self.horizontal_preactivations(&matrices, horizontal_in.clone(), 0, width);
        let (horizontal_out, skip) =
            self.horizontal_outputs(&matrices, horizontal, link, horizontal_in);
        (vertical_out, horizontal_out, skip)
    }

    /// Half the kernel width, p = ⌊k/2⌋.
    pub(crate) fn half_kernel(&self) -> usize {
        self.vertical.weight.dims()[3] / 2
    }

    /// The weights of the layer's convolutions as the matrices of their products, colour
    /// masks applied: made once per forward pass, or once for a whole draw by the sampler.
    pub(crate) fn matrices(&self) -> LayerMatrices {
        let mask = self.colour_mask(Mask::B);
        let current_mask = self.colour_mask(if self.first { Mask::A } else { Mask::B });
        LayerMatrices {
            vertical: window_matrix(&self.vertical),
            link: pointwise_matrix(&self.vertical_to_horizontal, None),
            horizontal: window_matrix(&self.horizontal),
            current_pixel: self
                .current_pixel
                .as_ref()
                .map(|conv| pointwise_matrix(conv, current_mask.for_conv(conv))),
            skip: pointwise_matrix(&self.skip, mask.for_conv(&self.skip)),
            horizontal_output: pointwise_matrix(
                &self.horizontal_output,
                mask.for_conv(&self.horizontal_output),
            ),
        }
    }

    /// The vertical convolution's 2C pre-activations `[B, rows, W, 2C]` over the vertical input
    /// `[B, H, W, C_in]`: output row r covers input rows `r + last - p ..= r + last` (zero
    /// outside the map). With `last = -1` output row r is the link's pre-activations for row r
    /// (rows strictly above it), and row r + 1 the vertical stack's at row r.
    pub(crate) fn vertical_preactivations(
        &self,
        matrices: &LayerMatrices,
        vertical_in: Tensor<4>,
        last: isize,
        rows: usize,
    ) -> Tensor<4> {
        let width = vertical_in.dims()[2];
        let p = self.half_kernel() as isize;
        let matrix = matrices.vertical.clone();
        let offset = (last - p, -p);
        window_product(&self.vertical, matrix, vertical_in, offset, (rows, width))
    }

    /// The 1×1 link of vertical pre-activations into the horizontal stack.
    pub(crate) fn link(&self, matrices: &LayerMatrices, preactivations: Tensor<4>) -> Tensor<4> {
        let matrix = matrices.link.clone();
        pointwise_product(&self.vertical_to_horizontal, matrix, preactivations)
    }

    /// The horizontal stack's 2C pre-activations (before the link) `[B, rows, columns, 2C]` at
    /// `columns` columns from `first_column` on, for its input `[B, rows, W, C_in]`: column j
    /// covers columns j-p..=j, or j-p-1..=j-1 where the current pixel is not seen (the first
    /// layer), plus, for colour images, the current pixel through its masked 1×1 convolution.
    pub(crate) fn horizontal_preactivations(
        &self,
        matrices: &LayerMatrices,
        horizontal_in: Tensor<4>,
        first_column: usize,
        columns: usize,
    ) -> Tensor<4> {
        let [_, rows, width, _] = horizontal_in.dims();
        let p = self.half_kernel() as isize;
        let sees_current = !self.first && self.current_pixel.is_none();
        let offset = first_column as isize - p - 1 + isize::from(sees_current);
        let horizontal = window_product(
            &self.horizontal,
            matrices.horizontal.clone(),
            horizontal_in.clone(),
            (0, offset),
            (rows, columns),
        );
        let (Some(current), Some(matrix)) = (&self.current_pixel, &matrices.current_pixel) else {
            return horizontal;
        };
        let here = if columns == width {
            horizontal_in
        } else {
            horizontal_in.narrow(2, first_column, columns)
        };
        horizontal + pointwise_product(current, matrix.clone(), here)
    }

    /// The gate of the horizontal pre-activations plus the link (conditioning included), and
    /// from it the horizontal output (plus `horizontal_in`, the residual, after the first layer)
    /// and the skip output.
    pub(crate) fn horizontal_outputs(
        &self,
        matrices: &LayerMatrices,
        horizontal: Tensor<4>,
        link: Tensor<4>,
        horizontal_in: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let gated = gate(horizontal + link);
        let skip = pointwise_product(&self.skip, matrices.skip.clone(), gated.clone());
        let mut horizontal_out = pointwise_product(
            &self.horizontal_output,
            matrices.horizontal_output.clone(),
            gated,
        );
        if !self.first {
            horizontal_out = horizontal_out + horizontal_in;
        }
        (horizontal_out, skip)
    }
}

/// A [`GatedLayer`]'s convolution weights as the matrices of their products
/// (`crate::ops::channels_last`), colour masks applied.
pub(crate) struct LayerMatrices {
    vertical: Tensor<2>,
    link: Tensor<2>,
    horizontal: Tensor<2>,
    current_pixel: Option<Tensor<2>>,
    skip: Tensor<2>,
    horizontal_output: Tensor<2>,
}

impl GatedLayer {
    /// The colour mask of a 1×1 convolution into the layer's C feature channels, or into the
    /// 2C pre-activations of a gate (each half split into the same groups).
    pub(crate) fn colour_mask(&self, mask: Mask) -> ColourMask {
        ColourMask {
            colours: self.colours,
            mask,
            period: self.skip.weight.dims()[0],
        }
    }

    /// `V h` as `[B, 1, 1, 2C]` each or `V * s` as `[B, H, W, 2C]` each: the terms of the
    /// vertical stack's pre-activations, then those of the horizontal stack's.
    pub(crate) fn condition_terms(
        &self,
        condition: Option<&Condition>,
        batch: usize,
    ) -> Option<[Tensor<4>; 2]> {
        let terms = match (condition?, &self.condition, &self.condition_map) {
            (Condition::Vector(h), Some(linear), _) => {
                let outputs = linear.weight.dims()[1];
                linear.forward(h.clone()).reshape([batch, 1, 1, outputs])
            }
            (Condition::Map(s), _, Some(conv)) => pointwise(conv, s.clone(), None),
            _ => return None,
        };
        Some(
            terms
                .chunk(2, 3)
                .try_into()
                .expect("4C conditioning outputs"),
        )
    }
}
