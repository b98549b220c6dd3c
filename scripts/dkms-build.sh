#!/usr/bin/env bash
# DKMS's build command (dkms.conf): builds cmamap.ko for kernel KREL into the current directory.
#   scripts/dkms-build.sh KREL [KERNEL_SOURCE_DIR]
# A kernel tree that has the Rust crates' metadata (a kernel you built yourself) builds the
# module directly. Debian's headers have none, so for them scripts/build-distro.sh prepares
# a tree from linux-source with the kernel's own toolchain (once per kernel; a few minutes).
set -euo pipefail
krel=${1:?usage: dkms-build.sh KREL [KERNEL_SOURCE_DIR]}
ksrc=${2:-/lib/modules/$krel/build}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ -f "$ksrc/rust/libkernel.rmeta" ]; then
    echo "cmamap: $ksrc has the Rust crates; building against it"
    llvm=()
    grep -q '^CONFIG_CC_IS_CLANG=y' "$ksrc/.config" && llvm=(LLVM="${LLVM:-1}")
    exec make -C "$ksrc" M="$here" "${llvm[@]}" modules
fi
echo "cmamap: $ksrc has no Rust metadata (a distribution's headers); preparing a tree from linux-source"
# DKMS runs as root, often without a useful HOME: keep the prepared trees in /var/cache.
[ "$(id -u)" != 0 ] || export CMAMAP_CACHE=${CMAMAP_CACHE:-/var/cache/cmamap}
CMAMAP_DISTRO_NATIVE=1 exec bash scripts/build-distro.sh --kernel "$krel" --out "$here"
