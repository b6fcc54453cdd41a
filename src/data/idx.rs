//! The IDX file format of the MNIST distribution (LeCun et al.): a big-endian header — two zero
//! bytes, a type code (0x08 for unsigned bytes), the number of dimensions — then one u32 per
//! dimension and the data. Files may be gzipped, as they are published.

use std::io::Read;

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

/// Decompresses `bytes` if they are gzipped, then parses them as IDX.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut raw = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| DataError::Format(format!("corrupt gzip stream: {e}")))?;
        parse_raw(&raw)
    } else {
        parse_raw(bytes)
    }
}

/// Parses uncompressed IDX bytes.
pub fn parse_raw(bytes: &[u8]) -> Result<IdxArray, DataError> {
    let header = bytes.get(..4).ok_or_else(|| {
        DataError::Format(format!(
            "file too short for an IDX header ({} bytes)",
            bytes.len()
        ))
    })?;
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
    let rank = usize::from(header[3]);
    if rank == 0 {
        return Err(DataError::Format("IDX file has zero dimensions".into()));
    }
    let dims_end = 4 + 4 * rank;
    let dim_bytes = bytes.get(4..dims_end).ok_or_else(|| {
        DataError::Format(format!("truncated IDX header: {rank} dimensions announced"))
    })?;
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::Format(format!("IDX dimensions {dims:?} overflow")))?;
    let body = &bytes[dims_end..];
    if body.len() != expected {
        return Err(DataError::Format(format!(
            "IDX body has {} bytes but dimensions {dims:?} need {expected}{}",
            body.len(),
            if body.len() < expected {
                " (file truncated)"
            } else {
                ""
            }
        )));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}
