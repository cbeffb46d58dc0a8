#![no_main]
// A safetensors file: header, offsets, shapes and dtypes, then every tensor read as f32.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smolvlm::fuzzing::safetensors(data);
});
