//! The one door to BLAS: row-major sgemm with bounds checked before the call.

use cblas_sys::{cblas_sgemm, CBLAS_LAYOUT, CBLAS_TRANSPOSE};

#[cfg(target_os = "macos")]
pub const NAME: &str = "Accelerate";
#[cfg(not(target_os = "macos"))]
pub const NAME: &str = "OpenBLAS";

#[cfg(not(target_os = "macos"))]
extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// Sets the BLAS library's own thread count (process-wide).
pub fn set_blas_threads(n: usize) {
    #[cfg(not(target_os = "macos"))]
    // SAFETY: OpenBLAS documents this setter as callable at any time between BLAS calls.
    unsafe {
        openblas_set_num_threads(n.clamp(1, 1024) as std::os::raw::c_int)
    };
    #[cfg(target_os = "macos")]
    let _ = n;
}

fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// C[m,n] = A·B (+ beta·C), where A is [m,k] (or [k,m] if `ta`) and B is [k,n] (or [n,k] if `tb`).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
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
    beta: f32,
) {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    assert!(
        lda >= ac.max(1) && ldb >= bc.max(1) && ldc >= n.max(1),
        "sgemm leading dims"
    );
    assert!(a.len() >= span(ar, ac, lda), "sgemm: A too short");
    assert!(b.len() >= span(br, bc, ldb), "sgemm: B too short");
    assert!(c.len() >= span(m, n, ldc), "sgemm: C too short");
    assert!(
        m.max(n).max(k).max(lda).max(ldb).max(ldc) < i32::MAX as usize,
        "sgemm: too large"
    );
    if m == 0 || n == 0 {
        return;
    }
    let t = |x: bool| {
        if x {
            CBLAS_TRANSPOSE::CblasTrans
        } else {
            CBLAS_TRANSPOSE::CblasNoTrans
        }
    };
    // SAFETY: the asserts above prove every element BLAS reads or writes lies inside a, b and c.
    unsafe {
        cblas_sgemm(
            CBLAS_LAYOUT::CblasRowMajor,
            t(ta),
            t(tb),
            m as i32,
            n as i32,
            k as i32,
            1.0,
            a.as_ptr(),
            lda as i32,
            b.as_ptr(),
            ldb as i32,
            beta,
            c.as_mut_ptr(),
            ldc as i32,
        )
    }
}
