//! The one door to BLAS: row-major sgemm with bounds checked before the call. BLAS runs one
//! thread per call; parallelism comes from the calling session's own thread pool.

use cblas_sys::{cblas_sgemm, CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use std::marker::PhantomData;

#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) const NAME: &str = "Accelerate";
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(crate) const NAME: &str = "OpenBLAS";

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// BLAS's own threads would multiply with every context's pool (and change under one another),
/// so the library asks for one thread per BLAS call, once, before its first call.
fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(not(any(target_os = "macos", target_os = "ios")))]
        // SAFETY: documented by OpenBLAS as callable between BLAS calls; this runs before the
        // library's first call, and the value never changes afterwards.
        unsafe {
            openblas_set_num_threads(1)
        };
    });
}

fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

fn trans(x: bool) -> CBLAS_TRANSPOSE {
    if x {
        CBLAS_TRANSPOSE::CblasTrans
    } else {
        CBLAS_TRANSPOSE::CblasNoTrans
    }
}

/// Checks that A, B (and a C of `c_len` elements) hold every element a product touches.
#[allow(clippy::too_many_arguments)]
fn check(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a_len: usize,
    lda: usize,
    b_len: usize,
    ldb: usize,
    c_len: usize,
    ldc: usize,
) {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    assert!(
        lda >= ac.max(1) && ldb >= bc.max(1) && ldc >= n.max(1),
        "sgemm leading dims"
    );
    assert!(a_len >= span(ar, ac, lda), "sgemm: A too short");
    assert!(b_len >= span(br, bc, ldb), "sgemm: B too short");
    assert!(c_len >= span(m, n, ldc), "sgemm: C too short");
    assert!(
        m.max(n).max(k).max(lda).max(ldb).max(ldc) < i32::MAX as usize,
        "sgemm: too large"
    );
}

/// C[m,n] = A·B, where A is [m,k] (or [k,m] if `ta`) and B is [k,n] (or [n,k] if `tb`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    check(ta, tb, m, n, k, a.len(), lda, b.len(), ldb, c.len(), ldc);
    // SAFETY: `check` proved that every element read or written lies inside a, b and c.
    unsafe { raw(ta, tb, m, n, k, a, lda, b, ldb, c.as_mut_ptr(), ldc) }
}

/// # Safety
/// `check` passed for these arguments with `c` valid for `span(m, n, ldc)` writes, and nothing
/// else accesses that region of `c` during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn raw(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    single_threaded();
    // SAFETY: per this function's contract.
    unsafe {
        cblas_sgemm(
            CBLAS_LAYOUT::CblasRowMajor,
            trans(ta),
            trans(tb),
            m as i32,
            n as i32,
            k as i32,
            1.0,
            a.as_ptr(),
            lda as i32,
            b.as_ptr(),
            ldb as i32,
            0.0,
            c,
            ldc as i32,
        )
    }
}

/// A row-major C[m, n] (row stride `ldc`) that several threads fill at once, each writing its
/// own block of columns.
pub(crate) struct ColumnBlocks<'a> {
    ptr: *mut f32,
    len: usize,
    m: usize,
    n: usize,
    ldc: usize,
    _c: PhantomData<&'a mut [f32]>,
}

// SAFETY: the blocks handed out by `sgemm` are disjoint (each caller names its own columns and
// `sgemm`'s contract forbids overlap), so sharing the pointer across threads is sound.
unsafe impl Send for ColumnBlocks<'_> {}
// SAFETY: as above.
unsafe impl Sync for ColumnBlocks<'_> {}

impl<'a> ColumnBlocks<'a> {
    /// Borrows `c` as [m, n] with row stride `ldc`.
    pub(crate) fn new(c: &'a mut [f32], m: usize, n: usize, ldc: usize) -> Self {
        assert!(ldc >= n && c.len() >= span(m, n, ldc), "C too short");
        ColumnBlocks {
            ptr: c.as_mut_ptr(),
            len: c.len(),
            m,
            n,
            ldc,
            _c: PhantomData,
        }
    }

    /// A pointer to C[0, col0], after checking that columns col0..col0 + nc of all m rows lie
    /// inside C. Writing through it is the caller's promise: no other user of these columns.
    pub(crate) fn columns(&self, col0: usize, nc: usize) -> *mut f32 {
        assert!(col0 + nc <= self.n, "column block out of range");
        assert!(self.m == 0 || (self.m - 1) * self.ldc + col0 + nc <= self.len);
        self.ptr.wrapping_add(col0)
    }

    /// C[:, col0..col0 + nc] = A·B with A [m,k] (or [k,m] if `ta`) and B [k,nc] (or [nc,k]).
    ///
    /// # Safety
    /// No other call on the same `ColumnBlocks` may touch these columns at the same time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn sgemm(
        &self,
        ta: bool,
        tb: bool,
        col0: usize,
        nc: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
    ) {
        assert!(col0 + nc <= self.n, "column block out of range");
        let c_len = self.len - col0.min(self.len);
        check(
            ta,
            tb,
            self.m,
            nc,
            k,
            a.len(),
            lda,
            b.len(),
            ldb,
            c_len,
            self.ldc,
        );
        // SAFETY: `check` bounds the block inside C (from col0 on); the caller guarantees no
        // concurrent access to these columns.
        unsafe {
            raw(
                ta,
                tb,
                self.m,
                nc,
                k,
                a,
                lda,
                b,
                ldb,
                self.ptr.add(col0),
                self.ldc,
            )
        }
    }
}
