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
CARGO_JOBS ?= $(shell nproc)
# Extra arguments for the VM runner, e.g. RUN_ARGS="--accel tcg".
RUN_ARGS ?=
# Extra arguments for `cmamap-bench run`, e.g. BENCH_ARGS="--max-size 16M --repeats 3".
BENCH_ARGS ?=
OPS ?= 10000
# VMs that share the test suite in `make test`; each keeps about one host core busy under TCG.
SHARDS ?= 2
# The machine of `make run` and `make shell`: q35 with an Intel IOMMU and QEMU's edu DMA device.
DMA_MACHINE := --machine q35 --iommu intel --device edu
# The ivshmem device of the test VM: its backing file, shared with the host, and size.
IVSHMEM := $(OUT)/ivshmem.bin
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
# kbuild FLAVOUR [OUTPUT]: run Kbuild for the module against FLAVOUR's tree, into out/mod-OUTPUT.
kbuild = kdir="$(call kdir_of,$(1))" && [ -n "$$kdir" ] && mkdir -p $(OUT)/mod-$(or $(2),$(1)) && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) MO=$(OUT)/mod-$(or $(2),$(1)) LLVM=$(LLVM) ARCH=x86_64

.PHONY: all module module-plain setup kernel kernel-plain userspace host-test check clippy \
	fmt test test-long fuzz run shell bench bench-dma selftest-pipeline clean rust-analyzer help \
	distro test-distro test-dkms test-install install uninstall dkms-install dkms-uninstall

all: module

help:
	@echo "make            build cmamap.ko against KDIR (default: the cached debug kernel)"
	@echo "make run        set up, build, boot the VM and run the narrated demo"
	@echo "make test       set up, build, run host tests and the VM test suite (debug kernel)"
	@echo "make test-long  the cases too slow for every run (LIST of 65,537 blocks, ~7 min)"
	@echo "make fuzz OPS=N [SEED=S]  run N random operations against the model in the VM (replay a seed)"
	@echo "make shell      boot the VM into a shell with the module loaded"
	@echo "make bench      benchmark in the VM (plain kernel); results in bench/results/"
	@echo "make bench-dma  only its DMA part: DMA_MAP/UNMAP and SYNC costs with and without an IOMMU"
	@echo "make check      rustfmt, clippy (driver and userspace) and host cargo tests"
	@echo "make selftest-pipeline  prove that a WARN, a leak, a failing test and a hang fail a run"
	@echo "make distro     build cmamap.ko for Debian 13's own kernel (KVER=; in a Debian 13 chroot elsewhere)"
	@echo "make test-distro  the VM suite on Debian 13's own kernel image with the module from make distro"
	@echo "make install | uninstall  module (KVER), CLI, <cmamap.h>, udev rule, modprobe.d (DESTDIR, PREFIX)"
	@echo "make dkms-install | dkms-uninstall  register, build and install the module with DKMS (KVER)"
	@echo "make test-dkms  dkms-install for Debian's kernel in a Debian 13 chroot, boot it in the VM, dkms-uninstall"
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
	@$(MAKE) --no-print-directory module userspace host-test
	@scripts/test-install.sh cmamap.ko $(GUEST_BIN)/cmamap >$(OUT)/install-test.log 2>&1 || \
		{ cat $(OUT)/install-test.log; echo "install test failed"; exit 1; }
	@echo "install test: $$(tail -n 1 $(OUT)/install-test.log) (log: out/install-test.log)"
	@scripts/selftest-pipeline.sh
	@$(GUEST_BIN)/cmamap-test --host-fill $(IVSHMEM) $(IVSHMEM_SIZE)
	@scripts/test-vm.sh $(SHARDS) $(GUEST_BIN) $(IVSHMEM) $(RUN_ARGS)

# The cases too slow for every run (CMAMAP_LONG_TESTS=1), in one VM.
test-long: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) --timeout 1800 $(RUN_ARGS) \
		-- env CMAMAP_LONG_TESTS=1 /bin/cmamap-test --timeout 1200 list_past_the_largest_kmalloc

# The model-based random tester alone, as long as asked; the VM gets 5 ms per operation.
fuzz: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) --timeout $$(( 600 + $(OPS) / 200 )) \
		$(RUN_ARGS) -- /bin/cmamap-test --fuzz-ops $(OPS) $(if $(SEED),--fuzz-seed $(SEED)) fuzz_model

run: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --flavour debug --module cmamap.ko --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS) \
		-- /bin/cmamap-demo

bench: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench.sh bench/results -- $(BENCH_ARGS)
	@scripts/bench-dma.sh bench/results

# The DMA part of the benchmark alone (dma.csv, dma.txt in bench/results/).
bench-dma: setup
	@$(MAKE) --no-print-directory module-plain userspace
	@scripts/bench-dma.sh bench/results

shell: setup
	@$(MAKE) --no-print-directory module userspace
	@qemu/run.sh --shell --flavour debug --module cmamap.ko --bin $(GUEST_BIN) $(DMA_MACHINE) $(RUN_ARGS)

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
