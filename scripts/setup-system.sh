#!/usr/bin/env bash
# Installs the system packages the build needs (OpenBLAS, pkg-config), when they are missing.
#   --dry-run   only print what would be installed.
# SETUP_SYSROOT (for testing the checks) prefixes the library directories that are searched.
set -euo pipefail
dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
if [ "$(uname -s)" = "Darwin" ]; then
  exit 0 # Accelerate ships with macOS.
fi

# The link (-lopenblas) needs the unversioned libopenblas.so that the -dev package installs; the
# runtime package only has libopenblas.so.0, which does not count.
has_openblas_link_name() {
  local root="${SETUP_SYSROOT:-}" f
  for f in "$root"/usr/lib/*/libopenblas.so "$root"/usr/lib/libopenblas.so "$root"/usr/lib64/libopenblas.so \
           "$root"/usr/local/lib/libopenblas.so; do
    [ -e "$f" ] && return 0
  done
  [ -n "$root" ] && return 1
  # "\tlibopenblas.so (libc6,x86-64) => ..." is the link name; "libopenblas.so.0 (" is not.
  ldconfig -p 2>/dev/null | grep -E '^[[:space:]]*libopenblas\.so[[:space:]]' >/dev/null
}

missing=()
has_openblas_link_name || missing+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # builds the vendored libjpeg-turbo
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)   # the installed library's soname
command -v go >/dev/null 2>&1 || missing+=(golang-go)   # the Go binding's tests
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
if [ "$dry_run" = 1 ]; then
  echo "setup: would install: ${missing[*]:-nothing}"
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install: ${missing[*]} (OpenBLAS, pkg-config, a C/C++ compiler, cmake, nasm, valgrind, Go)" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
