//! GGUF parsing against files written by the reference `gguf` Python package.

use modelplane_formats::gguf::{
    self, header_len, parse, read_path, ArrayData, GgmlType, GgufError, HeaderScanner, Value,
    ValueType,
};
use serde_json::json;

use crate::writer::{encode, kv, lay_out, strings};
use crate::{fixture, fixture_bytes};

#[test]
fn tiny_llama_header_layout() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("fixture parses");
    assert_eq!(h.version, 3);
    assert_eq!(h.metadata.len(), 37);
    assert_eq!(h.alignment, 32);
    // GGUFReader reports token_embd.weight's data at absolute offset 14368.
    assert_eq!(h.data_offset, 14368);
    let tensors: Vec<_> = h
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dims.clone(), t.ggml_type, t.offset))
        .collect();
    assert_eq!(
        tensors,
        vec![
            ("token_embd.weight", vec![64, 32], GgmlType::F16, 0),
            ("output_norm.weight", vec![64], GgmlType::F32, 4096),
            ("blk.0.attn_q.weight", vec![64, 64], GgmlType::Q8_0, 4352),
        ]
    );
    // 64×32×2 + 64×4 + (64/32)×34×64 = 4096 + 256 + 4352.
    assert_eq!(h.tensor_data_bytes(), Ok(8704));
    // The file ends exactly where the last tensor does.
    let file_len = std::fs::metadata(fixture("tiny_llama.gguf"))
        .expect("stat")
        .len();
    assert_eq!(h.data_end(), Ok(file_len));
}

#[test]
fn tiny_llama_every_value_type() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("fixture parses");
    let check = |key: &str, expected: Value| {
        assert_eq!(h.get(key), Some(&expected), "{key}");
    };
    check("test.u8", Value::U8(200));
    check("test.i8", Value::I8(-100));
    check("test.u16", Value::U16(60000));
    check("test.i16", Value::I16(-30000));
    check("test.u32", Value::U32(4_000_000_000));
    check("test.i32", Value::I32(-2_000_000_000));
    check("test.f32", Value::F32(0.25));
    check("test.u64", Value::U64((1 << 63) + 5));
    check("test.i64", Value::I64(-(1 << 62)));
    check("test.f64", Value::F64(std::f64::consts::PI));
    check("test.bool", Value::Bool(true));
    check("test.string", Value::String("héllo wörld ✓".to_owned()));
    check("test.array_str", strings(["a", "", "ünï"]));

    let ints = h
        .get("test.array_int")
        .and_then(Value::as_array)
        .expect("array");
    assert_eq!(ints.element_type(), ValueType::I32);
    assert_eq!(ints.as_i32s(), Some(&[1, 2, 3][..]));

    let nested = h
        .get("test.nested")
        .and_then(Value::as_array)
        .expect("array");
    assert_eq!(nested.element_type(), ValueType::Array);
    assert_eq!(nested.len(), 2);
    assert_eq!(nested.to_json(), json!([[1, 2], [3, 4, 5]]));

    let tokens = h
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .and_then(|a| a.as_strings())
        .expect("string array");
    assert_eq!(tokens.len(), 300);
    assert_eq!(tokens.get(0), Some("<unk>"));
    assert_eq!(tokens.get(3), Some("Ġtok3"));
    assert_eq!(tokens.get(7), Some("tok7é"));
    assert_eq!(tokens.get(300), None);
    assert_eq!(tokens.iter().last(), Some("tok299"));

    let scores = h
        .get("tokenizer.ggml.scores")
        .and_then(Value::as_array)
        .expect("array");
    assert_eq!(scores.as_f32s().map(|s| s[299]), Some(-299.0));
    let long = h
        .get("test.long_array")
        .and_then(Value::as_array)
        .expect("array");
    assert!(matches!(long.data(), ArrayData::U16(v) if v.len() == 1500 && v[1499] == 1499));
}

#[test]
fn tiny_llama_accessors() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("fixture parses");
    assert_eq!(h.architecture(), Some("llama"));
    assert_eq!(h.arch_u64("context_length"), Some(2048));
    assert_eq!(
        h.arch_u64("rope.freq_base"),
        None,
        "a float is not an integer"
    );
    assert_eq!(h.arch_f64("rope.freq_base"), Some(500000.0));
    assert_eq!(h.arch_u64("no.such.key"), None);
    assert_eq!(h.file_type(), Some(7));
    assert_eq!(h.quantization().as_deref(), Some("Q8_0"));
    assert_eq!(h.vocab_size(), Some(300));
}

#[test]
fn tiny_llama_summary() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("fixture parses");
    assert_eq!(
        serde_json::to_value(h.summary()).expect("serializes"),
        json!({
            "architecture": "llama",
            "context_length": 2048,
            "embedding_length": 64,
            "block_count": 1,
            "attention_head_count": 4,
            "attention_head_count_kv": 2,
            "vocab_size": 300,
            "file_type": "Q8_0",
        })
    );
}

#[test]
fn tiny_llama_metadata_report() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("fixture parses");
    let report = serde_json::to_value(h.metadata_report()).expect("serializes");
    assert_eq!(
        report["general"],
        json!({
            "name": "tiny-llama-test",
            "architecture": "llama",
            "architecture_supported": true,
            "file_type": 7,
            "quantization": "Q8_0",
        })
    );
    assert_eq!(
        report["model"],
        json!({
            "context_length": 2048,
            "block_count": 1,
            "embedding_length": 64,
            "feed_forward_length": 128,
            "head_count": 4,
            "head_count_kv": 2,
            "rope_dimension_count": 16,
            "rope_freq_base": 500000.0,
            // Stored as f32; reported as the decimal that was written.
            "layer_norm_rms_epsilon": 1e-5,
            "vocab_size": 300,
            "expert_count": null,
        })
    );
    assert_eq!(
        report["tokenizer"],
        json!({
            "model": "gpt2",
            "pre": "llama-bpe",
            "eos_token_id": 2,
            "bos_token_id": 1,
            "padding_token_id": null,
            "chat_template": true,
        })
    );
    assert_eq!(
        report["tensors"],
        json!({
            "count": 3,
            "data_offset": 14368,
            "alignment": 32,
            "total_bytes": 8704,
            "types": { "F16": 1, "F32": 1, "Q8_0": 1 },
        })
    );
    let raw = report["raw"].as_object().expect("raw is an object");
    for vocabulary in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
    ] {
        assert!(!raw.contains_key(vocabulary), "{vocabulary} left out");
    }
    // 37 keys less the four vocabulary arrays.
    assert_eq!(raw.len(), 33);
    assert_eq!(raw["general.architecture"], json!("llama"));
    assert_eq!(raw["test.u64"], json!(9_223_372_036_854_775_813u64));
    assert_eq!(raw["test.f32"], json!(0.25));
    assert_eq!(raw["test.nested"], json!([[1, 2], [3, 4, 5]]));
    assert_eq!(
        raw["test.long_array"],
        json!({"type": "array", "element_type": "uint16", "len": 1500})
    );
    assert_eq!(
        report.as_object().map(|o| o.len()),
        Some(5),
        "exactly general, model, tokenizer, tensors, raw"
    );
    // The seed's list-of-pairs shape carries the same entries.
    assert_eq!(h.raw_pairs().len(), 33);
    assert_eq!(
        h.raw_pairs()[0],
        json!({"key": "general.architecture", "value": "llama"})
    );
}

#[test]
fn version_2_file_parses_like_version_3() {
    let v3 = read_path(&fixture("tiny_llama.gguf")).expect("v3 parses");
    let v2 = read_path(&fixture("tiny_llama_v2.gguf")).expect("v2 parses");
    assert_eq!(v2.version, 2);
    assert_eq!(v2.metadata, v3.metadata);
    assert_eq!(v2.tensors, v3.tensors);
    assert_eq!(v2.data_offset, v3.data_offset);
}

#[test]
fn version_2_hand_made() {
    let bytes = encode(
        2,
        &[kv("general.architecture", Value::String("llama".into()))],
        &lay_out(&[("t", &[32], GgmlType::F32)], 32),
    );
    let h = parse(&bytes).expect("v2 parses");
    assert_eq!(h.version, 2);
    assert_eq!(h.architecture(), Some("llama"));
}

#[test]
fn split_shards_from_the_python_writer() {
    let first = read_path(&fixture("tiny-split-Q8_0-00001-of-00002.gguf")).expect("shard 1");
    let second = read_path(&fixture("tiny-split-Q8_0-00002-of-00002.gguf")).expect("shard 2");
    assert_eq!(first.get("split.no"), Some(&Value::U16(0)));
    assert_eq!(first.get("split.count"), Some(&Value::U16(2)));
    assert_eq!(second.get("split.no"), Some(&Value::U16(1)));
    assert_eq!(first.architecture(), Some("llama"));
    // Only the first shard carries model metadata.
    assert_eq!(second.architecture(), None);
    assert_eq!(first.tensors.len() + second.tensors.len(), 4);
}

#[test]
fn parse_needs_only_the_header_bytes() {
    let bytes = fixture_bytes("tiny_llama.gguf");
    let len = header_len(&bytes).expect("scans") as usize;
    let whole = parse(&bytes).expect("parses");
    // A header-only copy (as gguf_header.bin stores) parses the same.
    assert_eq!(parse(&bytes[..len]).expect("header only"), whole);
    assert!(len < whole.data_offset as usize + 1);
    assert_eq!(whole.data_offset, (len as u64).div_ceil(32) * 32);
}

#[test]
fn every_prefix_is_truncated_with_a_sound_lower_bound() {
    for name in [
        "tiny_llama.gguf",
        "tiny-split-Q8_0-00002-of-00002.gguf",
        "tiny_lora.gguf",
    ] {
        let bytes = fixture_bytes(name);
        let len = header_len(&bytes).expect("scans");
        for cut in 0..len as usize {
            match parse(&bytes[..cut]) {
                Err(GgufError::Truncated { needed }) => {
                    assert!(
                        needed > cut as u64,
                        "{name}@{cut}: needed {needed} is not more"
                    );
                    assert!(
                        needed <= len,
                        "{name}@{cut}: needed {needed} overshoots {len}"
                    );
                }
                other => panic!("{name}@{cut}: expected Truncated, got {other:?}"),
            }
            match header_len(&bytes[..cut]) {
                Err(GgufError::Truncated { needed }) => {
                    assert!(
                        needed > cut as u64 && needed <= len,
                        "{name}@{cut}: scan {needed}"
                    );
                }
                other => panic!("{name}@{cut}: scan expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn scanner_resumes_byte_by_byte() {
    let bytes = fixture_bytes("tiny_llama.gguf");
    let expected = header_len(&bytes).expect("scans");
    let mut scanner = HeaderScanner::new();
    let mut cut = 0usize;
    let found = loop {
        match scanner.scan(&bytes[..cut]) {
            Ok(len) => break len,
            Err(GgufError::Truncated { needed }) => {
                assert!(needed as usize > cut);
                // Feed exactly what was asked for: the bound is usable as is.
                cut = needed as usize;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(found, expected);
}

#[test]
fn fetching_by_needed_takes_few_rounds() {
    // A remote reader that fetches exactly `needed` each time: the bound
    // counts the least every pair and tensor info still to come can take,
    // so it jumps ahead rather than creeping a read at a time.
    let bytes = fixture_bytes("tiny_llama.gguf");
    let mut have = 0usize;
    let mut rounds = 0;
    loop {
        rounds += 1;
        match parse(&bytes[..have]) {
            Ok(_) => break,
            Err(GgufError::Truncated { needed }) => have = needed as usize,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(rounds <= 60, "{rounds} rounds");
}

#[test]
fn read_path_large_header_in_a_sparse_file() {
    // 200,000 tokens (~3 MB of metadata, past the first 1 MiB read) and a
    // 4 GiB data section that is never read (the file is sparse).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.gguf");
    let tokens: Vec<String> = (0..200_000).map(|i| format!("Ġtok{i}")).collect();
    let metadata = vec![
        kv("general.architecture", Value::String("llama".into())),
        kv("tokenizer.ggml.tokens", strings(&tokens)),
    ];
    let tensors = lay_out(&[("big", &[1 << 16, 1 << 14], GgmlType::F32)], 32);
    let header = encode(3, &metadata, &tensors);
    let file = std::fs::File::create(&path).expect("create");
    use std::io::Write;
    (&file).write_all(&header).expect("write");
    file.set_len(header.len() as u64 + (4 << 30))
        .expect("sparse extend");
    drop(file);

    let h = read_path(&path).expect("reads");
    assert_eq!(h.vocab_size(), Some(200_000));
    assert_eq!(h.tensor_data_bytes(), Ok(4 << 30));
    let tokens = h
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .expect("tokens");
    assert_eq!(
        tokens.get(199_999),
        Some(gguf::ValueRef::String("Ġtok199999"))
    );
}

#[test]
fn read_path_truncated_file_and_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = fixture_bytes("tiny_llama.gguf");
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &bytes[..5000]).expect("write");
    assert!(matches!(read_path(&path), Err(GgufError::Truncated { needed }) if needed > 5000));
    assert!(matches!(
        read_path(&dir.path().join("absent.gguf")),
        Err(GgufError::Io(_))
    ));
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(read_path(&empty), Err(GgufError::Truncated { needed: 4 }));
}

#[test]
fn empty_arrays_and_odd_bools_parse() {
    let bytes = crate::writer::Bytes::preamble(3, 0, 2)
        .str("empty")
        .u32(9)
        .u32(ValueType::String.id())
        .u64(0)
        .str("flag")
        .u32(7)
        .u8(2)
        .build();
    let h = parse(&bytes).expect("parses");
    let empty = h.get("empty").and_then(Value::as_array).expect("array");
    assert!(empty.is_empty());
    assert_eq!(empty.element_type(), ValueType::String);
    assert_eq!(h.get("flag"), Some(&Value::Bool(true)));
    assert_eq!(h.data_offset, bytes.len().div_ceil(32) as u64 * 32);
}

#[test]
fn custom_alignment_moves_the_data_offset() {
    let metadata = vec![kv("general.alignment", Value::U32(4096))];
    let tensors = lay_out(
        &[
            ("a", &[32, 2], GgmlType::Q8_0),
            ("b", &[256], GgmlType::Q4_K),
        ],
        4096,
    );
    let bytes = encode(3, &metadata, &tensors);
    let h = parse(&bytes).expect("parses");
    assert_eq!(h.alignment, 4096);
    assert_eq!(h.data_offset, 4096);
    // Q8_0 [32, 2] = 2 blocks × 34; Q4_K [256] = 1 block × 144.
    assert_eq!(h.tensor_data_bytes(), Ok(68 + 144));
    assert_eq!(h.data_end(), Ok(4096 + 4096 + 144));
}

#[test]
fn quantization_falls_back_to_the_dominant_tensor_type() {
    let tensors = lay_out(
        &[
            ("norm", &[4096], GgmlType::F32),
            ("a", &[4096, 16], GgmlType::Q4_K),
            ("b", &[4096, 16], GgmlType::Q4_K),
            ("c", &[4096, 8], GgmlType::Q6_K),
        ],
        32,
    );
    let h = parse(&encode(3, &[], &tensors)).expect("parses");
    assert_eq!(h.quantization().as_deref(), Some("Q4_K"));
    let with_unknown_ftype = encode(3, &[kv("general.file_type", Value::U32(1024))], &tensors);
    let h = parse(&with_unknown_ftype).expect("parses");
    assert_eq!(h.quantization().as_deref(), Some("Q4_K"));
}

#[test]
fn file_type_names() {
    let cases = [
        (0, Some("F32")),
        (1, Some("F16")),
        (2, Some("Q4_0")),
        (7, Some("Q8_0")),
        (10, Some("Q2_K")),
        (11, Some("Q3_K_S")),
        (15, Some("Q4_K_M")),
        (17, Some("Q5_K_M")),
        (18, Some("Q6_K")),
        (19, Some("IQ2_XXS")),
        (30, Some("IQ4_XS")),
        (32, Some("BF16")),
        (38, Some("MXFP4_MOE")),
        (5, None),
        (1024, None),
    ];
    for (id, name) in cases {
        assert_eq!(gguf::file_type_name(id), name, "{id}");
    }
}

#[test]
fn ggml_type_table_matches_ggml() {
    // (id, name, block size, type size) from GGML_QUANT_SIZES in gguf 0.19.
    let table: &[(u32, &str, u64, u64)] = &[
        (0, "F32", 1, 4),
        (1, "F16", 1, 2),
        (2, "Q4_0", 32, 18),
        (3, "Q4_1", 32, 20),
        (6, "Q5_0", 32, 22),
        (7, "Q5_1", 32, 24),
        (8, "Q8_0", 32, 34),
        (9, "Q8_1", 32, 40),
        (10, "Q2_K", 256, 84),
        (11, "Q3_K", 256, 110),
        (12, "Q4_K", 256, 144),
        (13, "Q5_K", 256, 176),
        (14, "Q6_K", 256, 210),
        (15, "Q8_K", 256, 292),
        (16, "IQ2_XXS", 256, 66),
        (17, "IQ2_XS", 256, 74),
        (18, "IQ3_XXS", 256, 98),
        (19, "IQ1_S", 256, 50),
        (20, "IQ4_NL", 32, 18),
        (21, "IQ3_S", 256, 110),
        (22, "IQ2_S", 256, 82),
        (23, "IQ4_XS", 256, 136),
        (24, "I8", 1, 1),
        (25, "I16", 1, 2),
        (26, "I32", 1, 4),
        (27, "I64", 1, 8),
        (28, "F64", 1, 8),
        (29, "IQ1_M", 256, 56),
        (30, "BF16", 1, 2),
        (34, "TQ1_0", 256, 54),
        (35, "TQ2_0", 256, 66),
        (39, "MXFP4", 32, 17),
        (40, "NVFP4", 64, 36),
        (41, "Q1_0", 128, 18),
    ];
    for &(id, name, block, size) in table {
        let t = GgmlType::from_id(id).expect("known id");
        assert_eq!(
            (t.id(), t.name(), t.block_size(), t.type_size()),
            (id, name, block, size)
        );
    }
    for unknown in [4, 5, 42, 1000, u32::MAX] {
        assert_eq!(GgmlType::from_id(unknown), None, "{unknown}");
    }
    for t in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
}

#[test]
fn architecture_support() {
    assert!(gguf::is_known_architecture("llama"));
    assert!(gguf::is_known_architecture("qwen2"));
    assert!(gguf::is_known_architecture("gpt-oss"));
    assert!(!gguf::is_known_architecture("Llama"));
    assert!(!gguf::is_known_architecture("my-own-arch"));
    let mut sorted = gguf::KNOWN_ARCHITECTURES.to_vec();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        gguf::KNOWN_ARCHITECTURES,
        "kept sorted for binary search"
    );
}

#[test]
fn per_layer_head_counts_report_their_maximum() {
    let per_layer = Value::Array(gguf::Array::new(ArrayData::I32(vec![4, 8, 2])));
    let metadata = vec![
        kv("general.architecture", Value::String("openelm".into())),
        kv("openelm.attention.head_count_kv", per_layer),
    ];
    let h = parse(&encode(3, &metadata, &[])).expect("parses");
    assert_eq!(h.arch_u64("attention.head_count_kv"), None);
    assert_eq!(h.arch_u64_max("attention.head_count_kv"), Some(8));
    assert_eq!(h.summary().attention_head_count_kv, Some(8));
    let report = h.metadata_report();
    assert!(!report.general.architecture_supported || gguf::is_known_architecture("openelm"));
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(GgufError::Truncated { needed: 1 }.code(), "gguf_truncated");
    assert_eq!(GgufError::BadMagic.code(), "gguf_bad_magic");
    assert_eq!(
        GgufError::UnsupportedVersion(1).to_string(),
        "GGUF version 1 is not supported; only versions 2 and 3 are (re-convert the model with a current llama.cpp)"
    );
}

#[test]
fn a_growing_prefix_parses_to_the_same_header_as_the_whole_file() {
    // What a range reader does: fetch what `Truncated` asks for (at least
    // doubling), until the header parses.
    for name in ["tiny_llama.gguf", "tiny-split-Q8_0-00001-of-00002.gguf"] {
        let bytes = fixture_bytes(name);
        let whole = gguf::parse(&bytes).expect("parses");
        let mut have = 16usize;
        let mut resuming = gguf::PrefixParser::new();
        let header = loop {
            let prefix = &bytes[..have.min(bytes.len())];
            let fresh = gguf::parse_prefix(prefix);
            let resumed = resuming.parse(prefix);
            assert_eq!(fresh, resumed, "{name}@{have}: a resumed scan agrees");
            match fresh {
                Ok(h) => break h,
                Err(GgufError::Truncated { needed }) => {
                    assert!(needed as usize > have, "{name}: asks for more than it has");
                    have = (needed as usize).max(have * 2);
                }
                Err(other) => panic!("{name}: unexpected {other:?}"),
            }
        };
        assert_eq!(header, whole, "{name}");
    }
}
