#!/usr/bin/env bash
# Builds the Linux kernels and the initramfs that hvcall's Linux test boots,
# from Debian's linux-source-6.12 package and the fragments beside this file,
# into a cache outside the source tree (reused while the inputs are the same).
#
#   linux/build.sh              install what is missing, build, print the dir
#   linux/build.sh --print-dir  only print where the result is (or would be)
#
# The result directory holds:
#   vtl/vmlinux, vtl/bzImage   tinyconfig + config.fragment (HYPERV_VTL_MODE)
#   smp/vmlinux                the same with config-smp.fragment (no VTL mode)
#   initramfs.cpio             /init built from init.c (newc, uncompressed)
# Cache root: $HVCALL_CACHE, else $XDG_CACHE_HOME/hvcall, else ~/.cache/hvcall.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HVCALL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hvcall}
key=$(cat "$here/build.sh" "$here/config.fragment" "$here/config-smp.fragment" "$here/init.c" | sha256sum | cut -c1-16)
out="$cache/linux-6.12-$key"

if [ "${1:-}" = "--print-dir" ]; then
    echo "$out"
    exit 0
fi
if [ -f "$out/done" ]; then
    echo "linux/build.sh: reusing $out" >&2
    echo "$out"
    exit 0
fi

packages=(linux-source-6.12 xz-utils make gcc libc6-dev flex bison bc libelf-dev cpio lz4)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "linux/build.sh: installing ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

tarball=$(ls /usr/src/linux-source-6.12.tar.* | head -n 1)
work="$cache/work-$key"
rm -rf "$work"
mkdir -p "$work"
echo "linux/build.sh: unpacking $tarball" >&2
tar -C "$work" -xf "$tarball"
src=$(echo "$work"/linux-source-6.12)
jobs=$(nproc)

# build FLAVOUR TARGETS FRAGMENT...: configure tinyconfig + fragments in
# the one object directory, check every fragment line took, build TARGETS.
# The flavours share the object directory, so the second rebuilds only
# what its options change (Kbuild tracks each file's CONFIG_ dependencies).
obj="$work/obj"
build() {
    local flavour=$1 targets=$2
    shift 2
    mkdir -p "$obj"
    make -C "$src" O="$obj" ARCH=x86_64 tinyconfig >&2
    "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$@" >&2
    make -C "$src" O="$obj" ARCH=x86_64 olddefconfig >&2
    # Every option the fragments set, the last fragment winning.
    local -A wanted=()
    local line name
    for line in $(cat "$@" | sed -e 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1=n/' | grep -E '^CONFIG_'); do
        wanted[${line%%=*}]=${line#*=}
    done
    for name in "${!wanted[@]}"; do
        local want=${wanted[$name]} have
        have=$(grep -E "^$name=" "$obj/.config" | cut -d= -f2- || true)
        [ -n "$have" ] || have=n
        if [ "$have" != "$want" ]; then
            echo "linux/build.sh: $flavour: $name is '$have' in .config, the fragment wants '$want'" >&2
            exit 1
        fi
    done
    echo "linux/build.sh: building $flavour ($targets) with $jobs jobs" >&2
    local start=$SECONDS
    make -C "$src" O="$obj" ARCH=x86_64 -j"$jobs" $targets >&2
    echo "linux/build.sh: $flavour built in $((SECONDS - start)) s" >&2
}

mkdir -p "$work/result/vtl" "$work/result/smp"
build vtl "vmlinux bzImage" "$here/config.fragment"
cp "$obj/vmlinux" "$work/result/vtl/vmlinux"
cp "$obj/arch/x86/boot/bzImage" "$work/result/vtl/bzImage"
build smp "vmlinux" "$here/config.fragment" "$here/config-smp.fragment"
cp "$obj/vmlinux" "$work/result/smp/vmlinux"

# The initramfs: /init and /dev/console, in the kernel's newc cpio format.
rootfs="$work/rootfs"
mkdir -p "$rootfs/dev"
gcc -static -nostdlib -ffreestanding -fno-pic -no-pie -Os -Wl,--build-id=none \
    -o "$rootfs/init" "$here/init.c"
"$obj/usr/gen_init_cpio" /dev/stdin > "$work/result/initramfs.cpio" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
file /init $rootfs/init 0755 0 0
LIST

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work/result" "$out"
touch "$out/done"
rm -rf "$work"
echo "linux/build.sh: built $out" >&2
echo "$out"
