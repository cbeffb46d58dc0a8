// Describes an image, streaming the answer, then prints the call's statistics: the same program
// as every other language's example (see examples/README.md).
//
//   swift run smolvlm-describe <model_dir> <image> ["prompt"]
import Foundation
import SmolVLM

let args = CommandLine.arguments
guard args.count >= 3 else {
    FileHandle.standardError.write("usage: smolvlm-describe <model_dir> <image> [prompt]\n".data(using: .utf8)!)
    exit(2)
}
let prompt = args.count > 3 ? args[3] : "Describe this image."

do {
    let model = try Model(path: args[1])
    let context = try Context(model: model)
    let image = try Image(path: args[2])
    var params = GenerateParams()
    params.maxTokens = 256
    for try await piece in context.stream(prompt: prompt, images: [image], params: params) {
        print(piece, terminator: "")
        fflush(stdout)
    }
    print()
    let s = try context.stats()
    let line = String(
        format: "%ld tokens, %.1f tok/s; vision %.0f ms, prompt %ld tokens %.0f ms, total %.0f ms\n",
        s.decodeTokens, s.decodeTokensPerSecond, s.encodeMs, s.prefillTokens, s.prefillMs, s.totalMs)
    FileHandle.standardError.write(line.data(using: .utf8)!)
} catch {
    FileHandle.standardError.write("\(error)\n".data(using: .utf8)!)
    exit(1)
}
