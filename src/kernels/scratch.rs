//! Scratch memory owned by a session: one slot per worker thread of the session's pool, so
//! kernels reuse buffers without thread-locals, and everything is released with the session.

use std::sync::Mutex;

/// Grow-only buffers a kernel may use while it runs on one worker thread.
#[derive(Default)]
pub(crate) struct Slot {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    /// A packed weight panel.
    pub packed: Vec<u32>,
    /// Packed bf16 operands.
    pub b32: Vec<u32>,
    /// One head's keys and values widened from bf16.
    pub kv: Vec<f32>,
}

/// The slots of one session, and two buffers the thread that calls a kernel holds for the
/// whole call while its workers read them (packed or rounded activations).
#[derive(Default)]
pub(crate) struct Scratch {
    slots: Vec<Mutex<Slot>>,
    shared: [Mutex<Vec<u32>>; 3],
}

impl Scratch {
    /// Scratch for a pool of `threads` workers.
    pub(crate) fn new(threads: usize) -> Scratch {
        Scratch {
            slots: (0..threads.max(1)).map(|_| Mutex::default()).collect(),
            shared: Default::default(),
        }
    }

    /// Runs `f` with the calling worker's slot. A kernel never nests parallel work while it
    /// holds a slot; should a slot still be taken (or the thread not be a worker of the pool),
    /// `f` gets a fresh one instead of waiting.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> R {
        let slot = rayon::current_thread_index().and_then(|i| self.slots.get(i));
        if let Some(m) = slot {
            match m.try_lock() {
                Ok(mut g) => return f(&mut g),
                Err(std::sync::TryLockError::Poisoned(p)) => return f(&mut p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        f(&mut Slot::default())
    }

    /// Runs `f` with the first shared buffer (a fresh one if it is taken).
    pub(crate) fn with_shared<R>(&self, f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
        Self::hold(&self.shared[0], f)
    }

    /// Runs `f` with the third shared buffer (a fresh one if it is taken).
    pub(crate) fn with_third<R>(&self, f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
        Self::hold(&self.shared[2], f)
    }

    /// Runs `f` with the second shared buffer (a fresh one if it is taken).
    pub(crate) fn with_staging<R>(&self, f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
        Self::hold(&self.shared[1], f)
    }

    fn hold<R>(m: &Mutex<Vec<u32>>, f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
        match m.try_lock() {
            Ok(mut g) => f(&mut g),
            Err(std::sync::TryLockError::Poisoned(p)) => f(&mut p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => f(&mut Vec::new()),
        }
    }

    /// Bytes held by all slots and shared buffers.
    pub(crate) fn bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|m| {
                let g = m.lock().unwrap_or_else(|p| p.into_inner());
                (g.a.capacity() + g.b.capacity() + g.packed.capacity() + g.b32.capacity()) * 4
            })
            .sum::<usize>()
            + self
                .shared
                .iter()
                .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).capacity() * 4)
                .sum::<usize>()
    }
}

/// The first `n` elements of `v`, growing it (never shrinking) as needed.
pub(crate) fn take(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// The first `n` elements of `v`, growing it (never shrinking) as needed.
pub(crate) fn take_u32(v: &mut Vec<u32>, n: usize) -> &mut [u32] {
    if v.len() < n {
        v.resize(n, 0);
    }
    &mut v[..n]
}
