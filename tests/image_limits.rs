//! Decompression bombs: a file whose header announces too many pixels is refused from the header,
//! before anything is decoded or allocated (Pillow's limit by default; configurable). One test in
//! its own binary, since the limit is process-wide.

mod common;
use common::*;
use std::time::Instant;

fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, t: &[u8], d: &[u8]) {
        out.extend((d.len() as u32).to_be_bytes());
        out.extend(t);
        out.extend(d);
        out.extend(crc32(&[t, d].concat()).to_be_bytes());
    }
    fn crc32(b: &[u8]) -> u32 {
        let mut c = !0u32;
        for &x in b {
            c ^= x as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let ihdr = [&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib of a few zero bytes: far too little data for the announced size.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn gif_header(w: u16, h: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend(w.to_le_bytes());
    g.extend(h.to_le_bytes());
    g.extend([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 2-colour global table (black, black)
    g.extend([0x2C, 0, 0, 0, 0]);
    g.extend(w.to_le_bytes());
    g.extend(h.to_le_bytes());
    g.extend([0, 2, 2, 0x4C, 0x01, 0, 0x3B]);
    g
}

fn bmp_header(w: i32, h: i32) -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend(1000u32.to_le_bytes());
    b.extend([0, 0, 0, 0]);
    b.extend(54u32.to_le_bytes());
    b.extend(40u32.to_le_bytes());
    b.extend(w.to_le_bytes());
    b.extend(h.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(24u16.to_le_bytes());
    b.extend([0u8; 24]);
    b
}

/// wide.jpg with its frame header (SOF0/SOF2) rewritten to announce w × h.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut j = std::fs::read(fixtures().join("images/wide.jpg")).unwrap();
    let sof = (0..j.len() - 9)
        .find(|&i| j[i] == 0xFF && (j[i + 1] == 0xC0 || j[i + 1] == 0xC2))
        .unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[test]
fn bombs_are_refused_from_the_header_and_the_limit_is_configurable() {
    assert_eq!(smolvlm::max_image_pixels(), 178_956_970);
    let bombs: [(&str, Vec<u8>, &str); 6] = [
        (
            "bomb.png",
            png_header(30_000, 30_000),
            "exceeds the limit of 178956970 pixels",
        ),
        ("bomb.gif", gif_header(20_000, 20_000), "exceeds the limit"),
        ("bomb.bmp", bmp_header(25_000, 25_000), "exceeds the limit"),
        ("bomb.jpg", jpeg_header(30_000, 30_000), "exceeds the limit"),
        ("long.png", png_header(40_000, 2), "max 32768 per side"),
        ("empty.png", png_header(0, 10), "cannot decode image"),
    ];
    for (name, bytes, want) in &bombs {
        let t = Instant::now();
        let e = smolvlm::RgbImage::decode(bytes, name).unwrap_err();
        assert!(e.to_string().contains(want), "{name}: {e}");
        assert!(
            e.to_string().contains(name),
            "{name}: the error does not name the file: {e}"
        );
        assert!(
            t.elapsed().as_millis() < 500,
            "{name}: {:?} to refuse",
            t.elapsed()
        );
    }
    // Below the limit such a header is decoded and fails on its missing data, not on its size.
    let e = smolvlm::RgbImage::decode(&png_header(300, 200), "short.png").unwrap_err();
    assert!(!e.to_string().contains("limit"), "{e}");

    let square = fixtures().join("images/square.png");
    assert_eq!(smolvlm::set_max_image_pixels(1000), 178_956_970);
    let e = smolvlm::RgbImage::open(&square).unwrap_err();
    assert!(
        e.to_string()
            .contains("96x96 (9216 pixels) exceeds the limit of 1000"),
        "{e}"
    );
    let e = smolvlm::RgbImage::open(&fixtures().join("images/wide.jpg")).unwrap_err();
    assert!(e.to_string().contains("exceeds the limit of 1000"), "{e}");
    assert_eq!(smolvlm::set_max_image_pixels(9216), 1000);
    smolvlm::RgbImage::open(&square).unwrap();
    assert_eq!(smolvlm::set_max_image_pixels(0), 9216);
    assert_eq!(
        smolvlm::max_image_pixels(),
        smolvlm::DEFAULT_MAX_IMAGE_PIXELS
    );
    smolvlm::RgbImage::open(&square).unwrap();
}
