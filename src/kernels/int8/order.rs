//! The piece order of Q4_K/Q5_K super-blocks for the one-row SIMD kernels. A super-block's
//! 128 code bytes, read as two 64-byte halves, split into low and high nibbles and interleaved
//! by 8-byte words, give four 64-code pieces in which 4-code lane L always belongs to the same
//! sub-block: 4·(piece / 2) + 2·(L / 8) + (L mod 4) / 2. So one scale vector per half serves
//! its two pieces, with no per-piece shuffle of the scales. The activation codes are copied
//! into that order once per product, which costs far less than shuffling every weight row.

/// Elements per super-block.
const SB: usize = 256;

/// The natural element (0..256) of a super-block held at piece position `p` (0..256).
pub(crate) const fn natural(p: usize) -> usize {
    let (piece, at) = (p / 64, p % 64);
    let (z, odd) = (piece / 2, piece % 2);
    let (t, nibble, i) = (at / 16, (at % 16) / 8, at % 8);
    64 * (2 * z + t / 2) + 32 * nibble + 16 * (t % 2) + 8 * odd + i
}

/// The sub-block (0..8) of lane `lane` (0..16) of piece `piece` (0..4).
pub(crate) const fn sub_block(piece: usize, lane: usize) -> usize {
    4 * (piece / 2) + 2 * (lane / 8) + (lane % 4) / 2
}

const TABLE: [u8; SB] = {
    let mut t = [0u8; SB];
    let mut p = 0;
    while p < SB {
        t[p] = natural(p) as u8;
        p += 1;
    }
    t
};

/// `out` = the rows of `q` (each a whole number of super-blocks) in piece order.
pub(crate) fn to_pieces(q: &[i8], out: &mut [i8]) {
    assert_eq!(q.len(), out.len());
    assert!(q.len().is_multiple_of(SB));
    for (o, s) in out.chunks_exact_mut(SB).zip(q.chunks_exact(SB)) {
        for (v, &from) in o.iter_mut().zip(&TABLE) {
            *v = s[from as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_piece_order_is_a_permutation_whose_lanes_keep_one_sub_block() {
        let mut seen = [false; SB];
        for p in 0..SB {
            let e = natural(p);
            assert!(!seen[e], "element {e} twice");
            seen[e] = true;
            assert_eq!(e / 32, sub_block(p / 64, (p % 64) / 4), "position {p}");
        }
        // The byte layout it stands for: code byte b of the 128 (b / 32 the nibble pair) holds
        // elements 64·(b / 32) + b mod 32 (low nibble) and + 32 (high nibble); a half's word
        // g of eight bytes goes, low then high nibbles, to piece 2·half + g mod 2, lane g / 2.
        for b in 0..128 {
            let (half, g, i) = (b / 64, (b % 64) / 8, b % 8);
            for nibble in 0..2 {
                let p = 64 * (2 * half + g % 2) + 16 * (g / 2) + 8 * nibble + i;
                assert_eq!(natural(p), 64 * (b / 32) + 32 * nibble + b % 32, "byte {b}");
            }
        }
    }
}
