#!/usr/bin/env bash
# Builds the C library and installs it under PREFIX (default /usr/local): include/smolvlm.h;
# lib/libsmolvlm.so.X.Y.Z with the soname libsmolvlm.so.0 and the links .so.0 and .so to it (macOS:
# libsmolvlm.X.Y.Z.dylib with the install name PREFIX/lib/libsmolvlm.0.dylib); lib/libsmolvlm.a;
# lib/pkgconfig/smolvlm.pc (whose Libs.private lists what the static archive needs), so C programs
# build with `cc app.c $(pkg-config --cflags --libs smolvlm)`; and include/smol-vision/, the
# headers for programs written for the original engine (see the README's "Migrating from
# smol-vision"). `cargo cinstall --release --prefix PREFIX --libdir lib` (cargo-c) installs the same
# files.
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
major=${version%%.*}
install -d "$PREFIX/include/smol-vision" "$PREFIX/lib/pkgconfig"
install -m 644 include/smolvlm.h "$PREFIX/include/smolvlm.h"
install -m 644 include/smol-vision/*.h "$PREFIX/include/smol-vision/"
# The shared library under its full version, named by its ABI major version (the soname, or the
# install name on macOS), with the links libsmolvlm.so.0 and libsmolvlm.so to it (as cargo-c does).
case "$(uname -s)" in
  Darwin)
    real=libsmolvlm.$version.dylib abi=libsmolvlm.$major.dylib link=libsmolvlm.dylib
    install -m 755 target/release/libsmolvlm.dylib "$PREFIX/lib/$real"
    install_name_tool -id "$PREFIX/lib/$abi" "$PREFIX/lib/$real"
    ;;
  *)
    real=libsmolvlm.so.$version abi=libsmolvlm.so.$major link=libsmolvlm.so
    install -m 755 target/release/libsmolvlm.so "$PREFIX/lib/$real"
    patchelf --set-soname "$abi" "$PREFIX/lib/$real"
    ;;
esac
ln -sfn "$real" "$PREFIX/lib/$abi"
ln -sfn "$real" "$PREFIX/lib/$link"
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
echo "installed smolvlm $version into $PREFIX"
