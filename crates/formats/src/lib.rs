//! Parsing and estimation for local model files, with no I/O beyond
//! reading the files asked about: no HTTP, no async runtime, no database.
//!
//! * [`gguf`]: GGUF headers (llama.cpp's format): metadata, tensor infos,
//!   summaries and the metadata report.
//! * [`safetensors`]: safetensors headers (the 8-byte length and JSON).
//! * [`hfconfig`]: Hugging Face `config.json`, the numbers VRAM needs.
//! * [`adapter`]: LoRA adapters: `adapter_config.json`, rank and alpha from
//!   adapter files.
//! * [`naming`]: what file names say: shard numbering, quantization.
//! * [`vram`]: weights + KV cache + overhead estimates.
//! * [`inspect`]: what a model folder holds, and which engine suits it.
//!
//! # Untrusted input
//!
//! Every parser here takes bytes that may be hostile. None panics; every
//! length read from a file is capped before use (the caps are in
//! [`gguf::limits`] and [`safetensors::MAX_HEADER_LEN`]); offset arithmetic is
//! checked; no buffer is sized from a count the input gives until the input
//! has been seen to be long enough to hold that many items. Errors are typed,
//! one enum per format, each with a stable `code()`.
//!
//! | what | cap |
//! |---|---|
//! | GGUF metadata key, tensor name | 64 KiB |
//! | GGUF string value | 16 MiB |
//! | GGUF array length | 2^26 elements |
//! | GGUF array nesting | 8 levels |
//! | GGUF metadata pairs, tensors | 2^20 each |
//! | GGUF tensor dims | 8 |
//! | GGUF `general.alignment` | power of two, ≤ 2^30 |
//! | GGUF header (start of file to end of tensor infos) | 512 MiB |
//! | safetensors JSON header | 100,000,000 bytes (the format's own cap) |
//! | `config.json` / `adapter_config.json` read | 16 MiB / 4 MiB |
//!
//! Files are read with plain `std::fs` (no memory mapping: the workspace
//! forbids `unsafe`), and only the header bytes are read, never tensor data.
//! A parser that meets the end of its buffer returns `Truncated { needed }`,
//! a lower bound on the total length it needs, so a caller reading a remote
//! file by ranges can fetch more and retry.
//!
//! **Architecture invariant:** this crate knows nothing of HTTP, async
//! runtimes, databases or the domain model; it depends only on serde,
//! serde_json, thiserror and simdutf8.

pub mod adapter;
mod fsutil;
pub mod gguf;
pub mod hfconfig;
pub mod inspect;
pub mod naming;
pub mod safetensors;
pub mod vram;
