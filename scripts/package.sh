#!/usr/bin/env bash
# Builds the Debian package (README "Install"): the release binary, its man pages and shell
# completions (written by the binary itself from its clap definitions), then `cargo deb`.
# Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
cargo build --release --locked
rm -rf target/assets
target/release/mailtrail generate-docs target/assets >/dev/null
cargo deb --no-build --no-strip --output target/debian/ >/dev/null
ls target/debian/mailtrail_*.deb | tail -1
