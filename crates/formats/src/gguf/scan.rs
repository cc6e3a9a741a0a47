//! Finding the length of a GGUF header without building it.

use super::{
    limits, read_preamble, string_array_extent, to_usize, GgufError, Reader, ValueType,
    MIN_KV_BYTES, MIN_TENSOR_INFO_BYTES,
};

/// Finds where a GGUF header ends (the end of the tensor infos) by skipping
/// over it: no strings are copied and nothing is allocated. It applies the
/// same limits as [`parse`](super::parse) but checks less (UTF-8, duplicate
/// keys and tensor types are left to `parse`).
///
/// The scanner is resumable. Call [`scan`](Self::scan) with the first bytes
/// of the file; on [`GgufError::Truncated`] fetch at least `needed` bytes and
/// call it again with the longer prefix. It picks up after the last whole
/// metadata pair or tensor info it read, so a header fetched in many pieces
/// is walked about once.
#[derive(Debug, Clone, Default)]
pub struct HeaderScanner {
    /// Offset of the first byte not yet accounted for.
    pos: usize,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, Default)]
enum Stage {
    #[default]
    Preamble,
    Metadata {
        left: u64,
        tensors: u64,
    },
    Tensors {
        left: u64,
    },
    Done,
}

/// The header length of the GGUF at the start of `buf`; see [`HeaderScanner`].
pub fn header_len(buf: &[u8]) -> Result<u64, GgufError> {
    HeaderScanner::new().scan(buf)
}

impl HeaderScanner {
    pub fn new() -> HeaderScanner {
        HeaderScanner::default()
    }

    /// Continues the walk over `buf`, the file's first bytes; every call
    /// must pass at least the bytes of the previous one. Returns the header
    /// length in bytes (end of the tensor infos, before alignment padding).
    pub fn scan(&mut self, buf: &[u8]) -> Result<u64, GgufError> {
        loop {
            let mut reader = Reader {
                buf,
                pos: self.pos,
                tail: 0,
            };
            match self.stage {
                Stage::Preamble => {
                    read_preamble(&mut reader)?;
                    let tensors = reader.capped_u64("tensor count", limits::MAX_TENSORS)?;
                    let left = reader.capped_u64("metadata key/value count", limits::MAX_KV)?;
                    self.stage = Stage::Metadata { left, tensors };
                }
                Stage::Metadata { left: 0, tensors } => {
                    self.stage = Stage::Tensors { left: tensors };
                    continue;
                }
                Stage::Metadata { left, tensors } => {
                    reader.tail = min_tail(left - 1, tensors)?;
                    skip_bytes(&mut reader, "metadata key", limits::MAX_KEY_LEN)?;
                    let type_id = reader.u32()?;
                    let ty =
                        ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType(type_id))?;
                    skip_value(&mut reader, ty, 0)?;
                    self.stage = Stage::Metadata {
                        left: left - 1,
                        tensors,
                    };
                }
                Stage::Tensors { left: 0 } => {
                    self.stage = Stage::Done;
                    continue;
                }
                Stage::Tensors { left } => {
                    reader.tail = min_tail(0, left - 1)?;
                    skip_bytes(&mut reader, "tensor name", limits::MAX_KEY_LEN)?;
                    let n_dims = reader.u32()?;
                    if n_dims > limits::MAX_DIMS {
                        return Err(GgufError::LimitExceeded {
                            what: "tensor dimension count",
                            value: u64::from(n_dims),
                            limit: u64::from(limits::MAX_DIMS),
                        });
                    }
                    // n_dims dims, the type and the offset.
                    reader.bytes(n_dims as usize * 8 + 4 + 8)?;
                    self.stage = Stage::Tensors { left: left - 1 };
                }
                Stage::Done => {
                    return u64::try_from(self.pos).map_err(|_| GgufError::Overflow);
                }
            }
            self.pos = reader.pos;
        }
    }
}

/// The fewest bytes `kvs` metadata pairs and `tensors` tensor infos take.
fn min_tail(kvs: u64, tensors: u64) -> Result<usize, GgufError> {
    let kvs = to_usize(kvs)?.saturating_mul(MIN_KV_BYTES);
    Ok(kvs.saturating_add(to_usize(tensors)?.saturating_mul(MIN_TENSOR_INFO_BYTES)))
}

fn skip_bytes(reader: &mut Reader<'_>, what: &'static str, limit: u64) -> Result<(), GgufError> {
    let len = to_usize(reader.capped_u64(what, limit)?)?;
    reader.bytes(len)?;
    Ok(())
}

fn skip_value(reader: &mut Reader<'_>, ty: ValueType, depth: u32) -> Result<(), GgufError> {
    match ty {
        ValueType::String => skip_bytes(reader, "string length", limits::MAX_STRING_LEN),
        ValueType::Array => {
            if depth >= limits::MAX_ARRAY_DEPTH {
                return Err(GgufError::LimitExceeded {
                    what: "array nesting depth",
                    value: u64::from(depth) + 1,
                    limit: u64::from(limits::MAX_ARRAY_DEPTH),
                });
            }
            let type_id = reader.u32()?;
            let element =
                ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType(type_id))?;
            let len = to_usize(reader.capped_u64("array length", limits::MAX_ARRAY_LEN)?)?;
            let min_bytes = len
                .checked_mul(element.min_encoded_size())
                .ok_or(GgufError::Overflow)?;
            reader.ensure(min_bytes)?;
            match element {
                ValueType::String => {
                    let (end, _) = string_array_extent(reader.buf, reader.pos, len, reader.tail)?;
                    reader.pos = end;
                }
                ValueType::Array => {
                    for _ in 0..len {
                        skip_value(reader, ValueType::Array, depth + 1)?;
                    }
                }
                // Fixed-size elements: the bytes were checked above.
                _ => reader.pos = reader.ensure(min_bytes)?,
            }
            Ok(())
        }
        fixed => {
            reader.bytes(fixed.min_encoded_size())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::past_end;
    use super::*;

    #[test]
    fn past_end_beyond_the_cap_is_a_limit_error() {
        assert!(matches!(
            past_end(limits::MAX_HEADER_BYTES + 1),
            GgufError::LimitExceeded { .. }
        ));
        assert_eq!(past_end(100), GgufError::Truncated { needed: 100 });
    }
}
