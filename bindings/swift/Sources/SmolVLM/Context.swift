import CSmolVLM
import Foundation

/// A generation context: KV cache, scratch memory, its own thread pool and statistics, on a
/// shared ``Model``. Give each task its own: a context runs one generation at a time, and a
/// call made while another is running on it throws ``SmolVLMError/Code/busy``.
public final class Context: @unchecked Sendable {
    let handle: OpaquePointer
    /// The model this context generates with (kept alive by the context).
    public let model: Model

    public init(model: Model) throws {
        var out: OpaquePointer?
        try check(smolvlm_ctx_new(model.handle, &out))
        guard let out else { throw SmolVLMError(status: 9, message: "the library returned no context") }
        handle = out
        self.model = model
    }

    deinit {
        smolvlm_free(handle)
    }

    /// Generates an answer to `prompt` about `images` (none: a text-only prompt) and returns it
    /// whole. `onPiece` receives each complete UTF-8 piece as it is generated; returning false
    /// stops the generation (the text so far is returned).
    @discardableResult
    public func generate(
        prompt: String, images: [Image] = [], systemPrompt: String? = nil,
        params: GenerateParams = GenerateParams(), onPiece: ((String) -> Bool)? = nil
    ) throws -> String {
        try run(images: images, params: params, onPiece: onPiece, shouldStop: nil) { ctx, imgs, n, p, out in
            withOptionalCString(systemPrompt) { system in
                smolvlm_ctx_generate(ctx, prompt, system, imgs, n, p, out)
            }
        }
    }

    /// Like ``generate(prompt:images:systemPrompt:params:onPiece:)`` with the conversation as a JSON
    /// array of HF chat messages; its `{"type": "image"}` entries take `images` in order.
    @discardableResult
    public func generate(
        messagesJSON: String, images: [Image] = [], params: GenerateParams = GenerateParams(),
        onPiece: ((String) -> Bool)? = nil
    ) throws -> String {
        try run(images: images, params: params, onPiece: onPiece, shouldStop: nil) { ctx, imgs, n, p, out in
            smolvlm_ctx_generate_chat(ctx, messagesJSON, imgs, n, p, out)
        }
    }

    /// Streams the answer piece by piece. The generation runs on its own thread; cancelling the
    /// consuming task (or dropping the stream) stops it between two steps of the model.
    public func stream(
        prompt: String, images: [Image] = [], systemPrompt: String? = nil,
        params: GenerateParams = GenerateParams()
    ) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let stop = StopFlag()
            continuation.onTermination = { termination in
                if case .cancelled = termination { stop.raise() }
            }
            let worker = Thread { [self] in
                do {
                    _ = try self.run(
                        images: images, params: params,
                        onPiece: { piece in
                            continuation.yield(piece)
                            return !stop.isRaised
                        },
                        shouldStop: { stop.isRaised }
                    ) { ctx, imgs, n, p, out in
                        withOptionalCString(systemPrompt) { system in
                            smolvlm_ctx_generate(ctx, prompt, system, imgs, n, p, out)
                        }
                    }
                    continuation.finish()
                } catch let error as SmolVLMError where error.code == .cancelled && stop.isRaised {
                    continuation.finish(throwing: CancellationError())
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            // The library's calling thread needs more than a secondary thread's default stack.
            worker.stackSize = 8 << 20
            worker.start()
        }
    }

    /// Forgets what the context kept from earlier prompts (prompt cache, image features).
    public func reset() throws {
        try check(smolvlm_ctx_reset(handle))
    }

    /// Counts and timings of the last successful generation on this context.
    public func stats() throws -> Stats {
        var s = smolvlm_stats()
        s.size = MemoryLayout<smolvlm_stats>.size
        try check(smolvlm_ctx_get_stats(handle, &s))
        return Stats(s)
    }

    private typealias Call = (
        OpaquePointer, UnsafePointer<OpaquePointer?>?, Int, UnsafePointer<smolvlm_generate_params>,
        UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    ) -> smolvlm_status

    /// Runs one generate call with the callbacks wired to Swift closures.
    private func run(
        images: [Image], params: GenerateParams, onPiece: ((String) -> Bool)?,
        shouldStop: (() -> Bool)?, call: Call
    ) throws -> String {
        let callbacks = Unmanaged.passRetained(Callbacks(onPiece: onPiece, shouldStop: shouldStop))
        defer { callbacks.release() }
        var p = params.cParams()
        p.user_data = callbacks.toOpaque()
        if onPiece != nil {
            p.on_piece = { piece, len, _, userData in
                guard let userData, let piece else { return true }
                let text = String(
                    decoding: UnsafeRawBufferPointer(start: piece, count: len), as: UTF8.self)
                return Unmanaged<Callbacks>.fromOpaque(userData).takeUnretainedValue().piece(text)
            }
        }
        if shouldStop != nil {
            p.should_abort = { userData in
                guard let userData else { return false }
                return Unmanaged<Callbacks>.fromOpaque(userData).takeUnretainedValue().stop()
            }
        }
        let handles: [OpaquePointer?] = images.map { $0.handle }
        var text: UnsafeMutablePointer<CChar>?
        let status = withExtendedLifetime(images) {
            handles.withUnsafeBufferPointer { buf in
                call(handle, buf.baseAddress, buf.count, &p, &text)
            }
        }
        defer { smolvlm_string_free(text) }
        try check(status)
        return text.map { String(cString: $0) } ?? ""
    }
}

/// The Swift closures one generate call's C callbacks reach through their user_data.
private final class Callbacks {
    let onPiece: ((String) -> Bool)?
    let shouldStop: (() -> Bool)?

    init(onPiece: ((String) -> Bool)?, shouldStop: (() -> Bool)?) {
        self.onPiece = onPiece
        self.shouldStop = shouldStop
    }

    func piece(_ text: String) -> Bool { onPiece?(text) ?? true }
    func stop() -> Bool { shouldStop?() ?? false }
}

/// Set once from any thread (a cancelled stream), read by the generating thread.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    func raise() {
        lock.lock()
        raised = true
        lock.unlock()
    }

    var isRaised: Bool {
        lock.lock()
        defer { lock.unlock() }
        return raised
    }
}
