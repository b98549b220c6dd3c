// SPDX-License-Identifier: GPL-2.0

//! The module parameters, read through typed accessors.

use crate::{abi, module_parameters};

/// The strategy used when an allocation asks for `STRATEGY_DEFAULT`. An out-of-range
/// parameter falls back to `remap` rather than failing every allocation.
pub(crate) fn default_strategy() -> u32 {
    match module_parameters::default_strategy.value() {
        s @ (abi::STRATEGY_REMAP | abi::STRATEGY_FAULT | abi::STRATEGY_PAGE) => s,
        _ => abi::STRATEGY_REMAP,
    }
}

/// The most bytes one open file may hold.
pub(crate) fn max_bytes_per_file() -> u64 {
    module_parameters::max_bytes_per_file.value()
}

/// The most bytes all blocks together may hold.
pub(crate) fn max_bytes_total() -> u64 {
    module_parameters::max_bytes_total.value()
}
