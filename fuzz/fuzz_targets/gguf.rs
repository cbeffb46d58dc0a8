#![no_main]
// A GGUF file: header, metadata of every type, the tensor table, then every tensor read as f32.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smolvlm::fuzzing::gguf(data);
});
