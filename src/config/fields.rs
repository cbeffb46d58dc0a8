//! JSON reading for the config files: typed field access whose errors name file and key.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Largest configuration file read (config.json and friends, a chat template): real ones are a
/// few KiB to a few MiB (a tokenizer_config.json listing every added token).
pub(crate) const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads at most `limit` bytes of `path` as UTF-8; a larger file is an error (checked while
/// reading, so a file that grows meanwhile is caught too), never a huge allocation.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    let too_big = |n: u64| {
        Error::model(format!(
            "{}: {n} bytes is more than the {limit} bytes such a file may have",
            path.display()
        ))
    };
    if hint > limit {
        return Err(too_big(hint));
    }
    let mut bytes = Vec::with_capacity(hint as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::model(format!("{}: not UTF-8 text: {e}", path.display())))
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = read_bounded(path, MAX_CONFIG_BYTES)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::model(format!("{}: invalid JSON: {}", path.display(), e)))
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

pub(super) struct Fields<'a> {
    pub obj: &'a Value,
    pub file: &'a Path,
    pub section: &'a str,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }
    pub(super) fn err(&self, key: &str, what: &str) -> Error {
        let sec = if self.section.is_empty() {
            String::new()
        } else {
            format!("{}.", self.section)
        };
        Error::model(format!("{}: {}{} {}", self.file.display(), sec, key, what))
    }
    pub(super) fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    self.err(key, &format!("must be a non-negative integer, found {v}"))
                }),
            None => default.ok_or_else(|| self.err(key, "is missing")),
        }
    }
    pub(super) fn positive(&self, key: &str, default: Option<usize>) -> Result<usize> {
        let n = self.usize(key, default)?;
        if n == 0 {
            return Err(self.err(key, "must be > 0"));
        }
        Ok(n)
    }
    pub(super) fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.err(key, &format!("must be a number, found {v}"))),
            None => Ok(default),
        }
    }
    /// A number ≥ 0 (an epsilon: a negative one makes every norm NaN).
    pub(super) fn non_negative(&self, key: &str, default: f64) -> Result<f64> {
        let x = self.f64(key, default)?;
        if x < 0.0 {
            return Err(self.err(key, &format!("must be >= 0, found {x}")));
        }
        Ok(x)
    }
    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(key, &format!("must be true or false, found {v}"))),
            None => Ok(default),
        }
    }
    pub(super) fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| v.as_str())
    }
}

/// Token ids given as an int or a list of ints (`eos_token_id`); null or absent = none.
pub(super) fn ids(obj: &Value, key: &str, file: &Path, section: &str) -> Result<Vec<u32>> {
    let f = Fields { obj, file, section };
    let one = |x: &Value| {
        x.as_u64()
            .filter(|&n| n <= u32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| {
                f.err(
                    key,
                    &format!("must hold token ids (integers >= 0), found {x}"),
                )
            })
    };
    match f.get(key) {
        None => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(x) => one(x).map(|i| vec![i]),
    }
}
