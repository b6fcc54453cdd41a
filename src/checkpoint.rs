//! The checkpoint file: the state a run needs to continue exactly where it stopped — a header,
//! the model configuration, the model weights, the optimiser state and, when the run keeps one,
//! the moving average of the weights — ending in a checksum that every read verifies. Reading
//! checks the file's size against what its model can fill, and every length and record against
//! the file, so that a damaged or hostile file is refused with a message, never a panic or an
//! unbounded allocation.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::Bytes;

use crate::files::{FileError, open_bounded};
use crate::model::{InvalidSetting, PixelCnn, PixelCnnConfig};
use crate::recipe::new_optimizer;
use crate::run_config::ConfigError;

const MAGIC: &[u8; 8] = b"PXCNNCKP";
/// Version of the checkpoint layout; bumped whenever it or a model's weights change. Version 2:
/// the gated layer's vertical stack became the paper's one ⌈k/2⌉×k convolution (version 1 held
/// a factorised 1×k then column convolution and an extra 1×1 input path). Version 3 adds a
/// section for the moving average of the weights (empty without one); version 2 files, which
/// lack it, are still read. Version 4 ends in a CRC-32 of all the bytes before it, which every
/// load verifies, so that a damaged file is refused instead of used; earlier files, which lack
/// it, are read unchecked.
pub const FORMAT_VERSION: u32 = 4;
/// The first version that ends in a checksum.
const CHECKSUMMED: u32 = 4;

/// Why a run folder or checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The I/O error is the source, so that a report of the error chain shows it once.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A checkpoint file that is not one this version reads, or is damaged.
    #[error("{}: {error}", path.display())]
    Format { path: PathBuf, error: FormatError },
    /// A run folder whose files do not agree, or whose `config.json` is not valid.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A `config.json` that is not a valid run config.
    #[error("{}: {source}", path.display())]
    Config { path: PathBuf, source: ConfigError },
    #[error(transparent)]
    File(#[from] FileError),
}

/// What is wrong with a checkpoint file's bytes.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a pixelcnn checkpoint (bad magic bytes)")]
    NotACheckpoint,
    #[error(
        "checkpoint format version {version}, but this pixelcnn reads versions 2 to {FORMAT_VERSION}{}",
        if *version == 1 { " (version 1 models used an earlier form of the gated layer: train them again)" } else { "" }
    )]
    Version { version: u32 },
    #[error("file is truncated")]
    Truncated,
    #[error(
        "the file is damaged or truncated: it ends in the checksum {stored:08x}, but its bytes sum to {computed:08x}"
    )]
    Damaged { stored: u32, computed: u32 },
    #[error("section length overflows")]
    SectionOverflow,
    #[error("its model config takes {bytes} bytes, more than the {MAX_CONFIG_BYTES} allowed")]
    ConfigTooLarge { bytes: u64 },
    #[error("corrupt model config: {0}")]
    CorruptConfig(serde_json::Error),
    /// A model config that parses but is not a model this version builds.
    #[error("{0}")]
    InvalidConfig(InvalidSetting),
    #[error("{size} bytes, more than a checkpoint of its model can hold ({limit})")]
    TooLarge { size: u64, limit: u64 },
    #[error("{count} unexpected bytes after the end")]
    TrailingBytes { count: usize },
    #[error(
        "the model weights take {bytes} bytes, but the {parameters} parameters of the model config need {needed}"
    )]
    WeightsTooShort {
        bytes: usize,
        parameters: u64,
        needed: u64,
    },
    /// A record (weights, averaged weights or optimiser state) that does not decode.
    #[error("corrupt {what}: {message}")]
    CorruptRecord { what: &'static str, message: String },
    #[error("{what} do not fit the model {config}: {message}")]
    WeightsDoNotFit {
        what: &'static str,
        config: String,
        message: String,
    },
    #[error("cannot serialise the {what}: {message}")]
    Serialise { what: &'static str, message: String },
}

/// The state needed to continue training exactly where it stopped.
pub struct Checkpoint {
    pub step: usize,
    pub config: PixelCnnConfig,
    /// The trained weights.
    pub model: PixelCnn,
    /// The exponential moving average of the weights, if the run keeps one.
    pub average: Option<PixelCnn>,
    pub optimizer: ModuleOptimizer,
}

impl Checkpoint {
    /// The model to evaluate and sample: the moving average of the weights if the run keeps
    /// one, else the trained weights.
    pub fn into_inference_model(self) -> PixelCnn {
        self.average.unwrap_or(self.model)
    }

    /// [`Checkpoint::into_inference_model`], borrowed.
    pub fn inference_model(&self) -> &PixelCnn {
        self.average.as_ref().unwrap_or(&self.model)
    }
}

impl Checkpoint {
    /// The bytes of a checkpoint file holding this state.
    pub fn encode(
        step: usize,
        config: &PixelCnnConfig,
        model: &PixelCnn,
        average: Option<&PixelCnn>,
        optimizer: &ModuleOptimizer,
    ) -> Result<Vec<u8>, FormatError> {
        let serialise = |model: &PixelCnn| {
            model
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| FormatError::Serialise {
                    what: "model",
                    message: e.to_string(),
                })
        };
        let weights = serialise(model)?;
        let average = average.map(serialise).transpose()?;
        let average: &[u8] = average.as_deref().unwrap_or_default();
        let optimizer_state = optimizer.into_bytes().map_err(|e| FormatError::Serialise {
            what: "optimiser",
            message: e.to_string(),
        })?;
        let config_json = serde_json::to_vec(config).expect("model config serialises");

        let mut file = Vec::with_capacity(weights.len() + optimizer_state.len() + 1024);
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.extend_from_slice(&(step as u64).to_le_bytes());
        for section in [
            &config_json[..],
            &weights[..],
            &optimizer_state[..],
            average,
        ] {
            file.extend_from_slice(&(section.len() as u64).to_le_bytes());
            file.extend_from_slice(section);
        }
        let checksum = crc32fast::hash(&file);
        file.extend_from_slice(&checksum.to_le_bytes());
        Ok(file)
    }

    /// Reads the checkpoint file at `path` and rebuilds the model it holds on `device`. The
    /// file's size is checked against what its header's model can fill before the rest of it is
    /// read.
    pub fn read(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let invalid = |error| CheckpointError::Format {
            path: path.to_path_buf(),
            error,
        };
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (mut file, size) = open_bounded(path, u64::MAX)?;
        let mut head = Vec::new();
        (&mut file)
            .take(HEADER_BYTES + MAX_CONFIG_BYTES)
            .read_to_end(&mut head)
            .map_err(io)?;
        let limit = match size_limit(&head) {
            Ok(limit) => limit,
            // Decoding what was read names the fault as for any file: a damaged one by its
            // checksum, an older one by what does not parse.
            Err(error) => {
                let error = Self::decode(&head, device).err().unwrap_or(error);
                return Err(invalid(error));
            }
        };
        if size > limit {
            return Err(invalid(FormatError::TooLarge { size, limit }));
        }
        let mut bytes = head;
        file.take(limit).read_to_end(&mut bytes).map_err(io)?;
        Self::decode(&bytes, device).map_err(invalid)
    }

    /// Parses a checkpoint file's bytes and rebuilds its model on `device`.
    pub fn decode(bytes: &[u8], device: &Device) -> Result<Self, FormatError> {
        decode_checkpoint(bytes, device)
    }
}

/// The largest `config.json`, and model config section of a checkpoint, read.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Magic, version, step and the config section's length.
const HEADER_BYTES: u64 = 8 + 4 + 8 + 8;

/// The most bytes a checkpoint whose first bytes are `head` can take: its header and config,
/// and for each parameter of that model its weight, Adam's two moments and the moving average
/// (16 bytes), with a quarter and a mebibyte to spare for the records' own structure.
fn size_limit(head: &[u8]) -> Result<u64, FormatError> {
    let mut reader = SectionReader { bytes: head };
    reader.take(MAGIC.len() + 4 + 8)?;
    let config_len = reader.u64()?;
    if config_len > MAX_CONFIG_BYTES {
        return Err(FormatError::ConfigTooLarge { bytes: config_len });
    }
    let config = model_config(reader.take(config_len as usize)?)?;
    let parameters = config.parameter_count().saturating_mul(20);
    Ok(HEADER_BYTES + config_len + parameters + (1 << 20))
}

/// The model config of a checkpoint's first section, checked.
fn model_config(section: &[u8]) -> Result<PixelCnnConfig, FormatError> {
    let config: PixelCnnConfig =
        serde_json::from_slice(section).map_err(FormatError::CorruptConfig)?;
    config.validate().map_err(FormatError::InvalidConfig)?;
    Ok(config)
}

fn decode_checkpoint(bytes: &[u8], device: &Device) -> Result<Checkpoint, FormatError> {
    let mut reader = SectionReader { bytes };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(FormatError::NotACheckpoint);
    }
    let version = u32::from_le_bytes(reader.take(4)?.try_into().expect("4 bytes"));
    if !(2..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::Version { version });
    }
    if version >= CHECKSUMMED {
        reader.bytes = verified(bytes, reader.bytes)?;
    }
    let step = reader.u64()? as usize;
    let config = model_config(reader.section()?)?;
    let weights = reader.section()?;
    let optimizer_state = reader.section()?;
    let average = if version >= 3 {
        Some(reader.section()?).filter(|a| !a.is_empty())
    } else {
        None
    };
    if !reader.bytes.is_empty() {
        return Err(FormatError::TrailingBytes {
            count: reader.bytes.len(),
        });
    }
    let model = load_weights(&config, weights, device, "model weights")?;
    let average = average
        .map(|a| load_weights(&config, a, device, "averaged weights"))
        .transpose()?;
    let optimizer = without_panics("optimiser state", || {
        new_optimizer()
            .from_bytes(Bytes::from_bytes_vec(optimizer_state.to_vec()))
            .map_err(|e| FormatError::CorruptRecord {
                what: "optimiser state",
                message: e.to_string(),
            })
    })?;
    Ok(Checkpoint {
        step,
        config,
        model,
        average,
        optimizer,
    })
}

/// `rest`, the part of `file` after its version, less the CRC-32 of everything before it that
/// ends `file`, if that checksum is right.
fn verified<'a>(file: &[u8], rest: &'a [u8]) -> Result<&'a [u8], FormatError> {
    let Some(split) = rest.len().checked_sub(4) else {
        return Err(FormatError::Truncated);
    };
    let (rest, stored) = rest.split_at(split);
    let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&file[..file.len() - 4]);
    if stored != computed {
        return Err(FormatError::Damaged { stored, computed });
    }
    Ok(rest)
}

/// Rebuilds the model `config` describes from serialised `weights` (the `what` of messages).
fn load_weights(
    config: &PixelCnnConfig,
    weights: &[u8],
    device: &Device,
    what: &'static str,
) -> Result<PixelCnn, FormatError> {
    check_weights_fit(config, weights)?;
    without_panics(what, || {
        let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
            .map_err(|e| FormatError::CorruptRecord {
                what,
                message: e.to_string(),
            })?;
        config
            .init(device)
            .try_load_record(record)
            .map_err(|e| FormatError::WeightsDoNotFit {
                what,
                config: format!("{config:?}"),
                message: e.to_string(),
            })
    })
}

/// Refuses weights too short for the model `config` describes (4 bytes a parameter), before
/// that model is built: a crafted config could otherwise ask for more memory than the file
/// could ever fill.
fn check_weights_fit(config: &PixelCnnConfig, weights: &[u8]) -> Result<(), FormatError> {
    let parameters = config.parameter_count();
    let needed = parameters.saturating_mul(4);
    if (weights.len() as u64) < needed {
        return Err(FormatError::WeightsTooShort {
            bytes: weights.len(),
            parameters,
            needed,
        });
    }
    Ok(())
}

/// Runs burn's record decoding, which panics on some malformed records (found by fuzzing), and
/// reports such a panic as a corrupt `what` instead of letting it end the program. The panic
/// message is kept off standard error (see [`crate::quiet_panic`]).
fn without_panics<T>(
    what: &'static str,
    decode: impl FnOnce() -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    crate::quiet_panic::catch_quietly(decode).unwrap_or_else(|_| {
        Err(FormatError::CorruptRecord {
            what,
            message: "the record is malformed".into(),
        })
    })
}

/// Reads length-prefixed sections, reporting truncation instead of panicking.
struct SectionReader<'a> {
    bytes: &'a [u8],
}

impl<'a> SectionReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], FormatError> {
        if self.bytes.len() < count {
            return Err(FormatError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn section(&mut self) -> Result<&'a [u8], FormatError> {
        let len = usize::try_from(self.u64()?).map_err(|_| FormatError::SectionOverflow)?;
        self.take(len)
    }
}
