#!/usr/bin/env bash
# Builds cmamap.ko for a stock Debian 13 kernel (trixie-backports 7.3, CONFIG_RUST=y) from
# Debian's own packages: the kernel's headers and config, linux-source, and the exact
# toolchain Debian built that kernel with (gcc-14, rustc 1.85.1, bindgen 0.71.1).
#
#   scripts/build-distro.sh [--kernel KREL] [--out DIR] [--print-kdir]
#     --kernel KREL   the kernel release (default: the running kernel on Debian 13,
#                     7.3.4+deb13-amd64 elsewhere)
#     --out DIR       where cmamap.ko goes (default out/distro/KREL)
#     --print-kdir    only prepare the kernel tree and print it (usable as KDIR)
#
# Debian's headers package has no Rust metadata (rust/*.rmeta), so an out-of-tree Rust module
# cannot build from it alone. This script prepares, once per kernel, a tree from linux-source
# with Debian's .config (`make olddefconfig prepare`), which compiles the kernel's Rust crates;
# Debian's rustc gives them the same symbol hashes as the running kernel's (its Module.symvers,
# copied in, lets modpost prove it: an unresolved Rust symbol fails the build). The C glue is
# compiled by Debian's gcc-14 as well: the config is GCC's, and rebuilding it with another
# compiler would change compiler-dependent options; the script checks that olddefconfig left
# Debian's config exactly as it was. The module is not signed; Debian does not enforce
# signatures (MODULE_SIG_FORCE is off), it only taints the kernel (E).
#
# On Debian 13 it runs directly (packages: see README). Elsewhere (the Debian 12 host of the
# project's CI) it runs itself inside scripts/debian13-root.sh's Debian 13 chroot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

krel="" out="" print_kdir=0
while [ $# -gt 0 ]; do
    case $1 in
    --kernel) krel=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --print-kdir) print_kdir=1; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "$codename" != trixie ] && [ -z "${CMAMAP_DISTRO_NATIVE:-}" ]; then
    # Not Debian 13: do the same inside a Debian 13 chroot, with the clone at /cmamap.
    krel=${krel:-${DISTRO_KREL:-7.3.4+deb13-amd64}}
    out=${out:-$CMAMAP_ROOT/out/distro/$krel}
    case $(realpath -m "$out") in
    "$CMAMAP_ROOT"/*) ;;
    *) die "--out must be inside the clone ($CMAMAP_ROOT) when building in the chroot" ;;
    esac
    rel=$(realpath -m --relative-to="$CMAMAP_ROOT" "$out")
    echo "not Debian 13 (${codename:-unknown}): building in the Debian 13 chroot" >&2
    args=(--kernel "$krel" --out "/cmamap/$rel")
    [ "$print_kdir" = 0 ] || args+=(--print-kdir)
    exec "$CMAMAP_ROOT/scripts/debian13-root.sh" -- /usr/bin/env CMAMAP_DISTRO_NATIVE=1 \
        /cmamap/scripts/build-distro.sh "${args[@]}"
fi

krel=${krel:-$(uname -r)}
out=${out:-$CMAMAP_ROOT/out/distro/$krel}
series=$(cut -d. -f1-2 <<<"$krel")

# --- Debian's headers and config -----------------------------------------------------------
headers=/usr/src/linux-headers-$krel
[ -d "$headers" ] || headers=$(readlink -f "/lib/modules/$krel/build" 2>/dev/null || true)
[ -f "$headers/.config" ] && [ -f "$headers/Module.symvers" ] ||
    die "no headers for $krel: apt install linux-headers-$krel"
config=$headers/.config
grep -qx CONFIG_RUST=y "$config" || die "$krel is not built with CONFIG_RUST=y: cmamap needs Rust"
grep -qx CONFIG_DMA_CMA=y "$config" || die "$krel has no CONFIG_DMA_CMA=y: cmamap needs CMA"
conf() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$config"; }

# --- The toolchain the kernel was built with -----------------------------------------------
# Debian's headers say which compiler (CROSS_COMPILE and CC in .kernelvariables).
cross=$(sed -n 's/^override CROSS_COMPILE = //p' "$headers/.kernelvariables" 2>/dev/null || true)
cc_name=$(sed -n 's/^CC = .*)\(gcc-[0-9]*\)$/\1/p' "$headers/.kernelvariables" 2>/dev/null || true)
cc=${cross}${cc_name:-gcc}
rustc=${RUSTC:-/usr/bin/rustc}
bindgen=${BINDGEN:-/usr/bin/bindgen}
want_cc=$(conf CONFIG_CC_VERSION_TEXT) want_rustc=$(conf CONFIG_RUSTC_VERSION_TEXT)
want_bindgen=$(conf CONFIG_BINDGEN_VERSION_TEXT)
have() { "$@" --version 2>/dev/null | head -1; }
[ "$(have "$cc")" = "$want_cc" ] ||
    die "the kernel was built with '$want_cc'; $cc gives '$(have "$cc")' (apt install ${cc_name:-gcc})"
[ "$(have "$rustc")" = "$want_rustc" ] ||
    die "the kernel was built with '$want_rustc'; $rustc gives '$(have "$rustc")' (apt install rustc rust-src from Debian 13, not rustup's)"
[ "$(have "$bindgen")" = "$want_bindgen" ] ||
    die "the kernel was built with '$want_bindgen'; $bindgen gives '$(have "$bindgen")' (apt install bindgen)"
[ -f "$("$rustc" --print sysroot)/lib/rustlib/src/rust/library/core/src/lib.rs" ] ||
    die "no Rust library source for $rustc: apt install rust-src"
command -v openssl >/dev/null || die "openssl missing (the config probes it for ML-DSA): apt install openssl"
command -v pahole >/dev/null || ! grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$config" ||
    die "pahole missing (the config's BTF options depend on it): apt install dwarves"

# --- linux-source of exactly the headers' version -------------------------------------------
hdr_version=$(dpkg-query -W -f='${Version}' "linux-headers-$krel" 2>/dev/null || true)
src_version=$(dpkg-query -W -f='${Version}' "linux-source-$series" 2>/dev/null || true)
[ -n "$src_version" ] || die "no kernel source: apt install linux-source-$series"
[ -z "$hdr_version" ] || [ "$hdr_version" = "$src_version" ] ||
    die "linux-source-$series is $src_version but linux-headers-$krel is $hdr_version: install the same version of both"
distro="$CMAMAP_CACHE/distro"
mkdir -p "$distro"
src="$distro/linux-source-$src_version"
exec 9>"$distro/lock"
flock 9
if [ ! -f "$src/.cmamap-unpacked" ]; then
    tarball=$(ls /usr/src/linux-source-"$series".tar.* 2>/dev/null | head -1)
    [ -f "$tarball" ] || die "no /usr/src/linux-source-$series.tar.*: apt install linux-source-$series"
    step "unpacking $(basename "$tarball") ($src_version)" >&2
    rm -rf "$src" "$src.tmp" && mkdir -p "$src.tmp"
    tar -xf "$tarball" -C "$src.tmp"
    mv "$src.tmp/linux-source-$series" "$src" && rmdir "$src.tmp"
    touch "$src/.cmamap-unpacked"
fi

# --- The prepared tree: Debian's config, the kernel's Rust crates, Debian's Module.symvers ---
key=$({
    echo "$src_version"
    cat "$config" "$headers/Module.symvers"
    echo "$want_cc $want_rustc $want_bindgen"
} | sha256sum | cut -c1-16)
kdir="$distro/kernel-$krel-$key"
tools=(ARCH=x86 CROSS_COMPILE="$cross" CC="$cc" HOSTCC="${cc_name:-gcc}" RUSTC="$rustc" HOSTRUSTC="$rustc"
    BINDGEN="$bindgen")
kmake() { make -C "$src" O="$kdir" "${tools[@]}" KERNELRELEASE="$krel" "$@"; }
if [ ! -f "$kdir/.cmamap-prepared" ]; then
    step "preparing $krel's tree with its Rust crates (~2-4 min, once) in $kdir" >&2
    rm -rf "$kdir" && mkdir -p "$kdir"
    cp "$config" "$kdir/.config"
    kmake -s olddefconfig >"$kdir/prepare.log" 2>&1 || { tail -20 "$kdir/prepare.log" >&2; die "olddefconfig failed"; }
    # Any change here means this toolchain would build something else than Debian's kernel.
    if ! diff <(grep -v '^#' "$config" | grep .) <(grep -v '^#' "$kdir/.config" | grep .) >"$kdir/config.diff"; then
        head -20 "$kdir/config.diff" >&2
        die "olddefconfig changed Debian's config with this toolchain (diff above); refusing to build a mismatched module"
    fi
    kmake -j"$(($(nproc) + 1))" modules_prepare >>"$kdir/prepare.log" 2>&1 ||
        { grep -iE 'error' "$kdir/prepare.log" | head -20 >&2; die "modules_prepare failed; log: $kdir/prepare.log"; }
    cp "$headers/Module.symvers" "$kdir/Module.symvers"
    touch "$kdir/.cmamap-prepared"
fi
exec 9>&-
if [ "$print_kdir" = 1 ]; then
    echo "$kdir"
    exit 0
fi

# --- The module ----------------------------------------------------------------------------
step "building cmamap.ko for $krel" >&2
mkdir -p "$out"
out=$(cd "$out" && pwd)
make -C "$kdir" "${tools[@]}" M="$CMAMAP_ROOT" MO="$out" -j"$(($(nproc) + 1))" modules >"$out/build.log" 2>&1 ||
    { cat "$out/build.log" >&2; die "module build failed"; }
vermagic=$(modinfo -F vermagic "$out/cmamap.ko")
case $vermagic in
"$krel "*) ;;
*) die "cmamap.ko has vermagic '$vermagic', not $krel's" ;;
esac
# The same vermagic as the kernel's own modules, when they are installed.
ref=$(find "/lib/modules/$krel/kernel" -name '*.ko*' -print -quit 2>/dev/null || true)
[ -z "$ref" ] || [ "$(modinfo -F vermagic "$ref")" = "$vermagic" ] ||
    die "vermagic '$vermagic' differs from $krel's own modules ('$(modinfo -F vermagic "$ref")')"
step_done >&2
echo "built $out/cmamap.ko (vermagic: $vermagic)" >&2
echo "$out/cmamap.ko"
