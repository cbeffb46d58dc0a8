//! Activation buffers sized by the input (prompt positions, image tiles) grow fallibly: running
//! out of memory is an Oom error the caller sees, never an abort of the host process.

use crate::error::{Error, ErrorKind, Result};

/// `v` holding exactly `n` values (contents are overwritten before they are read); `what`
/// names the buffer in the error.
pub(crate) fn fit<'a>(v: &'a mut Vec<f32>, n: usize, what: &str) -> Result<&'a mut Vec<f32>> {
    if n > v.len() {
        v.try_reserve_exact(n - v.len()).map_err(|_| {
            Error::new(
                ErrorKind::Oom,
                format!("cannot allocate {} MiB for {what}", (n as u64 * 4) >> 20),
            )
        })?;
    }
    v.resize(n, 0.0);
    Ok(v)
}
