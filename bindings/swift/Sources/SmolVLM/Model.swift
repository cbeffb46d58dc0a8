import CSmolVLM

/// A loaded SmolVLM checkpoint: weights (memory-mapped), tokenizer and configuration.
/// Immutable and thread-safe: share one across tasks and give each task its own ``Context``.
public final class Model: @unchecked Sendable {
    let handle: OpaquePointer

    /// Loads a model directory (config.json, *.safetensors, tokenizer.json, ...).
    /// - Parameter progress: called with the fraction loaded; return false to cancel
    ///   (the load then throws ``SmolVLMError/Code/cancelled``).
    /// - Parameter quantize: a block format for the decoder's linear weights, quantized at load.
    public init(path: String, progress: ((Float) -> Bool)? = nil, quantize: Quantize = .none) throws {
        var out: OpaquePointer?
        let status: smolvlm_status
        var params = smolvlm_model_params()
        smolvlm_model_params_default(&params)
        params.quantize = quantize.rawValue
        if let progress {
            let box = Unmanaged.passRetained(ProgressBox(progress))
            defer { box.release() }
            params.user_data = box.toOpaque()
            params.progress = { fraction, userData in
                guard let userData else { return true }
                return Unmanaged<ProgressBox>.fromOpaque(userData).takeUnretainedValue().call(fraction)
            }
            status = smolvlm_model_load(path, &params, &out)
        } else {
            status = smolvlm_model_load(path, &params, &out)
        }
        try check(status)
        guard let out else { throw SmolVLMError(status: 9, message: "the library returned no model") }
        handle = out
    }

    deinit {
        smolvlm_model_free(handle)
    }

    /// A new generation context on this model (same as `Context(model:)`).
    public func makeContext() throws -> Context {
        try Context(model: self)
    }

    /// The loaded library's version, "MAJOR.MINOR.PATCH".
    public static var libraryVersion: String { String(cString: smolvlm_version()) }

    /// The kernels this build and CPU run (SIMD variants, BLAS, CPUs).
    public static var systemInfo: String { String(cString: smolvlm_system_info()) }
}

private final class ProgressBox {
    let call: (Float) -> Bool
    init(_ call: @escaping (Float) -> Bool) { self.call = call }
}

/// A block format the decoder's linear weights can be quantized to at load (ggml's; the output
/// projection is Q8_0 with any of them). Their products run in f32 on the dequantized values.
public enum Quantize: Int32 {
    case none = 0
    case q8_0 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 4
    case q5_1 = 5
    case q4_k = 6
    case q5_k = 7
    case q6_k = 8
}
