#!/usr/bin/env bash
# Proves that the VM runner fails a run for each kind of trouble, even when every test passes:
#   1. a WARN_ON compiled into the module,   2. a leak compiled into the module (kmemleak),
#   3. a failing test,                       4. a guest that hangs (timeout),
#   5. a CMA page reference the module leaks (the verdict's CMA settling).
# Each case must make qemu/run.sh exit non-zero with the expected check failing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

kdir=${KDIR:-${KERNEL_SRC:-$(scripts/build-kernel.sh debug 2>/dev/null | tail -n 1)}}
# The guest's static tools: the verdict's CMA settling runs cmamap-test --settle-cma.
guest_bin=${CMAMAP_GUEST_BIN:?the guest tools directory (make test and make selftest-pipeline set it)}
[ -x "$guest_bin/cmamap-test" ] || die "$guest_bin/cmamap-test missing; run make userspace"

# A pass is remembered under a key of everything the five runs depend on: the runner, the
# guest init, the verdict, this script, the driver sources, the kernel and QEMU. So a second
# `make test` of an unchanged tree does not boot the same five VMs again. `make
# selftest-pipeline` (CMAMAP_SELFTEST=always) and CI (CI=true) always run them.
key=$({
    cat Kbuild qemu/run.sh qemu/verdict.sh qemu/guest-init.sh scripts/lib.sh \
        scripts/selftest-pipeline.sh "$guest_bin/cmamap-test" \
        $(find driver -name '*.rs' -o -name '*.c' -o -name '*.h' | sort)
    echo "$kdir"
    echo "$CMAMAP_ARCH"
    sha256sum "$(kernel_image "$kdir")" 2>/dev/null
    qemu-system-x86_64 --version 2>/dev/null | head -n 1
    qemu-system-aarch64 --version 2>/dev/null | head -n 1
} | sha256sum | cut -c1-16)
stamp="$CMAMAP_CACHE/selftest-pipeline/$key"
if [ "${CI:-}" != true ] && [ "${CMAMAP_SELFTEST:-}" != always ] && [ -f "$stamp" ]; then
    echo "== pipeline self-test: these inputs passed on $(date -r "$stamp" '+%F %T') (key $key):"
    cat "$stamp"
    echo "pipeline self-test: passed before for these inputs; 'make selftest-pipeline' reruns it"
    exit 0
fi
# Logs of the five runs: out/ on x86-64, out/ARCH/ elsewhere.
vm_out=$(arch_out)
mkdir -p "$vm_out"
passing=(sh -c 'echo "KTAP version 1"; echo "1..1"; echo "ok 1 passes"')
failures=0

build_variant() { # build_variant NAME DEFINE: a module with a deliberate fault
    local mo="$CMAMAP_ROOT/out/$(mod_dir "inject-$1")"
    mkdir -p "$mo"
    make -s -C "$kdir" M="$CMAMAP_ROOT" MO="$mo" LLVM="$LLVM_SUFFIX" ARCH="$CMAMAP_ARCH" \
        CMAMAP_INJECT="-D$2" modules >/dev/null
    echo "$mo/cmamap.ko"
}

expect_failure() { # expect_failure NAME EXPECTED_CHECK RUN_ARGS...: prints one ok/not ok line
    local name=$1 expected=$2 log="$vm_out/selftest-$1.log"
    shift 2
    local t0=$SECONDS tries=1
    # kmemleak can miss a leak while a stale copy of its pointer survives somewhere (a cached
    # kernel stack, say): one more boot for the leak case, and the verdict says which one it
    # took. A run that passes twice still fails the self-test.
    local status=0
    qemu/run.sh --quiet --bin "$guest_bin" --out "$vm_out/selftest-$name" "$@" >"$log" 2>&1 || status=$?
    if [ "$status" = 0 ] && [ "$name" = leak-in-module ]; then
        cp "$log" "$log.try1"
        tries=2
        qemu/run.sh --quiet --bin "$guest_bin" --out "$vm_out/selftest-$name" "$@" >"$log" 2>&1 || status=$?
    fi
    if [ "$status" = 0 ]; then
        echo "not ok - pipeline: $name: the run passed but must fail (log: $log, $tries run(s))"
    elif ! grep -qF "$expected" "$log"; then
        echo "not ok - pipeline: $name: failed, but not with '$expected' (log: $log)"
    else
        echo "ok - pipeline: $name fails the run ($((SECONDS - t0))s, run $tries): $(grep -m1 -F "$expected" "$log" | sed 's/^ *//')"
    fi
}

echo "== pipeline self-test ($CMAMAP_ARCH): each deliberate fault must fail the VM run"
warn_ko=$(build_variant warn CMAMAP_INJECT_WARN)
leak_ko=$(build_variant leak CMAMAP_INJECT_LEAK)
cma_ko=$(build_variant cma-page CMAMAP_INJECT_CMA_PAGE)
# The five VMs run at once: much of each run is waiting (the kmemleak delay, the hang's
# timeout), so together they take little longer than the slowest alone.
names=(warn-in-module leak-in-module failing-test hanging-guest cma-page-in-module)
expect_failure warn-in-module "no kernel splat" --module "$warn_ko" -- "${passing[@]}" \
    >"$vm_out/selftest-warn-in-module.verdict" &
expect_failure leak-in-module "kmemleak clean after rmmod" --module "$leak_ko" -- "${passing[@]}" \
    >"$vm_out/selftest-leak-in-module.verdict" &
expect_failure cma-page-in-module "every CMA page free before insmod can be allocated after rmmod" \
    --module "$cma_ko" -- "${passing[@]}" >"$vm_out/selftest-cma-page-in-module.verdict" &
expect_failure failing-test "not ok 1 deliberately fails" --no-module -- \
    sh -c 'echo "KTAP version 1"; echo "1..1"; echo "not ok 1 deliberately fails"; exit 1' \
    >"$vm_out/selftest-failing-test.verdict" &
expect_failure hanging-guest "guest finished within 30s" --no-module --timeout 30 -- sleep 100000 \
    >"$vm_out/selftest-hanging-guest.verdict" &
wait
failures=0
for name in "${names[@]}"; do
    verdict="$vm_out/selftest-$name.verdict"
    if [ -s "$verdict" ]; then
        cat "$verdict"
    else
        echo "not ok - pipeline: $name: no verdict"
    fi
    grep -q '^ok - ' "$verdict" 2>/dev/null || failures=$((failures + 1))
done
[ "$failures" = 0 ] || die "pipeline self-test: $failures case(s) were not caught"
echo "pipeline self-test ($CMAMAP_ARCH): all 5 deliberate faults were caught"
mkdir -p "$(dirname "$stamp")"
for name in "${names[@]}"; do cat "$vm_out/selftest-$name.verdict"; done >"$stamp"
