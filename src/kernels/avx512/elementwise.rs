//! The elementwise functions of `math.rs` compiled with AVX-512 enabled.

use super::Avx512;

/// Elementwise functions compiled with AVX-512 (the bodies are in `math.rs`).
impl Avx512 {
    pub(crate) fn gelu(self, x: &mut [f32]) {
        // SAFETY: the token proves the features these functions are compiled for.
        unsafe { gelu_512(x) }
    }
    pub(crate) fn silu_mul(self, gate: &mut [f32], up: &[f32]) {
        // SAFETY: as above.
        unsafe { silu_mul_512(gate, up) }
    }
    pub(crate) fn softmax_scaled(self, row: &mut [f32], scale: f32) {
        // SAFETY: as above.
        unsafe { softmax_512(row, scale) }
    }
    pub(crate) fn softmax_scaled_bf16(self, row: &mut [f32], scale: f32, out: &mut [u16]) {
        // SAFETY: as above.
        unsafe { softmax_bf16_512(row, scale, out) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn gelu_512(x: &mut [f32]) {
    crate::kernels::math::gelu_slice(x)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn silu_mul_512(gate: &mut [f32], up: &[f32]) {
    crate::kernels::math::silu_mul_slice(gate, up)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn softmax_512(row: &mut [f32], scale: f32) {
    crate::kernels::math::softmax_scaled(row, scale)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn softmax_bf16_512(row: &mut [f32], scale: f32, out: &mut [u16]) {
    crate::kernels::math::softmax_scaled_bf16(row, scale, out)
}
