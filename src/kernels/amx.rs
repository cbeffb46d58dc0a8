//! AMX-BF16 products for the bf16 mode: `tdpbf16ps` on 16×32 bf16 tiles, f32 accumulation.
//! Reached only through [`Amx`], which exists only after CPUID showed AMX-TILE and AMX-BF16
//! and Linux granted this process the tile state.
//!
//! The product is computed transposed, outᵀ = W·xᵀ, so the weight is read in place: A tiles
//! are 16 rows of W (as stored), B tiles 16 k-pairs of 16 activation rows (packed once per
//! call), and each 16×16 result tile is written back transposed.

use super::avx512::{Avx512, Avx512Bf16};
use super::scratch::{take_u32, Scratch};
use half::bf16;
use rayon::prelude::*;
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
    /// at b0 and at b1: C0 += A0·B0, C1 += A0·B1, C2 += A1·B0, C3 += A1·B1.
    ///
    /// # Safety
    /// a0, a1 are valid for 16 rows of 64 bytes at stride sa; b0, b1 for 1024 bytes.
    unsafe fn step(&self, a0: *const u8, a1: *const u8, sa: usize, b0: *const u8, b1: *const u8) {
        // SAFETY: per this function's contract; tiles are configured.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
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

impl Tiles {
    /// Stores C0..C3 as the 32×32 block at `c` of a row-major f32 matrix with row stride ldc:
    /// C0 top left, C1 top right, C2 bottom left, C3 bottom right.
    ///
    /// # Safety
    /// `c` is valid for 32 rows of 32 floats at stride ldc; nothing else touches them.
    unsafe fn store_block(&self, c: *mut f32, ldc: usize) {
        let s = 4 * ldc;
        // SAFETY: per this function's contract; tiles are configured.
        unsafe {
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16),
                c2 = in(reg) c.add(16 * ldc),
                c3 = in(reg) c.add(16 * ldc + 16),
                s = in(reg) s,
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

/// Bits of v rounded to bf16, nearest even (NaN stays NaN), as `half::bf16::from_f32` but
/// branch-free so loops vectorise.
#[inline(always)]
fn bf16_bits(v: f32) -> u32 {
    let b = v.to_bits();
    let rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16;
    if v.is_nan() {
        (b >> 16) | 0x40
    } else {
        rounded
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
    if rows == 16 && k.is_multiple_of(32) && 2 * kq == k {
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

/// A row-major out [m, n] filled by several tasks, each its own (rows, columns) block.
struct Out {
    ptr: *mut f32,
    m: usize,
    n: usize,
    /// Row stride.
    ld: usize,
}

// SAFETY: tasks write disjoint blocks (own weight block × own activation rows).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// Writes the four result tiles of weight rows j0.. and activation rows r0.., transposed,
    /// skipping what lies outside [m, n].
    ///
    /// # Safety
    /// No other task writes rows r0..r0 + 32 × columns j0..j0 + 32 at the same time.
    unsafe fn put(&self, t: Avx512, c: &[f32; 1024], j0: usize, r0: usize) {
        for (q, tile) in c.chunks_exact(256).enumerate() {
            let (jb, rb) = (j0 + 16 * (q / 2), r0 + 16 * (q % 2));
            let (rows, cols) = (self.n.saturating_sub(jb), self.m.saturating_sub(rb));
            if rows == 0 || cols == 0 {
                continue;
            }
            let tile: &[f32; 256] = tile.try_into().expect("256-float tile");
            // SAFETY: activation rows rb.. (cols of them, ≤ 16) × weight columns jb.. (rows
            // of them, ≤ 16) lie inside [m, n]; the caller owns the block.
            unsafe { t.put_transposed(tile, self.ptr.add(rb * self.ld + jb), self.ld, rows, cols) };
        }
    }
}

/// k steps per chunk of [`block`]: the chunk's A tiles (32 rows × 256 bf16, 16 KiB) stay in L1
/// while every activation pair passes over them.
const CHUNK_STEPS: usize = 8;

/// Output columns j0..j0 + 32 for activation pairs p0..p1 (32 rows each): A tiles from `a`
/// (32 rows of bf16 at stride sa, k padded to kpad), B tiles from the packed activations.
/// Partial sums between k chunks wait in `acc` (4 KiB per pair).
#[allow(clippy::too_many_arguments)]
fn block(
    tiles: &Tiles,
    a: &[bf16],
    sa: usize,
    kpad: usize,
    xp: &[u32],
    pairs: std::ops::Range<usize>,
    c: &Out,
    j0: usize,
    acc: &mut Vec<f32>,
) {
    let kq = kpad / 2;
    let steps = kpad / KS;
    let acc = super::scratch::take(acc, pairs.len() * 1024);
    let mut buf = [0.0f32; 1024];
    for s0 in (0..steps).step_by(CHUNK_STEPS) {
        let s1 = (s0 + CHUNK_STEPS).min(steps);
        for (pi, pair) in pairs.clone().enumerate() {
            let (b0, b1) = (&xp[2 * pair * kq * 16..], &xp[(2 * pair + 1) * kq * 16..]);
            let part: &mut [f32; 1024] = (&mut acc[pi * 1024..(pi + 1) * 1024])
                .try_into()
                .expect("1024-float block");
            if s0 == 0 {
                tiles.zero();
            } else {
                tiles.load(part);
            }
            for s in s0..s1 {
                let (ra, rb) = (&a[s * KS..], &a[16 * sa + s * KS..]);
                let (xa, xb) = (&b0[s * 256..s * 256 + 256], &b1[s * 256..s * 256 + 256]);
                assert!(ra.len() >= 15 * sa + KS && rb.len() >= 15 * sa + KS);
                // SAFETY: the assert bounds both A tiles (16 rows of 32 bf16 at stride sa);
                // each B tile is a 256-u32 slice.
                unsafe {
                    tiles.step(
                        ra.as_ptr() as *const u8,
                        rb.as_ptr() as *const u8,
                        2 * sa,
                        xa.as_ptr() as *const u8,
                        xb.as_ptr() as *const u8,
                    )
                };
            }
            if s1 < steps {
                tiles.store(part);
            } else {
                tiles.store(&mut buf);
                // SAFETY: the caller's task alone owns columns j0..j0 + 32 of these rows.
                unsafe { c.put(tiles.0 .0, &buf, j0, pair * XB) };
            }
        }
    }
}

/// out[m, n] = x[m, k] · wᵀ with x rounded to bf16, for a bf16 weight w [n, k].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    out: &mut [f32],
) {
    assert_eq!(w.len(), n * k, "amx gemm weight size");
    gemm_parts(amx, scratch, x, m, k, [(w, out)]);
}

/// Several products of the same x (q/k/v, gate/up): x is packed once and the weight blocks of
/// all parts are the tasks of one parallel pass. Part i: out_i [m, n_i] = x · w_iᵀ, w_i [n_i, k].
pub(crate) fn gemm_parts<const N: usize>(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    mut parts: [(&[bf16], &mut [f32]); N],
) {
    assert_eq!(x.len(), m * k, "amx gemm input size");
    let ns: [usize; N] = std::array::from_fn(|i| parts[i].0.len() / k.max(1));
    for (i, (w, o)) in parts.iter().enumerate() {
        assert!(
            w.len() == ns[i] * k && o.len() == m * ns[i],
            "amx gemm sizes"
        );
    }
    if m == 0 || k == 0 {
        return;
    }
    let kpad = k.next_multiple_of(KS);
    let kq = kpad / 2;
    let xblocks = m.div_ceil(XB) * 2;
    let pairs = xblocks / 2;
    // Task t < Σ blocks_i · chunks: part, weight block, chunk of activation pairs.
    let blocks: [usize; N] = std::array::from_fn(|i| ns[i].div_ceil(WB));
    let total: usize = blocks.iter().sum();
    let threads = rayon::current_num_threads().max(1);
    let chunks = (2 * threads).div_ceil(total.max(1)).clamp(1, pairs);
    let per_chunk = pairs.div_ceil(chunks);
    let mut ptrs = [std::ptr::null_mut::<f32>(); N];
    for (p, (_, o)) in ptrs.iter_mut().zip(parts.iter_mut()) {
        *p = o.as_mut_ptr();
    }
    // From here on the outputs are written only through these pointers.
    let outs: [Out; N] = std::array::from_fn(|i| Out {
        ptr: ptrs[i],
        m,
        n: ns[i],
        ld: ns[i],
    });
    let ws: [&[bf16]; N] = std::array::from_fn(|i| parts[i].0);
    scratch.with_shared(|xbuf| {
        let xp = take_u32(xbuf, xblocks * kq * 16);
        xp.par_chunks_mut(kq * 16)
            .enumerate()
            .for_each(|(b, blk)| pack_x(amx.1, x, k, m, k, b * 16, kq, blk));
        let xp = &*xp;
        let (outs, ws) = (&outs, &ws);
        (0..total * chunks).into_par_iter().for_each(|task| {
            let (mut wb, ch) = (task / chunks, task % chunks);
            let mut part = 0;
            while wb >= blocks[part] {
                wb -= blocks[part];
                part += 1;
            }
            let (w, n, c) = (ws[part], ns[part], &outs[part]);
            let j0 = wb * WB;
            let (p0, p1) = (ch * per_chunk, ((ch + 1) * per_chunk).min(pairs));
            if p0 >= p1 {
                return;
            }
            // Weight blocks read in place need whole tiles: 32 rows and k a multiple of 32.
            let in_place = j0 + WB <= n && k.is_multiple_of(KS);
            scratch.with(|slot| {
                // A source: W in place, or a zero-padded copy [32, kpad] of its rows.
                let (a, sa): (&[bf16], usize) = if in_place {
                    (&w[j0 * k..(j0 + WB) * k], k)
                } else {
                    let pad = take_u32(&mut slot.packed, WB * kpad / 2);
                    let pad: &mut [bf16] = bytemuck::cast_slice_mut(pad);
                    pad.fill(bf16::ZERO);
                    for r in 0..WB.min(n - j0) {
                        pad[r * kpad..r * kpad + k]
                            .copy_from_slice(&w[(j0 + r) * k..(j0 + r + 1) * k]);
                    }
                    (&*pad, kpad)
                };
                let tiles = Tiles::config(amx);
                block(&tiles, a, sa, kpad, xp, p0..p1, c, j0, &mut slot.b);
            });
        });
    });
}

/// c[r, j] = Σ a[r, t]·b[t, j] for r < 32·rows2, j < 32·cols2 on tiles: `a` bf16 rows at
/// stride lda (k padded to kpad, a multiple of 32), `b` packed as pack_x packs rows of bᵀ
/// (blocks of 16 columns, kpad/2 pairs each), `c` row-major f32 with stride ldc.
#[allow(clippy::too_many_arguments)]
fn tiles_nn(
    tiles: &Tiles,
    a: &[bf16],
    lda: usize,
    rows2: usize,
    b: &[u32],
    cols2: usize,
    kpad: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let kq = kpad / 2;
    assert!(kpad.is_multiple_of(KS) && lda >= kpad && ldc >= 32 * cols2);
    assert!(a.len() >= (32 * rows2).saturating_sub(1) * lda + kpad);
    assert!(b.len() >= 2 * cols2 * kq * 16);
    assert!(c.len() >= (32 * rows2).saturating_sub(1) * ldc + 32 * cols2);
    for i in 0..rows2 {
        for j in 0..cols2 {
            tiles.zero();
            for s in 0..kpad / KS {
                let a0 = &a[32 * i * lda + s * KS..];
                let a1 = &a[(32 * i + 16) * lda + s * KS..];
                let b0 = &b[(2 * j) * kq * 16 + s * 256..][..256];
                let b1 = &b[(2 * j + 1) * kq * 16 + s * 256..][..256];
                // SAFETY: the asserts above bound 16 rows of 32 bf16 at stride lda from a0 and
                // a1 (row 32·i + 31 < 32·rows2, column s·32 + 31 < kpad ≤ lda); b0, b1 are
                // 256-u32 slices.
                unsafe {
                    tiles.step(
                        a0.as_ptr() as *const u8,
                        a1.as_ptr() as *const u8,
                        2 * lda,
                        b0.as_ptr() as *const u8,
                        b1.as_ptr() as *const u8,
                    )
                };
            }
            // SAFETY: rows 32i..32i+32, columns 32j..32j+32 lie inside c (asserted above).
            unsafe { tiles.store_block(c.as_mut_ptr().add(32 * i * ldc + 32 * j), ldc) };
        }
    }
}

/// Columns of v [rows, cols] (row stride ldv; past rows/cols: zeros) as pack_x packs rows of
/// vᵀ: blocks of 16 columns, kq pairs of rows each.
fn pack_cols(
    v: &[f32],
    ldv: usize,
    rows: usize,
    cols: usize,
    kq: usize,
    blocks: usize,
    out: &mut [u32],
) {
    out[..blocks * kq * 16].fill(0);
    for t in 0..rows {
        let shift = 16 * (t % 2);
        for (c, x) in v[t * ldv..t * ldv + cols].iter().enumerate() {
            out[(c / 16) * kq * 16 + (t / 2) * 16 + c % 16] |= bf16_bits(*x) << shift;
        }
    }
}

/// Rows of x [rows, cols] (stride ldx) rounded to bf16 into out [rows_pad, ld] (zeros past).
fn to_bf16_rows(x: &[f32], ldx: usize, rows: usize, cols: usize, out: &mut [bf16], ld: usize) {
    out.fill(bf16::ZERO);
    for r in 0..rows {
        for (d, s) in out[r * ld..r * ld + cols]
            .iter_mut()
            .zip(&x[r * ldx..r * ldx + cols])
        {
            *d = bf16::from_bits(bf16_bits(*s) as u16);
        }
    }
}

/// The caller's row softmax: (row index, scores row, bf16 bits of P out).
pub(crate) type SoftmaxRow<'a> = dyn Fn(usize, &mut [f32], &mut [u16]) + 'a;

/// Sizes and strides of one head of attention (see [`attention_head`]).
#[derive(Clone, Copy)]
pub(crate) struct Head {
    pub t_q: usize,
    pub t_kv: usize,
    pub d: usize,
    pub ldq: usize,
    pub ldk: usize,
    pub ldv: usize,
    pub ldo: usize,
}

/// One head of attention in the bf16 mode on one thread: S = q·kᵀ on tiles (q, k rounded to
/// bf16), `softmax(i, S row i, P row i)` in f32 by the caller's function (which masks and
/// writes P in bf16, zeros included), then
/// out = P·v on tiles (P, v rounded to bf16), f32 accumulation throughout.
///
/// # Safety
/// `out` is valid for writes of t_q rows of d floats at stride ldo, and nothing else touches
/// them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attention_head(
    amx: Amx,
    slot: &mut super::scratch::Slot,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    h: Head,
    softmax: &SoftmaxRow,
    out: *mut f32,
) {
    let span = |rows: usize, ld: usize, cols: usize| (rows - 1) * ld + cols;
    assert!(h.t_q > 0 && h.t_kv > 0 && h.d > 0);
    assert!(q.len() >= span(h.t_q, h.ldq, h.d) && k.len() >= span(h.t_kv, h.ldk, h.d));
    assert!(v.len() >= span(h.t_kv, h.ldv, h.d));
    let dpad = h.d.next_multiple_of(KS);
    let tpad = h.t_kv.next_multiple_of(KS);
    let qpad = h.t_q.next_multiple_of(XB);
    let tiles = Tiles::config(amx);
    // S [qpad, tpad] = q·kᵀ: A = q rows in bf16, B = k rows packed.
    let qa: &mut [bf16] = bytemuck::cast_slice_mut(take_u32(&mut slot.b32, qpad * dpad / 2));
    to_bf16_rows(q, h.ldq, h.t_q, h.d, qa, dpad);
    let kp = take_u32(&mut slot.packed, (tpad / 16) * (dpad / 2) * 16);
    for (b, blk) in kp.chunks_mut(dpad / 2 * 16).enumerate() {
        pack_x(amx.1, k, h.ldk, h.t_kv, h.d, b * 16, dpad / 2, blk);
    }
    let scores = super::scratch::take(&mut slot.a, qpad * tpad);
    tiles_nn(
        &tiles,
        qa,
        dpad,
        qpad / 32,
        kp,
        tpad / 32,
        dpad,
        scores,
        tpad,
    );
    // P = softmax(S) in bf16 [qpad, tpad]; padding columns and rows are zero.
    let pa: &mut [bf16] = bytemuck::cast_slice_mut(take_u32(&mut slot.b32, qpad * tpad / 2));
    pa.fill(bf16::ZERO);
    let pbits: &mut [u16] = bytemuck::cast_slice_mut(pa);
    for i in 0..h.t_q {
        let row = &mut scores[i * tpad..i * tpad + h.t_kv];
        softmax(i, row, &mut pbits[i * tpad..i * tpad + h.t_kv]);
    }
    // O [qpad, dpad] = P·v: B = v's columns packed along the keys.
    let dcols = h.d.next_multiple_of(XB);
    let vp = take_u32(&mut slot.packed, (dcols / 16) * (tpad / 2) * 16);
    pack_cols(v, h.ldv, h.t_kv, h.d, tpad / 2, dcols / 16, vp);
    let o = super::scratch::take(&mut slot.b, qpad * dcols);
    tiles_nn(&tiles, pa, tpad, qpad / 32, vp, dcols / 32, tpad, o, dcols);
    for i in 0..h.t_q {
        // SAFETY: row i < t_q of out holds d floats at stride ldo (the caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(out.add(i * h.ldo), h.d) };
        dst.copy_from_slice(&o[i * dcols..i * dcols + h.d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_packing_matches_the_scalar_rounding() {
        let Some(t) = Avx512Bf16::new() else {
            eprintln!("no AVX512_BF16 here: the vector packing is not run");
            return;
        };
        let (k, ldx) = (96usize, 101usize);
        let x: Vec<f32> = (0..16 * ldx)
            .map(|i| ((i as f32) * 0.377).sin() * 3.0)
            .collect();
        let mut fast = vec![0u32; k / 2 * 16];
        t.pack16(&x, ldx, k, &mut fast);
        for p in 0..k / 2 {
            for r in 0..16 {
                let b = |c: usize| half::bf16::from_f32(x[r * ldx + c]).to_bits() as u32;
                assert_eq!(
                    fast[p * 16 + r],
                    b(2 * p) | b(2 * p + 1) << 16,
                    "pair {p} row {r}"
                );
            }
        }
    }
}
