//! Typed views of the ABI's small enumerations: mapping strategy, owner and protection.

use std::fmt;
use std::str::FromStr;

use crate::abi;

/// How the driver maps a block into user space, chosen per block at allocation, and per
/// mapping through a view ([`crate::Block::map_view`]), where `Default` means the block's own.
///
/// `Unknown` carries values this crate does not know: a newer driver may report them, and tests
/// use them to check that the driver refuses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The module parameter `default_strategy` decides.
    #[default]
    Default,
    /// `remap_pfn_range` of the whole block in `mmap`: no faults afterwards.
    Remap,
    /// One PFN inserted per fault (`VM_PFNMAP`).
    Fault,
    /// `vm_insert_page` per fault (`VM_MIXEDMAP`): get_user_pages works on it.
    Page,
    /// One 2 MiB PMD entry per fault where block and address are 2 MiB aligned, else like
    /// `Fault`. [`crate::Block::map`] places the address for it.
    Huge,
    /// A value outside this ABI version.
    Unknown(u32),
}

impl Strategy {
    /// The strategies a block can actually have (everything but `Default`).
    pub const CONCRETE: [Strategy; 4] = [
        Strategy::Remap,
        Strategy::Fault,
        Strategy::Page,
        Strategy::Huge,
    ];

    /// The ABI value.
    pub const fn to_raw(self) -> u32 {
        match self {
            Strategy::Default => abi::STRATEGY_DEFAULT,
            Strategy::Remap => abi::STRATEGY_REMAP,
            Strategy::Fault => abi::STRATEGY_FAULT,
            Strategy::Page => abi::STRATEGY_PAGE,
            Strategy::Huge => abi::STRATEGY_HUGE,
            Strategy::Unknown(raw) => raw,
        }
    }

    /// The strategy an ABI value stands for.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            abi::STRATEGY_DEFAULT => Strategy::Default,
            abi::STRATEGY_REMAP => Strategy::Remap,
            abi::STRATEGY_FAULT => Strategy::Fault,
            abi::STRATEGY_PAGE => Strategy::Page,
            abi::STRATEGY_HUGE => Strategy::Huge,
            other => Strategy::Unknown(other),
        }
    }

    /// True when get_user_pages (O_DIRECT, vmsplice) can pin the block's pages.
    pub const fn supports_gup(self) -> bool {
        matches!(self, Strategy::Page)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Default => f.write_str("default"),
            Strategy::Remap => f.write_str("remap"),
            Strategy::Fault => f.write_str("fault"),
            Strategy::Page => f.write_str("page"),
            Strategy::Huge => f.write_str("huge"),
            Strategy::Unknown(raw) => write!(f, "unknown({raw})"),
        }
    }
}

/// A strategy name that is not `default`, `remap`, `fault`, `page` or `huge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseStrategyError(String);

impl fmt::Display for ParseStrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown strategy '{}' (expected default, remap, fault, page or huge)",
            self.0
        )
    }
}

impl std::error::Error for ParseStrategyError {}

impl FromStr for Strategy {
    type Err = ParseStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(Strategy::Default),
            "remap" => Ok(Strategy::Remap),
            "fault" => Ok(Strategy::Fault),
            "page" => Ok(Strategy::Page),
            "huge" => Ok(Strategy::Huge),
            _ => Err(ParseStrategyError(s.to_owned())),
        }
    }
}

/// Who owns a block, as `IOC_INFO` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The open file the caller used allocated it; it dies with that file.
    ThisFile,
    /// A `PERSIST` block, owned by the module until freed or rmmod.
    Module,
    /// Device memory (a PCI BAR), owned by the bound device until it unbinds.
    Device,
    /// A value outside this ABI version.
    Unknown(u32),
}

impl Owner {
    /// The owner an ABI value stands for.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            abi::OWNER_THIS_FILE => Owner::ThisFile,
            abi::OWNER_MODULE => Owner::Module,
            abi::OWNER_DEVICE => Owner::Device,
            other => Owner::Unknown(other),
        }
    }

    /// The ABI value.
    pub const fn to_raw(self) -> u32 {
        match self {
            Owner::ThisFile => abi::OWNER_THIS_FILE,
            Owner::Module => abi::OWNER_MODULE,
            Owner::Device => abi::OWNER_DEVICE,
            Owner::Unknown(raw) => raw,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::ThisFile => f.write_str("file"),
            Owner::Module => f.write_str("module"),
            Owner::Device => f.write_str("device"),
            Owner::Unknown(raw) => write!(f, "unknown({raw})"),
        }
    }
}

/// The access a mapping grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prot {
    /// `PROT_READ`.
    Read,
    /// `PROT_WRITE` alone (x86 lets such pages be read as well).
    Write,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

impl Prot {
    /// The `PROT_*` bits.
    pub const fn bits(self) -> i32 {
        match self {
            Prot::Read => libc::PROT_READ,
            Prot::Write => libc::PROT_WRITE,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }

    /// True when the protection includes `PROT_READ`.
    pub const fn readable(self) -> bool {
        matches!(self, Prot::Read | Prot::ReadWrite)
    }

    /// True when the protection includes `PROT_WRITE`.
    pub const fn writable(self) -> bool {
        matches!(self, Prot::Write | Prot::ReadWrite)
    }
}

/// Strategies and owners serialize as their names, as they display.
#[cfg(feature = "serde")]
macro_rules! serialize_as_display {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}

#[cfg(feature = "serde")]
serialize_as_display!(Strategy, Owner);

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prot::Read => "r",
            Prot::Write => "w",
            Prot::ReadWrite => "rw",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in [
            Strategy::Default,
            Strategy::Remap,
            Strategy::Fault,
            Strategy::Page,
            Strategy::Huge,
        ] {
            assert_eq!(strategy.to_string().parse::<Strategy>(), Ok(strategy));
            assert_eq!(Strategy::from_raw(strategy.to_raw()), strategy);
        }
    }

    #[test]
    fn strategy_parsing_ignores_case_and_rejects_others() {
        assert_eq!("REMAP".parse::<Strategy>(), Ok(Strategy::Remap));
        assert_eq!(" page ".parse::<Strategy>(), Ok(Strategy::Page));
        let err = "pfn".parse::<Strategy>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown strategy 'pfn' (expected default, remap, fault, page or huge)"
        );
        assert!("".parse::<Strategy>().is_err());
        assert!("1".parse::<Strategy>().is_err());
    }

    #[test]
    fn strategy_raw_values_match_the_abi() {
        assert_eq!(Strategy::Default.to_raw(), abi::STRATEGY_DEFAULT);
        assert_eq!(Strategy::Remap.to_raw(), abi::STRATEGY_REMAP);
        assert_eq!(Strategy::Fault.to_raw(), abi::STRATEGY_FAULT);
        assert_eq!(Strategy::Page.to_raw(), abi::STRATEGY_PAGE);
        assert_eq!(Strategy::Huge.to_raw(), abi::STRATEGY_HUGE);
        assert_eq!(Strategy::from_raw(9), Strategy::Unknown(9));
        assert_eq!(Strategy::Unknown(9).to_raw(), 9);
        assert_eq!(Strategy::Unknown(9).to_string(), "unknown(9)");
    }

    #[test]
    fn only_page_strategy_supports_gup() {
        assert!(Strategy::Page.supports_gup());
        assert!(!Strategy::Remap.supports_gup());
        assert!(!Strategy::Fault.supports_gup());
        assert!(!Strategy::Huge.supports_gup());
    }

    #[test]
    fn owner_raw_values_match_the_abi() {
        assert_eq!(Owner::from_raw(abi::OWNER_THIS_FILE), Owner::ThisFile);
        assert_eq!(Owner::from_raw(abi::OWNER_MODULE), Owner::Module);
        assert_eq!(Owner::from_raw(0), Owner::Unknown(0));
        assert_eq!(Owner::Module.to_raw(), abi::OWNER_MODULE);
        assert_eq!(Owner::Module.to_string(), "module");
    }

    #[test]
    fn prot_bits() {
        assert_eq!(Prot::Read.bits(), libc::PROT_READ);
        assert_eq!(Prot::ReadWrite.bits(), libc::PROT_READ | libc::PROT_WRITE);
        assert!(Prot::Write.writable() && !Prot::Write.readable());
        assert!(Prot::Read.readable() && !Prot::Read.writable());
    }
}
