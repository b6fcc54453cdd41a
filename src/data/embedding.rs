//! Conditioning vectors read from a file: one real vector h per image, for the
//! embedding-conditional PixelCNN of arXiv 1606.05328, Section 2.3 (there: face embeddings).
//! The file is a NumPy `.npy` array of float32, shape `[N, d]`, in C order.

use std::io::Read;
use std::path::Path;

use npyz::{NpyFile, Order};

use super::DataError;
use crate::files::open_bounded;

/// Why the bytes of a `.npy` file are not float32 conditioning vectors `[N, d]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NpyError {
    #[error("not a float32 [N, d] array: the .npy header describes a structured or nested type")]
    NestedType,
    #[error("the .npy header takes {0} bytes, more than the {MAX_HEADER_BYTES} read")]
    HeaderTooLong(usize),
    #[error("not a valid .npy file: {0}")]
    NotNpy(String),
    #[error("expected a 2-dimensional array [images, d], got shape {0:?}")]
    Shape(Vec<u64>),
    #[error("the array is in Fortran order; save it in C order")]
    FortranOrder,
    #[error("the vectors have dimension 0")]
    ZeroDimension,
    #[error("shape [{count}, {dim}] needs more float32 values than the file holds (truncated?)")]
    Truncated { count: u64, dim: u64 },
    #[error("expected float32 values ({dtype}): {message}")]
    NotFloat32 { dtype: String, message: String },
    #[error("value {index} of vector {vector} is {value}: conditioning vectors must be finite")]
    NotFinite {
        vector: usize,
        index: usize,
        value: f32,
    },
}

/// `count` vectors of `dim` values each.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dim: usize,
    /// Row-major `[count][dim]`.
    pub values: Vec<f32>,
}

impl Embeddings {
    /// Reads a `.npy` file of float32 `[N, d]`.
    pub fn read_npy(path: &Path) -> Result<Self, DataError> {
        let error = |message: String| DataError::File {
            path: path.to_path_buf(),
            message,
        };
        let npy_error = |e: NpyError| error(e.to_string());
        let (file, size) = open_bounded(path, MAX_NPY_BYTES)?;
        let mut bytes = Vec::new();
        let mut file = std::io::BufReader::new(file);
        let read = |file: &mut std::io::BufReader<std::fs::File>, limit, bytes: &mut Vec<u8>| {
            file.take(limit)
                .read_to_end(bytes)
                .map_err(|e| error(e.to_string()))
        };
        read(&mut file, MAX_HEADER_BYTES, &mut bytes)?;
        // The header's shape says how long the file must be: checked before the rest is read.
        if let Some(needed) = announced_size(&bytes).map_err(npy_error)?
            && needed != size
        {
            let truncated = if size < needed { " (truncated?)" } else { "" };
            return Err(error(format!(
                "{size} bytes, but the header's shape and type need {needed}{truncated}"
            )));
        }
        read(&mut file, size, &mut bytes)?;
        Self::parse_npy(&bytes).map_err(npy_error)
    }

    /// Parses the bytes of a `.npy` file of float32 `[N, d]`.
    pub fn parse_npy(bytes: &[u8]) -> Result<Self, NpyError> {
        check_header_nesting(bytes)?;
        let file = NpyFile::new(bytes).map_err(|e| NpyError::NotNpy(e.to_string()))?;
        let &[count, dim] = file.shape() else {
            return Err(NpyError::Shape(file.shape().to_vec()));
        };
        if file.order() != Order::C {
            return Err(NpyError::FortranOrder);
        }
        if dim == 0 {
            return Err(NpyError::ZeroDimension);
        }
        // Refuse a header that promises more data than the file holds before reading it.
        let needed = count.checked_mul(dim).and_then(|n| n.checked_mul(4));
        if needed.is_none_or(|needed| needed > bytes.len() as u64) {
            return Err(NpyError::Truncated { count, dim });
        }
        let dtype = file.dtype();
        let values: Vec<f32> = file.into_vec().map_err(|e| NpyError::NotFloat32 {
            dtype: format!("{dtype:?}"),
            message: e.to_string(),
        })?;
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(NpyError::NotFinite {
                vector: at / dim as usize,
                index: at % dim as usize,
                value: values[at],
            });
        }
        Ok(Self {
            dim: dim as usize,
            values,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The vector of image `index`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.dim..(index + 1) * self.dim]
    }

    /// The vectors of the rows at `indices`.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            dim: self.dim,
            values: indices
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
        }
    }

    /// Splits off the vectors from row `at` on.
    pub fn split_off(&mut self, at: usize) -> Self {
        Self {
            dim: self.dim,
            values: self.values.split_off(at * self.dim),
        }
    }
}

/// The largest `.npy` file read: 256 million float32 values.
const MAX_NPY_BYTES: u64 = 1 << 30;
/// The most bytes of a `.npy` file read before its header is understood.
const MAX_HEADER_BYTES: u64 = 1 << 16;

/// Where the header of a `.npy` file starting with `bytes` lies: its start and length, if
/// `bytes` hold the magic string, the version and the length.
fn header_span(bytes: &[u8]) -> Option<(usize, usize)> {
    match bytes.get(6) {
        Some(1) => bytes
            .get(8..10)
            .map(|n| (10usize, usize::from(u16::from_le_bytes([n[0], n[1]])))),
        Some(2 | 3) => bytes
            .get(8..12)
            .map(|n| (12, u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize)),
        _ => None,
    }
}

/// The size in bytes of the `.npy` file whose first bytes are `head`, as its header's shape and
/// type announce it; `None` where the header cannot tell (not a `.npy` header, or a type of no
/// fixed size), which parsing the file then reports.
fn announced_size(head: &[u8]) -> Result<Option<u64>, NpyError> {
    let Some((start, len)) = header_span(head) else {
        return Ok(None);
    };
    let Some(header) = head.get(..start + len) else {
        return Err(NpyError::HeaderTooLong(len));
    };
    check_header_nesting(header)?;
    let Ok(file) = NpyFile::new(header) else {
        return Ok(None);
    };
    let Some(item) = file.dtype().num_bytes() else {
        return Ok(None);
    };
    let values = file
        .shape()
        .iter()
        .try_fold(1u64, |total, &d| total.checked_mul(d));
    Ok(values
        .and_then(|v| v.checked_mul(item as u64))
        .and_then(|data| data.checked_add(header.len() as u64))
        .or(Some(u64::MAX)))
}

/// Refuses a header with nested brackets before the `.npy` parser sees it: a float32 `[N, d]`
/// array's header is one dict with one shape tuple, and deeply nested brackets make the header
/// parser's backtracking take exponential time (found by fuzzing).
fn check_header_nesting(bytes: &[u8]) -> Result<(), NpyError> {
    let header =
        header_span(bytes).and_then(|(start, len)| bytes.get(start..start.checked_add(len)?));
    let Some(header) = header else {
        return Ok(()); // Not even a header: the parser reports what is wrong.
    };
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'[') > 0 || count(b'(') > 1 || count(b'{') > 1 {
        return Err(NpyError::NestedType);
    }
    Ok(())
}
