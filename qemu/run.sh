#!/usr/bin/env bash
# Boots a cmamap test kernel in QEMU with the module and the static userspace tools, runs a
# command (default: the test suite) and gives a verdict that trusts only the guest's own
# report on the second serial port, never QEMU's exit code.
#
#   qemu/run.sh [options] [-- CMD ARGS...]
#     --kernel IMAGE       kernel image (default: the cached kernel of --flavour)
#     --arch x86_64|arm64  the guest's architecture (default: $CMAMAP_ARCH, else the host's)
#     --flavour F          debug (default) or plain
#     --module KO          module to insmod (default: ./cmamap.ko); --no-module to skip
#     --modparams "A=B"    module parameters
#     --bin DIR            static binaries copied to the guest's /bin (repeatable)
#     --file SRC[:DEST]    extra file copied into the guest (repeatable)
#     --timeout SECONDS    whole-run limit (default 1200)
#     --append ARGS        extra kernel command line (repeatable)
#     --shell              interactive shell with the module loaded
#     --out DIR            where logs go (default: ./out/vm)
#     --accel tcg|kvm|auto (default: $CMAMAP_ACCEL or auto: KVM only if a probe boot works)
#     --quiet              do not stream the console
#     --ivshmem FILE[:SIZE] add an ivshmem-plain PCI device whose BAR 2 is FILE, shared with
#                          the host (SIZE, a power of two like 1M, creates a missing FILE)
#     --host-check CMD     a command the host runs once the guest is gone: one more check in
#                          the verdict (e.g. of the ivshmem backing file)
#     --machine pc|q35|virt the QEMU machine (default pc on x86-64, virt on arm64)
#     --iommu intel|smmuv3 an IOMMU in strict mode: Intel (needs --machine q35) or the Arm
#                          SMMUv3 of virt (arm64)
#     --device SPEC        one more QEMU -device, e.g. edu,dma_mask=0xffffffffffffffff (repeatable)
#     --cma SPEC           the cma= kernel parameter (default 512M)
# Exit status: 0 only if the command passed, the guest reported back, and the kernel log has
# no splat, no bad taint, no kmemleak report and CMA came back to its baseline.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

flavour=debug kernel="" module=default modparams="" timeout_s=1200
append="" mode=run out="$CMAMAP_ROOT/out/vm" accel=${CMAMAP_ACCEL:-auto} quiet=0
bins=() files=() cmd=() ivshmem="" host_check="" machine="" iommu="" devices=() cma=512M
while [ $# -gt 0 ]; do
    case $1 in
    --kernel) kernel=$2; shift 2 ;;
    --flavour) flavour=$2; shift 2 ;;
    --module) module=$2; shift 2 ;;
    --no-module) module=""; shift ;;
    --modparams) modparams=$2; shift 2 ;;
    --bin) bins+=("$2"); shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --append) append+=" $2"; shift 2 ;;
    --shell) mode=shell; shift ;;
    --out) out=$2; shift 2 ;;
    --accel) accel=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --ivshmem) ivshmem=$2; shift 2 ;;
    --host-check) host_check=$2; shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --iommu) iommu=$2; shift 2 ;;
    --device) devices+=("$2"); shift 2 ;;
    --cma) cma=$2; shift 2 ;;
    --) shift; cmd=("$@"); break ;;
    --arch) CMAMAP_ARCH=$2; shift 2 ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[ ${#cmd[@]} -gt 0 ] || cmd=(/bin/cmamap-test)
[ "$module" != default ] || module=$(module_ko)
case $CMAMAP_ARCH in
x86_64 | x86 | amd64) CMAMAP_ARCH=x86_64 ;;
arm64 | aarch64) CMAMAP_ARCH=arm64 ;;
*) die "--arch must be x86_64 or arm64" ;;
esac
if [ "$CMAMAP_ARCH" = arm64 ]; then
    [ -n "$machine" ] || machine=virt
    [ "$machine" = virt ] || die "--machine must be virt on arm64"
    case $iommu in "" | smmuv3) ;; *) die "--iommu must be smmuv3 on arm64" ;; esac
    qemu_bin=qemu-system-aarch64 console_tty=ttyAMA0 result_tty=ttyAMA1
else
    [ -n "$machine" ] || machine=pc
    case $machine in pc | q35) ;; *) die "--machine must be pc or q35 on x86-64" ;; esac
    case $iommu in
    "") ;;
    intel) [ "$machine" = q35 ] || die "--iommu intel needs --machine q35" ;;
    *) die "--iommu must be intel on x86-64" ;;
    esac
    qemu_bin=qemu-system-x86_64 console_tty=ttyS0 result_tty=ttyS1
fi
if [ -z "$kernel" ]; then
    kernel=$(kernel_image "$(kernel_build_dir "$flavour")")
fi
[ -f "$kernel" ] || die "kernel image $kernel missing; run CMAMAP_ARCH=$CMAMAP_ARCH scripts/build-kernel.sh $flavour"
[ -z "$module" ] || [ -f "$module" ] || die "module $module missing; run make ARCH=$CMAMAP_ARCH"
command -v $qemu_bin >/dev/null || die "$qemu_bin missing; run scripts/setup.sh $CMAMAP_ARCH"
busybox=$(busybox_path)
[ -x "$busybox" ] || die "busybox for $CMAMAP_ARCH missing; run scripts/setup.sh $CMAMAP_ARCH"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- The initramfs -------------------------------------------------------------------------
root="$out/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,lib,etc,proc,sys,dev,tmp,root}
cp "$busybox" "$root/bin/busybox"
cp "$CMAMAP_ROOT/qemu/guest-init.sh" "$root/init"
chmod +x "$root/init"
[ -z "$module" ] || cp "$module" "$root/lib/cmamap.ko"
for dir in "${bins[@]}"; do
    for f in "$dir"/*; do
        [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$root/bin/"
    done
done
for spec in "${files[@]}"; do
    src=${spec%%:*}
    dest=${spec#*:}
    [ "$dest" != "$spec" ] || dest="/root/$(basename "$src")"
    [ -e "$src" ] || die "--file $src does not exist"
    mkdir -p "$root/$(dirname "$dest")"
    cp -r "$src" "$root/$dest"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >>"$root/etc/passwd"
{
    printf 'MODE=%s\n' "$mode"
    printf 'MODULE=%s\n' "${module:+yes}"
    printf 'MODPARAMS=%q\n' "$modparams"
    printf 'RESULT=/dev/%s\n' "$result_tty"
} >"$root/etc/cmamap-run.conf"
{
    echo "cd /root"
    printf '%q ' "${cmd[@]}"
    echo
} >"$root/etc/cmamap-cmd.sh"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out/initramfs.cpio"

# --- Accelerator ----------------------------------------------------------------------------
if [ "$CMAMAP_ARCH" = arm64 ]; then
    # virt with GICv3 (its ITS gives PCIe devices MSIs); pauth-impdef: TCG's QARMA pointer
    # authentication is several times slower than the implementation-defined algorithm.
    vmachine="virt,gic-version=3${iommu:+,iommu=$iommu}"
    qemu_base=(qemu-system-aarch64 -machine "$vmachine" -cpu max,pauth-impdef=on -m 3G -smp 2
        -nodefaults -display none -no-reboot -kernel "$kernel")
else
    qemu_base=(qemu-system-x86_64 -machine "$machine" -cpu max,la57=off -m 3G -smp 2 -nodefaults
        -display none -no-reboot -kernel "$kernel")
fi

# KVM hangs or aborts on some hosts: use it only after a short probe boot reported back.
probe_kvm() {
    local key cache probe
    [ -w /dev/kvm ] || return 1
    key=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none)
    cache="$CMAMAP_CACHE/kvm-probe-$key"
    [ -f "$cache" ] && { [ "$(cat "$cache")" = ok ]; return; }
    probe="$out/probe"
    rm -rf "$probe" && mkdir -p "$probe/root/bin" "$probe/root/dev"
    cp "$busybox" "$probe/root/bin/busybox"
    printf '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs d /dev\necho KVM-PROBE-OK >/dev/%s\n/bin/busybox reboot -f\n' "$result_tty" >"$probe/root/init"
    chmod +x "$probe/root/init"
    (cd "$probe/root" && find . | cpio -o -H newc --quiet) >"$probe/initramfs.cpio"
    timeout 20 "${qemu_base[@]}" -accel kvm -initrd "$probe/initramfs.cpio" \
        -append "console=$console_tty panic=-1" -serial null -serial "file:$probe/result" \
        >/dev/null 2>&1 || true
    if grep -q KVM-PROBE-OK "$probe/result" 2>/dev/null; then
        echo ok >"$cache"
    else
        echo fail >"$cache"
        return 1
    fi
}
case $accel in
kvm) ;;
tcg) ;;
# KVM runs only the host's own architecture.
auto) if [ "$CMAMAP_ARCH" = "$(host_arch)" ] && probe_kvm; then accel=kvm; else accel=tcg; fi ;;
*) die "--accel must be tcg, kvm or auto" ;;
esac
echo "cmamap VM: $CMAMAP_ARCH kernel $(basename "$(dirname "$(dirname "$(dirname "$(dirname "$kernel")")")")"), accel $accel, logs in $out"
echo "$accel" >"$out/accel"

# --- Boot -------------------------------------------------------------------------------------
cmdline="console=$console_tty loglevel=5 kunit.enable=1 kunit.autorun=1 cma=$cma debug_pagealloc=on panic=-1 oops=panic"
cmdline+=" panic_on_warn=0 rdinit=/init vivid.n_devs=2 vivid.allocators=0,1 vivid.node_types=0x1,0x1 $append"
# A busy host can stall a TCG guest through the IO-APIC timer check, which then panics ("IO-APIC +
# timer doesn't work"); seen in test VMs under load.
[ "$CMAMAP_ARCH" != x86_64 ] || cmdline+=" no_timer_check"
result="$out/result.txt" console="$out/console.log"
rm -f "$result" "$console"
qemu=("${qemu_base[@]}" -accel "$accel" -initrd "$out/initramfs.cpio")
# TCG has no interrupt remapping; strict mode makes an unmapped IOVA unreachable at once.
if [ "$iommu" = intel ]; then
    qemu+=(-device intel-iommu,intremap=off)
    cmdline+=" intel_iommu=on iommu.strict=1"
elif [ "$iommu" = smmuv3 ]; then
    cmdline+=" iommu.strict=1"
fi
qemu+=(-append "$cmdline")
for spec in "${devices[@]}"; do
    qemu+=(-device "$spec")
done
if [ -n "$ivshmem" ]; then
    shm_file=${ivshmem%%:*} shm_size=${ivshmem#*:}
    [ "$shm_size" != "$ivshmem" ] || shm_size=""
    if [ ! -e "$shm_file" ]; then
        [ -n "$shm_size" ] || die "--ivshmem $shm_file does not exist and has no :SIZE"
        truncate -s "$shm_size" "$shm_file"
    fi
    shm_file=$(realpath "$shm_file")
    [ -n "$shm_size" ] || shm_size=$(stat -c %s "$shm_file")
    qemu+=(-object "memory-backend-file,id=cmamap-shm,mem-path=$shm_file,size=$shm_size,share=on"
        -device "ivshmem-plain,memdev=cmamap-shm")
fi
start=$(date +%s)
status=0
if [ "$mode" = shell ]; then
    "${qemu[@]}" -chardev "stdio,id=con,signal=off,logfile=$console" -serial chardev:con \
        -serial "file:$result" || status=$?
    exit "$status"
fi
if [ "$quiet" = 1 ]; then
    qemu+=(-serial "file:$console" -serial "file:$result")
    timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null >/dev/null 2>&1 || status=$?
else
    qemu+=(-chardev "stdio,id=con,signal=off,logfile=$console" -serial chardev:con
        -serial "file:$result")
    timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null || status=$?
fi
elapsed=$(($(date +%s) - start))

# --- Verdict ----------------------------------------------------------------------------------
CMAMAP_FLAVOUR=$flavour CMAMAP_HOST_CHECK=$host_check exec "$CMAMAP_ROOT/qemu/verdict.sh" "$out" "$status" "$elapsed" "$timeout_s"
