//! The C boundary, checked from the source: every exported function lives in src/ffi, runs its
//! whole body inside the one panic boundary (`guard`), and is declared in include/smolvlm.h —
//! and the header declares nothing else. A new export without the guard cannot merge.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (file, function name, first statement of its body) of every `#[no_mangle]` function.
fn exports() -> Vec<(PathBuf, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim() != "#[no_mangle]" {
                continue;
            }
            let sig = lines[i + 1].trim();
            assert!(
                sig.starts_with("pub extern \"C\" fn ")
                    || sig.starts_with("pub unsafe extern \"C\" fn "),
                "{}:{}: #[no_mangle] on something other than a pub extern \"C\" fn: {sig}",
                f.display(),
                i + 2
            );
            let name = sig.split(" fn ").nth(1).unwrap();
            let name = name[..name.find('(').unwrap()].to_string();
            // The body starts after the line that ends the signature with `{`.
            let open = (i + 1..lines.len())
                .find(|&j| lines[j].trim_end().ends_with('{'))
                .unwrap();
            let first = lines[open + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("//"))
                .unwrap_or("")
                .to_string();
            found.push((f.clone(), name, first));
        }
    }
    found
}

#[test]
fn every_export_is_in_ffi_and_guarded() {
    let ex = exports();
    assert!(ex.len() >= 20, "found only {} exports", ex.len());
    let mut bad = Vec::new();
    for (file, name, first) in &ex {
        if !file.components().any(|c| c.as_os_str() == "ffi") {
            bad.push(format!(
                "{name} is exported outside src/ffi ({})",
                file.display()
            ));
        }
        if !first.starts_with("guard(") {
            bad.push(format!(
                "{name} ({}) does not start with guard(: `{first}`",
                file.display()
            ));
        }
    }
    assert!(bad.is_empty(), "unguarded exports:\n{}", bad.join("\n"));
}

#[test]
fn exports_equal_the_header_declarations() {
    let ours: BTreeSet<String> = exports().into_iter().map(|e| e.1).collect();
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/smolvlm.h"))
            .unwrap();
    // Function declarations: `smolvlm_name(` (a callback typedef's name is followed by `)`).
    let mut declared = BTreeSet::new();
    for (i, _) in header.match_indices("smolvlm_") {
        let rest = &header[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with('(') {
            declared.insert(rest[..end].to_string());
        }
    }
    assert_eq!(
        ours, declared,
        "exports (left) vs header declarations (right)"
    );
}
