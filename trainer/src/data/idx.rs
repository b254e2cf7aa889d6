//! The IDX format (LeCun's MNIST files): a 4-byte magic `0x00 0x00 type ndims`, `ndims`
//! big-endian u32 dimensions, then the data. Only unsigned bytes (type 0x08) are used by the
//! MNIST family, and only they are accepted. Files may be gzipped.

use super::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Serializes to raw (not gzipped) IDX bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, self.dims.len() as u8];
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// Reads a raw or gzipped IDX file, validating its header against its length.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    if raw.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: path.into(),
                source,
            })?;
        if out.is_empty() {
            return Err(DataError::Empty { path: path.into() });
        }
        out
    } else {
        raw
    };
    parse(path, bytes)
}

fn parse(path: &Path, mut bytes: Vec<u8>) -> Result<IdxArray, DataError> {
    let truncated = |expected: u64, actual: usize| DataError::Truncated {
        path: path.into(),
        expected,
        actual: actual as u64,
    };
    if bytes.len() < 4 {
        return Err(truncated(4, bytes.len()));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let ndims = bytes[3] as usize;
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || ndims == 0 {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: magic,
        });
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(truncated(header as u64, bytes.len()));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    let expected = (header as u64).saturating_add(payload);
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(truncated(expected, bytes.len()));
    }
    if actual > expected {
        return Err(DataError::TrailingData {
            path: path.into(),
            expected,
            extra: actual - expected,
        });
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}
