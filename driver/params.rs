// SPDX-License-Identifier: GPL-2.0

//! The module parameters, read through typed accessors.

use crate::{mapping::strategy::Strategy, module_parameters};

/// The strategy used when an allocation asks for `STRATEGY_DEFAULT`. An out-of-range
/// parameter (huge included) falls back to `remap` rather than failing every allocation.
pub(crate) fn default_strategy() -> Strategy {
    let value = module_parameters::default_strategy.value();
    match Strategy::from_abi(value, Strategy::Remap) {
        Ok(s @ (Strategy::Remap | Strategy::Fault | Strategy::Page)) => s,
        _ => Strategy::Remap,
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
