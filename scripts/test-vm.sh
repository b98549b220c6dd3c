#!/usr/bin/env bash
# The VM half of `make test`: the suite split over SHARDS VMs that run at once, plus three
# DMA VMs, then one verdict. A TCG guest keeps about one host core busy, so two VMs on two
# cores take little longer than half the suite; the DMA VMs mostly wait for edu's timer.
# Each VM has its own kernel-log verdict (splats, taint, kmemleak, CMA baseline, IOMMU
# faults); the run passes only if every one does.
#
#   scripts/test-vm.sh SHARDS BIN_DIR IVSHMEM_FILE [RUN_ARGS...]
# Shard 0's VM gets the ivshmem device (and the host-side check of its file). The DMA VMs
# (DMA_SETUPS, default all four) run the dma_ cases against QEMU's edu device:
#   iommu     q35 with an Intel IOMMU in strict mode, edu with its 28-bit mask, CMA below 4 GiB
#             (arm64: virt with an SMMUv3 in strict mode)
#   direct64  pc without an IOMMU, edu with a 64-bit mask (arm64: virt)
#   direct28  pc without an IOMMU, edu with its 28-bit mask, CMA from 128 MiB to 640 MiB
#             (not on arm64: virt's RAM starts at 1 GiB, so no CMA lies within 28 bits)
#   bounce    pc without an IOMMU, booted with swiotlb=force: every mapping must be refused
#             (arm64: virt)
# CMAMAP_ARCH picks the architecture; its VMs' output goes to out/ (x86-64) or out/ARCH/.
# The host checks the ivshmem file with its own cmamap-test, in CMAMAP_HOST_BIN (default BIN_DIR).
# and one more small VM boots with cma=0 for `cmamap doctor` (NOCMA_VM=0 leaves it out).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

shards=$1 bin=$2 ivshmem=$3
shift 3
module=$(module_ko)
host_bin=${CMAMAP_HOST_BIN:-$bin}
vm_out=$(arch_out)
vm_out=${vm_out#"$CMAMAP_ROOT"/}
mkdir -p "$vm_out"
[ "$shards" -ge 1 ] 2>/dev/null || die "SHARDS must be a number of at least 1, not '$shards'"

# The runner's arguments for shard K; shard 0 gets the ivshmem device and its host check.
shard_args() {
    args=(--flavour debug --module "$module" --bin "$bin")
    if [ "$1" = 0 ]; then
        args+=(--ivshmem "$ivshmem" --host-check "$host_bin/cmamap-test --host-check $ivshmem")
    fi
}

# The runner's arguments for DMA set-up $1.
dma_args() {
    args=(--flavour debug --module "$module" --bin "$bin")
    if [ "$CMAMAP_ARCH" = arm64 ]; then
        case $1 in
        # virt places RAM from 1 GiB, and CMA near its top (about 3.5 GiB with -m 3G): below
        # 4 GiB, as the x86-64 IOMMU VM's.
        iommu) args+=(--iommu smmuv3 --device edu) ;;
        direct64) args+=(--device edu,dma_mask=0xffffffffffffffff) ;;
        bounce) args+=(--device edu,dma_mask=0xffffffffffffffff --append swiotlb=force) ;;
        *) die "unknown DMA set-up '$1' on arm64 (iommu, direct64, bounce)" ;;
        esac
        return
    fi
    case $1 in
    # q35 puts 1 GiB of the 3 above 4 GiB, where cma= would take half of it, and the kernel then
    # lends free CMA pages to every movable allocation (CmaFree swings by more than the leak
    # check's 64 kB); below 4 GiB the area sits beside 1.5 GiB of other memory.
    iommu) args+=(--machine q35 --iommu intel --device edu --cma 512M@0-4G) ;;
    direct64) args+=(--device edu,dma_mask=0xffffffffffffffff) ;;
    direct28) args+=(--device edu --cma 512M@128M-640M) ;;
    bounce) args+=(--device edu,dma_mask=0xffffffffffffffff --append swiotlb=force) ;;
    *) die "unknown DMA set-up '$1' (iommu, direct64, direct28, bounce)" ;;
    esac
}
read -r -a setups <<<"${DMA_SETUPS-iommu direct64 direct28 bounce}"
# TEST_ARGS: more options for every cmamap-test, e.g. --cma-tolerance-kb 64.
read -r -a test_args <<<"${TEST_ARGS:-}"

names=() logs=() pids=()
# At most VM_JOBS VMs at once (default: one per host core; 0: all at once), longest first.
# TCG guests with two vCPUs spin on each other's IPIs when the host has fewer cores than
# vCPUs: on 2 cores the x86-64 set took 505 s all at once, 391 s four at a time, 312 s two at
# a time (and 554 CPU-seconds instead of 760).
vm_jobs=${VM_JOBS:-$(nproc)}
wait_for_a_slot() {
    [ "$vm_jobs" -gt 0 ] 2>/dev/null || return 0
    while [ "$(jobs -rp | wc -l)" -ge "$vm_jobs" ]; do sleep 1; done
}
# A set-up that cannot exist on this architecture boots no VM: its cases are each reported as
# a SKIP with the reason, so that both architectures report the same cases.
skip_setup() { # skip_setup SETUP REASON
    local log="$vm_out/vm-dma-$1.log" n=0 case
    names+=("DMA $1") logs+=("$log")
    echo "== VM ${#names[@]}: DMA set-up $1 not booted on $CMAMAP_ARCH: $2"
    {
        echo "== DMA set-up $1 does not apply on $CMAMAP_ARCH: no VM booted"
        echo "KTAP version 1"
        "$host_bin/cmamap-test" --list dma_ | while read -r case; do
            n=$((n + 1))
            echo "ok $n $case # SKIP $2"
        done
        n=$("$host_bin/cmamap-test" --list dma_ | grep -c .)
        echo "# summary: $n cases"
        echo "0 passed, 0 failed, $n skipped"
    } >"$log"
}
if [ "$CMAMAP_ARCH" = arm64 ]; then
    kept=()
    for setup in "${setups[@]}"; do
        if [ "$setup" = direct28 ]; then
            skip_setup direct28 "virt's RAM starts at 1 GiB, so no block lies within a 28-bit device's direct reach (the iommu VM runs the 28-bit edu behind the SMMU)"
        else
            kept+=("$setup")
        fi
    done
    setups=("${kept[@]}")
fi

for ((k = 0; k < shards; k++)); do
    names+=("shard $k") logs+=("$vm_out/vm-shard$k.log")
    shard_args "$k"
    wait_for_a_slot
    echo "== VM ${#names[@]}: cmamap-test --shard $k/$shards (console and verdict: ${logs[-1]})"
    qemu/run.sh "${args[@]}" --out "$vm_out/vm-shard$k" "$@" \
        -- /bin/cmamap-test "${test_args[@]}" --shard "$k/$shards" >"${logs[-1]}" 2>&1 &
    pids+=($!)
done
for setup in "${setups[@]}"; do
    names+=("DMA $setup") logs+=("$vm_out/vm-dma-$setup.log")
    dma_args "$setup"
    # The bounce VM refuses every mapping: only its own case has anything to check there.
    filter=dma_
    [ "$setup" != bounce ] || filter=dma_bounce
    wait_for_a_slot
    echo "== VM ${#names[@]}: DMA set-up $setup, cmamap-test $filter (console and verdict: ${logs[-1]})"
    qemu/run.sh "${args[@]}" --out "$vm_out/vm-dma-$setup" "$@" \
        -- env CMAMAP_DMA_SETUP="$setup" /bin/cmamap-test "${test_args[@]}" "$filter" >"${logs[-1]}" 2>&1 &
    pids+=($!)
done
# One small VM booted with cma=0, for `cmamap doctor`'s report of the missing CMA and its fix.
if [ "${NOCMA_VM-1}" = 1 ]; then
    names+=("cma=0") logs+=("$vm_out/vm-nocma.log")
    wait_for_a_slot
    echo "== VM ${#names[@]}: cma=0, cmamap-test doctor_without_cma (console and verdict: ${logs[-1]})"
    qemu/run.sh --flavour debug --module "$module" --bin "$bin" --cma 0 --out "$vm_out/vm-nocma" "$@" \
        -- /bin/cmamap-test doctor_without_cma >"${logs[-1]}" 2>&1 &
    pids+=($!)
fi
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done

passed=0 failures=0 skipped=0
for ((k = 0; k < ${#names[@]}; k++)); do
    log=${logs[$k]}
    echo
    echo "===== VM $((k + 1)) of ${#names[@]} (${names[$k]}) ====="
    cat "$log"
    # The runner's last line: "N passed, N failed, N skipped".
    read -r p _ f _ s _ < <(tail -n 1 "$log")
    if [[ "$p$f$s" =~ ^[0-9]+$ ]]; then
        passed=$((passed + p)) failures=$((failures + f)) skipped=$((skipped + s))
    else
        echo "not ok - vm: ${names[$k]} gave no verdict line"
        failures=$((failures + 1)) failed=1
    fi
done
echo
echo "===== all ${#names[@]} VMs ($CMAMAP_ARCH)"
# The suite's own summary lines, added up over the VMs.
cat "${logs[@]}" | awk '
    /^# summary: [0-9]+ cases/ { cases += $3 }
    /^# summary: [0-9]+ random operations, seed/ { ops += $3; seeds = seeds (seeds ? ", " : "") $NF }
    /^# summary: [0-9]+ fault-injection points visited in [0-9]+ walks/ { points += $3; walks += $(NF - 1) }
    /^# summary: CMA available pages/ { sub(/^# summary: /, ""); vm++; print "# summary: VM " vm ": " $0 }
    END {
        print "# summary: " cases " cases"
        if (ops) print "# summary: " ops " random operations, seed " seeds
        print "# summary: " points " fault-injection points visited in " walks " walks"
    }'
echo "$passed passed, $failures failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$failures" = 0 ]
