//! The C boundary, checked from the source: every exported function lives in src/ffi, runs its
//! whole body inside the one panic boundary (`guard`), and is declared in include/smolvlm.h or
//! (the original engine's controls) include/smol-vision/common_kernels.h — and the headers
//! declare nothing else. A new export without the guard cannot merge.

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

/// (file, function name, first statement of its body) of every `#[no_mangle]` function, and
/// (file, name) of every `#[no_mangle]` static.
fn exports() -> Vec<(PathBuf, String, String)> {
    exports_and_statics().0
}

type Exports = (Vec<(PathBuf, String, String)>, Vec<(PathBuf, String)>);

fn exports_and_statics() -> Exports {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    let mut statics = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim() != "#[no_mangle]" {
                continue;
            }
            let sig = lines[i + 1].trim();
            if let Some(rest) = sig.strip_prefix("pub static ") {
                statics.push((f.clone(), rest[..rest.find(':').unwrap()].to_string()));
                continue;
            }
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
    (found, statics)
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

/// Names `prefix…` in `text` followed by one of `next`.
fn declared(text: &str, prefix: &str, next: &[char]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with(next) {
            out.insert(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn compat_exports_equal_the_compat_header() {
    let (fns, statics) = exports_and_statics();
    for (file, name) in &statics {
        assert!(
            file.ends_with("src/ffi/compat.rs"),
            "{name}: exported statics belong to src/ffi/compat.rs, not {}",
            file.display()
        );
    }
    let ours: BTreeSet<String> = fns
        .into_iter()
        .map(|e| e.1)
        .chain(statics.into_iter().map(|s| s.1))
        .filter(|n| !n.starts_with("smolvlm_"))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/smol-vision");
    let header = std::fs::read_to_string(root.join("common_kernels.h")).unwrap();
    let decls = declared(&header, "qwen_", &['(', ';']);
    assert_eq!(ours, decls, "exports (left) vs common_kernels.h (right)");
    assert_eq!(ours.len(), 3);
    // The compat smolvlm.h declares no function of its own (smolvlm.h has them all).
    let compat = std::fs::read_to_string(root.join("smolvlm.h")).unwrap();
    let code: String = compat
        .split("/*")
        .enumerate()
        .map(|(i, part)| match i {
            0 => part,
            _ => part.split_once("*/").map_or("", |(_, after)| after),
        })
        .collect();
    assert!(code.contains("perf_total_ms"));
    assert!(declared(&code, "smolvlm_", &['(']).is_empty());
}

#[test]
fn exports_equal_the_header_declarations() {
    let ours: BTreeSet<String> = exports()
        .into_iter()
        .map(|e| e.1)
        .filter(|n| !n.starts_with("qwen_"))
        .collect();
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/smolvlm.h"))
            .unwrap();
    // Function declarations: `smolvlm_name(` (a callback typedef's name is followed by `)`).
    let declared = declared(&header, "smolvlm_", &['(']);
    assert!(!header.contains("qwen_verbose;") && !header.contains("qwen_set_threads("));
    assert_eq!(
        ours, declared,
        "exports (left) vs header declarations (right)"
    );
}
