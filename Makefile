# cmamap: top-level build. `make help` lists the targets.
#
# The module builds out of tree against KDIR (or KERNEL_SRC): a configured and built,
# Rust-enabled kernel tree. Without one, the project's own cached debug kernel is used and
# built on first use (scripts/build-kernel.sh).
#
# ARCH picks the architecture: x86_64 or arm64 (default: the host's). Another architecture
# than the host's is a cross build (LLVM for the kernel and module, gcc-aarch64-linux-gnu as
# the Rust guest tools' linker) and a TCG guest. `make test ARCH=all` tests both, one after
# the other.

LLVM ?= -19
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
export PATH := $(HOME)/.cargo/bin:$(PATH)
KDIR ?= $(KERNEL_SRC)
OUT := $(CURDIR)/out
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
# Sub-makes inherit the architecture through CMAMAP_ARCH, exported below.
ARCH ?= $(or $(CMAMAP_ARCH),$(HOST_ARCH))
override ARCH := $(patsubst aarch64,arm64,$(patsubst x86,x86_64,$(patsubst amd64,x86_64,$(ARCH))))
ALL_ARCHES := x86_64 arm64
# ARCH is this Makefile's (x86_64, arm64 or all): sub-makes do not inherit it, since the kernel's
# make would read ARCH=all as an architecture. The scripts pass the kernel its own ARCH, and
# ARCH=all runs this Makefile once per architecture with ARCH given explicitly.
MAKEOVERRIDES := $(filter-out ARCH=%,$(MAKEOVERRIDES))
ifeq ($(filter $(ARCH),$(ALL_ARCHES) all),)
$(error ARCH must be x86_64, arm64 or all, not '$(ARCH)')
endif
ifeq ($(ARCH),all)
ifneq ($(filter-out test selftest-pipeline setup host-test check clean help,$(MAKECMDGOALS)),)
$(error ARCH=all is for make test, selftest-pipeline and setup; give ARCH=x86_64 or ARCH=arm64)
endif
endif
# The scripts read the architecture from here (scripts/lib.sh).
export CMAMAP_ARCH := $(if $(filter all,$(ARCH)),$(HOST_ARCH),$(ARCH))
ifeq ($(CMAMAP_ARCH),arm64)
TARGET := aarch64-unknown-linux-gnu
# Module build directories: out/mod-FLAVOUR on x86-64, out/mod-arm64-FLAVOUR on arm64.
MODPFX := arm64-
# The machine of `make run` and `make shell`: virt with an SMMUv3 and QEMU's edu DMA device.
DMA_MACHINE := --iommu smmuv3 --device edu
else
TARGET := x86_64-unknown-linux-gnu
MODPFX :=
# The machine of `make run` and `make shell`: q35 with an Intel IOMMU and QEMU's edu DMA device.
# CMA below 4 GiB, where vivid's 32-bit dma-contig instance reaches a dma-buf without an IOMMU.
DMA_MACHINE := --machine q35 --iommu intel --device edu --cma 512M@0-4G
endif
ifneq ($(HOST_ARCH),arm64)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER ?= aarch64-linux-gnu-gcc
endif
# The module: ./cmamap.ko for the host's architecture, out/ARCH/cmamap.ko for another.
KO := $(if $(filter $(HOST_ARCH),$(CMAMAP_ARCH)),$(CURDIR)/cmamap.ko,$(OUT)/$(CMAMAP_ARCH)/cmamap.ko)
# Logs and VM output: out/ on x86-64, out/arm64/ on arm64.
ARCH_OUT := $(if $(filter x86_64,$(CMAMAP_ARCH)),$(OUT),$(OUT)/$(CMAMAP_ARCH))
GUEST_BIN := $(CURDIR)/userspace/target/$(TARGET)/release
# The C examples (examples/c), static for the guest.
EXAMPLES_BIN := $(ARCH_OUT)/examples
# Benchmark results: bench/results (x86-64), bench/results-arm64.
BENCH_RESULTS := bench/results$(if $(filter arm64,$(CMAMAP_ARCH)),-arm64)
# The host's own build of the tools, for the checks the host makes (the ivshmem file).
HOST_TARGET := $(if $(filter arm64,$(HOST_ARCH)),aarch64,x86_64)-unknown-linux-gnu
export CMAMAP_HOST_BIN := $(CURDIR)/userspace/target/$(HOST_TARGET)/release
CARGO_JOBS ?= $(shell nproc)
# Extra arguments for the VM runner, e.g. RUN_ARGS="--accel tcg".
RUN_ARGS ?=
# Extra arguments for `cmamap-bench run`, e.g. BENCH_ARGS="--max-size 16M --repeats 3".
BENCH_ARGS ?=
OPS ?= 10000
# VMs that share the test suite in `make test`; each keeps about one host core busy under TCG.
SHARDS ?= 2
# The ivshmem device of the test VM: its backing file, shared with the host, and size.
IVSHMEM := $(ARCH_OUT)/ivshmem.bin
IVSHMEM_SIZE := 1048576
# make install/uninstall (scripts/install.sh): DESTDIR, PREFIX, and the kernel KVER the module
# is for; INSTALL_MODULE= (empty) installs everything but the module (DKMS installs it).
PREFIX ?= /usr/local
KVER ?= $(shell uname -r)
INSTALL_MODULE ?= $(CURDIR)/cmamap.ko
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
# --kernel for scripts/build-distro.sh only when KVER was given (it picks its own default).
DISTRO_KVER = $(if $(filter command line environment,$(origin KVER)),--kernel $(KVER))

# The kernel tree for a flavour: KDIR if given (debug only), else the cached build.
kdir_of = $(if $(and $(KDIR),$(filter debug,$(1))),$(KDIR),$$(scripts/build-kernel.sh $(1) | tail -n 1))
# kbuild FLAVOUR [OUTPUT]: run Kbuild for the module against FLAVOUR's tree, into
# out/mod-[arm64-]OUTPUT.
kbuild = kdir="$(call kdir_of,$(1))" && [ -n "$$kdir" ] && mkdir -p $(OUT)/mod-$(MODPFX)$(or $(2),$(1)) && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) MO=$(OUT)/mod-$(MODPFX)$(or $(2),$(1)) LLVM=$(LLVM) ARCH=$(CMAMAP_ARCH)

.PHONY: all module module-plain setup kernel kernel-plain userspace host-test check clippy \
	fmt test test-long fuzz run shell bench bench-dma bench-scale selftest-pipeline clean rust-analyzer \
	help examples distro test-distro test-dkms test-install install uninstall dkms-install \
	dkms-uninstall

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
	@echo "make selftest-pipeline  prove that a WARN, a leak, a leaked CMA page, a failing test and a hang fail a run"
	@echo "make examples   build the C (examples/c, -Wall -Werror) and Rust examples; make test runs them"
	@echo "make distro     build cmamap.ko for Debian 13's own kernel (KVER=; in a Debian 13 chroot elsewhere)"
	@echo "make test-distro  the VM suite on Debian 13's own kernel image with the module from make distro"
	@echo "make install | uninstall  module (KVER), CLI, <cmamap.h>, udev rule, modprobe.d (DESTDIR, PREFIX)"
	@echo "make dkms-install | dkms-uninstall  register, build and install the module with DKMS (KVER)"
	@echo "make test-dkms  dkms-install for Debian's kernel in a Debian 13 chroot, boot it in the VM, dkms-uninstall"
	@echo "make setup | kernel | kernel-plain | userspace | rust-analyzer | clean"

setup:
	@scripts/setup.sh $(if $(filter all,$(ARCH)),$(ALL_ARCHES),$(ARCH))

kernel:
	@scripts/build-kernel.sh debug >/dev/null

kernel-plain:
	@scripts/build-kernel.sh plain >/dev/null

module:
	@$(call kbuild,debug) $(if $(CLIPPY),CLIPPY=1) W=1 modules
	@mkdir -p $(dir $(KO)) && cp $(OUT)/mod-$(MODPFX)debug/cmamap.ko $(KO)
	@echo "built $(KO) ($(CMAMAP_ARCH))"

module-plain:
	@$(call kbuild,plain) modules

rust-analyzer:
	@$(call kbuild,debug) rust-analyzer
	@python3 scripts/rust-project.py $(OUT)/mod-$(MODPFX)debug/rust-project.json \
		$(CURDIR)/rust-project.json $(CURDIR)/driver/cmamap_main.rs
	@echo "wrote $(CURDIR)/rust-project.json"

# Static glibc binaries: the guest has no libc. A cross build also builds the host's
# cmamap-test, which checks the ivshmem file from the host, and cmamap-bench, which reports.
userspace:
	@cd userspace && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build --release --locked -j$(CARGO_JOBS) --target $(TARGET) --bins -q
ifneq ($(TARGET),$(HOST_TARGET))
	@cd userspace && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build --release --locked -j$(CARGO_JOBS) --target $(HOST_TARGET) --bin cmamap-test --bin cmamap-bench -q
endif
	@echo "built guest tools ($(TARGET)) in $(GUEST_BIN)"

# The C examples and the library's cargo examples (userspace/cmamap/examples), static like
# the guest tools, as cmamap-example-*; warnings are errors so that they never rot.
RUST_EXAMPLES := alloc_map persist_share
examples:
	@$(MAKE) --no-print-directory -s -C examples/c OUT=$(EXAMPLES_BIN) \
		$(if $(filter arm64,$(CMAMAP_ARCH)),CC=aarch64-linux-gnu-gcc)
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
	@rm -f $(OUT)/mod-$(MODPFX)clippy/driver/cmamap_main.o
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

ifeq ($(ARCH),all)
# Each architecture in turn, with its time; the set-up installs what both need at once, and
# the host tests, which do not depend on the architecture, run once.
test selftest-pipeline: setup
	@host_tested=; for arch in $(ALL_ARCHES); do \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory $@ ARCH=$$arch SETUP_DONE=1 $$host_tested || exit 1; \
		echo "== make $@ ARCH=$$arch: passed in $$(( $$(date +%s) - start ))s"; \
		host_tested=HOST_TESTED=1; \
	done
else
selftest-pipeline: $(if $(SETUP_DONE),,setup)
	@$(MAKE) --no-print-directory userspace
	@CMAMAP_SELFTEST=always CMAMAP_GUEST_BIN=$(GUEST_BIN) scripts/selftest-pipeline.sh

test: $(if $(SETUP_DONE),,setup)
	@$(MAKE) --no-print-directory module userspace examples $(if $(HOST_TESTED),,host-test)
ifeq ($(CMAMAP_ARCH),$(HOST_ARCH))
	@scripts/test-install.sh $(KO) $(GUEST_BIN)/cmamap >$(OUT)/install-test.log 2>&1 || \
		{ cat $(OUT)/install-test.log; echo "install test failed"; exit 1; }
	@echo "install test: $$(tail -n 1 $(OUT)/install-test.log) (log: out/install-test.log)"
endif
	@CMAMAP_GUEST_BIN=$(GUEST_BIN) scripts/selftest-pipeline.sh
	@mkdir -p $(ARCH_OUT)
	@$(CMAMAP_HOST_BIN)/cmamap-test --host-fill $(IVSHMEM) $(IVSHMEM_SIZE)
	@scripts/test-vm.sh $(SHARDS) $(GUEST_BIN) $(IVSHMEM) --bin $(EXAMPLES_BIN) $(RUN_ARGS)
endif

# The cases too slow for every run (CMAMAP_LONG_TESTS=1), in one VM.
test-long: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module $(KO) --bin $(GUEST_BIN) --timeout 2700 $(RUN_ARGS) \
		-- env CMAMAP_LONG_TESTS=1 /bin/cmamap-test --timeout 1500 \
		list_past_the_largest_kmalloc hundred_thousand_blocks

# The model-based random tester alone, as long as asked; the VM gets 5 ms per operation.
# Progress (operations, rate, ETA) goes to the console every 15 s, not to the result port.
fuzz: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module $(KO) --bin $(GUEST_BIN) --timeout $$(( 600 + $(OPS) / 200 )) \
		$(RUN_ARGS) -- env CMAMAP_PROGRESS=/dev/console /bin/cmamap-test --fuzz-ops $(OPS) \
		$(if $(SEED),--fuzz-seed $(SEED)) fuzz_model

run: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module $(KO) --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS) \
		-- /bin/cmamap-demo

bench: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench.sh $(BENCH_RESULTS) -- $(BENCH_ARGS)
	@scripts/bench-dma.sh $(BENCH_RESULTS)
	@scripts/bench-scale.sh $(BENCH_RESULTS)

# The scale part of the benchmark alone (scale.csv, scale.txt, scale.svg in $(BENCH_RESULTS)/).
bench-scale: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench-scale.sh $(BENCH_RESULTS)

# The DMA part of the benchmark alone (dma.csv, dma.txt in bench/results/).
bench-dma: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench-dma.sh $(BENCH_RESULTS)

shell: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --shell --flavour debug --module $(KO) --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS)

# The module for a stock Debian 13 kernel (scripts/build-distro.sh), copied to ./cmamap.ko.
distro:
	@ko=$$(scripts/build-distro.sh $(DISTRO_KVER) | tail -n 1) && ko=$${ko#/cmamap/} && \
		cp "$$( [ -f "$$ko" ] && echo "$$ko" || echo "$(CURDIR)/$$ko")" $(CURDIR)/cmamap.ko
	@echo "built $(CURDIR)/cmamap.ko for Debian's kernel ($$(modinfo -F vermagic cmamap.ko))"

# The VM suite on Debian 13's own kernel image (trixie-backports), with the module built from
# Debian's packages; kmemleak, KASAN and KUnit are not in that kernel.
test-distro: setup
	@$(MAKE) --no-print-directory userspace
	@$(GUEST_BIN)/cmamap-test --host-fill $(IVSHMEM) $(IVSHMEM_SIZE)
	@scripts/test-distro.sh $(SHARDS) $(GUEST_BIN) $(IVSHMEM) $(RUN_ARGS)

# DKMS for Debian's kernel, in the Debian 13 chroot, then that module in Debian's kernel in the VM.
test-dkms: setup
	@$(MAKE) --no-print-directory userspace
	@scripts/test-dkms.sh $(GUEST_BIN)

test-install:
	@scripts/test-install.sh cmamap.ko $(GUEST_BIN)/cmamap

install uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" KVER="$(KVER)" INSTALL_MODULE="$(INSTALL_MODULE)" \
		$(if $(CLI),CLI="$(CLI)") scripts/install.sh $@

# DKMS: the sources go to /usr/src/cmamap-VERSION; dkms builds them for KVER (scripts/dkms-build.sh).
dkms-install:
	@scripts/dkms.sh install $(DKMS_VERSION) $(KVER)

dkms-uninstall:
	@scripts/dkms.sh uninstall $(DKMS_VERSION) $(KVER)

clean:
	@rm -rf $(OUT) cmamap.ko rust-project.json
	@cd userspace && cargo clean -q
