#!/usr/bin/env bash
# `make bench`: runs cmamap-bench in the VM on the plain kernel and writes the results folder.
#
#   scripts/bench.sh [RESULTS_DIR] [-- BENCH_RUN_ARGS...]
# Needs out/mod-[arm64-]plain/cmamap.ko (make module-plain) and the guest tools (make userspace).
# The run's output lands in out/bench/ (result.txt, console.log); the results folder gets
# raw.csv, summary.csv, table.txt and chart.svg. Exits non-zero if the VM verdict or a sample
# failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup "$@"
out="$(arch_out)/bench"

args=(run --tsc-khz "$khz" "${bench_args[@]}")
start=$(date +%s)
status=0
"$CMAMAP_ROOT/qemu/run.sh" --flavour plain --module "$module" --bin "$bin" --out "$out" \
    --timeout 1200 --accel tcg -- env CMAMAP_PROGRESS=/dev/console /bin/cmamap-bench "${args[@]}" || status=$?
echo "== VM run took $(($(date +%s) - start))s (verdict exit $status)"
printf -v command 'make bench (qemu/run.sh --flavour plain ... -- cmamap-bench %s)' "${args[*]}"
"$host_bin/cmamap-bench" report --input "$out/result.txt" --out "$results" --command "$command" || status=1
exit "$status"
