#!/usr/bin/env bash
# The VM half of `make test`: the suite split over SHARDS VMs that run at once, plus three
# DMA VMs, then one verdict. A TCG guest keeps about one host core busy, so two VMs on two
# cores take little longer than half the suite; the DMA VMs mostly wait for edu's timer.
# Each VM has its own kernel-log verdict (splats, taint, kmemleak, CMA baseline, IOMMU
# faults); the run passes only if every one does.
#
#   scripts/test-vm.sh SHARDS BIN_DIR IVSHMEM_FILE [RUN_ARGS...]
# Shard 0's VM gets the ivshmem device (and the host-side check of its file). The DMA VMs
# (DMA_SETUPS, default all three) run the dma_ cases against QEMU's edu device:
#   iommu     q35 with an Intel IOMMU in strict mode, edu with its 28-bit mask, CMA below 4 GiB
#   direct64  pc without an IOMMU, edu with a 64-bit mask
#   direct28  pc without an IOMMU, edu with its 28-bit mask, CMA from 128 MiB to 640 MiB
#   bounce    pc without an IOMMU, booted with swiotlb=force: every mapping must be refused
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

shards=$1 bin=$2 ivshmem=$3
shift 3
[ "$shards" -ge 1 ] 2>/dev/null || die "SHARDS must be a number of at least 1, not '$shards'"

# The runner's arguments for shard K; shard 0 gets the ivshmem device and its host check.
shard_args() {
    args=(--flavour debug --module cmamap.ko --bin "$bin")
    if [ "$1" = 0 ]; then
        args+=(--ivshmem "$ivshmem" --host-check "$bin/cmamap-test --host-check $ivshmem")
    fi
}

# The runner's arguments for DMA set-up $1.
dma_args() {
    args=(--flavour debug --module cmamap.ko --bin "$bin")
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
for ((k = 0; k < shards; k++)); do
    names+=("shard $k") logs+=("out/vm-shard$k.log")
    shard_args "$k"
    echo "== VM ${#names[@]}: cmamap-test --shard $k/$shards (console and verdict: ${logs[-1]})"
    qemu/run.sh "${args[@]}" --out "out/vm-shard$k" "$@" \
        -- /bin/cmamap-test "${test_args[@]}" --shard "$k/$shards" >"${logs[-1]}" 2>&1 &
    pids+=($!)
done
for setup in "${setups[@]}"; do
    names+=("DMA $setup") logs+=("out/vm-dma-$setup.log")
    dma_args "$setup"
    # The bounce VM refuses every mapping: only its own case has anything to check there.
    filter=dma_
    [ "$setup" != bounce ] || filter=dma_bounce
    echo "== VM ${#names[@]}: DMA set-up $setup, cmamap-test $filter (console and verdict: ${logs[-1]})"
    qemu/run.sh "${args[@]}" --out "out/vm-dma-$setup" "$@" \
        -- env CMAMAP_DMA_SETUP="$setup" /bin/cmamap-test "${test_args[@]}" "$filter" >"${logs[-1]}" 2>&1 &
    pids+=($!)
done
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
echo "===== all ${#names[@]} VMs"
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
