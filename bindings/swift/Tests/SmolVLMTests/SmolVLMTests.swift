import Foundation
import XCTest
@testable import SmolVLM

/// Runs against the repository's tiny reference model (tests/fixtures) in the f32 mode, whose
/// output the Rust CLI gives too.
final class SmolVLMTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelDir = root.appendingPathComponent("tests/fixtures/models/tiny-256m").path
    static let png = root.appendingPathComponent("tests/fixtures/images/square.png").path
    static let ppm = root.appendingPathComponent("tests/fixtures/images/square.ppm").path
    static let prompt = "What is in the image?"

    static var params: GenerateParams {
        var p = GenerateParams()
        p.maxTokens = 16
        p.precision = .f32
        return p
    }

    func testGenerateEqualsTheCLI() throws {
        let cli = Self.root.appendingPathComponent("target/release/smolvlm")
        guard FileManager.default.isExecutableFile(atPath: cli.path) else {
            throw XCTSkip("target/release/smolvlm is not built")
        }
        let process = Process()
        process.executableURL = cli
        process.arguments = ["--silent", "--precision", "f32", "-d", Self.modelDir, "-i", Self.png,
                             "-p", Self.prompt, "--max-tokens", "16"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let expected = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .newlines)

        let context = try Context(model: Model(path: Self.modelDir))
        let text = try context.generate(prompt: Self.prompt, images: [Image(path: Self.png)], params: Self.params)
        XCTAssertEqual(text, expected)
        let stats = try context.stats()
        XCTAssertEqual(stats.precision, .f32)
        XCTAssertGreaterThan(stats.decodeTokens, 0)
        XCTAssertGreaterThan(stats.tiles, 0)
    }

    func testStreamEqualsGenerate() async throws {
        let model = try Model(path: Self.modelDir)
        let image = try Image(path: Self.png)
        let whole = try Context(model: model).generate(prompt: Self.prompt, images: [image], params: Self.params)
        var pieces: [String] = []
        for try await piece in try Context(model: model).stream(prompt: Self.prompt, images: [image], params: Self.params) {
            pieces.append(piece)
        }
        XCTAssertGreaterThan(pieces.count, 1)
        XCTAssertEqual(pieces.joined(), whole)
    }

    func testImageSourcesAgree() throws {
        let context = try Context(model: Model(path: Self.modelDir))
        var p = Self.params
        p.promptCache = false
        let fromPath = try context.generate(prompt: Self.prompt, images: [Image(path: Self.ppm)], params: p)
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.ppm))
        let fromData = try context.generate(prompt: Self.prompt, images: [Image(data: data)], params: p)
        XCTAssertEqual(fromData, fromPath)

        // A binary PPM: "P6\n<w> <h>\n255\n" then RGB bytes.
        let fields = String(decoding: data.prefix(32), as: UTF8.self)
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).prefix(4).map(String.init)
        let (w, h) = (Int(fields[1])!, Int(fields[2])!)
        let rgb = data.suffix(w * h * 3)
        let fromPixels = try rgb.withUnsafeBytes { raw in
            try context.generate(prompt: Self.prompt, images: [Image(pixels: raw, width: w, height: h)], params: p)
        }
        XCTAssertEqual(fromPixels, fromPath)
        XCTAssertThrowsError(try Image(pixels: UnsafeRawBufferPointer(start: nil, count: 0), width: 2, height: 2))
    }

    func testErrorsCarryTheStatusAndMessage() {
        XCTAssertThrowsError(try Model(path: "/nonexistent/model")) { error in
            guard let e = error as? SmolVLMError else { return XCTFail("\(error)") }
            XCTAssertNotEqual(e.code, .unknown)
            XCTAssertTrue(e.message.contains("/nonexistent/model"), e.message)
        }
        XCTAssertThrowsError(try Image(data: Data([1, 2, 3]))) { error in
            XCTAssertEqual((error as? SmolVLMError)?.code, .badImage)
        }
    }

    func testTheCallbackStopsGeneration() throws {
        let context = try Context(model: Model(path: Self.modelDir))
        var seen = 0
        let text = try context.generate(prompt: "Tell me a story.", params: Self.params) { _ in
            seen += 1
            return seen < 3
        }
        XCTAssertEqual(seen, 3)
        XCTAssertLessThan(try context.stats().decodeTokens, 16)
        XCTAssertFalse(text.isEmpty)
    }

    func testCancellingTheStreamStopsIt() async throws {
        let context = try Context(model: Model(path: Self.modelDir))
        var long = Self.params
        long.maxTokens = 4096
        let params = long
        let task = Task { () -> Int in
            var n = 0
            for try await _ in context.stream(prompt: "Tell me a long story.", params: params) {
                n += 1
                if n == 2 { withUnsafeCurrentTask { $0?.cancel() } }
            }
            return n
        }
        let result = await task.result
        if case .success(let n) = result {
            XCTAssertLessThan(n, 100, "the stream ran on after cancellation")
        }
        // The context is free again: the generation thread has returned.
        var tries = 0
        while tries < 100 {
            if (try? context.generate(prompt: "Hi", params: Self.params)) != nil { break }
            tries += 1
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertLessThan(tries, 100)
    }

    func testOneModelSharedByTasks() async throws {
        let model = try Model(path: Self.modelDir)
        let image = try Image(path: Self.png)
        let serial = try Context(model: model).generate(prompt: Self.prompt, images: [image], params: Self.params)
        let texts = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    try Context(model: model).generate(prompt: Self.prompt, images: [image], params: Self.params)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(texts, [serial, serial, serial])
    }

    func testVersionAndSystemInfo() {
        XCTAssertEqual(Model.libraryVersion.split(separator: ".").count, 3)
        XCTAssertFalse(Model.systemInfo.isEmpty)
    }
}
