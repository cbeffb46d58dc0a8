#![no_main]
// An image file in any format: decoded (with the pixel limit lowered to 4 M), then resized,
// split into tiles and normalised as the processor does, with small processor sizes so each
// input takes well under a millisecond (the tiny model's own sizes upscale every image to
// 512 pixels first). Where the image meets a chat prompt is the messages target's part.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static LIMIT: std::sync::Once = std::sync::Once::new();
    LIMIT.call_once(|| {
        smolvlm::set_max_image_pixels(1 << 22);
    });
    let _ = smolvlm::fuzzing::image(data);
});
