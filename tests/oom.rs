//! Out of memory is an error, not an abort: with the address space limited (setrlimit), a
//! request whose KV cache cannot fit fails with ErrorKind::Oom (SMOLVLM_STATUS_OOM in C), and
//! the session works again once memory is there. Its own binary: the limit is process-wide.

mod common;
use common::*;
use smolvlm::{ErrorKind, Model, Request, Session};
use std::sync::Arc;

fn address_space_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().next().unwrap().parse::<u64>().unwrap() * 4096
}

#[test]
fn a_context_that_cannot_fit_is_an_oom_error() {
    // The tiny model with room for 10^7 positions: a 2^20-token budget needs a 256 MiB KV cache.
    let dir = copy_model("tiny-256m", "oom");
    let mut cfg = read_json(&dir.join("config.json"));
    cfg["text_config"]["max_position_embeddings"] = 10_000_000.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut s = Session::new(Arc::new(Model::load(&dir).unwrap()));
    s.set_threads(2).unwrap();
    let mut small = Request::simple("Tell me a story.", None, vec![]);
    small.max_tokens = 4;
    small.precision = smolvlm::Precision::F32;
    let want = s.generate(&small, Default::default()).unwrap().tokens;

    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and pointer to an owned struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) }, 0);
    let cap = address_space_bytes() + (64 << 20);
    let limited = libc::rlimit {
        rlim_cur: cap,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limited) }, 0);
    let mut big = small.clone();
    big.max_tokens = smolvlm::MAX_TOKENS_LIMIT;
    // Should the cache fit after all, stop after a few tokens instead of generating 2^20.
    let steps = std::sync::atomic::AtomicUsize::new(0);
    let give_up = || steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 10_000;
    let hooks = smolvlm::Hooks {
        on_token: None,
        cancel: Some(&give_up),
    };
    let r = s.generate(&big, hooks);
    // SAFETY: as above; restoring the soft limit the process had.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) }, 0);
    let e = r.expect_err("a 256 MiB KV cache fitted in 64 MiB of address space");
    assert_eq!(e.kind, ErrorKind::Oom, "{e}");
    assert!(e.message.contains("KV cache"), "{e}");

    // With memory back, the same session answers as before.
    assert_eq!(s.generate(&small, Default::default()).unwrap().tokens, want);
}
