//! A small GGUF encoder of the tests' own, independent of the parser, and
//! helpers for hand-made bytes.

use modelplane_formats::gguf::{Array, ArrayData, GgmlType, TensorInfo, Value};

/// Little-endian byte building for hand-crafted (often hostile) headers.
#[derive(Default, Clone)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn new() -> Bytes {
        Bytes::default()
    }
    pub fn raw(mut self, b: &[u8]) -> Bytes {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u8(self, v: u8) -> Bytes {
        self.raw(&[v])
    }
    pub fn u32(self, v: u32) -> Bytes {
        self.raw(&v.to_le_bytes())
    }
    pub fn u64(self, v: u64) -> Bytes {
        self.raw(&v.to_le_bytes())
    }
    /// A GGUF string: u64 length then the bytes.
    pub fn str(self, s: &str) -> Bytes {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// `GGUF`, version, tensor count, kv count.
    pub fn preamble(version: u32, tensors: u64, kvs: u64) -> Bytes {
        Bytes::new().raw(b"GGUF").u32(version).u64(tensors).u64(kvs)
    }
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

pub fn value_type_id(v: &Value) -> u32 {
    v.value_type().id()
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a.data() {
        ArrayData::String(strings) => {
            for s in strings.iter() {
                put_str(out, s);
            }
        }
        ArrayData::Array(items) => {
            for item in items {
                put_array(out, item);
            }
        }
        _ => {
            for item in a.iter() {
                put_value(out, &item.to_owned_value());
            }
        }
    }
}

/// Encodes a whole header (no padding, no data).
pub fn encode(version: u32, metadata: &[(String, Value)], tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut out, key);
        out.extend_from_slice(&value_type_id(value).to_le_bytes());
        put_value(&mut out, value);
    }
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    out
}

/// Tensor infos laid out one after another at `alignment`, as llama.cpp does.
pub fn lay_out(specs: &[(&str, &[u64], GgmlType)], alignment: u64) -> Vec<TensorInfo> {
    let mut offset = 0u64;
    specs
        .iter()
        .map(|(name, dims, ggml_type)| {
            let info = TensorInfo {
                name: (*name).to_owned(),
                dims: dims.to_vec(),
                ggml_type: *ggml_type,
                offset,
            };
            let size = ggml_type.tensor_bytes(dims).expect("valid test tensor");
            offset += size.div_ceil(alignment) * alignment;
            info
        })
        .collect()
}

pub fn kv(key: &str, value: Value) -> (String, Value) {
    (key.to_owned(), value)
}

pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(Array::new(ArrayData::String(
        modelplane_formats::gguf::StringArray::from_strs(items).expect("small test strings"),
    )))
}
