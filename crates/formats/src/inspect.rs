//! What a model folder holds: GGUF groups, safetensors facts, validation,
//! and which engine suits it.
//!
//! # Symlinks
//!
//! [`inspect_folder`] and [`list_model_folders`] never read through a
//! symlink whose resolved target lies outside the directory they were given
//! (for `inspect_folder`, the folder; for `list_model_folders`, the base).
//! Such links, dangling links and symlinked directories are skipped as if
//! absent. Hugging Face cache snapshots link to `../../blobs/`; use
//! [`inspect_folder_within`] with the cache root to allow those. Confining
//! the *requested* path to a base directory is the caller's job.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::fsutil::{self, DirFile};
use crate::gguf::{self, GgufSummary};
use crate::hfconfig::ModelConfig;
use crate::naming;
use crate::safetensors;

const MIB: u64 = 1024 * 1024;

/// Bytes to MiB (2^20), rounded to the nearest.
pub fn bytes_to_mib(bytes: u64) -> u64 {
    bytes / MIB + u64::from(bytes % MIB >= MIB / 2)
}

/// The inspect-folder response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderInspection {
    pub has_gguf: bool,
    pub has_safetensors: bool,
    pub gguf_groups: Vec<GgufGroup>,
    pub safetensor_info: Option<SafetensorInfo>,
    pub engine_recommendation: EngineRecommendation,
    pub gguf_validation: GgufValidation,
}

/// The GGUF files of one model: a single file, or the shards of a split one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufGroup {
    /// From the first file's `general.file_type`, else its name, else the
    /// dominant tensor type; `"unknown"` when none says.
    pub quant_type: String,
    /// File names; shards in index order.
    pub files: Vec<String>,
    /// MiB (2^20 bytes), rounded to the nearest.
    pub total_size_mb: u64,
    pub total_size_bytes: u64,
    pub is_multipart: bool,
    /// The `-of-N` count, for a split model.
    pub shard_count: Option<u32>,
    /// Shard indexes (one-based) named by the count but not present.
    pub missing_shards: Vec<u32>,
    /// `"invalid"` if any file's header fails or a file is shorter than its
    /// header says; else `"incomplete"` if shards are missing; else `"ready"`.
    pub status: String,
    /// From the first shard (or the only file), when its header parsed.
    pub metadata: Option<GgufSummary>,
}

/// The safetensors model in the folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetensorInfo {
    /// `architectures[0]` of `config.json` (`"LlamaForCausalLM"`).
    pub architecture: Option<String>,
    pub model_type: Option<String>,
    /// MiB (2^20 bytes), rounded to the nearest.
    pub total_size_mb: u64,
    pub total_size_bytes: u64,
    pub file_count: u32,
    /// `max_position_embeddings`.
    pub context_length: Option<u64>,
    pub num_layers: Option<u64>,
    pub hidden_size: Option<u64>,
    pub num_attention_heads: Option<u64>,
    pub num_key_value_heads: Option<u64>,
    pub vocab_size: Option<u64>,
    /// Elements over every safetensors header that parsed.
    pub parameter_count: Option<u64>,
    pub torch_dtype: Option<String>,
    /// Whether `config.json` was present and parsed.
    pub has_config: bool,
    /// Shards named by an `-of-N` count but not present.
    pub missing_shards: Vec<u32>,
    /// Files whose header failed (or `config.json`, if it did not parse).
    pub errors: Vec<FileError>,
}

/// What to serve the folder with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineRecommendation {
    /// `"vllm"`, `"llamacpp"` or `"none"`.
    pub recommended_engine: String,
    /// `"safetensors"`, `"gguf"` or `"none"`.
    pub recommended_format: String,
    pub reason: String,
    pub has_multipart_gguf: bool,
    pub has_safetensors: bool,
    pub has_gguf: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GgufValidation {
    pub total_files: u32,
    pub valid_files: u32,
    pub invalid_files: u32,
    pub errors: Vec<GgufFileError>,
}

/// A file that failed to parse, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub file: String,
    pub error: String,
}

/// The name the interface gives GGUF file errors.
pub type GgufFileError = FileError;

/// The engine for a folder's contents; pure, so the API's rule is one table:
///
/// | safetensors | GGUF | multipart GGUF | engine / format |
/// |---|---|---|---|
/// | yes | any | any | vllm / safetensors |
/// | no | yes or no | yes | llamacpp / gguf (split files) |
/// | no | yes | no | llamacpp / gguf |
/// | no | no | no | none / none |
///
/// `has_multipart_gguf` implies GGUF, whatever `has_gguf` says.
pub fn engine_recommendation(
    has_gguf: bool,
    has_multipart_gguf: bool,
    has_safetensors: bool,
) -> EngineRecommendation {
    let has_gguf = has_gguf || has_multipart_gguf;
    let (engine, format, reason) = if has_safetensors {
        (
            "vllm",
            "safetensors",
            if has_gguf {
                "SafeTensors available - vLLM recommended for best performance (GGUF files are also present for llama.cpp)"
            } else {
                "SafeTensors available - vLLM recommended for best performance"
            },
        )
    } else if has_multipart_gguf {
        (
            "llamacpp",
            "gguf",
            "Multipart GGUF found - llama.cpp loads split GGUF files natively; point it at the first shard (-00001-of-N)",
        )
    } else if has_gguf {
        ("llamacpp", "gguf", "GGUF available - llama.cpp recommended")
    } else {
        (
            "none",
            "none",
            "No GGUF or SafeTensors model files found in this folder",
        )
    };
    EngineRecommendation {
        recommended_engine: engine.to_owned(),
        recommended_format: format.to_owned(),
        reason: reason.to_owned(),
        has_multipart_gguf,
        has_safetensors,
        has_gguf,
    }
}

/// Inspects the model files directly in `dir`; symlinks are followed only
/// to files inside `dir` (see the module docs).
pub fn inspect_folder(dir: &Path) -> Result<FolderInspection, io::Error> {
    inspect_folder_within(dir, dir)
}

/// Like [`inspect_folder`], but symlinks may point anywhere inside `root`
/// (which should contain `dir`).
///
/// Each GGUF header is read (headers only) and checked; a file that fails,
/// or is shorter than its tensor infos say, is reported in
/// `gguf_validation` and marks its group invalid, without failing the call.
/// Only listing `dir` itself can fail.
pub fn inspect_folder_within(dir: &Path, root: &Path) -> Result<FolderInspection, io::Error> {
    let files = fsutil::list_files(dir, root)?;
    let gguf_files: Vec<&DirFile> = files
        .iter()
        .filter(|f| fsutil::has_extension(&f.name, "gguf"))
        .collect();
    let safetensor_files: Vec<&DirFile> = files
        .iter()
        .filter(|f| fsutil::has_extension(&f.name, "safetensors"))
        .collect();

    let mut validation = GgufValidation {
        total_files: count_u32(gguf_files.len()),
        valid_files: 0,
        invalid_files: 0,
        errors: Vec::new(),
    };
    let mut checked = Vec::with_capacity(gguf_files.len());
    for file in &gguf_files {
        let (header, error) = check_gguf(file);
        match &error {
            None => validation.valid_files += 1,
            Some(error) => {
                validation.invalid_files += 1;
                validation.errors.push(FileError {
                    file: file.name.clone(),
                    error: error.clone(),
                });
            }
        }
        checked.push(CheckedGguf {
            file,
            header,
            error,
        });
    }
    let gguf_groups = group_gguf(checked);
    let has_multipart_gguf = gguf_groups.iter().any(|g| g.is_multipart);

    let has_gguf = !gguf_files.is_empty();
    let has_safetensors = !safetensor_files.is_empty();
    let config = files.iter().find(|f| f.name == "config.json");
    let safetensor_info = has_safetensors.then(|| safetensor_info(&safetensor_files, config));

    Ok(FolderInspection {
        has_gguf,
        has_safetensors,
        gguf_groups,
        safetensor_info,
        engine_recommendation: engine_recommendation(has_gguf, has_multipart_gguf, has_safetensors),
        gguf_validation: validation,
    })
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a GGUF header and checks the file holds the data it describes.
/// A header that parses is kept even when the data check fails, so a
/// half-downloaded file still shows what model it is.
fn check_gguf(file: &DirFile) -> (Option<gguf::GgufHeader>, Option<String>) {
    let header = match gguf::read_path(&file.path) {
        Ok(header) => header,
        Err(e) => return (None, Some(e.to_string())),
    };
    let error = match header.data_end() {
        Err(e) => Some(e.to_string()),
        Ok(expected) if file.len < expected => Some(format!(
            "the file is {} bytes but its tensor infos need {expected}; it is incomplete (still downloading?)",
            file.len
        )),
        Ok(_) => None,
    };
    (Some(header), error)
}

/// One GGUF file and what checking it found.
struct CheckedGguf<'a> {
    file: &'a DirFile,
    header: Option<gguf::GgufHeader>,
    error: Option<String>,
}

fn group_gguf(checked: Vec<CheckedGguf<'_>>) -> Vec<GgufGroup> {
    // Shards group by (base, count); other files stand alone.
    let mut shard_groups: BTreeMap<(String, u32), Vec<(u32, CheckedGguf<'_>)>> = BTreeMap::new();
    let mut groups = Vec::new();
    for entry in checked {
        match naming::shard_name(&entry.file.name) {
            Some(shard) => shard_groups
                .entry((shard.base, shard.count))
                .or_default()
                .push((shard.index, entry)),
            None => groups.push(make_group(vec![entry], None)),
        }
    }
    for ((_, count), mut members) in shard_groups {
        members.sort_by_key(|(index, _)| *index);
        let present: Vec<u32> = members.iter().map(|(index, _)| *index).collect();
        let missing = (1..=count).filter(|i| !present.contains(i)).collect();
        let entries = members.into_iter().map(|(_, entry)| entry).collect();
        groups.push(make_group(entries, Some((count, missing))));
    }
    groups.sort_by(|a, b| (&a.quant_type, &a.files).cmp(&(&b.quant_type, &b.files)));
    groups
}

fn make_group(entries: Vec<CheckedGguf<'_>>, shards: Option<(u32, Vec<u32>)>) -> GgufGroup {
    // Only the first shard carries the model's metadata.
    let first_header = entries.first().and_then(|entry| {
        let is_first = naming::shard_name(&entry.file.name).is_none_or(|s| s.index == 1);
        entry.header.as_ref().filter(|_| is_first)
    });
    let quant_type = first_header
        .and_then(|h| {
            h.file_type()
                .and_then(gguf::file_type_name)
                .map(str::to_owned)
        })
        .or_else(|| {
            entries
                .iter()
                .find_map(|entry| naming::quant_from_filename(&entry.file.name))
        })
        .or_else(|| first_header.and_then(gguf::GgufHeader::quantization))
        .unwrap_or_else(|| "unknown".to_owned());
    let total_size_bytes = entries
        .iter()
        .fold(0u64, |sum, entry| sum.saturating_add(entry.file.len));
    let any_invalid = entries.iter().any(|entry| entry.error.is_some());
    let (shard_count, missing_shards) = match shards {
        Some((count, missing)) => (Some(count), missing),
        None => (None, Vec::new()),
    };
    let status = if any_invalid {
        "invalid"
    } else if !missing_shards.is_empty() {
        "incomplete"
    } else {
        "ready"
    };
    GgufGroup {
        quant_type,
        files: entries
            .iter()
            .map(|entry| entry.file.name.clone())
            .collect(),
        total_size_mb: bytes_to_mib(total_size_bytes),
        total_size_bytes,
        is_multipart: shard_count.is_some(),
        shard_count,
        missing_shards,
        status: status.to_owned(),
        metadata: first_header.map(gguf::GgufHeader::summary),
    }
}

fn safetensor_info(files: &[&DirFile], config: Option<&DirFile>) -> SafetensorInfo {
    let mut errors = Vec::new();
    let config = config.and_then(|file| match ModelConfig::read_path(&file.path) {
        Ok(config) => Some(config),
        Err(e) => {
            errors.push(FileError {
                file: file.name.clone(),
                error: e.to_string(),
            });
            None
        }
    });
    let mut parameter_count: Option<u64> = None;
    for file in files {
        match safetensors::read_path(&file.path) {
            Ok(header) => {
                parameter_count = Some(
                    parameter_count
                        .unwrap_or(0)
                        .saturating_add(header.parameter_count()),
                );
            }
            Err(e) => errors.push(FileError {
                file: file.name.clone(),
                error: e.to_string(),
            }),
        }
    }
    let mut counts: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for file in files {
        if let Some(shard) = naming::shard_name(&file.name) {
            counts.entry(shard.count).or_default().push(shard.index);
        }
    }
    let missing_shards = counts
        .iter()
        .flat_map(|(&count, present)| (1..=count).filter(move |i| !present.contains(i)))
        .collect();
    let total_size_bytes = files.iter().fold(0u64, |sum, f| sum.saturating_add(f.len));
    SafetensorInfo {
        architecture: config
            .as_ref()
            .and_then(|c| c.architecture().map(str::to_owned)),
        model_type: config.as_ref().and_then(|c| c.model_type.clone()),
        total_size_mb: bytes_to_mib(total_size_bytes),
        total_size_bytes,
        file_count: count_u32(files.len()),
        context_length: config.as_ref().and_then(|c| c.max_position_embeddings),
        num_layers: config.as_ref().and_then(|c| c.num_hidden_layers),
        hidden_size: config.as_ref().and_then(|c| c.hidden_size),
        num_attention_heads: config.as_ref().and_then(|c| c.num_attention_heads),
        num_key_value_heads: config.as_ref().and_then(|c| c.num_key_value_heads),
        vocab_size: config.as_ref().and_then(|c| c.vocab_size),
        parameter_count,
        torch_dtype: config.as_ref().and_then(|c| c.torch_dtype.clone()),
        has_config: config.is_some(),
        missing_shards,
        errors,
    }
}

/// A folder under the models base that holds model files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalFolder {
    /// The folder's own name (`"Llama-3-8B"`).
    pub name: String,
    /// Relative to the base, with `/` separators (`"meta-llama/Llama-3-8B"`).
    pub path: String,
    pub has_gguf: bool,
    pub has_safetensors: bool,
    /// Regular files directly in the folder (all of them, not only models).
    pub file_count: u32,
    /// Their total size.
    pub total_size_bytes: u64,
    /// Latest modification of those files (else of the folder), RFC 3339 UTC.
    pub modified: Option<String>,
    /// The same instant as Unix seconds.
    pub modified_unix: Option<u64>,
}

/// The folders under `base` that directly contain `.gguf` or `.safetensors`
/// files: its immediate subfolders, and for a subfolder without model files
/// its own subfolders (the `owner/repo` layout Hugging Face downloads use).
/// Sorted by path. Symlinked folders are skipped; symlinked files count
/// only when they resolve inside `base`. A subfolder that cannot be read is
/// skipped; only reading `base` itself can fail.
pub fn list_model_folders(base: &Path) -> Result<Vec<LocalFolder>, io::Error> {
    let mut found = Vec::new();
    for (name, path) in fsutil::list_subdirs(base)? {
        if let Some(folder) = model_folder(&path, base, &name, name.clone()) {
            found.push(folder);
            continue;
        }
        let Ok(children) = fsutil::list_subdirs(&path) else {
            continue;
        };
        for (child_name, child_path) in children {
            let relative = format!("{name}/{child_name}");
            if let Some(folder) = model_folder(&child_path, base, &child_name, relative) {
                found.push(folder);
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn model_folder(dir: &Path, base: &Path, name: &str, relative: String) -> Option<LocalFolder> {
    let files = fsutil::list_files(dir, base).ok()?;
    let has_gguf = files.iter().any(|f| fsutil::has_extension(&f.name, "gguf"));
    let has_safetensors = files
        .iter()
        .any(|f| fsutil::has_extension(&f.name, "safetensors"));
    if !has_gguf && !has_safetensors {
        return None;
    }
    let modified = files
        .iter()
        .filter_map(|f| f.modified)
        .max()
        .or_else(|| std::fs::metadata(dir).ok()?.modified().ok());
    let modified_unix = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    Some(LocalFolder {
        name: name.to_owned(),
        path: relative,
        has_gguf,
        has_safetensors,
        file_count: count_u32(files.len()),
        total_size_bytes: files.iter().fold(0u64, |sum, f| sum.saturating_add(f.len)),
        modified: modified_unix.map(rfc3339_utc),
        modified_unix,
    })
}

/// Formats Unix seconds as RFC 3339 in UTC (`"2024-05-01T12:00:00Z"`).
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The modification time of a file as RFC 3339, for callers listing files.
pub fn system_time_rfc3339(time: SystemTime) -> Option<String> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(rfc3339_utc(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn mib_rounding() {
        assert_eq!(bytes_to_mib(0), 0);
        assert_eq!(bytes_to_mib(MIB / 2 - 1), 0);
        assert_eq!(bytes_to_mib(MIB / 2), 1);
        assert_eq!(bytes_to_mib(12_800 * MIB), 12_800);
    }
}
