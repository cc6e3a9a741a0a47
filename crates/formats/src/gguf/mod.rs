//! GGUF headers: the metadata key/values and tensor infos at the start of a
//! llama.cpp model file.
//!
//! # Layout (versions 2 and 3; all integers little-endian)
//!
//! ```text
//! u32  magic          "GGUF" (0x46554747 read as u32 LE)
//! u32  version        2 or 3 (1 used u32 lengths and is refused)
//! u64  tensor_count
//! u64  metadata_kv_count
//! metadata_kv_count × { string key; u32 value_type; value }
//! tensor_count      × { string name; u32 n_dims; n_dims × u64 dim; u32 ggml_type; u64 offset }
//! padding to `general.alignment` (default 32)
//! tensor data        (offsets are relative to here)
//!
//! string = u64 byte length + UTF-8 bytes (no NUL)
//! array  = u32 element_type + u64 length + elements (arrays may nest)
//! ```
//!
//! Tensor dims are stored innermost first (ggml's `ne[0]` is the row length),
//! the reverse of numpy/PyTorch shapes, and [`TensorInfo::dims`] keeps that
//! order.
//!
//! # Limits
//!
//! The parser reads untrusted bytes. Every length read from the buffer is
//! capped (see [`limits`]) before it is used, every offset computation is
//! checked, and nothing is allocated for a count until the buffer has been
//! seen to hold at least the bytes that count implies. The header as a whole
//! may not extend past [`limits::MAX_HEADER_BYTES`].
//!
//! # Reading from files and remote sources
//!
//! [`parse`] wants the header bytes in one slice. When the slice ends early
//! it returns [`GgufError::Truncated`] with `needed`, a lower bound on the
//! total length that would let parsing get further, so a caller reading over
//! HTTP can fetch up to that length and retry. [`HeaderScanner`] finds the
//! header's exact length cheaply and resumably, and [`read_path`] uses it to
//! read a file's header without touching the tensor data.

mod report;
mod scan;
mod types;
mod value;

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

pub use report::{
    GeneralReport, GgufSummary, MetadataReport, ModelReport, TensorsReport, TokenizerReport,
    RAW_ARRAY_MAX_LEN, VOCABULARY_KEYS,
};
pub use scan::{header_len, HeaderScanner};
pub use types::{file_type_name, is_known_architecture, GgmlType, KNOWN_ARCHITECTURES};
pub use value::{Array, ArrayData, StringArray, Value, ValueRef, ValueType};

/// `"GGUF"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"GGUF");

/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Caps on every length read from a file.
pub mod limits {
    /// Bytes of a metadata key or a tensor name.
    pub const MAX_KEY_LEN: u64 = 64 * 1024;
    /// Bytes of one string value (a chat template is a few KiB).
    pub const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
    /// Elements of one array (a vocabulary is around 2^18).
    pub const MAX_ARRAY_LEN: u64 = 1 << 26;
    /// Depth of arrays nested in arrays.
    pub const MAX_ARRAY_DEPTH: u32 = 8;
    /// Tensors in one file.
    pub const MAX_TENSORS: u64 = 1 << 20;
    /// Dimensions of one tensor (ggml itself uses 4).
    pub const MAX_DIMS: u32 = 8;
    /// Metadata key/value pairs in one file.
    pub const MAX_KV: u64 = 1 << 20;
    /// Bytes from the start of the file to the end of the tensor infos.
    pub const MAX_HEADER_BYTES: u64 = 512 * 1024 * 1024;
    /// The largest `general.alignment` accepted.
    pub const MAX_ALIGNMENT: u64 = 1 << 30;
}

/// How much [`read_path`] reads first; most headers fit.
const INITIAL_READ: u64 = 1024 * 1024;

/// Why a GGUF header could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    #[error("the data ends before the GGUF header does; at least {needed} bytes are needed")]
    Truncated { needed: u64 },
    #[error("not a GGUF file: it does not start with the bytes \"GGUF\"")]
    BadMagic,
    #[error("big-endian GGUF files are not supported; convert the file to little-endian")]
    BigEndian,
    #[error("GGUF version {0} is not supported; only versions 2 and 3 are (re-convert the model with a current llama.cpp)")]
    UnsupportedVersion(u32),
    #[error("invalid UTF-8 in {context}")]
    InvalidUtf8 { context: String },
    #[error("{what} is {value}, over the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    #[error("unknown ggml tensor type {0}")]
    UnknownTensorType(u32),
    #[error("general.alignment must be a power of two from 1 to 2^30, got {0}")]
    BadAlignment(u64),
    #[error("general.alignment must be an unsigned integer, got a {0} value")]
    AlignmentNotInteger(ValueType),
    #[error("an offset or size in the header overflows 64 bits")]
    Overflow,
    #[error("metadata key {0:?} appears more than once")]
    DuplicateKey(String),
    #[error("tensor name {0:?} appears more than once")]
    DuplicateTensor(String),
    #[error("tensor {name:?} is invalid: {reason}")]
    InvalidTensor { name: String, reason: String },
    #[error("reading the file failed: {0}")]
    Io(String),
}

impl GgufError {
    /// A stable snake_case code for this kind of error, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            GgufError::Truncated { .. } => "gguf_truncated",
            GgufError::BadMagic => "gguf_bad_magic",
            GgufError::BigEndian => "gguf_big_endian",
            GgufError::UnsupportedVersion(_) => "gguf_unsupported_version",
            GgufError::InvalidUtf8 { .. } => "gguf_invalid_utf8",
            GgufError::LimitExceeded { .. } => "gguf_limit_exceeded",
            GgufError::UnknownValueType(_) => "gguf_unknown_value_type",
            GgufError::UnknownTensorType(_) => "gguf_unknown_tensor_type",
            GgufError::BadAlignment(_) | GgufError::AlignmentNotInteger(_) => "gguf_bad_alignment",
            GgufError::Overflow => "gguf_overflow",
            GgufError::DuplicateKey(_) => "gguf_duplicate_key",
            GgufError::DuplicateTensor(_) => "gguf_duplicate_tensor",
            GgufError::InvalidTensor { .. } => "gguf_invalid_tensor",
            GgufError::Io(_) => "gguf_io",
        }
    }
}

impl From<std::io::Error> for GgufError {
    fn from(err: std::io::Error) -> GgufError {
        GgufError::Io(err.to_string())
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    /// Innermost first, as ggml stores them (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    #[serde(serialize_with = "serialize_ggml_type")]
    pub ggml_type: GgmlType,
    /// Relative to [`GgufHeader::data_offset`].
    pub offset: u64,
}

fn serialize_ggml_type<S: serde::Serializer>(t: &GgmlType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.name())
}

impl TensorInfo {
    /// Product of the dims (1 for a tensor with none).
    pub fn element_count(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Bytes of this tensor's data. [`parse`] has already checked that this
    /// is defined, so it fails only for a `TensorInfo` built by hand.
    pub fn byte_size(&self) -> Result<u64, GgufError> {
        self.ggml_type
            .tensor_bytes(&self.dims)
            .ok_or_else(|| tensor_size_error(&self.name, self.ggml_type, &self.dims))
    }
}

fn tensor_size_error(name: &str, ggml_type: GgmlType, dims: &[u64]) -> GgufError {
    let block = ggml_type.block_size();
    match dims.first() {
        Some(first) if first % block != 0 => GgufError::InvalidTensor {
            name: name.to_owned(),
            reason: format!(
                "its row length {first} is not a multiple of the {} block size {block}",
                ggml_type.name()
            ),
        },
        _ => GgufError::Overflow,
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    /// In file order.
    pub metadata: Vec<(String, Value)>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, or 32 when absent.
    pub alignment: u64,
    /// Absolute offset of the tensor data: the end of the tensor infos,
    /// rounded up to `alignment`.
    pub data_offset: u64,
}

/// Parses a GGUF header from the start of `buf`. `buf` may hold the whole
/// file or only its first bytes; bytes after the tensor infos are not read.
pub fn parse(buf: &[u8]) -> Result<GgufHeader, GgufError> {
    let mut reader = Reader::new(buf);
    let version = read_preamble(&mut reader)?;
    let tensor_count = reader.capped_u64("tensor count", limits::MAX_TENSORS)?;
    let kv_count = reader.capped_u64("metadata key/value count", limits::MAX_KV)?;
    // Every pair takes at least 13 bytes and every tensor info 24, so
    // capacity is reserved only for as many as the remaining bytes can hold.
    let kv_count = to_usize(kv_count)?;
    let kv_room = reader.remaining() / MIN_KV_BYTES;
    let mut metadata = Vec::with_capacity(kv_count.min(kv_room));
    let mut seen_keys = HashSet::with_capacity(kv_count.min(kv_room));
    let tensors_tail = to_usize(tensor_count)?.saturating_mul(MIN_TENSOR_INFO_BYTES);
    for index in 0..kv_count {
        reader.tail = (kv_count - index - 1) * MIN_KV_BYTES + tensors_tail;
        let key = reader.string("metadata key", limits::MAX_KEY_LEN)?;
        let type_id = reader.u32()?;
        let value_type = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType(type_id))?;
        let value = reader.value(value_type, &key, 0)?;
        if !seen_keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey(key));
        }
        metadata.push((key, value));
    }

    let alignment = alignment_of(&metadata)?;

    let tensor_count = to_usize(tensor_count)?;
    let tensor_room = reader.remaining() / MIN_TENSOR_INFO_BYTES;
    let mut tensors = Vec::with_capacity(tensor_count.min(tensor_room));
    let mut seen_names = HashSet::with_capacity(tensor_count.min(tensor_room));
    for index in 0..tensor_count {
        reader.tail = (tensor_count - index - 1) * MIN_TENSOR_INFO_BYTES;
        let info = reader.tensor_info(alignment)?;
        if !seen_names.insert(info.name.clone()) {
            return Err(GgufError::DuplicateTensor(info.name));
        }
        tensors.push(info);
    }

    let end = u64::try_from(reader.pos).map_err(|_| GgufError::Overflow)?;
    let data_offset = align_up(end, alignment)?;
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// Parses a header from a prefix of a file that grows (a range reader):
/// scans first, which is cheap, and parses only once the whole header is
/// there. `Truncated { needed }` says how many bytes to fetch.
pub fn parse_prefix(buf: &[u8]) -> Result<GgufHeader, GgufError> {
    PrefixParser::new().parse(buf)
}

/// [`parse_prefix`] for a prefix fed again and again as it grows: the scan
/// resumes where the last call stopped, so each byte is scanned once.
#[derive(Debug, Default)]
pub struct PrefixParser {
    scanner: HeaderScanner,
}

impl PrefixParser {
    pub fn new() -> PrefixParser {
        PrefixParser::default()
    }

    /// `buf` must start with the bytes given to earlier calls.
    pub fn parse(&mut self, buf: &[u8]) -> Result<GgufHeader, GgufError> {
        let len = self.scanner.scan(buf)?;
        parse(buf.get(..to_usize(len)?).ok_or(GgufError::Overflow)?)
    }
}

/// Reads the header of the GGUF file at `path` and nothing after it: the
/// first MiB, then more as [`HeaderScanner`] finds the header needs it.
pub fn read_path(path: &Path) -> Result<GgufHeader, GgufError> {
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut buf = Vec::new();
    let mut scanner = HeaderScanner::new();
    let mut want = INITIAL_READ.min(file_len);
    loop {
        read_up_to(&mut file, &mut buf, want)?;
        match scanner.scan(&buf) {
            Ok(header_len) => {
                let header = buf
                    .get(..to_usize(header_len)?)
                    .ok_or(GgufError::Overflow)?;
                return parse(header);
            }
            Err(GgufError::Truncated { needed }) if want < file_len => {
                // Grow at least geometrically so a header just past each
                // lower bound costs a few reads, not one per string.
                let doubled = want.saturating_mul(2);
                want = needed.max(doubled).min(file_len);
            }
            Err(err) => return Err(err),
        }
    }
}

/// Appends to `buf` from `file` until it holds `want` bytes.
fn read_up_to(file: &mut std::fs::File, buf: &mut Vec<u8>, want: u64) -> Result<(), GgufError> {
    let have = u64::try_from(buf.len()).map_err(|_| GgufError::Overflow)?;
    let more = want.saturating_sub(have);
    buf.reserve_exact(to_usize(more)?);
    let read = file.take(more).read_to_end(buf)?;
    if u64::try_from(read).map_err(|_| GgufError::Overflow)? < more {
        // The file shrank while we read it.
        return Err(GgufError::Truncated { needed: want });
    }
    Ok(())
}

/// The fewest bytes a metadata pair takes: key length, type, a one-byte value.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
/// The fewest bytes a tensor info takes: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 4 + 8;

/// Checks magic and version; returns the version.
fn read_preamble(reader: &mut Reader<'_>) -> Result<u32, GgufError> {
    let magic = reader.array::<4>()?;
    if u32::from_le_bytes(magic) != MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version_bytes = reader.array::<4>()?;
    let version = u32::from_le_bytes(version_bytes);
    match version {
        2 | 3 => Ok(version),
        _ if matches!(u32::from_be_bytes(version_bytes), 2 | 3) => Err(GgufError::BigEndian),
        _ => Err(GgufError::UnsupportedVersion(version)),
    }
}

fn alignment_of(metadata: &[(String, Value)]) -> Result<u64, GgufError> {
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let alignment = value
        .as_u64()
        .ok_or(GgufError::AlignmentNotInteger(value.value_type()))?;
    if alignment == 0 || !alignment.is_power_of_two() || alignment > limits::MAX_ALIGNMENT {
        return Err(GgufError::BadAlignment(alignment));
    }
    Ok(alignment)
}

fn align_up(value: u64, alignment: u64) -> Result<u64, GgufError> {
    let rem = value % alignment;
    if rem == 0 {
        Ok(value)
    } else {
        value
            .checked_add(alignment - rem)
            .ok_or(GgufError::Overflow)
    }
}

fn to_usize(value: u64) -> Result<usize, GgufError> {
    usize::try_from(value).map_err(|_| GgufError::Overflow)
}

/// The error for a buffer that ends before `end`, or for a header that
/// would extend past the cap whatever the buffer holds.
fn past_end(end: u64) -> GgufError {
    if end > limits::MAX_HEADER_BYTES {
        GgufError::LimitExceeded {
            what: "header size",
            value: end,
            limit: limits::MAX_HEADER_BYTES,
        }
    } else {
        GgufError::Truncated { needed: end }
    }
}

/// A cursor over the header bytes. `pos <= buf.len()` always holds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The fewest bytes known to follow the item being read (13 per
    /// metadata pair and 24 per tensor info still to come), added to
    /// `needed` when the buffer ends, so a fetcher asks for more at once.
    tail: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            tail: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Checks that `n` more bytes are there; returns the offset after them.
    fn ensure(&self, n: usize) -> Result<usize, GgufError> {
        let end = self.pos.checked_add(n).ok_or(GgufError::Overflow)?;
        let end_u64 = u64::try_from(end).map_err(|_| GgufError::Overflow)?;
        if end_u64 > limits::MAX_HEADER_BYTES {
            return Err(past_end(end_u64));
        }
        if end > self.buf.len() {
            return Err(past_end(end_u64.saturating_add(self.tail as u64)));
        }
        Ok(end)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self.ensure(n)?;
        let bytes = self.buf.get(self.pos..end).ok_or(GgufError::Overflow)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.array::<8>().map(u64::from_le_bytes)
    }

    fn capped_u64(&mut self, what: &'static str, limit: u64) -> Result<u64, GgufError> {
        let value = self.u64()?;
        if value > limit {
            return Err(GgufError::LimitExceeded { what, value, limit });
        }
        Ok(value)
    }

    fn string(&mut self, what: &'static str, limit: u64) -> Result<String, GgufError> {
        let len = to_usize(self.capped_u64(what, limit)?)?;
        let bytes = self.bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            context: what.to_owned(),
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>().map(u8::from_le_bytes)?),
            ValueType::I8 => Value::I8(self.array::<1>().map(i8::from_le_bytes)?),
            ValueType::U16 => Value::U16(self.array::<2>().map(u16::from_le_bytes)?),
            ValueType::I16 => Value::I16(self.array::<2>().map(i16::from_le_bytes)?),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(self.array::<4>().map(i32::from_le_bytes)?),
            ValueType::F32 => Value::F32(self.array::<4>().map(f32::from_le_bytes)?),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(self.array::<8>().map(i64::from_le_bytes)?),
            ValueType::F64 => Value::F64(self.array::<8>().map(f64::from_le_bytes)?),
            // ggml writes 0 or 1; any other byte is read as true, as C++'s
            // bool conversion in llama.cpp does.
            ValueType::Bool => Value::Bool(self.array::<1>()? != [0]),
            ValueType::String => {
                let len = to_usize(self.capped_u64("string length", limits::MAX_STRING_LEN)?)?;
                let bytes = self.bytes(len)?;
                Value::String(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    GgufError::InvalidUtf8 {
                        context: format!("the value of {key:?}"),
                    }
                })?)
            }
            ValueType::Array => Value::Array(self.array_value(key, depth)?),
        })
    }

    fn array_value(&mut self, key: &str, depth: u32) -> Result<Array, GgufError> {
        if depth >= limits::MAX_ARRAY_DEPTH {
            return Err(GgufError::LimitExceeded {
                what: "array nesting depth",
                value: u64::from(depth) + 1,
                limit: u64::from(limits::MAX_ARRAY_DEPTH),
            });
        }
        let type_id = self.u32()?;
        let element = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType(type_id))?;
        let len = to_usize(self.capped_u64("array length", limits::MAX_ARRAY_LEN)?)?;
        // Bounds every allocation below by the bytes actually present.
        let min_bytes = len
            .checked_mul(element.min_encoded_size())
            .ok_or(GgufError::Overflow)?;
        self.ensure(min_bytes)?;
        let data = match element {
            ValueType::U8 => ArrayData::U8(self.bytes(len)?.to_vec()),
            ValueType::I8 => ArrayData::I8(decode(self.bytes(len)?, i8::from_le_bytes)),
            ValueType::Bool => ArrayData::Bool(self.bytes(len)?.iter().map(|&b| b != 0).collect()),
            ValueType::U16 => ArrayData::U16(decode(self.bytes(min_bytes)?, u16::from_le_bytes)),
            ValueType::I16 => ArrayData::I16(decode(self.bytes(min_bytes)?, i16::from_le_bytes)),
            ValueType::U32 => ArrayData::U32(decode(self.bytes(min_bytes)?, u32::from_le_bytes)),
            ValueType::I32 => ArrayData::I32(decode(self.bytes(min_bytes)?, i32::from_le_bytes)),
            ValueType::F32 => ArrayData::F32(decode(self.bytes(min_bytes)?, f32::from_le_bytes)),
            ValueType::U64 => ArrayData::U64(decode(self.bytes(min_bytes)?, u64::from_le_bytes)),
            ValueType::I64 => ArrayData::I64(decode(self.bytes(min_bytes)?, i64::from_le_bytes)),
            ValueType::F64 => ArrayData::F64(decode(self.bytes(min_bytes)?, f64::from_le_bytes)),
            ValueType::String => ArrayData::String(self.string_array(len, key)?),
            ValueType::Array => {
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.array_value(key, depth + 1)?);
                }
                ArrayData::Array(items)
            }
        };
        Ok(Array::new(data))
    }

    /// Reads `len` strings into one arena in one pass over the lengths,
    /// each checked against the bytes present before it is copied (so the
    /// arena never grows past what the buffer holds). When one does not fit,
    /// [`string_array_extent`] computes the precise error (over-long string,
    /// past the header cap, or how many bytes a reader should fetch). UTF-8
    /// is validated once over the whole arena.
    fn string_array(&mut self, len: usize, key: &str) -> Result<StringArray, GgufError> {
        let start = self.pos;
        let mut rest = self.buf.get(start..).ok_or(GgufError::Overflow)?;
        // Each element takes at least its 8-byte length.
        let mut ends = Vec::with_capacity(len.min(rest.len() / 8));
        let mut arena = Vec::new();
        for _ in 0..len {
            let Some((len_bytes, after)) = rest.split_first_chunk::<8>() else {
                return Err(self.string_array_error(start, len));
            };
            let n = u64::from_le_bytes(*len_bytes);
            let fits =
                n <= limits::MAX_STRING_LEN && usize::try_from(n).is_ok_and(|n| n <= after.len());
            if !fits {
                return Err(self.string_array_error(start, len));
            }
            let (bytes, after) = after.split_at(n as usize);
            arena.extend_from_slice(bytes);
            // The header is capped at 512 MiB, so offsets into the arena fit u32.
            ends.push(u32::try_from(arena.len()).map_err(|_| GgufError::Overflow)?);
            rest = after;
        }
        let end = self.buf.len() - rest.len();
        if u64::try_from(end).map_err(|_| GgufError::Overflow)? > limits::MAX_HEADER_BYTES {
            return Err(past_end(end as u64));
        }
        self.pos = end;
        StringArray::from_parts(arena, ends).ok_or_else(|| GgufError::InvalidUtf8 {
            context: format!("an element of {key:?}"),
        })
    }

    /// The error of a string array that does not fit the buffer.
    fn string_array_error(&self, start: usize, len: usize) -> GgufError {
        match string_array_extent(self.buf, start, len, self.tail) {
            Err(e) => e,
            // Unreachable when called after a failed fit; a typed error anyway.
            Ok(_) => GgufError::Overflow,
        }
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo, GgufError> {
        let name = self.string("tensor name", limits::MAX_KEY_LEN)?;
        let n_dims = self.u32()?;
        if n_dims > limits::MAX_DIMS {
            return Err(GgufError::LimitExceeded {
                what: "tensor dimension count",
                value: u64::from(n_dims),
                limit: u64::from(limits::MAX_DIMS),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let dim = self.u64()?;
            // ggml holds dims as int64_t.
            if dim > i64::MAX as u64 {
                return Err(GgufError::InvalidTensor {
                    name,
                    reason: format!("dimension {dim} does not fit ggml's int64"),
                });
            }
            dims.push(dim);
        }
        let type_id = self.u32()?;
        let ggml_type = GgmlType::from_id(type_id).ok_or(GgufError::UnknownTensorType(type_id))?;
        let offset = self.u64()?;
        let size = ggml_type
            .tensor_bytes(&dims)
            .ok_or_else(|| tensor_size_error(&name, ggml_type, &dims))?;
        if offset % alignment != 0 {
            return Err(GgufError::InvalidTensor {
                name,
                reason: format!(
                    "its data offset {offset} is not a multiple of the alignment {alignment}"
                ),
            });
        }
        offset.checked_add(size).ok_or(GgufError::Overflow)?;
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        })
    }
}

/// Decodes fixed-size little-endian elements.
fn decode<T, const N: usize>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut raw = [0u8; N];
            raw.copy_from_slice(chunk);
            from_le(raw)
        })
        .collect()
}

/// Walks `len` strings starting at `pos` without copying: returns the
/// offset after the last one and the sum of their lengths. When the buffer
/// ends early, `needed` counts the 8-byte length of every string not yet
/// seen and the `tail` after the array, a tighter lower bound than the next
/// read alone.
fn string_array_extent(
    buf: &[u8],
    mut pos: usize,
    len: usize,
    tail: usize,
) -> Result<(usize, usize), GgufError> {
    let mut total = 0usize;
    for index in 0..len {
        let left = len - index;
        let Some(raw) = pos.checked_add(8).and_then(|end| buf.get(pos..end)) else {
            return Err(truncated_strings(pos, left, 0, tail));
        };
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(raw);
        let n = u64::from_le_bytes(len_bytes);
        if n > limits::MAX_STRING_LEN {
            return Err(GgufError::LimitExceeded {
                what: "string length",
                value: n,
                limit: limits::MAX_STRING_LEN,
            });
        }
        let n = to_usize(n)?;
        let next = pos
            .checked_add(8)
            .and_then(|p| p.checked_add(n))
            .ok_or(GgufError::Overflow)?;
        let next_u64 = u64::try_from(next).map_err(|_| GgufError::Overflow)?;
        if next_u64 > limits::MAX_HEADER_BYTES {
            return Err(past_end(next_u64));
        }
        if next > buf.len() {
            return Err(truncated_strings(pos, left, n, tail));
        }
        total += n;
        pos = next;
    }
    Ok((pos, total))
}

fn truncated_strings(pos: usize, left: usize, current_len: usize, tail: usize) -> GgufError {
    let needed = (left as u64)
        .checked_mul(8)
        .and_then(|lengths| lengths.checked_add(pos as u64))
        .and_then(|n| n.checked_add(current_len as u64))
        .and_then(|n| n.checked_add(tail as u64));
    match needed {
        Some(needed) => past_end(needed),
        None => GgufError::Overflow,
    }
}

impl GgufHeader {
    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture")?.as_str()
    }

    /// The value of `{architecture}.{suffix}`.
    pub fn arch_value(&self, suffix: &str) -> Option<&Value> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))
    }

    /// `{architecture}.{suffix}` as an unsigned integer, from any integer type.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        self.arch_value(suffix)?.as_u64()
    }

    /// Like [`arch_u64`](Self::arch_u64), but a per-layer integer array (as
    /// some architectures write `attention.head_count_kv` or
    /// `feed_forward_length`) gives its largest element.
    pub fn arch_u64_max(&self, suffix: &str) -> Option<u64> {
        match self.arch_value(suffix)? {
            Value::Array(array) => array.to_u64s()?.into_iter().max(),
            value => value.as_u64(),
        }
    }

    /// `{architecture}.{suffix}` as a float, from any numeric type.
    pub fn arch_f64(&self, suffix: &str) -> Option<f64> {
        self.arch_value(suffix)?.as_f64()
    }

    /// `general.file_type`, the `llama_ftype` id.
    pub fn file_type(&self) -> Option<u64> {
        self.get("general.file_type")?.as_u64()
    }

    /// The quantization, as llama.cpp names file types (`"Q4_K_M"`): from
    /// `general.file_type`, or when that is absent or unknown, the name of
    /// the ggml type holding most bytes among the tensors of two or more
    /// dims (which are the ones quantized).
    pub fn quantization(&self) -> Option<String> {
        if let Some(name) = self.file_type().and_then(file_type_name) {
            return Some(name.to_owned());
        }
        let mut bytes_by_type: Vec<(GgmlType, u64)> = Vec::new();
        for tensor in self.tensors.iter().filter(|t| t.dims.len() >= 2) {
            let size = tensor.byte_size().unwrap_or(0);
            match bytes_by_type
                .iter_mut()
                .find(|(t, _)| *t == tensor.ggml_type)
            {
                Some((_, total)) => *total = total.saturating_add(size),
                None => bytes_by_type.push((tensor.ggml_type, size)),
            }
        }
        bytes_by_type
            .into_iter()
            .max_by_key(|&(t, bytes)| (bytes, std::cmp::Reverse(t)))
            .map(|(t, _)| t.name().to_owned())
    }

    /// Tokens in the vocabulary: the length of `tokenizer.ggml.tokens`, else
    /// `{architecture}.vocab_size`.
    pub fn vocab_size(&self) -> Option<u64> {
        if let Some(tokens) = self.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            return u64::try_from(tokens.len()).ok();
        }
        self.arch_u64("vocab_size")
    }

    /// Sum of every tensor's data size, computed from its type and dims.
    pub fn tensor_data_bytes(&self) -> Result<u64, GgufError> {
        self.tensors.iter().try_fold(0u64, |sum, tensor| {
            sum.checked_add(tensor.byte_size()?)
                .ok_or(GgufError::Overflow)
        })
    }

    /// The file length the tensor infos imply: `data_offset` plus the end of
    /// the tensor that ends last. A file shorter than this is incomplete.
    pub fn data_end(&self) -> Result<u64, GgufError> {
        let mut end = 0u64;
        for tensor in &self.tensors {
            let tensor_end = tensor
                .offset
                .checked_add(tensor.byte_size()?)
                .ok_or(GgufError::Overflow)?;
            end = end.max(tensor_end);
        }
        self.data_offset.checked_add(end).ok_or(GgufError::Overflow)
    }
}
