#!/usr/bin/env bash
# `make test-dkms`: DKMS for a kernel the project did not build. In the Debian 13 chroot
# (scripts/debian13-root.sh, which has Debian's dkms and the headers of Debian's 7.3 kernel),
# `make dkms-install KVER=KREL` registers, builds and installs the module; Debian's own kernel
# image then boots in the VM with the module DKMS installed and runs the cases matching
# FILTER (default: the lifecycle ones); `make dkms-uninstall` must leave nothing behind.
#   scripts/test-dkms.sh BIN_DIR [FILTER]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

bin=$1 filter=${2:-alloc_}
krel=${DISTRO_KREL:-7.3.4+deb13-amd64}
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
root=$(scripts/debian13-root.sh --path)
# The chroot's prepared kernel tree (from make distro) is reused rather than made again.
in_root() { scripts/debian13-root.sh -- env CMAMAP_CACHE=/root/.cache/cmamap "$@"; }

step "make dkms-install KVER=$krel in the Debian 13 chroot"
in_root make -s -C /cmamap dkms-install KVER="$krel"
installed=$(ls "$root/lib/modules/$krel/updates/dkms/"cmamap.ko* 2>/dev/null | head -1 || true)
[ -n "$installed" ] || die "dkms installed no cmamap.ko for $krel"
echo "    $installed: $(modinfo -F vermagic "$installed")"

step "booting Debian's $krel with the DKMS-built module: cmamap-test $filter"
ko="$CMAMAP_ROOT/out/distro/dkms-cmamap.ko"
case $installed in
*.xz) xz -dc "$installed" >"$ko" ;;
*.zst) zstd -qdc "$installed" >"$ko" ;;
*) cp "$installed" "$ko" ;;
esac
kernel=$(ls "$CMAMAP_CACHE/debian13/image-$krel/usr/lib/modules/$krel/vmlinuz" 2>/dev/null || true)
[ -f "$kernel" ] || die "Debian's $krel image is not unpacked yet: run make test-distro first"
status=0
qemu/run.sh --kernel "$kernel" --flavour distro --module "$ko" --bin "$bin" --quiet \
    --append no_timer_check --out out/vm-dkms -- /bin/cmamap-test --cma-tolerance-kb 64 "$filter" || status=$?

step "make dkms-uninstall KVER=$krel"
in_root make -s -C /cmamap dkms-uninstall KVER="$krel"
left=$(ls -d "$root/lib/modules/$krel/updates/dkms/cmamap.ko"* "$root/usr/src/cmamap-$version" \
    "$root/var/lib/dkms/cmamap" 2>/dev/null || true)
[ -z "$left" ] || { echo "not ok - dkms-uninstall left: $left"; exit 1; }
echo "ok - dkms-uninstall left nothing of cmamap $version"
step_done
exit "$status"
