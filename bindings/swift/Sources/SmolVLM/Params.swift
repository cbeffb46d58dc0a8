import CSmolVLM

/// The numeric mode of a generation (see the README's "Numeric modes").
public enum Precision: Sendable {
    /// int8 for quantized weights on CPUs with int8 dot products; else bf16 for bf16 checkpoints
    /// on CPUs with native bf16 dot products, else f32.
    case auto
    /// f32 activations and accumulation (transformers' float32 numerics).
    case f32
    /// bf16 activations × bf16 weights with f32 accumulation.
    case bf16
    /// Block-quantized weights meet int8 activation blocks (as llama.cpp); other products as auto.
    case int8

    var raw: Int32 {
        switch self {
        case .auto: return Int32(SMOLVLM_PRECISION_AUTO.rawValue)
        case .f32: return Int32(SMOLVLM_PRECISION_F32.rawValue)
        case .bf16: return Int32(SMOLVLM_PRECISION_BF16.rawValue)
        case .int8: return Int32(SMOLVLM_PRECISION_INT8.rawValue)
        }
    }

    init(raw: Int32) {
        switch raw {
        case Int32(SMOLVLM_PRECISION_F32.rawValue): self = .f32
        case Int32(SMOLVLM_PRECISION_BF16.rawValue): self = .bf16
        case Int32(SMOLVLM_PRECISION_INT8.rawValue): self = .int8
        default: self = .auto
        }
    }
}

/// Whether images are cut into tiles plus a global view.
public enum Split: Sendable {
    /// As the model's preprocessor_config.json says.
    case modelDefault
    case on
    case off

    var raw: Int32 {
        switch self {
        case .modelDefault: return Int32(SMOLVLM_SPLIT_DEFAULT.rawValue)
        case .on: return Int32(SMOLVLM_SPLIT_ON.rawValue)
        case .off: return Int32(SMOLVLM_SPLIT_OFF.rawValue)
        }
    }
}

/// Settings of one generation; the defaults are the C library's (greedy, 256 tokens).
public struct GenerateParams: Sendable {
    public var maxTokens: Int = 256
    /// 0 = greedy.
    public var temperature: Float = 0
    /// 0 = off.
    public var topK: Int = 0
    /// 1 = off.
    public var topP: Float = 1
    /// 1 = off.
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0
    /// 0 = all CPUs.
    public var threads: Int = 0
    public var split: Split = .modelDefault
    public var precision: Precision = .auto
    /// Reuse what earlier calls on the context computed for a shared prompt prefix.
    public var promptCache: Bool = true

    public init() {}

    /// The C struct, with the library's defaults for anything this type does not set.
    func cParams() -> smolvlm_generate_params {
        var p = smolvlm_generate_params()
        smolvlm_generate_params_default(&p)
        p.max_tokens = Int32(clamping: maxTokens)
        p.temperature = temperature
        p.top_k = Int32(clamping: topK)
        p.top_p = topP
        p.repetition_penalty = repetitionPenalty
        p.seed = seed
        p.n_threads = Int32(clamping: threads)
        p.split = split.raw
        p.precision = precision.raw
        p.prompt_cache = promptCache ? 1 : 0
        return p
    }
}

/// Counts and timings of a context's last generation.
public struct Stats: Sendable {
    public var loadMs: Double
    public var tiles: Int
    public var encodeMs: Double
    public var prefillTokens: Int
    public var reusedTokens: Int
    public var prefillMs: Double
    public var decodeTokens: Int
    public var decodeMs: Double
    public var decodeTokensPerSecond: Double
    public var totalMs: Double
    public var threads: Int
    public var precision: Precision

    init(_ s: smolvlm_stats) {
        loadMs = s.load_ms
        tiles = Int(s.tiles)
        encodeMs = s.encode_ms
        prefillTokens = Int(s.prefill_tokens)
        reusedTokens = Int(s.reused_tokens)
        prefillMs = s.prefill_ms
        decodeTokens = Int(s.decode_tokens)
        decodeMs = s.decode_ms
        decodeTokensPerSecond = s.decode_tokens_per_s
        totalMs = s.total_ms
        threads = Int(s.threads)
        precision = Precision(raw: s.precision)
    }
}
