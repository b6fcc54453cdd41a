//! Weights for other frameworks: a model in one [safetensors](https://github.com/huggingface/safetensors)
//! file, the format PyTorch, JAX and the Hugging Face tools read, with the run's settings in the
//! file's metadata so that the file alone rebuilds the model. The shipped pretrained models are
//! such files (see [`crate::pretrained`]).
//!
//! Tensors are f32, named by their place in the model (burn's module paths, without the enum
//! variant). A gated model has, for each layer `i` (Figure 2 of arXiv 1606.05328),
//! `layers.{i}.vertical` (the ⌈k/2⌉×k vertical convolution into 2C), `vertical_to_horizontal`
//! (the 1×1 link), `horizontal` (1×(k/2+1)), `horizontal_output` (1×1, C→C), `skip` (1×1), each
//! a `.weight` and a `.bias`, and for a conditional model `layers.{i}.condition.weight` (V, no
//! bias); then the output head `head.hidden` (1×1, C→32) and `head.logits` (1×1, 32→K·colours).
//! Convolution weights are `[out, in, kh, kw]` and biases `[out]`, as in PyTorch's `Conv2d`;
//! linear maps (the conditioning terms) are burn's `[in, out]`, the transpose of PyTorch's
//! `Linear.weight`. `benches/torch/peer.py logits` loads such a file into the PyTorch
//! model and checks that its logits are ours.

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::model::PixelCnn;
use crate::run_config::RunConfig;

/// The metadata key holding the run's `config.json`.
pub const CONFIG_KEY: &str = "pixelcnn.run_config";

/// Why weights could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the weights: {0}")]
    Write(String),
    #[error("not a pixelcnn weights file: {0}")]
    Format(String),
    #[error("the weights do not fit the model the file describes: {0}")]
    Mismatch(String),
}

/// The weights of `model`, trained as `config` says, as the bytes of a safetensors file. The
/// paths of the machine it was trained on (`data_dir`, `condition_file`, `init_from`) are left
/// out.
pub fn to_safetensors(model: &PixelCnn, config: &RunConfig) -> Result<Vec<u8>, ExportError> {
    let portable = RunConfig {
        data_dir: None,
        condition_file: None,
        init_from: None,
        ..config.clone()
    };
    let json = serde_json::to_string(&portable).expect("run config serialises");
    let mut store = SafetensorsStore::from_bytes(None)
        .skip_enum_variants(true)
        .metadata(CONFIG_KEY, json);
    model
        .save_into(&mut store)
        .map_err(|e| ExportError::Write(e.to_string()))?;
    store
        .get_bytes()
        .map_err(|e| ExportError::Write(e.to_string()))
}

/// The run settings and model of a file written by [`to_safetensors`], on `device`.
pub fn from_safetensors(
    bytes: Vec<u8>,
    device: &Device,
) -> Result<(RunConfig, PixelCnn), ExportError> {
    let config = read_config(&bytes)?;
    let mut model = config.model.init(device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .skip_enum_variants(true)
        .allow_partial(true);
    let applied = crate::quiet_panic::catch_quietly(|| model.load_from(&mut store))
        .map_err(|_| ExportError::Format("the tensors are malformed".into()))?
        .map_err(|e| ExportError::Mismatch(e.to_string()))?;
    let missing: Vec<&str> = applied
        .missing
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    if !missing.is_empty() || !applied.unused.is_empty() {
        return Err(ExportError::Mismatch(format!(
            "missing tensors {missing:?}, unexpected tensors {:?}",
            applied.unused
        )));
    }
    Ok((config, model))
}

/// The run config in a safetensors file's metadata, checked.
pub(crate) fn read_config(bytes: &[u8]) -> Result<RunConfig, ExportError> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| ExportError::Format(e.to_string()))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .ok_or_else(|| ExportError::Format(format!("its metadata has no {CONFIG_KEY}")))?;
    RunConfig::from_json(json.as_bytes()).map_err(ExportError::Format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conditioning, PixelCnnConfig};

    /// The convolutions of a gated layer, as the module doc lists them.
    const LAYER_CONVOLUTIONS: [&str; 5] = [
        "vertical",
        "vertical_to_horizontal",
        "horizontal",
        "horizontal_output",
        "skip",
    ];

    fn run_config(model: PixelCnnConfig) -> RunConfig {
        RunConfig {
            model,
            batch_size: 4,
            learning_rate: 1e-3,
            seed: 0,
            steps: 1,
            interval: 1,
            dataset: Default::default(),
            data_dir: None,
            image_size: None,
            condition_file: None,
            image_height: 6,
            image_width: 6,
            binarization: None,
            recipe: Default::default(),
            shards: 1,
            precision: Default::default(),
            init_from: None,
        }
    }

    #[test]
    fn a_model_comes_back_with_its_config_and_the_same_logits() {
        let device = Device::flex();
        let model_config = PixelCnnConfig::new(4)
            .with_layers(2)
            .with_channels(4)
            .with_conditioning(Conditioning::Class { classes: 3 });
        let config = run_config(model_config.clone());
        let model = model_config.init_seeded(&device, 5);
        let bytes = to_safetensors(&model, &config).unwrap();
        let (read, restored) = from_safetensors(bytes.clone(), &device).unwrap();
        assert_eq!(read, config);
        let levels = Tensor::<4, Int>::ones([2, 1, 6, 6], &device);
        let condition = crate::model::one_hot(&[0, 2], 3, &device);
        let logits = |m: &PixelCnn| -> Vec<f32> {
            m.forward_conditioned(levels.clone(), Some(&condition))
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        assert_eq!(logits(&model), logits(&restored));

        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut names: Vec<String> = metadata.tensors().into_keys().collect();
        names.sort();
        let mut documented = vec![
            "head.hidden.bias".to_string(),
            "head.hidden.weight".into(),
            "head.logits.bias".into(),
            "head.logits.weight".into(),
        ];
        for layer in 0..2 {
            documented.push(format!("layers.{layer}.condition.weight"));
            for conv in LAYER_CONVOLUTIONS {
                documented.push(format!("layers.{layer}.{conv}.bias"));
                documented.push(format!("layers.{layer}.{conv}.weight"));
            }
        }
        documented.sort();
        assert_eq!(names, documented);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let device = Device::flex();
        let error = |bytes: Vec<u8>| from_safetensors(bytes, &device).unwrap_err().to_string();
        assert!(error(b"not safetensors".to_vec()).contains("not a pixelcnn weights file"));
        // Weights of one shape under the config of another.
        let small = run_config(PixelCnnConfig::new(4).with_layers(2).with_channels(4));
        let mut large = small.clone();
        large.model.channels = 8;
        let other = to_safetensors(&large.model.init_seeded(&device, 0), &small);
        let message = error(other.unwrap());
        assert!(message.contains("do not fit"), "{message}");
    }
}
