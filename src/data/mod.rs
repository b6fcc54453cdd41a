//! Image data: MNIST-style IDX files (from a folder or the copy embedded in the binary), CIFAR-10
//! binary batches and folders of PNG/JPEG files; the K-level quantisation `level = ⌊v·K/256⌋` of
//! PixelCNN's discrete softmax (arXiv 1601.06759, Section 2.2), and batching into tensors.

pub mod binarize;
pub mod cifar;
pub mod embedding;
pub mod folder;
pub mod idx;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::files::{FileError, open_bounded};
use crate::model::{Conditioning, one_hot};
pub use binarize::Binarization;
pub use embedding::{Embeddings, NpyError};
pub use folder::FolderOptions;

/// Why a data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Format(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Read(#[from] FileError),
}

impl DataError {
    /// The error as one of the file at `path`: a format error gets the path before its message.
    pub fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Format(message) => Self::File {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        }
    }
}

/// Grayscale or colour images with optional labels, stored as bytes `0..=255`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Colour channels: 1 (grayscale) or 3 (R, G, B).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `len · channels · height · width` bytes: image after image, each channel's plane after
    /// the other (R, then G, then B), row after row.
    pub pixels: Vec<u8>,
    pub labels: Option<Vec<u8>>,
    /// One conditioning vector per image, if given.
    pub embeddings: Option<Embeddings>,
}

impl ImageSet {
    /// Builds a set from parsed IDX images `[N, H, W]` and, if given, labels `[N]`.
    pub fn from_idx(
        images: idx::IdxArray,
        labels: Option<idx::IdxArray>,
    ) -> Result<Self, DataError> {
        let [count, height, width] = images.dims[..] else {
            return Err(DataError::Format(format!(
                "image file must have 3 dimensions [count, height, width], got {:?}",
                images.dims
            )));
        };
        if height == 0 || width == 0 {
            return Err(DataError::Format(format!(
                "images must be at least 1×1, got {height}×{width}"
            )));
        }
        let labels = labels
            .map(|labels| match labels.dims[..] {
                [n] if n == count => Ok(labels.data),
                [n] => Err(DataError::Format(format!(
                    "{count} images but {n} labels: the files do not belong together"
                ))),
                _ => Err(DataError::Format(format!(
                    "label file must have 1 dimension, got {:?}",
                    labels.dims
                ))),
            })
            .transpose()?;
        Ok(Self {
            channels: 1,
            height,
            width,
            pixels: images.data,
            labels,
            embeddings: None,
        })
    }

    /// Sub-pixels of one image: `channels · height · width`.
    pub fn values_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Attaches one conditioning vector per image.
    pub fn with_embeddings(mut self, embeddings: Embeddings) -> Result<Self, DataError> {
        if embeddings.len() != self.len() {
            return Err(DataError::Format(format!(
                "{} images but {} conditioning vectors: the condition file does not belong to this data",
                self.len(),
                embeddings.len()
            )));
        }
        self.embeddings = Some(embeddings);
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.pixels.len() / self.values_per_image()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.values_per_image();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// Splits off the last `count` images, returning `(first, last)`.
    pub fn split_tail(mut self, count: usize) -> (Self, Self) {
        let keep = self.len() - count.min(self.len());
        let tail_pixels = self.pixels.split_off(keep * self.values_per_image());
        let tail_labels = self.labels.as_mut().map(|labels| labels.split_off(keep));
        let tail_embeddings = self.embeddings.as_mut().map(|e| e.split_off(keep));
        let tail = Self {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: tail_pixels,
            labels: tail_labels,
            embeddings: tail_embeddings,
        };
        (self, tail)
    }

    /// Splits the set into every image but each tenth, and each tenth (the 10th, 20th, …; with
    /// fewer than 10 images, the last): a split that takes from every class folder alike.
    pub fn split_every_tenth(self) -> (Self, Self) {
        let count = self.len();
        let held_out = |i: usize| i % 10 == 9 || (count < 10 && i == count - 1);
        let (kept, tail): (Vec<usize>, Vec<usize>) = (0..count).partition(|&i| !held_out(i));
        (self.select(&kept), self.select(&tail))
    }

    /// The images at `indices`, with their labels and vectors.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: self
                .labels
                .as_ref()
                .map(|labels| indices.iter().map(|&i| labels[i]).collect()),
            embeddings: self.embeddings.as_ref().map(|e| e.select(indices)),
        }
    }

    /// The conditioning vectors h `[B, d]` of the images at `indices`, or `None` for an
    /// unconditional model. Call [`ImageSet::check_conditioning`] first.
    pub fn condition(
        &self,
        indices: &[usize],
        conditioning: Conditioning,
        device: &Device,
    ) -> Option<Tensor<2>> {
        match conditioning {
            Conditioning::None => None,
            Conditioning::Class { classes } => {
                let labels = self.labels.as_ref().expect("checked: the set has labels");
                let chosen: Vec<usize> = indices.iter().map(|&i| usize::from(labels[i])).collect();
                Some(one_hot(&chosen, classes, device))
            }
            Conditioning::Embedding { dim } => {
                let embeddings = self
                    .embeddings
                    .as_ref()
                    .expect("checked: the set has vectors");
                let values: Vec<f32> = indices
                    .iter()
                    .flat_map(|&i| embeddings.row(i).to_vec())
                    .collect();
                Some(Tensor::from_data(
                    TensorData::new(values, [indices.len(), dim]),
                    device,
                ))
            }
        }
    }

    /// Checks that the set has what `conditioning` needs: labels below the number of classes.
    pub fn check_conditioning(&self, conditioning: Conditioning) -> Result<(), DataError> {
        let classes = match conditioning {
            Conditioning::None => return Ok(()),
            Conditioning::Class { classes } => classes,
            Conditioning::Embedding { dim } => return self.check_embeddings(dim),
        };
        let labels = self.labels.as_ref().ok_or_else(|| {
            DataError::Format(
                "a class-conditional model needs labels, and this data set has none".into(),
            )
        })?;
        match labels.iter().find(|&&l| usize::from(l) >= classes) {
            Some(label) => Err(DataError::Format(format!(
                "label {label} is out of range for a model of {classes} classes"
            ))),
            None => Ok(()),
        }
    }

    fn check_embeddings(&self, dim: usize) -> Result<(), DataError> {
        match &self.embeddings {
            None => Err(DataError::Format(
                "this model is conditioned on vectors: it needs a condition file with one vector per image".into(),
            )),
            Some(e) if e.dim != dim => Err(DataError::Format(format!(
                "the condition file holds vectors of dimension {}, but the model was trained on dimension {dim}",
                e.dim
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Number of classes of the labels: the largest label plus one.
    pub fn classes(&self) -> Option<usize> {
        self.labels
            .as_ref()
            .and_then(|labels| labels.iter().max())
            .map(|&max| usize::from(max) + 1)
    }

    /// Image `index` quantised to `levels`.
    pub fn levels(&self, index: usize, levels: usize) -> Vec<u8> {
        self.image(index)
            .iter()
            .map(|&v| quantize(v, levels))
            .collect()
    }

    /// The images at `indices` quantised to `levels`, as a tensor `[B, C, H, W]`.
    pub fn batch(&self, indices: &[usize], levels: usize, device: &Device) -> Tensor<4, Int> {
        let data: Vec<i64> = indices
            .iter()
            .flat_map(|&i| self.levels(i, levels))
            .map(i64::from)
            .collect();
        Tensor::from_data(
            TensorData::new(
                data,
                [indices.len(), self.channels, self.height, self.width],
            ),
            device,
        )
    }
}

/// The intensity level `⌊v·K/256⌋` of a byte value `v` for `K` levels.
pub fn quantize(value: u8, levels: usize) -> u8 {
    (usize::from(value) * levels / 256) as u8
}

/// The byte value shown for a level: levels spread evenly over `0..=255`.
pub fn dequantize(level: u8, levels: usize) -> u8 {
    ((usize::from(level) * 255 + (levels - 1) / 2) / (levels - 1)) as u8
}

/// The kinds of data set `train --dataset` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// MNIST-style IDX files (or, without --data-dir, the MNIST test set in the binary).
    #[default]
    Mnist,
    /// Fashion-MNIST's IDX files (Xiao et al. 2017, arXiv 1708.07747): ten classes of clothing
    /// at MNIST's size, read from Debian's package `dataset-fashion-mnist` unless --data-dir
    /// names another folder.
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// CIFAR-10 binary batches (data_batch_1.bin … data_batch_5.bin, test_batch.bin).
    Cifar10,
    /// A folder of PNG/JPEG images, optionally one sub-folder per class.
    Folder,
}

impl Dataset {
    /// The name `--dataset` and the run config give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
            Self::Folder => "folder",
        }
    }

    /// The names of the classes labels `0..10` stand for, where the data set names them: not
    /// MNIST's, whose names are their numbers, nor a folder's, whose sub-folders the run does
    /// not keep.
    pub fn class_names(self) -> Option<&'static [&'static str]> {
        match self {
            Self::FashionMnist => Some(&FASHION_MNIST_CLASSES),
            Self::Cifar10 => Some(&CIFAR10_CLASSES),
            Self::Mnist | Self::Folder => None,
        }
    }

    /// The label of class `name` (or of its number), where [`Dataset::class_names`] knows it.
    pub fn class_of(self, name: &str, classes: usize) -> Option<usize> {
        let by_number = name.parse::<usize>().ok();
        let by_name = || {
            self.class_names()?
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
        };
        by_number.or_else(by_name).filter(|&class| class < classes)
    }
}

/// Fashion-MNIST's labels 0..=9 (Xiao et al. 2017, Table 1), one word each.
const FASHION_MNIST_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// CIFAR-10's labels 0..=9 (batches.meta.txt).
const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Where images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The 10,000 MNIST test images shipped inside the binary: the first 9,000 train, the last
    /// 1,000 are both the validation and the evaluation set.
    Embedded,
    /// A folder with `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally `.gz`.
    Idx(PathBuf),
    /// A folder with CIFAR-10's binary batches.
    Cifar10(PathBuf),
    /// A folder of images; every tenth in sorted order (the 10th, 20th, …; with fewer than 10,
    /// the last) is held out as the validation and evaluation set.
    Images(PathBuf, folder::FolderOptions),
}

const EMBEDDED_IMAGES: &[u8] = include_bytes!("../../data/t10k-images-idx3-ubyte.gz");
const EMBEDDED_LABELS: &[u8] = include_bytes!("../../data/t10k-labels-idx1-ubyte.gz");
const EMBEDDED_HELD_OUT: usize = 1_000;
/// Largest validation split taken from the end of a training file.
const MAX_VALIDATION: usize = 5_000;

impl DataSource {
    /// The source of `dataset` in `dir`; MNIST without a folder is the embedded set.
    pub fn new(
        dataset: Dataset,
        dir: Option<PathBuf>,
        folder: Option<folder::FolderOptions>,
    ) -> Result<Self, DataError> {
        match (dataset, dir) {
            (Dataset::Mnist, dir) => Ok(dir.map_or(Self::Embedded, Self::Idx)),
            (Dataset::FashionMnist, Some(dir)) => Ok(Self::Idx(dir)),
            (Dataset::FashionMnist, None) => fashion_mnist_package(Path::new(FASHION_MNIST_DIR)),
            (Dataset::Cifar10, Some(dir)) => Ok(Self::Cifar10(dir)),
            (Dataset::Folder, Some(dir)) => folder
                .map(|options| Self::Images(dir, options))
                .ok_or_else(|| DataError::Format("a folder data set needs an image size".into())),
            (_, None) => Err(DataError::Format(
                "the cifar10 and folder data sets need a data folder".into(),
            )),
        }
    }

    /// Training and validation images. For IDX and CIFAR-10 folders, the last 10% of the
    /// training files (at most 5,000 images) is held out for validation. `embeddings` has one
    /// vector per image of the whole training data (for the embedded set: of all 10,000
    /// images; for an image folder: of all its images).
    pub fn training(
        &self,
        embeddings: Option<Embeddings>,
    ) -> Result<(ImageSet, ImageSet), DataError> {
        let (set, dir) = match self {
            Self::Embedded => {
                return Ok(with_optional(embedded()?, embeddings)?.split_tail(EMBEDDED_HELD_OUT));
            }
            Self::Images(dir, options) => {
                let set = with_optional(folder::load(dir, *options)?, embeddings)?;
                return at_least_two(set, dir).map(|set| set.split_every_tenth());
            }
            Self::Idx(dir) => (load_pair(dir, "train")?, dir),
            Self::Cifar10(dir) => (cifar::load_training(dir)?, dir),
        };
        let set = at_least_two(with_optional(set, embeddings)?, dir)?;
        let held_out = (set.len() / 10).clamp(1, MAX_VALIDATION);
        Ok(set.split_tail(held_out))
    }

    /// The evaluation images; `embeddings` has one vector per image of the whole test data (for
    /// the embedded set: of all 10,000 images; for an image folder: of all its images).
    pub fn test(&self, embeddings: Option<Embeddings>) -> Result<ImageSet, DataError> {
        match self {
            Self::Embedded => Ok(with_optional(embedded()?, embeddings)?
                .split_tail(EMBEDDED_HELD_OUT)
                .1),
            Self::Idx(dir) => with_optional(load_pair(dir, "t10k")?, embeddings),
            Self::Cifar10(dir) => with_optional(cifar::load_test(dir)?, embeddings),
            Self::Images(dir, options) => {
                let set = with_optional(folder::load(dir, *options)?, embeddings)?;
                Ok(at_least_two(set, dir)?.split_every_tenth().1)
            }
        }
    }
}

/// Where Debian's package `dataset-fashion-mnist` installs the four IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST in `dir`, where its package installs it; an error that names the package if
/// the folder is missing.
fn fashion_mnist_package(dir: &Path) -> Result<DataSource, DataError> {
    let dir = dir.to_path_buf();
    if !dir.is_dir() {
        return Err(DataError::File {
            path: dir,
            message: "no Fashion-MNIST here: install Debian's package dataset-fashion-mnist \
                      (apt-get install dataset-fashion-mnist) or name a folder of its four IDX files"
                .into(),
        });
    }
    Ok(DataSource::Idx(dir))
}

fn at_least_two(set: ImageSet, dir: &Path) -> Result<ImageSet, DataError> {
    if set.len() < 2 {
        return Err(DataError::File {
            path: dir.to_path_buf(),
            message: "at least 2 training images are needed (one for validation)".into(),
        });
    }
    Ok(set)
}

fn with_optional(set: ImageSet, embeddings: Option<Embeddings>) -> Result<ImageSet, DataError> {
    match embeddings {
        Some(embeddings) => set.with_embeddings(embeddings),
        None => Ok(set),
    }
}

fn embedded() -> Result<ImageSet, DataError> {
    ImageSet::from_idx(
        idx::parse(EMBEDDED_IMAGES)?,
        Some(idx::parse(EMBEDDED_LABELS)?),
    )
}

/// Loads `{prefix}-images-idx3-ubyte[.gz]` and, when present, `{prefix}-labels-idx1-ubyte[.gz]`.
fn load_pair(dir: &Path, prefix: &str) -> Result<ImageSet, DataError> {
    if !dir.is_dir() {
        return Err(DataError::File {
            path: dir.to_path_buf(),
            message: "not a folder".into(),
        });
    }
    let images_name = format!("{prefix}-images-idx3-ubyte");
    let images_path = find_file(dir, &images_name).ok_or_else(|| DataError::File {
        path: dir.to_path_buf(),
        message: format!("no {images_name} or {images_name}.gz in this folder"),
    })?;
    let images = read_idx(&images_path)?;
    let labels = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))
        .map(|path| read_idx(&path))
        .transpose()?;
    ImageSet::from_idx(images, labels).map_err(|e| DataError::File {
        path: images_path,
        message: e.to_string(),
    })
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [name.to_string(), format!("{name}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn read_idx(path: &Path) -> Result<idx::IdxArray, DataError> {
    let (file, _) = open_bounded(path, u64::MAX)?;
    idx::parse_from(std::io::BufReader::new(file)).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Dataset; 4] = [
        Dataset::Mnist,
        Dataset::FashionMnist,
        Dataset::Cifar10,
        Dataset::Folder,
    ];

    #[test]
    fn each_dataset_has_the_name_its_run_config_gives_it() {
        for dataset in ALL {
            assert_eq!(serde_json::to_value(dataset).unwrap(), dataset.name());
        }
        assert_eq!(Dataset::FashionMnist.name(), "fashion-mnist");
    }

    #[cfg(feature = "clap")]
    #[test]
    fn each_dataset_has_the_name_its_flag_gives_it() {
        use clap::ValueEnum;
        assert_eq!(Dataset::value_variants(), ALL);
        for dataset in ALL {
            let flag = dataset.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), dataset.name());
        }
    }

    #[test]
    fn classes_are_found_by_number_or_by_name_within_the_models_classes() {
        let fashion = Dataset::FashionMnist;
        assert_eq!(fashion.class_of("7", 10), Some(7));
        assert_eq!(fashion.class_of("sneaker", 10), Some(7));
        assert_eq!(fashion.class_of("Ankle-Boot", 10), Some(9));
        assert_eq!(fashion.class_of("ankle-boot", 9), None);
        assert_eq!(fashion.class_of("10", 10), None);
        assert_eq!(fashion.class_of("hat", 10), None);
        assert_eq!(Dataset::Cifar10.class_of("ship", 10), Some(8));
        assert_eq!(Dataset::Mnist.class_of("3", 10), Some(3));
        assert_eq!(Dataset::Mnist.class_of("sneaker", 10), None);
    }

    #[test]
    fn fashion_mnist_without_its_folder_names_the_package_to_install() {
        let missing = Path::new("/nonexistent/fashion-mnist");
        let error = fashion_mnist_package(missing).unwrap_err().to_string();
        assert!(error.contains("dataset-fashion-mnist"), "{error}");
        assert!(error.starts_with("/nonexistent/fashion-mnist"), "{error}");
        let here = tempfile::tempdir().unwrap();
        let source = DataSource::new(Dataset::FashionMnist, Some(here.path().into()), None);
        assert_eq!(source.unwrap(), DataSource::Idx(here.path().into()));
    }
}
