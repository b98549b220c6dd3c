#!/usr/bin/env bash
# Installs everything cmamap needs on Debian 12 and fetches the kernel source.
# Idempotent: each step checks first and does nothing when its piece is already there.
# Backports come from a private apt source list; the system's sources are not changed.
#   scripts/setup.sh [x86_64] [arm64]   the architectures to test (default: the host's)
# An architecture other than the host's adds its QEMU, the static cross glibc and linker for
# the Rust guest tools, the Rust target, and a static busybox for its initramfs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=("$CMAMAP_ARCH")
want_arch() {
    local a
    for a in "${arches[@]}"; do
        case $a in x86 | amd64) a=x86_64 ;; aarch64) a=arm64 ;; esac
        [ "$a" = "$1" ] && return 0
    done
    return 1
}
for a in "${arches[@]}"; do
    case $a in x86_64 | x86 | amd64 | arm64 | aarch64) ;; *) die "unknown architecture $a (x86_64 or arm64)" ;; esac
done

APT_PACKAGES=(clang-19 lld-19 llvm-19 libclang-19-dev bc bison flex libelf-dev libssl-dev
    cpio kmod busybox-static make gcc libc6-dev python3 xz-utils ca-certificates file)
# What arm64 adds: the static glibc and the linker of the aarch64 Rust target.
APT_PACKAGES_ARM64=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
want_arch arm64 && APT_PACKAGES+=("${APT_PACKAGES_ARM64[@]}")
APT_DIR="$CMAMAP_CACHE/apt"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
    done
}

# apt options that add the two backports suites to the system's own sources, privately.
write_private_sources() {
    mkdir -p "$APT_DIR"
    cat >"$APT_DIR/backports.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
EOF
}
APT_PRIVATE=(-o "Dir::Etc::SourceList=$APT_DIR/backports.list" -o Dir::Etc::SourceParts=/etc/apt/sources.list.d)
APT_QUIET=(-y -q -o Dpkg::Use-Pty=0 -o APT::Color=0)
export DEBIAN_FRONTEND=noninteractive

step "checking the machine"
command -v apt-get >/dev/null || die "apt-get not found: cmamap's set-up needs Debian 12 (bookworm)"
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
command -v rustup >/dev/null || die "rustup not found: the kernel needs rust-src, which only rustup installs"
[ -n "$SUDO" ] && ! command -v sudo >/dev/null && die "not root and no sudo: cannot install packages"
mkdir -p "$CMAMAP_CACHE"
echo "    cache: $CMAMAP_CACHE"

step "apt packages from Debian 12 (LLVM 19 toolchain, kernel build tools, busybox)"
mapfile -t need < <(missing_packages "${APT_PACKAGES[@]}")
if [ "${#need[@]}" -gt 0 ]; then
    echo "    installing: ${need[*]}"
    $SUDO apt-get "${APT_QUIET[@]}" update >/dev/null || die "apt-get update failed (network?)"
    $SUDO apt-get "${APT_QUIET[@]}" install --no-install-recommends "${need[@]}" ||
        die "could not install: ${need[*]}"
else
    echo "    all present"
fi

step "QEMU from bookworm-backports (private source list)"
write_private_sources
qemu_packages=()
want_arch x86_64 && ! command -v qemu-system-x86_64 >/dev/null && qemu_packages+=(qemu-system-x86)
want_arch arm64 && ! command -v qemu-system-aarch64 >/dev/null && qemu_packages+=(qemu-system-arm)
if [ ${#qemu_packages[@]} -gt 0 ]; then
    echo "    installing: ${qemu_packages[*]}"
    $SUDO apt-get "${APT_QUIET[@]}" "${APT_PRIVATE[@]}" update >/dev/null ||
        die "apt-get update with the backports source list failed"
    $SUDO apt-get "${APT_QUIET[@]}" "${APT_PRIVATE[@]}" -t bookworm-backports install \
        --no-install-recommends "${qemu_packages[@]}" ||
        die "could not install ${qemu_packages[*]} from bookworm-backports"
fi
want_arch x86_64 && qemu-system-x86_64 --version | head -1 | sed 's/^/    /'
want_arch arm64 && qemu-system-aarch64 --version | head -1 | sed 's/^/    /'

if want_arch arm64; then
    step "arm64: the Rust target and a static busybox for the guest"
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
        rustup target add aarch64-unknown-linux-gnu || die "rustup target add aarch64-unknown-linux-gnu failed"
    bb="$(busybox_path arm64)"
    if [ -x "$bb" ]; then
        echo "    present: $bb"
    else
        # Debian's own arm64 busybox-static, fetched with a private index of bookworm's arm64
        # packages: the system's dpkg architectures are not changed.
        dl="$CMAMAP_CACHE/download/arm64"
        mkdir -p "$dl/lists/partial" "$dl/cache" "$(dirname "$bb")"
        echo 'deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main' >"$dl/bookworm.list"
        ARM64=(-o "Dir::Etc::SourceList=$dl/bookworm.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$dl/lists" -o "Dir::Cache=$dl/cache" -o Debug::NoLocking=1
            -o APT::Architecture=arm64 -o APT::Architectures::=arm64)
        apt-get "${APT_QUIET[@]}" "${ARM64[@]}" update >/dev/null || die "apt-get update for bookworm arm64 failed"
        (cd "$dl" && rm -f busybox-static_*.deb && apt-get "${APT_QUIET[@]}" "${ARM64[@]}" download busybox-static:arm64) ||
            die "could not download busybox-static:arm64"
        rm -rf "$dl/x" && dpkg-deb -x "$dl"/busybox-static_*_arm64.deb "$dl/x"
        file -L "$dl/x/bin/busybox" | grep -q 'ARM aarch64.*statically linked' ||
            die "the downloaded busybox is not a static aarch64 binary"
        install -m 755 "$dl/x/bin/busybox" "$bb.tmp" && mv "$bb.tmp" "$bb"
        rm -rf "$dl/x" "$dl"/busybox-static_*.deb
        echo "    $(file -bL "$bb" | cut -d, -f1-2) in $bb"
    fi
fi

step "Rust: rust-src and bindgen-cli $BINDGEN_VERSION"
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src ||
    die "rustup component add rust-src failed"
if ! bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION"; then
    cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION" ||
        die "cargo install bindgen-cli $BINDGEN_VERSION failed"
fi
echo "    $(rustc --version), $(bindgen --version)"

step "kernel source linux-source-$KERNEL_SERIES (trixie-backports)"
if [ -n "${KDIR:-${KERNEL_SRC:-}}" ]; then
    echo "    using your tree ${KDIR:-$KERNEL_SRC}; nothing to fetch"
elif [ -n "$(kernel_src_dir)" ]; then
    echo "    present: $(kernel_src_dir)"
else
    # A separate lists dir keeps the trixie index out of the system's apt state.
    dl="$CMAMAP_CACHE/download"
    mkdir -p "$dl/lists/partial" "$dl/archives/partial"
    grep trixie "$APT_DIR/backports.list" >"$dl/trixie.list"
    TRIXIE=(-o "Dir::Etc::SourceList=$dl/trixie.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dl/lists" -o "Dir::Cache=$dl/cache" -o Debug::NoLocking=1)
    mkdir -p "$dl/cache"
    apt-get "${APT_QUIET[@]}" "${TRIXIE[@]}" update >/dev/null ||
        die "apt-get update for trixie-backports failed"
    (cd "$dl" && rm -f linux-source-"$KERNEL_SERIES"_*.deb &&
        apt-get "${APT_QUIET[@]}" "${TRIXIE[@]}" download "linux-source-$KERNEL_SERIES") ||
        die "could not download linux-source-$KERNEL_SERIES from trixie-backports"
    deb=$(ls "$dl"/linux-source-"$KERNEL_SERIES"_*.deb | head -1)
    echo "    unpacking $(basename "$deb")"
    rm -rf "$dl/x" && mkdir -p "$dl/x" "$CMAMAP_CACHE/src"
    dpkg-deb -x "$deb" "$dl/x"
    tarball=$(ls "$dl"/x/usr/src/linux-source-"$KERNEL_SERIES".tar.* | head -1)
    [ -f "$tarball" ] || die "no kernel tarball inside $deb"
    tmp="$CMAMAP_CACHE/src/.unpack.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    tar -xf "$tarball" -C "$tmp"
    mv "$tmp/linux-source-$KERNEL_SERIES" "$CMAMAP_CACHE/src/"
    rm -rf "$tmp" "$dl/x" "$deb"
    echo "    unpacked to $(kernel_src_dir)"
fi
[ -n "${KDIR:-${KERNEL_SRC:-}}" ] || [ -n "$(kernel_src_dir)" ] || die "kernel source not found after set-up"

step "checking the Rust toolchain against the kernel"
src=$(kernel_src_dir)
if [ -n "$src" ]; then
    make -s -C "$src" LLVM="$LLVM_SUFFIX" rustavailable || die "the kernel says Rust is not available (see above)"
fi
step_done
echo "set-up complete"
