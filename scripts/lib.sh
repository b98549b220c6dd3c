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

# The architectures the project builds for, in the kernel's spelling (ARCH=). The host's is
# the default; CMAMAP_ARCH (set by the Makefile from ARCH=) picks another.
host_arch() {
    case $(uname -m) in
    aarch64 | arm64) echo arm64 ;;
    *) echo x86_64 ;;
    esac
}
CMAMAP_ARCH=${CMAMAP_ARCH:-$(host_arch)}
case $CMAMAP_ARCH in
x86_64 | x86 | amd64) CMAMAP_ARCH=x86_64 ;;
arm64 | aarch64) CMAMAP_ARCH=arm64 ;;
*) printf 'error: unknown architecture %s (x86_64 or arm64)\n' "$CMAMAP_ARCH" >&2; exit 1 ;;
esac

# The Rust target of the static guest tools for an architecture.
rust_target() {
    case ${1:-$CMAMAP_ARCH} in
    arm64) echo aarch64-unknown-linux-gnu ;;
    *) echo x86_64-unknown-linux-gnu ;;
    esac
}

# The config fragment of a flavour ($1) on an architecture ($2), as merged onto allnoconfig.
# x86-64 is base.config plus the flavour's fragment, as it always was. Other architectures add
# qemu/ARCH.config, and every option that file sets overrides base.config's line for it
# (the x86-only serial, ACPI and Intel IOMMU lines), so base.config stays shared.
kernel_fragment() {
    local flavour=$1 arch=${2:-$CMAMAP_ARCH} archfrag opts
    if [ "$arch" = x86_64 ]; then
        cat "$CMAMAP_ROOT/qemu/base.config" "$CMAMAP_ROOT/qemu/$flavour.config"
        return
    fi
    archfrag="$CMAMAP_ROOT/qemu/$arch.config"
    [ -f "$archfrag" ] || die "no config fragment qemu/$arch.config"
    opts=$(grep -oE '^(# )?CONFIG_[A-Za-z0-9_]+' "$archfrag" | sed 's/^# //' | sort -u)
    grep -vwF -f <(echo "$opts") "$CMAMAP_ROOT/qemu/base.config"
    cat "$archfrag" "$CMAMAP_ROOT/qemu/$flavour.config"
}

# The cache key of a kernel of flavour $1 on architecture $2: kernel version, fragment,
# toolchain, and the architecture for all but x86-64 (whose key predates arm64 and must not
# change, or every cached x86-64 kernel would be rebuilt).
kernel_key() {
    local flavour=$1 arch=${2:-$CMAMAP_ARCH} src
    src=$(kernel_src_dir)
    [ -n "$src" ] || die "kernel source missing; run scripts/setup.sh"
    {
        make -s -C "$src" kernelversion 2>/dev/null
        [ "$arch" = x86_64 ] || echo "ARCH=$arch"
        kernel_fragment "$flavour" "$arch"
        clang$LLVM_SUFFIX --version | head -1
        rustc --version
        bindgen --version
    } | sha256sum | cut -c1-16
}

# The cached build tree of a flavour: kernels/FLAVOUR-KEY on x86-64, kernels/ARCH-FLAVOUR-KEY
# elsewhere.
kernel_build_dir() {
    local flavour=$1 arch=${2:-$CMAMAP_ARCH} prefix=""
    [ "$arch" = x86_64 ] || prefix="$arch-"
    echo "$CMAMAP_CACHE/kernels/$prefix$flavour-$(kernel_key "$flavour" "$arch")"
}

# The bootable image inside a build tree ($1) of architecture $2.
kernel_image() {
    case ${2:-$CMAMAP_ARCH} in
    arm64) echo "$1/arch/arm64/boot/Image" ;;
    *) echo "$1/arch/x86/boot/bzImage" ;;
    esac
}

# The static busybox of an architecture's initramfs: Debian's busybox-static for the host's,
# an arm64 one that scripts/setup.sh fetches into the cache otherwise.
busybox_path() {
    local arch=${1:-$CMAMAP_ARCH} bb
    if [ "$arch" = "$(host_arch)" ]; then
        bb=$(command -v busybox || true)
        [ -n "$bb" ] && file -L "$bb" 2>/dev/null | grep -q static || bb=/bin/busybox
        echo "$bb"
    else
        echo "$CMAMAP_CACHE/$arch/busybox"
    fi
}

# The module's Kbuild output directory under out/ for a flavour: mod-FLAVOUR on x86-64,
# mod-ARCH-FLAVOUR elsewhere (the Makefile names them the same way).
mod_dir() {
    if [ "$CMAMAP_ARCH" = x86_64 ]; then echo "mod-$1"; else echo "mod-$CMAMAP_ARCH-$1"; fi
}

# The module of the current architecture: ./cmamap.ko for the host's, out/ARCH/cmamap.ko for
# another (the Makefile's KO).
module_ko() {
    if [ "$CMAMAP_ARCH" = "$(host_arch)" ]; then
        echo "$CMAMAP_ROOT/cmamap.ko"
    else
        echo "$CMAMAP_ROOT/out/$CMAMAP_ARCH/cmamap.ko"
    fi
}

# Where an architecture's VM output goes: out/ on x86-64, out/ARCH/ elsewhere.
arch_out() {
    if [ "$CMAMAP_ARCH" = x86_64 ]; then echo "$CMAMAP_ROOT/out"; else echo "$CMAMAP_ROOT/out/$CMAMAP_ARCH"; fi
}

# The benchmark scripts' common start, from their arguments `[RESULTS_DIR] [-- ARGS...]`: sets
# results (default bench/results), bench_args (what follows --), bin (the guest's tools),
# host_bin (the host's, which reports), khz (the guest clock's rate) and module, and checks
# that the guest tools and the plain module are built.
bench_setup() {
    results="$CMAMAP_ROOT/bench/results"
    if [ $# -gt 0 ] && [ "$1" != -- ]; then
        results=$1
        shift
    fi
    [ "${1:-}" != -- ] || shift
    bench_args=("$@")
    bin="$CMAMAP_ROOT/userspace/target/$(rust_target)/release"
    module="$CMAMAP_ROOT/out/$(mod_dir plain)/cmamap.ko"
    host_bin="$CMAMAP_ROOT/userspace/target/$(rust_target "$(host_arch)")/release"
    [ -x "$bin/cmamap-bench" ] || die "$bin/cmamap-bench missing; run make userspace"
    [ -x "$host_bin/cmamap-bench" ] || die "$host_bin/cmamap-bench missing; run make userspace"
    [ -f "$module" ] || die "$module missing; run make module-plain"
    # TCG's rdtsc reads the host's counter, so the host measures its rate (the x86-64 guest's
    # own clock moves in 4 ms steps); the arm64 guest counts nanoseconds (cmamap-bench's
    # clock), so its rate is 1 GHz.
    if [ "$CMAMAP_ARCH" = x86_64 ]; then
        khz=$("$host_bin/cmamap-bench" tsc-khz)
    else
        khz=1000000
    fi
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
