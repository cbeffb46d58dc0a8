//! A session's reusable state as bytes, so an app can persist a conversation: the keys of the
//! positions its KV cache holds, their numeric mode and the cache itself. Restoring into a
//! session on the same checkpoint and then continuing gives what continuing in memory gives.
//!
//! Layout (little-endian): magic `SMOLVLMS`, version u32, model fingerprint u64, precision u8
//! (1 f32, 2 bf16), layers u32, floats per position u32, positions u64, then a u64 key per
//! position, then every layer's keys and every layer's values as f32. Kept tile features are not
//! saved (a restored session encodes an image again only if a changed prompt needs it).

use super::Session;
use crate::error::{Error, Result};
use crate::kernels::Precision;

const MAGIC: &[u8; 8] = b"SMOLVLMS";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 1 + 4 + 4 + 8;

fn take<const N: usize>(data: &[u8], at: &mut usize) -> [u8; N] {
    let out: [u8; N] = data[*at..*at + N].try_into().expect("length checked");
    *at += N;
    out
}

impl Session {
    /// The state a later [`Session::load_state`] restores (empty of positions when nothing is
    /// reusable, e.g. before the first generate).
    pub fn save_state(&self) -> Vec<u8> {
        let pc = &self.prompt_cache;
        let len = if pc.precision.is_some() {
            pc.keys.len().min(self.cache.len)
        } else {
            0
        };
        let (layers, width) = self.cache.shape();
        let mut out = Vec::with_capacity(HEADER + len * 8 + 2 * layers * len * width * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.model.fingerprint().to_le_bytes());
        out.push(match pc.precision {
            Some(Precision::Bf16) => 2,
            Some(Precision::Int8) => 3,
            _ => 1,
        });
        out.extend_from_slice(&(layers as u32).to_le_bytes());
        out.extend_from_slice(&(width as u32).to_le_bytes());
        out.extend_from_slice(&(len as u64).to_le_bytes());
        for k in &pc.keys[..len] {
            out.extend_from_slice(&k.to_le_bytes());
        }
        self.cache.write_to(len, &mut out);
        out
    }

    /// Restores a state from [`Session::save_state`]. Checks everything before changing
    /// anything: the format and version, that it was saved on this checkpoint (configuration and
    /// weights), the cache's shape and the exact length; on error the session is unchanged.
    pub fn load_state(&mut self, data: &[u8]) -> Result<()> {
        let bad = |why: String| Error::invalid(format!("session state: {why}"));
        if data.len() < HEADER || &data[..8] != MAGIC {
            return Err(bad("not a smolvlm session state".into()));
        }
        let mut at = 8;
        let version = u32::from_le_bytes(take(data, &mut at));
        if version != VERSION {
            return Err(bad(format!(
                "version {version}; this library reads {VERSION}"
            )));
        }
        let fp = u64::from_le_bytes(take(data, &mut at));
        if fp != self.model.fingerprint() {
            return Err(bad(format!(
                "saved with another model than {} (configuration or weights differ)",
                self.model.dir.display()
            )));
        }
        let precision = match take::<1>(data, &mut at)[0] {
            1 => Precision::F32,
            2 => Precision::Bf16,
            3 => Precision::Int8,
            p => return Err(bad(format!("unknown precision {p}"))),
        };
        let layers = u32::from_le_bytes(take(data, &mut at)) as usize;
        let width = u32::from_le_bytes(take(data, &mut at)) as usize;
        let len = u64::from_le_bytes(take(data, &mut at));
        if (layers, width) != self.cache.shape() {
            return Err(bad(format!(
                "a cache of {layers} layers × {width}, this model's is {:?}",
                self.cache.shape()
            )));
        }
        let max = self.model.config.text.max_position_embeddings as u64;
        if len >= max {
            return Err(bad(format!(
                "{len} positions; the model's context is {max}"
            )));
        }
        let len = len as usize;
        let want = HEADER + len * 8 + 2 * layers * len * width * 4;
        if data.len() != want {
            return Err(bad(format!("{} bytes, expected {want}", data.len())));
        }
        let keys: Vec<u64> = (0..len)
            .map(|_| u64::from_le_bytes(take(data, &mut at)))
            .collect();
        self.prompt_cache.clear();
        self.cache.set_bf16(precision == Precision::Bf16);
        self.cache.read_from(len, &data[at..])?;
        self.prompt_cache.keys = keys;
        self.prompt_cache.precision = Some(precision);
        Ok(())
    }
}
