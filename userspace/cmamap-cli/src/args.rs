//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cmamap::units::{parse_byte, parse_size, parse_u32, parse_u64};
use cmamap::{Strategy, DEFAULT_PATH};

/// Allocate, map and inspect physically contiguous CMA blocks through /dev/cmamap.
///
/// A block belongs to the open file that allocated it and dies when this command exits, unless
/// it was allocated with --persist (root only), which keeps it until `cmamap free ID` or rmmod.
#[derive(Debug, Parser)]
#[command(name = "cmamap", version)]
pub struct Cli {
    /// The cmamap device node.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    pub device: PathBuf,

    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Allocate a block and print its id, mmap offset and size.
    Alloc(AllocCmd),
    /// Free a block (a mapped block lives on until its last munmap).
    Free(IdCmd),
    /// Describe a block.
    Info(IdCmd),
    /// List the blocks reachable from a new open file: the persistent ones.
    List,
    /// Map (part of) a block; optionally fill it, verify it and dump it.
    Map(MapCmd),
    /// Share a block with another process and check that both see each other's writes.
    Share(ShareCmd),
    /// Show the driver's figures and limits, and CmaTotal/CmaFree from /proc/meminfo.
    Stat,
}

#[derive(Debug, Args)]
pub struct AllocCmd {
    /// Size in bytes, with an optional K, M, G or T suffix; rounded up to whole pages.
    #[arg(value_parser = parse_size)]
    pub size: u64,

    /// Mapping strategy: default, remap, fault or page.
    #[arg(long, default_value = "default")]
    pub strategy: Strategy,

    /// Physical alignment as a page order (0 to 10).
    #[arg(long, value_name = "ORDER", default_value_t = 0)]
    pub align_order: u32,

    /// Make the block module-owned so that it outlives this command (needs CAP_SYS_ADMIN).
    #[arg(long)]
    pub persist: bool,

    /// Keep the block (and this process) alive for SECONDS before exiting.
    #[arg(long, value_name = "SECONDS")]
    pub hold: Option<u64>,
}

#[derive(Debug, Args)]
pub struct IdCmd {
    /// The block id.
    #[arg(value_parser = parse_u32)]
    pub id: u32,
}

#[derive(Debug, Args)]
pub struct MapCmd {
    /// The block id (a persistent block, or one this process can reach).
    #[arg(value_parser = parse_u32)]
    pub id: u32,

    /// Start of the mapping inside the block, page-aligned (K/M/G suffixes allowed).
    #[arg(long, value_parser = parse_size, default_value = "0")]
    pub offset: u64,

    /// Bytes to map; defaults to the rest of the block.
    #[arg(long, value_parser = parse_size)]
    pub length: Option<u64>,

    /// Fill the mapped range with BYTE (0-255 or 0x..).
    #[arg(long, value_name = "BYTE", value_parser = parse_byte, conflicts_with = "pattern")]
    pub fill: Option<u8>,

    /// Fill the mapped range with the test pattern of --seed.
    #[arg(long)]
    pub pattern: bool,

    /// Check that every mapped byte is BYTE.
    #[arg(long, value_name = "BYTE", value_parser = parse_byte, conflicts_with = "verify_pattern")]
    pub verify: Option<u8>,

    /// Check that the mapped range holds the test pattern of --seed.
    #[arg(long)]
    pub verify_pattern: bool,

    /// Pattern seed; defaults to the block id, so separate invocations agree.
    #[arg(long, value_parser = parse_u64)]
    pub seed: Option<u64>,

    /// Print a hex dump of the first BYTES of the mapped range (after any fill).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub dump: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ShareCmd {
    /// Size of the shared block.
    #[arg(value_parser = parse_size, default_value = "1M")]
    pub size: u64,

    /// Mapping strategy: default, remap, fault or page.
    #[arg(long, default_value = "default")]
    pub strategy: Strategy,

    /// Share a persistent block with an unrelated process (a new `cmamap map` that opens the
    /// device itself) instead of a forked child.
    #[arg(long)]
    pub persist: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_alloc() {
        let cli = Cli::try_parse_from([
            "cmamap",
            "alloc",
            "2M",
            "--strategy",
            "page",
            "--persist",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Alloc(alloc) = cli.command else {
            panic!("not alloc")
        };
        assert_eq!(alloc.size, 2 << 20);
        assert_eq!(alloc.strategy, Strategy::Page);
        assert!(alloc.persist);
        assert_eq!(alloc.hold, None);
    }

    #[test]
    fn parses_map_options() {
        let cli = Cli::try_parse_from([
            "cmamap", "--device", "/tmp/dev", "map", "7", "--offset", "8K", "--length", "4K",
            "--fill", "0xa5", "--verify", "165",
        ])
        .unwrap();
        assert_eq!(cli.device, PathBuf::from("/tmp/dev"));
        let Command::Map(map) = cli.command else {
            panic!("not map")
        };
        assert_eq!((map.id, map.offset, map.length), (7, 8192, Some(4096)));
        assert_eq!((map.fill, map.verify), (Some(0xa5), Some(0xa5)));
    }

    #[test]
    fn rejects_bad_usage() {
        for argv in [
            &["cmamap", "alloc"][..],
            &["cmamap", "alloc", "1Q"],
            &["cmamap", "alloc", "4K", "--strategy", "pfn"],
            &["cmamap", "free", "-1"],
            &["cmamap", "free", "4294967296"],
            &["cmamap", "map", "1", "--fill", "1", "--pattern"],
            &["cmamap", "map", "1", "--verify", "1", "--verify-pattern"],
            &["cmamap", "frobnicate"],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}
