//! Tables from ggml and llama.cpp: tensor types, file types, architectures.

/// A ggml tensor type, by the id ggml writes (`enum ggml_type` in `ggml.h`).
///
/// Ids 4 and 5 (`Q4_2`, `Q4_3`) were removed from ggml before GGUF existed
/// and are refused. The interleaved `Q4_0_4_4`..`IQ4_NL_8_8` types (31–33,
/// 36–38) are no longer written by llama.cpp but are kept so that older
/// files still parse.
#[expect(
    non_camel_case_types,
    reason = "the names are ggml's own (Q4_K, IQ2_XXS, ...), as users see them"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    Q4_0_4_4,
    Q4_0_4_8,
    Q4_0_8_8,
    TQ1_0,
    TQ2_0,
    IQ4_NL_4_4,
    IQ4_NL_4_8,
    IQ4_NL_8_8,
    MXFP4,
    NVFP4,
    Q1_0,
}

/// Elements per super-block of the k-quants.
const QK_K: u64 = 256;

impl GgmlType {
    /// Every known type, in id order.
    pub const ALL: [GgmlType; 40] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ1_S,
        GgmlType::IQ4_NL,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ4_XS,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
        GgmlType::IQ1_M,
        GgmlType::BF16,
        GgmlType::Q4_0_4_4,
        GgmlType::Q4_0_4_8,
        GgmlType::Q4_0_8_8,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::IQ4_NL_4_4,
        GgmlType::IQ4_NL_4_8,
        GgmlType::IQ4_NL_8_8,
        GgmlType::MXFP4,
        GgmlType::NVFP4,
        GgmlType::Q1_0,
    ];

    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.iter().copied().find(|t| t.id() == id)
    }

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::IQ2_XXS => 16,
            GgmlType::IQ2_XS => 17,
            GgmlType::IQ3_XXS => 18,
            GgmlType::IQ1_S => 19,
            GgmlType::IQ4_NL => 20,
            GgmlType::IQ3_S => 21,
            GgmlType::IQ2_S => 22,
            GgmlType::IQ4_XS => 23,
            GgmlType::I8 => 24,
            GgmlType::I16 => 25,
            GgmlType::I32 => 26,
            GgmlType::I64 => 27,
            GgmlType::F64 => 28,
            GgmlType::IQ1_M => 29,
            GgmlType::BF16 => 30,
            GgmlType::Q4_0_4_4 => 31,
            GgmlType::Q4_0_4_8 => 32,
            GgmlType::Q4_0_8_8 => 33,
            GgmlType::TQ1_0 => 34,
            GgmlType::TQ2_0 => 35,
            GgmlType::IQ4_NL_4_4 => 36,
            GgmlType::IQ4_NL_4_8 => 37,
            GgmlType::IQ4_NL_8_8 => 38,
            GgmlType::MXFP4 => 39,
            GgmlType::NVFP4 => 40,
            GgmlType::Q1_0 => 41,
        }
    }

    /// ggml's name for the type (`"Q4_K"`, `"BF16"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q8_1 => "Q8_1",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::IQ2_XXS => "IQ2_XXS",
            GgmlType::IQ2_XS => "IQ2_XS",
            GgmlType::IQ3_XXS => "IQ3_XXS",
            GgmlType::IQ1_S => "IQ1_S",
            GgmlType::IQ4_NL => "IQ4_NL",
            GgmlType::IQ3_S => "IQ3_S",
            GgmlType::IQ2_S => "IQ2_S",
            GgmlType::IQ4_XS => "IQ4_XS",
            GgmlType::I8 => "I8",
            GgmlType::I16 => "I16",
            GgmlType::I32 => "I32",
            GgmlType::I64 => "I64",
            GgmlType::F64 => "F64",
            GgmlType::IQ1_M => "IQ1_M",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0_4_4 => "Q4_0_4_4",
            GgmlType::Q4_0_4_8 => "Q4_0_4_8",
            GgmlType::Q4_0_8_8 => "Q4_0_8_8",
            GgmlType::TQ1_0 => "TQ1_0",
            GgmlType::TQ2_0 => "TQ2_0",
            GgmlType::IQ4_NL_4_4 => "IQ4_NL_4_4",
            GgmlType::IQ4_NL_4_8 => "IQ4_NL_4_8",
            GgmlType::IQ4_NL_8_8 => "IQ4_NL_8_8",
            GgmlType::MXFP4 => "MXFP4",
            GgmlType::NVFP4 => "NVFP4",
            GgmlType::Q1_0 => "Q1_0",
        }
    }

    /// Elements per block (`ggml_blck_size`).
    pub fn block_size(self) -> u64 {
        self.layout().0
    }

    /// Bytes per block (`ggml_type_size`).
    pub fn type_size(self) -> u64 {
        self.layout().1
    }

    /// `(block_size, type_size)`, as `GGML_QUANT_SIZES` in the reference
    /// `gguf` package and `type_traits` in `ggml.c` give them.
    fn layout(self) -> (u64, u64) {
        match self {
            GgmlType::F32 | GgmlType::I32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 | GgmlType::I16 => (1, 2),
            GgmlType::I8 => (1, 1),
            GgmlType::I64 | GgmlType::F64 => (1, 8),
            GgmlType::Q4_0 => (32, 2 + 16),
            GgmlType::Q4_1 => (32, 2 + 2 + 16),
            GgmlType::Q5_0 => (32, 2 + 4 + 16),
            GgmlType::Q5_1 => (32, 2 + 2 + 4 + 16),
            GgmlType::Q8_0 => (32, 2 + 32),
            GgmlType::Q8_1 => (32, 4 + 4 + 32),
            GgmlType::Q2_K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            GgmlType::Q3_K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            GgmlType::Q4_K => (QK_K, 2 + 2 + QK_K / 2 + 12),
            GgmlType::Q5_K => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            GgmlType::Q6_K => (QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
            GgmlType::Q8_K => (QK_K, 4 + QK_K + QK_K / 8),
            GgmlType::IQ2_XXS => (QK_K, 2 + QK_K / 4),
            GgmlType::IQ2_XS => (QK_K, 2 + QK_K / 4 + QK_K / 32),
            GgmlType::IQ3_XXS => (QK_K, 2 + QK_K / 4 + QK_K / 8),
            GgmlType::IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            GgmlType::IQ4_NL => (32, 2 + 16),
            GgmlType::IQ3_S => (QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            GgmlType::IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            GgmlType::IQ4_XS => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            GgmlType::IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            GgmlType::Q4_0_4_4 | GgmlType::Q4_0_4_8 | GgmlType::Q4_0_8_8 => (32, 2 + 16),
            GgmlType::IQ4_NL_4_4 | GgmlType::IQ4_NL_4_8 | GgmlType::IQ4_NL_8_8 => (32, 2 + 16),
            GgmlType::TQ1_0 => (QK_K, 2 + 4 * 13),
            GgmlType::TQ2_0 => (QK_K, 2 + 64),
            GgmlType::MXFP4 => (32, 1 + 16),
            GgmlType::NVFP4 => (64, 4 + 32),
            GgmlType::Q1_0 => (128, 2 + 16),
        }
    }

    /// Bytes of a tensor of this type with these dims (ggml order, `dims[0]`
    /// innermost): `elements / block_size * type_size`, checked. `None` when
    /// the innermost dim is not a whole number of blocks or on overflow.
    pub fn tensor_bytes(self, dims: &[u64]) -> Option<u64> {
        let (block_size, type_size) = self.layout();
        let (first, rest) = match dims.split_first() {
            Some(split) => split,
            // A tensor with no dims is a scalar: one element.
            None => (&1, &[][..]),
        };
        if first % block_size != 0 {
            return None;
        }
        let mut bytes = (first / block_size).checked_mul(type_size)?;
        for &dim in rest {
            bytes = bytes.checked_mul(dim)?;
        }
        Some(bytes)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The short name of a `general.file_type` value (`enum llama_ftype` in
/// `llama.h`), without the `MOSTLY_` prefix: 15 → `"Q4_K_M"`, 1 → `"F16"`,
/// 0 (`ALL_F32`) → `"F32"`. `None` for ids llama.cpp does not define
/// (including 1024, `GUESSED`).
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_1_SOME_F16",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        33 => "Q4_0_4_4",
        34 => "Q4_0_4_8",
        35 => "Q4_0_8_8",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        _ => return None,
    })
}

/// The `general.architecture` values llama.cpp knows (`LLM_ARCH_NAMES` in
/// `llama-arch.cpp`, as mirrored by `MODEL_ARCH_NAMES` in the `gguf` 0.19
/// Python package), sorted for binary search.
pub const KNOWN_ARCHITECTURES: &[&str] = &[
    "afmoe",
    "apertus",
    "arcee",
    "arctic",
    "arwkv7",
    "baichuan",
    "bailingmoe",
    "bailingmoe2",
    "bert",
    "bitnet",
    "bloom",
    "chameleon",
    "chatglm",
    "clip",
    "codeshell",
    "cogvlm",
    "cohere2",
    "command-r",
    "dbrx",
    "deci",
    "deepseek",
    "deepseek2",
    "deepseek2-ocr",
    "dots1",
    "dream",
    "ernie4_5",
    "ernie4_5-moe",
    "eurobert",
    "exaone",
    "exaone-moe",
    "exaone4",
    "falcon",
    "falcon-h1",
    "gemma",
    "gemma-embedding",
    "gemma2",
    "gemma3",
    "gemma3n",
    "gemma4",
    "glm-dsa",
    "glm4",
    "glm4moe",
    "gpt-oss",
    "gpt2",
    "gptj",
    "gptneox",
    "granite",
    "granitehybrid",
    "granitemoe",
    "grok",
    "grovemoe",
    "hunyuan-dense",
    "hunyuan-moe",
    "hunyuan_vl",
    "internlm2",
    "jais",
    "jais2",
    "jamba",
    "jina-bert-v2",
    "jina-bert-v3",
    "kimi-linear",
    "lfm2",
    "lfm2moe",
    "llada",
    "llada-moe",
    "llama",
    "llama-embed",
    "llama4",
    "maincoder",
    "mamba",
    "mamba2",
    "mimo2",
    "minicpm",
    "minicpm3",
    "minimax-m2",
    "mistral3",
    "mistral4",
    "modern-bert",
    "mpt",
    "nemotron",
    "nemotron_h",
    "nemotron_h_moe",
    "neo-bert",
    "nomic-bert",
    "nomic-bert-moe",
    "olmo",
    "olmo2",
    "olmoe",
    "openelm",
    "orion",
    "paddleocr",
    "pangu-embedded",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "plamo2",
    "plamo3",
    "plm",
    "qwen",
    "qwen2",
    "qwen2moe",
    "qwen2vl",
    "qwen3",
    "qwen35",
    "qwen35moe",
    "qwen3moe",
    "qwen3next",
    "qwen3vl",
    "qwen3vlmoe",
    "refact",
    "rnd1",
    "rwkv6",
    "rwkv6qwen2",
    "rwkv7",
    "seed_oss",
    "smallthinker",
    "smollm3",
    "stablelm",
    "starcoder",
    "starcoder2",
    "step35",
    "t5",
    "t5encoder",
    "wavtokenizer-dec",
    "xverse",
];

/// Whether llama.cpp knows this `general.architecture`.
pub fn is_known_architecture(arch: &str) -> bool {
    KNOWN_ARCHITECTURES.binary_search(&arch).is_ok()
}
