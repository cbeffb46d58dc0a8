//! The loaded model: immutable, `Send + Sync`, shared by any number of sessions.

use crate::config::{self, Architecture, ImageProcessorConfig, ModelConfig};
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::kernels::{Isa, Precision};
use crate::text::{TextModel, TextWeights};
use crate::tokenizer::Tokenizer;
use crate::vision::VisionModel;
use crate::weights::gguf::GgufFile;
use crate::weights::quant::QuantType;
use crate::weights::WeightStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Special token strings the processor uses, checked against the vocabulary at load.
pub(crate) struct ImageTokens {
    pub fake: String,
    pub image: String,
    pub global: String,
}

pub(crate) struct VisionParts {
    pub encoder: VisionModel,
    pub connector: Connector,
    pub processor: ImageProcessorConfig,
    pub tokens: ImageTokens,
    pub image_token_id: u32,
    pub seq_len: usize,
}

/// A loaded model: configuration, tokenizer, weights (memory-mapped). Immutable, `Send + Sync`:
/// any number of [`crate::Session`]s on any threads may share one through an `Arc`.
pub struct Model {
    /// The configuration read from the model directory.
    pub config: ModelConfig,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) vision: Option<VisionParts>,
    pub(crate) text: TextModel,
    pub(crate) isa: Isa,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// Which tensor naming the checkpoint uses (for diagnostics).
    pub weight_layout: String,
    /// Time the load took.
    pub load_ms: f64,
}

impl Model {
    /// An identity of the checkpoint for saved session states: its parsed configuration and the
    /// first embedding rows (two checkpoints of one shape differ there).
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?}", self.config).hash(&mut h);
        let mut rows = Vec::new();
        let n = self.config.text.vocab_size.min(4) as u32;
        if self
            .text
            .embed(&(0..n).collect::<Vec<_>>(), &mut rows)
            .is_ok()
        {
            for x in rows {
                x.to_bits().hash(&mut h);
            }
        }
        h.finish()
    }
}

/// Options for [`Model::load_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// The kernel variant to run (None: the fastest this CPU supports, see [`Isa::detect`]).
    pub isa: Option<Isa>,
    /// Quantize the decoder's linear weights at load into this block format (None: use them as
    /// stored). Products with them run in the f32 mode on the dequantized values.
    pub quantize: Option<QuantType>,
}

/// The GGUF files `path` stands for: the file itself when it is one (a text model), or a
/// directory without `config.json` holding one text GGUF and at most one `mmproj*.gguf` (a
/// SmolVLM as llama.cpp keeps it); None for a transformers directory.
fn gguf_files(path: &Path) -> Result<Option<(PathBuf, Option<PathBuf>)>> {
    let is_gguf = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    };
    if path.is_file() {
        return if is_gguf(path) {
            Ok(Some((path.to_path_buf(), None)))
        } else {
            Err(Error::model(format!(
                "{}: not a directory or a .gguf file",
                path.display()
            )))
        };
    }
    if !path.is_dir() || path.join("config.json").exists() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_gguf(p) && p.is_file())
        .collect();
    files.sort();
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_lowercase());
    let (mmproj, text): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|p| name(p).is_some_and(|n| n.starts_with("mmproj")));
    let listed = |v: &[PathBuf]| {
        v.iter()
            .filter_map(|p| name(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if mmproj.len() > 1 {
        return Err(Error::model(format!(
            "{}: holds {} mmproj GGUF files ({}); keep the one that belongs to the text model",
            path.display(),
            mmproj.len(),
            listed(&mmproj)
        )));
    }
    match text.len() {
        0 if mmproj.is_empty() => Ok(None),
        0 => Err(Error::model(format!(
            "{}: holds an mmproj GGUF ({}) but no text model GGUF beside it",
            path.display(),
            listed(&mmproj)
        ))),
        1 => Ok(text
            .into_iter()
            .next()
            .map(|t| (t, mmproj.into_iter().next()))),
        _ => Err(Error::model(format!(
            "{}: holds {} GGUF text models ({}); give the file to load",
            path.display(),
            text.len(),
            listed(&text)
        ))),
    }
}

fn first_present<'a>(store: &WeightStore, candidates: &[&'a str], suffix: &str) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .find(|p| store.contains(&format!("{p}{suffix}")))
}

impl Model {
    /// Loads a model directory with default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(dir, LoadOptions::default(), &mut |_| true)
    }

    /// Loads a model directory. `progress(fraction)` is called as loading advances; returning
    /// false cancels the load.
    pub fn load_with(
        dir: impl AsRef<Path>,
        options: LoadOptions,
        progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Model> {
        let t0 = Instant::now();
        let dir = dir.as_ref();
        let isa = match options.isa {
            None => Isa::detect(),
            Some(i) if i.is_supported() => i,
            Some(i) => {
                return Err(Error::invalid(format!(
                    "kernel variant {} is not supported by this CPU (supported: {:?})",
                    i.name(),
                    Isa::supported()
                )))
            }
        };
        let gguf = gguf_files(dir)?;
        if gguf.is_none() && !dir.is_dir() {
            return Err(Error::new(
                crate::ErrorKind::Io,
                format!("{}: not a directory or a .gguf file", dir.display()),
            ));
        }
        let mut step = |f: f32| {
            if progress(f) {
                Ok(())
            } else {
                Err(Error::cancelled())
            }
        };
        step(0.0)?;
        // The image processor's settings, where the mmproj file holds them.
        let mut preprocessor = None;
        let (cfg, tokenizer, store) = match &gguf {
            Some((path, mm)) => {
                let g = GgufFile::open(path)?;
                let (c, gen) = crate::gguf_llama::config_json(&g)?;
                let (cfg, tokenizer, store) = match mm {
                    None => {
                        // The configuration is checked before the tokenizer is built.
                        let cfg = config::model_config_from(&c, path, Some(&gen), path)?;
                        let tokenizer = Tokenizer::from_gguf(&g)?;
                        (cfg, tokenizer, WeightStore::Gguf(g))
                    }
                    Some(mp) => {
                        let tokenizer = Tokenizer::from_gguf(&g)?;
                        let m = GgufFile::open(mp)?;
                        let pair = crate::gguf_mmproj::pair_json(&c, &gen, &m, &tokenizer)?;
                        let cfg = config::model_config_from(
                            &pair.config,
                            mp,
                            Some(&pair.generation),
                            path,
                        )?;
                        preprocessor = Some((pair.preprocessor, mp.clone()));
                        (cfg, tokenizer, WeightStore::pair(g, m))
                    }
                };
                step(0.1)?;
                (cfg, tokenizer, store)
            }
            None => {
                let cfg = config::load_model_config(dir)?;
                let tokenizer = Tokenizer::load(dir)?;
                step(0.1)?;
                (cfg, tokenizer, WeightStore::open(dir)?)
            }
        };
        step(0.2)?;
        let tc = &cfg.text;
        if tokenizer.vocab_len() > tc.vocab_size {
            return Err(Error::model(format!(
                "{}: tokenizer.json has {} tokens but config.json's vocab_size is {}",
                dir.display(),
                tokenizer.vocab_len(),
                tc.vocab_size
            )));
        }

        let (text_prefixes, head_names): (&[&str], &[&str]) = match cfg.architecture {
            Architecture::Vision => (
                &["model.text_model", "model.text_model.model", "text_model"],
                &[
                    "lm_head.weight",
                    "model.text_model.lm_head.weight",
                    "text_model.lm_head.weight",
                ],
            ),
            Architecture::TextOnly => (&["model"], &["lm_head.weight"]),
        };
        let text_prefix =
            first_present(&store, text_prefixes, ".embed_tokens.weight").ok_or_else(|| {
                Error::model(format!(
                    "missing tensor {} (looked in {})",
                    store.stored_name(&format!("{}.embed_tokens.weight", text_prefixes[0])),
                    store.file_names()
                ))
            })?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(first_present(&store, head_names, "").ok_or_else(|| {
                Error::model(format!(
                    "missing tensor {} (config.json has tie_word_embeddings = false; looked in {})",
                    head_names[0],
                    store.file_names()
                ))
            })?)
        };
        let mut layout = format!(
            "text: {text_prefix}.*, head: {}",
            lm_head.unwrap_or("tied to embed_tokens")
        );
        if let WeightStore::Gguf(g) | WeightStore::GgufPair { text: g, .. } = &store {
            layout = format!(
                "GGUF v{} ({}; llama.cpp's names, shown as transformers'), {layout}",
                g.version,
                store.file_names()
            );
        }

        let vision = match (&cfg.vision, cfg.image_token_id) {
            (Some(vc), Some(image_token_id)) => {
                let vp = first_present(
                    &store,
                    &["model.vision_model", "vision_model"],
                    ".post_layernorm.weight",
                )
                .unwrap_or("model.vision_model");
                let cp = first_present(
                    &store,
                    &["model.connector", "connector"],
                    ".modality_projection.proj.weight",
                )
                .unwrap_or("model.connector");
                layout.push_str(&format!(", vision: {vp}.*, connector: {cp}.*"));
                let encoder = VisionModel::load(&store, vp, vc)?;
                step(0.5)?;
                let connector = Connector::load(
                    &store,
                    &format!("{cp}.modality_projection.proj.weight"),
                    vc.hidden_size,
                    cfg.scale_factor,
                    tc.hidden_size,
                )?;
                let processor = match &preprocessor {
                    Some((pre, mp)) => config::image_processor_from(pre, mp, None, vc)?,
                    None => config::load_image_processor_config(dir, vc)?,
                };
                if processor.tile_size != vc.image_size {
                    return Err(Error::model(format!(
                        "{}: max_image_size.longest_edge ({}) differs from vision_config.image_size ({})",
                        dir.display(),
                        processor.tile_size,
                        vc.image_size
                    )));
                }
                let seq_len = cfg.image_seq_len();
                if let Some(n) = processor.image_seq_len {
                    if n != seq_len {
                        return Err(Error::model(format!(
                            "{}: processor image_seq_len {} disagrees with the model's {} \
                             ((image_size / patch_size)^2 / scale_factor^2)",
                            dir.display(),
                            n,
                            seq_len
                        )));
                    }
                }
                let tokens = ImageTokens {
                    fake: "<fake_token_around_image>".into(),
                    image: "<image>".into(),
                    global: "<global-img>".into(),
                };
                for t in [&tokens.fake, &tokens.image] {
                    if tokenizer.token_id(t).is_none() {
                        return Err(Error::model(format!(
                            "{}: tokenizer.json has no {t} token",
                            dir.display()
                        )));
                    }
                }
                if tokenizer.token_id(&tokens.image) != Some(image_token_id) {
                    return Err(Error::model(format!(
                        "{}: config.json image_token_id {image_token_id} is not the tokenizer's <image> ({:?})",
                        dir.display(),
                        tokenizer.token_id(&tokens.image)
                    )));
                }
                Some(VisionParts {
                    encoder,
                    connector,
                    processor,
                    tokens,
                    image_token_id,
                    seq_len,
                })
            }
            _ => None,
        };
        step(0.6)?;
        let text = TextModel::load(
            &store,
            &TextWeights {
                prefix: text_prefix,
                lm_head,
                rope_interleaved: gguf.is_some(),
            },
            tc,
            options.quantize,
        )?;
        if !tokenizer.has_template() {
            return Err(Error::model(format!(
                "{}: no chat template (looked in chat_template.jinja, chat_template.json, \
                 processor_config.json, tokenizer_config.json)",
                dir.display()
            )));
        }
        step(1.0)?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        crate::log::emit(crate::log::Level::Info, || {
            format!(
                "loaded {} ({}) in {load_ms:.0} ms; kernels: {}; {layout}{}",
                dir.display(),
                cfg.model_type,
                isa.name(),
                match (text.quantized(), options.quantize) {
                    (Some(q), Some(_)) => format!("; decoder quantized to {} at load", q.name()),
                    (Some(q), None) => format!("; decoder weights stored as {}", q.name()),
                    (None, _) => String::new(),
                }
            )
        });
        Ok(Model {
            config: cfg,
            tokenizer,
            vision,
            text,
            isa,
            dir: dir.to_path_buf(),
            weight_layout: layout,
            load_ms,
        })
    }

    /// The block format of the decoder's linear weights, if any: quantized to at load, or as
    /// a GGUF file stores them.
    pub fn quantization(&self) -> Option<QuantType> {
        self.text.quantized()
    }

    /// The mode `p` stands for with this model: [`Precision::Auto`] is `Int8` when the decoder's
    /// projections are block-quantized and the kernel variant has int8 dot products, else
    /// `Bf16` when its weights are bf16 and the variant has native bf16 dot products, else
    /// `F32`; the
    /// environment variable `SMOLVLM_PRECISION` (`f32`, `bf16` or `int8`) overrides what `Auto` picks
    /// (for callers of APIs without a precision setting, such as the drop-in one).
    pub fn precision(&self, p: Precision) -> Precision {
        if p == Precision::Auto {
            let env = std::env::var("SMOLVLM_PRECISION").ok();
            match env.as_deref().and_then(Precision::from_name) {
                Some(Precision::Auto) | None => {}
                Some(forced) => return forced,
            }
        }
        p.resolve(
            self.isa,
            self.text.weights_bf16(),
            self.text.quantized().is_some(),
        )
    }

    /// Whether products with bf16 weights round their activations to bf16 in mode `p` (a
    /// resolved mode): in `Bf16`, and in `Int8` where `Auto` would pick `Bf16` for them.
    pub(crate) fn bf16_products(&self, p: Precision) -> bool {
        match p {
            Precision::Bf16 => true,
            Precision::Int8 => {
                Precision::Auto.resolve(self.isa, self.text.weights_bf16(), false)
                    == Precision::Bf16
            }
            _ => false,
        }
    }

    /// The kernel variant this model runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether the model takes images (Idefics3/SmolVLM) or only text (Llama/SmolLM2).
    pub fn is_vision(&self) -> bool {
        self.vision.is_some()
    }

    /// Whether the model's processor splits images into tiles by default.
    pub fn splits_by_default(&self) -> bool {
        self.vision
            .as_ref()
            .is_some_and(|v| v.processor.do_image_splitting)
    }

    /// The tokenizer and chat template.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The ids that end generation.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.config.eos_token_ids
    }
}
