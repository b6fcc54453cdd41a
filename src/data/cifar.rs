//! The CIFAR-10 binary format (Krizhevsky 2009): files `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin`, each a run of 3,073-byte records — one label byte (0–9), then the
//! 32×32 image as three 1,024-byte planes, red, green and blue, each row-major.

use std::path::{Path, PathBuf};

use super::{DataError, ImageSet};
use crate::files::read_bounded;

/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;
const CLASSES: u8 = 10;

/// Parses the records of one CIFAR-10 binary file.
pub fn parse(bytes: &[u8]) -> Result<ImageSet, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::Format(format!(
            "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (1 label + 3×32×32 \
             pixels): the file is truncated or not CIFAR-10 binary",
            bytes.len()
        )));
    }
    let count = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(count);
    let mut pixels = Vec::with_capacity(count * 3 * PLANE);
    for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] >= CLASSES {
            return Err(DataError::Format(format!(
                "record {index} has label {}, but CIFAR-10 labels are 0–9",
                record[0]
            )));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(ImageSet {
        channels: 3,
        height: SIDE,
        width: SIDE,
        pixels,
        labels: Some(labels),
        embeddings: None,
    })
}

/// The training batches `data_batch_1.bin` … `data_batch_5.bin` that `dir` holds (at least
/// the first), concatenated in order.
pub fn load_training(dir: &Path) -> Result<ImageSet, DataError> {
    let dir = batches_dir(dir)?;
    let files: Vec<PathBuf> = (1..=5)
        .map(|n| dir.join(format!("data_batch_{n}.bin")))
        .take_while(|path| path.is_file())
        .collect();
    if files.is_empty() {
        return Err(DataError::File {
            path: dir,
            message: "no data_batch_1.bin: not a CIFAR-10 binary folder".into(),
        });
    }
    let mut sets = files.iter().map(|path| load(path));
    let mut all = sets.next().expect("at least one file")?;
    for set in sets {
        let set = set?;
        all.pixels.extend(set.pixels);
        all.labels
            .as_mut()
            .expect("CIFAR-10 has labels")
            .extend(set.labels.expect("CIFAR-10 has labels"));
    }
    Ok(all)
}

/// The largest batch file read: 50,000 records, all of CIFAR-10's training images.
const MAX_BATCH_BYTES: u64 = 50_000 * RECORD as u64;

/// The test batch `test_batch.bin`.
pub fn load_test(dir: &Path) -> Result<ImageSet, DataError> {
    load(&batches_dir(dir)?.join("test_batch.bin"))
}

fn load(path: &Path) -> Result<ImageSet, DataError> {
    let error = |message: String| DataError::File {
        path: path.to_path_buf(),
        message,
    };
    let bytes = read_bounded(path, MAX_BATCH_BYTES)?;
    parse(&bytes).map_err(|e| error(e.to_string()))
}

/// `dir`, or its `cifar-10-batches-bin` sub-folder, as the published archive unpacks.
fn batches_dir(dir: &Path) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::File {
            path: dir.to_path_buf(),
            message: "not a folder".into(),
        });
    }
    let nested = dir.join("cifar-10-batches-bin");
    Ok(if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    })
}
