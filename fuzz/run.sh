#!/usr/bin/env bash
# Fuzz the dispatcher: `fuzz/run.sh [seconds]` (default 600).
# Installs the nightly toolchain and cargo-fuzz if they are missing.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

exec cargo +nightly fuzz run dispatch -- -max_total_time="$seconds"
