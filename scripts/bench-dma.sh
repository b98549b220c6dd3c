#!/usr/bin/env bash
# The DMA part of `make bench`: DMA_MAP, DMA_UNMAP and SYNC costs on the plain kernel, once
# behind an Intel IOMMU (q35, strict) and once without one (pc), both against QEMU's edu
# device; writes dma.csv and dma.txt into the results folder.
#
#   scripts/bench-dma.sh [RESULTS_DIR] [-- BENCH_DMA_ARGS...]
# Needs out/mod-[arm64-]plain/cmamap.ko (make module-plain) and the guest tools (make userspace).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup "$@"

status=0
inputs=()
for setup in iommu direct; do
    case $setup in
    iommu) machine=(--machine q35 --iommu intel --device edu) bits=28 ;;
    direct) machine=(--device edu,dma_mask=0xffffffffffffffff) bits=64 ;;
    esac
    # arm64: virt, with an SMMUv3 for the IOMMU case.
    [ "$CMAMAP_ARCH" != arm64 ] || [ "$setup" != iommu ] || machine=(--iommu smmuv3 --device edu)
    out="$(arch_out)/bench-dma-$setup"
    step "DMA costs, $setup"
    "$CMAMAP_ROOT/qemu/run.sh" --flavour plain --module "$module" --bin "$bin" --out "$out" \
        --timeout 900 --accel tcg --quiet "${machine[@]}" -- env CMAMAP_PROGRESS=/dev/console /bin/cmamap-bench dma \
        --setup "$setup" --device edu --dma-bits "$bits" --tsc-khz "$khz" "${bench_args[@]}" | tail -n 1 ||
        status=1
    inputs+=(--input "$out/result.txt")
done
step_done
"$host_bin/cmamap-bench" dma-report "${inputs[@]}" --out "$results" || status=1
exit "$status"
