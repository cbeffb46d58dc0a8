//! Safetensors files (one, or shards named by an index), mmap'd; tensors are views into the map.
//!
//! bf16/f16/f32 data is used where it lies in the file. Only a tensor whose offset is not
//! aligned for its element type (legal in safetensors, rare in practice) is copied out.

use super::{DType, Data, Tensor};
use crate::error::{Error, Result};
use ::safetensors::{Dtype, SafeTensors};
use memmap2::Mmap;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct Entry {
    file: usize,
    /// `Err` holds the file's dtype when it is one this crate does not read.
    dtype: std::result::Result<DType, Dtype>,
    shape: Vec<usize>,
    start: usize,
    len: usize,
}

/// All tensors of a model directory, by name.
pub(crate) struct SafetensorsStore {
    files: Vec<(PathBuf, Arc<Mmap>)>,
    entries: HashMap<String, Entry>,
}

fn dtype_of(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// The safetensors files of a model directory: the index's shards, or `model.safetensors`,
/// or every `*.safetensors` file.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v = crate::config::read_json(&index)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::model(format!("{}: has no \"weight_map\" object", index.display()))
            })?;
        let mut names = BTreeSet::new();
        for (tensor, file) in map {
            let bad = |what: &str| {
                Error::model(format!(
                    "{}: weight_map[\"{tensor}\"] {what}, found {file}",
                    index.display()
                ))
            };
            let name = file.as_str().ok_or_else(|| bad("must be a file name"))?;
            // Shards live in the model directory: no "..", no absolute path, no subdirectory.
            let mut parts = Path::new(name).components();
            let plain = matches!(parts.next(), Some(std::path::Component::Normal(_)))
                && parts.next().is_none()
                && !name.contains('\\');
            if !plain {
                return Err(bad("must name a file in the model directory"));
            }
            names.insert(name);
        }
        if names.is_empty() {
            return Err(Error::model(format!(
                "{}: weight_map is empty",
                index.display()
            )));
        }
        return Ok(names.into_iter().map(|n| dir.join(n)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::model(format!(
            "{}: no model.safetensors (nor an index or any *.safetensors file)",
            dir.display()
        )));
    }
    Ok(found)
}

/// The tensors of one safetensors file held in `bytes` (offsets into `bytes`), validated by the
/// safetensors crate: header length and JSON, offsets within the data, no overlaps, shape ×
/// dtype = byte length.
pub(crate) fn entries_of(bytes: &[u8], path: &Path) -> Result<Vec<(String, Entry)>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::model(format!(
            "{}: not a valid safetensors file: {}",
            path.display(),
            e
        ))
    })?;
    let base = bytes.as_ptr() as usize;
    Ok(st
        .iter()
        .map(|(name, view)| {
            let data = view.data();
            let entry = Entry {
                file: 0,
                // An unsupported dtype is tolerated until something asks for that tensor.
                dtype: dtype_of(view.dtype()).ok_or(view.dtype()),
                shape: view.shape().to_vec(),
                start: data.as_ptr() as usize - base,
                len: data.len(),
            };
            (name.to_string(), entry)
        })
        .collect())
}

impl SafetensorsStore {
    pub fn open(dir: &Path) -> Result<SafetensorsStore> {
        let mut files: Vec<(PathBuf, Arc<Mmap>)> = Vec::new();
        let mut entries = HashMap::new();
        for path in weight_files(dir)? {
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: the map is read-only and private to this process; a file truncated or
            // rewritten by another process while mapped is outside what any mmap loader can guard.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
            let fi = files.len();
            for (name, mut entry) in entries_of(&map, &path)? {
                if let Some(other) = entries.get(&name).map(|e: &Entry| e.file) {
                    return Err(Error::model(format!(
                        "tensor {name} is in both {} and {}",
                        files[other].0.display(),
                        path.display()
                    )));
                }
                entry.file = fi;
                entries.insert(name, entry);
            }
            files.push((path, Arc::new(map)));
        }
        Ok(SafetensorsStore { files, entries })
    }

    /// A store over one safetensors file held in memory (copied into an anonymous map), with
    /// the checks `open` makes; for the fuzz targets.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<SafetensorsStore> {
        let path = PathBuf::from("fuzz.safetensors");
        let mut anon =
            memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(|e| Error::io(&path, e))?;
        anon[..bytes.len()].copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(|e| Error::io(&path, e))?;
        let entries = entries_of(&map[..bytes.len()], &path)?
            .into_iter()
            .collect();
        Ok(SafetensorsStore {
            files: vec![(path, Arc::new(map))],
            entries,
        })
    }

    /// Every tensor's name and shape.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.entries
            .iter()
            .map(|(n, e)| (n.clone(), e.shape.clone()))
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn file_names(&self) -> String {
        self.files
            .iter()
            .map(|(p, _)| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The tensor `name`, checked against `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| {
            Error::model(format!(
                "missing tensor {name} (looked in {})",
                self.file_names()
            ))
        })?;
        let (path, map) = &self.files[e.file];
        let dtype = e.dtype.map_err(|d| {
            Error::model(format!(
                "{}: tensor {name} has dtype {d:?}; supported: F32, F16, BF16",
                path.display()
            ))
        })?;
        if e.shape != shape {
            return Err(Error::model(format!(
                "{}: tensor {name} has shape {:?}, expected {:?} from config.json",
                path.display(),
                e.shape,
                shape
            )));
        }
        let align = match dtype {
            DType::F32 => 4,
            _ => 2,
        };
        let bytes = &map[e.start..e.start + e.len];
        let data = if (bytes.as_ptr() as usize).is_multiple_of(align) {
            Data::Mapped {
                map: map.clone(),
                start: e.start,
                len: e.len,
            }
        } else {
            Data::copied(dtype, bytes)
        };
        Ok(Tensor {
            name: name.to_string(),
            shape: e.shape.clone(),
            dtype,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::View;

    #[test]
    fn bf16_and_f16_weights_are_read_in_place() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-256m");
        let store = SafetensorsStore::open(&dir).unwrap();
        let t = store
            .get("model.text_model.embed_tokens.weight", &[49280, 32])
            .unwrap();
        assert_eq!(t.dtype, DType::BF16);
        assert!(t.is_mapped(), "bf16 embedding was copied");
        let c = store
            .get(
                "model.connector.modality_projection.proj.weight",
                &[32, 512],
            )
            .unwrap();
        assert_eq!(c.dtype, DType::F16);
        assert!(c.is_mapped());
        assert!(matches!(c.view(), View::F16(s) if s.len() == 32 * 512));
    }
}
