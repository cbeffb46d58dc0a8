import CSmolVLM

/// A failed call: the C library's status code and its message.
public struct SmolVLMError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The library's status codes (smolvlm_status).
    public enum Code: Int32, Sendable {
        case nullArgument = 1
        case invalidArgument = 2
        case io = 3
        case badModel = 4
        case badImage = 5
        case cancelled = 6
        case busy = 7
        case outOfMemory = 8
        case panic = 9
        case unknown = -1
    }

    /// The raw smolvlm_status value.
    public let status: Int32
    /// What smolvlm_last_error() said.
    public let message: String

    public var code: Code { Code(rawValue: status) ?? .unknown }

    public var description: String {
        let name = String(cString: smolvlm_status_str(status))
        return message.isEmpty ? "smolvlm: \(name)" : "smolvlm: \(name): \(message)"
    }

    init(status: Int32, message: String) {
        self.status = status
        self.message = message
    }

    /// The error of the call that just failed on this thread (the last error is per thread).
    static func last(_ status: smolvlm_status) -> SmolVLMError {
        SmolVLMError(status: Int32(status.rawValue), message: String(cString: smolvlm_last_error()))
    }
}

/// Throws the library's error unless `status` is SMOLVLM_STATUS_OK.
@inline(__always)
func check(_ status: smolvlm_status) throws {
    if status != SMOLVLM_STATUS_OK {
        throw SmolVLMError.last(status)
    }
}

/// Calls `body` with a C string for `s`, or NULL for nil.
func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let s else { return try body(nil) }
    return try s.withCString { try body($0) }
}
