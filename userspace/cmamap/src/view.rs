//! The view of one mapping: which way of mapping a block an mmap offset asks for.

use std::fmt;

use crate::abi;
use crate::strategy::Strategy;

/// How one mapping maps its block, whatever the block's own strategy: the bits
/// `abi::VIEW_SHIFT..abi::OFFSET_SHIFT` of the mmap offset.
///
/// Every [`Strategy`] is a view ([`Strategy::Default`] is [`View::Own`]); device memory has one
/// more, [`View::RemapWc`].
///
/// ```
/// use cmamap::{Strategy, View};
///
/// assert_eq!(View::from(Strategy::Page), View::Page);
/// assert_eq!(View::from(Strategy::Default), View::Own);
/// assert_eq!(View::RemapWc.to_raw(), cmamap::abi::VIEW_REMAP_WC);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum View {
    /// The block's own strategy (view 0).
    #[default]
    Own,
    /// `remap`: everything mapped in `mmap`.
    Remap,
    /// `fault`: one PFN per fault.
    Fault,
    /// `page`: one page per fault; get_user_pages works on it.
    Page,
    /// `huge`: one PMD per aligned 2 MiB; the library places the address for it.
    Huge,
    /// Device memory (a PCI BAR) mapped write-combined instead of uncached; CMA blocks refuse it.
    RemapWc,
    /// A value this crate does not know (tests check that the driver refuses it).
    Unknown(u32),
}

impl View {
    /// The ABI value of the view bits.
    pub const fn to_raw(self) -> u32 {
        match self {
            View::Own => abi::STRATEGY_DEFAULT,
            View::Remap => abi::STRATEGY_REMAP,
            View::Fault => abi::STRATEGY_FAULT,
            View::Page => abi::STRATEGY_PAGE,
            View::Huge => abi::STRATEGY_HUGE,
            View::RemapWc => abi::VIEW_REMAP_WC,
            View::Unknown(raw) => raw,
        }
    }

    /// The view an ABI value stands for.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            abi::STRATEGY_DEFAULT => View::Own,
            abi::STRATEGY_REMAP => View::Remap,
            abi::STRATEGY_FAULT => View::Fault,
            abi::STRATEGY_PAGE => View::Page,
            abi::STRATEGY_HUGE => View::Huge,
            abi::VIEW_REMAP_WC => View::RemapWc,
            other => View::Unknown(other),
        }
    }
}

impl From<Strategy> for View {
    fn from(strategy: Strategy) -> Self {
        View::from_raw(strategy.to_raw())
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            View::Own => f.write_str("own"),
            View::RemapWc => f.write_str("remap-wc"),
            View::Unknown(raw) => write!(f, "unknown({raw})"),
            other => write!(f, "{}", Strategy::from_raw(other.to_raw())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip_and_cover_the_strategies() {
        for raw in 0..8 {
            assert_eq!(View::from_raw(raw).to_raw(), raw);
        }
        for strategy in Strategy::CONCRETE {
            assert_eq!(View::from(strategy).to_raw(), strategy.to_raw());
            assert_eq!(View::from(strategy).to_string(), strategy.to_string());
        }
        assert_eq!(View::from(Strategy::Unknown(9)), View::Unknown(9));
        assert_eq!(View::RemapWc.to_string(), "remap-wc");
    }
}
