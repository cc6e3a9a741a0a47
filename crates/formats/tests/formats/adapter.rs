//! LoRA adapters: adapter_config.json, PEFT safetensors, llama.cpp GGUF.

use modelplane_formats::adapter::{from_json, read_adapter, AdapterError};

use crate::{fixture, fixture_bytes};

#[test]
fn adapter_config_json() {
    let c = from_json(&fixture_bytes("adapter_config.json")).expect("parses");
    assert_eq!(c.rank, Some(8));
    assert_eq!(c.alpha, Some(16.0));
    assert_eq!(c.base_model.as_deref(), Some("meta-llama/Llama-3.2-1B"));
    assert_eq!(c.peft_type.as_deref(), Some("LORA"));
    assert_eq!(c.target_modules, vec!["v_proj", "q_proj"]);
    let regex = from_json(br#"{"r": 4, "target_modules": ".*proj"}"#).expect("parses");
    assert_eq!(regex.target_modules, vec![".*proj"]);
    assert_eq!(regex.alpha, None);
    assert!(from_json(b"[]").is_err());
}

#[test]
fn peft_safetensors_alone() {
    // Copied without its config: rank from lora_A's [8, 64] shape.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("adapter_model.safetensors");
    std::fs::copy(fixture("adapter_model.safetensors"), &path).expect("copy");
    let facts = read_adapter(&path).expect("reads");
    assert_eq!(facts.rank, Some(8));
    assert_eq!(facts.alpha, None);
    assert_eq!(facts.format, "safetensors");
    assert!(!facts.has_config);
    // The directory form finds adapter_model.safetensors.
    assert_eq!(read_adapter(dir.path()).expect("reads dir"), facts);
}

#[test]
fn peft_safetensors_with_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture("adapter_model.safetensors"),
        dir.path().join("adapter_model.safetensors"),
    )
    .expect("copy");
    std::fs::copy(
        fixture("adapter_config.json"),
        dir.path().join("adapter_config.json"),
    )
    .expect("copy");
    let facts = read_adapter(&dir.path().join("adapter_model.safetensors")).expect("reads");
    assert_eq!(facts.rank, Some(8));
    assert_eq!(facts.alpha, Some(16.0));
    assert_eq!(facts.base_model.as_deref(), Some("meta-llama/Llama-3.2-1B"));
    assert_eq!(facts.target_modules, vec!["v_proj", "q_proj"]);
    assert!(facts.has_config);
}

#[test]
fn gguf_lora() {
    let facts = read_adapter(&fixture("tiny_lora.gguf")).expect("reads");
    // lora_a numpy [8, 64] is GGUF dims [64, 8]: rank 8.
    assert_eq!(facts.rank, Some(8));
    assert_eq!(facts.alpha, Some(16.0));
    assert_eq!(facts.base_model.as_deref(), Some("Tiny Llama"));
    assert_eq!(facts.format, "gguf");
}

#[test]
fn not_adapters() {
    assert!(matches!(
        read_adapter(&fixture("tiny_llama.gguf")),
        Err(AdapterError::NotAnAdapter(..))
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model.safetensors");
    std::fs::copy(fixture("tiny.safetensors"), &model).expect("copy");
    assert!(matches!(
        read_adapter(&model),
        Err(AdapterError::NotAnAdapter(..))
    ));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"ab").expect("write");
    assert!(matches!(
        read_adapter(&junk),
        Err(AdapterError::Safetensors(_))
    ));
    assert!(matches!(
        read_adapter(&dir.path().join("missing.safetensors")),
        Err(AdapterError::Io(_))
    ));
    let bad_config = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture("adapter_model.safetensors"),
        bad_config.path().join("a.safetensors"),
    )
    .expect("copy");
    std::fs::write(bad_config.path().join("adapter_config.json"), b"{oops").expect("write");
    assert!(matches!(
        read_adapter(&bad_config.path().join("a.safetensors")),
        Err(AdapterError::Config(_))
    ));
}
