//! Cached incremental sampling, after Ramachandran et al. 2017, *Fast Generation for
//! Convolutional Autoregressive Models* (arXiv 1704.06001), batched across images and written
//! over the model's own layers.
//!
//! The naive sampler runs the whole network once per pixel. Here each layer keeps what later
//! pixels need and each new pixel costs only the work it changes. For the Gated PixelCNN
//! (arXiv 1606.05328, Section 2.2 and Figure 2) a layer keeps the last p+1 rows of its vertical
//! input, the link into the current row's horizontal stack and the current row of its
//! horizontal output: the horizontal stacks advance once per pixel, the vertical stacks once
//! per row. For the masked PixelCNN (arXiv 1601.06759, Section 3.4) each layer keeps its input
//! map and computes its output at the new position only, from the k×k window around it.
//!
//! There is no second copy of the network's arithmetic, and no CPU-only inner loop: every step
//! calls the functions the training forward pass is itself written with — the gated layer's
//! vertical and horizontal pre-activations, link and gated outputs over its weight matrices
//! (`GatedLayer::matrices`), the output head, the masked convolution at one position
//! ([`MaskedConv2d::at_centre`]) — on channels-last tensors `[B, rows, columns, C]` of the whole
//! batch on the model's device. Each step is so one matrix-matrix product per convolution over
//! the batch (over the batch and a row's positions for the vertical stacks), on any backend the
//! model runs on; on the CPU these are the products of `crate::ops` (gemm), as in training. The
//! weight matrices are made once per draw, and a row's many small operations run on one thread
//! of the CPU backend's pool (see [`super::Generation`]), which is what makes this fast with the
//! tensors of a few pixels. The tests hold the logits to the full forward pass within 1e-4.
//!
//! For colour images each pixel is visited once per channel (R, G, B): the horizontal stacks at
//! that pixel are recomputed with the sub-pixels drawn so far, which the colour masks keep from
//! seeing later ones.
//!
//! [`MaskedConv2d::at_centre`]: crate::model::masked::MaskedConv2d

use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{Choose, RowSampler};
use crate::model::gated::{Condition, GatedLayer, LayerMatrices};
use crate::model::{GatedPixelCnn, MaskedPixelCnn};
use crate::ops::channels_last::to_channels_last;

/// The pixels of images `[B][C·H·W]` at `rows` and `columns` as levels `[B, C, rows, columns]`.
fn levels_tensor(
    images: &[Vec<u8>],
    (colours, height, width): (usize, usize, usize),
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
    device: &Device,
) -> Tensor<4, Int> {
    let plane = height * width;
    let mut data = Vec::with_capacity(images.len() * colours * rows.len() * columns.len());
    for image in images {
        for channel in image.chunks(plane) {
            for row in rows.clone() {
                let start = row * width;
                data.extend(
                    channel[start + columns.start..start + columns.end]
                        .iter()
                        .map(|&l| i64::from(l)),
                );
            }
        }
    }
    let shape = [images.len(), colours, rows.len(), columns.len()];
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// The logits `[B][K]` of `channel` from the head's output `[B, C, K, 1, 1]`.
fn channel_logits(logits: &Tensor<5>, channel: usize) -> Vec<f32> {
    logits
        .clone()
        .narrow(1, channel, 1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("logits are floats")
}

/// Takes a tensor out of an `Option` slot to update it in place (a tensor that nothing else
/// holds is written without a copy).
fn take(slot: &mut Option<Tensor<4>>) -> Tensor<4> {
    slot.take().expect("the state is in place between steps")
}

/// One gated layer's state over a batch of images being generated.
struct LayerState {
    /// The vertical input of the last p+1 rows `[B, p+1, W, C_in]` (zero above the image).
    window: Tensor<4>,
    /// The link, conditioning included, into the current row's horizontal stack `[B, 1, W, 2C]`.
    link: Tensor<4>,
    /// The current row's horizontal output so far `[B, 1, W, C]`.
    horizontal_out: Option<Tensor<4>>,
    /// The layer's weights as the matrices of its products, made once.
    matrices: LayerMatrices,
    /// The conditioning terms of the vertical and the horizontal pre-activations,
    /// `[B, 1, 1, 2C]` each for a vector, `[B, H, W, 2C]` for a map.
    condition: Option<[Tensor<4>; 2]>,
}

/// The conditioning terms `[B, 1|H, 1|W, 2C]` of image row `row`.
fn at_row(terms: &Tensor<4>, row: usize) -> Tensor<4> {
    if terms.dims()[1] > 1 {
        terms.clone().narrow(1, row, 1)
    } else {
        terms.clone()
    }
}

impl LayerState {
    fn new(layer: &GatedLayer, batch: usize, width: usize, condition: Option<&Condition>) -> Self {
        let device = layer.vertical.weight.val().device();
        let [_, in_channels, _, _] = layer.vertical.weight.dims();
        let channels = layer.skip.weight.dims()[0];
        let rows = layer.half_kernel() + 1;
        let mut state = Self {
            window: Tensor::zeros([batch, rows, width, in_channels], &device),
            link: Tensor::zeros([batch, 1, width, 2 * channels], &device),
            horizontal_out: Some(Tensor::zeros([batch, 1, width, channels], &device)),
            matrices: layer.matrices(),
            condition: layer.condition_terms(condition, batch),
        };
        // Row 0's link sees only the padding above the image.
        state.link = state.next_link(layer, state.preactivations(layer), 0);
        state
    }

    /// The vertical convolution's pre-activations `[B, 1, W, 2C]` of the window's last row.
    fn preactivations(&self, layer: &GatedLayer) -> Tensor<4> {
        let p = layer.half_kernel();
        layer.vertical_preactivations(&self.matrices, self.window.clone(), p as isize, 1)
    }

    /// The link into row `row` from the pre-activations of the row above it.
    fn next_link(&self, layer: &GatedLayer, above: Tensor<4>, row: usize) -> Tensor<4> {
        let link = layer.link(&self.matrices, above);
        match &self.condition {
            Some([_, on_horizontal]) => link + at_row(on_horizontal, row),
            None => link,
        }
    }

    /// Adds row `row` of the layer's vertical input `[B, 1, W, C_in]` and returns the row of its
    /// vertical output `[B, 1, W, C]`; prepares the link into row `row + 1` if `link_next`.
    fn finish_row(
        &mut self,
        layer: &GatedLayer,
        input: Tensor<4>,
        row: usize,
        link_next: bool,
    ) -> Tensor<4> {
        let p = layer.half_kernel();
        self.window = if p == 0 {
            input
        } else {
            Tensor::cat(vec![self.window.clone().narrow(1, 1, p), input], 1)
        };
        let mut pre = self.preactivations(layer);
        if link_next {
            self.link = self.next_link(layer, pre.clone(), row + 1);
        }
        if let Some([on_vertical, _]) = &self.condition {
            pre = pre + at_row(on_vertical, row);
        }
        crate::ops::gate::gate(pre)
    }

    /// The horizontal stack at column `x` of the current row, whose horizontal input is `input`
    /// `[B, 1, W, C_in]`: stores its output and returns the skip output `[B, 1, 1, C]`.
    fn pixel(&mut self, layer: &GatedLayer, input: Tensor<4>, x: usize) -> Tensor<4> {
        let matrices = &self.matrices;
        let pre = layer.horizontal_preactivations(matrices, input.clone(), x, 1);
        let link = self.link.clone().narrow(2, x, 1);
        let (out, skip) = layer.horizontal_outputs(matrices, pre, link, input.narrow(2, x, 1));
        let [batch, _, _, channels] = out.dims();
        let row = take(&mut self.horizontal_out);
        self.horizontal_out = Some(row.slice_assign([0..batch, 0..1, x..x + 1, 0..channels], out));
        skip
    }
}

/// Runs a Gated PixelCNN row by row over a batch of images, with caches.
pub struct CachedGatedPixelCnn<'a> {
    model: &'a GatedPixelCnn,
    layers: Vec<LayerState>,
    /// `(colours, height, width)` of the images.
    shape: (usize, usize, usize),
    device: Device,
}

impl<'a> CachedGatedPixelCnn<'a> {
    /// Caches for `batch` images of `height × width` on the model's device; a conditional model
    /// needs `condition`, one vector h per image `[B, d]`.
    pub fn new(
        model: &'a GatedPixelCnn,
        batch: usize,
        height: usize,
        width: usize,
        condition: Option<&Tensor<2>>,
    ) -> Self {
        let condition = condition.map(|h| model.condition(h, height, width));
        Self {
            model,
            layers: model
                .layers
                .iter()
                .map(|layer| LayerState::new(layer, batch, width, condition.as_ref()))
                .collect(),
            shape: (model.head.colours, height, width),
            device: model.head.hidden.weight.val().device(),
        }
    }

    /// The network input `[B, 1, columns, C]` of the given pixels of `row` of `images`.
    fn input(&self, images: &[Vec<u8>], row: usize, columns: std::ops::Range<usize>) -> Tensor<4> {
        let levels = levels_tensor(images, self.shape, row..row + 1, columns, &self.device);
        self.model.input(levels)
    }

    /// The horizontal stacks at column `x`, given the current row's input `[B, 1, W, C]`: the
    /// sum of the layers' skip outputs `[B, 1, 1, C]`.
    fn pixel(&mut self, input: &Tensor<4>, x: usize) -> Tensor<4> {
        let mut skips: Option<Tensor<4>> = None;
        let mut input = input.clone();
        for (layer, state) in self.model.layers.iter().zip(&mut self.layers) {
            let skip = state.pixel(layer, input, x);
            input = state.horizontal_out.clone().expect("just stored");
            skips = Some(match skips {
                Some(sum) => sum + skip,
                None => skip,
            });
        }
        skips.expect("a Gated PixelCNN has at least one layer")
    }

    /// Advances every vertical stack by the completed row `row`, whose input is `input`.
    fn finish_row(&mut self, input: Tensor<4>, row: usize) {
        let link_next = row + 1 < self.shape.1;
        let mut input = input;
        for (layer, state) in self.model.layers.iter().zip(&mut self.layers) {
            input = state.finish_row(layer, input, row, link_next);
        }
    }
}

impl RowSampler for CachedGatedPixelCnn<'_> {
    fn row(&mut self, row: usize, images: &mut [Vec<u8>], first_pixel: usize, choose: &mut Choose) {
        let (colours, _, width) = self.shape;
        let start = row * width;
        let mut input = self.input(images, row, 0..width);
        // A row given in full needs no horizontal stack: nothing below reads it.
        if start + width > first_pixel {
            for x in 0..width {
                if start + x < first_pixel {
                    self.pixel(&input, x);
                    continue;
                }
                for channel in 0..colours {
                    let skips = self.pixel(&input, x);
                    let logits = self.model.head.forward(skips);
                    choose(
                        start + x,
                        channel,
                        &channel_logits(&logits, channel),
                        images,
                    );
                    let drawn = self.input(images, row, x..x + 1);
                    let batch = images.len();
                    input = input.slice_assign([0..batch, 0..1, x..x + 1, 0..colours], drawn);
                }
            }
        }
        self.finish_row(input, row);
    }
}

/// Runs a masked PixelCNN pixel by pixel over a batch of images, with each layer's input map.
pub struct CachedMaskedPixelCnn<'a> {
    model: &'a MaskedPixelCnn,
    /// Each layer's input `[B, C, H + 2p, W + 2p]`, zero-padded by its half kernel p: the
    /// images' intensities for the first, the ReLU of the features before it for the others.
    inputs: Vec<Option<Tensor<4>>>,
    height: usize,
    width: usize,
    device: Device,
}

impl<'a> CachedMaskedPixelCnn<'a> {
    /// Caches for `batch` grayscale images of `height × width` on the model's device.
    pub fn new(model: &'a MaskedPixelCnn, batch: usize, height: usize, width: usize) -> Self {
        let device = model.head.hidden.weight.val().device();
        let inputs = model
            .layers
            .iter()
            .map(|layer| {
                let [_, channels, _, _] = layer.conv.weight.dims();
                let pad = 2 * (layer.kernel() / 2);
                Some(Tensor::zeros(
                    [batch, channels, height + pad, width + pad],
                    &device,
                ))
            })
            .collect();
        Self {
            model,
            inputs,
            height,
            width,
            device,
        }
    }

    /// Writes `values` `[B, C, 1, 1]` at pixel `(row, x)` of layer `index`'s input.
    fn write(&mut self, index: usize, (row, x): (usize, usize), values: Tensor<4>) {
        let p = self.model.layers[index].kernel() / 2;
        let [batch, channels, _, _] = values.dims();
        let map = take(&mut self.inputs[index]);
        let (r, c) = (row + p, x + p);
        self.inputs[index] =
            Some(map.slice_assign([0..batch, 0..channels, r..r + 1, c..c + 1], values));
    }

    /// Layer `index`'s output `[B, C, 1, 1]` at pixel `(row, x)`.
    fn output(&self, index: usize, (row, x): (usize, usize)) -> Tensor<4> {
        let layer = &self.model.layers[index];
        let k = layer.kernel();
        let map = self.inputs[index].as_ref().expect("in place between steps");
        layer.at_centre(map.clone().narrow(2, row, k).narrow(3, x, k))
    }

    /// The features `[B, C, 1, 1]` of the last layer at pixel `(row, x)`, writing those of the
    /// earlier layers into the later layers' inputs.
    fn features(&mut self, at: (usize, usize)) -> Tensor<4> {
        let mut features = self.output(0, at);
        for index in 1..self.model.layers.len() {
            self.write(index, at, relu(features.clone()));
            let output = self.output(index, at);
            features = self.model.layers[index].residual(features, output);
        }
        features
    }
}

impl RowSampler for CachedMaskedPixelCnn<'_> {
    fn row(&mut self, row: usize, images: &mut [Vec<u8>], first_pixel: usize, choose: &mut Choose) {
        let (height, width) = (self.height, self.width);
        for x in 0..width {
            let pixel = row * width + x;
            let features = self.features((row, x));
            if pixel >= first_pixel {
                let logits = self.model.head.forward(to_channels_last(features));
                choose(pixel, 0, &channel_logits(&logits, 0), images);
            }
            let shape = (1, height, width);
            let levels = levels_tensor(images, shape, row..row + 1, x..x + 1, &self.device);
            self.write(0, (row, x), self.model.input(levels));
        }
    }
}
