#!/usr/bin/env bash
# Regenerates ../common/guests.rs from the *.S files here (needs GNU as,
# ld and objcopy). Each guest is linked at 0x100000, the lowest address
# the boot protocol allows for images.
set -euo pipefail
cd "$(dirname "$0")"
out=../common/guests.rs
tmp=$(mktemp -d)
{
  echo "//! Hand-written test guests, assembled from tests/guests/*.S by"
  echo "//! tests/guests/assemble.sh (do not edit by hand). Each is flat code"
  echo "//! linked at 0x100000."
  for s in *.S; do
    name=$(basename "$s" .S)
    as --64 -o "$tmp/$name.o" "$s"
    ld -m elf_x86_64 -Ttext=0x100000 -e 0x100000 -o "$tmp/$name.elf" "$tmp/$name.o"
    objcopy -O binary "$tmp/$name.elf" "$tmp/$name.bin"
    upper=$(echo "$name" | tr 'a-z-' 'A-Z_')
    echo
    echo "/// tests/guests/$name.S"
    echo "pub const $upper: &[u8] = &["
    od -An -v -tx1 "$tmp/$name.bin" | sed -E 's/ ([0-9a-f]{2})/0x\1, /g; s/^/   /; s/ +$//'
    echo "];"
  done
} > "$out"
rm -rf "$tmp"
rustfmt --edition 2021 "$out"
