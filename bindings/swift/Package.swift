// swift-tools-version:5.9
// The Swift binding of libsmolvlm. Install the C library first (scripts/install.sh PREFIX, or
// cargo cinstall) so that `pkg-config smolvlm` finds it: SwiftPM reads its flags for CSmolVLM.
import PackageDescription

let package = Package(
    name: "SmolVLM",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "SmolVLM", targets: ["SmolVLM"]),
        .executable(name: "smolvlm-describe", targets: ["smolvlm-describe"]),
    ],
    targets: [
        .systemLibrary(name: "CSmolVLM", path: "Sources/CSmolVLM", pkgConfig: "smolvlm"),
        .target(name: "SmolVLM", dependencies: ["CSmolVLM"]),
        .executableTarget(name: "smolvlm-describe", dependencies: ["SmolVLM"]),
        .testTarget(name: "SmolVLMTests", dependencies: ["SmolVLM"]),
    ]
)
