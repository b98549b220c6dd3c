// SPDX-License-Identifier: GPL-2.0

//! How a block's pages reach userspace page tables.

use crate::abi;
use kernel::prelude::*;

/// log2 of the pages in one PMD entry (2 MiB with 4 KiB pages).
#[cfg(not(CONFIG_ARM64))]
pub(crate) const HUGE_ORDER: u32 = kernel::bindings::PMD_ORDER;

/// log2 of the pages in one PMD entry (2 MiB with 4 KiB pages). arm64's `PMD_SHIFT` is a
/// function-like macro (`ARM64_HW_PGTABLE_LEVEL_SHIFT(2)`) that bindgen cannot evaluate, so
/// this is its definition: a table of 8-byte descriptors maps `PAGE_SHIFT - 3` bits per level,
/// and level 2 sits two levels above the page, `PMD_SHIFT = 2 * (PAGE_SHIFT - 3) + 3`.
#[cfg(CONFIG_ARM64)]
pub(crate) const HUGE_ORDER: u32 =
    2 * (kernel::page::PAGE_SHIFT as u32 - 3) + 3 - kernel::page::PAGE_SHIFT as u32;

/// The mapping strategy of a block, fixed at allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `remap_pfn_range` of the whole range inside `mmap`: no faults later.
    Remap,
    /// One `vmf_insert_pfn` per fault on a `VM_PFNMAP` VMA.
    Fault,
    /// One `vm_insert_page` per fault on a `VM_MIXEDMAP` VMA: real page references, so GUP works.
    Page,
    /// One `vmf_insert_pfn_pmd` per 2 MiB where block and address are aligned, else like `Fault`.
    Huge,
}

impl Strategy {
    /// Decodes an ABI value: an allocation's strategy or a CMA mapping's view.
    /// `STRATEGY_DEFAULT` resolves to `default`; unknown values are `EINVAL`.
    pub(crate) fn from_abi(value: u32, default: Strategy) -> Result<Self> {
        match value {
            abi::STRATEGY_DEFAULT => Ok(default),
            abi::STRATEGY_REMAP => Ok(Self::Remap),
            abi::STRATEGY_FAULT => Ok(Self::Fault),
            abi::STRATEGY_PAGE => Ok(Self::Page),
            abi::STRATEGY_HUGE => Ok(Self::Huge),
            _ => Err(EINVAL),
        }
    }

    /// Decodes the view of a mapping of device memory: `remap` (the default) or `fault`,
    /// uncached, or `VIEW_REMAP_WC`. Device memory has no `struct page`, so the `page` and
    /// `huge` views are `EOPNOTSUPP`; unknown values are `EINVAL`.
    pub(crate) fn for_device_view(view: u32) -> Result<(Self, Cache)> {
        match view {
            abi::STRATEGY_DEFAULT | abi::STRATEGY_REMAP => Ok((Self::Remap, Cache::Uncached)),
            abi::STRATEGY_FAULT => Ok((Self::Fault, Cache::Uncached)),
            abi::VIEW_REMAP_WC => Ok((Self::Remap, Cache::WriteCombine)),
            abi::STRATEGY_PAGE | abi::STRATEGY_HUGE => Err(EOPNOTSUPP),
            _ => Err(EINVAL),
        }
    }

    /// The ABI value.
    pub(crate) fn to_abi(self) -> u32 {
        match self {
            Self::Remap => abi::STRATEGY_REMAP,
            Self::Fault => abi::STRATEGY_FAULT,
            Self::Page => abi::STRATEGY_PAGE,
            Self::Huge => abi::STRATEGY_HUGE,
        }
    }

    /// The alignment order a block needs: huge blocks of 2 MiB or more start on 2 MiB, so that
    /// each aligned 2 MiB of them can be one PMD entry.
    pub(crate) fn align_order(self, pages: usize, asked: u32) -> u32 {
        match self {
            Self::Huge if pages >= 1 << HUGE_ORDER => asked.max(HUGE_ORDER),
            _ => asked,
        }
    }

    /// A short name for logs, debugfs and fdinfo.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Remap => "remap",
            Self::Fault => "fault",
            Self::Page => "page",
            Self::Huge => "huge",
        }
    }
}

/// The cache mode of a mapping of device memory (CMA RAM keeps the kernel's write-back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    /// Uncached (`pgprot_noncached`, UC- on x86): the default for device memory.
    Uncached,
    /// Write-combining (`pgprot_writecombine`): asked for through `VIEW_REMAP_WC`.
    WriteCombine,
}
