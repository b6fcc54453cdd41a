//! The autoregressive property of both architectures, checked by perturbation: changing input
//! pixel q may change the predictions only at pixels after q in raster order, and in the Gated
//! PixelCNN every earlier pixel in reach does change them (no blind spot).

use burn::prelude::*;
use pixelcnn::model::{Architecture, PixelCnn, PixelCnnConfig};

const LEVELS: usize = 4;

/// `effect[q][p]`: the largest change of any logit at pixel p when input pixel q is changed.
fn perturbation_effects(model: &PixelCnn, height: usize, width: usize) -> Vec<Vec<f32>> {
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
    let logits: Vec<f32> = model
        .forward(input)
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

fn model(arch: Architecture, layers: usize) -> PixelCnn {
    PixelCnnConfig::new(LEVELS)
        .with_arch(arch)
        .with_layers(layers)
        .with_channels(16)
        .with_head_channels(16)
        .init_seeded(&Device::flex(), 7)
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
    // 8 layers: the first reaches 4 rows up and 3 columns to either side, each later one two
    // rows and a column more, so the whole 8×8 past of every pixel is in reach. Unreachable
    // pixels give exactly 0 (see the causality tests), so any change at all means "in reach".
    let effects = perturbation_effects(&model(Architecture::Gated, 8), 8, 8);
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
    let effects = perturbation_effects(&model(Architecture::Pixelcnn, 8), 8, 8);
    // Pixel (4, 2) cannot see (3, 6), up and to the right, however deep the stack.
    let (p, q) = (4 * 8 + 2, 3 * 8 + 6);
    assert_eq!(effects[q][p], 0.0);
    // ... though it sees its neighbours above and to the left.
    for q in [3 * 8 + 2, 3 * 8 + 3, 4 * 8 + 1, 2 * 8 + 2] {
        assert!(effects[q][p] > 0.0, "pixel {q} should be in reach of {p}");
    }
}
