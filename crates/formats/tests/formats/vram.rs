//! VRAM estimates with hand-computed numbers.

use modelplane_formats::gguf::read_path;
use modelplane_formats::vram::{
    estimate, shape_from_folder, shape_from_gguf, shape_from_gguf_path, KvCacheType, ModelShape,
    VramError, VramParams,
};

use crate::fixture;

const GIB: u64 = 1 << 30;

fn shape(
    layers: u64,
    kv_heads: u64,
    head_dim: u64,
    weights: u64,
    max_context: Option<u64>,
) -> ModelShape {
    ModelShape {
        layers,
        kv_heads,
        head_dim,
        weights_bytes: weights,
        max_context,
        source: "safetensors".to_owned(),
    }
}

/// Llama-3-8B: 32 layers, 8 KV heads of 128, 8192 context, 16,060,522,496 bytes of BF16 weights.
fn llama3_8b() -> ModelShape {
    shape(32, 8, 128, 16_060_522_496, Some(8192))
}

#[test]
fn llama3_8b_f16() {
    let params = VramParams {
        context_length: Some(8192),
        gpu_vram_bytes: Some(24 * GIB),
        ..VramParams::default()
    };
    let e = estimate(&llama3_8b(), &params).expect("estimates");
    // 2 × 32 × 8192 × 1 × 8 × 128 × 2 = 1,073,741,824 (1 GiB).
    assert_eq!(e.kv_cache_bytes, 1_073_741_824);
    // max(512 MiB, ceil(16,060,522,496 / 20)) = 803,026,125.
    assert_eq!(e.overhead_bytes, 803_026_125);
    // 16,060,522,496 + 1,073,741,824 + 803,026,125.
    assert_eq!(e.total_bytes, 17_937_290_445);
    assert_eq!(e.per_gpu_bytes, 17_937_290_445);
    // floor(25,769,803,776 × 0.9) = 23,192,823,398.
    assert_eq!(e.usable_vram_bytes, Some(23_192_823_398));
    assert_eq!(e.fits, Some(true));
    assert_eq!(e.kv_cache_type, "f16");
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert!(e.formula.contains("2 × 32 layers × 8192 context × 1 parallel × 8 kv_heads × 128 head_dim × 2 B (f16) = 1073741824 B"), "{}", e.formula);
}

#[test]
fn llama3_8b_q8_0_cache() {
    let params = VramParams {
        context_length: Some(8192),
        kv_cache_type: KvCacheType::Q8_0,
        ..VramParams::default()
    };
    let e = estimate(&llama3_8b(), &params).expect("estimates");
    // 536,870,912 elements × 34/32 bytes = 570,425,344.
    assert_eq!(e.kv_cache_bytes, 570_425_344);
    assert_eq!(e.fits, None);
    assert_eq!(e.usable_vram_bytes, None);
    assert!(e.formula.contains("34/32 B (q8_0)"));
}

#[test]
fn q4_k_m_weights_on_two_small_gpus() {
    // Llama-3-8B Q4_K_M: 4,920,734,720 bytes; 5% is below 512 MiB.
    let model = shape(32, 8, 128, 4_920_734_720, Some(8192));
    let params = VramParams {
        tensor_parallel_size: 2,
        gpu_vram_bytes: Some(4 * GIB),
        ..VramParams::default()
    };
    let e = estimate(&model, &params).expect("estimates");
    assert_eq!(e.context_length, 8192, "defaults to the model's max");
    assert_eq!(e.overhead_bytes, 536_870_912);
    // 4,920,734,720 + 1,073,741,824 + 536,870,912 = 6,531,347,456; / 2.
    assert_eq!(e.total_bytes, 6_531_347_456);
    assert_eq!(e.per_gpu_bytes, 3_265_673_728);
    // floor(4,294,967,296 × 0.9) = 3,865,470,566.
    assert_eq!(e.fits, Some(true));
}

#[test]
fn seventy_b_does_not_fit_and_says_by_how_much() {
    // 80 layers, 8 KV heads of 128, 8192 context, 4 parallel, f16:
    // 2 × 80 × 8192 × 4 × 8 × 128 × 2 = 10,737,418,240 (10 GiB).
    let model = shape(80, 8, 128, 141_107_412_992, Some(8192));
    let params = VramParams {
        parallel: 4,
        tensor_parallel_size: 2,
        gpu_vram_bytes: Some(80 * GIB),
        ..VramParams::default()
    };
    let e = estimate(&model, &params).expect("estimates");
    assert_eq!(e.kv_cache_bytes, 10_737_418_240);
    // ceil(141,107,412,992 / 20) = 7,055,370,650.
    assert_eq!(e.overhead_bytes, 7_055_370_650);
    assert_eq!(e.total_bytes, 158_900_201_882);
    assert_eq!(e.per_gpu_bytes, 79_450_100_941);
    // floor(85,899,345,920 × 0.9) = 77,309,411,328: 2,140,689,613 short.
    assert_eq!(e.usable_vram_bytes, Some(77_309_411_328));
    assert_eq!(e.fits, Some(false));
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(
        e.warnings[0].starts_with(
            "does not fit: needs 73.99 GiB per GPU but 72.00 GiB is usable (1.99 GiB short)"
        ),
        "{}",
        e.warnings[0]
    );
}

#[test]
fn warnings() {
    let params = VramParams {
        context_length: Some(32768),
        parallel: 128,
        tensor_parallel_size: 3,
        ..VramParams::default()
    };
    let e = estimate(&llama3_8b(), &params).expect("estimates");
    assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
    assert!(e.warnings[0].contains("exceeds the model's trained maximum of 8192"));
    assert!(e.warnings[1].contains("does not divide the model's 8 KV heads"));
    assert!(e.warnings[2].contains("parallel 128 is large"));
    let unknown_weights =
        estimate(&shape(32, 8, 128, 0, None), &VramParams::default()).expect("estimates");
    assert_eq!(unknown_weights.context_length, 4096, "the default context");
    assert!(unknown_weights.warnings[0].contains("weights size is unknown"));
}

#[test]
fn invalid_params() {
    let bad = |params: VramParams, name: &str| match estimate(&llama3_8b(), &params) {
        Err(VramError::InvalidParam { name: got, .. }) => assert_eq!(got, name),
        other => panic!("{name}: {other:?}"),
    };
    let base = VramParams::default;
    bad(
        VramParams {
            context_length: Some(0),
            ..base()
        },
        "context_length",
    );
    bad(
        VramParams {
            parallel: 0,
            ..base()
        },
        "parallel",
    );
    bad(
        VramParams {
            tensor_parallel_size: 0,
            ..base()
        },
        "tensor_parallel_size",
    );
    for utilization in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
        bad(
            VramParams {
                gpu_memory_utilization: utilization,
                ..base()
            },
            "gpu_memory_utilization",
        );
    }
    bad(
        VramParams {
            gpu_vram_bytes: Some(0),
            ..base()
        },
        "gpu_vram_bytes",
    );
    assert!(matches!(
        estimate(&shape(0, 8, 128, 1, None), &base()),
        Err(VramError::InvalidParam { name: "layers", .. })
    ));
    assert!(estimate(
        &llama3_8b(),
        &VramParams {
            gpu_memory_utilization: 1.0,
            ..base()
        }
    )
    .is_ok());
    assert_eq!(
        estimate(&shape(u64::MAX, u64::MAX, u64::MAX, 1, None), &base()),
        Err(VramError::Overflow)
    );
    assert_eq!(
        estimate(&shape(1, 1, 1, u64::MAX, None), &base()),
        Err(VramError::Overflow)
    );
}

#[test]
fn kv_cache_type_names() {
    let cases: &[(&str, KvCacheType, f64)] = &[
        ("f32", KvCacheType::F32, 4.0),
        ("f16", KvCacheType::F16, 2.0),
        ("FP16", KvCacheType::F16, 2.0),
        ("auto", KvCacheType::F16, 2.0),
        ("bf16", KvCacheType::BF16, 2.0),
        ("q8_0", KvCacheType::Q8_0, 34.0 / 32.0),
        ("q4_0", KvCacheType::Q4_0, 18.0 / 32.0),
        ("q4_1", KvCacheType::Q4_1, 20.0 / 32.0),
        ("q5_0", KvCacheType::Q5_0, 22.0 / 32.0),
        ("q5_1", KvCacheType::Q5_1, 24.0 / 32.0),
        ("iq4_nl", KvCacheType::Iq4Nl, 18.0 / 32.0),
        ("fp8", KvCacheType::Fp8, 1.0),
        ("fp8_e5m2", KvCacheType::Fp8E5M2, 1.0),
        ("fp8_e4m3", KvCacheType::Fp8E4M3, 1.0),
    ];
    for &(name, kind, bytes) in cases {
        let parsed: KvCacheType = name.parse().expect("known");
        assert_eq!(parsed, kind, "{name}");
        assert_eq!(parsed.bytes_per_element(), bytes, "{name}");
        assert_eq!(
            parsed.as_str().parse::<KvCacheType>(),
            Ok(kind),
            "round trip {name}"
        );
    }
    assert!("q3_k".parse::<KvCacheType>().is_err());
    assert!("".parse::<KvCacheType>().is_err());
}

#[test]
fn shape_of_the_tiny_gguf() {
    let h = read_path(&fixture("tiny_llama.gguf")).expect("parses");
    let s = shape_from_gguf(&h).expect("shape");
    // head_dim = embedding 64 / 4 heads.
    assert_eq!(
        s,
        ModelShape {
            layers: 1,
            kv_heads: 2,
            head_dim: 16,
            weights_bytes: 8704,
            max_context: Some(2048),
            source: "gguf".to_owned(),
        }
    );
    let second = read_path(&fixture("tiny-split-Q8_0-00002-of-00002.gguf")).expect("parses");
    assert!(matches!(
        shape_from_gguf(&second),
        Err(VramError::MissingField(_))
    ));
}

fn copy_into(dir: &std::path::Path, names: &[&str]) {
    for name in names {
        std::fs::copy(fixture(name), dir.join(name)).expect("copy fixture");
    }
}

#[test]
fn shape_of_folders() {
    let st = tempfile::tempdir().expect("tempdir");
    copy_into(st.path(), &["tiny.safetensors"]);
    std::fs::copy(
        fixture("config_llama3_8b.json"),
        st.path().join("config.json"),
    )
    .expect("copy");
    let s = shape_from_folder(st.path()).expect("shape");
    assert_eq!(
        (s.layers, s.kv_heads, s.head_dim, s.weights_bytes),
        (32, 8, 128, 8512)
    );
    assert_eq!(
        (s.max_context, s.source.as_str()),
        (Some(8192), "safetensors")
    );

    let split = tempfile::tempdir().expect("tempdir");
    copy_into(
        split.path(),
        &[
            "tiny-split-Q8_0-00001-of-00002.gguf",
            "tiny-split-Q8_0-00002-of-00002.gguf",
        ],
    );
    let s = shape_from_folder(split.path()).expect("shape");
    // Four Q8_0 [64, 8] tensors over both shards: 4 × 2 × 34 × 8.
    assert_eq!(
        (s.layers, s.kv_heads, s.head_dim, s.weights_bytes),
        (2, 4, 16, 2176)
    );
    assert_eq!(s.max_context, Some(4096));

    // The biggest group wins: the single tiny_llama.gguf over the split pair.
    copy_into(split.path(), &["tiny_llama.gguf"]);
    let s = shape_from_folder(split.path()).expect("shape");
    assert_eq!(s.weights_bytes, 8704);

    let empty = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        shape_from_folder(empty.path()),
        Err(VramError::NoModelFiles(_))
    ));
}

#[test]
fn one_part_of_a_split_gguf_counts_every_part_present() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = "tiny-split-Q8_0-00001-of-00002.gguf";
    let second = "tiny-split-Q8_0-00002-of-00002.gguf";
    copy_into(dir.path(), &[first]);
    // Alone: its own tensors, and one part missing.
    let (alone, missing) =
        shape_from_gguf_path(&dir.path().join(first), dir.path()).expect("shape");
    assert_eq!(missing, 1);
    assert!(alone.weights_bytes < 2176, "{}", alone.weights_bytes);

    copy_into(dir.path(), &[second]);
    // From either part: the numbers of the first, the weights of both
    // (four Q8_0 [64, 8] tensors: 4 × 2 × 34 × 8), nothing missing.
    for part in [first, second] {
        let (s, missing) = shape_from_gguf_path(&dir.path().join(part), dir.path()).expect(part);
        assert_eq!(
            (s.layers, s.kv_heads, s.head_dim, s.weights_bytes, missing),
            (2, 4, 16, 2176, 0),
            "{part}"
        );
    }

    // A file that is not split is its own model.
    copy_into(dir.path(), &["tiny_llama.gguf"]);
    let (single, missing) =
        shape_from_gguf_path(&dir.path().join("tiny_llama.gguf"), dir.path()).expect("shape");
    assert_eq!((single.weights_bytes, missing), (8704, 0));
}
