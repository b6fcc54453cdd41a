//! The PixelCNN auto-encoder and its deconvolutional baseline: training reaches the encoder.

use burn::optim::GradientsParams;
use burn::prelude::*;
use pixelcnn::checkpoint::new_optimizer;
use pixelcnn::loss::mean_nll;
use pixelcnn::model::{Architecture, Latent, PixelCnn, PixelCnnConfig};

fn autoencoder(arch: Architecture, device: &Device) -> PixelCnn {
    PixelCnnConfig::new(4)
        .with_arch(arch)
        .with_layers(2)
        .with_channels(6)
        .with_latent(Some(Latent {
            dim: 3,
            height: 8,
            width: 8,
        }))
        .init_seeded(device, 4)
}

fn codes(model: &PixelCnn, input: &Tensor<4, Int>) -> Vec<f32> {
    model
        .encode(input.clone())
        .expect("an auto-encoder")
        .into_data()
        .try_into_vec()
        .unwrap()
}

#[test]
fn a_training_step_changes_the_encoder() {
    for arch in [Architecture::Autoencoder, Architecture::AutoencoderDeconv] {
        let device = Device::flex().autodiff();
        let mut model = autoencoder(arch, &device);
        let levels: Vec<i64> = (0..4 * 64).map(|i| (i * 5 % 4) as i64).collect();
        let input = Tensor::<4, Int>::from_data(TensorData::new(levels, [4, 1, 8, 8]), &device);
        let before = codes(&model, &input);
        let loss = mean_nll(model.forward(input.clone()), input.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = new_optimizer().step(1e-2, model, grads);
        let after = codes(&model, &input);
        assert_eq!(before.len(), 12);
        assert!(
            before.iter().zip(&after).any(|(b, a)| (b - a).abs() > 1e-6),
            "{arch:?}: the encoder did not change: {before:?}"
        );
    }
}

#[test]
fn the_deconvolutional_decoder_ignores_the_pixels_given_a_code() {
    let device = Device::flex();
    let model = autoencoder(Architecture::AutoencoderDeconv, &device);
    let code = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0], [1, 3]), &device);
    let zeros = Tensor::<4, Int>::zeros([1, 1, 8, 8], &device);
    let threes = Tensor::<4, Int>::ones([1, 1, 8, 8], &device) * 3;
    let logits = |input: Tensor<4, Int>| -> Vec<f32> {
        model
            .forward_conditioned(input, Some(&code))
            .into_data()
            .try_into_vec()
            .unwrap()
    };
    let first = logits(zeros);
    assert_eq!(first.len(), 4 * 64);
    assert_eq!(first, logits(threes));
}
