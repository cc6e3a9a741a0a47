//! safetensors headers against files written by `safetensors.numpy`, and
//! hand-made hostile ones.

use modelplane_formats::safetensors::{parse_header, read_path, SafetensorsError, MAX_HEADER_LEN};
use serde_json::json;

use crate::{fixture, fixture_bytes};

/// A safetensors file's bytes: length prefix, `header` JSON, `data_len` zero bytes.
pub fn encode(header: &serde_json::Value, data_len: usize) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("serializes");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.resize(out.len() + data_len, 0);
    out
}

#[test]
fn tiny_fixture() {
    let h = read_path(&fixture("tiny.safetensors")).expect("fixture parses");
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 4);
    assert!(names.contains(&"model.rotary.inv_freq"));
    let embed = h
        .tensors
        .iter()
        .find(|t| t.name == "model.embed_tokens.weight")
        .expect("present");
    assert_eq!(
        (embed.dtype.as_str(), embed.shape.as_slice()),
        ("F16", &[32, 64][..])
    );
    assert_eq!(embed.data_offsets.1 - embed.data_offsets.0, 4096);
    // 32×64 + 32×64 f16, 64 f32, 8 i64.
    assert_eq!(h.parameter_count(), 2048 + 2048 + 64 + 8);
    assert_eq!(h.data_bytes(), 4096 + 4096 + 256 + 64);
    let dtypes: Vec<_> = h.dtypes().into_iter().collect();
    assert_eq!(
        dtypes,
        vec![
            ("F16".to_owned(), 4096),
            ("F32".to_owned(), 64),
            ("I64".to_owned(), 8)
        ]
    );
    assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(
        h.metadata.get("note").map(String::as_str),
        Some("modelplane fixture")
    );
    let file_len = std::fs::metadata(fixture("tiny.safetensors"))
        .expect("stat")
        .len();
    assert_eq!(h.data_start() + h.data_bytes(), file_len);
    // Tensors come in file (offset) order.
    assert!(h
        .tensors
        .windows(2)
        .all(|w| w[0].data_offsets.1 == w[1].data_offsets.0));
    assert_eq!(parse_header(&fixture_bytes("tiny.safetensors")), Ok(h));
}

#[test]
fn every_prefix_of_the_header_is_truncated() {
    let bytes = fixture_bytes("tiny.safetensors");
    let header_end = parse_header(&bytes).expect("parses").data_start() as usize;
    for cut in 0..header_end {
        let expected = if cut < 8 { 8 } else { header_end as u64 };
        assert_eq!(
            parse_header(&bytes[..cut]),
            Err(SafetensorsError::Truncated { needed: expected }),
            "cut at {cut}"
        );
    }
    assert!(parse_header(&bytes[..header_end]).is_ok());
}

#[test]
fn read_path_checks_the_data_is_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = fixture_bytes("tiny.safetensors");
    let path = dir.path().join("cut.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("write");
    assert_eq!(
        read_path(&path),
        Err(SafetensorsError::FileTooShort {
            expected: bytes.len() as u64,
            actual: bytes.len() as u64 - 1
        })
    );
    std::fs::write(&path, &bytes[..4]).expect("write");
    assert_eq!(
        read_path(&path),
        Err(SafetensorsError::Truncated { needed: 8 })
    );
    std::fs::write(&path, &bytes[..100]).expect("write");
    assert!(matches!(
        read_path(&path),
        Err(SafetensorsError::Truncated { .. })
    ));
}

fn tensor(dtype: &str, shape: &[u64], begin: u64, end: u64) -> serde_json::Value {
    json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]})
}

fn check_err(header: serde_json::Value, matches: fn(&SafetensorsError) -> bool) {
    let result = parse_header(&encode(&header, 0));
    assert!(
        result.as_ref().err().is_some_and(matches),
        "{header}: got {result:?}"
    );
}

#[test]
fn hostile_headers() {
    // Length prefix over the cap, up to u64::MAX.
    for len in [MAX_HEADER_LEN + 1, u64::MAX] {
        assert_eq!(
            parse_header(&len.to_le_bytes()),
            Err(SafetensorsError::HeaderTooLarge {
                len,
                limit: MAX_HEADER_LEN
            })
        );
    }
    let raw = |json: &[u8]| {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json);
        parse_header(&out)
    };
    assert!(matches!(
        raw(b"{not json"),
        Err(SafetensorsError::InvalidHeader(_))
    ));
    assert!(matches!(
        raw(b"[1, 2]"),
        Err(SafetensorsError::InvalidHeader(_))
    ));
    assert!(matches!(
        raw(&[0xff, 0xfe]),
        Err(SafetensorsError::InvalidHeader(_))
    ));
    assert!(matches!(
        raw(br#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#),
        Err(SafetensorsError::InvalidHeader(e)) if e.contains("duplicate")
    ));
    // Trailing spaces are allowed padding.
    assert!(raw(br#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}    "#).is_ok());
    assert!(raw(b"{}").is_ok());

    check_err(
        json!({"a": tensor("F99", &[1], 0, 4)}),
        |e| matches!(e, SafetensorsError::UnknownDtype { dtype, .. } if dtype == "F99"),
    );
    check_err(json!({"a": tensor("F32", &[2], 0, 4)}), |e| {
        matches!(e, SafetensorsError::InvalidTensor { .. })
    });
    check_err(json!({"a": tensor("F32", &[1], 8, 4)}), |e| {
        matches!(e, SafetensorsError::InvalidTensor { .. })
    });
    check_err(
        json!({"a": tensor("F32", &[1 << 32, 1 << 32, 1 << 32], 0, 4)}),
        |e| matches!(e, SafetensorsError::InvalidTensor { reason, .. } if reason.contains("overflow")),
    );
    check_err(json!({"a": tensor("F4", &[3], 0, 2)}), |e| {
        matches!(e, SafetensorsError::InvalidTensor { .. })
    });
    // A gap, an overlap, a start other than 0.
    check_err(
        json!({"a": tensor("F32", &[1], 0, 4), "b": tensor("F32", &[1], 8, 12)}),
        |e| matches!(e, SafetensorsError::BadOffsets(_)),
    );
    check_err(
        json!({"a": tensor("F32", &[2], 0, 8), "b": tensor("F32", &[1], 4, 8)}),
        |e| matches!(e, SafetensorsError::BadOffsets(_)),
    );
    check_err(json!({"a": tensor("F32", &[1], 4, 8)}), |e| {
        matches!(e, SafetensorsError::BadOffsets(_))
    });
    // Metadata values must be strings.
    check_err(json!({"__metadata__": {"a": 1}}), |e| {
        matches!(e, SafetensorsError::InvalidHeader(_))
    });
    check_err(
        json!({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}),
        |e| matches!(e, SafetensorsError::InvalidHeader(_)),
    );
    check_err(json!({"a": {"dtype": "F32", "shape": [1]}}), |e| {
        matches!(e, SafetensorsError::InvalidHeader(_))
    });
}

#[test]
fn sub_byte_and_empty_tensors() {
    let header = json!({
        "__metadata__": null,
        "e": tensor("F32", &[0, 4], 0, 0),
        "a": tensor("F4", &[4], 0, 2),
        "b": tensor("F6_E2M3", &[4], 2, 5),
        "s": tensor("BF16", &[], 5, 7),
    });
    let h = parse_header(&encode(&header, 7)).expect("parses");
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["e", "a", "b", "s"]);
    assert_eq!(h.parameter_count(), 4 + 4 + 1);
    assert_eq!(h.data_bytes(), 7);
    assert!(h.metadata.is_empty());
}

#[test]
fn error_codes() {
    assert_eq!(
        SafetensorsError::Truncated { needed: 8 }.code(),
        "safetensors_truncated"
    );
    assert_eq!(
        SafetensorsError::FileTooShort {
            expected: 2,
            actual: 1
        }
        .to_string(),
        "the file is 1 bytes but its header describes 2; it is incomplete"
    );
}
