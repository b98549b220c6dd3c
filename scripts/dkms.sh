#!/usr/bin/env bash
# `make dkms-install` / `make dkms-uninstall`: scripts/dkms.sh install|uninstall VERSION KVER
# install: copies the module's sources to /usr/src/cmamap-VERSION, then dkms add, build and
# install for KVER (dkms rebuilds it by itself for later kernels: AUTOINSTALL). uninstall:
# dkms remove for every kernel, and the sources go. Needs root and the dkms package.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

action=${1:-} version=${2:-} kver=${3:-$(uname -r)}
[ -n "$version" ] || die "usage: $0 install|uninstall VERSION [KVER]"
command -v dkms >/dev/null || die "dkms not found: apt install dkms"
[ "$(id -u)" = 0 ] || die "dkms needs root: sudo make dkms-$action"
dest=/usr/src/cmamap-$version

case $action in
install)
    # What dkms needs to build: Kbuild, the driver, its shared ABI and the build scripts.
    rm -rf "$dest"
    mkdir -p "$dest/scripts"
    cp -r "$CMAMAP_ROOT/dkms.conf" "$CMAMAP_ROOT/Kbuild" "$CMAMAP_ROOT/driver" "$dest/"
    cp "$CMAMAP_ROOT"/scripts/{dkms-build.sh,build-distro.sh,lib.sh} "$dest/scripts/"
    # The driver includes the ABI that userspace shares (driver/abi.rs).
    mkdir -p "$dest/userspace/cmamap-abi/src"
    cp "$CMAMAP_ROOT/userspace/cmamap-abi/src/abi.rs" "$dest/userspace/cmamap-abi/src/"
    echo "sources in $dest"
    dkms status -m cmamap -v "$version" 2>/dev/null | grep -q . || dkms add -m cmamap -v "$version"
    dkms build -m cmamap -v "$version" -k "$kver" || die "dkms build failed; log: /var/lib/dkms/cmamap/$version/build/make.log"
    dkms install -m cmamap -v "$version" -k "$kver" --force
    dkms status -m cmamap -v "$version"
    ;;
uninstall)
    if dkms status -m cmamap -v "$version" 2>/dev/null | grep -q .; then
        dkms remove -m cmamap -v "$version" --all
    fi
    rm -rf "$dest"
    echo "removed cmamap $version from dkms and $dest"
    ;;
*) die "usage: $0 install|uninstall VERSION [KVER]" ;;
esac
