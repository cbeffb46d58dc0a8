//! `--chat`: a conversation on stdin, one user message per line. The conversation is kept as
//! messages, the assistant's replies as text (trimmed, as a caller sends them back in
//! `--messages`), and each turn is an ordinary request on the same session, whose prompt cache
//! makes a follow-up cost only its new tokens.

use super::report::{result, Streamer};
use super::{open_images, settings, Args};
use smolvlm::{Message, Part, Request, Session};
use std::io::{BufRead, IsTerminal, Write};

/// Runs the conversation; a turn that fails is reported and the conversation goes on (the
/// user may /reset), but the exit status then says so.
pub(crate) fn run(a: &Args, session: &mut Session) -> Result<(), String> {
    let images = open_images(a)?;
    let mut messages: Vec<Message> = Vec::new();
    let mut failed = 0;
    // A person at a terminal gets a prompt on stderr; piped input and stdout stay clean.
    let interactive = std::io::stdin().is_terminal() && a.verbosity > 0;
    let ask = || {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
    };
    ask();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let text = line.trim();
        match text {
            "" => {
                ask();
                continue;
            }
            "/exit" => break,
            "/reset" => {
                messages.clear();
                session.reset_prompt_cache();
                ask();
                continue;
            }
            _ => {}
        }
        let first = messages.is_empty();
        if first {
            if let Some(s) = &a.system_prompt {
                messages.push(Message::new("system", vec![Part::Text(s.clone())]));
            }
        }
        let mut parts: Vec<Part> = if first {
            images.iter().map(|_| Part::Image).collect()
        } else {
            Vec::new()
        };
        parts.push(Part::Text(text.to_string()));
        messages.push(Message::new("user", parts));
        // Every turn's request holds the whole conversation, so the first turn's images too.
        let mut req = Request::simple("", None, images.clone());
        req.messages = messages.clone();
        settings(a, &mut req);
        let streamer = Streamer::new(!a.json && a.verbosity > 0);
        match streamer.generate(session, &req) {
            Ok(out) => {
                result(a, session, &out);
                messages.push(Message::new(
                    "assistant",
                    vec![Part::Text(out.text.trim().to_string())],
                ));
            }
            Err(e) => {
                // The turn is not part of the conversation; the user may rephrase or /reset.
                messages.pop();
                if first {
                    messages.clear();
                }
                eprintln!("smolvlm: error: {e}");
                failed += 1;
            }
        }
        ask();
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} turn(s) failed")),
    }
}
