//! One error type for the whole crate; its kind maps 1:1 onto the C status codes.

use std::fmt;
use std::path::Path;

/// What went wrong, in the categories the C API reports as status codes.
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

/// An error: its kind and a message naming the file, value or argument at fault.
#[derive(Debug, Clone)]
pub struct Error {
    /// The category.
    pub kind: ErrorKind,
    /// What happened, for a person.
    pub message: String,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArg, message)
    }
    /// An unusable model directory.
    pub fn model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadModel, message)
    }
    /// An unusable image.
    pub fn image(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadImage, message)
    }
    /// The caller cancelled.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled by the caller")
    }
    /// A file that could not be read.
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
