//! Starting a run from a trained Gated PixelCNN, deeper than it (`train --init-from RUN_DIR`).
//!
//! The paper's models (arXiv 1606.05328, Section 3) are each trained on their own; starting one
//! from another is a departure, for a machine of few cores. A deeper model trained from scratch spends again the
//! CPU-hours its shallower predecessor already spent to reach its likelihood; grown from it, the
//! run starts at that likelihood and buys only what the new layers add: capacity, and a
//! vertical receptive field one row taller per layer. docs/likelihood.md, "Binarised MNIST", gives the
//! measured effect.
//!
//! The new model takes the source's layers, condition map and output head (its moving average
//! of the weights where it keeps one), and appends the further layers drawn as a new run's,
//! except that each one's skip and horizontal-output convolutions start at zero. So at step 0
//! the new layers add nothing to the skip sum the head reads and pass the horizontal stack on
//! unchanged through its residual: the grown model computes exactly the source's likelihoods.
//! The zero convolutions still learn, because their gradient is the gate's output, which is not
//! zero; the rest of each new layer learns through them from the next step on. With as many
//! layers as the source, the run fine-tunes the source's weights.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::model::{Architecture, InvalidSetting, PixelCnn, PixelCnnConfig};

/// Checks that a model of `target` can grow from one of `source`: both Gated PixelCNNs that
/// differ at most in their number of layers, the target's being no fewer.
pub fn check_growable(
    source: &PixelCnnConfig,
    target: &PixelCnnConfig,
) -> Result<(), InvalidSetting> {
    if source.arch != Architecture::Gated || target.arch != Architecture::Gated {
        return Err(InvalidSetting::new(
            "init_from",
            "only a Gated PixelCNN grows from another",
        ));
    }
    let differences: Vec<String> = [
        ("levels", source.levels, target.levels),
        ("channels", source.channels, target.channels),
        ("first kernel", source.first_kernel, target.first_kernel),
        ("kernel", source.kernel, target.kernel),
        ("head channels", source.head_channels, target.head_channels),
        (
            "colour channels",
            source.input_channels,
            target.input_channels,
        ),
    ]
    .into_iter()
    .filter(|(_, had, asked)| had != asked)
    .map(|(name, had, asked)| format!("{name} {asked} (the source has {had})"))
    .collect();
    if !differences.is_empty() {
        return Err(InvalidSetting::new(
            "init_from",
            format!(
                "a model grows only in depth, but this one differs in {}",
                differences.join(", ")
            ),
        ));
    }
    let same_but_depth = PixelCnnConfig {
        layers: target.layers,
        ..source.clone()
    };
    if same_but_depth != *target {
        return Err(InvalidSetting::new(
            "init_from",
            "a model grows only in depth, but this one differs in its conditioning",
        ));
    }
    if target.layers < source.layers {
        return Err(InvalidSetting::new(
            "init_from",
            format!(
                "the source has {} layers, more than the {} asked for",
                source.layers, target.layers
            ),
        ));
    }
    Ok(())
}

/// `fresh`, a newly drawn model of a configuration [`check_growable`] accepts, with the
/// `source` model's layers, condition map and head in place of its own, and every further
/// layer's skip and horizontal output set to zero.
pub fn grow(source: PixelCnn, fresh: PixelCnn) -> PixelCnn {
    let (PixelCnn::Gated(source), PixelCnn::Gated(mut grown)) = (source, fresh) else {
        panic!("check_growable admits Gated PixelCNNs only");
    };
    let kept = source.layers.len();
    for layer in &mut grown.layers[kept..] {
        zero(&mut layer.skip);
        zero(&mut layer.horizontal_output);
    }
    grown.layers.splice(..kept, source.layers);
    grown.condition_map = source.condition_map;
    grown.head = source.head;
    PixelCnn::Gated(grown)
}

/// Sets a convolution's weights and bias to zero, as new trainable parameters.
fn zero(conv: &mut Conv2d) {
    let device = conv.weight.device();
    conv.weight = Param::from_tensor(Tensor::zeros(conv.weight.shape(), &device));
    conv.bias = conv
        .bias
        .as_ref()
        .map(|bias| Param::from_tensor(Tensor::zeros(bias.shape(), &device)));
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;

    use super::*;
    use crate::loss::mean_nll;

    fn config(layers: usize) -> PixelCnnConfig {
        PixelCnnConfig::new(2).with_layers(layers).with_channels(8)
    }

    /// Three 7×6 binary images, not all alike.
    fn images(device: &Device) -> Tensor<4, Int> {
        let pixels: Vec<i64> = (0..3 * 7 * 6).map(|i| (i * i / 5 % 2) as i64).collect();
        Tensor::<1, Int>::from_data(pixels.as_slice(), device).reshape([3, 1, 7, 6])
    }

    #[test]
    fn a_grown_model_computes_its_sources_logits_and_its_new_layers_learn() {
        let device = Device::flex().autodiff();
        let source = config(2).init_seeded(&device, 1);
        let grown = grow(source.clone(), config(4).init_seeded(&device, 2));
        let x = images(&device);
        let (before, after) = (
            source.forward(x.clone()).unwrap(),
            grown.forward(x.clone()).unwrap(),
        );
        assert_eq!(before.into_data(), after.clone().into_data());

        let grads = GradientsParams::from_grads(mean_nll(after, x).backward(), &grown);
        let PixelCnn::Gated(model) = &grown else {
            unreachable!()
        };
        let new_skip = &model.layers[3].skip.weight;
        let gradient: Tensor<4> = grads.get(new_skip.id).expect("the new skip learns");
        assert!(gradient.abs().sum().into_scalar::<f32>() > 0.0);
    }

    #[test]
    fn only_a_deeper_gated_model_of_the_same_shape_grows() {
        assert!(check_growable(&config(2), &config(4)).is_ok());
        assert!(check_growable(&config(2), &config(2)).is_ok());
        let refused = [
            (config(4), config(2), "more than the 2"),
            (
                config(2),
                config(4).with_channels(16),
                "channels 16 (the source has 8)",
            ),
            (
                config(2).with_arch(Architecture::Pixelcnn),
                config(4).with_arch(Architecture::Pixelcnn),
                "Gated PixelCNN",
            ),
        ];
        for (source, target, message) in refused {
            let error = check_growable(&source, &target).unwrap_err();
            assert!(error.message.contains(message), "{error}");
            assert_eq!(error.setting, "init_from");
        }
    }
}
