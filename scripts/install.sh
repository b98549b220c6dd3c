#!/usr/bin/env bash
# `make install` and `make uninstall`: scripts/install.sh install|uninstall|list
# Environment (the Makefile passes its variables):
#   DESTDIR        staging root (packaging); empty for the real system
#   PREFIX         /usr/local by default: the CLI in PREFIX/bin, the header in PREFIX/include
#   KVER           kernel release the module is for (default: the running kernel)
#   INSTALL_MODULE the cmamap.ko to install; empty to skip the module (DKMS installs it)
#   CLI            the cmamap binary
#   UDEVDIR        /etc/udev/rules.d;  MODPROBEDIR  /etc/modprobe.d
# Installs the module as /lib/modules/KVER/updates/cmamap.ko (then depmod), the CLI, the C
# header as <cmamap.h> (PREFIX/include/cmamap.h: /usr/include/linux belongs to the kernel's
# own headers package), a udev rule giving /dev/cmamap to the group cmamap with mode 0660,
# and a commented modprobe.d file with the module parameters. Without DESTDIR it also creates
# the system group cmamap and reloads udev's rules.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

action=${1:-}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
KVER=${KVER:-$(uname -r)}
INSTALL_MODULE=${INSTALL_MODULE-$CMAMAP_ROOT/cmamap.ko}
CLI=${CLI:-$CMAMAP_ROOT/userspace/target/x86_64-unknown-linux-gnu/release/cmamap}
UDEVDIR=${UDEVDIR:-/etc/udev/rules.d}
MODPROBEDIR=${MODPROBEDIR:-/etc/modprobe.d}

moddir=/lib/modules/$KVER/updates
# Every installed file: destination, mode, source.
files=()
[ -z "$INSTALL_MODULE" ] || files+=("$moddir/cmamap.ko 0644 $INSTALL_MODULE")
files+=("$PREFIX/bin/cmamap 0755 $CLI"
    "$PREFIX/include/cmamap.h 0644 $CMAMAP_ROOT/driver/uapi/cmamap.h"
    "$UDEVDIR/60-cmamap.rules 0644 $CMAMAP_ROOT/dist/60-cmamap.rules"
    "$MODPROBEDIR/cmamap.conf 0644 $CMAMAP_ROOT/dist/cmamap.conf")

# depmod for KVER, on the real system only (a DESTDIR is the packager's business).
run_depmod() {
    [ -z "$DESTDIR" ] && [ -n "$INSTALL_MODULE" ] || return 0
    if [ -d "/lib/modules/$KVER/kernel" ]; then
        echo "depmod -a $KVER"
        depmod -a "$KVER"
    else
        echo "not running depmod: /lib/modules/$KVER is not an installed kernel"
    fi
}

case $action in
list)
    for f in "${files[@]}"; do
        read -r dest mode _ <<<"$f"
        echo "$mode $dest"
    done
    ;;
install)
    if [ -n "$INSTALL_MODULE" ]; then
        [ -f "$INSTALL_MODULE" ] || die "$INSTALL_MODULE missing: build it first (make distro on Debian 13, make KDIR=... elsewhere)"
        vermagic=$(modinfo -F vermagic "$INSTALL_MODULE")
        [ "${vermagic%% *}" = "$KVER" ] ||
            die "$INSTALL_MODULE is built for ${vermagic%% *}, not $KVER: build it for $KVER (make distro KVER=$KVER) or set KVER"
    fi
    [ -x "$CLI" ] || die "$CLI missing: run make userspace"
    for f in "${files[@]}"; do
        read -r dest mode src <<<"$f"
        echo "install -m $mode $DESTDIR$dest"
        install -D -m "$mode" "$src" "$DESTDIR$dest"
    done
    run_depmod
    if [ -z "$DESTDIR" ]; then
        getent group cmamap >/dev/null || { echo "groupadd --system cmamap"; groupadd --system cmamap; }
        if command -v udevadm >/dev/null && [ -d /run/udev ]; then
            udevadm control --reload-rules || true
            udevadm trigger --subsystem-match=misc --sysname-match=cmamap || true
        fi
        echo "done. Users in the group cmamap can open /dev/cmamap: usermod -aG cmamap USER (then log in again)"
    fi
    ;;
uninstall)
    for f in "${files[@]}"; do
        read -r dest _ _ <<<"$f"
        if [ -e "$DESTDIR$dest" ]; then
            echo "rm $DESTDIR$dest"
            rm -f "$DESTDIR$dest"
        fi
    done
    [ -z "$INSTALL_MODULE" ] || rmdir --ignore-fail-on-non-empty "$DESTDIR$moddir" 2>/dev/null || true
    run_depmod
    # The group stays: removing it would orphan the memberships an admin gave out.
    [ -n "$DESTDIR" ] || ! getent group cmamap >/dev/null ||
        echo "the group cmamap stays; remove it with groupdel cmamap if nobody needs it"
    ;;
*) die "usage: $0 install|uninstall|list" ;;
esac
