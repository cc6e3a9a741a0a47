//! config.json samples: llama, qwen2 with GQA, a multimodal with text_config, gpt2.

use modelplane_formats::hfconfig::{ConfigError, ModelConfig};

use crate::fixture_bytes;

fn config(name: &str) -> ModelConfig {
    ModelConfig::from_json(&fixture_bytes(name)).expect("config parses")
}

/// (layers, heads, kv_heads, hidden, head_dim, intermediate, max_pos, vocab, dtype)
type Numbers = (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<&'static str>,
);

fn numbers(c: &ModelConfig) -> Numbers {
    (
        c.num_hidden_layers,
        c.num_attention_heads,
        c.kv_heads(),
        c.hidden_size,
        c.head_dimension(),
        c.intermediate_size,
        c.max_position_embeddings,
        c.vocab_size,
        c.torch_dtype.as_deref().map(|d| match d {
            "bfloat16" => "bfloat16",
            _ => "other",
        }),
    )
}

#[test]
fn samples() {
    let cases: &[(&str, &str, &str, Numbers)] = &[
        (
            "config_llama3_8b.json",
            "LlamaForCausalLM",
            "llama",
            (
                Some(32),
                Some(32),
                Some(8),
                Some(4096),
                Some(128),
                Some(14336),
                Some(8192),
                Some(128256),
                Some("bfloat16"),
            ),
        ),
        (
            "config_qwen2_7b.json",
            "Qwen2ForCausalLM",
            "qwen2",
            // 3584 / 28 = 128 per head; 4 KV heads.
            (
                Some(28),
                Some(28),
                Some(4),
                Some(3584),
                Some(128),
                Some(18944),
                Some(32768),
                Some(152064),
                Some("bfloat16"),
            ),
        ),
        (
            "config_gemma3_multimodal.json",
            "Gemma3ForConditionalGeneration",
            "gemma3",
            // From text_config; head_dim 256 is given, not 2560 / 8.
            (
                Some(34),
                Some(8),
                Some(4),
                Some(2560),
                Some(256),
                Some(10240),
                Some(131072),
                Some(262208),
                Some("bfloat16"),
            ),
        ),
        (
            "config_gpt2.json",
            "GPT2LMHeadModel",
            "gpt2",
            // n_layer, n_head, n_embd, n_positions; no GQA: kv = heads.
            (
                Some(12),
                Some(12),
                Some(12),
                Some(768),
                Some(64),
                None,
                Some(1024),
                Some(50257),
                None,
            ),
        ),
    ];
    for (file, arch, model_type, expected) in cases {
        let c = config(file);
        assert_eq!(c.architecture(), Some(*arch), "{file}");
        assert_eq!(c.model_type.as_deref(), Some(*model_type), "{file}");
        assert_eq!(numbers(&c), *expected, "{file}");
        assert!(c.raw.is_object());
    }
}

#[test]
fn llm_config_nesting_and_dtype_alias() {
    let c = ModelConfig::from_json(
        br#"{"architectures": ["InternVLChatModel"], "llm_config": {"num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "hidden_size": 5120, "dtype": "float16"}}"#,
    )
    .expect("parses");
    assert_eq!(c.num_hidden_layers, Some(48));
    assert_eq!(c.head_dimension(), Some(128));
    assert_eq!(c.kv_heads(), Some(8));
    assert_eq!(c.torch_dtype.as_deref(), Some("float16"));
}

#[test]
fn wrong_types_are_absent() {
    let c = ModelConfig::from_json(
        br#"{"num_hidden_layers": "32", "num_attention_heads": -1, "hidden_size": 4096.5, "head_dim": null, "architectures": [1, "X"]}"#,
    )
    .expect("parses");
    assert_eq!(c.num_hidden_layers, None);
    assert_eq!(c.num_attention_heads, None);
    assert_eq!(c.hidden_size, None);
    assert_eq!(c.head_dimension(), None);
    assert_eq!(c.architectures, vec!["X".to_owned()]);
    let zero_heads = ModelConfig::from_json(br#"{"hidden_size": 4096, "num_attention_heads": 0}"#)
        .expect("parses");
    assert_eq!(zero_heads.head_dimension(), None, "no division by zero");
}

#[test]
fn errors() {
    assert!(matches!(
        ModelConfig::from_json(b"{"),
        Err(ConfigError::InvalidJson(_))
    ));
    assert_eq!(ModelConfig::from_json(b"[]"), Err(ConfigError::NotAnObject));
    assert!(matches!(
        ModelConfig::read_path(std::path::Path::new("/nonexistent/config.json")),
        Err(ConfigError::Io(_))
    ));
}
