//! Hand-crafted hostile GGUF headers: each must give its typed error quickly,
//! without panicking or allocating what the bytes claim.

use modelplane_formats::gguf::{header_len, limits, parse, GgufError, ValueType};

use crate::writer::Bytes;

const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U32: u32 = 4;
const U64: u32 = 10;

/// Parses and scans `bytes`; both must fail the same way for the errors
/// the scanner also detects, and `parse` must give `expected`.
fn check(bytes: &[u8], expected: GgufError) {
    assert_eq!(parse(bytes), Err(expected.clone()), "parse");
    let scanned = header_len(bytes);
    let scanner_checks = matches!(
        expected,
        GgufError::Truncated { .. }
            | GgufError::BadMagic
            | GgufError::BigEndian
            | GgufError::UnsupportedVersion(_)
            | GgufError::LimitExceeded { .. }
            | GgufError::UnknownValueType(_)
    );
    if scanner_checks {
        assert_eq!(scanned, Err(expected), "scan");
    }
}

fn limit(what: &'static str, value: u64, limit: u64) -> GgufError {
    GgufError::LimitExceeded { what, value, limit }
}

/// One metadata pair and no tensors: the preamble then `rest`.
fn one_kv(rest: Bytes) -> Vec<u8> {
    Bytes::preamble(3, 0, 1).raw(&rest.build()).build()
}

#[test]
fn magic_and_version() {
    check(b"", GgufError::Truncated { needed: 4 });
    check(b"GGU", GgufError::Truncated { needed: 4 });
    check(b"GGUX\x03\0\0\0", GgufError::BadMagic);
    check(b"ggml\x03\0\0\0", GgufError::BadMagic);
    check(b"GGUF", GgufError::Truncated { needed: 8 });
    check(
        &Bytes::preamble(1, 0, 0).build(),
        GgufError::UnsupportedVersion(1),
    );
    check(
        &Bytes::preamble(4, 0, 0).build(),
        GgufError::UnsupportedVersion(4),
    );
    check(
        &Bytes::preamble(0, 0, 0).build(),
        GgufError::UnsupportedVersion(0),
    );
    check(
        &Bytes::new().raw(b"GGUF").raw(&3u32.to_be_bytes()).build(),
        GgufError::BigEndian,
    );
    check(
        &Bytes::preamble(3, 0, 0).build()[..20],
        GgufError::Truncated { needed: 24 },
    );
    assert!(parse(&Bytes::preamble(3, 0, 0).build()).is_ok());
}

#[test]
fn absurd_counts() {
    check(
        &Bytes::preamble(3, u64::MAX, 0).build(),
        limit("tensor count", u64::MAX, limits::MAX_TENSORS),
    );
    check(
        &Bytes::preamble(3, 0, 1 << 40).build(),
        limit("metadata key/value count", 1 << 40, limits::MAX_KV),
    );
    // At the caps, capacity is reserved only for what the bytes can hold.
    let at_caps = Bytes::preamble(3, limits::MAX_TENSORS, limits::MAX_KV).build();
    // needed: the first key's length plus the least every other pair and
    // every tensor info can take.
    let needed = 32 + 13 * (limits::MAX_KV - 1) + 24 * limits::MAX_TENSORS;
    check(&at_caps, GgufError::Truncated { needed });
}

#[test]
fn absurd_string_lengths() {
    check(
        &one_kv(Bytes::new().u64(u64::MAX)),
        limit("metadata key", u64::MAX, limits::MAX_KEY_LEN),
    );
    check(
        &one_kv(Bytes::new().str("k").u32(STRING).u64(u64::MAX)),
        limit("string length", u64::MAX, limits::MAX_STRING_LEN),
    );
    // Within the cap but past the buffer: truncated, asking for all of it.
    let bytes = one_kv(Bytes::new().str("k").u32(STRING).u64(1 << 20).raw(b"abc"));
    let pos = 24 + 9 + 4 + 8;
    check(
        &bytes,
        GgufError::Truncated {
            needed: pos + (1 << 20),
        },
    );
}

#[test]
fn absurd_array_lengths() {
    check(
        &one_kv(Bytes::new().str("k").u32(ARRAY).u32(U32).u64(1 << 60)),
        limit("array length", 1 << 60, limits::MAX_ARRAY_LEN),
    );
    // 2^26 u32s claimed, 4 bytes present: no 256 MiB allocation, just a bound.
    let bytes = one_kv(
        Bytes::new()
            .str("k")
            .u32(ARRAY)
            .u32(U32)
            .u64(1 << 26)
            .u32(7),
    );
    let pos = 24 + 9 + 4 + 4 + 8;
    check(
        &bytes,
        GgufError::Truncated {
            needed: pos + (4 << 26),
        },
    );
    // 2^26 u64s would end past the 512 MiB header cap: a limit, not a fetch.
    let bytes = one_kv(Bytes::new().str("k").u32(ARRAY).u32(U64).u64(1 << 26));
    check(
        &bytes,
        limit("header size", pos + (8 << 26), limits::MAX_HEADER_BYTES),
    );
    // 2^26 strings claimed: each needs at least its 8-byte length.
    let bytes = one_kv(Bytes::new().str("k").u32(ARRAY).u32(STRING).u64(1 << 26));
    check(
        &bytes,
        limit("header size", pos + (8 << 26), limits::MAX_HEADER_BYTES),
    );
    let bytes = one_kv(Bytes::new().str("k").u32(ARRAY).u32(STRING).u64(1000));
    check(&bytes, GgufError::Truncated { needed: pos + 8000 });
    // A string inside an array with an absurd length.
    let bytes = one_kv(
        Bytes::new()
            .str("k")
            .u32(ARRAY)
            .u32(STRING)
            .u64(1)
            .u64(u64::MAX),
    );
    check(
        &bytes,
        limit("string length", u64::MAX, limits::MAX_STRING_LEN),
    );
}

#[test]
fn nesting_depth_is_capped() {
    let mut rest = Bytes::new().str("k").u32(ARRAY);
    for _ in 0..limits::MAX_ARRAY_DEPTH {
        rest = rest.u32(ARRAY).u64(1);
    }
    let bytes = one_kv(rest.u32(U32).u64(0));
    check(
        &bytes,
        limit(
            "array nesting depth",
            u64::from(limits::MAX_ARRAY_DEPTH) + 1,
            u64::from(limits::MAX_ARRAY_DEPTH),
        ),
    );
    // One level less parses.
    let mut rest = Bytes::new().str("k").u32(ARRAY);
    for _ in 1..limits::MAX_ARRAY_DEPTH {
        rest = rest.u32(ARRAY).u64(1);
    }
    assert!(parse(&one_kv(rest.u32(U32).u64(0))).is_ok());
}

#[test]
fn unknown_types() {
    check(
        &one_kv(Bytes::new().str("k").u32(13)),
        GgufError::UnknownValueType(13),
    );
    check(
        &one_kv(Bytes::new().str("k").u32(ARRAY).u32(99).u64(0)),
        GgufError::UnknownValueType(99),
    );
    for bad in [4u32, 5, 42, u32::MAX] {
        let bytes = tensor_bytes("t", &[32], bad, 0);
        check(&bytes, GgufError::UnknownTensorType(bad));
    }
}

/// One tensor info and no metadata.
fn tensor_bytes(name: &str, dims: &[u64], type_id: u32, offset: u64) -> Vec<u8> {
    let mut b = Bytes::preamble(3, 1, 0).str(name).u32(dims.len() as u32);
    for &d in dims {
        b = b.u64(d);
    }
    b.u32(type_id).u64(offset).build()
}

#[test]
fn tensor_infos() {
    const F32: u32 = 0;
    const Q8_0: u32 = 8;
    check(
        &Bytes::preamble(3, 1, 0).str("t").u32(100).build(),
        limit("tensor dimension count", 100, u64::from(limits::MAX_DIMS)),
    );
    check(
        &Bytes::preamble(3, 1, 0).u64(u64::MAX).build(),
        limit("tensor name", u64::MAX, limits::MAX_KEY_LEN),
    );
    // Eight dims are allowed.
    assert!(parse(&tensor_bytes("t", &[1; 8], F32, 0)).is_ok());
    // Element count overflow.
    check(
        &tensor_bytes("t", &[1 << 32, 1 << 32, 1 << 32], F32, 0),
        GgufError::Overflow,
    );
    // Offset + size overflow (the offset is aligned to 32).
    check(
        &tensor_bytes("t", &[64], F32, u64::MAX - 31),
        GgufError::Overflow,
    );
    // A dim beyond ggml's int64.
    assert!(matches!(
        parse(&tensor_bytes("t", &[u64::MAX], F32, 0)),
        Err(GgufError::InvalidTensor { .. })
    ));
    // A misaligned offset.
    assert!(matches!(
        parse(&tensor_bytes("t", &[32], F32, 7)),
        Err(GgufError::InvalidTensor { reason, .. }) if reason.contains("alignment")
    ));
    // A row that is not a whole number of Q8_0 blocks.
    assert!(matches!(
        parse(&tensor_bytes("t", &[33, 2], Q8_0, 0)),
        Err(GgufError::InvalidTensor { reason, .. }) if reason.contains("block size")
    ));
    // Duplicate names.
    let mut b = Bytes::preamble(3, 2, 0);
    for _ in 0..2 {
        b = b.str("same").u32(1).u64(32).u32(F32).u64(0);
    }
    check(&b.build(), GgufError::DuplicateTensor("same".into()));
}

#[test]
fn alignment_values() {
    let with_alignment = |ty: u32, value: Bytes| {
        Bytes::preamble(3, 0, 1)
            .str("general.alignment")
            .u32(ty)
            .raw(&value.build())
            .build()
    };
    check(
        &with_alignment(U32, Bytes::new().u32(0)),
        GgufError::BadAlignment(0),
    );
    check(
        &with_alignment(U32, Bytes::new().u32(48)),
        GgufError::BadAlignment(48),
    );
    check(
        &with_alignment(U64, Bytes::new().u64(1 << 40)),
        GgufError::BadAlignment(1 << 40),
    );
    check(
        &with_alignment(STRING, Bytes::new().str("32")),
        GgufError::AlignmentNotInteger(ValueType::String),
    );
    for ok in [1u32, 8, 64, 1 << 20] {
        let h = parse(&with_alignment(U32, Bytes::new().u32(ok))).expect("valid alignment");
        assert_eq!(h.alignment, u64::from(ok));
        assert_eq!(h.data_offset % u64::from(ok), 0);
    }
}

#[test]
fn invalid_utf8_and_duplicates() {
    let bad_key = one_kv(Bytes::new().u64(2).raw(&[0xff, 0xfe]).u32(U32).u32(1));
    assert!(matches!(
        parse(&bad_key),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    let bad_value = one_kv(Bytes::new().str("k").u32(STRING).u64(1).raw(&[0xc3]));
    assert!(matches!(
        parse(&bad_value),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    // "é" split across two elements: the arena is valid UTF-8, the elements are not.
    let split = one_kv(
        Bytes::new()
            .str("k")
            .u32(ARRAY)
            .u32(STRING)
            .u64(2)
            .u64(1)
            .raw(&[0xc3])
            .u64(1)
            .raw(&[0xa9]),
    );
    assert!(matches!(parse(&split), Err(GgufError::InvalidUtf8 { .. })));
    let bad_name = Bytes::preamble(3, 1, 0)
        .u64(1)
        .raw(&[0x80])
        .u32(1)
        .u64(32)
        .u32(0)
        .u64(0)
        .build();
    assert!(matches!(
        parse(&bad_name),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    let dup = Bytes::preamble(3, 0, 2)
        .str("k")
        .u32(U32)
        .u32(1)
        .str("k")
        .u32(U32)
        .u32(2)
        .build();
    check(&dup, GgufError::DuplicateKey("k".into()));
}

#[test]
fn flipping_any_byte_of_a_real_header_never_panics() {
    let bytes = crate::fixture_bytes("tiny_llama.gguf");
    let len = header_len(&bytes).expect("scans") as usize;
    let mut copy = bytes[..len].to_vec();
    // Every byte of the structure before the vocabulary and of the tensor
    // infos at the end; every 13th byte of the string data in between
    // (which mostly gives InvalidUtf8), to keep the debug-build run short.
    let interesting = |i: usize| i < 1200 || i + 400 > len || i.is_multiple_of(13);
    for i in (0..len).filter(|&i| interesting(i)) {
        for flip in [0x01u8, 0x80, 0xff] {
            copy[i] ^= flip;
            let _ = parse(&copy);
            let _ = header_len(&copy);
            copy[i] ^= flip;
        }
    }
}
