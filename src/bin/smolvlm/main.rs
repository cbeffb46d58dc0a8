//! `smolvlm` — the command-line front end, with the original smol-vision CLI's flags and
//! stderr contract plus sampling, splitting, multi-image, `--messages` and `--json`.

mod chat;
mod report;

use smolvlm::{
    Isa, LoadOptions, Message, Model, Precision, QuantType, Request, RgbImage, SamplingParams,
    Session, Split,
};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "smolvlm — SmolVLM vision-language inference on the CPU

Usage: smolvlm -d <model_dir> [-i <image>]... [options]
       smolvlm quantize -d <model_dir> -o <file.gguf> --type <type>   (see smolvlm quantize -h)

Required:
  -d <dir>                 Model directory (config.json, *.safetensors, tokenizer.json, ...),
                           a GGUF text model (the .gguf file, or a directory holding it), or a
                           directory holding a text GGUF and its mmproj*.gguf (llama.cpp's SmolVLM)

Input:
  -i <file>                Image (PNG, JPEG, BMP, PNM, TGA, GIF, WebP, TIFF); repeat for several;
                           none = text-only prompt
  -p <text>                Prompt (default: \"Describe this image.\", or required without -i)
  --system-prompt <text>   System prompt
  --messages <file>        JSON array of HF chat messages; its {\"type\": \"image\"} entries take
                           the -i images in order (-p and --system-prompt are then not used)
  --split / --no-split     Force image splitting on/off (default: the model's preprocessor config)
  --chat                   A conversation on stdin, one user message per line (-i images and
                           --system-prompt belong to the first turn); /reset starts over,
                           /exit or end of input ends it. Follow-ups reuse what the first turn
                           computed (the image is not encoded again)

Generation:
  --max-tokens <n>         Maximum tokens to generate (default: 256)
  --temperature <t>        0 = greedy (default)
  --top-k <k>              Keep the k most likely tokens (0 = off)
  --top-p <p>              Nucleus sampling mass (1 = off)
  --repetition-penalty <r> HF-style repetition penalty (1 = off)
  --seed <n>               Sampling seed (default: 0)
  -t <n>                   Threads (default: all CPUs)
  --precision <p>          auto (default), f32, bf16 or int8: products with bf16 weights in f32
                           (as transformers' float32) or with bf16 activations (as its
                           bfloat16); int8: quantized weights meet int8 activation blocks (as
                           llama.cpp computes them: faster, not transformers-exact); auto =
                           int8 for quantized weights on CPUs with int8 dot products (VNNI),
                           else bf16 where the CPU has native bf16 dot products, else f32
  --isa <name>             Kernel variant (portable, avx2, avx512, avx512bf16; default: the
                           fastest this CPU supports)
  --quantize <q>           Quantize the decoder's linear weights at load: q8_0, q4_0, q4_1,
                           q5_0, q5_1, q4_k, q5_k or q6_k (ggml's block formats; the output
                           projection at q8_0; rows that do not fill 256-element K-quant
                           blocks take llama.cpp's fallback); their products run on the
                           dequantized values in f32

Output:
  --json                   Print one JSON object on stdout instead of streaming text
  --debug                  Verbose diagnostics on stderr
  --silent                 No status output on stderr (generated text only)
  -h, --help               Show this help
";

pub(crate) struct Args {
    model_dir: String,
    images: Vec<String>,
    prompt: Option<String>,
    system_prompt: Option<String>,
    messages: Option<String>,
    split: Split,
    max_tokens: usize,
    sampling: SamplingParams,
    threads: usize,
    precision: Precision,
    isa: Option<Isa>,
    quantize: Option<QuantType>,
    json: bool,
    chat: bool,
    verbosity: u8,
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("invalid value for {flag}: {v:?}"))
}

fn parse_args(argv: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args {
        model_dir: String::new(),
        images: Vec::new(),
        prompt: None,
        system_prompt: None,
        messages: None,
        split: Split::ModelDefault,
        max_tokens: 256,
        sampling: SamplingParams::default(),
        threads: 0,
        precision: Precision::Auto,
        isa: None,
        quantize: None,
        json: false,
        chat: false,
        verbosity: 1,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-d" => a.model_dir = value()?,
            "-i" => a.images.push(value()?),
            "-p" => a.prompt = Some(value()?),
            "--system-prompt" => a.system_prompt = Some(value()?),
            "--messages" => a.messages = Some(value()?),
            "-t" => {
                let v = value()?;
                let n: i64 = parse_num(flag, &v)?;
                a.threads = n.clamp(0, 1024) as usize;
            }
            "--max-tokens" => {
                let v = value()?;
                let n: i64 = parse_num(flag, &v)?;
                if n < 0 || n as usize > smolvlm::MAX_TOKENS_LIMIT {
                    return Err(format!(
                        "--max-tokens must be in 0..={}",
                        smolvlm::MAX_TOKENS_LIMIT
                    ));
                }
                a.max_tokens = n as usize;
            }
            "--temperature" => a.sampling.temperature = parse_num(flag, &value()?)?,
            "--top-k" => a.sampling.top_k = parse_num(flag, &value()?)?,
            "--top-p" => a.sampling.top_p = parse_num(flag, &value()?)?,
            "--repetition-penalty" | "--repeat-penalty" => {
                a.sampling.repetition_penalty = parse_num(flag, &value()?)?
            }
            "--seed" => a.sampling.seed = parse_num(flag, &value()?)?,
            "--precision" => {
                let v = value()?;
                a.precision = Precision::from_name(&v).ok_or_else(|| {
                    format!("--precision must be auto, f32, bf16 or int8, not {v:?}")
                })?;
            }
            "--isa" => {
                let v = value()?;
                a.isa = Some(Isa::from_name(&v).ok_or_else(|| {
                    format!("--isa must be portable, avx2, avx512 or avx512bf16, not {v:?}")
                })?);
            }
            "--quantize" => {
                let v = value()?;
                a.quantize = Some(QuantType::from_name(&v).ok_or_else(|| {
                    format!(
                        "--quantize must be q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k, \
                             not {v:?}"
                    )
                })?);
            }
            "--split" => a.split = Split::On,
            "--no-split" => a.split = Split::Off,
            "--json" => a.json = true,
            "--chat" => a.chat = true,
            "--debug" => a.verbosity = 2,
            "--silent" => a.verbosity = 0,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("Unknown option: {other}")),
        }
    }
    if a.model_dir.is_empty() {
        return Err("missing -d <model_dir>".into());
    }
    if a.chat && (a.prompt.is_some() || a.messages.is_some()) {
        return Err(
            "--chat reads the user's messages from stdin: -p and --messages are not used".into(),
        );
    }
    a.sampling.validate().map_err(|e| e.to_string())?;
    Ok(Some(a))
}

/// The first turn's images, opened.
fn open_images(a: &Args) -> Result<Vec<RgbImage>, String> {
    a.images
        .iter()
        .map(|p| RgbImage::open(p.as_ref()).map_err(|e| e.to_string()))
        .collect()
}

/// Generation settings of every request the CLI makes.
fn settings(a: &Args, req: &mut Request) {
    req.split = a.split;
    req.max_tokens = a.max_tokens;
    req.sampling = a.sampling.clone();
    req.precision = a.precision;
}

fn build_request(a: &Args) -> Result<Request, String> {
    let images = open_images(a)?;
    let mut req = match &a.messages {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{path}: invalid JSON: {e}"))?;
            let messages = Message::parse_list(&v).map_err(|e| format!("{path}: {e}"))?;
            let mut r = Request::simple("", None, Vec::new());
            r.messages = messages;
            r.images = images;
            r
        }
        None => {
            let prompt = match (&a.prompt, images.is_empty()) {
                (Some(p), _) => p.clone(),
                (None, false) => "Describe this image.".to_string(),
                (None, true) => {
                    return Err("a text-only prompt needs -p <text> (or give -i <image>)".into())
                }
            };
            Request::simple(&prompt, a.system_prompt.as_deref(), images)
        }
    };
    settings(a, &mut req);
    Ok(req)
}

fn run(a: Args) -> Result<(), String> {
    let verbose = a.verbosity;
    let options = LoadOptions {
        isa: a.isa,
        quantize: a.quantize,
    };
    let model = Model::load_with(&a.model_dir, options, &mut |_| true)
        .map_err(|e| format!("failed to load model from {}: {e}", a.model_dir))?;
    if verbose >= 1 {
        let t = &model.config.text;
        match &model.config.vision {
            Some(v) => {
                eprintln!(
                    "SmolVLM: vision {} layers (hidden={}), decoder {} layers (hidden={})",
                    v.num_hidden_layers, v.hidden_size, t.num_hidden_layers, t.hidden_size
                );
                eprintln!(
                    "  image {}x{} patch={}, scale={}, seq_len={}",
                    v.image_size,
                    v.image_size,
                    v.patch_size,
                    model.config.scale_factor,
                    model.config.image_seq_len()
                );
            }
            None => eprintln!(
                "SmolLM: decoder {} layers (hidden={})",
                t.num_hidden_layers, t.hidden_size
            ),
        }
        eprintln!(
            "  decoder: heads={} kv_heads={} head_dim={} rope_theta={:.0}",
            t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.rope_theta
        );
        eprintln!("  Model loaded ({:.0} ms).", model.load_ms);
    }
    if verbose >= 2 {
        eprintln!("  weights: {}", model.weight_layout);
        eprintln!(
            "  eos ids: {:?}; split by default: {}",
            model.eos_token_ids(),
            model.splits_by_default()
        );
    }
    let req = if a.chat {
        Request::simple("", None, Vec::new())
    } else {
        build_request(&a)?
    };
    let mut session = Session::new(Arc::new(model));
    session.set_threads(a.threads).map_err(|e| e.to_string())?;
    if verbose >= 2 {
        eprintln!(
            "  {}; this model runs: {}, precision {}{}",
            smolvlm::system_info(),
            session.model().isa().name(),
            session.model().precision(a.precision).name(),
            match session.model().quantization() {
                Some(q) => format!(", decoder weights {} (f32 products)", q.name()),
                None => String::new(),
            }
        );
    }
    if a.chat {
        return chat::run(&a, &mut session);
    }
    let hooks_out = report::Streamer::new(!a.json && verbose > 0);
    let out = hooks_out.generate(&mut session, &req)?;
    report::result(&a, &session, &out);
    Ok(())
}

const QUANTIZE_USAGE: &str = "\
smolvlm quantize — write a safetensors model directory as GGUF, as llama.cpp keeps it: a Llama /
SmolLM2 as a GGUF text model; a SmolVLM as its decoder's text GGUF plus an mmproj GGUF beside it
(mmproj-<file>: the vision tower and connector, f16 beside a quantized decoder, for this
library's -d <dir> and llama-mtmd-cli's --mmproj)

Usage: smolvlm quantize -d <model_dir> -o <file.gguf> --type <type>

  -d <dir>      Model directory (config.json, *.safetensors, tokenizer.json, ...)
  -o <file>     GGUF file to write (replaced when complete; a SmolVLM's mmproj goes beside it)
  --type <t>    f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k (= q4_k_s), q5_k (= q5_k_s),
                q6_k, q4_k_m or q5_k_m: llama.cpp's file types, each tensor in the type
                llama-quantize gives it (ggml's reference quantizer; no importance matrix)
  --silent      No progress on stderr
";

fn quantize_command(argv: &[String]) -> ExitCode {
    let (mut dir, mut out, mut ty, mut silent) = (None, None, None, false);
    let mut it = argv.iter();
    let usage_error = |msg: String| {
        eprintln!("smolvlm quantize: {msg}\n");
        eprint!("{QUANTIZE_USAGE}");
        ExitCode::from(2)
    };
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        let r = match arg.as_str() {
            "-d" => value().map(|v| dir = Some(v)),
            "-o" => value().map(|v| out = Some(v)),
            "--type" => value().and_then(|v| {
                smolvlm::FileType::from_name(&v)
                    .map(|t| ty = Some(t))
                    .ok_or_else(|| format!("--type {v:?} is not one of the types below"))
            }),
            "--silent" => {
                silent = true;
                Ok(())
            }
            "-h" | "--help" => {
                eprint!("{QUANTIZE_USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(msg) = r {
            return usage_error(msg);
        }
    }
    let (Some(dir), Some(out), Some(ty)) = (dir, out, ty) else {
        return usage_error("-d, -o and --type are required".into());
    };
    let mut last = -1i32;
    let mut progress = |f: f32| {
        let pct = (f * 100.0) as i32;
        if !silent && pct / 10 != last / 10 {
            eprint!("\rquantize: {pct:3}%");
            last = pct;
        }
    };
    let t0 = std::time::Instant::now();
    match smolvlm::export_gguf(
        std::path::Path::new(&dir),
        std::path::Path::new(&out),
        ty,
        &mut progress,
    ) {
        Ok(s) => {
            if !silent {
                let secs = t0.elapsed().as_secs_f64();
                for f in std::iter::once(&s).chain(s.mmproj.as_deref()) {
                    let types: Vec<String> =
                        f.types.iter().map(|(n, c)| format!("{c} {n}")).collect();
                    eprintln!(
                        "\rquantize: wrote {} ({} tensors: {}; {:.1} MiB) in {secs:.1} s",
                        f.path.display(),
                        f.tensors,
                        types.join(", "),
                        f.bytes as f64 / (1 << 20) as f64,
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nsmolvlm quantize: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("quantize") {
        return quantize_command(&argv[1..]);
    }
    match parse_args(&argv) {
        Ok(None) => {
            eprint!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("smolvlm: {msg}\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Ok(Some(a)) => match run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("smolvlm: error: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}
