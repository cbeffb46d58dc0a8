//! The decoder's KV cache: per layer, keys and values of every position so far, [positions,
//! kv_heads·head_dim] each. In the f32 mode they are kept in f32; in the bf16 mode in bf16,
//! rounded as they are stored, as transformers' bf16 model keeps them (its k/v projections
//! output bf16): half the memory, and half the bytes a decode step reads from the cache.

use crate::config::TextConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::kernels::math::bf16_bits;
use crate::weights::View;
use half::bf16;

pub(crate) struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    kb: Vec<Vec<bf16>>,
    vb: Vec<Vec<bf16>>,
    bf16: bool,
    pub len: usize,
    width: usize,
}

impl KvCache {
    pub fn new(cfg: &TextConfig) -> KvCache {
        let layers = cfg.num_hidden_layers;
        KvCache {
            k: vec![Vec::new(); layers],
            v: vec![Vec::new(); layers],
            kb: vec![Vec::new(); layers],
            vb: vec![Vec::new(); layers],
            bf16: false,
            len: 0,
            width: cfg.num_key_value_heads * cfg.head_dim,
        }
    }

    /// (layers, values per position).
    pub fn shape(&self) -> (usize, usize) {
        (self.k.len(), self.width)
    }

    /// Keeps values in bf16 (true) or f32 from now on; a change empties the cache and frees
    /// the other mode's memory.
    pub fn set_bf16(&mut self, bf16: bool) {
        if bf16 != self.bf16 {
            for b in self.k.iter_mut().chain(self.v.iter_mut()) {
                *b = Vec::new();
            }
            for b in self.kb.iter_mut().chain(self.vb.iter_mut()) {
                *b = Vec::new();
            }
            self.bf16 = bf16;
            self.len = 0;
        }
    }

    /// Room for `positions` in total, reserved (failing cleanly when the memory is not there)
    /// but not touched: pages are written only as positions are stored.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        let need = positions * self.width;
        let oom = || {
            Error::new(
                ErrorKind::Oom,
                format!("cannot allocate the KV cache for {positions} positions"),
            )
        };
        if self.bf16 {
            for b in self.kb.iter_mut().chain(self.vb.iter_mut()) {
                b.try_reserve_exact(need.saturating_sub(b.len()))
                    .map_err(|_| oom())?;
            }
        } else {
            for b in self.k.iter_mut().chain(self.v.iter_mut()) {
                b.try_reserve_exact(need.saturating_sub(b.len()))
                    .map_err(|_| oom())?;
            }
        }
        Ok(())
    }

    /// Stores `k` and `v` ([rows, width] each) of layer `l` at positions pos0.. (within what
    /// [`KvCache::reserve`] made room for; the buffers never reallocate here).
    pub fn store(&mut self, l: usize, pos0: usize, k: &[f32], v: &[f32]) {
        let (at, end) = (pos0 * self.width, pos0 * self.width + k.len());
        assert_eq!(k.len(), v.len(), "KV cache: keys and values differ in size");
        if self.bf16 {
            for (buf, src) in [(&mut self.kb[l], k), (&mut self.vb[l], v)] {
                assert!(
                    end <= buf.capacity(),
                    "KV cache: store past the reservation"
                );
                if buf.len() < end {
                    buf.resize(end, bf16::ZERO);
                }
                for (d, s) in buf[at..end].iter_mut().zip(src) {
                    *d = bf16::from_bits(bf16_bits(*s) as u16);
                }
            }
        } else {
            for (buf, src) in [(&mut self.k[l], k), (&mut self.v[l], v)] {
                assert!(
                    end <= buf.capacity(),
                    "KV cache: store past the reservation"
                );
                if buf.len() < end {
                    buf.resize(end, 0.0);
                }
                buf[at..end].copy_from_slice(src);
            }
        }
    }

    /// Keys and values of layer `l`, positions 0..positions.
    pub fn layer(&self, l: usize, positions: usize) -> (View<'_>, View<'_>) {
        let n = positions * self.width;
        if self.bf16 {
            (View::BF16(&self.kb[l][..n]), View::BF16(&self.vb[l][..n]))
        } else {
            (View::F32(&self.k[l][..n]), View::F32(&self.v[l][..n]))
        }
    }

    /// Appends the first `len` (≤ the positions held) positions of every layer's keys, then
    /// every layer's values, as little-endian f32 (bf16 values widened exactly).
    pub fn write_to(&self, len: usize, out: &mut Vec<u8>) {
        assert!(
            len <= self.len,
            "KV cache holds {} positions, not {len}",
            self.len
        );
        let mut row = vec![0.0f32; self.width];
        for keys in [true, false] {
            for l in 0..self.k.len() {
                let (k, v) = self.layer(l, len);
                let view = if keys { k } else { v };
                for p in 0..len {
                    view.to_f32(p * self.width, &mut row);
                    for x in &row {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
        }
    }

    /// Holds `len` positions read from `data`, as [`KvCache::write_to`] wrote them (the caller
    /// checked its length and set the mode of the state's precision).
    pub fn read_from(&mut self, len: usize, data: &[u8]) -> Result<()> {
        let per = len * self.width;
        assert_eq!(
            data.len(),
            per * 4 * 2 * self.k.len(),
            "KV cache state size"
        );
        self.len = 0;
        self.reserve(len)?;
        let layers = self.k.len();
        let mut k = vec![0.0f32; per];
        let mut v = vec![0.0f32; per];
        for l in 0..layers {
            let read = |i: usize, dst: &mut [f32]| {
                let src = data[i * per * 4..(i + 1) * per * 4].chunks_exact(4);
                for (d, c) in dst.iter_mut().zip(src) {
                    *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            };
            read(l, &mut k);
            read(layers + l, &mut v);
            self.store(l, 0, &k, &v);
        }
        self.len = len;
        Ok(())
    }
}
