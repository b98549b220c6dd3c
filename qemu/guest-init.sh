#!/bin/busybox sh
# PID 1 of the cmamap test VM (busybox ash). Loads the module, runs the command, unloads,
# checks kmemleak, and reports everything on the result channel (the second UART: /dev/ttyS1
# on x86-64, /dev/ttyAMA1 on arm64's virt, named by RESULT in the run's config), which the host
# trusts only if it ends with CMAMAP-DONE.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmp /tmp
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
set -o pipefail
. /etc/cmamap-run.conf

RESULT=${RESULT:-/dev/ttyS1}
KMEMLEAK=/sys/kernel/debug/kmemleak
cma_free() { awk '/^CmaFree:/ {print $2}' /proc/meminfo; }
# Settles the default CMA area: allocates its free pages through the kernel's CMA dma-heap and
# gives them back. That migrates out the pages lent to page cache, tmpfs and anonymous memory;
# a page that someone still holds (a reference a driver leaked) cannot be allocated. So the
# count of pages taken is the exact check, on both architectures: CmaFree is not (freed CMA
# pages wait on per-CPU lists, 62 MB of them on arm64, and lent pages come and go). Prints
# "yes TAKEN_PAGES CMAFREE_KIB", or "no 0 CMAFREE_KIB" when the settling could not run; CmaFree
# is read after the settling process has exited.
settle_cma() {
    if [ -x /bin/cmamap-test ] && taken=$(/bin/cmamap-test --settle-cma 2>>/tmp/settle.log); then
        echo "yes $taken $(cma_free)"
    else
        echo "no 0 $(cma_free)"
    fi
}
# Exact CMA accounting: free pages of every CMA area, from the area's own bitmap counter
# (CmaFree also moves with per-CPU free lists and movable allocations that borrow CMA).
cma_available() { cat /sys/kernel/mm/cma/*/available_pages 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
report() { echo "$*" >>/tmp/result; }
# Marks a phase in the kernel log, whose timestamps show where a VM's time goes.
phase() { echo "cmamap-init: $*" >/dev/kmsg 2>/dev/null; }
: >/tmp/result

# kmemleak: no background scans, and forget everything the boot left behind. A kernel
# without it (the plain one) says so, and the verdict reports the check as skipped.
if [ -e $KMEMLEAK ]; then
    echo scan=off >$KMEMLEAK
    echo clear >$KMEMLEAK
else
    report "CMAMAP-KMEMLEAK-UNAVAILABLE"
fi
phase "settling CMA"
# shellcheck disable=SC2046
set -- $(settle_cma)
phase "settled CMA"
report "CMAMAP-CMA-SETTLED-BEFORE $1"
report "CMAMAP-CMA-TAKEN-BEFORE $2"
report "CMAMAP-CMAFREE-BEFORE $3"
settled_before=$1 taken_before=$2 cma_free_before=$3
report "CMAMAP-CMA-AVAILABLE-BEFORE $(cma_available)"

# Modules the kernel needs first (a distribution kernel's brd, say), in name order, from
# --file KO:/lib/pre/NN-name.ko. The project's own kernels build everything in.
for ko in /lib/pre/*.ko; do
    [ -f "$ko" ] || continue
    insmod "$ko" || report "CMAMAP-INSMOD-FAILED $ko"
done

if [ -n "$MODULE" ]; then
    # shellcheck disable=SC2086
    if ! insmod /lib/cmamap.ko $MODPARAMS; then
        report "CMAMAP-INSMOD-FAILED"
    fi
fi

if [ "$MODE" = shell ]; then
    echo "cmamap VM: module loaded; /bin has the tools. Exit the shell to power off."
    setsid cttyhack sh -l
    rc=0
else
    echo "cmamap VM: running: $(cat /etc/cmamap-cmd.sh | tail -n 1)"
    sh /etc/cmamap-cmd.sh 2>&1 | tee /tmp/cmd.out
    rc=$?
fi

if [ -n "$MODULE" ] && grep -q '^cmamap ' /proc/modules; then
    rmmod cmamap || report "CMAMAP-RMMOD-FAILED"
fi
if [ -e $KMEMLEAK ]; then
    unloaded_at=$(cut -d. -f1 /proc/uptime)
    phase "kmemleak: shrinking slab caches"
    # SLUB's per-CPU sheaves keep stale pointers to allocated objects, which hide leaks from
    # kmemleak; shrinking every cache flushes them.
    for shrink in /sys/kernel/slab/*/shrink; do echo 1 >"$shrink" 2>/dev/null; done
    # A new object is reported only by the second scan that finds it unreferenced (the first
    # takes its checksum), and only if it was 5 s old when that scan began. So the first scan
    # runs at once, and the second waits for the rest of 6 s after rmmod, if any is left:
    # none under TCG, where the shrinking and the first scan take 6-10 s.
    phase "kmemleak: scanning"
    echo scan >$KMEMLEAK
    left=$((unloaded_at + 6 - $(cut -d. -f1 /proc/uptime)))
    if [ "$left" -gt 0 ]; then
        phase "kmemleak: waiting ${left}s for the minimum age"
        sleep "$left"
    fi
    phase "kmemleak: scanning again"
    echo scan >$KMEMLEAK
    phase "kmemleak: done"
    cat $KMEMLEAK >/tmp/kmemleak
fi
# A page the module leaked stays missing however often CMA is settled; a page that some other
# allocation holds for a moment (under migration, say) comes back. So the settling after rmmod
# is repeated, up to five times in all, until it is back at the baseline; the check itself is
# unchanged. Without the settling (no CMA heap) the baseline is CmaFree.
readings=0
phase "settling CMA after rmmod"
while :; do
    # shellcheck disable=SC2046
    set -- $(settle_cma)
    readings=$((readings + 1))
    if [ "$settled_before" = yes ] && [ "$1" = yes ]; then
        [ "$2" -ge "$taken_before" ] && break
    else
        [ "$3" -ge "$cma_free_before" ] 2>/dev/null && break
    fi
    [ "$1" = yes ] && [ "$readings" -lt 5 ] || break
done
phase "settled CMA after rmmod"
report "CMAMAP-CMA-SETTLED-AFTER $1 $readings"
report "CMAMAP-CMA-TAKEN-AFTER $2"
report "CMAMAP-CMAFREE-AFTER $3"
report "CMAMAP-CMA-AVAILABLE-AFTER $(cma_available)"
{
    cat /tmp/result
    echo "CMAMAP-OUTPUT-BEGIN"
    cat /tmp/cmd.out 2>/dev/null
    echo "CMAMAP-OUTPUT-END"
    echo "CMAMAP-KMEMLEAK-BEGIN"
    cat /tmp/kmemleak 2>/dev/null
    echo "CMAMAP-KMEMLEAK-END"
    echo "CMAMAP-DMESG-BEGIN"
    dmesg
    echo "CMAMAP-DMESG-END"
    echo "CMAMAP-TAINT $(cat /proc/sys/kernel/tainted)"
    echo "CMAMAP-RC $rc"
    echo "CMAMAP-DONE"
} >$RESULT
sync
reboot -f
