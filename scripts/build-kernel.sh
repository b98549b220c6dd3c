#!/usr/bin/env bash
# Builds a cmamap test kernel (debug or plain) once and caches it by kernel version, config
# fragment, toolchain and architecture. Prints the build directory (usable as KDIR) on stdout's
# last line.
#   [CMAMAP_ARCH=x86_64|arm64] scripts/build-kernel.sh debug|plain
# Other architectures than the host's are cross builds: LLVM needs no cross toolchain.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

flavour=${1:-debug}
fragment="$CMAMAP_ROOT/qemu/$flavour.config"
[ -f "$fragment" ] || die "no config fragment qemu/$flavour.config (flavours: debug, plain)"
src=$(kernel_src_dir)
[ -n "$src" ] || die "kernel source missing in $CMAMAP_CACHE/src; run scripts/setup.sh"
command -v "clang$LLVM_SUFFIX" >/dev/null || die "clang$LLVM_SUFFIX missing; run scripts/setup.sh"
command -v bindgen >/dev/null || die "bindgen missing; run scripts/setup.sh"

out=$(kernel_build_dir "$flavour")
mkdir -p "$out"
exec 9>"$out.lock"
flock 9
if [ -f "$out/.cmamap-built" ] && [ -f "$(kernel_image "$out")" ]; then
    echo "kernel ($CMAMAP_ARCH $flavour) cached: $out" >&2
    echo "$out"
    exit 0
fi

jobs=$(($(nproc) + 1))
kmake() { make -C "$src" O="$out" ARCH="$CMAMAP_ARCH" LLVM="$LLVM_SUFFIX" "$@"; }

step "configuring the $CMAMAP_ARCH $flavour kernel ($(make -s -C "$src" kernelversion)) in $out" >&2
kernel_fragment "$flavour" >"$out/fragment.config"
kmake -s allnoconfig KCONFIG_ALLCONFIG="$out/fragment.config" >"$out/config.log" 2>&1 ||
    { tail -30 "$out/config.log" >&2; die "kernel configuration failed"; }
dropped=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$out/fragment.config" | while read -r line; do
    grep -qx "$line" "$out/.config" || echo "$line"
done)
[ -z "$dropped" ] || die "config options dropped by Kconfig (missing dependency or toolchain):
$dropped"

step "building the $CMAMAP_ARCH $flavour kernel with -j$jobs (first time only; ~10-20 min)" >&2
ticker_start "$out/build.log" "$out"
if ! kmake -j"$jobs" all >"$out/build.log" 2>&1; then
    ticker_stop
    grep -E 'error|Error' "$out/build.log" | head -20 >&2
    tail -20 "$out/build.log" >&2
    die "kernel build failed; full log in $out/build.log"
fi
ticker_stop
touch "$out/.cmamap-built"
step_done >&2
echo "$out"
