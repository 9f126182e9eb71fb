#!/usr/bin/env bash
# Boots the Linux test kernel on hvcall and prints when the milestones of
# the boot appeared on the console or in the hypercall trace, in seconds
# from the start of `hvcall run`:
#
#   linux/timeline.sh [vtl/vmlinux|vtl/bzImage|smp/vmlinux] [CPUS]
#
# Needs linux/build.sh to have run, and a release build of hvcall.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$("$here/build.sh" --print-dir)
kernel=${1:-vtl/vmlinux}
cpus=${2:-1}
[ -f "$dir/done" ] || { echo "linux/timeline.sh: run linux/build.sh first" >&2; exit 1; }
hvcall="$here/../target/release/hvcall"
[ -x "$hvcall" ] || (cd "$here/.." && cargo build --release -q)
start=$(date +%s.%N)
"$hvcall" run --kernel "$dir/$kernel" --initrd "$dir/initramfs.cpio" --cpus "$cpus" \
    --trace-hypercalls 2>&1 | while IFS= read -r line; do
    printf '%s %s\n' "$(date +%s.%N)" "$line"
done | awk -v start="$start" -v what="$kernel, $cpus VP" '
    function at(label) { printf "%-34s %7.1f s\n", label, $1 - start }
    !seen["linux"] && / Linux version / { at("kernel entered (Linux version)"); seen["linux"] = 1 }
    !seen["hv"] && /Hypervisor detected: Microsoft Hyper-V/ { at("Hyper-V detected"); seen["hv"] = 1 }
    !seen["call"] && /hypercall .*code=0x0050/ { at("HvCallGetVpRegisters (0x0050)"); seen["call"] = 1 }
    !seen["unpack"] && /Unpacking initramfs/ { at("initramfs unpacked"); seen["unpack"] = 1 }
    !seen["init"] && /Run \/init as init process/ { at("/init started"); seen["init"] = 1 }
    /hvcall run: / { at("VM ended (" substr($0, index($0, "hvcall run: ") + 12) ")") }
    BEGIN { print "timeline of " what ":" }
'
