//! What the CLI prints for a generation: the streamed reply, the `--json` object and the
//! stderr summary lines of the original engine.

use super::Args;
use serde_json::{json, Value};
use smolvlm::{Hooks, Output, Request, Session, StopReason};
use std::io::Write;

/// Runs a generation, streaming its pieces to stdout when `stream`.
pub(crate) struct Streamer {
    stream: bool,
}

impl Streamer {
    pub(crate) fn new(stream: bool) -> Streamer {
        Streamer { stream }
    }

    pub(crate) fn generate(&self, session: &mut Session, req: &Request) -> Result<Output, String> {
        let mut stdout = std::io::stdout();
        let mut print = |piece: &str, _id: u32| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
            true
        };
        let hooks = Hooks {
            on_token: if self.stream { Some(&mut print) } else { None },
            cancel: None,
        };
        session.generate(req, hooks).map_err(|e| e.to_string())
    }
}

/// The `--json` object of one generation.
pub(crate) fn json_of(session: &Session, out: &Output) -> Value {
    let s = &out.stats;
    let stop = match out.stop {
        StopReason::Eos => "eos",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ContextFull => "context_full",
        StopReason::Callback => "callback",
    };
    json!({
        "prompt_tokens": out.prompt_tokens,
        "tokens": out.tokens,
        "text": out.text,
        "stats": {
            "load_ms": session.model().load_ms,
            "tiles": s.tiles,
            "encode_ms": s.encode_ms,
            "prefill_tokens": s.prefill_tokens,
            "reused_tokens": s.reused_tokens,
            "prefill_ms": s.prefill_ms,
            "decode_tokens": s.decode_tokens,
            "decode_ms": s.decode_ms,
            "total_ms": s.total_ms,
            "threads": s.threads,
            "precision": s.precision.name(),
            "isa": session.model().isa().name(),
            "quantized": session.model().quantization().map(|q| q.name()),
            "stop": stop,
        }
    })
}

/// Prints a finished generation: the JSON object, or the text (a newline after a streamed
/// reply), then the stderr summary at the CLI's verbosity.
pub(crate) fn result(a: &Args, session: &Session, out: &Output) {
    let verbose = a.verbosity;
    let s = &out.stats;
    if a.json {
        println!("{}", json_of(session, out));
    } else if verbose > 0 {
        println!();
    } else {
        println!("{}", out.text);
    }
    if verbose >= 2 {
        eprintln!(
            "  tiles: {}, prompt: {} tokens ({} reused), prefill {:.0} ms, decode {} tokens {:.0} ms",
            s.tiles,
            s.prefill_tokens + s.reused_tokens,
            s.reused_tokens,
            s.prefill_ms,
            s.decode_tokens,
            s.decode_ms
        );
    }
    if verbose >= 1 {
        let tps = if s.total_ms > 0.0 {
            1000.0 * s.decode_tokens as f64 / s.total_ms
        } else {
            0.0
        };
        eprintln!(
            "Inference: {:.0} ms, {} tokens ({:.2} tok/s, encoding: {:.0}ms, decoding: {:.0}ms)",
            s.total_ms,
            s.decode_tokens,
            tps,
            s.encode_ms,
            s.prefill_ms + s.decode_ms
        );
    }
}
