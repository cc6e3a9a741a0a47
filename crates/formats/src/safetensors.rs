//! safetensors headers.
//!
//! # Layout
//!
//! ```text
//! u64 LE  header_len  (N)
//! N bytes JSON object: { "__metadata__": { str: str, ... },   (optional)
//!                        "<tensor name>": { "dtype": "F16", "shape": [..], "data_offsets": [begin, end] }, ... }
//! tensor data; data_offsets are relative to byte 8 + N
//! ```
//!
//! # Checks
//!
//! As the reference implementation does: the header may be at most
//! [`MAX_HEADER_LEN`] bytes; every dtype must be known; each tensor's byte
//! length (`end - begin`) must equal its element count times its dtype's
//! size (checked arithmetic; sub-byte dtypes must fill whole bytes); and the
//! tensors, in offset order, must tile the data section from 0 with no gap
//! or overlap. Duplicate names are refused.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The largest header the format allows (the reference `safetensors`
/// crate's `MAX_HEADER_SIZE`).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Why a safetensors header could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SafetensorsError {
    #[error(
        "the data ends before the safetensors header does; at least {needed} bytes are needed"
    )]
    Truncated { needed: u64 },
    #[error("the header is {len} bytes, over the format's limit of {limit}; this is probably not a safetensors file")]
    HeaderTooLarge { len: u64, limit: u64 },
    #[error("the header is not a valid safetensors JSON object: {0}")]
    InvalidHeader(String),
    #[error("tensor {name:?} is invalid: {reason}")]
    InvalidTensor { name: String, reason: String },
    #[error("tensor {name:?} has unknown dtype {dtype:?}")]
    UnknownDtype { name: String, dtype: String },
    #[error("the tensors do not tile the data section: {0}")]
    BadOffsets(String),
    #[error("the file is {actual} bytes but its header describes {expected}; it is incomplete")]
    FileTooShort { expected: u64, actual: u64 },
    #[error("reading the file failed: {0}")]
    Io(String),
}

impl SafetensorsError {
    /// A stable snake_case code for this kind of error, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SafetensorsError::Truncated { .. } => "safetensors_truncated",
            SafetensorsError::HeaderTooLarge { .. } => "safetensors_header_too_large",
            SafetensorsError::InvalidHeader(_) => "safetensors_invalid_header",
            SafetensorsError::InvalidTensor { .. } => "safetensors_invalid_tensor",
            SafetensorsError::UnknownDtype { .. } => "safetensors_unknown_dtype",
            SafetensorsError::BadOffsets(_) => "safetensors_bad_offsets",
            SafetensorsError::FileTooShort { .. } => "safetensors_file_too_short",
            SafetensorsError::Io(_) => "safetensors_io",
        }
    }
}

impl From<std::io::Error> for SafetensorsError {
    fn from(err: std::io::Error) -> SafetensorsError {
        SafetensorsError::Io(err.to_string())
    }
}

/// One tensor's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeTensorInfo {
    pub name: String,
    /// As written (`"BF16"`, `"F8_E4M3"`, ...).
    pub dtype: String,
    /// Outermost first, as PyTorch and numpy give shapes.
    pub shape: Vec<u64>,
    /// `[begin, end)` relative to the start of the data section.
    pub data_offsets: (u64, u64),
}

impl SafeTensorInfo {
    /// Product of the shape (1 for a scalar). [`parse_header`] has checked
    /// that it does not overflow.
    pub fn element_count(&self) -> u64 {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }
}

/// A parsed safetensors header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetensorsHeader {
    /// In data-offset order (the order of the bytes in the file).
    pub tensors: Vec<SafeTensorInfo>,
    /// `__metadata__`, empty when absent.
    pub metadata: BTreeMap<String, String>,
    /// Length of the JSON header, without the 8-byte length before it.
    pub header_len: u64,
}

impl SafetensorsHeader {
    /// Total elements over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.element_count()))
    }

    /// Bytes of tensor data (the data section's length).
    pub fn data_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.data_offsets.1)
            .max()
            .unwrap_or(0)
    }

    /// Absolute offset of the data section: `8 + header_len`.
    pub fn data_start(&self) -> u64 {
        self.header_len.saturating_add(8)
    }

    /// Elements per dtype.
    pub fn dtypes(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for t in &self.tensors {
            let count = out.entry(t.dtype.clone()).or_insert(0u64);
            *count = count.saturating_add(t.element_count());
        }
        out
    }
}

/// Bits per element of each dtype the format defines.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Parses the header at the start of `buf` (which starts at the file's
/// first byte). Needs only the first `8 + header_len` bytes.
pub fn parse_header(buf: &[u8]) -> Result<SafetensorsHeader, SafetensorsError> {
    let header_len = header_len_prefix(buf)?;
    let end = 8 + header_len; // cannot overflow: header_len <= 100 MB
    let json = usize::try_from(end)
        .ok()
        .and_then(|end| buf.get(8..end))
        .ok_or(SafetensorsError::Truncated { needed: end })?;
    parse_json(json, header_len)
}

/// Reads the length prefix and checks it against the cap.
fn header_len_prefix(buf: &[u8]) -> Result<u64, SafetensorsError> {
    let prefix = buf
        .get(..8)
        .ok_or(SafetensorsError::Truncated { needed: 8 })?;
    let mut raw = [0u8; 8];
    raw.copy_from_slice(prefix);
    let header_len = u64::from_le_bytes(raw);
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            len: header_len,
            limit: MAX_HEADER_LEN,
        });
    }
    Ok(header_len)
}

/// Reads the header of the safetensors file at `path`, and checks that the
/// file is long enough for the data the header describes. Reads only
/// `8 + header_len` bytes.
pub fn read_path(path: &Path) -> Result<SafetensorsHeader, SafetensorsError> {
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut prefix = [0u8; 8];
    if file_len < 8 {
        return Err(SafetensorsError::Truncated { needed: 8 });
    }
    file.read_exact(&mut prefix)?;
    let header_len = header_len_prefix(&prefix)?;
    let needed = 8 + header_len;
    if file_len < needed {
        return Err(SafetensorsError::Truncated { needed });
    }
    let mut json = Vec::new();
    file.take(header_len).read_to_end(&mut json)?;
    if u64::try_from(json.len()).unwrap_or(u64::MAX) < header_len {
        return Err(SafetensorsError::Truncated { needed });
    }
    let header = parse_json(&json, header_len)?;
    let expected = header
        .data_start()
        .checked_add(header.data_bytes())
        .ok_or_else(|| SafetensorsError::BadOffsets("the data end overflows".to_owned()))?;
    if file_len < expected {
        return Err(SafetensorsError::FileTooShort {
            expected,
            actual: file_len,
        });
    }
    Ok(header)
}

fn parse_json(json: &[u8], header_len: u64) -> Result<SafetensorsHeader, SafetensorsError> {
    let raw: RawHeader = serde_json::from_slice(json)
        .map_err(|err| SafetensorsError::InvalidHeader(err.to_string()))?;
    let mut tensors = Vec::with_capacity(raw.tensors.len());
    for (name, tensor) in raw.tensors {
        let Some(bits) = dtype_bits(&tensor.dtype) else {
            return Err(SafetensorsError::UnknownDtype {
                name,
                dtype: tensor.dtype,
            });
        };
        let (begin, end) = tensor.data_offsets;
        let invalid = |reason: String| SafetensorsError::InvalidTensor {
            name: name.clone(),
            reason,
        };
        if end < begin {
            return Err(invalid(format!(
                "its data ends ({end}) before it begins ({begin})"
            )));
        }
        let bits_total = tensor
            .shape
            .iter()
            .try_fold(bits, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| invalid("its size overflows 64 bits".to_owned()))?;
        if bits_total % 8 != 0 {
            return Err(invalid(format!(
                "its {} elements of {} do not fill whole bytes",
                bits_total / bits,
                tensor.dtype
            )));
        }
        if bits_total / 8 != end - begin {
            return Err(invalid(format!(
                "shape {:?} of {} needs {} bytes but its offsets span {}",
                tensor.shape,
                tensor.dtype,
                bits_total / 8,
                end - begin
            )));
        }
        tensors.push(SafeTensorInfo {
            name,
            dtype: tensor.dtype,
            shape: tensor.shape,
            data_offsets: tensor.data_offsets,
        });
    }
    // Zero-sized tensors may share an offset; order them by end too so the
    // tiling check sees them before the tensor that starts there.
    tensors.sort_by(|a, b| (a.data_offsets, &a.name).cmp(&(b.data_offsets, &b.name)));
    let mut expected_begin = 0u64;
    for tensor in &tensors {
        let (begin, end) = tensor.data_offsets;
        if begin != expected_begin {
            return Err(SafetensorsError::BadOffsets(format!(
                "tensor {:?} begins at {begin}, expected {expected_begin}",
                tensor.name
            )));
        }
        expected_begin = end;
    }
    Ok(SafetensorsHeader {
        tensors,
        metadata: raw.metadata,
        header_len,
    })
}

/// The header as JSON gives it, before the checks.
struct RawHeader {
    metadata: BTreeMap<String, String>,
    tensors: Vec<(String, RawTensor)>,
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawHeaderVisitor)
    }
}

struct RawHeaderVisitor;

impl<'de> Visitor<'de> for RawHeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut metadata = None;
        let mut tensors = Vec::new();
        let mut names = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "__metadata__" {
                if metadata.is_some() {
                    return Err(de::Error::custom("duplicate key \"__metadata__\""));
                }
                // The format allows only string values; null means none.
                let value: Option<BTreeMap<String, String>> = map.next_value()?;
                metadata = Some(value.unwrap_or_default());
            } else {
                if !names.insert(key.clone()) {
                    return Err(de::Error::custom(format!("duplicate tensor name {key:?}")));
                }
                let tensor: RawTensor = map.next_value()?;
                tensors.push((key, tensor));
            }
        }
        Ok(RawHeader {
            metadata: metadata.unwrap_or_default(),
            tensors,
        })
    }
}
