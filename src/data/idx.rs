//! The IDX file format of the MNIST distribution (LeCun et al.): a big-endian header — two zero
//! bytes, a type code (0x08 for unsigned bytes), the number of dimensions — then one u32 per
//! dimension and the data. Files may be gzipped, as they are published.

use std::io::{BufRead, Read};

use flate2::read::GzDecoder;

use super::DataError;

/// The contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UNSIGNED_BYTE: u8 = 0x08;

/// The largest IDX body accepted: 2^31 bytes (2 GiB; MNIST's 60,000 training images take 47 MB).
/// A header asking for more is refused before anything is read.
pub const MAX_IDX_BYTES: usize = 1 << 31;

/// Decompresses `bytes` if they are gzipped, then parses them as IDX. A gzip stream is
/// decompressed only as far as the header says the file goes (and one byte more, to tell a
/// longer file): a small file that inflates to gigabytes is refused after a few kilobytes.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        read(GzDecoder::new(bytes))
    } else {
        parse_raw(bytes)
    }
}

/// Reads one IDX file from `reader`, decompressing it if it is gzipped: only as far as its
/// header says it goes (and one byte more, to tell a longer file), so that memory is bounded by
/// the header's sizes, not by the file's.
pub fn parse_from(mut reader: impl BufRead) -> Result<IdxArray, DataError> {
    let gzipped = reader
        .fill_buf()
        .map_err(|e| DataError::Format(format!("cannot read: {e}")))?
        .starts_with(&GZIP_MAGIC);
    if gzipped {
        read(GzDecoder::new(reader))
    } else {
        read(reader)
    }
}

/// Parses uncompressed IDX bytes.
pub fn parse_raw(bytes: &[u8]) -> Result<IdxArray, DataError> {
    read(bytes)
}

/// Reads one IDX file from `reader`: the header, then the body its dimensions announce.
fn read(mut reader: impl Read) -> Result<IdxArray, DataError> {
    let header = read_up_to(&mut reader, 4)?;
    if header.len() < 4 {
        return Err(DataError::Format(format!(
            "file too short for an IDX header ({} bytes)",
            header.len()
        )));
    }
    if header[0] != 0 || header[1] != 0 {
        return Err(DataError::Format(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            header[0], header[1], header[2], header[3]
        )));
    }
    if header[2] != UNSIGNED_BYTE {
        return Err(DataError::Format(format!(
            "IDX element type 0x{:02x} is not supported (expected 0x08, unsigned bytes)",
            header[2]
        )));
    }
    let dims = read_dims(&mut reader, usize::from(header[3]))?;
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&total| total <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            DataError::Format(format!(
                "IDX dimensions {dims:?} ask for more than the ceiling of {MAX_IDX_BYTES} bytes"
            ))
        })?;
    let data = read_up_to(&mut reader, expected + 1)?;
    if data.len() > expected {
        return Err(DataError::Format(format!(
            "IDX dimensions {dims:?} need {expected} bytes, but the body holds more"
        )));
    }
    if data.len() < expected {
        return Err(DataError::Format(format!(
            "IDX body has {} bytes but dimensions {dims:?} need {expected} (file truncated)",
            data.len()
        )));
    }
    Ok(IdxArray { dims, data })
}

/// The `rank` big-endian u32 dimensions that follow the magic number.
fn read_dims(reader: &mut impl Read, rank: usize) -> Result<Vec<usize>, DataError> {
    if rank == 0 {
        return Err(DataError::Format("IDX file has zero dimensions".into()));
    }
    let dim_bytes = read_up_to(reader, 4 * rank)?;
    if dim_bytes.len() < 4 * rank {
        return Err(DataError::Format(format!(
            "truncated IDX header: {rank} dimensions announced"
        )));
    }
    Ok(dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect())
}

/// At most `limit` bytes of `reader`; fewer if it ends first. Only a gzip stream can fail.
fn read_up_to(reader: &mut impl Read, limit: usize) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    reader
        .take(limit as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::Format(format!("corrupt gzip stream: {e}")))?;
    Ok(bytes)
}
