#![no_main]

use libfuzzer_sys::fuzz_target;
use modelplane_formats::gguf;

fuzz_target!(|data: &[u8]| {
    let scanned = gguf::header_len(data);
    if let Ok(header) = gguf::parse(data) {
        // Whatever parses must also scan to where it ended, and report.
        assert!(scanned.is_ok(), "parse succeeded where the scan failed");
        let _ = header.summary();
        let _ = header.metadata_report();
        let _ = header.tensor_data_bytes();
        let _ = modelplane_formats::vram::shape_from_gguf(&header);
    }
});
