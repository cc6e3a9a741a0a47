//! Metadata values of a GGUF header.
//!
//! Scalars are plain Rust values. Arrays are stored compactly by element
//! type: numeric arrays as one typed `Vec`, string arrays as a single UTF-8
//! arena plus end offsets (a 150,000-token vocabulary is two allocations,
//! not 150,000), and arrays of arrays as a `Vec<Array>`.

use serde_json::Value as Json;

/// The value type ids of the GGUF format (`gguf_type` in ggml's `gguf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type for an id read from a file, `None` for ids the format does not define.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The id this type is written with.
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// The name used in reports, as the reference `gguf` Python package spells
    /// it in lower case (`"uint32"`, `"float32"`, `"string"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "uint8",
            ValueType::I8 => "int8",
            ValueType::U16 => "uint16",
            ValueType::I16 => "int16",
            ValueType::U32 => "uint32",
            ValueType::I32 => "int32",
            ValueType::F32 => "float32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "uint64",
            ValueType::I64 => "int64",
            ValueType::F64 => "float64",
        }
    }

    /// Bytes one value of this type occupies in a file, or the least it can
    /// occupy for the variable-length types (a string is at least its 8-byte
    /// length, an array at least its 4-byte type and 8-byte length).
    pub(crate) fn min_encoded_size(self) -> usize {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// The value as an unsigned integer, for any integer type holding a
    /// non-negative value. Booleans, floats, strings and arrays give `None`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(u64::from(v)),
            Value::U16(v) => Some(u64::from(v)),
            Value::U32(v) => Some(u64::from(v)),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, for any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(i64::from(v)),
            Value::U16(v) => Some(i64::from(v)),
            Value::U32(v) => Some(i64::from(v)),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(i64::from(v)),
            Value::I16(v) => Some(i64::from(v)),
            Value::I32(v) => Some(i64::from(v)),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a float, for any numeric type. `f32` values are widened
    /// through their shortest decimal form, so `1e-5f32` gives `1e-5`, not
    /// `9.999999747378752e-6`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(f32_to_f64_shortest(v)),
            Value::F64(v) => Some(v),
            // Integer widening to f64 may round above 2^53; for metadata such
            // as rope_freq_base this is what a reader expects.
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as JSON, with every array in full.
    pub fn to_json(&self) -> Json {
        self.as_ref().to_json(usize::MAX)
    }

    /// The value as JSON, with every array (at any depth) longer than
    /// `max_array_len` replaced by `{"type":"array","element_type":..,"len":N}`.
    pub fn to_json_capped(&self, max_array_len: usize) -> Json {
        self.as_ref().to_json(max_array_len)
    }

    /// A borrowed view of the value, the item type of [`Array::iter`].
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::U8(v) => ValueRef::U8(*v),
            Value::I8(v) => ValueRef::I8(*v),
            Value::U16(v) => ValueRef::U16(*v),
            Value::I16(v) => ValueRef::I16(*v),
            Value::U32(v) => ValueRef::U32(*v),
            Value::I32(v) => ValueRef::I32(*v),
            Value::F32(v) => ValueRef::F32(*v),
            Value::U64(v) => ValueRef::U64(*v),
            Value::I64(v) => ValueRef::I64(*v),
            Value::F64(v) => ValueRef::F64(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::String(v) => ValueRef::String(v),
            Value::Array(v) => ValueRef::Array(v),
        }
    }
}

/// A borrowed metadata value: what iterating an [`Array`] yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    String(&'a str),
    Array(&'a Array),
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_owned_value(&self) -> Value {
        match *self {
            ValueRef::U8(v) => Value::U8(v),
            ValueRef::I8(v) => Value::I8(v),
            ValueRef::U16(v) => Value::U16(v),
            ValueRef::I16(v) => Value::I16(v),
            ValueRef::U32(v) => Value::U32(v),
            ValueRef::I32(v) => Value::I32(v),
            ValueRef::F32(v) => Value::F32(v),
            ValueRef::U64(v) => Value::U64(v),
            ValueRef::I64(v) => Value::I64(v),
            ValueRef::F64(v) => Value::F64(v),
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::String(v) => Value::String(v.to_owned()),
            ValueRef::Array(v) => Value::Array(v.clone()),
        }
    }

    /// Like [`Value::as_u64`].
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            ValueRef::U8(v) => Some(u64::from(v)),
            ValueRef::U16(v) => Some(u64::from(v)),
            ValueRef::U32(v) => Some(u64::from(v)),
            ValueRef::U64(v) => Some(v),
            ValueRef::I8(v) => u64::try_from(v).ok(),
            ValueRef::I16(v) => u64::try_from(v).ok(),
            ValueRef::I32(v) => u64::try_from(v).ok(),
            ValueRef::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    fn to_json(self, max_array_len: usize) -> Json {
        match self {
            ValueRef::U8(v) => Json::from(v),
            ValueRef::I8(v) => Json::from(v),
            ValueRef::U16(v) => Json::from(v),
            ValueRef::I16(v) => Json::from(v),
            ValueRef::U32(v) => Json::from(v),
            ValueRef::I32(v) => Json::from(v),
            // Non-finite floats have no JSON form; serde_json makes them null.
            ValueRef::F32(v) => Json::from(f32_to_f64_shortest(v)),
            ValueRef::U64(v) => Json::from(v),
            ValueRef::I64(v) => Json::from(v),
            ValueRef::F64(v) => Json::from(v),
            ValueRef::Bool(v) => Json::from(v),
            ValueRef::String(v) => Json::from(v),
            ValueRef::Array(a) => a.to_json_capped(max_array_len),
        }
    }
}

/// Widens an `f32` through its shortest round-tripping decimal form.
pub(crate) fn f32_to_f64_shortest(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    // `Display` for f32 prints the shortest string that parses back to the
    // same f32; reading that string as f64 gives the value a human wrote.
    v.to_string().parse::<f64>().unwrap_or(f64::from(v))
}

/// A string array stored as one byte arena and the end offset of each element.
///
/// The parser validates the whole arena as UTF-8 once (with SIMD) and checks
/// that every element boundary falls between characters, so every element
/// is valid UTF-8. [`get`](Self::get) still re-checks its one element with
/// `std::str::from_utf8` (a few nanoseconds for a token) because turning
/// bytes into `&str` without a check needs `unsafe`, which this workspace
/// forbids; the check cannot fail.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StringArray {
    arena: Vec<u8>,
    ends: Vec<u32>,
}

impl std::fmt::Debug for StringArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A vocabulary printed in full would drown any log or test failure.
        const SHOWN: usize = 8;
        let mut list = f.debug_list();
        list.entries(self.iter().take(SHOWN));
        if self.len() > SHOWN {
            list.entry(&format_args!("... {} more", self.len() - SHOWN));
        }
        list.finish()
    }
}

impl StringArray {
    /// Builds a string array from anything yielding strings. Returns `None`
    /// when the strings together exceed `u32::MAX` bytes.
    pub fn from_strs<I, S>(items: I) -> Option<StringArray>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut arena = Vec::new();
        let mut ends = Vec::new();
        for item in items {
            arena.extend_from_slice(item.as_ref().as_bytes());
            ends.push(u32::try_from(arena.len()).ok()?);
        }
        Some(StringArray { arena, ends })
    }

    /// Assembles an array from an arena and the end offset of each element.
    /// Returns `None` unless the arena is UTF-8, the ends are non-decreasing
    /// and within it, and each end falls between characters.
    pub(crate) fn from_parts(arena: Vec<u8>, ends: Vec<u32>) -> Option<StringArray> {
        simdutf8::basic::from_utf8(&arena).ok()?;
        let mut previous = 0usize;
        for &end in &ends {
            let end = usize::try_from(end).ok()?;
            // An end inside the arena must not land on a continuation byte.
            let on_boundary = arena.get(end).is_none_or(|b| (b & 0xC0) != 0x80);
            if end < previous || end > arena.len() || !on_boundary {
                return None;
            }
            previous = end;
        }
        Some(StringArray { arena, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all elements.
    pub fn total_bytes(&self) -> usize {
        self.arena.len()
    }

    pub fn get(&self, index: usize) -> Option<&str> {
        let end = usize::try_from(*self.ends.get(index)?).ok()?;
        let start = match index.checked_sub(1) {
            Some(previous) => usize::try_from(*self.ends.get(previous)?).ok()?,
            None => 0,
        };
        std::str::from_utf8(self.arena.get(start..end)?).ok()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

/// The typed storage of an [`Array`].
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(StringArray),
    /// An array of arrays; each inner array carries its own element type.
    Array(Vec<Array>),
}

/// A metadata array: typed and compact, see [`ArrayData`].
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    data: ArrayData,
}

impl From<ArrayData> for Array {
    fn from(data: ArrayData) -> Array {
        Array { data }
    }
}

impl Array {
    pub fn new(data: ArrayData) -> Array {
        Array { data }
    }

    pub fn data(&self) -> &ArrayData {
        &self.data
    }

    pub fn into_data(self) -> ArrayData {
        self.data
    }

    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::U8(v) => v.len(),
            ArrayData::I8(v) => v.len(),
            ArrayData::U16(v) => v.len(),
            ArrayData::I16(v) => v.len(),
            ArrayData::U32(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::F32(v) => v.len(),
            ArrayData::U64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
            ArrayData::String(v) => v.len(),
            ArrayData::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn element_type(&self) -> ValueType {
        match &self.data {
            ArrayData::U8(_) => ValueType::U8,
            ArrayData::I8(_) => ValueType::I8,
            ArrayData::U16(_) => ValueType::U16,
            ArrayData::I16(_) => ValueType::I16,
            ArrayData::U32(_) => ValueType::U32,
            ArrayData::I32(_) => ValueType::I32,
            ArrayData::F32(_) => ValueType::F32,
            ArrayData::U64(_) => ValueType::U64,
            ArrayData::I64(_) => ValueType::I64,
            ArrayData::F64(_) => ValueType::F64,
            ArrayData::Bool(_) => ValueType::Bool,
            ArrayData::String(_) => ValueType::String,
            ArrayData::Array(_) => ValueType::Array,
        }
    }

    pub fn get(&self, index: usize) -> Option<ValueRef<'_>> {
        Some(match &self.data {
            ArrayData::U8(v) => ValueRef::U8(*v.get(index)?),
            ArrayData::I8(v) => ValueRef::I8(*v.get(index)?),
            ArrayData::U16(v) => ValueRef::U16(*v.get(index)?),
            ArrayData::I16(v) => ValueRef::I16(*v.get(index)?),
            ArrayData::U32(v) => ValueRef::U32(*v.get(index)?),
            ArrayData::I32(v) => ValueRef::I32(*v.get(index)?),
            ArrayData::F32(v) => ValueRef::F32(*v.get(index)?),
            ArrayData::U64(v) => ValueRef::U64(*v.get(index)?),
            ArrayData::I64(v) => ValueRef::I64(*v.get(index)?),
            ArrayData::F64(v) => ValueRef::F64(*v.get(index)?),
            ArrayData::Bool(v) => ValueRef::Bool(*v.get(index)?),
            ArrayData::String(v) => ValueRef::String(v.get(index)?),
            ArrayData::Array(v) => ValueRef::Array(v.get(index)?),
        })
    }

    /// Every element, borrowed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ValueRef<'_>> + '_ {
        // Every index below len() exists, so the fallback is never used.
        (0..self.len()).map(|i| self.get(i).unwrap_or(ValueRef::Bool(false)))
    }

    pub fn as_strings(&self) -> Option<&StringArray> {
        match &self.data {
            ArrayData::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_arrays(&self) -> Option<&[Array]> {
        match &self.data {
            ArrayData::Array(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32s(&self) -> Option<&[f32]> {
        match &self.data {
            ArrayData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32s(&self) -> Option<&[i32]> {
        match &self.data {
            ArrayData::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements of an integer array as `u64`; `None` for other element
    /// types or when an element is negative.
    pub fn to_u64s(&self) -> Option<Vec<u64>> {
        match &self.data {
            ArrayData::String(_)
            | ArrayData::Array(_)
            | ArrayData::Bool(_)
            | ArrayData::F32(_)
            | ArrayData::F64(_) => None,
            _ => self.iter().map(|v| v.as_u64()).collect(),
        }
    }

    /// The array as JSON with every element.
    pub fn to_json(&self) -> Json {
        self.to_json_capped(usize::MAX)
    }

    /// The array as JSON; this array or any nested one longer than
    /// `max_len` becomes `{"type":"array","element_type":..,"len":N}`.
    pub fn to_json_capped(&self, max_len: usize) -> Json {
        if self.len() > max_len {
            return self.summary_json();
        }
        Json::Array(self.iter().map(|v| v.to_json(max_len)).collect())
    }

    /// `{"type":"array","element_type":..,"len":N}`, the stand-in for arrays
    /// too long to report.
    pub fn summary_json(&self) -> Json {
        serde_json::json!({
            "type": "array",
            "element_type": self.element_type().name(),
            "len": self.len(),
        })
    }
}
