#!/usr/bin/env bash
# Fuzz hvcall: `fuzz/run.sh [seconds] [target|all]` (default: 600 s of
# `dispatch`; `all` gives each target the whole time in turn). Targets:
# dispatch, loader, register_names. Installs the nightly toolchain and
# cargo-fuzz if they are missing. Each target's corpus grows in
# corpus/TARGET (not committed) from the committed seeds in seeds/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
target="${2:-dispatch}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The dispatcher and the name parser are safe Rust (no `unsafe` in their
# crates): they run without AddressSanitizer, several times faster. The
# loaders reach vm-memory's and linux-loader's unsafe code: ASan stays on.
sanitizer() {
    case "$1" in
        loader) echo address ;;
        *) echo none ;;
    esac
}

run() {
    mkdir -p "corpus/$1" "seeds/$1"
    cargo +nightly fuzz run --sanitizer "$(sanitizer "$1")" "$1" "corpus/$1" "seeds/$1" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1
}
if [ "$target" = all ]; then
    for t in dispatch loader register_names; do run "$t"; done
else
    run "$target"
fi
