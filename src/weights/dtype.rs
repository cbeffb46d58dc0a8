//! bf16/f16 → f32 widening: exact, and shared by the weight views and every kernel.

use half::{bf16, f16};

/// Widens bf16 values to f32 (exact: bf16 is the top half of an f32).
pub(crate) fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s.to_bits() as u32) << 16);
    }
}

/// Widens f16 values to f32 (exact).
pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst);
}
