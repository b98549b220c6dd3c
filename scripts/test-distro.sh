#!/usr/bin/env bash
# `make test-distro`: the suite on Debian 13's own kernel. Builds cmamap.ko with
# scripts/build-distro.sh (Debian's headers, config, linux-source, gcc-14, rustc 1.85.1), boots
# Debian's own vmlinuz from linux-image-KREL (unpacked into the cache, never installed) with
# the project's initramfs and cma=512M, insmods that module and runs cmamap-test, split over
# SHARDS VMs, plus the DMA VMs of DMA_SETUPS, through scripts/test-vm.sh.
#
#   scripts/test-distro.sh SHARDS BIN_DIR IVSHMEM_FILE [RUN_ARGS...]
#
# Debian's kernel has no kmemleak, KASAN, lockdep or KUnit: the verdict still fails any splat,
# bad taint (B, D, W, L), failed insmod or rmmod and CMA not back at its baseline, and reports
# the kmemleak check as skipped. Its unsigned module taints E, which is accepted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

shards=$1 bin=$2 ivshmem=$3
shift 3
krel=${DISTRO_KREL:-7.3.4+deb13-amd64}

step "cmamap.ko for Debian's $krel"
module=$(scripts/build-distro.sh --kernel "$krel" | tail -n 1)
# The chroot build names it by the clone's path there.
case $module in /cmamap/*) module=$CMAMAP_ROOT/${module#/cmamap/} ;; esac
[ -f "$module" ] || die "build-distro.sh gave no module ($module)"

# --- Debian's kernel image and the modules the suite uses, from the archive ----------------
step "Debian's kernel image linux-image-$krel"
image="$CMAMAP_CACHE/debian13/image-$krel"
exec 9>"$image.lock"
flock 9
if [ ! -f "$image/.cmamap-unpacked" ]; then
    dl="$CMAMAP_CACHE/debian13/apt"
    mkdir -p "$dl/lists/partial" "$dl/cache/archives/partial" "$image.debs"
    cat >"$dl/backports.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
EOF
    APT=(-q -o "Dir::Etc::SourceList=$dl/backports.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dl/lists" -o "Dir::Cache=$dl/cache" -o Debug::NoLocking=1
        -o APT::Architecture=amd64)
    apt-get "${APT[@]}" update >/dev/null 2>&1 || die "apt-get update for trixie-backports failed"
    # linux-image-KREL is a meta package: the image is in linux-binary, the modules in
    # linux-modules.
    (cd "$image.debs" && rm -f ./*.deb && apt-get "${APT[@]}" download "linux-binary-$krel" \
        "linux-modules-$krel" >/dev/null 2>&1) || die "could not download Debian's $krel image"
    rm -rf "$image" && mkdir -p "$image"
    for deb in "$image.debs"/*.deb; do dpkg-deb -x "$deb" "$image"; done
    rm -rf "$image.debs"
    touch "$image/.cmamap-unpacked"
fi
exec 9>&-
kernel=$(ls "$image"/usr/lib/modules/"$krel"/vmlinuz "$image"/boot/vmlinuz-"$krel" 2>/dev/null | head -1 || true)
[ -f "$kernel" ] || die "no vmlinuz in Debian's $krel packages"
echo "    $kernel"

# brd gives the O_DIRECT case its RAM disk; Debian builds it as a module (compressed).
pre="$CMAMAP_ROOT/out/distro/pre"
rm -rf "$pre" && mkdir -p "$pre"
files=()
for name in brd; do
    ko=$(find "$image/usr/lib/modules/$krel/kernel" -name "$name.ko*" -print -quit)
    [ -n "$ko" ] || die "no $name module in Debian's $krel"
    case $ko in
    *.xz) xz -dc "$ko" >"$pre/$name.ko" ;;
    *.zst) zstd -qdc "$ko" >"$pre/$name.ko" ;;
    *) cp "$ko" "$pre/$name.ko" ;;
    esac
    files+=(--file "$pre/$name.ko:/lib/pre/$name.ko")
done
# The module must carry the same vermagic as Debian's own modules.
[ "$(modinfo -F vermagic "$module")" = "$(modinfo -F vermagic "$pre/brd.ko")" ] ||
    die "cmamap.ko's vermagic '$(modinfo -F vermagic "$module")' is not Debian's '$(modinfo -F vermagic "$pre/brd.ko")'"
echo "    vermagic: $(modinfo -F vermagic "$module") (as Debian's brd.ko)"
step_done

# no_timer_check: a busy host can stall the TCG guest during the IO-APIC timer check, which
# Debian's kernel then panics on. The suite tolerates CmaFree moving by the pages the kernel
# lends to movable allocations (the exact CMA count is still checked). iomem=relaxed: Debian's
# kernel has IO_STRICT_DEVMEM, which refuses sysfs mappings of a BAR that cmamap holds, and
# ivshmem_copy_keeps_outside_wc needs one to show that the copies leave it write-combined.
TEST_ARGS=${TEST_ARGS:---cma-tolerance-kb 64} DMA_SETUPS=${DMA_SETUPS-direct64} \
    scripts/test-vm.sh "$shards" "$bin" "$ivshmem" --append "no_timer_check iomem=relaxed" \
    --kernel "$kernel" --flavour distro --module "$module" "${files[@]}" "$@"
