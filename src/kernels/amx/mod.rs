//! AMX-BF16 products for the bf16 mode: `tdpbf16ps` on 16×32 bf16 tiles, f32 accumulation.
//! Reached only through [`Amx`], which exists only after CPUID showed AMX-TILE and AMX-BF16
//! and Linux granted this process the tile state.
//!
//! The product is computed transposed, outᵀ = W·xᵀ, so the weight is read in place: A tiles
//! are 16 rows of W (as stored), B tiles 16 k-pairs of 16 activation rows (packed once per
//! call), and each 16×16 result tile is written back transposed.

use super::avx512::{Avx512, Avx512Bf16};
use super::math::bf16_bits;
use super::Epilogue;
use half::bf16;
use std::arch::asm;

/// Weight rows per task block (two A tiles).
const WB: usize = 32;
/// Activation rows per step (two B tiles).
const XB: usize = 32;
/// k per tile step.
const KS: usize = 32;

/// Proof that this CPU and OS run AMX-BF16 for this process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Amx(Avx512, Avx512Bf16);

impl Amx {
    /// Some(token) when CPUID reports AMX-TILE and AMX-BF16 and the kernel grants the
    /// process the tile data state (asked once per process).
    pub(crate) fn new() -> Option<Amx> {
        let (base, bf) = (Avx512::new()?, Avx512Bf16::new()?);
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = *OK.get_or_init(|| {
            // CPUID leaf 7 exists wherever AVX512_BF16 was reported (checked first).
            let leaf7 = is_x86_feature_detected!("avx512bf16")
                .then(|| std::arch::x86_64::__cpuid_count(7, 0));
            let cpu = leaf7.is_some_and(|l| l.edx & (1 << 22) != 0 && l.edx & (1 << 24) != 0);
            cpu && request_tile_state()
        });
        ok.then_some(Amx(base, bf))
    }
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permitted xsave
    // features; it reads no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
        t += 1;
    }
    TileConfig(c)
};

/// Loads the configuration on this thread and releases the tiles when dropped, so no path
/// (early return or unwind) leaves tile state behind.
struct Tiles(Amx);

impl Tiles {
    fn config(t: Amx) -> Tiles {
        // SAFETY: the token proves AMX; CONFIG is a valid 64-byte-aligned palette-1 config.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
        Tiles(t)
    }

    /// C0..C3 ← 0.
    fn zero(&self) {
        // SAFETY: tiles are configured (self exists).
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            )
        };
    }

    /// C += A·B for A = 16 rows at a0 and at a1 (row stride sa bytes), B = 16 rows of 64 bytes
    /// at b0 and at b1: C0 += A0·B0, C1 += A0·B1, C2 += A1·B0, C3 += A1·B1. Each load sits
    /// right before the first product that needs it, so loads overlap products (all four loads
    /// first measured 5–10 % slower on 2.2B vision and prefill, alternating single runs).
    ///
    /// # Safety
    /// a0, a1 are valid for 16 rows of 64 bytes at stride sa; b0, b1 for 1024 bytes.
    unsafe fn step(&self, a0: *const u8, a1: *const u8, sa: usize, b0: *const u8, b1: *const u8) {
        // SAFETY: per this function's contract; tiles are configured.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                sa = in(reg) sa,
                b0 = in(reg) b0,
                b1 = in(reg) b1,
                sb = in(reg) 64usize,
                options(nostack, readonly)
            )
        };
    }

    /// C0 += A0·B0 and C2 += A1·B0 only: [`Tiles::step`] for a B1 that holds no rows.
    ///
    /// # Safety
    /// a0, a1 are valid for 16 rows of 64 bytes at stride sa; b0 for 1024 bytes.
    unsafe fn step_b0(&self, a0: *const u8, a1: *const u8, sa: usize, b0: *const u8) {
        // SAFETY: per this function's contract; tiles are configured.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                sa = in(reg) sa,
                b0 = in(reg) b0,
                sb = in(reg) 64usize,
                options(nostack, readonly)
            )
        };
    }

    /// [`Tiles::step`] on slices: the A tiles are 16 rows of 32 bf16 at stride `sa` from the
    /// start of a0 and of a1, the B tiles the first 256 packed pairs of b0 and of b1; with
    /// `b0_only`, [`Tiles::step_b0`] (C1 and C3 are left as they are).
    fn step_on(&self, a0: &[bf16], a1: &[bf16], sa: usize, b0: &[u32], b1: &[u32], b0_only: bool) {
        assert!(a0.len() >= 15 * sa + KS && a1.len() >= 15 * sa + KS);
        assert!(b0.len() >= 256 && b1.len() >= 256);
        let (a0, a1) = (a0.as_ptr() as *const u8, a1.as_ptr() as *const u8);
        let (b0, b1) = (b0.as_ptr() as *const u8, b1.as_ptr() as *const u8);
        // SAFETY: the asserts bound both A tiles and both B tiles.
        unsafe {
            if b0_only {
                self.step_b0(a0, a1, 2 * sa, b0)
            } else {
                self.step(a0, a1, 2 * sa, b0, b1)
            }
        };
    }

    /// Loads C0..C3 from four consecutive 16×16 f32 tiles.
    fn load(&self, buf: &[f32; 1024]) {
        let p = buf.as_ptr();
        // SAFETY: buf holds 4 tiles of 16 rows × 64 bytes; tiles are configured.
        unsafe {
            asm!(
                "tileloadd tmm0, [{p} + {s}*1]",
                "tileloadd tmm1, [{p} + {s}*1 + 1024]",
                "tileloadd tmm2, [{p} + {s}*1 + 2048]",
                "tileloadd tmm3, [{p} + {s}*1 + 3072]",
                p = in(reg) p,
                s = in(reg) 64usize,
                options(nostack, readonly)
            )
        };
    }

    /// Stores C0..C3 as four consecutive 16×16 f32 tiles.
    fn store(&self, buf: &mut [f32; 1024]) {
        let p = buf.as_mut_ptr();
        // SAFETY: buf holds 4 tiles of 16 rows × 64 bytes; tiles are configured.
        unsafe {
            asm!(
                "tilestored [{p} + {s}*1], tmm0",
                "tilestored [{p} + {s}*1 + 1024], tmm1",
                "tilestored [{p} + {s}*1 + 2048], tmm2",
                "tilestored [{p} + {s}*1 + 3072], tmm3",
                p = in(reg) p,
                s = in(reg) 64usize,
                options(nostack)
            )
        };
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        let _ = self.0;
        // SAFETY: releasing configured tiles is always valid.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Activation rows r0..r0 + 16 of x [m, k] (row stride ldx; past m: zeros) as kq k-pairs of 16 bf16 pairs,
/// k zero-padded to 2·kq.
#[allow(clippy::too_many_arguments)]
fn pack_x(
    simd: Avx512Bf16,
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    r0: usize,
    kq: usize,
    out: &mut [u32],
) {
    let rows = 16usize.min(m.saturating_sub(r0));
    if rows == 16 && 2 * kq == k.next_multiple_of(32) {
        return simd.pack16(&x[r0 * ldx..], ldx, k, out);
    }
    if rows < 16 || !k.is_multiple_of(2) {
        out[..kq * 16].fill(0);
    }
    let mut pairs = vec![0u32; kq];
    for r in 0..rows {
        let row = &x[(r0 + r) * ldx..(r0 + r) * ldx + k];
        let mut it = row.chunks_exact(2);
        for (p, two) in pairs.iter_mut().zip(&mut it) {
            *p = bf16_bits(two[0]) | bf16_bits(two[1]) << 16;
        }
        if let [last] = it.remainder() {
            pairs[k / 2] = bf16_bits(*last);
        }
        for (p, v) in pairs.iter().enumerate() {
            out[p * 16 + r] = *v;
        }
    }
    // Padding pairs (k rounded up to whole tiles) are zero.
    for v in &mut out[k.div_ceil(2) * 16..kq * 16] {
        *v = 0;
    }
}

/// A row-major out [m, n] filled by several tasks, each its own (rows, columns) block; or,
/// with `packed`, the next product's packed activations (as [`pack_x`] lays them out, kq
/// pairs per 16-row block) instead.
struct Out {
    ptr: *mut f32,
    m: usize,
    n: usize,
    /// Row stride.
    ld: usize,
    packed: Option<(Avx512Bf16, usize)>,
}

// SAFETY: tasks write disjoint blocks (own weight block × own activation rows).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// Writes the four result tiles of weight rows j0.. and activation rows r0.., transposed
    /// and through the epilogue, skipping what lies outside [m, n].
    ///
    /// # Safety
    /// No other task reads or writes rows r0..r0 + 32 × columns j0..j0 + 32 at the same time.
    unsafe fn put(&self, t: Avx512, c: &[f32; 1024], j0: usize, r0: usize, e: &Epilogue) {
        for (q, tile) in c.chunks_exact(256).enumerate() {
            let (jb, rb) = (j0 + 16 * (q / 2), r0 + 16 * (q % 2));
            if let Some((b, kq)) = self.packed {
                let tile: &[f32; 256] = tile.try_into().expect("256-float tile");
                // Every block of 16 rows the next product reads (rows past m included) and
                // every pair below its kq (features past n as zeros) is written by some task.
                let at = (rb / 16) * kq * 16 + (jb / 2) * 16;
                // SAFETY: this block's pairs jb/2..jb/2 + 8 of row block rb/16 belong to this
                // task alone (the caller's contract); the buffer was sized for all blocks.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut((self.ptr as *mut u32).add(at), 128) };
                let rows = self.n.saturating_sub(jb);
                b.put_packed(
                    tile,
                    dst,
                    rows,
                    e.bias.map(|v| &v[jb.min(v.len())..]),
                    e.gelu,
                );
                continue;
            }
            let (rows, cols) = (self.n.saturating_sub(jb), self.m.saturating_sub(rb));
            if rows == 0 || cols == 0 {
                continue;
            }
            let tile: &[f32; 256] = tile.try_into().expect("256-float tile");
            let bias = e.bias.map(|b| &b[jb..]);
            // SAFETY: activation rows rb.. (cols of them, ≤ 16) × weight columns jb.. (rows
            // of them, ≤ 16) lie inside [m, n]; the caller owns the block.
            unsafe {
                t.put_transposed(
                    tile,
                    self.ptr.add(rb * self.ld + jb),
                    self.ld,
                    (rows, cols),
                    bias,
                    e,
                )
            };
        }
    }
}

mod attention;
mod gemm;

pub(crate) use attention::{attention_head, Head};
pub(crate) use gemm::{gemm_packed, gemm_parts, gemm_to_packed, packed_len};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_packing_matches_the_scalar_rounding() {
        let Some(t) = Avx512Bf16::new() else {
            eprintln!("no AVX512_BF16 here: the vector packing is not run");
            return;
        };
        // Whole tiles, a tail of one odd value, of 16 + 8, and of 8 (zeros up to the tile).
        for k in [96usize, 65, 88, 72] {
            let ldx = k + 5;
            let x: Vec<f32> = (0..16 * ldx)
                .map(|i| ((i as f32) * 0.377).sin() * 3.0)
                .collect();
            let pairs = k.div_ceil(32) * 16;
            let mut fast = vec![u32::MAX; pairs * 16];
            t.pack16(&x, ldx, k, &mut fast);
            for p in 0..pairs {
                for r in 0..16 {
                    let b = |c: usize| {
                        if c < k {
                            half::bf16::from_f32(x[r * ldx + c]).to_bits() as u32
                        } else {
                            0
                        }
                    };
                    assert_eq!(
                        fast[p * 16 + r],
                        b(2 * p) | b(2 * p + 1) << 16,
                        "k {k} pair {p} row {r}"
                    );
                }
            }
        }
    }
}
