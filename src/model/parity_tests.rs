//! The channels-last matrix-product path of the Gated PixelCNN against a reference written
//! independently of it from Figure 2 of arXiv 1606.05328: plain convolutions (burn's functional
//! `conv2d`) on `[B, C, H, W]` maps, padded and shifted here, its own colour masks, and nothing
//! from the layer-construction code but the weight tensors. Logits and every parameter's
//! gradient must agree within 1e-4.

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Distribution, Tolerance};

use super::gated::GatedLayer;
use super::head::OutputHead;
use super::{Conditioning, GatedPixelCnn, PixelCnn, PixelCnnConfig, SpatialMap};

/// The reference forward pass: logits `[B, C, K, H, W]`.
fn reference_forward(
    model: &GatedPixelCnn,
    levels: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
) -> Tensor<5> {
    let x = levels.float() / (model.levels - 1) as f32;
    let [_, colours, height, width] = x.dims();
    let condition = condition.map(|h| match &model.condition_map {
        Some(map) => Reference::Map(
            map.forward(h.clone())
                .narrow(2, 0, height)
                .narrow(3, 0, width),
        ),
        None => Reference::Vector(h.clone()),
    });
    let (mut vertical, mut horizontal) = (x.clone(), x);
    let mut skips: Option<Tensor<4>> = None;
    for (index, layer) in model.layers.iter().enumerate() {
        let (v, h, skip) = reference_layer(
            layer,
            index == 0,
            colours,
            vertical,
            horizontal,
            condition.as_ref(),
        );
        (vertical, horizontal) = (v, h);
        skips = Some(skips.map_or(skip.clone(), |sum| sum + skip));
    }
    reference_head(&model.head, colours, skips.expect("layers"))
}

enum Reference {
    Vector(Tensor<2>),
    Map(Tensor<4>),
}

/// One layer of Figure 2: the vertical stack's ⌈k/2⌉×k convolution, its pre-activations shifted
/// down a row through the 1×1 link into the horizontal stack's 1×(k/2+1) convolution, the two
/// gates, the skip and the horizontal output with its residual.
fn reference_layer(
    layer: &GatedLayer,
    first: bool,
    colours: usize,
    vertical_in: Tensor<4>,
    horizontal_in: Tensor<4>,
    condition: Option<&Reference>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [_, _, height, width] = vertical_in.dims();
    let k = layer.vertical.weight.dims()[3];
    let p = k / 2;

    // Row i of the vertical stack covers rows i-p..=i and columns j-p..=j+p.
    let above = vertical_in.pad([(p, 0), (p, p)], PadMode::Constant(0.0));
    let vertical_sums = convolve(above, &layer.vertical, false);
    let vertical_bias = bias(&layer.vertical);
    // Shifted down one row: row i gets row i-1's sums; row 0 only the bias (zeros above).
    let shifted = vertical_sums
        .clone()
        .pad([(1, 0), (0, 0)], PadMode::Constant(0.0))
        .narrow(2, 0, height)
        + vertical_bias.clone();
    let mut vertical = vertical_sums + vertical_bias;
    let mut link = convolve(shifted, &layer.vertical_to_horizontal, true);
    if let Some([on_vertical, on_horizontal]) = condition_terms(layer, condition) {
        vertical = vertical + on_vertical;
        link = link + on_horizontal;
    }

    // The horizontal stack: columns j-p..=j, or j-p-1..=j-1 where the current pixel must not
    // be seen (the first layer; colour images, where it comes through a masked 1×1 instead).
    let strictly_left = first || colours > 1;
    let left = horizontal_in.clone().pad(
        [(0, 0), (p + usize::from(strictly_left), 0)],
        PadMode::Constant(0.0),
    );
    let mut horizontal = convolve(left, &layer.horizontal, true).narrow(3, 0, width);
    if colours > 1 {
        let current = layer
            .current_pixel
            .as_ref()
            .expect("colour layers see the current pixel");
        horizontal = horizontal + masked_1x1(current, horizontal_in.clone(), colours, !first, 2);
    }
    let gated = reference_gate(horizontal + link);
    let skip = masked_1x1(&layer.skip, gated.clone(), colours, true, 1);
    let mut horizontal_out = masked_1x1(&layer.horizontal_output, gated, colours, true, 1);
    if !first {
        horizontal_out = horizontal_out + horizontal_in;
    }
    (reference_gate(vertical), horizontal_out, skip)
}

/// `V h` or `V * s`, split into the vertical stack's 2C and the horizontal stack's 2C.
fn condition_terms(layer: &GatedLayer, condition: Option<&Reference>) -> Option<[Tensor<4>; 2]> {
    let terms = match condition? {
        Reference::Vector(h) => {
            let weight = layer
                .condition
                .as_ref()
                .expect("vector conditioning")
                .weight
                .val();
            let terms = h.clone().matmul(weight);
            let [batch, outputs] = terms.dims();
            terms.reshape([batch, outputs, 1, 1])
        }
        Reference::Map(s) => {
            let conv = layer.condition_map.as_ref().expect("map conditioning");
            convolve(s.clone(), conv, false)
        }
    };
    Some(terms.chunk(2, 1).try_into().expect("4C terms"))
}

/// `conv`'s weights (and bias) over `x` `[B, C, H, W]`, unpadded, stride 1.
fn convolve(x: Tensor<4>, conv: &Conv2d, with_bias: bool) -> Tensor<4> {
    let bias = conv.bias.as_ref().filter(|_| with_bias).map(|b| b.val());
    conv2d(
        x,
        conv.weight.val(),
        bias,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )
}

/// `conv`'s bias as `[1, C_out, 1, 1]`.
fn bias(conv: &Conv2d) -> Tensor<4> {
    let bias = conv.bias.as_ref().expect("a bias").val();
    let outputs = bias.dims()[0];
    bias.reshape([1, outputs, 1, 1])
}

fn reference_head(head: &OutputHead, colours: usize, features: Tensor<4>) -> Tensor<5> {
    let hidden = masked_1x1(&head.hidden, relu(features), colours, true, 1);
    let logits = masked_1x1(&head.logits, relu(hidden), colours, true, 1);
    let [batch, outputs, height, width] = logits.dims();
    logits.reshape([batch, colours, outputs / colours, height, width])
}

/// A 1×1 convolution on `[B, C, H, W]` whose outputs, in `halves` equal parts, are each split
/// into `colours` contiguous groups, as are its inputs; output group g sees input groups `< g`,
/// or `≤ g` when `inclusive` (R→G→B, arXiv 1601.06759 Section 3.4).
fn masked_1x1(
    conv: &Conv2d,
    x: Tensor<4>,
    colours: usize,
    inclusive: bool,
    halves: usize,
) -> Tensor<4> {
    let weight = conv.weight.val();
    let [outputs, inputs, _, _] = weight.dims();
    let part = outputs / halves;
    let keep: Vec<f32> = (0..outputs * inputs)
        .map(|index| {
            let (out, input) = (index / inputs % part, index % inputs);
            let (out_group, in_group) = (out * colours / part, input * colours / inputs);
            let seen = in_group < out_group || (inclusive && in_group == out_group);
            if seen { 1.0 } else { 0.0 }
        })
        .collect();
    let keep = Tensor::<1>::from_floats(keep.as_slice(), &weight.device());
    let weight = weight * keep.reshape([outputs, inputs, 1, 1]);
    let bias = conv.bias.as_ref().map(|b| b.val());
    conv2d(x, weight, bias, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
}

/// The gated activation over the two halves of the channel dimension of `[B, 2C, H, W]`.
fn reference_gate(x: Tensor<4>) -> Tensor<4> {
    let [filter, gate] = x.chunk(2, 1).try_into().expect("even channels");
    tanh(filter) * sigmoid(gate)
}

/// Every parameter's gradient, flattened, by parameter id.
struct Gradients<'a> {
    grads: &'a GradientsParams,
    found: Vec<(ParamId, Vec<f32>)>,
}

impl ModuleVisitor for Gradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let values = grad
                .into_data()
                .convert::<f32>()
                .try_into_vec()
                .expect("floats");
            self.found.push((param.id, values));
        }
    }
}

fn gradients(model: &PixelCnn, loss: Tensor<1>) -> Vec<(ParamId, Vec<f32>)> {
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut visitor = Gradients {
        grads: &grads,
        found: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.found
}

/// Checks logits and gradients of both paths for `config` on random images and conditions.
fn assert_paths_agree(config: PixelCnnConfig) {
    let device = Device::flex().autodiff();
    let model = config.init_seeded(&device, 7);
    let PixelCnn::Gated(gated) = &model else {
        panic!("a gated model")
    };
    let (batch, side) = (2, 6);
    let levels = Tensor::<4, Int>::random(
        [batch, config.input_channels, side, side],
        Distribution::Uniform(0.0, config.levels as f64),
        &device,
    );
    let condition = config
        .conditioning
        .dim()
        .map(|dim| Tensor::<2>::random([batch, dim], Distribution::Normal(0.0, 1.0), &device));
    let fast = model
        .forward_conditioned(levels.clone(), condition.as_ref())
        .unwrap();
    let plain = reference_forward(gated, levels, condition.as_ref());
    fast.to_data()
        .assert_approx_eq::<f32>(&plain.to_data(), Tolerance::absolute(1e-4));

    // A loss that weighs every logit differently, so that every gradient entry is exercised.
    let weights = Tensor::<5>::random(fast.dims(), Distribution::Normal(0.0, 1.0), &device);
    let fast_grads = gradients(&model, (fast * weights.clone()).sum());
    let plain_grads = gradients(&model, (plain * weights).sum());
    assert_eq!(fast_grads.len(), plain_grads.len());
    assert!(!fast_grads.is_empty());
    for ((id, fast), (plain_id, plain)) in fast_grads.iter().zip(&plain_grads) {
        assert_eq!(id, plain_id);
        let largest = fast
            .iter()
            .zip(plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(largest <= 1e-4, "gradient of {id} differs by {largest}");
    }
}

fn small(levels: usize) -> PixelCnnConfig {
    PixelCnnConfig::new(levels)
        .with_layers(3)
        .with_channels(6)
        .with_first_kernel(5)
        .with_head_channels(8)
}

#[test]
fn grayscale_logits_and_gradients_match_the_convolution_path() {
    assert_paths_agree(small(4));
}

#[test]
fn class_conditional_logits_and_gradients_match_the_convolution_path() {
    assert_paths_agree(small(4).with_conditioning(Conditioning::Class { classes: 3 }));
}

#[test]
fn spatially_conditioned_logits_and_gradients_match_the_convolution_path() {
    assert_paths_agree(
        small(4)
            .with_conditioning(Conditioning::Embedding { dim: 5 })
            .with_spatial(Some(SpatialMap {
                channels: 2,
                height: 6,
                width: 6,
            })),
    );
}

#[test]
fn colour_logits_and_gradients_match_the_convolution_path() {
    assert_paths_agree(small(8).with_input_channels(3));
}
