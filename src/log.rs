//! Library diagnostics go to one replaceable sink; nothing is printed by default.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(dead_code)] // the C API's levels; the library emits Info and Debug so far
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Without a sink, messages up to this level go to stderr: 0 none (the default), else
/// `Level as u8 + 1`. Only the original engine's verbosity switch turns it on.
static STDERR_UP_TO: AtomicU8 = AtomicU8::new(0);

/// Sets the stderr fallback (None: off).
pub fn set_stderr_fallback(up_to: Option<Level>) {
    STDERR_UP_TO.store(up_to.map_or(0, |l| l as u8 + 1), Ordering::Relaxed);
}

/// Routes every later message to `sink` (None: silence).
pub fn set_sink(sink: Option<Sink>) {
    match SINK.write() {
        Ok(mut s) => *s = sink,
        Err(poisoned) => *poisoned.into_inner() = sink,
    }
}

/// Formats and delivers a message only when a sink is installed.
pub fn emit(level: Level, msg: impl FnOnce() -> String) {
    let sink = match SINK.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    if let Some(sink) = sink {
        sink(level, &msg());
    } else if (level as u8) < STDERR_UP_TO.load(Ordering::Relaxed) {
        eprintln!("smolvlm: {}", msg());
    }
}
