//! The channels-last matrix-product path of the Gated PixelCNN against a plain reference: the
//! same modules applied with burn's `Conv2d::forward` on `[B, C, H, W]` maps (each convolution
//! padded as its config says), the way the paper's figure reads. Logits and every parameter's
//! gradient must agree within 1e-4.

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tolerance};

use super::colour::{ColourMask, Mask};
use super::gated::GatedLayer;
use super::head::OutputHead;
use super::{Conditioning, GatedPixelCnn, PixelCnn, PixelCnnConfig, SpatialMap, input_to_float};

/// The plain forward pass: logits `[B, C, K, H, W]`.
fn reference_forward(
    model: &GatedPixelCnn,
    levels: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
) -> Tensor<5> {
    let x = input_to_float(levels, model.levels);
    let [_, _, height, width] = x.dims();
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
    for layer in &model.layers {
        let (v, h, skip) = reference_layer(layer, vertical, horizontal, condition.as_ref());
        (vertical, horizontal) = (v, h);
        skips = Some(skips.map_or(skip.clone(), |sum| sum + skip));
    }
    reference_head(&model.head, skips.expect("layers"))
}

enum Reference {
    Vector(Tensor<2>),
    Map(Tensor<4>),
}

fn reference_layer(
    layer: &GatedLayer,
    vertical_in: Tensor<4>,
    horizontal_in: Tensor<4>,
    condition: Option<&Reference>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [batch, _, height, width] = vertical_in.dims();
    let padded = layer
        .vertical_column
        .forward(layer.vertical_row.forward(vertical_in.clone()));
    let mut link = layer
        .vertical_to_horizontal
        .forward(padded.clone().narrow(2, 0, height));
    let mut vertical = padded.narrow(2, 1, height) + layer.vertical_input.forward(vertical_in);
    let added = match condition {
        Some(Reference::Vector(h)) => {
            let linear = layer.condition.as_ref().expect("vector conditioning");
            let outputs = linear.weight.dims()[1];
            Some(linear.forward(h.clone()).reshape([batch, outputs, 1, 1]))
        }
        Some(Reference::Map(s)) => Some(
            layer
                .condition_map
                .as_ref()
                .expect("map conditioning")
                .forward(s.clone()),
        ),
        None => None,
    };
    if let Some(added) = added {
        let [on_vertical, on_horizontal] = added.chunk(2, 1).try_into().expect("4C");
        vertical = vertical + on_vertical;
        link = link + on_horizontal;
    }
    let mut horizontal = layer.horizontal.forward(horizontal_in.clone());
    if layer.first || layer.current_pixel.is_some() {
        horizontal = horizontal.narrow(3, 0, width);
    }
    if let Some(current) = &layer.current_pixel {
        let mask = layer.colour_mask(if layer.first { Mask::A } else { Mask::B });
        horizontal = horizontal + masked_1x1(current, horizontal_in.clone(), mask);
    }
    let gated = reference_gate(horizontal + link);
    let mask = layer.colour_mask(Mask::B);
    let skip = masked_1x1(&layer.skip, gated.clone(), mask);
    let mut horizontal_out = masked_1x1(&layer.horizontal_output, gated, mask);
    if !layer.first {
        horizontal_out = horizontal_out + horizontal_in;
    }
    (reference_gate(vertical), horizontal_out, skip)
}

fn reference_head(head: &OutputHead, features: Tensor<4>) -> Tensor<5> {
    let hidden = masked_1x1(&head.hidden, relu(features), head.mask(&head.hidden));
    let logits = masked_1x1(&head.logits, relu(hidden), head.mask(&head.logits));
    let [batch, outputs, height, width] = logits.dims();
    logits.reshape([batch, head.colours, outputs / head.colours, height, width])
}

/// A 1×1 convolution on `[B, C, H, W]` with its weights multiplied by the colour mask.
fn masked_1x1(conv: &Conv2d, x: Tensor<4>, mask: ColourMask) -> Tensor<4> {
    let weight = conv.weight.val();
    let [outputs, inputs, _, _] = weight.dims();
    let weight = if mask.colours > 1 {
        let mask = mask.weights(outputs, inputs, &weight.device());
        weight * mask.reshape([outputs, inputs, 1, 1])
    } else {
        weight
    };
    conv2d(
        x,
        weight,
        conv.bias.as_ref().map(|b| b.val()),
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )
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
    let fast = model.forward_conditioned(levels.clone(), condition.as_ref());
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
