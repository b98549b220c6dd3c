#!/usr/bin/env bash
# The VM half of `make test`: the suite split over SHARDS VMs that run at once, then one
# verdict. A TCG guest keeps about one host core busy, so two VMs on two cores take little
# longer than half the suite. Each VM has its own kernel-log verdict (splats, taint, kmemleak,
# CMA baseline); the run passes only if every one does.
#
#   scripts/test-vm.sh SHARDS BIN_DIR IVSHMEM_FILE [RUN_ARGS...]
# Shard 0's VM gets the ivshmem device (and the host-side check of its file).
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

if [ "$shards" = 1 ]; then
    shard_args 0
    exec qemu/run.sh "${args[@]}" "$@" -- /bin/cmamap-test
fi

pids=()
for ((k = 0; k < shards; k++)); do
    log="out/vm-shard$k.log"
    echo "== VM $((k + 1)) of $shards: cmamap-test --shard $k/$shards (console and verdict: $log)"
    shard_args "$k"
    qemu/run.sh "${args[@]}" --out "out/vm-shard$k" "$@" \
        -- /bin/cmamap-test --shard "$k/$shards" >"$log" 2>&1 &
    pids+=($!)
done
failed=0
for ((k = 0; k < shards; k++)); do
    wait "${pids[$k]}" || failed=1
done

passed=0 failures=0 skipped=0
for ((k = 0; k < shards; k++)); do
    log="out/vm-shard$k.log"
    echo
    echo "===== VM $((k + 1)) of $shards (shard $k) ====="
    cat "$log"
    # The runner's last line: "N passed, N failed, N skipped".
    read -r p _ f _ s _ < <(tail -n 1 "$log")
    if [[ "$p$f$s" =~ ^[0-9]+$ ]]; then
        passed=$((passed + p)) failures=$((failures + f)) skipped=$((skipped + s))
    else
        echo "not ok - vm: shard $k gave no verdict line"
        failures=$((failures + 1)) failed=1
    fi
done
echo
echo "===== all $shards VMs"
# The suite's own summary lines, added up over the VMs.
cat out/vm-shard*.log | awk '
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
