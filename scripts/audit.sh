#!/usr/bin/env bash
# Dependency advisories: `cargo audit` checks Cargo.lock (and the fuzz targets' fuzz/Cargo.lock)
# against the RustSec advisory database. CI reaches only the package registries, so the database
# is the vendored snapshot third_party/rustsec-advisory-db.tar.gz (see third_party/README.md);
# its date is printed, since advisories published after it are not seen. A vulnerability fails;
# warnings (unmaintained or yanked crates) are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPSHOT="bf5c0d2 (2026-08-21)"
CARGO_AUDIT_VERSION=0.22.2
if ! cargo audit --version 2>/dev/null | grep -q "$CARGO_AUDIT_VERSION"; then
  cargo install cargo-audit --version "$CARGO_AUDIT_VERSION" --locked -q
fi
DB=target/advisory-db
rm -rf "$DB" && mkdir -p "$DB"
tar -xzf third_party/rustsec-advisory-db.tar.gz -C "$DB"
for lock in Cargo.lock fuzz/Cargo.lock; do
  echo "audit: $lock against the RustSec advisory database snapshot $SNAPSHOT"
  cargo audit --db "$DB" --no-fetch --file "$lock"
done
