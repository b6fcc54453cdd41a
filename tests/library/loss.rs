//! The per-pixel cross-entropy and the bits/dim conversion, against hand computations.

use burn::prelude::*;
use pixelcnn::loss::{bits_per_dim, mean_nll, nats_to_bits, pixel_nll};

#[test]
fn cross_entropy_matches_a_hand_computation() {
    let device = Device::flex();
    // One grayscale image of 1×2 pixels, K = 3 levels: logits [1, 1, 3, 1, 2].
    let pixel_a = [1.0f64, 2.0, 3.0];
    let pixel_b = [0.5f64, -1.0, 0.0];
    let logits = Tensor::<5>::from_data(
        TensorData::new(vec![1.0f32, 0.5, 2.0, -1.0, 3.0, 0.0], [1, 1, 3, 1, 2]),
        &device,
    );
    let targets =
        Tensor::<4, Int>::from_data(TensorData::new(vec![2i64, 0], [1, 1, 1, 2]), &device);
    let nll = |logits: &[f64], target: usize| {
        let log_sum: f64 = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
        log_sum - logits[target]
    };
    let expected = [nll(&pixel_a, 2), nll(&pixel_b, 0)];
    // By hand: ln(e + e² + e³) − 3 = 0.40760596; ln(e^0.5 + e^-1 + 1) − 0.5 = 0.60413061.
    assert!((expected[0] - 0.407_605_96).abs() < 1e-7);
    assert!((expected[1] - 0.604_130_61).abs() < 1e-7);

    let per_pixel: Vec<f32> = pixel_nll(logits.clone(), targets.clone())
        .into_data()
        .try_into_vec()
        .unwrap();
    for (got, want) in per_pixel.iter().zip(expected) {
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
    let mean = mean_nll(logits, targets).into_scalar::<f64>();
    assert!((mean - (expected[0] + expected[1]) / 2.0).abs() < 1e-6);
}

#[test]
fn each_colour_channel_has_its_own_softmax() {
    let device = Device::flex();
    // One RGB pixel, K = 2: logits [1, 3, 2, 1, 1], channel after channel.
    let logits = Tensor::<5>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 2.0, 0.0, -1.0, 1.0], [1, 3, 2, 1, 1]),
        &device,
    );
    let targets =
        Tensor::<4, Int>::from_data(TensorData::new(vec![1i64, 0, 1], [1, 3, 1, 1]), &device);
    let per_channel: Vec<f32> = pixel_nll(logits, targets)
        .into_data()
        .try_into_vec()
        .unwrap();
    // R: ln 2; G: ln(1 + e²) − 2 = 0.12692801; B: ln(e⁻¹ + e) − 1 = 0.12692801.
    let expected = [std::f32::consts::LN_2, 0.126_928_01, 0.126_928_01];
    assert_eq!(per_channel.len(), 3);
    for (got, want) in per_channel.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn log_softmax_is_stable_for_extreme_logits() {
    let device = Device::flex();
    let logits = Tensor::<5>::from_data(
        TensorData::new(vec![1.0e4f32, -1.0e4, 0.0], [1, 1, 3, 1, 1]),
        &device,
    );
    let target = |level: i64| {
        Tensor::<4, Int>::from_data(TensorData::new(vec![level], [1, 1, 1, 1]), &device)
    };
    let certain = mean_nll(logits.clone(), target(0)).into_scalar::<f64>();
    let impossible = mean_nll(logits, target(1)).into_scalar::<f64>();
    assert_eq!(certain, 0.0);
    assert!((impossible - 2.0e4).abs() < 1.0, "{impossible}");
}

#[test]
fn bits_per_dim_is_nats_over_pixels_times_ln2() {
    assert!((nats_to_bits(std::f64::consts::LN_2) - 1.0).abs() < 1e-12);
    // 784 pixels, 80 nats per image (a typical binarised-MNIST figure).
    let expected = 80.0 / (784.0 * std::f64::consts::LN_2);
    assert!((bits_per_dim(80.0, 784) - expected).abs() < 1e-12);
    assert!((bits_per_dim(80.0, 784) - 0.147_214).abs() < 1e-6);
}
