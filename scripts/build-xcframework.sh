#!/usr/bin/env bash
# Builds SmolVLM.xcframework (static libsmolvlm for macOS arm64 + x86_64, iOS devices and the iOS
# simulator, with smolvlm.h and a CSmolVLM module map) into target/xcframework/. macOS with Xcode
# and rustup only. Use it from an Xcode project, or from SwiftPM as a binaryTarget in place of
# bindings/swift's pkg-config CSmolVLM target. (BLAS comes from Accelerate on every slice.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null; then
  echo "build-xcframework: needs macOS with Xcode (xcodebuild); nothing was built" >&2
  exit 1
fi
OUT=target/xcframework
TARGETS=(aarch64-apple-darwin x86_64-apple-darwin aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${TARGETS[@]}"
for t in "${TARGETS[@]}"; do
  cargo build --release --locked --lib --target "$t"
done
rm -rf "$OUT" && mkdir -p "$OUT/macos" "$OUT/ios-sim" "$OUT/headers"
lipo -create target/aarch64-apple-darwin/release/libsmolvlm.a target/x86_64-apple-darwin/release/libsmolvlm.a \
  -output "$OUT/macos/libsmolvlm.a"
lipo -create target/aarch64-apple-ios-sim/release/libsmolvlm.a target/x86_64-apple-ios/release/libsmolvlm.a \
  -output "$OUT/ios-sim/libsmolvlm.a"
cp include/smolvlm.h "$OUT/headers/"
cat > "$OUT/headers/module.modulemap" <<'MAP'
module CSmolVLM {
    header "smolvlm.h"
    link framework "Accelerate"
    export *
}
MAP
xcodebuild -create-xcframework \
  -library "$OUT/macos/libsmolvlm.a" -headers "$OUT/headers" \
  -library target/aarch64-apple-ios/release/libsmolvlm.a -headers "$OUT/headers" \
  -library "$OUT/ios-sim/libsmolvlm.a" -headers "$OUT/headers" \
  -output "$OUT/SmolVLM.xcframework"
echo "built $OUT/SmolVLM.xcframework"
