//! `modelplane inspect <path>`: what a model file or folder holds, as a
//! summary a person reads. Works on any path, without a server or database.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use modelplane_formats::{gguf, inspect, safetensors, vram};

/// The summary of a folder, a `.gguf` or a `.safetensors` file.
pub fn summary(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = String::new();
    if meta.is_dir() {
        folder(path, &mut out)?;
    } else {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name.ends_with(".safetensors") {
            safetensors_file(path, meta.len(), &mut out)?;
        } else {
            gguf_file(path, meta.len(), &mut out)?;
        }
    }
    Ok(out)
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

fn gguf_facts(s: &gguf::GgufSummary) -> String {
    format!(
        "{} · context {} · {} layers · embedding {} · heads {}/{} (KV) · vocab {} · {}",
        s.architecture.as_deref().unwrap_or("unknown architecture"),
        opt(s.context_length),
        opt(s.block_count),
        opt(s.embedding_length),
        opt(s.attention_head_count),
        opt(s.attention_head_count_kv),
        opt(s.vocab_size),
        s.file_type.as_deref().unwrap_or("file type ?"),
    )
}

fn vram_line(shape: &vram::ModelShape, out: &mut String) -> anyhow::Result<()> {
    let params = vram::VramParams::default();
    match vram::estimate(shape, &params) {
        Ok(e) => writeln!(
            out,
            "  VRAM at context {} (f16 KV cache, 1 sequence): weights {} + KV cache {} + overhead {} = {}",
            e.context_length,
            size(e.weights_bytes),
            size(e.kv_cache_bytes),
            size(e.overhead_bytes),
            size(e.total_bytes)
        )?,
        Err(err) => writeln!(out, "  VRAM: cannot estimate ({err})")?,
    }
    Ok(())
}

fn gguf_file(path: &Path, len: u64, out: &mut String) -> anyhow::Result<()> {
    let header = gguf::read_path(path)
        .map_err(|e| anyhow::anyhow!("{} is not a readable GGUF file: {e}", path.display()))?;
    writeln!(
        out,
        "{} — GGUF v{}, {}",
        path.display(),
        header.version,
        size(len)
    )?;
    writeln!(out, "  {}", gguf_facts(&header.summary()))?;
    writeln!(
        out,
        "  {} tensors, {} of tensor data from offset {}, {} metadata keys",
        header.tensors.len(),
        size(header.tensor_data_bytes().unwrap_or(0)),
        header.data_offset,
        header.metadata.len()
    )?;
    if let Some(split) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(modelplane_formats::naming::shard_name)
    {
        writeln!(
            out,
            "  part {} of {} of a split file (llama.cpp loads the parts together)",
            split.index, split.count
        )?;
    }
    if let Ok(shape) = vram::shape_from_gguf(&header) {
        vram_line(&shape, out)?;
    }
    Ok(())
}

fn safetensors_file(path: &Path, len: u64, out: &mut String) -> anyhow::Result<()> {
    let header = safetensors::read_path(path).map_err(|e| {
        anyhow::anyhow!("{} is not a readable safetensors file: {e}", path.display())
    })?;
    writeln!(out, "{} — safetensors, {}", path.display(), size(len))?;
    let dtypes: Vec<String> = header
        .dtypes()
        .into_iter()
        .map(|(d, n)| format!("{d} {n}"))
        .collect();
    writeln!(
        out,
        "  {} tensors, {} parameters ({}), {} of data",
        header.tensors.len(),
        header.parameter_count(),
        dtypes.join(", "),
        size(header.data_bytes())
    )?;
    if !header.metadata.is_empty() {
        let keys: Vec<&str> = header.metadata.keys().map(String::as_str).collect();
        writeln!(out, "  metadata: {}", keys.join(", "))?;
    }
    Ok(())
}

fn folder(path: &Path, out: &mut String) -> anyhow::Result<()> {
    let i = inspect::inspect_folder(path)
        .with_context(|| format!("cannot inspect {}", path.display()))?;
    writeln!(out, "{}", path.display())?;
    if !i.has_gguf && !i.has_safetensors {
        writeln!(out, "  no GGUF or safetensors files")?;
    }
    for g in &i.gguf_groups {
        let parts = if g.is_multipart {
            format!(
                " · split in {} parts{}",
                g.files.len(),
                if g.missing_shards.is_empty() {
                    String::new()
                } else {
                    format!(", missing {:?}", g.missing_shards)
                }
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "  GGUF {} · {} · {}{}: {}",
            g.quant_type,
            size(g.total_size_bytes),
            g.status,
            parts,
            g.files.join(", ")
        )?;
        if let Some(m) = &g.metadata {
            writeln!(out, "    {}", gguf_facts(m))?;
        }
    }
    if let Some(s) = &i.safetensor_info {
        writeln!(
            out,
            "  safetensors {} ({}) · {} files · {} · {} layers · hidden {} · heads {} · context {} · vocab {}",
            s.architecture.as_deref().unwrap_or("unknown architecture"),
            s.model_type.as_deref().unwrap_or("?"),
            s.file_count,
            size(s.total_size_bytes),
            opt(s.num_layers),
            opt(s.hidden_size),
            opt(s.num_attention_heads),
            opt(s.context_length),
            opt(s.vocab_size),
        )?;
    }
    let r = &i.engine_recommendation;
    writeln!(
        out,
        "  engine: {} ({}) — {}",
        r.recommended_engine, r.recommended_format, r.reason
    )?;
    let v = &i.gguf_validation;
    if v.invalid_files > 0 {
        writeln!(
            out,
            "  {} of {} GGUF files do not parse:",
            v.invalid_files, v.total_files
        )?;
        for e in &v.errors {
            writeln!(out, "    {}: {}", e.file, e.error)?;
        }
    }
    if let Ok(shape) = vram::shape_from_folder(path) {
        vram_line(&shape, out)?;
    }
    Ok(())
}
