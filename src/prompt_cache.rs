//! What a session's KV cache holds, position by position, so a follow-up prompt computes only
//! from its first difference; and the connector outputs of recent image tiles, so a tile seen
//! again is not encoded again.
//!
//! A position's identity is its token id, or for an image token the pixels of its tile (a hash
//! of the resized 8-bit tile) and its row in that tile: an image position matches only where
//! the same image fills it. Keys never collide with token ids (ids are below 2³², image keys
//! have the top bit set).

use crate::kernels::Precision;
use crate::processor::RgbImage;
use std::hash::{Hash, Hasher};

/// Connector outputs kept for at most this many tiles (two split images of 13 tiles each fit):
/// 256M shapes 144 KiB a tile (64 × 576 f32), SmolVLM-Instruct 648 KiB (81 × 2048 f32).
pub const MAX_CACHED_TILES: usize = 32;

/// Identity of a tile before normalisation (8-bit RGB; the normalisation is the model's, so
/// equal tiles give equal encoder inputs).
pub fn tile_hash(tile: &RgbImage) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tile.width, tile.height).hash(&mut h);
    h.write(&tile.data);
    h.finish()
}

/// The key of each prompt position: the id, or (tile hash, row) for the r-th image token,
/// which takes row r of the image features (tile r / seq_len, row r % seq_len).
pub fn position_keys(
    ids: &[u32],
    image_token: Option<u32>,
    tiles: &[u64],
    seq_len: usize,
) -> Vec<u64> {
    let mut row = 0;
    ids.iter()
        .map(|&id| {
            if Some(id) != image_token || seq_len == 0 {
                return id as u64;
            }
            let tile = tiles.get(row / seq_len).copied().unwrap_or(0);
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (tile, row % seq_len).hash(&mut h);
            row += 1;
            h.finish() | 1 << 63
        })
        .collect()
}

/// Most images whose tile layout [`PromptCache`] remembers.
const MAX_IMAGE_LAYOUTS: usize = 8;

/// Identity of a source image as a request gives it, with the splitting asked for: equal keys
/// give equal tiles (the processor is the session model's).
pub fn image_key(img: &RgbImage, split: bool) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (img.width, img.height, split).hash(&mut h);
    h.write(&img.data);
    h.finish()
}

/// What preparing an image gave: its tile grid (rows, cols; 0 × 0 unsplit) and tile hashes.
#[derive(Clone)]
pub struct ImageLayout {
    pub rows: usize,
    pub cols: usize,
    pub tiles: Vec<u64>,
}

/// The session's record of its KV cache and recent tiles.
#[derive(Default)]
pub struct PromptCache {
    /// Keys of the positions the KV cache holds, in order (empty: nothing reusable).
    pub keys: Vec<u64>,
    /// The numeric mode those positions were computed in.
    pub precision: Option<Precision>,
    /// (tile hash, connector output [seq_len, hidden]), oldest first.
    tiles: Vec<(u64, Vec<f32>)>,
    /// (image key, layout) of recently prepared images, oldest first: an image whose tiles are
    /// all kept is not resized and cut again.
    layouts: Vec<(u64, ImageLayout)>,
}

impl PromptCache {
    /// Positions of `keys` that can be taken from the cache in `precision`: the common prefix,
    /// less at least one position (the last prompt position is always run, for its logits).
    pub fn reusable(&self, keys: &[u64], precision: Precision) -> usize {
        if self.precision != Some(precision) {
            return 0;
        }
        let common = self
            .keys
            .iter()
            .zip(keys)
            .take_while(|(a, b)| a == b)
            .count();
        common.min(keys.len().saturating_sub(1))
    }

    /// The cached connector output of the tile with this hash.
    pub fn tile(&self, hash: u64) -> Option<&[f32]> {
        self.tiles
            .iter()
            .rev()
            .find(|(h, _)| *h == hash)
            .map(|(_, f)| f.as_slice())
    }

    /// Keeps a tile's connector output, dropping the oldest beyond [`MAX_CACHED_TILES`].
    pub fn keep_tile(&mut self, hash: u64, feats: Vec<f32>) {
        self.tiles.retain(|(h, _)| *h != hash);
        self.tiles.push((hash, feats));
        let excess = self.tiles.len().saturating_sub(MAX_CACHED_TILES);
        self.tiles.drain(..excess);
    }

    /// The layout of the image with this key when every one of its tiles' features is kept.
    pub fn layout_if_kept(&self, key: u64) -> Option<&ImageLayout> {
        self.layouts
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, l)| l)
            .filter(|l| l.tiles.iter().all(|&h| self.tile(h).is_some()))
    }

    /// Remembers an image's layout, dropping the oldest beyond [`MAX_IMAGE_LAYOUTS`].
    pub fn keep_layout(&mut self, key: u64, layout: ImageLayout) {
        self.layouts.retain(|(k, _)| *k != key);
        self.layouts.push((key, layout));
        let excess = self.layouts.len().saturating_sub(MAX_IMAGE_LAYOUTS);
        self.layouts.drain(..excess);
    }

    /// Forgets everything (the KV cache's contents are then never reused).
    pub fn clear(&mut self) {
        *self = PromptCache::default();
    }

    /// Bytes of tile features held.
    pub fn bytes(&self) -> usize {
        self.tiles.iter().map(|(_, f)| f.capacity() * 4).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_positions_match_only_with_the_same_tile() {
        let tile =
            |v: u8| RgbImage::from_pixels(&[1, 2, v], 1, 1, 3, crate::PixelFormat::Rgb8).unwrap();
        let (img, t1, t2) = (7u32, tile_hash(&tile(3)), tile_hash(&tile(4)));
        assert_ne!(t1, t2);
        let ids = [1, img, img, img, img, 2];
        let a = position_keys(&ids, Some(img), &[t1, t2], 2);
        let b = position_keys(&ids, Some(img), &[t1, t1], 2);
        assert_eq!(a[..3], b[..3], "the first tile is the same");
        assert_ne!(a[3], b[3], "the second differs");
        assert_eq!((a[0], a[5]), (1, 2));
        assert!(a[1..5].iter().all(|k| k >> 63 == 1));
        let mut c = PromptCache {
            keys: a.clone(),
            precision: Some(Precision::F32),
            ..PromptCache::default()
        };
        assert_eq!(c.reusable(&b, Precision::F32), 3);
        assert_eq!(
            c.reusable(&a, Precision::F32),
            5,
            "the last position is always run"
        );
        assert_eq!(
            c.reusable(&a, Precision::Bf16),
            0,
            "another mode reuses nothing"
        );
        c.clear();
        assert_eq!(c.reusable(&a, Precision::F32), 0);
    }

    #[test]
    fn tile_features_are_bounded() {
        let mut c = PromptCache::default();
        for i in 0..MAX_CACHED_TILES as u64 + 5 {
            c.keep_tile(i, vec![i as f32; 4]);
        }
        assert!(c.tile(0).is_none() && c.tile(4).is_none());
        assert_eq!(c.tile(5), Some(&[5.0; 4][..]));
        assert_eq!(c.bytes(), MAX_CACHED_TILES * 16);
    }

    #[test]
    fn an_image_layout_is_used_only_while_all_its_tiles_are_kept() {
        let mut c = PromptCache::default();
        let layout = ImageLayout {
            rows: 1,
            cols: 2,
            tiles: vec![11, 12, 13],
        };
        c.keep_layout(5, layout);
        c.keep_tile(11, vec![0.0]);
        c.keep_tile(12, vec![0.0]);
        assert!(c.layout_if_kept(5).is_none(), "tile 13 is not kept");
        c.keep_tile(13, vec![0.0]);
        let l = c.layout_if_kept(5).expect("every tile kept");
        assert_eq!((l.rows, l.cols, l.tiles.len()), (1, 2, 3));
        assert!(c.layout_if_kept(6).is_none(), "another image");
        for h in 100..100 + MAX_CACHED_TILES as u64 {
            c.keep_tile(h, vec![0.0]);
        }
        assert!(c.layout_if_kept(5).is_none(), "its tiles were evicted");
    }
}
