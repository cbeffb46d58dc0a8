#!/usr/bin/env bash
# Builds the C library and installs it under PREFIX (default /usr/local): include/smolvlm.h,
# lib/libsmolvlm.{so,dylib,a} and lib/pkgconfig/smolvlm.pc (whose Libs.private lists what the
# static archive needs), so C programs can build with `cc app.c $(pkg-config --cflags --libs smolvlm)`;
# and include/smol-vision/ with smolvlm-compat.pc for programs written for the original engine
# (`cc main.c $(pkg-config --cflags --libs smolvlm-compat)`).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-${PREFIX:-/usr/local}}"
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
bash scripts/setup-system.sh
cargo build -j"${JOBS:-2}" --release --locked --lib
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The system libraries the static archive needs, as rustc reports them.
private=$(cargo rustc -q --release --locked --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -1)
case "$(uname -s)" in
  Darwin) shared=libsmolvlm.dylib ;;
  *) shared=libsmolvlm.so ;;
esac
install -d "$PREFIX/include/smol-vision" "$PREFIX/lib/pkgconfig"
install -m 644 include/smolvlm.h "$PREFIX/include/smolvlm.h"
install -m 644 include/smol-vision/*.h "$PREFIX/include/smol-vision/"
install -m 755 "target/release/$shared" "$PREFIX/lib/$shared"
install -m 644 target/release/libsmolvlm.a "$PREFIX/lib/libsmolvlm.a"
cat > "$PREFIX/lib/pkgconfig/smolvlm.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: smolvlm
Description: CPU inference for SmolVLM vision-language models (C API)
Version: $version
Libs: -L\${libdir} -lsmolvlm
Libs.private: $private
Cflags: -I\${includedir}
PC
# Programs written for the original smol-vision engine: its header names, same library.
cat > "$PREFIX/lib/pkgconfig/smolvlm-compat.pc" <<PC
prefix=$PREFIX
includedir=\${prefix}/include

Name: smolvlm-compat
Description: smolvlm built as a drop-in for programs written against smol-vision's headers
Version: $version
Requires: smolvlm = $version
Cflags: -I\${includedir}/smol-vision
PC
echo "installed smolvlm $version into $PREFIX"
