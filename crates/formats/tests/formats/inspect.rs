//! Folder inspection, engine choice and local folder listing.

use std::path::Path;

use modelplane_formats::inspect::{
    engine_recommendation, inspect_folder, inspect_folder_within, list_model_folders,
};
use serde_json::json;

use crate::fixture;

fn copy_into(dir: &Path, names: &[&str]) {
    for name in names {
        std::fs::copy(fixture(name), dir.join(name)).expect("copy fixture");
    }
}

#[test]
fn engine_recommendation_table() {
    // (has_gguf, has_multipart_gguf, has_safetensors) → (engine, format, has_gguf out)
    let table = [
        ((false, false, false), ("none", "none", false)),
        ((true, false, false), ("llamacpp", "gguf", true)),
        ((true, true, false), ("llamacpp", "gguf", true)),
        ((false, true, false), ("llamacpp", "gguf", true)),
        ((false, false, true), ("vllm", "safetensors", false)),
        ((true, false, true), ("vllm", "safetensors", true)),
        ((true, true, true), ("vllm", "safetensors", true)),
        ((false, true, true), ("vllm", "safetensors", true)),
    ];
    for ((gguf, multipart, safetensors), (engine, format, has_gguf)) in table {
        let r = engine_recommendation(gguf, multipart, safetensors);
        let input = (gguf, multipart, safetensors);
        assert_eq!(r.recommended_engine, engine, "{input:?}");
        assert_eq!(r.recommended_format, format, "{input:?}");
        assert_eq!(
            (r.has_gguf, r.has_multipart_gguf, r.has_safetensors),
            (has_gguf, multipart, safetensors),
            "{input:?}"
        );
        assert!(!r.reason.is_empty());
    }
    assert_eq!(
        engine_recommendation(false, false, true).reason,
        "SafeTensors available - vLLM recommended for best performance"
    );
    assert!(engine_recommendation(true, true, false)
        .reason
        .contains("split"));
}

#[test]
fn mixed_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_into(
        dir.path(),
        &[
            "tiny_llama.gguf",
            "tiny-split-Q8_0-00001-of-00002.gguf",
            "tiny-split-Q8_0-00002-of-00002.gguf",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    std::fs::copy(
        fixture("config_qwen2_7b.json"),
        dir.path().join("config.json"),
    )
    .expect("copy");
    std::fs::write(dir.path().join("README.md"), b"# model").expect("write");
    // A broken GGUF and a half-downloaded one.
    std::fs::write(dir.path().join("broken-Q4_K_M.gguf"), b"not a gguf at all").expect("write");
    let full = std::fs::read(fixture("tiny_llama.gguf")).expect("read");
    std::fs::write(
        dir.path().join("partial-F16.gguf"),
        &full[..full.len() - 100],
    )
    .expect("write");

    let r = inspect_folder(dir.path()).expect("inspects");
    assert!(r.has_gguf && r.has_safetensors);
    assert_eq!(r.engine_recommendation.recommended_engine, "vllm");
    assert!(r.engine_recommendation.has_multipart_gguf);

    assert_eq!(
        (
            r.gguf_validation.total_files,
            r.gguf_validation.valid_files,
            r.gguf_validation.invalid_files
        ),
        (5, 3, 2)
    );
    let errors: Vec<_> = r
        .gguf_validation
        .errors
        .iter()
        .map(|e| e.file.as_str())
        .collect();
    assert_eq!(errors, ["broken-Q4_K_M.gguf", "partial-F16.gguf"]);
    assert!(r.gguf_validation.errors[0]
        .error
        .contains("not a GGUF file"));
    assert!(r.gguf_validation.errors[1].error.contains("incomplete"));

    let groups: Vec<_> = r
        .gguf_groups
        .iter()
        .map(|g| {
            (
                g.quant_type.as_str(),
                g.files.len(),
                g.is_multipart,
                g.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("Q4_K_M", 1, false, "invalid"),
            // The partial file's header parses (file_type 7, not the name's
            // F16), its data is short.
            ("Q8_0", 1, false, "invalid"),
            ("Q8_0", 2, true, "ready"),
            ("Q8_0", 1, false, "ready"),
        ]
    );
    let single = &r.gguf_groups[3];
    assert_eq!(single.files, ["tiny_llama.gguf"]);
    assert_eq!(single.total_size_bytes, 23072);
    assert_eq!(single.total_size_mb, 0);
    assert_eq!(
        single.metadata.as_ref().and_then(|m| m.context_length),
        Some(2048)
    );
    let split = &r.gguf_groups[2];
    assert_eq!(
        split.files,
        [
            "tiny-split-Q8_0-00001-of-00002.gguf",
            "tiny-split-Q8_0-00002-of-00002.gguf"
        ]
    );
    assert_eq!(
        (split.shard_count, split.missing_shards.len()),
        (Some(2), 0)
    );
    assert_eq!(split.metadata.as_ref().and_then(|m| m.block_count), Some(2));
    assert!(r.gguf_groups[0].metadata.is_none());
    assert_eq!(
        r.gguf_groups[1]
            .metadata
            .as_ref()
            .and_then(|m| m.block_count),
        Some(1)
    );

    let st = r.safetensor_info.as_ref().expect("safetensors info");
    assert_eq!(
        serde_json::to_value(st).expect("serializes"),
        json!({
            "architecture": "Qwen2ForCausalLM",
            "model_type": "qwen2",
            "total_size_mb": 0,
            "total_size_bytes": 1264,
            "file_count": 2,
            "context_length": 32768,
            "num_layers": 28,
            "hidden_size": 3584,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "parameter_count": 512,
            "torch_dtype": "bfloat16",
            "has_config": true,
            "missing_shards": [],
            "errors": [],
        })
    );
    // The top-level keys are the seed's.
    let body = serde_json::to_value(&r).expect("serializes");
    let keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "engine_recommendation",
            "gguf_groups",
            "gguf_validation",
            "has_gguf",
            "has_safetensors",
            "safetensor_info"
        ]
    );
}

#[test]
fn missing_shards_make_a_group_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_into(
        dir.path(),
        &[
            "tiny-split-Q8_0-00002-of-00002.gguf",
            "model-00002-of-00002.safetensors",
        ],
    );
    let r = inspect_folder(dir.path()).expect("inspects");
    let group = &r.gguf_groups[0];
    assert_eq!(
        (group.status.as_str(), group.missing_shards.as_slice()),
        ("incomplete", &[1][..])
    );
    // The name gives the quant when the shard with metadata is missing.
    assert_eq!(group.quant_type, "Q8_0");
    assert!(group.metadata.is_none());
    let st = r.safetensor_info.as_ref().expect("info");
    assert_eq!(st.missing_shards, [1]);
    assert!(!st.has_config);
    assert_eq!(r.engine_recommendation.recommended_engine, "vllm");
}

#[test]
fn gguf_only_and_empty_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_into(
        dir.path(),
        &[
            "tiny-split-Q8_0-00001-of-00002.gguf",
            "tiny-split-Q8_0-00002-of-00002.gguf",
        ],
    );
    let r = inspect_folder(dir.path()).expect("inspects");
    assert_eq!(r.engine_recommendation.recommended_engine, "llamacpp");
    assert!(r.safetensor_info.is_none());
    let empty = tempfile::tempdir().expect("tempdir");
    let r = inspect_folder(empty.path()).expect("inspects");
    assert_eq!(r.engine_recommendation.recommended_engine, "none");
    assert!(r.gguf_groups.is_empty());
    assert!(inspect_folder(&empty.path().join("absent")).is_err());
}

#[cfg(unix)]
#[test]
fn symlinks_outside_the_folder_are_not_followed() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().expect("tempdir");
    let outside = root.path().join("blobs");
    let model = root.path().join("snapshot");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::create_dir_all(&model).expect("mkdir");
    copy_into(&outside, &["tiny_llama.gguf"]);
    copy_into(&model, &["tiny_lora.gguf"]);
    symlink(outside.join("tiny_llama.gguf"), model.join("linked.gguf")).expect("symlink");
    symlink(model.join("tiny_lora.gguf"), model.join("inside-link.gguf")).expect("symlink");
    symlink(model.join("nowhere.gguf"), model.join("dangling.gguf")).expect("symlink");

    let r = inspect_folder(&model).expect("inspects");
    let files: Vec<_> = r.gguf_groups.iter().flat_map(|g| g.files.clone()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"inside-link.gguf".to_owned()));
    assert!(!files.contains(&"linked.gguf".to_owned()));
    // Within a wider root (a Hugging Face cache), the link is followed.
    let r = inspect_folder_within(&model, root.path()).expect("inspects");
    assert_eq!(r.gguf_validation.total_files, 3);
}

#[test]
fn local_folders_one_and_two_levels() {
    let base = tempfile::tempdir().expect("tempdir");
    let b = base.path();
    for dir in [
        "plain-gguf",
        "meta-llama/Llama-3-8B",
        "meta-llama/empty",
        "docs",
        "Qwen/Qwen2.5/deeper",
    ] {
        std::fs::create_dir_all(b.join(dir)).expect("mkdir");
    }
    copy_into(&b.join("plain-gguf"), &["tiny_llama.gguf"]);
    copy_into(&b.join("meta-llama/Llama-3-8B"), &["tiny.safetensors"]);
    std::fs::write(b.join("meta-llama/Llama-3-8B/config.json"), b"{}").expect("write");
    std::fs::write(b.join("docs/readme.md"), b"hi").expect("write");
    // Three levels deep is not looked at.
    copy_into(&b.join("Qwen/Qwen2.5/deeper"), &["tiny_lora.gguf"]);

    let folders = list_model_folders(b).expect("lists");
    let summary: Vec<_> = folders
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                f.name.as_str(),
                f.has_gguf,
                f.has_safetensors,
                f.file_count,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("meta-llama/Llama-3-8B", "Llama-3-8B", false, true, 2),
            ("plain-gguf", "plain-gguf", true, false, 1),
        ]
    );
    assert_eq!(folders[0].total_size_bytes, 8896 + 2);
    let modified = folders[1].modified.as_deref().expect("has a time");
    assert!(
        modified.ends_with('Z') && modified.len() == 20,
        "{modified}"
    );
    assert!(list_model_folders(&b.join("absent")).is_err());
}
