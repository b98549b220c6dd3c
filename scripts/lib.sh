# Shared shell helpers for cmamap's scripts. Source it; do not run it.
# shellcheck shell=bash

CMAMAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The cache lives outside the clone so that fresh clones (CI's too) reuse kernels.
CMAMAP_CACHE=${CMAMAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cmamap}
KERNEL_SERIES=${KERNEL_SERIES:-7.3}
LLVM_SUFFIX=${LLVM_SUFFIX:--19}
BINDGEN_VERSION=${BINDGEN_VERSION:-0.71.1}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH="$HOME/.cargo/bin:$PATH"

_step_t0=$(date +%s)
_step_name=""

# Prints a step header; the previous step's elapsed time is printed when the next one starts.
step() {
    step_done
    _step_name=$1
    _step_start=$(date +%s)
    printf '==> %s\n' "$_step_name"
}

step_done() {
    if [ -n "$_step_name" ]; then
        local now
        now=$(date +%s)
        printf '    done: %s (%ss, %ss total)\n' "$_step_name" "$((now - _step_start))" "$((now - _step_t0))"
        _step_name=""
    fi
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The unpacked kernel source tree, or empty when it is not there yet.
kernel_src_dir() {
    local d
    for d in "$CMAMAP_CACHE"/src/linux-source-"$KERNEL_SERIES"; do
        [ -f "$d/Makefile" ] && { echo "$d"; return 0; }
    done
    return 0
}

# The cache key of a kernel built from fragment $1: kernel version, fragment, toolchain.
kernel_key() {
    local fragment=$1 src
    src=$(kernel_src_dir)
    [ -n "$src" ] || die "kernel source missing; run scripts/setup.sh"
    {
        make -s -C "$src" kernelversion 2>/dev/null
        cat "$CMAMAP_ROOT/qemu/base.config" "$fragment"
        clang$LLVM_SUFFIX --version | head -1
        rustc --version
        bindgen --version
    } | sha256sum | cut -c1-16
}

kernel_build_dir() {
    local flavour=$1
    echo "$CMAMAP_CACHE/kernels/$flavour-$(kernel_key "$CMAMAP_ROOT/qemu/$flavour.config")"
}

# The benchmark scripts' common start, from their arguments `[RESULTS_DIR] [-- ARGS...]`: sets
# results (default bench/results), bench_args (what follows --), bin and module, and checks
# that the guest tools and the plain module are built.
bench_setup() {
    results="$CMAMAP_ROOT/bench/results"
    if [ $# -gt 0 ] && [ "$1" != -- ]; then
        results=$1
        shift
    fi
    [ "${1:-}" != -- ] || shift
    bench_args=("$@")
    bin="$CMAMAP_ROOT/userspace/target/x86_64-unknown-linux-gnu/release"
    module="$CMAMAP_ROOT/out/mod-plain/cmamap.ko"
    [ -x "$bin/cmamap-bench" ] || die "$bin/cmamap-bench missing; run make userspace"
    [ -f "$module" ] || die "$module missing; run make module-plain"
}

# A background ticker for long steps whose output goes to a log (the kernel build): every
# ${CMAMAP_TICK_SECS:-30} s until ticker_stop, on stderr, the time elapsed, the objects built
# so far under DIR and the log's last compile line.
#   ticker_start LOG DIR; ...; ticker_stop
ticker_start() {
    local log=$1 dir=$2 every=${CMAMAP_TICK_SECS:-30} start
    start=$(date +%s)
    (
        # The sleep goes with the ticker, so that nothing holds the caller's pipes open.
        trap '[ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM
        while :; do
            sleep "$every" &
            sleeper=$!
            wait "$sleeper"
            objects=$(find "$dir" -name '*.o' 2>/dev/null | wc -l)
            last=$(grep -E '^ +(CC|RUSTC|LD|AR|AS|BINDGEN)(\s|\[)' "$log" 2>/dev/null | tail -n 1 | sed 's/^ *//')
            printf '    ... %s elapsed, %s objects built, last: %s\n' \
                "$(($(date +%s) - start))s" "$objects" "${last:-none yet}"
        done
    ) >&2 &
    _ticker_pid=$!
}

ticker_stop() {
    if [ -n "${_ticker_pid:-}" ]; then
        kill "$_ticker_pid" 2>/dev/null || true
        wait "$_ticker_pid" 2>/dev/null || true
        _ticker_pid=""
    fi
}
