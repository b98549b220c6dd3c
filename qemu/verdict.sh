#!/usr/bin/env bash
# Judges one VM run from its logs: qemu/verdict.sh OUT_DIR QEMU_STATUS ELAPSED TIMEOUT.
# CMAMAP_FLAVOUR (debug by default) says whether kmemleak must be there.
# OUT_DIR holds console.log (serial 0) and result.txt (serial 1, written by guest-init.sh).
# Prints the test results and the VM checks; the last line is "N passed, N failed, N skipped".
# Exits 0 only if every test and every check passed.
set -uo pipefail

out=$1 qemu_status=$2 elapsed=$3 timeout_s=$4
result="$out/result.txt" console="$out/console.log"
touch "$result" "$console"

section() { # section NAME: the lines between CMAMAP-NAME-BEGIN and CMAMAP-NAME-END
    tr -d '\r' <"$result" | awk -v b="CMAMAP-$1-BEGIN" -v e="CMAMAP-$1-END" '$0==e{p=0} p{print} $0==b{p=1}'
}
field() { grep -a "^CMAMAP-$1 " "$result" | tail -n 1 | cut -d' ' -f2- | tr -d '\r'; }

pass=0 fail=0 skip=0
check() { # check NAME OK [DETAIL]
    if [ "$2" = 1 ]; then
        pass=$((pass + 1))
        echo "ok - vm: $1"
    else
        fail=$((fail + 1))
        echo "not ok - vm: $1${3:+ # $3}"
    fi
}

echo "== VM results (accel $(cat "$out/accel" 2>/dev/null || echo ?), ${elapsed}s)"

# Tests reported by the command, in KTAP (top level only; subtests are the command's business).
output=$(section OUTPUT)
t_pass=$(grep -cE '^ok [0-9]+' <<<"$output" | tr -d ' ')
t_skip=$(grep -cE '^ok [0-9]+.*# SKIP' <<<"$output" | tr -d ' ')
t_fail=$(grep -cE '^not ok [0-9]+' <<<"$output" | tr -d ' ')
t_pass=$((t_pass - t_skip))
grep -E '^not ok [0-9]+|^ok [0-9]+.*# SKIP' <<<"$output" | sed 's/^/  /'

# KUnit cases of the module's own suites (cmamap_*), indented KTAP in the kernel log.
dmesg_log=$(section DMESG | sed -E 's/^\[ *[0-9]+\.[0-9]+\] ?//')
kunit_log=$(awk '/# Subtest: cmamap/ {s=1} s {print} s && /^(not )?ok [0-9]+ cmamap/ {s=0}' <<<"$dmesg_log")
# Each insmod runs the suites again (the reload tests load the module dozens of times): count
# each case once, and any run of it that failed.
k_runs=$(grep -cE '^ *# Subtest: cmamap' <<<"$kunit_log" | tr -d ' ')
k_pass=$(grep -E '^ +ok [0-9]+' <<<"$kunit_log" | sort -u | grep -c . | tr -d ' ')
k_fail=$(grep -E '^ *not ok [0-9]+' <<<"$kunit_log" | sort -u | grep -c . | tr -d ' ')
grep -E '^ *not ok [0-9]+' <<<"$kunit_log" | sed 's/^ */  kunit: /'
echo "  command: $t_pass passed, $t_fail failed, $t_skip skipped; kunit: $k_pass passed, $k_fail failed (distinct cases over $k_runs suite runs)"
pass=$((t_pass + k_pass)) fail=$((t_fail + k_fail)) skip=$t_skip

# VM-level checks.
timed_out=0
[ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ] && timed_out=1
check "guest finished within ${timeout_s}s" $((1 - timed_out)) "QEMU killed after ${timeout_s}s"
done_marker=0
grep -aq '^CMAMAP-DONE' "$result" && done_marker=1
check "guest reported back on the result channel" $done_marker "no CMAMAP-DONE: guest panicked, hung or died"

rc=$(field RC)
check "command exited 0" "$([ "$rc" = 0 ] && echo 1 || echo 0)" "exit status ${rc:-none}"
check "insmod and rmmod succeeded" "$(grep -aqE '^CMAMAP-(INSMOD|RMMOD)-FAILED' "$result" && echo 0 || echo 1)" \
    "$(grep -aoE '^CMAMAP-(INSMOD|RMMOD)-FAILED' "$result" | tr '\n' ' ')"

# Splats: scan kernel lines of the console (they survive a panic) and the full dmesg.
splat_re='BUG:|WARNING:|INFO:|general protection fault|kernel BUG at|Kernel panic|panicked at|UBSAN:|invalid opcode:|KASAN|possible circular locking|suspected memory leak|Oops'
splats=$( {
    grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$console" | sed -E 's/^\[ *[0-9]+\.[0-9]+\] ?//'
    echo "$dmesg_log"
} | grep -aE "$splat_re" | sort -u)
if [ -n "$splats" ]; then
    check "no kernel splat" 0 "$(wc -l <<<"$splats") splat line(s)"
    sed 's/^/    /' <<<"$splats" | head -20
else
    check "no kernel splat" 1
fi

# IOMMU faults: a device reached memory it was not given. A test that causes one on purpose
# (DMA to an address it just unmapped) first logs "cmamap-test: expect IOMMU fault at ADDR";
# a fault at exactly an announced page is accepted, any other one fails the run.
kernel_lines=$( {
    grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$console" | sed -E 's/^\[ *[0-9]+\.[0-9]+\] ?//'
    echo "$dmesg_log"
})
expected_faults=$(grep -aoE 'cmamap-test: expect IOMMU fault at 0x[0-9a-f]+' <<<"$kernel_lines" | awk '{print $NF}' | sort -u)
# Intel's DMAR names the faulting page ("fault addr 0x..."), Arm's SMMUv3 the faulting
# address ("event: F_TRANSLATION ... iova: 0x..."): both are compared by page.
faults=$(grep -aE 'DMAR: \[DMA (Read|Write)|arm-smmu-v3.*event: .* iova: 0x' <<<"$kernel_lines" | sort -u)
unexpected=""
while IFS= read -r line; do
    [ -n "$line" ] || continue
    addr=$(grep -oE '(fault addr|iova:) 0x[0-9a-f]+' <<<"$line" | awk '{print $NF}')
    addr=$(printf '%#x' $((addr & ~0xfff)))
    grep -qxF "$addr" <<<"$expected_faults" || unexpected+="$line"$'\n'
done <<<"$faults"
check "no unexpected IOMMU fault ($(grep -c . <<<"$faults") seen, $(grep -c . <<<"$expected_faults") announced)" \
    "$([ -z "$unexpected" ] && echo 1 || echo 0)" "$(grep -c . <<<"$unexpected") unexpected"
[ -n "$unexpected" ] && sed 's/^/    /' <<<"$unexpected" | head -10

# Taint: B (bad page), D (died), W (warning), L (soft lockup) are failures; O, E, N are not.
taint=$(field TAINT)
letters=""
if [ -n "$taint" ]; then
    names=PFSRMBUDAWCIOELKXTNJ
    for ((bit = 0; bit < ${#names}; bit++)); do
        ((taint >> bit & 1)) && letters+=${names:bit:1}
    done
fi
bad_taint=$(tr -cd 'BDWL' <<<"$letters")
check "taint has none of B, D, W, L" "$([ -n "$taint" ] && [ -z "$bad_taint" ] && echo 1 || echo 0)" \
    "taint ${taint:-unknown} ($letters)"

# kmemleak after rmmod. The plain kernel has none: that is a skip, never a pass; the debug
# kernel must have it.
leaks=$(section KMEMLEAK)
if grep -aq '^CMAMAP-KMEMLEAK-UNAVAILABLE' "$result" && [ "${CMAMAP_FLAVOUR:-debug}" != debug ]; then
    skip=$((skip + 1))
    echo "skip - vm: kmemleak clean after rmmod # SKIP this kernel has no kmemleak: not checked"
else
    check "kmemleak clean after rmmod" "$([ "$done_marker" = 1 ] && ! grep -aq '^CMAMAP-KMEMLEAK-UNAVAILABLE' "$result" &&
        ! grep -q 'unreferenced object' <<<"$leaks" && echo 1 || echo 0)" \
        "$(grep -aq '^CMAMAP-KMEMLEAK-UNAVAILABLE' "$result" && echo "no kmemleak in this kernel" ||
            echo "$(grep -c 'unreferenced object' <<<"$leaks") leak(s)")"
    grep -q 'unreferenced object' <<<"$leaks" && sed 's/^/    /' <<<"$leaks" | head -30
fi

# CMA accounting, exact on both architectures: the areas' bitmap counters are back (every
# cma_alloc was released), and the settling (guest-init.sh) could allocate as many pages after
# rmmod as before insmod (no page of the area is still held by anyone). CmaFree is shown, not
# checked, unless the settling could not run: it misses freed CMA pages on per-CPU lists
# (62 MB of them on arm64) and moves with pages lent to other movable allocations.
avail_before=$(field CMA-AVAILABLE-BEFORE) avail_after=$(field CMA-AVAILABLE-AFTER)
check "CMA available pages back to baseline (${avail_before:-?} before insmod, ${avail_after:-?} after rmmod)" \
    "$([ -n "$avail_before" ] && [ "$avail_before" = "$avail_after" ] && echo 1 || echo 0)"
before=$(field CMAFREE-BEFORE) after=$(field CMAFREE-AFTER)
settled_before=$(field CMA-SETTLED-BEFORE) settled_after=$(field CMA-SETTLED-AFTER)
taken_before=$(field CMA-TAKEN-BEFORE) taken_after=$(field CMA-TAKEN-AFTER)
cma_free="CmaFree ${before:-?} kB before insmod, ${after:-?} kB after rmmod"
if [ "$settled_before" = yes ] && [ "${settled_after%% *}" = yes ]; then
    check "every CMA page free before insmod can be allocated after rmmod (${taken_before:-?} pages before, ${taken_after:-?} after; settled ${settled_after#yes } time(s) after rmmod)" \
        "$([ -n "$taken_before" ] && [ -n "$taken_after" ] && [ "$taken_after" -ge "$taken_before" ] && echo 1 || echo 0)"
    echo "  $cma_free (not checked: see above)"
else
    # Without the settling, CmaFree is the only page-level figure. Debian's kernel lends free
    # CMA pages to other movable allocations (CmaFree ended 64 kB low with every CMA page
    # back): there, with the exact count back, it may be as far below as the suite's own slack
    # (LENT_PAGES_SLACK_KIB); the project's kernels get none.
    lent=0 note=""
    if [ "${CMAMAP_FLAVOUR:-debug}" = distro ] && [ -n "$avail_before" ] && [ "$avail_before" = "$avail_after" ]; then
        lent=64 note=", slack 64 kB for lent pages"
    fi
    check "CmaFree back to baseline ($cma_free; settled: ${settled_before:-?}/${settled_after%% *}$note)" \
        "$([ -n "$before" ] && [ -n "$after" ] && [ "$((after + lent))" -ge "$before" ] && echo 1 || echo 0)"
fi

# A check only the host can make once the guest is gone, such as of an ivshmem backing file.
if [ -n "${CMAMAP_HOST_CHECK:-}" ]; then
    host_said=$(bash -c "$CMAMAP_HOST_CHECK" 2>&1) && host_ok=1 || host_ok=0
    if [ "$host_ok" = 1 ]; then
        pass=$((pass + 1))
        echo "ok - host: ${host_said:-$CMAMAP_HOST_CHECK}"
    else
        fail=$((fail + 1))
        echo "not ok - host: $CMAMAP_HOST_CHECK # ${host_said:-failed}"
    fi
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
