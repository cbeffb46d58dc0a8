//! The C ABI. Every `extern "C"` function of the library lives under this module and nowhere
//! else; `include/smolvlm.h` is generated from it by cbindgen.
//!
//! Rules kept by every entry point (tests/ffi_boundary.rs checks the first one for every
//! `#[no_mangle]` function in the crate):
//! - the whole body runs inside one panic boundary ([`guard`]): a panic becomes
//!   `SMOLVLM_STATUS_PANIC` (or NULL, or a static message) plus a last-error message, never an
//!   unwind into C;
//! - every pointer argument is checked for NULL, every string for UTF-8, every size for sanity;
//! - on failure the thread's last-error message (see `smolvlm_last_error`) names the problem.

mod api;
mod compat;
mod ctx;
mod dropin;
mod image;
mod state;
mod types;

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// Result of every fallible call. `SMOLVLM_STATUS_OK` is 0; the values never change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArg = 1,
    /// An argument was invalid (bad UTF-8, out-of-range number, short buffer, ...).
    InvalidArg = 2,
    /// A file could not be read.
    Io = 3,
    /// The model directory is unusable (bad JSON, missing or misshaped tensor, ...).
    BadModel = 4,
    /// An image could not be decoded or is unusable.
    BadImage = 5,
    /// A callback asked to stop (load progress or abort callback).
    Cancelled = 6,
    /// The context is in use by another thread.
    Busy = 7,
    /// Memory ran out.
    Oom = 8,
    /// An internal error (a bug): the library caught a panic.
    Panic = 9,
}

impl From<ErrorKind> for smolvlm_status {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::InvalidArg => smolvlm_status::InvalidArg,
            ErrorKind::Io => smolvlm_status::Io,
            ErrorKind::BadModel => smolvlm_status::BadModel,
            ErrorKind::BadImage => smolvlm_status::BadImage,
            ErrorKind::Cancelled => smolvlm_status::Cancelled,
            ErrorKind::Busy => smolvlm_status::Busy,
            ErrorKind::Oom => smolvlm_status::Oom,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Records `e` as this thread's last error and returns its status.
fn fail(e: Error) -> smolvlm_status {
    set_last_error(&e.message);
    crate::log::emit(crate::log::Level::Debug, || format!("error: {}", e.message));
    e.kind.into()
}

fn null_arg(name: &str) -> smolvlm_status {
    set_last_error(&format!("argument `{name}` is NULL"));
    smolvlm_status::NullArg
}

/// Runs `body` behind the panic boundary; a panic yields `on_panic` and a last-error message.
fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error (please report): {what}"));
            on_panic
        }
    }
}

/// Checks an output pointer and sets `*out` to NULL, so that every failure leaves it NULL.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn reset_out<T>(out: *mut *mut T) -> Result<(), smolvlm_status> {
    if out.is_null() {
        return Err(null_arg("out"));
    }
    // SAFETY: non-NULL, and writable per this function's contract.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// A C string argument as &str: Ok(None) for NULL, Err for invalid UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees a NUL-terminated string (documented per function).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|e| Error::invalid(format!("argument `{name}` is not valid UTF-8 ({e})")))
}

/// Log severities passed to the log callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_log_level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// Receives one log line (NUL-terminated, valid only during the call).
pub type smolvlm_log_cb = Option<
    unsafe extern "C" fn(level: smolvlm_log_level, message: *const c_char, user_data: *mut c_void),
>;

pub(crate) struct SendPtr(pub(crate) *mut c_void);
// SAFETY: the pointer is only handed back to the caller's own callback; the caller promises it
// may be used from any thread (documented on smolvlm_log_set and the callback params).
unsafe impl Send for SendPtr {}
// SAFETY: as above; the library never dereferences it.
unsafe impl Sync for SendPtr {}

/// Sends the library's diagnostics to `cb` (NULL: silence, the default). Messages at every
/// level are delivered; filter in the callback. Process-wide; thread-safe; `cb` may be called
/// from any thread that uses the library.
///
/// # Safety
/// `cb` is NULL or a function safe to call from any thread with `user_data` until it is
/// replaced by another smolvlm_log_set call.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_log_set(cb: smolvlm_log_cb, user_data: *mut c_void) {
    guard((), || {
        let Some(f) = cb else {
            crate::log::set_sink(None);
            return;
        };
        let ud = SendPtr(user_data);
        crate::log::set_sink(Some(std::sync::Arc::new(move |level, msg: &str| {
            let level = match level {
                crate::log::Level::Error => smolvlm_log_level::Error,
                crate::log::Level::Warn => smolvlm_log_level::Warn,
                crate::log::Level::Info => smolvlm_log_level::Info,
                crate::log::Level::Debug => smolvlm_log_level::Debug,
            };
            let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            let ud = &ud;
            // SAFETY: the caller's callback (safe from any thread, per smolvlm_log_set's
            // contract), given a valid NUL-terminated string and its user_data.
            unsafe { f(level, c.as_ptr(), ud.0) };
        })));
    })
}

/// The message of the last failed call on this thread ("" if none). Valid until the next
/// library call on the same thread; do not free.
#[no_mangle]
pub extern "C" fn smolvlm_last_error() -> *const c_char {
    guard(c"internal error".as_ptr(), || {
        LAST_ERROR.with(|e| e.borrow().as_ptr())
    })
}

/// A static English description of a status code; never NULL, do not free.
#[no_mangle]
pub extern "C" fn smolvlm_status_str(status: i32) -> *const c_char {
    guard(c"internal error".as_ptr(), || status_str(status).as_ptr())
}

fn status_str(status: i32) -> &'static CStr {
    match status {
        0 => c"ok",
        1 => c"a required argument is NULL",
        2 => c"invalid argument",
        3 => c"I/O error",
        4 => c"bad model directory",
        5 => c"bad image",
        6 => c"cancelled",
        7 => c"context busy in another thread",
        8 => c"out of memory",
        9 => c"internal error (panic)",
        _ => c"unknown status",
    }
}

/// The library version, "MAJOR.MINOR.PATCH" (the loaded library's; compare with the
/// SMOLVLM_VERSION_* macros of the header you compiled against). Static; do not free.
#[no_mangle]
pub extern "C" fn smolvlm_version() -> *const c_char {
    guard(c"".as_ptr(), || {
        static V: OnceLock<CString> = OnceLock::new();
        V.get_or_init(|| CString::new(env!("CARGO_PKG_VERSION")).unwrap_or_default())
            .as_ptr()
    })
}

/// Which kernels this build and CPU run (SIMD variants supported and chosen by default, BLAS,
/// CPUs). Static; do not free.
#[no_mangle]
pub extern "C" fn smolvlm_system_info() -> *const c_char {
    guard(c"".as_ptr(), || {
        static S: OnceLock<CString> = OnceLock::new();
        S.get_or_init(|| CString::new(crate::kernels::system_info()).unwrap_or_default())
            .as_ptr()
    })
}
