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
//!
//! A file from someone else ([`read_file`]) is bounded before anything is allocated: its header
//! is read first, and the file must be exactly as long as the model its metadata describes
//! needs in f32; then every tensor must be f32, and their sizes must add up to that model's
//! parameters, before the model is built.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use safetensors::Dtype;

use crate::files::{FileError, open_bounded};
use crate::model::MAX_PARAMETERS;
use crate::model::PixelCnn;
use crate::run_config::{ConfigError, RunConfig};

/// The metadata key holding the run's `config.json`.
pub const CONFIG_KEY: &str = "pixelcnn.run_config";

/// The most bytes a weights file's header (its tensor index and metadata) may have.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The length prefix of a safetensors header.
const LENGTH_BYTES: u64 = 8;

/// Why weights could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: {source}", path.display())]
    InFile {
        path: std::path::PathBuf,
        source: Box<ExportError>,
    },
    #[error("cannot write the weights: {0}")]
    Write(String),
    #[error("not a pixelcnn weights file: {0}")]
    Format(String),
    #[error("the weights do not fit the model the file describes: {0}")]
    Mismatch(String),
    #[error("the run config in its metadata: {0}")]
    Config(ConfigError),
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
    check_tensor_sizes(&bytes, &config)?;
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

/// The run settings and model of the weights file at `path` (written by [`to_safetensors`],
/// here or elsewhere), on `device`. The file is bounded before it is read: see the module doc.
pub fn read_file(path: &Path, device: &Device) -> Result<(RunConfig, PixelCnn), ExportError> {
    let in_file = |source| ExportError::InFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let (config, size) = read_file_header(path)?;
    let (file, _) = open_bounded(path, size)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let (_, model) = from_safetensors(bytes, device).map_err(in_file)?;
    Ok((config, model))
}

/// The run settings in the metadata of the weights file at `path`, read from its header alone.
pub fn read_file_config(path: &Path) -> Result<RunConfig, ExportError> {
    Ok(read_file_header(path)?.0)
}

/// The run config of the file at `path`, and the size the file must have: its header and the
/// f32 weights of the model the config describes.
fn read_file_header(path: &Path) -> Result<(RunConfig, u64), ExportError> {
    let in_file = |source| ExportError::InFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let most = LENGTH_BYTES + MAX_HEADER_BYTES + 4 * MAX_PARAMETERS;
    let (mut file, size) = open_bounded(path, most)?;
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut length = [0u8; LENGTH_BYTES as usize];
    file.read_exact(&mut length)
        .map_err(|_| in_file(ExportError::Format("shorter than a header".into())))?;
    let header_bytes = u64::from_le_bytes(length);
    if header_bytes > MAX_HEADER_BYTES || LENGTH_BYTES + header_bytes > size {
        return Err(in_file(ExportError::Format(format!(
            "its header claims {header_bytes} bytes, more than the file or the {MAX_HEADER_BYTES} a header may have"
        ))));
    }
    let mut header = vec![0u8; header_bytes as usize];
    file.read_exact(&mut header).map_err(io)?;
    let config = config_of_header(&header).map_err(in_file)?;
    let expected = LENGTH_BYTES + header_bytes + 4 * config.model.parameter_count();
    if size != expected {
        return Err(in_file(ExportError::Mismatch(format!(
            "the file has {size} bytes; its header ({header_bytes} bytes) and the f32 weights of the model its metadata describes ({} parameters) make {expected}",
            config.model.parameter_count()
        ))));
    }
    Ok((config, expected))
}

/// The run config in the metadata of a safetensors header (the JSON after the length).
fn config_of_header(header: &[u8]) -> Result<RunConfig, ExportError> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<HashMap<String, String>>,
    }
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| ExportError::Format(format!("its header is not safetensors JSON: {e}")))?;
    let json = header
        .metadata
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .ok_or_else(|| ExportError::Format(format!("its metadata has no {CONFIG_KEY}")))?;
    RunConfig::from_json(json.as_bytes()).map_err(ExportError::Config)
}

/// Every tensor of `bytes` is f32, and they hold as many values as the model `config` describes
/// has parameters: checked before the model is built, so that a file cannot make it allocate
/// more than the file itself holds.
fn check_tensor_sizes(bytes: &[u8], config: &RunConfig) -> Result<(), ExportError> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| ExportError::Format(e.to_string()))?;
    let mut values: u64 = 0;
    for (name, info) in metadata.tensors() {
        if info.dtype != Dtype::F32 {
            return Err(ExportError::Mismatch(format!(
                "tensor {name} is {:?}, not F32",
                info.dtype
            )));
        }
        let count = info
            .shape
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64));
        values = values.saturating_add(count);
    }
    let parameters = config.model.parameter_count();
    if values != parameters {
        return Err(ExportError::Mismatch(format!(
            "the tensors hold {values} values; the model the metadata describes has {parameters} parameters"
        )));
    }
    Ok(())
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
    RunConfig::from_json(json.as_bytes()).map_err(ExportError::Config)
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
                .unwrap()
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
