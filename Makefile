# cmamap: top-level build. `make help` lists the targets.
#
# The module builds out of tree against KDIR (or KERNEL_SRC): a configured and built,
# Rust-enabled kernel tree. Without one, the project's own cached debug kernel is used and
# built on first use (scripts/build-kernel.sh).

LLVM ?= -19
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
export PATH := $(HOME)/.cargo/bin:$(PATH)
KDIR ?= $(KERNEL_SRC)
OUT := $(CURDIR)/out
TARGET := x86_64-unknown-linux-gnu
GUEST_BIN := $(CURDIR)/userspace/target/$(TARGET)/release
# The C examples (examples/c), static for the guest.
EXAMPLES_BIN := $(OUT)/examples
CARGO_JOBS ?= $(shell nproc)
# Extra arguments for the VM runner, e.g. RUN_ARGS="--accel tcg".
RUN_ARGS ?=
# Extra arguments for `cmamap-bench run`, e.g. BENCH_ARGS="--max-size 16M --repeats 3".
BENCH_ARGS ?=
OPS ?= 10000
# VMs that share the test suite in `make test`; each keeps about one host core busy under TCG.
SHARDS ?= 2
# The machine of `make run` and `make shell`: q35 with an Intel IOMMU and QEMU's edu DMA device;
# CMA below 4 GiB, where vivid's 32-bit dma-contig instance reaches a dma-buf without an IOMMU.
DMA_MACHINE := --machine q35 --iommu intel --device edu --cma 512M@0-4G
# The ivshmem device of the test VM: its backing file, shared with the host, and size.
IVSHMEM := $(OUT)/ivshmem.bin
IVSHMEM_SIZE := 1048576

# The kernel tree for a flavour: KDIR if given (debug only), else the cached build.
kdir_of = $(if $(and $(KDIR),$(filter debug,$(1))),$(KDIR),$$(scripts/build-kernel.sh $(1) | tail -n 1))
# kbuild FLAVOUR [OUTPUT]: run Kbuild for the module against FLAVOUR's tree, into out/mod-OUTPUT.
kbuild = kdir="$(call kdir_of,$(1))" && [ -n "$$kdir" ] && mkdir -p $(OUT)/mod-$(or $(2),$(1)) && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) MO=$(OUT)/mod-$(or $(2),$(1)) LLVM=$(LLVM) ARCH=x86_64

.PHONY: all module module-plain setup kernel kernel-plain userspace host-test check clippy \
	fmt test test-long fuzz run shell bench bench-dma bench-scale selftest-pipeline clean rust-analyzer \
	help examples

all: module

help:
	@echo "make            build cmamap.ko against KDIR (default: the cached debug kernel)"
	@echo "make run        set up, build, boot the VM and run the narrated demo"
	@echo "make test       set up, build, run host tests and the VM test suite (debug kernel)"
	@echo "make test-long  the cases too slow for every run (LIST of 65,537 blocks, 100,000 blocks)"
	@echo "make fuzz OPS=N [SEED=S]  run N random operations against the model in the VM (replay a seed)"
	@echo "make shell      boot the VM into a shell with the module loaded"
	@echo "make bench      benchmark in the VM (plain kernel); results in bench/results/"
	@echo "make bench-dma  only its DMA part: DMA_MAP/UNMAP and SYNC costs with and without an IOMMU"
	@echo "make bench-scale  only its scale part: call latency against 1 to 100,000 live blocks"
	@echo "make check      rustfmt, clippy (driver and userspace) and host cargo tests"
	@echo "make selftest-pipeline  prove that a WARN, a leak, a failing test and a hang fail a run"
	@echo "make examples   build the C (examples/c, -Wall -Werror) and Rust examples; make test runs them"
	@echo "make setup | kernel | kernel-plain | userspace | rust-analyzer | clean"

setup:
	@scripts/setup.sh

kernel:
	@scripts/build-kernel.sh debug >/dev/null

kernel-plain:
	@scripts/build-kernel.sh plain >/dev/null

module:
	@$(call kbuild,debug) $(if $(CLIPPY),CLIPPY=1) W=1 modules
	@cp $(OUT)/mod-debug/cmamap.ko $(CURDIR)/cmamap.ko
	@echo "built $(CURDIR)/cmamap.ko"

module-plain:
	@$(call kbuild,plain) modules

rust-analyzer:
	@$(call kbuild,debug) rust-analyzer
	@python3 scripts/rust-project.py $(OUT)/mod-debug/rust-project.json \
		$(CURDIR)/rust-project.json $(CURDIR)/driver/cmamap_main.rs
	@echo "wrote $(CURDIR)/rust-project.json"

# Static glibc binaries: the guest has no libc.
userspace:
	@cd userspace && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build --release --locked -j$(CARGO_JOBS) --target $(TARGET) --bins -q
	@echo "built guest tools in $(GUEST_BIN)"

# The C examples and the library's cargo examples (userspace/cmamap/examples), static like
# the guest tools, as cmamap-example-*; warnings are errors so that they never rot.
RUST_EXAMPLES := alloc_map persist_share
examples:
	@$(MAKE) --no-print-directory -s -C examples/c OUT=$(EXAMPLES_BIN)
	@cd userspace && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build --release --locked -j$(CARGO_JOBS) --target $(TARGET) -p cmamap --examples -q
	@for e in $(RUST_EXAMPLES); do \
		cp $(GUEST_BIN)/examples/$$e $(EXAMPLES_BIN)/cmamap-example-rust-$$(echo $$e | tr _ -); done
	@echo "built the C and Rust examples in $(EXAMPLES_BIN)"

host-test:
	@mkdir -p $(OUT)
	@cd userspace && cargo test --locked -j$(CARGO_JOBS) -q >$(OUT)/host-test.log 2>&1 || \
		{ cat $(OUT)/host-test.log; echo "host tests failed"; exit 1; }
	@awk '/^test result:/ {p += $$4; f += $$6} /^[0-9]+ passed, [0-9]+ failed$$/ {p += $$1; f += $$3} \
		END {printf "host tests: %d passed, %d failed (log: out/host-test.log)\n", p, f}' $(OUT)/host-test.log

# The driver's sources: the crate root and every module file below driver/.
DRIVER_RS = $(shell find driver -name '*.rs' | sort)

fmt:
	@rustfmt --edition 2021 --config-path driver/rustfmt.toml $(DRIVER_RS)
	@cd userspace && cargo fmt

# Clippy for the driver: always recompiled (clippy only speaks while rustc runs), and any
# warning fails.
clippy:
	@rm -f $(OUT)/mod-clippy/driver/cmamap_main.o
	@$(call kbuild,debug,clippy) CLIPPY=1 modules >$(OUT)/clippy.log 2>&1 || { cat $(OUT)/clippy.log; exit 1; }
	@! grep -A8 -E '^(warning|error)' $(OUT)/clippy.log
	@echo "clippy: driver clean"
	@cd userspace && cargo clippy --locked -q --all-targets -- -D warnings
	@echo "clippy: userspace clean"

check:
	@rustfmt --check --edition 2021 --config-path driver/rustfmt.toml $(DRIVER_RS)
	@cd userspace && cargo fmt --check
	@$(MAKE) --no-print-directory clippy
	@$(MAKE) --no-print-directory host-test
	@echo "check: rustfmt, clippy and host tests clean"

selftest-pipeline: setup
	@CMAMAP_SELFTEST=always scripts/selftest-pipeline.sh

test: setup
	@$(MAKE) --no-print-directory module userspace examples host-test
	@scripts/selftest-pipeline.sh
	@$(GUEST_BIN)/cmamap-test --host-fill $(IVSHMEM) $(IVSHMEM_SIZE)
	@scripts/test-vm.sh $(SHARDS) $(GUEST_BIN) $(IVSHMEM) --bin $(EXAMPLES_BIN) $(RUN_ARGS)

# The cases too slow for every run (CMAMAP_LONG_TESTS=1), in one VM.
test-long: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) --timeout 2700 $(RUN_ARGS) \
		-- env CMAMAP_LONG_TESTS=1 /bin/cmamap-test --timeout 1500 \
		list_past_the_largest_kmalloc hundred_thousand_blocks

# The model-based random tester alone, as long as asked; the VM gets 5 ms per operation.
# Progress (operations, rate, ETA) goes to the console every 15 s, not to the result port.
fuzz: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) --timeout $$(( 600 + $(OPS) / 200 )) \
		$(RUN_ARGS) -- env CMAMAP_PROGRESS=/dev/console /bin/cmamap-test --fuzz-ops $(OPS) \
		$(if $(SEED),--fuzz-seed $(SEED)) fuzz_model

run: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS) \
		-- /bin/cmamap-demo

bench: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench.sh bench/results -- $(BENCH_ARGS)
	@scripts/bench-dma.sh bench/results
	@scripts/bench-scale.sh bench/results

# The scale part of the benchmark alone (scale.csv, scale.txt, scale.svg in bench/results/).
bench-scale: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench-scale.sh bench/results

# The DMA part of the benchmark alone (dma.csv, dma.txt in bench/results/).
bench-dma: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench-dma.sh bench/results

shell: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --shell --flavour debug --module cmamap.ko --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS)

clean:
	@rm -rf $(OUT) cmamap.ko rust-project.json
	@cd userspace && cargo clean -q
