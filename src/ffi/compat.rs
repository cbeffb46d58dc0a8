//! The process-wide controls the original engine's programs use besides its four functions
//! (declared only in include/smol-vision/common_kernels.h, never in smolvlm.h): the thread
//! count of the drop-in API and the verbosity global.

use super::guard;
use crate::log::Level;
use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The original's verbosity: 0 silent (the default), 1 progress, 2 debug. While no log
/// callback is installed (smolvlm_log_set), the drop-in functions print the library's messages
/// up to that level on stderr. An atomic has the layout of the C `int` the programs write.
#[no_mangle]
pub static qwen_verbose: AtomicI32 = AtomicI32::new(0);

/// Threads of smolvlm_generate; 0: all CPUs.
static DROPIN_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads smolvlm_generate uses (clamped to 1..=1024); the extended API takes its
/// count from smolvlm_generate_params.n_threads instead.
#[no_mangle]
pub extern "C" fn qwen_set_threads(n: c_int) {
    guard((), || {
        DROPIN_THREADS.store(n.clamp(1, 1024) as usize, Ordering::Relaxed);
        sync_verbosity();
        crate::log::emit(Level::Debug, || {
            format!("drop-in API threads: {}", n.clamp(1, 1024))
        });
    })
}

/// CPUs this process may run on (its affinity mask and CPU quota counted), at least 1.
#[no_mangle]
pub extern "C" fn qwen_get_num_cpus() -> c_int {
    guard(1, || {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().min(c_int::MAX as usize) as c_int)
    })
}

/// The thread count smolvlm_generate passes on (0: all CPUs).
pub(crate) fn dropin_threads() -> usize {
    DROPIN_THREADS.load(Ordering::Relaxed)
}

/// Applies the program's current `qwen_verbose` to the stderr fallback of the log.
pub(crate) fn sync_verbosity() {
    let level = match qwen_verbose.load(Ordering::Relaxed) {
        v if v <= 0 => None,
        1 => Some(Level::Info),
        _ => Some(Level::Debug),
    };
    crate::log::set_stderr_fallback(level);
}
