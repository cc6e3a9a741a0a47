//! Property tests: random bytes never panic; random well-formed headers
//! round-trip through the parsers.

use modelplane_formats::gguf::{
    self, Array, ArrayData, GgmlType, GgufError, StringArray, TensorInfo, Value,
};
use modelplane_formats::safetensors::{self, dtype_bits, SafeTensorInfo};
use proptest::prelude::*;

use crate::writer::encode;

fn f32s() -> impl Strategy<Value = f32> {
    // NaN != NaN would fail the equality check, not the parser.
    proptest::num::f32::NORMAL
        | proptest::num::f32::ZERO
        | proptest::num::f32::SUBNORMAL
        | proptest::num::f32::INFINITE
}

fn f64s() -> impl Strategy<Value = f64> {
    proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::INFINITE
}

fn leaf_array() -> impl Strategy<Value = Array> {
    use proptest::collection::vec;
    let n = 0..12usize;
    prop_oneof![
        vec(any::<u8>(), n.clone()).prop_map(ArrayData::U8),
        vec(any::<i8>(), n.clone()).prop_map(ArrayData::I8),
        vec(any::<u16>(), n.clone()).prop_map(ArrayData::U16),
        vec(any::<i16>(), n.clone()).prop_map(ArrayData::I16),
        vec(any::<u32>(), n.clone()).prop_map(ArrayData::U32),
        vec(any::<i32>(), n.clone()).prop_map(ArrayData::I32),
        vec(f32s(), n.clone()).prop_map(ArrayData::F32),
        vec(any::<u64>(), n.clone()).prop_map(ArrayData::U64),
        vec(any::<i64>(), n.clone()).prop_map(ArrayData::I64),
        vec(f64s(), n.clone()).prop_map(ArrayData::F64),
        vec(any::<bool>(), n.clone()).prop_map(ArrayData::Bool),
        vec("\\PC{0,6}", n)
            .prop_map(|v| ArrayData::String(StringArray::from_strs(v).expect("small strings"))),
    ]
    .prop_map(Array::new)
}

fn array() -> impl Strategy<Value = Array> {
    leaf_array().prop_recursive(3, 24, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(|v| Array::new(ArrayData::Array(v)))
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        f32s().prop_map(Value::F32),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        f64s().prop_map(Value::F64),
        any::<bool>().prop_map(Value::Bool),
        "\\PC{0,24}".prop_map(Value::String),
        array().prop_map(Value::Array),
    ]
}

fn ggml_type() -> impl Strategy<Value = GgmlType> {
    proptest::sample::select(GgmlType::ALL.to_vec())
}

/// Tensors laid out at `alignment`, each with a valid shape for its type.
fn tensors(alignment: u64) -> impl Strategy<Value = Vec<TensorInfo>> {
    proptest::collection::vec(
        (
            ggml_type(),
            0..4u64,
            proptest::collection::vec(1..5u64, 0..3),
        ),
        0..6,
    )
    .prop_map(move |specs| {
        let mut offset = 0;
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (ggml_type, blocks, rest))| {
                let mut dims = vec![blocks * ggml_type.block_size()];
                dims.extend(rest);
                let size = ggml_type
                    .tensor_bytes(&dims)
                    .expect("valid by construction");
                let info = TensorInfo {
                    name: format!("blk.{i}.weight"),
                    dims,
                    ggml_type,
                    offset,
                };
                offset += size.div_ceil(alignment) * alignment;
                info
            })
            .collect()
    })
}

fn header() -> impl Strategy<Value = (u32, Vec<(String, Value)>, Vec<TensorInfo>, u64)> {
    let alignment = proptest::sample::select(vec![1u64, 8, 32, 64, 4096]);
    (
        proptest::sample::select(vec![2u32, 3]),
        proptest::collection::vec(("[a-z.]{0,12}", value()), 0..8),
        alignment,
    )
        .prop_flat_map(|(version, pairs, alignment)| {
            let mut metadata: Vec<(String, Value)> = pairs
                .into_iter()
                .enumerate()
                .map(|(i, (key, value))| (format!("k{i}.{key}"), value))
                .collect();
            if alignment != 32 {
                metadata.push(("general.alignment".to_owned(), Value::U32(alignment as u32)));
            }
            (
                Just(version),
                Just(metadata),
                tensors(alignment),
                Just(alignment),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = gguf::parse(&bytes);
        let _ = gguf::header_len(&bytes);
        let _ = safetensors::parse_header(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_preamble_never_panic(
        version in 2u32..4,
        counts in (0u64..4, 0u64..4),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&counts.0.to_le_bytes());
        bytes.extend_from_slice(&counts.1.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = gguf::parse(&bytes);
        let _ = gguf::header_len(&bytes);
    }

    #[test]
    fn well_formed_headers_round_trip((version, metadata, tensors, alignment) in header()) {
        let bytes = encode(version, &metadata, &tensors);
        let h = gguf::parse(&bytes).expect("a well-formed header parses");
        prop_assert_eq!(h.version, version);
        prop_assert_eq!(&h.metadata, &metadata);
        prop_assert_eq!(&h.tensors, &tensors);
        prop_assert_eq!(h.alignment, alignment);
        prop_assert_eq!(h.data_offset, (bytes.len() as u64).div_ceil(alignment) * alignment);
        prop_assert_eq!(gguf::header_len(&bytes), Ok(bytes.len() as u64));
        // The report never panics and drops nothing but vocabulary.
        prop_assert_eq!(h.metadata_report().raw.len(), metadata.len());
    }

    #[test]
    fn prefixes_of_well_formed_headers_are_truncated(
        (version, metadata, tensors, _) in header(),
        cut_fraction in 0.0f64..1.0,
    ) {
        let bytes = encode(version, &metadata, &tensors);
        let cut = (bytes.len() as f64 * cut_fraction) as usize;
        match gguf::parse(&bytes[..cut]) {
            Err(GgufError::Truncated { needed }) => {
                prop_assert!(needed > cut as u64 && needed <= bytes.len() as u64);
            }
            other => prop_assert!(false, "cut {} of {}: {:?}", cut, bytes.len(), other),
        }
    }

    #[test]
    fn mutated_headers_never_panic(
        (version, metadata, tensors, _) in header(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(version, &metadata, &tensors);
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = gguf::parse(&bytes);
        let _ = gguf::header_len(&bytes);
    }

    #[test]
    fn safetensors_headers_round_trip(
        specs in proptest::collection::vec(
            (proptest::sample::select(vec!["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "F64"]),
             proptest::collection::vec(0..6u64, 0..4)),
            0..8,
        ),
        metadata in proptest::collection::btree_map("[a-z]{1,8}", "\\PC{0,12}", 0..4),
    ) {
        let mut offset = 0;
        let tensors: Vec<SafeTensorInfo> = specs
            .into_iter()
            .enumerate()
            .map(|(i, (dtype, shape))| {
                let bits = dtype_bits(dtype).expect("known dtype");
                let size = shape.iter().product::<u64>() * bits / 8;
                let info = SafeTensorInfo {
                    name: format!("model.layers.{i}.weight"),
                    dtype: dtype.to_owned(),
                    shape,
                    data_offsets: (offset, offset + size),
                };
                offset += size;
                info
            })
            .collect();
        let mut json = serde_json::Map::new();
        if !metadata.is_empty() {
            json.insert("__metadata__".to_owned(), serde_json::to_value(&metadata).expect("json"));
        }
        for t in &tensors {
            json.insert(t.name.clone(), serde_json::json!({
                "dtype": t.dtype, "shape": t.shape, "data_offsets": [t.data_offsets.0, t.data_offsets.1],
            }));
        }
        let bytes = crate::safetensors::encode(&serde_json::Value::Object(json), offset as usize);
        let h = safetensors::parse_header(&bytes).expect("well-formed header parses");
        // Parsed tensors come in offset order; zero-sized ones tie-break by name.
        let mut expected = tensors.clone();
        expected.sort_by(|a, b| (a.data_offsets, &a.name).cmp(&(b.data_offsets, &b.name)));
        prop_assert_eq!(&h.tensors, &expected);
        prop_assert_eq!(&h.metadata, &metadata);
        prop_assert_eq!(h.data_bytes(), offset);
        let cut = bytes.len().min(8 + h.header_len as usize) / 2;
        let truncated = matches!(
            safetensors::parse_header(&bytes[..cut]),
            Err(safetensors::SafetensorsError::Truncated { .. })
        );
        prop_assert!(truncated);
    }
}
