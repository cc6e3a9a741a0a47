#![no_main]

use libfuzzer_sys::fuzz_target;
use modelplane_formats::safetensors;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = safetensors::parse_header(data) {
        let _ = header.parameter_count();
        let _ = header.dtypes();
        let _ = header.data_bytes();
    }
});
