#!/usr/bin/env bash
# The scale part of `make bench`: ALLOC, FREE, INFO, mmap and pread against 1, 1,000, 10,000
# and 100,000 live blocks (across files of 10,000), and close() of a file of 65,536 blocks
# while 100,000 others live, on the plain kernel; writes scale.csv, scale.txt and scale.svg
# into the results folder.
#
#   scripts/bench-scale.sh [RESULTS_DIR] [-- BENCH_SCALE_ARGS...]
# Needs out/mod-plain/cmamap.ko (make module-plain) and the guest tools (make userspace).
# KERNEL=path/to/bzImage boots another plain kernel than the cached one of this config;
# BEFORE=path/to/result.txt of another module's scale run adds it to the table and the chart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup "$@"
out="$CMAMAP_ROOT/out/bench-scale"
khz=$("$bin/cmamap-bench" tsc-khz)
kernel=() before=()
[ -z "${KERNEL:-}" ] || kernel=(--kernel "$KERNEL")
[ -z "${BEFORE:-}" ] || before=(--before "$BEFORE")
status=0
start=$(date +%s)
# 165,536 one-page blocks need 647 MiB of CMA.
"$CMAMAP_ROOT/qemu/run.sh" --flavour plain "${kernel[@]}" --module "$module" --bin "$bin" \
    --out "$out" --cma 768M --timeout 1800 --accel tcg --quiet -- /bin/cmamap-bench scale \
    --tsc-khz "$khz" "${bench_args[@]}" | tail -n 1 || status=1
echo "== VM run took $(($(date +%s) - start))s"
printf -v command 'make bench (qemu/run.sh --flavour plain --cma 768M ... -- cmamap-bench scale %s)' \
    "${bench_args[*]}"
"$bin/cmamap-bench" scale-report --input "$out/result.txt" --out "$results" \
    --command "$command" "${before[@]}" || status=1
exit "$status"
