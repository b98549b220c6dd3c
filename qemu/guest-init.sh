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
# CmaFree counts only CMA pages in the buddy lists: freed chunks of up to 8 pages wait on
# per-CPU lists, and free CMA pages are lent to page cache, tmpfs and anonymous memory, which
# keep them (seen: 35-44 MB after a heavy run). Allocating the default area's free pages
# through the kernel's CMA dma-heap migrates the lent pages out and drains the per-CPU lists,
# and freeing them in large pieces puts them straight back, so the reading after it is exact:
# every page still missing is held by someone. The reading is taken once the settling process
# has exited: read from inside it, CmaFree was 64 kB low at times on both architectures (the
# last buffer's pages came back only at its exit). Prints "yes KIB", or "no KIB" when the
# settling could not run.
settle_cma() {
    if [ -x /bin/cmamap-test ] && /bin/cmamap-test --settle-cma >>/tmp/settle.log 2>&1; then
        echo "yes $(cma_free)"
    else
        echo "no $(cma_free)"
    fi
}
# Exact CMA accounting: free pages of every CMA area, from the area's own bitmap counter
# (CmaFree also moves with per-CPU free lists and movable allocations that borrow CMA).
cma_available() { cat /sys/kernel/mm/cma/*/available_pages 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
report() { echo "$*" >>/tmp/result; }
: >/tmp/result

# kmemleak: no background scans, and forget everything the boot left behind. A kernel
# without it (the plain one) says so, and the verdict reports the check as skipped.
if [ -e $KMEMLEAK ]; then
    echo scan=off >$KMEMLEAK
    echo clear >$KMEMLEAK
else
    report "CMAMAP-KMEMLEAK-UNAVAILABLE"
fi
# shellcheck disable=SC2046
set -- $(settle_cma)
report "CMAMAP-CMA-SETTLED-BEFORE $1"
report "CMAMAP-CMAFREE-BEFORE $2"
cma_free_before=$2
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
    # Objects younger than 5 s are never reported; scan twice so that grey ones settle.
    sleep 6
    # SLUB's per-CPU sheaves keep stale pointers to allocated objects, which hide leaks from
    # kmemleak; shrinking every cache flushes them.
    for shrink in /sys/kernel/slab/*/shrink; do echo 1 >"$shrink" 2>/dev/null; done
    echo scan >$KMEMLEAK
    echo scan >$KMEMLEAK
    cat $KMEMLEAK >/tmp/kmemleak
fi
# A page the module leaked stays missing however often CMA is settled; a page some other
# allocation took for a moment comes back (a CI run read 64 kB low once, with every CMA page
# back by the exact count). So the reading after rmmod is settled again, up to five times in
# all, until it is back at the baseline; the check itself is unchanged.
readings=0
while :; do
    # shellcheck disable=SC2046
    set -- $(settle_cma)
    readings=$((readings + 1))
    [ "$2" -ge "$cma_free_before" ] 2>/dev/null && break
    [ "$1" = yes ] && [ "$readings" -lt 5 ] || break
done
report "CMAMAP-CMA-SETTLED-AFTER $1 ($readings reading(s))"
report "CMAMAP-CMAFREE-AFTER $2"
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
