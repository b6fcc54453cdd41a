//! Cached incremental sampling for the Gated PixelCNN, after Ramachandran et al. 2017, *Fast
//! Generation for Convolutional Autoregressive Models* (arXiv 1704.06001).
//!
//! The naive sampler runs the whole network once per pixel. Here each layer keeps what later
//! pixels need — the last rows of its vertical stack and the current row of its horizontal
//! stack — and each new pixel costs only the work it changes: the vertical stacks advance once
//! per row, the horizontal stacks once per pixel. The arithmetic runs directly over the model's
//! weights on the CPU, in the same order of layers and operations as the tensor forward pass.
//!
//! For colour images each pixel is visited once per channel (R, G, B): the horizontal stacks at
//! that pixel are recomputed with the sub-pixels drawn so far, which the colour masks (baked
//! into the weights here) keep from seeing later ones.

use std::collections::VecDeque;

use burn::nn::Linear;
use burn::nn::conv::Conv2d;

use crate::model::GatedPixelCnn;
use crate::model::colour::{ColourMask, Mask};
use crate::model::gated::GatedLayer;

/// A convolution tap or 1×1 convolution as a dense matrix: `output = weight · input`.
#[derive(Debug, Clone)]
struct Dense {
    /// Row-major `[outputs][inputs]`.
    weight: Vec<f32>,
    inputs: usize,
}

impl Dense {
    /// `output += weight · input`.
    fn accumulate(&self, input: &[f32], output: &mut [f32]) {
        for (row, out) in self.weight.chunks_exact(self.inputs).zip(output.iter_mut()) {
            *out += dot(row, input);
        }
    }
}

/// A convolution as one [`Dense`] matrix per kernel position, plus its bias.
#[derive(Debug, Clone)]
struct Taps {
    taps: Vec<Dense>,
    bias: Vec<f32>,
}

impl Taps {
    /// Splits a burn convolution `[out, in, kh, kw]` into its kernel positions, in raster order.
    fn from_conv(conv: &Conv2d) -> Self {
        Self::from_masked_conv(conv, None)
    }

    /// Like [`Taps::from_conv`], with a 1×1 convolution's weights multiplied by a colour mask.
    fn from_masked_conv(conv: &Conv2d, mask: Option<ColourMask>) -> Self {
        let [outputs, inputs, kh, kw] = conv.weight.dims();
        let mut weight: Vec<f32> = to_vec(conv.weight.val());
        if let Some(mask) = mask.filter(|m| m.colours > 1) {
            for (index, w) in weight.iter_mut().enumerate() {
                if !mask.allows(index / inputs, index % inputs, inputs) {
                    *w = 0.0;
                }
            }
        }
        let taps = (0..kh * kw)
            .map(|tap| Dense {
                weight: (0..outputs * inputs)
                    .map(|oi| weight[oi * kh * kw + tap])
                    .collect(),
                inputs,
            })
            .collect();
        let bias = conv
            .bias
            .as_ref()
            .map_or_else(|| vec![0.0; outputs], |b| to_vec(b.val()));
        Self { taps, bias }
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// A 1×1 convolution applied at one position.
    fn apply(&self, input: &[f32], output: &mut [f32]) {
        output.copy_from_slice(&self.bias);
        self.taps[0].accumulate(input, output);
    }
}

fn to_vec<const D: usize>(tensor: burn::Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("weights are floats")
}

/// Dot product with independent partial sums, so that the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `tanh(a) ⊙ σ(b)` for `pre = [a, b]`.
fn gate(pre: &[f32], out: &mut [f32]) {
    let half = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = pre[i].tanh() / (1.0 + (-pre[half + i]).exp());
    }
}

/// One gated layer's weights and its caches for a batch of images being generated.
struct LayerCache {
    in_channels: usize,
    channels: usize,
    first: bool,
    /// Columns between a horizontal tap's input and the current one for tap 0.
    horizontal_offset: usize,
    /// The vertical stack's ⌈k/2⌉×k convolution, kernel rows top first.
    vertical: Taps,
    /// Kernel width k of `vertical`.
    kernel: usize,
    vertical_to_horizontal: Taps,
    horizontal: Taps,
    /// Colour images: the masked 1×1 connection from the current pixel.
    current_pixel: Option<Taps>,
    skip: Taps,
    horizontal_output: Taps,
    /// The vertical stack's input of the last p+1 rows, oldest first, `[B][W][in]` each (zero
    /// rows above the image: the convolution's padding).
    vertical_rows: VecDeque<Vec<f32>>,
    /// The link into the horizontal stack for the current row, `[B][W][2C]`.
    link: Vec<f32>,
    /// The vertical stack's output for the row just finished, `[B][W][C]`.
    vertical_out: Vec<f32>,
    /// The horizontal stack's output for the current row so far, `[B][W][C]`.
    horizontal_out: Vec<f32>,
    /// The conditioning terms added to the pre-activations.
    condition: ConditionTerms,
}

impl LayerCache {
    fn new(layer: &GatedLayer, batch: usize, width: usize, condition: ConditionTerms) -> Self {
        let vertical = Taps::from_conv(&layer.vertical);
        let horizontal = Taps::from_conv(&layer.horizontal);
        let channels = vertical.outputs() / 2;
        let half_kernel = horizontal.taps.len() - 1;
        let in_channels = horizontal.taps[0].inputs;
        let vertical_to_horizontal = Taps::from_conv(&layer.vertical_to_horizontal);
        // Row 0's link sees only the padding above the image: the vertical convolution's bias.
        let mut first_link = vec![0.0; 2 * channels];
        vertical_to_horizontal.apply(&vertical.bias, &mut first_link);
        let colour_mask = |mask| Some(layer.colour_mask(mask));
        let current_mask = colour_mask(if layer.first { Mask::A } else { Mask::B });
        Self {
            in_channels,
            channels,
            first: layer.first,
            horizontal_offset: half_kernel
                + usize::from(layer.first || layer.current_pixel.is_some()),
            vertical,
            kernel: 2 * half_kernel + 1,
            vertical_to_horizontal,
            horizontal,
            current_pixel: layer
                .current_pixel
                .as_ref()
                .map(|conv| Taps::from_masked_conv(conv, current_mask)),
            skip: Taps::from_masked_conv(&layer.skip, colour_mask(Mask::B)),
            horizontal_output: Taps::from_masked_conv(
                &layer.horizontal_output,
                colour_mask(Mask::B),
            ),
            vertical_rows: (0..=half_kernel)
                .map(|_| vec![0.0; batch * width * in_channels])
                .collect(),
            link: first_link.repeat(batch * width),
            vertical_out: vec![0.0; batch * width * channels],
            horizontal_out: vec![0.0; batch * width * channels],
            condition,
        }
    }

    /// The horizontal stack at column `x` of image `b`: adds this layer's skip output to `skips`
    /// and stores its horizontal output. `input` is the layer's horizontal input row `[B][W][in]`.
    fn pixel(
        &mut self,
        input: &[f32],
        b: usize,
        (row, x): (usize, usize),
        width: usize,
        skips: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (c, c_in) = (self.channels, self.in_channels);
        let pre = &mut scratch.pre[..2 * c];
        pre.copy_from_slice(&self.horizontal.bias);
        for (dx, tap) in self.horizontal.taps.iter().enumerate() {
            // Input column x + dx - offset; columns left of the image are padding.
            if let Some(column) = (x + dx).checked_sub(self.horizontal_offset) {
                let at = (b * width + column) * c_in;
                tap.accumulate(&input[at..at + c_in], pre);
            }
        }
        if let Some(current) = &self.current_pixel {
            let at = (b * width + x) * c_in;
            for (value, bias) in pre.iter_mut().zip(&current.bias) {
                *value += bias;
            }
            current.taps[0].accumulate(&input[at..at + c_in], pre);
        }
        let link = &self.link[(b * width + x) * 2 * c..][..2 * c];
        let condition = &self.condition.at(b, row, x)[2 * c..];
        for ((value, l), h) in pre.iter_mut().zip(link).zip(condition) {
            *value += l + h;
        }
        let gated = &mut scratch.gated[..c];
        gate(pre, gated);
        let skip = &mut scratch.skip[..c];
        self.skip.apply(gated, skip);
        for (sum, s) in skips.iter_mut().zip(skip.iter()) {
            *sum += s;
        }
        let out = &mut self.horizontal_out[(b * width + x) * c..][..c];
        self.horizontal_output.apply(gated, out);
        if !self.first {
            let residual = &input[(b * width + x) * c..][..c];
            for (o, r) in out.iter_mut().zip(residual) {
                *o += r;
            }
        }
    }

    /// Advances the vertical stack by the row just completed, whose vertical input is `input`
    /// `[B][W][in]`, and prepares the link for the next row.
    fn finish_row(&mut self, input: &[f32], batch: usize, row_index: usize, width: usize) {
        let (c, c_in, k) = (self.channels, self.in_channels, self.kernel);
        let p = k / 2;
        let mut oldest = self.vertical_rows.pop_front().expect("p+1 cached rows");
        oldest.copy_from_slice(input);
        self.vertical_rows.push_back(oldest);
        let mut pre = vec![0.0; 2 * c];
        for b in 0..batch {
            for x in 0..width {
                pre.copy_from_slice(&self.vertical.bias);
                // Tap (dy, dx) reads cached row dy at column x + dx - p (zero outside the image).
                for (tap_index, tap) in self.vertical.taps.iter().enumerate() {
                    let (dy, dx) = (tap_index / k, tap_index % k);
                    let column = x + dx;
                    if column >= p && column - p < width {
                        let at = (b * width + column - p) * c_in;
                        tap.accumulate(&self.vertical_rows[dy][at..at + c_in], &mut pre);
                    }
                }
                let at = b * width + x;
                let link = &mut self.link[at * 2 * c..][..2 * c];
                self.vertical_to_horizontal.apply(&pre, link);
                let condition = &self.condition.at(b, row_index, x)[..2 * c];
                for (v, h) in pre.iter_mut().zip(condition) {
                    *v += h;
                }
                gate(&pre, &mut self.vertical_out[at * c..][..c]);
            }
        }
    }
}

/// A layer's conditioning terms, 4C values each (2C for the vertical stack, then 2C for the
/// horizontal one): `V h` once per image, or `V * s` per image and position.
struct ConditionTerms {
    values: Vec<f32>,
    /// `Some((height, width))` for a map, `None` for one vector per image.
    positions: Option<(usize, usize)>,
    size: usize,
}

impl ConditionTerms {
    /// No conditioning: zeros.
    fn zeros(batch: usize, size: usize) -> Self {
        Self {
            values: vec![0.0; batch * size],
            positions: None,
            size,
        }
    }

    fn at(&self, b: usize, row: usize, x: usize) -> &[f32] {
        let index = match self.positions {
            None => b,
            Some((height, width)) => (b * height + row) * width + x,
        };
        &self.values[index * self.size..][..self.size]
    }

    /// `V h` of `layer` for each image's vector h.
    fn vectors(linear: &Linear, vectors: &[Vec<f32>]) -> Self {
        let [dim, outputs] = linear.weight.dims();
        // burn stores a linear layer's weight as [inputs, outputs]; Dense wants [outputs][inputs].
        let weight = to_vec(linear.weight.val());
        let dense = Dense {
            weight: (0..outputs * dim)
                .map(|oi| weight[(oi % dim) * outputs + oi / dim])
                .collect(),
            inputs: dim,
        };
        let mut values = vec![0.0; vectors.len() * outputs];
        for (h, out) in vectors.iter().zip(values.chunks_mut(outputs)) {
            dense.accumulate(h, out);
        }
        Self {
            values,
            positions: None,
            size: outputs,
        }
    }

    /// `V * s` from its tensor `[B, 4C, H, W]`.
    fn map(terms: burn::Tensor<4>) -> Self {
        let [_, size, height, width] = terms.dims();
        Self {
            values: to_vec(terms.permute([0, 2, 3, 1])),
            positions: Some((height, width)),
            size,
        }
    }
}

/// The conditioning terms of every layer of `model` for the vectors h of a batch.
fn condition_terms(
    model: &GatedPixelCnn,
    batch: usize,
    vectors: Option<Vec<Vec<f32>>>,
) -> Vec<ConditionTerms> {
    let zeros = |layer: &GatedLayer| ConditionTerms::zeros(batch, 4 * layer.skip.weight.dims()[0]);
    let Some(vectors) = vectors else {
        return model.layers.iter().map(zeros).collect();
    };
    match &model.condition_map {
        None => model
            .layers
            .iter()
            .map(|layer| match &layer.condition {
                Some(linear) => ConditionTerms::vectors(linear, &vectors),
                None => zeros(layer),
            })
            .collect(),
        Some(map) => {
            let device = model.head.hidden.weight.val().device();
            let dim = vectors[0].len();
            let flat: Vec<f32> = vectors.into_iter().flatten().collect();
            let h = burn::Tensor::<2>::from_data(
                burn::tensor::TensorData::new(flat, [batch, dim]),
                &device,
            );
            let s = map.forward(h);
            model
                .layers
                .iter()
                .map(|layer| match &layer.condition_map {
                    Some(conv) => ConditionTerms::map(conv.forward(s.clone())),
                    None => zeros(layer),
                })
                .collect()
        }
    }
}

/// Reusable buffers for one pixel of one layer.
struct Scratch {
    pre: Vec<f32>,
    gated: Vec<f32>,
    skip: Vec<f32>,
}

/// Runs a Gated PixelCNN pixel by pixel over a batch of images, with caches.
pub struct CachedGatedPixelCnn {
    layers: Vec<LayerCache>,
    head_hidden: Taps,
    head_logits: Taps,
    colours: usize,
    levels: usize,
    batch: usize,
    height: usize,
    width: usize,
}

impl CachedGatedPixelCnn {
    /// Caches for `batch` images of `height × width`; a conditional model needs `condition`,
    /// one vector h per image.
    pub fn new(
        model: &GatedPixelCnn,
        batch: usize,
        height: usize,
        width: usize,
        condition: Option<Vec<Vec<f32>>>,
    ) -> Self {
        let head = &model.head;
        Self {
            layers: model
                .layers
                .iter()
                .zip(condition_terms(model, batch, condition))
                .map(|(layer, terms)| LayerCache::new(layer, batch, width, terms))
                .collect(),
            head_hidden: Taps::from_masked_conv(&head.hidden, Some(head.mask(&head.hidden))),
            head_logits: Taps::from_masked_conv(&head.logits, Some(head.mask(&head.logits))),
            colours: model.head.colours,
            levels: model.levels,
            batch,
            height,
            width,
        }
    }

    /// Walks every pixel in raster order and each of its channels in turn. At each sub-pixel
    /// `choose(pixel, channel, logits)` gets the logits `[B][K]` of that sub-pixel given
    /// `images` so far, and may write its levels into `images` (or leave them, to follow given
    /// pixels).
    pub fn run(
        mut self,
        images: &mut [Vec<u8>],
        mut choose: impl FnMut(usize, usize, &[f32], &mut [Vec<u8>]),
    ) {
        let (batch, width, levels, colours) = (self.batch, self.width, self.levels, self.colours);
        let plane = self.height * width;
        let scale = 1.0 / (levels - 1) as f32;
        let channels = self.layers[0].channels;
        let mut scratch = Scratch {
            pre: vec![0.0; 2 * channels],
            gated: vec![0.0; channels],
            skip: vec![0.0; channels],
        };
        let mut input_row = vec![0.0f32; batch * width * colours];
        let mut skips = vec![0.0f32; channels];
        let mut hidden = vec![0.0f32; self.head_hidden.outputs()];
        let mut all_logits = vec![0.0f32; colours * levels];
        let mut logits = vec![0.0f32; batch * levels];
        for row in 0..self.height {
            for (x, colour) in (0..width).flat_map(|x| (0..colours).map(move |c| (x, c))) {
                for b in 0..batch {
                    skips.fill(0.0);
                    for index in 0..self.layers.len() {
                        let (before, rest) = self.layers.split_at_mut(index);
                        let input = before
                            .last()
                            .map_or(&input_row[..], |l| &l.horizontal_out[..]);
                        rest[0].pixel(input, b, (row, x), width, &mut skips, &mut scratch);
                    }
                    for s in skips.iter_mut() {
                        *s = s.max(0.0);
                    }
                    self.head_hidden.apply(&skips, &mut hidden);
                    for h in hidden.iter_mut() {
                        *h = h.max(0.0);
                    }
                    self.head_logits.apply(&hidden, &mut all_logits);
                    logits[b * levels..(b + 1) * levels]
                        .copy_from_slice(&all_logits[colour * levels..(colour + 1) * levels]);
                }
                let pixel = row * width + x;
                choose(pixel, colour, &logits, images);
                for b in 0..batch {
                    input_row[(b * width + x) * colours + colour] =
                        f32::from(images[b][colour * plane + pixel]) * scale;
                }
            }
            for index in 0..self.layers.len() {
                let (before, rest) = self.layers.split_at_mut(index);
                let input = before
                    .last()
                    .map_or(&input_row[..], |l| &l.vertical_out[..]);
                rest[0].finish_row(input, batch, row, width);
            }
        }
    }
}
