//! The autoregressive property of both architectures, checked by perturbation: changing input
//! pixel q may change the predictions only at pixels after q in raster order, and in the Gated
//! PixelCNN every earlier pixel in reach does change them (no blind spot).

use burn::prelude::*;
use pixelcnn::model::{
    Architecture, Conditioning, Latent, PixelCnn, PixelCnnConfig, SpatialMap, one_hot,
};

const LEVELS: usize = 4;

/// `effect[q][p]`: the largest change of any logit at pixel p when input pixel q is changed.
fn perturbation_effects(model: &PixelCnn, height: usize, width: usize) -> Vec<Vec<f32>> {
    perturbation_effects_given(model, height, width, None)
}

/// As [`perturbation_effects`], every image conditioned on class `class` of 3 if given.
fn perturbation_effects_given(
    model: &PixelCnn,
    height: usize,
    width: usize,
    class: Option<usize>,
) -> Vec<Vec<f32>> {
    let h = class.map(|c| one_hot(&[c], 3, &Device::flex()));
    perturbation_effects_with(model, height, width, h)
}

/// As [`perturbation_effects`], every image conditioned on the vector h `[1, d]` if given.
fn perturbation_effects_with(
    model: &PixelCnn,
    height: usize,
    width: usize,
    h: Option<Tensor<2>>,
) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let pixels = height * width;
    let base: Vec<i64> = (0..pixels).map(|i| ((i * 7 + 3) % LEVELS) as i64).collect();
    let mut batch = base.clone();
    for q in 0..pixels {
        let mut perturbed = base.clone();
        perturbed[q] = (perturbed[q] + 2) % LEVELS as i64;
        batch.extend(perturbed);
    }
    let input = Tensor::<4, Int>::from_data(
        TensorData::new(batch, [pixels + 1, 1, height, width]),
        &device,
    );
    let condition = h.map(|h| h.repeat_dim(0, pixels + 1));
    let logits: Vec<f32> = model
        .forward_conditioned(input, condition.as_ref())
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 logits");
    let at = |image: usize, level: usize, pixel: usize| {
        logits[(image * LEVELS + level) * pixels + pixel]
    };
    (0..pixels)
        .map(|q| {
            (0..pixels)
                .map(|p| {
                    (0..LEVELS)
                        .map(|k| (at(q + 1, k, p) - at(0, k, p)).abs())
                        .fold(0.0, f32::max)
                })
                .collect()
        })
        .collect()
}

/// A random model of `layers` layers: a 7×7 first layer, then 5×5 ones.
fn model(arch: Architecture, layers: usize) -> PixelCnn {
    config(layers)
        .with_arch(arch)
        .init_seeded(&Device::flex(), 7)
}

fn config(layers: usize) -> PixelCnnConfig {
    PixelCnnConfig::new(LEVELS)
        .with_layers(layers)
        .with_kernel(5)
        .with_channels(16)
        .with_head_channels(16)
}

fn assert_causal(arch: Architecture) {
    let effects = perturbation_effects(&model(arch, 4), 12, 12);
    for (q, row) in effects.iter().enumerate() {
        for (p, &effect) in row.iter().enumerate().take(q + 1) {
            assert_eq!(
                effect, 0.0,
                "{arch:?}: changing pixel {q} changed the prediction at pixel {p} by {effect}"
            );
        }
    }
}

#[test]
fn gated_pixelcnn_is_causal() {
    assert_causal(Architecture::Gated);
}

#[test]
fn masked_pixelcnn_is_causal() {
    assert_causal(Architecture::Pixelcnn);
}

#[test]
fn gated_pixelcnn_has_no_blind_spot() {
    // 4 layers: the first reaches 4 rows up and 3 columns to either side, each later one three
    // rows and two columns more, so the whole 8×8 past of every pixel is in reach. Unreachable
    // pixels give exactly 0 (see the causality tests), so any change at all means "in reach".
    let effects = perturbation_effects(&model(Architecture::Gated, 4), 8, 8);
    for (q, row) in effects.iter().enumerate() {
        for (p, &effect) in row.iter().enumerate().skip(q + 1) {
            assert!(
                effect > 0.0,
                "changing pixel {q} does not change the prediction at pixel {p}"
            );
        }
    }
}

#[test]
fn masked_pixelcnn_has_a_blind_spot() {
    let effects = perturbation_effects(&model(Architecture::Pixelcnn, 4), 8, 8);
    // Pixel (4, 2) cannot see (3, 6), up and to the right, however deep the stack.
    let (p, q) = (4 * 8 + 2, 3 * 8 + 6);
    assert_eq!(effects[q][p], 0.0);
    // ... though it sees its neighbours above and to the left.
    for q in [3 * 8 + 2, 3 * 8 + 3, 4 * 8 + 1, 2 * 8 + 2] {
        assert!(effects[q][p] > 0.0, "pixel {q} should be in reach of {p}");
    }
}

fn class_conditional(layers: usize) -> PixelCnn {
    config(layers)
        .with_conditioning(Conditioning::Class { classes: 3 })
        .init_seeded(&Device::flex(), 8)
}

/// Class-conditional through a spatial map s = m(h) of the 8×8 image size.
fn map_conditional(layers: usize) -> PixelCnn {
    config(layers)
        .with_conditioning(Conditioning::Class { classes: 3 })
        .with_spatial(Some(SpatialMap {
            channels: 4,
            height: 8,
            width: 8,
        }))
        .init_seeded(&Device::flex(), 9)
}

#[test]
fn class_conditioning_keeps_causality_and_no_blind_spot() {
    assert_causal_without_blind_spot(&class_conditional(4));
    assert_causal_without_blind_spot(&map_conditional(4));
}

fn assert_causal_without_blind_spot(model: &PixelCnn) {
    for class in [0, 2] {
        let effects = perturbation_effects_given(model, 8, 8, Some(class));
        for (q, row) in effects.iter().enumerate() {
            for (p, &effect) in row.iter().enumerate() {
                if p <= q {
                    assert_eq!(effect, 0.0, "class {class}: pixel {q} changed pixel {p}");
                } else {
                    assert!(
                        effect > 0.0,
                        "class {class}: pixel {q} does not reach pixel {p}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_class_changes_the_prediction_at_every_pixel() {
    assert_class_matters_everywhere(&class_conditional(3));
    assert_class_matters_everywhere(&map_conditional(3));
}

fn assert_class_matters_everywhere(model: &PixelCnn) {
    let device = Device::flex();
    let levels: Vec<i64> = (0..64).map(|i| (i % LEVELS) as i64).collect();
    let input = Tensor::<4, Int>::from_data(TensorData::new(levels, [1, 1, 8, 8]), &device);
    let logits_for = |class: usize| -> Vec<f32> {
        let h = one_hot(&[class], 3, &device);
        model
            .forward_conditioned(input.clone(), Some(&h))
            .unwrap()
            .into_data()
            .try_into_vec()
            .unwrap()
    };
    let (zero, one) = (logits_for(0), logits_for(1));
    for pixel in 0..64 {
        let change = (0..LEVELS)
            .map(|k| (zero[k * 64 + pixel] - one[k * 64 + pixel]).abs())
            .fold(0.0, f32::max);
        assert!(change > 1e-6, "pixel {pixel} ignores the class");
    }
}

#[test]
fn the_autoencoder_decoder_is_causal_given_a_code() {
    let model = config(4)
        .with_arch(Architecture::Autoencoder)
        .with_latent(Some(Latent {
            dim: 5,
            height: 8,
            width: 8,
        }))
        .init_seeded(&Device::flex(), 10);
    let device = Device::flex();
    let image: Vec<i64> = (0..64).map(|i| (i % 3) as i64).collect();
    let code = model
        .encode(Tensor::from_data(
            TensorData::new(image, [1, 1, 8, 8]),
            &device,
        ))
        .expect("an auto-encoder has codes");
    assert_eq!(code.dims(), [1, 5]);
    let effects = perturbation_effects_with(&model, 8, 8, Some(code));
    for (q, row) in effects.iter().enumerate() {
        for (p, &effect) in row.iter().enumerate() {
            if p <= q {
                assert_eq!(effect, 0.0, "pixel {q} changed pixel {p}");
            } else {
                assert!(effect > 0.0, "pixel {q} does not reach pixel {p}");
            }
        }
    }
}

/// For an RGB model, `effect[s][t]` over sub-pixels in sampling order (`s = 3·pixel + colour`):
/// the largest change of any logit of sub-pixel t when input sub-pixel s is changed.
fn colour_effects(model: &PixelCnn, height: usize, width: usize) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let pixels = height * width;
    let subpixels = 3 * pixels;
    // Input layout: channel planes; sampling order: pixel after pixel, R, G, B within one.
    let plane_index = |s: usize| (s % 3) * pixels + s / 3;
    let base: Vec<i64> = (0..subpixels)
        .map(|i| ((i * 5 + 1) % LEVELS) as i64)
        .collect();
    let mut batch = base.clone();
    for s in 0..subpixels {
        let mut perturbed = base.clone();
        perturbed[plane_index(s)] = (perturbed[plane_index(s)] + 2) % LEVELS as i64;
        batch.extend(perturbed);
    }
    let input = Tensor::<4, Int>::from_data(
        TensorData::new(batch, [subpixels + 1, 3, height, width]),
        &device,
    );
    let logits: Vec<f32> = model
        .forward(input)
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 logits");
    // Logits [B, 3, K, H, W].
    let at = |image: usize, t: usize, level: usize| {
        logits[((image * 3 + t % 3) * LEVELS + level) * pixels + t / 3]
    };
    (0..subpixels)
        .map(|s| {
            (0..subpixels)
                .map(|t| {
                    (0..LEVELS)
                        .map(|k| (at(s + 1, t, k) - at(0, t, k)).abs())
                        .fold(0.0, f32::max)
                })
                .collect()
        })
        .collect()
}

#[test]
fn colour_model_sees_exactly_the_earlier_sub_pixels() {
    // R→G→B: changing channel c of pixel q may change only (q, channels > c) and later pixels;
    // and, with 4 layers on 7×7, it changes every one of those (no blind spot across channels).
    // A green input reaches the blue logits of its own pixel only through the blue feature
    // group, so that group needs enough channels for the head's ReLU not to silence it all.
    let model = config(4)
        .with_channels(30)
        .with_head_channels(30)
        .with_input_channels(3)
        .init_seeded(&Device::flex(), 11);
    let effects = colour_effects(&model, 7, 7);
    let name = |s: usize| format!("pixel {} {}", s / 3, ["R", "G", "B"][s % 3]);
    for (s, row) in effects.iter().enumerate() {
        for (t, &effect) in row.iter().enumerate() {
            if t <= s {
                assert_eq!(
                    effect,
                    0.0,
                    "changing {} changed the prediction of {}",
                    name(s),
                    name(t)
                );
            } else {
                assert!(
                    effect > 0.0,
                    "changing {} does not change the prediction of {}",
                    name(s),
                    name(t)
                );
            }
        }
    }
}
