//! What model file names say: shard numbering and quantization.

/// A file that is one shard of a split model, named
/// `{base}-{index}-of-{count}.{gguf|safetensors}` (llama.cpp's `gguf-split`
/// and transformers both write five-digit, one-based numbers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ShardName {
    pub base: String,
    /// One-based.
    pub index: u32,
    pub count: u32,
}

/// Extensions a shard name may end with, lower case.
const SHARD_EXTENSIONS: &[&str] = &["gguf", "safetensors"];

/// The shard numbering of `filename`, if it is named as a shard:
/// `"model-00001-of-00003.gguf"` → base `"model"`, 1 of 3. The extension is
/// matched case-insensitively. The numbers may have any digit count up to
/// nine; `index` must be from 1 to `count`, and `base` must not be empty.
pub fn shard_name(filename: &str) -> Option<ShardName> {
    let (stem, extension) = filename.rsplit_once('.')?;
    if !SHARD_EXTENSIONS
        .iter()
        .any(|e| extension.eq_ignore_ascii_case(e))
    {
        return None;
    }
    let (rest, count) = split_trailing_number(stem)?;
    let rest = strip_suffix_ignore_case(rest, "-of-")?;
    let (rest, index) = split_trailing_number(rest)?;
    let base = rest.strip_suffix('-')?;
    if base.is_empty() || index == 0 || index > count {
        return None;
    }
    Some(ShardName {
        base: base.to_owned(),
        index,
        count,
    })
}

/// Splits `"abc-00012"` into `("abc-", 12)`: the trailing run of ASCII
/// digits (one to nine of them) and what precedes it.
fn split_trailing_number(s: &str) -> Option<(&str, u32)> {
    let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let (rest, number) = s.split_at(s.len() - digits);
    Some((rest, number.parse().ok()?))
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| s.get(..cut))?
}

/// Quantization names recognised in file names, upper case. Longer names
/// come before their prefixes so `Q4_K_M` wins over `Q4_K`.
const QUANT_NAMES: &[&str] = &[
    // llama.cpp file types and ggml tensor types.
    "IQ4_NL_4_4",
    "IQ4_NL_4_8",
    "IQ4_NL_8_8",
    "MXFP4_MOE",
    "Q4_0_4_4",
    "Q4_0_4_8",
    "Q4_0_8_8",
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_S",
    "IQ3_M",
    "IQ4_NL",
    "IQ4_XS",
    // Unsloth's dynamic quants ("UD-Q4_K_XL").
    "Q2_K_XL",
    "Q3_K_XL",
    "Q4_K_XL",
    "Q5_K_XL",
    "Q6_K_XL",
    "Q8_K_XL",
    "Q2_K_S",
    "Q2_K_L",
    "Q2_K_M",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_K_S",
    "Q4_K_M",
    "Q4_K_L",
    "Q5_K_S",
    "Q5_K_M",
    "Q5_K_L",
    "Q6_K_L",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "Q8_K",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q8_1",
    "Q1_0",
    "TQ1_0",
    "TQ2_0",
    "MXFP4",
    "NVFP4",
    "BF16",
    "F16",
    "F32",
    "F64",
    // Spellings normalised below.
    "FP16",
    "FP32",
];

/// The quantization a file name states, normalised to upper case:
/// `"Llama-3-8B.Q4_K_M.gguf"` and
/// `"qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"` both give `"Q4_K_M"`.
///
/// A name counts only where it stands alone: preceded by the start or a
/// character that is not a letter or digit (so `model_Q8_0` matches), and
/// followed by the end or a character that is neither a letter, a digit nor
/// `_` (so `Q4_K_MX` is not read as `Q4_K`).
/// `FP16`/`FP32` are reported as `F16`/`F32`. When a name holds several,
/// the last one wins, as quantization is conventionally the last part.
pub fn quant_from_filename(filename: &str) -> Option<String> {
    let upper = filename.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let is_separator = |i: usize| bytes.get(i).is_none_or(|b| !b.is_ascii_alphanumeric());
    // After a name `_` does not end it: `Q4_K_MX` is not `Q4_K`.
    let ends_name = |i: usize| {
        bytes
            .get(i)
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
    };
    let mut found = None;
    let mut start = 0;
    while start < bytes.len() {
        let boundary_before = start == 0 || is_separator(start - 1);
        let matched = boundary_before
            .then(|| {
                QUANT_NAMES.iter().copied().find(|name| {
                    upper
                        .get(start..)
                        .is_some_and(|rest| rest.starts_with(name))
                        && ends_name(start + name.len())
                })
            })
            .flatten();
        match matched {
            Some(name) => {
                found = Some(name);
                start += name.len();
            }
            None => start += 1,
        }
    }
    found.map(|name| match name {
        "FP16" => "F16".to_owned(),
        "FP32" => "F32".to_owned(),
        other => other.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_shard(name: &str, expected: Option<(&str, u32, u32)>) {
        let got = shard_name(name);
        let got = got.as_ref().map(|s| (s.base.as_str(), s.index, s.count));
        assert_eq!(got, expected, "{name}");
    }

    #[test]
    fn shard_names() {
        check_shard("model-00001-of-00003.gguf", Some(("model", 1, 3)));
        check_shard("model-00004-of-00004.safetensors", Some(("model", 4, 4)));
        check_shard(
            "Qwen2.5-7B-Instruct-Q4_K_M-00002-of-00002.GGUF",
            Some(("Qwen2.5-7B-Instruct-Q4_K_M", 2, 2)),
        );
        check_shard("a-1-OF-2.gguf", Some(("a", 1, 2)));
        check_shard("model-00000-of-00003.gguf", None);
        check_shard("model-00004-of-00003.gguf", None);
        check_shard("-00001-of-00003.gguf", None);
        check_shard("model-00001-of-00003.bin", None);
        check_shard("model-00001-of-.gguf", None);
        check_shard("model.gguf", None);
        check_shard("model00001-of-00003.gguf", None);
        check_shard("model-0000000001-of-0000000003.gguf", None);
        check_shard("", None);
        check_shard(".gguf", None);
    }

    fn check_quant(name: &str, expected: Option<&str>) {
        assert_eq!(quant_from_filename(name).as_deref(), expected, "{name}");
    }

    #[test]
    fn quant_names() {
        check_quant("Llama-3-8B.Q4_K_M.gguf", Some("Q4_K_M"));
        check_quant(
            "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf",
            Some("Q4_K_M"),
        );
        check_quant("tinyllama-1.1b-chat-v1.0.Q8_0.gguf", Some("Q8_0"));
        check_quant("Meta-Llama-3.1-8B-Instruct-IQ2_XXS.gguf", Some("IQ2_XXS"));
        check_quant("Meta-Llama-3.1-8B-Instruct-IQ4_NL.gguf", Some("IQ4_NL"));
        check_quant("model-f16.gguf", Some("F16"));
        check_quant("model-bf16.gguf", Some("BF16"));
        check_quant("model-fp16.gguf", Some("F16"));
        check_quant("model_F32.gguf", Some("F32"));
        check_quant("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", Some("Q4_K_XL"));
        check_quant("model.Q4_K.gguf", Some("Q4_K"));
        check_quant("phi-3-mini-q5_k_s.gguf", Some("Q5_K_S"));
        check_quant("gpt-oss-20b-MXFP4.gguf", Some("MXFP4"));
        // Not standing alone.
        check_quant("xq4_k_m.gguf", None);
        check_quant("model-q4_k_mx.gguf", None);
        check_quant("model.gguf", None);
        check_quant("", None);
        // Last wins.
        check_quant("model-f16-to-q8_0.gguf", Some("Q8_0"));
    }
}
