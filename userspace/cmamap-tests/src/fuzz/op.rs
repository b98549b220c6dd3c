//! The operations of the random tester. Each refers to files, blocks and mappings by `pick`s
//! that are resolved modulo what exists when it runs, so that any subsequence of a generated
//! sequence is itself a valid sequence (which shrinking needs).

use cmamap_testkit::rng::Rng;

/// How an allocation request is spoiled, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoil {
    None,
    SizeZero,
    UnknownFlag,
    BadStrategy,
    AlignTooBig,
    Reserved,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Open,
    Close {
        file: u32,
    },
    Reopen {
        file: u32,
    },
    /// ALLOC (or ALLOC_MAP when `map`) of `pages` pages; `strategy` 0 is the default.
    Alloc {
        file: u32,
        pages: u8,
        strategy: u8,
        persist: bool,
        map: bool,
        spoil: Spoil,
    },
    /// FREE of a reachable block, or (when `wrong`) of a freed id or another file's block.
    Free {
        file: u32,
        block: u32,
        wrong: bool,
    },
    /// UNMAP_FREE of a mapping's address through its block's file.
    UnmapFree {
        map: u32,
    },
    /// mmap of `pages` pages from `first` (clipped or not: out of range must fail), through
    /// view `view` (0: the block's own strategy, else `STRATEGY_*`; 5 and up are invalid).
    Map {
        file: u32,
        block: u32,
        first: u8,
        pages: u8,
        view: u8,
    },
    /// mmap of a freed block's offset.
    MapFreed {
        file: u32,
        freed: u32,
    },
    /// mremap of a whole mapping: shrunk in place to `pages` pages, or (when `moved`) moved
    /// to a new address whole.
    Mremap {
        map: u32,
        pages: u8,
        moved: bool,
    },
    /// munmap of `pages` pages from `first` inside a mapping.
    Munmap {
        map: u32,
        first: u8,
        pages: u8,
    },
    /// Writes `len` bytes of pattern `seed` at `at` in a mapping (or with pwrite when `pwrite`).
    Write {
        map: u32,
        block: u32,
        at: u16,
        len: u16,
        seed: u8,
        pwrite: bool,
    },
    /// Checks a mapping byte for byte, or a block with pread.
    Verify {
        map: u32,
        block: u32,
        pread: bool,
    },
    /// Forks; the child checks a mapping and a block.
    ForkVerify {
        map: u32,
        block: u32,
    },
    /// INFO of a block.
    Info {
        file: u32,
        block: u32,
    },
    /// LIST and STAT of a file.
    List {
        file: u32,
    },
    /// DMA_MAP of `pages` pages from `first` of a reachable block for the run's device, in
    /// direction `dir` (modulo 3); `past_end` starts it past the block (EINVAL).
    DmaMap {
        file: u32,
        block: u32,
        first: u8,
        pages: u8,
        dir: u8,
        past_end: bool,
    },
    /// DMA_UNMAP of one of the file's device mappings, or (when `wrong`) of a handle the file
    /// does not hold.
    DmaUnmap {
        file: u32,
        mapping: u32,
        wrong: bool,
    },
    /// EXPORT of `pages` pages (0: to the end) from `first` of a reachable block as a
    /// dma-buf; out of range must fail, and `spoil` sets an unknown flag (EINVAL).
    Export {
        file: u32,
        block: u32,
        first: u8,
        pages: u8,
        spoil: bool,
    },
    /// mmap of `pages` pages (0: to the end) from `first` through a dma-buf.
    MapExport {
        export: u32,
        first: u8,
        pages: u8,
    },
    /// Closes a dma-buf's fd.
    CloseExport {
        export: u32,
    },
    /// DMA_BUF_IOCTL_SYNC on a dma-buf: start or end, read and/or write (`access` 1..3), or
    /// with no access bit (0) or an unknown bit (4), which must fail with EINVAL.
    SyncExport {
        export: u32,
        access: u8,
        end: bool,
    },
    /// SYNC of `pages` pages from `first` of a reachable block.
    Sync {
        file: u32,
        block: u32,
        first: u8,
        pages: u8,
        dir: u8,
        for_cpu: bool,
    },
}

fn pick(rng: &mut Rng) -> u32 {
    rng.next_u64() as u32
}

impl Op {
    /// The next operation from `rng`; persistent blocks only when `root`.
    pub fn generate(rng: &mut Rng, root: bool) -> Op {
        let file = pick(rng);
        match rng.below(116) {
            0..=2 => Op::Open,
            3..=4 => Op::Close { file },
            5..=6 => Op::Reopen { file },
            7..=21 => {
                let spoil = if rng.chance(8) {
                    match rng.below(5) {
                        0 => Spoil::SizeZero,
                        1 => Spoil::UnknownFlag,
                        2 => Spoil::BadStrategy,
                        3 => Spoil::AlignTooBig,
                        _ => Spoil::Reserved,
                    }
                } else {
                    Spoil::None
                };
                Op::Alloc {
                    file,
                    pages: 1 + rng.below(8) as u8,
                    strategy: rng.below(5) as u8,
                    persist: root && rng.chance(10),
                    map: rng.chance(30),
                    spoil,
                }
            }
            22..=29 => Op::Free {
                file,
                block: pick(rng),
                wrong: rng.chance(15),
            },
            30..=32 => Op::UnmapFree { map: pick(rng) },
            33..=44 => {
                let (first, pages) = if rng.chance(10) {
                    // Likely out of range.
                    (rng.below(10) as u8, 1 + rng.below(10) as u8)
                } else {
                    (rng.below(8) as u8, 0)
                };
                // Mostly the block's own strategy, sometimes a view, rarely an invalid one.
                let view = match rng.below(20) {
                    0..=11 => 0,
                    12..=18 => 1 + rng.below(4) as u8,
                    _ => 5 + rng.below(3) as u8,
                };
                Op::Map {
                    file,
                    block: pick(rng),
                    first,
                    pages,
                    view,
                }
            }
            45..=46 => Op::MapFreed {
                file,
                freed: pick(rng),
            },
            47..=48 => Op::Mremap {
                map: pick(rng),
                pages: 1 + rng.below(7) as u8,
                moved: rng.chance(50),
            },
            49..=54 => Op::Munmap {
                map: pick(rng),
                first: rng.below(8) as u8,
                pages: 1 + rng.below(3) as u8,
            },
            55..=72 => Op::Write {
                map: pick(rng),
                block: pick(rng),
                at: rng.below(1 << 15) as u16,
                len: 1 + rng.below(6000) as u16,
                seed: rng.below(256) as u8,
                pwrite: rng.chance(30),
            },
            73..=86 => Op::Verify {
                map: pick(rng),
                block: pick(rng),
                pread: rng.chance(30),
            },
            87..=88 => Op::ForkVerify {
                map: pick(rng),
                block: pick(rng),
            },
            89..=94 => Op::Info {
                file,
                block: pick(rng),
            },
            95..=99 => Op::List { file },
            100..=103 => Op::DmaMap {
                file,
                block: pick(rng),
                first: rng.below(8) as u8,
                pages: rng.below(8) as u8,
                dir: rng.below(3) as u8,
                past_end: rng.chance(10),
            },
            104..=105 => Op::DmaUnmap {
                file,
                mapping: pick(rng),
                wrong: rng.chance(20),
            },
            106..=107 => Op::Sync {
                file,
                block: pick(rng),
                first: rng.below(8) as u8,
                pages: rng.below(8) as u8,
                dir: rng.below(3) as u8,
                for_cpu: rng.chance(50),
            },
            108..=110 => Op::Export {
                file,
                block: pick(rng),
                first: rng.below(8) as u8,
                pages: if rng.chance(50) {
                    0
                } else {
                    1 + rng.below(8) as u8
                },
                spoil: rng.chance(10),
            },
            111..=112 => Op::MapExport {
                export: pick(rng),
                first: rng.below(4) as u8,
                pages: if rng.chance(50) {
                    0
                } else {
                    1 + rng.below(5) as u8
                },
            },
            113..=114 => Op::CloseExport { export: pick(rng) },
            _ => Op::SyncExport {
                export: pick(rng),
                access: rng.below(5) as u8,
                end: rng.chance(50),
            },
        }
    }

    /// `n` operations from `seed`.
    pub fn sequence(seed: u64, n: usize, root: bool) -> Vec<Op> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| Op::generate(&mut rng, root)).collect()
    }
}
