//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cmamap::units::{parse_byte, parse_size, parse_u32, parse_u64};
use cmamap::{Direction, Strategy, DEFAULT_PATH};

/// Allocate, map and inspect physically contiguous CMA blocks through /dev/cmamap.
///
/// A block belongs to the open file that allocated it and dies when this command exits, unless
/// it was allocated with --persist (root only), which keeps it until `cmamap free ID` or rmmod.
///
/// A block's strategy (remap, fault, page or huge) is only its default way of being mapped:
/// `cmamap map ID --view remap|fault|page|huge` maps the same memory through another strategy's
/// view, and several views of one block can exist at once.
#[derive(Debug, Parser)]
#[command(name = "cmamap", version)]
pub struct Cli {
    /// The cmamap device node.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    pub device: PathBuf,

    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Use this inherited descriptor of the device instead of opening it: device mappings
    /// belong to the open file that made them (`cmamap dma-map ... -- CMD` passes $CMAMAP_FD).
    #[arg(long, global = true, value_name = "FD")]
    pub fd: Option<i32>,

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
    /// Map (part of) a block, optionally through another strategy's view; optionally fill it,
    /// verify it and dump it.
    Map(MapCmd),
    /// Share a block with another process and check that both see each other's writes.
    Share(ShareCmd),
    /// Show the driver's figures and limits, and CmaTotal/CmaFree from /proc/meminfo.
    Stat,
    /// Map a block for a device through the DMA API and print the bus address that device
    /// must use (root only). The mapping ends when this command exits; give `-- CMD` to run a
    /// command while it lives, with $CMAMAP_FD, $CMAMAP_DMA_HANDLE and $CMAMAP_DMA_ADDR set.
    DmaMap(DmaMapCmd),
    /// Export (part of) a block as a dma-buf for V4L2, DRM and other importers. The dma-buf
    /// lives while this command does; give `-- CMD` to run a command that inherits it, with
    /// $CMAMAP_DMABUF_FD and $CMAMAP_DMABUF_SIZE set.
    Export(ExportCmd),
    /// End a device mapping (its handle) made through the descriptor --fd.
    DmaUnmap(DmaUnmapCmd),
    /// Sync a block's device mappings: `--for cpu` before the CPU reads what a device wrote,
    /// `--for device` before a device reads what the CPU wrote.
    Sync(SyncCmd),
    /// Check what cmamap needs (module, device node and who may open it, CMA, kernel config,
    /// IOMMU, your capabilities) and print the fix for each problem; exit status 1 if any.
    Doctor,
}

#[derive(Debug, Args)]
pub struct DmaMapCmd {
    /// The block id (a persistent block, or one reachable through --fd).
    #[arg(value_parser = parse_u32)]
    pub id: u32,

    /// The device: a PCI address (0000:00:05.0), BUS:NAME (platform:a0000000.dma), or a path
    /// under /sys/bus/BUS/devices/.
    pub target: String,

    #[command(flatten)]
    pub range: DmaRange,

    /// The device's DMA address width, for a device no kernel driver owns (its datasheet's
    /// figure): memory above it is refused instead of reached through a bounce buffer.
    #[arg(long, value_name = "BITS")]
    pub dma_bits: Option<u32>,

    /// A command to run while the mapping lives.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportCmd {
    /// The block id (a persistent block, or one reachable through --fd).
    #[arg(value_parser = parse_u32)]
    pub id: u32,

    /// Start inside the block in bytes (K/M/G suffixes allowed), page aligned.
    #[arg(long, value_parser = parse_size, default_value = "0")]
    pub offset: u64,

    /// Bytes, whole pages; defaults to the rest of the block.
    #[arg(long, value_parser = parse_size)]
    pub length: Option<u64>,

    /// A read-only dma-buf: writable mappings of it are refused.
    #[arg(long)]
    pub read_only: bool,

    /// A name for the dma-buf, shown in /sys/kernel/debug/dma_buf/bufinfo and fdinfo.
    #[arg(long)]
    pub name: Option<String>,

    /// A command to run with the dma-buf's descriptor.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DmaUnmapCmd {
    /// The handle that `cmamap dma-map` printed.
    #[arg(value_parser = parse_u32)]
    pub handle: u32,
}

/// Whom a sync is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncFor {
    /// Before the CPU reads what a device wrote.
    Cpu,
    /// Before a device reads what the CPU wrote.
    Device,
}

#[derive(Debug, Args)]
pub struct SyncCmd {
    /// The block id.
    #[arg(value_parser = parse_u32)]
    pub id: u32,

    /// Whom the sync is for.
    #[arg(long = "for", value_enum)]
    pub sync_for: SyncFor,

    #[command(flatten)]
    pub range: DmaRange,
}

/// Which bytes of a block, and which way data moves through them, for dma-map and sync.
#[derive(Debug, Args)]
pub struct DmaRange {
    /// Which way data moves: bidirectional, to-device or from-device.
    #[arg(
        long = "dir",
        value_name = "DIRECTION",
        default_value = "bidirectional"
    )]
    pub direction: Direction,

    /// Start inside the block in bytes (K/M/G suffixes allowed); page-aligned for dma-map.
    #[arg(long, value_parser = parse_size, default_value = "0")]
    pub offset: u64,

    /// Bytes (whole pages for dma-map); defaults to the rest of the block.
    #[arg(long, value_parser = parse_size)]
    pub length: Option<u64>,
}

impl DmaRange {
    /// The byte range inside a block of `size` bytes; `None` if it overflows.
    pub fn bytes(&self, size: u64) -> Option<std::ops::Range<u64>> {
        let end = match self.length {
            Some(length) => self.offset.checked_add(length)?,
            None => size,
        };
        Some(self.offset..end)
    }
}

#[derive(Debug, Args)]
pub struct AllocCmd {
    /// Size in bytes, with an optional K, M, G or T suffix; rounded up to whole pages.
    #[arg(value_parser = parse_size)]
    pub size: u64,

    /// Mapping strategy: default, remap, fault, page or huge.
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

    /// Map through this strategy's view instead of the block's own: remap (everything mapped
    /// up front, no faults), fault (one PFN per fault) or page (one page per fault; the only
    /// view that get_user_pages, O_DIRECT and vmsplice work on). One block can be mapped
    /// through several views at once; they all show the same memory. `default` is the
    /// block's own strategy.
    #[arg(long, value_name = "STRATEGY")]
    pub view: Option<Strategy>,

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

    /// Mapping strategy: default, remap, fault, page or huge.
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
        assert_eq!(map.view, None);
    }

    #[test]
    fn parses_map_view() {
        for (name, view) in [
            ("remap", Strategy::Remap),
            ("fault", Strategy::Fault),
            ("page", Strategy::Page),
            ("default", Strategy::Default),
        ] {
            let cli = Cli::try_parse_from(["cmamap", "map", "3", "--view", name]).unwrap();
            let Command::Map(map) = cli.command else {
                panic!("not map")
            };
            assert_eq!(map.view, Some(view), "{name}");
        }
    }

    #[test]
    fn parses_dma_map_with_a_command() {
        let cli = Cli::try_parse_from([
            "cmamap",
            "--fd",
            "3",
            "dma-map",
            "5",
            "0000:00:04.0",
            "--dir",
            "from-device",
            "--dma-bits",
            "28",
            "--",
            "sh",
            "-c",
            "true",
        ])
        .unwrap();
        assert_eq!(cli.fd, Some(3));
        let Command::DmaMap(map) = cli.command else {
            panic!("not dma-map")
        };
        assert_eq!((map.id, map.target.as_str()), (5, "0000:00:04.0"));
        assert_eq!(
            (map.range.direction, map.dma_bits),
            (Direction::FromDevice, Some(28))
        );
        assert_eq!(map.command, ["sh", "-c", "true"]);
    }

    #[test]
    fn parses_sync() {
        let cli =
            Cli::try_parse_from(["cmamap", "sync", "5", "--for", "cpu", "--length", "4K"]).unwrap();
        let Command::Sync(sync) = cli.command else {
            panic!("not sync")
        };
        assert_eq!((sync.id, sync.sync_for), (5, SyncFor::Cpu));
        assert_eq!(sync.range.bytes(8192), Some(0..4096));
        assert_eq!(sync.range.direction, Direction::Bidirectional);
    }

    #[test]
    fn help_mentions_views() {
        let help = Cli::command()
            .find_subcommand_mut("map")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--view"), "{help}");
        assert!(help.contains("get_user_pages"), "{help}");
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
            &["cmamap", "map", "1", "--view", "pfn"],
            &["cmamap", "map", "1", "--view"],
            &["cmamap", "frobnicate"],
            &["cmamap", "dma-map", "1"],
            &[
                "cmamap",
                "dma-map",
                "1",
                "0000:00:04.0",
                "--dir",
                "sideways",
            ],
            &["cmamap", "sync", "1"],
            &["cmamap", "sync", "1", "--for", "gpu"],
            &["cmamap", "dma-unmap", "x"],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}
