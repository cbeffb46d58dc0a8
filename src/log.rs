//! Library diagnostics go to one replaceable sink; nothing is printed by default.

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
    }
}
