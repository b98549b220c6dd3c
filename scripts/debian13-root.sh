#!/usr/bin/env bash
# A Debian 13 (trixie) system in a chroot under the cache, for building and testing cmamap the
# way a Debian 13 user does (Debian's own rustc, gcc-14, bindgen, headers, linux-source and
# dkms), on a Debian 12 host whose glibc is too old to run trixie's toolchain directly.
#
#   scripts/debian13-root.sh [--] CMD ARGS...   run CMD as root inside the chroot
#   scripts/debian13-root.sh --path             print the chroot's directory
#
# Made once (debootstrap of trixie, then apt from trixie and trixie-backports inside it) and
# reused. The clone is bind-mounted at /cmamap; /proc and the bind mount live in a private
# mount namespace, so nothing stays mounted when the command ends. The host's own apt sources
# and packages are not touched: debootstrap itself is trixie's, unpacked into the cache.
# Needs root (chroot, mount).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEB13="$CMAMAP_CACHE/debian13"
ROOT="$DEB13/root"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a Debian 13 user installs to build cmamap for the backports 7.3 kernel (README).
DISTRO_KREL=${DISTRO_KREL:-7.3.4+deb13-amd64}
DEB13_PACKAGES=(rustc rust-src bindgen libclang-dev gcc-14 make flex bison bc libelf-dev
    libssl-dev openssl libc6-dev dwarves python3 xz-utils kmod dkms "linux-headers-$DISTRO_KREL" "linux-source-$KERNEL_SERIES")

[ "$(id -u)" = 0 ] || die "the Debian 13 chroot needs root (chroot, mount)"
if [ "${1:-}" = --path ]; then
    echo "$ROOT"
    exit 0
fi
[ "${1:-}" != -- ] || shift
[ $# -gt 0 ] || die "usage: $0 [--] CMD ARGS... | --path"

# Runs "$@" inside the chroot, with /proc and the clone mounted in a private namespace.
in_root() {
    unshare --mount --propagation private -- sh -ec '
        root=$1 clone=$2; shift 2
        mount -t proc proc "$root/proc"
        mkdir -p "$root/cmamap"
        mount --bind "$clone" "$root/cmamap"
        cp /etc/resolv.conf "$root/etc/resolv.conf"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ' sh "$ROOT" "$CMAMAP_ROOT" "$@"
}

mkdir -p "$DEB13"
exec 8>"$DEB13/root.lock"
flock 8
key=$(printf '%s\n' "$MIRROR" "${DEB13_PACKAGES[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$ROOT/.cmamap-ready" 2>/dev/null)" != "$key" ]; then
    if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
        step "Debian 13 chroot: debootstrap trixie into $ROOT" >&2
        # trixie's debootstrap, from the trixie index, unpacked: the host's may not know trixie.
        tools="$DEB13/tools" lists="$DEB13/apt"
        mkdir -p "$tools" "$lists/lists/partial" "$lists/cache/archives/partial"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" \
            >"$lists/trixie.list"
        APT=(-q -o "Dir::Etc::SourceList=$lists/trixie.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$lists/lists" -o "Dir::Cache=$lists/cache" -o Debug::NoLocking=1)
        if [ ! -x "$tools/usr/sbin/debootstrap" ]; then
            apt-get "${APT[@]}" update >/dev/null 2>&1 || die "apt-get update for trixie failed"
            (cd "$tools" && rm -f debootstrap_*.deb && apt-get "${APT[@]}" download debootstrap \
                >/dev/null 2>&1 && dpkg-deb -x debootstrap_*.deb .) || die "could not fetch trixie's debootstrap"
        fi
        rm -rf "$ROOT"
        DEBOOTSTRAP_DIR="$tools/usr/share/debootstrap" "$tools/usr/sbin/debootstrap" --variant=minbase \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg trixie "$ROOT" "$MIRROR" \
            >"$DEB13/debootstrap.log" 2>&1 || { tail -20 "$DEB13/debootstrap.log" >&2; die "debootstrap failed"; }
    fi
    step "Debian 13 chroot: apt install ${DEB13_PACKAGES[*]}" >&2
    cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR trixie main
deb $MIRROR trixie-updates main
deb $MIRROR trixie-backports main
EOF
    in_root apt-get -q -y update >"$DEB13/apt.log" 2>&1 || { tail -20 "$DEB13/apt.log" >&2; die "apt-get update in the chroot failed"; }
    # A cache, not a system: no fsync per file (much faster on a busy disk).
    in_root apt-get -q -y -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io install --no-install-recommends "${DEB13_PACKAGES[@]}" \
        >>"$DEB13/apt.log" 2>&1 || { tail -20 "$DEB13/apt.log" >&2; die "apt-get install in the chroot failed"; }
    in_root apt-get -q -y clean >/dev/null 2>&1 || true
    echo "$key" >"$ROOT/.cmamap-ready"
    step_done >&2
fi
exec 8>&-
in_root "$@"
