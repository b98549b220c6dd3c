//! The contenders: what the benchmark compares, and their names in the results.

use std::fmt;
use std::str::FromStr;

use cmamap::Strategy;

/// One way to get memory that user space can read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// A cmamap block mapped through one strategy.
    Cmamap(Kind),
    /// Private anonymous memory, faulted in on first touch.
    Anon,
    /// Private anonymous memory with `MAP_POPULATE`.
    AnonPopulate,
    /// The kernel's CMA dma-heap: allocate a dma-buf, mmap its fd.
    DmaHeap,
    /// A cmamap block never mapped: `pwrite` and `pread` through `/dev/cmamap`.
    DeviceIo,
}

/// The cmamap strategies, ordered as in the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `remap_pfn_range` at mmap time.
    Remap,
    /// `vmf_insert_pfn` per fault.
    Fault,
    /// `vm_insert_page` per fault.
    Page,
    /// 2 MiB PMD entries per fault.
    Huge,
}

impl Kind {
    /// The library's strategy.
    pub fn strategy(self) -> Strategy {
        match self {
            Kind::Remap => Strategy::Remap,
            Kind::Fault => Strategy::Fault,
            Kind::Page => Strategy::Page,
            Kind::Huge => Strategy::Huge,
        }
    }
}

impl Contender {
    /// Every contender, in the order of the results.
    pub const ALL: [Contender; 8] = [
        Contender::Cmamap(Kind::Remap),
        Contender::Cmamap(Kind::Fault),
        Contender::Cmamap(Kind::Page),
        Contender::Cmamap(Kind::Huge),
        Contender::Anon,
        Contender::AnonPopulate,
        Contender::DmaHeap,
        Contender::DeviceIo,
    ];

    /// The name in CSV files, tables and the chart.
    pub const fn name(self) -> &'static str {
        match self {
            Contender::Cmamap(Kind::Remap) => "remap",
            Contender::Cmamap(Kind::Fault) => "fault",
            Contender::Cmamap(Kind::Page) => "page",
            Contender::Cmamap(Kind::Huge) => "huge",
            Contender::Anon => "anon",
            Contender::AnonPopulate => "anon-populate",
            Contender::DmaHeap => "dma-heap",
            Contender::DeviceIo => "pread-pwrite",
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// In CSV files a contender is its name.
impl serde::Serialize for Contender {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Contender {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Contender {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Contender::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Contender::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown contender '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Contender::ALL {
            assert_eq!(c.name().parse::<Contender>(), Ok(c));
        }
        assert!("tmpfs".parse::<Contender>().is_err());
    }
}
