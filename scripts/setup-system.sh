#!/usr/bin/env bash
# Installs the system packages the build needs (OpenBLAS, pkg-config), when they are missing.
set -euo pipefail
if [ "$(uname -s)" = "Darwin" ]; then
  exit 0 # Accelerate ships with macOS.
fi
missing=()
ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so' || missing+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # builds the vendored libjpeg-turbo
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v go >/dev/null 2>&1 || missing+=(golang-go)   # the Go binding's tests
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
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
