//! Integration tests of modelplane-formats, one binary with a module per area.

mod adapter;
mod gguf;
mod hfconfig;
mod hostile;
mod inspect;
mod properties;
mod safetensors;
mod vram;
mod writer;

use std::path::PathBuf;

/// A committed fixture written by `tests/fixtures/make_fixtures.py`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture exists (run make_fixtures.py)")
}
