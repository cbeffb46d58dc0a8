//! One error type for the whole crate; its kind maps 1:1 onto the C status codes.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A caller-supplied argument is invalid (empty prompt, absurd max_tokens, ...).
    InvalidArg,
    /// A file could not be read.
    Io,
    /// The model directory is unusable (bad JSON, unknown architecture, missing/misshaped tensor...).
    BadModel,
    /// An image could not be decoded or is unusable.
    BadImage,
    /// The caller asked to stop.
    Cancelled,
    /// The session is already in use by another thread.
    Busy,
    /// An allocation of the stated size failed.
    Oom,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArg, message)
    }
    pub fn model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadModel, message)
    }
    pub fn image(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadImage, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled by the caller")
    }
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{}: {}", path.display(), err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
