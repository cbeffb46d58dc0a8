#![no_main]
// An image file in any format: decoded (with the pixel limit lowered to 4 M), then resized,
// split into tiles and normalised for the tiny model.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let model = common::model();
    let Ok(img) = smolvlm::RgbImage::decode(data, "fuzz.img") else {
        return;
    };
    let req = smolvlm::Request::simple("Describe this image.", None, vec![img]);
    let _ = smolvlm::fuzzing::prompt(&model, &req);
});
