//! The in-memory model of what the driver should hold, and the execution of one operation
//! against both: every errno and every byte the device shows is compared with the model.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::fd::AsFd;
use std::rc::Rc;

use cmamap::{abi, raw, Device, Direction, DmaBuf, DmaDevice, Errno, Owner, Strategy};
use cmamap_testkit::pattern;

use super::op::{Op, Spoil};
use crate::check::{Failure, Step};
use crate::child;
use crate::ctx::Ctx;
use cmamap_testkit::region::{self, mmap_raw, Region};

const MAX_FILES: usize = 4;
const MAX_BLOCKS: usize = 24;
const MAX_MAPS: usize = 32;
const MAX_DMA_MAPS: usize = 48;
const MAX_EXPORTS: usize = 8;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

/// A block's memory, shared by the block and every mapping of it; outlives both in the model
/// as it does in the driver.
type Memory = Rc<RefCell<Vec<u8>>>;

struct File {
    key: u64,
    dev: Device,
}

struct Block {
    id: u32,
    offset: u64,
    pages: usize,
    strategy: Strategy,
    persist: bool,
    /// The key of the owning file; 0 for a persistent block.
    owner: u64,
    mem: Memory,
}

struct Map {
    addr: usize,
    block_id: u32,
    /// The file the block's bytes are charged to (0: none, a persistent block). The charge
    /// outlives the id while the memory is mapped, so that freeing early cannot dodge limits.
    charged_to: u64,
    /// The first block page it maps.
    first: usize,
    mapped: Vec<bool>,
    mem: Memory,
    /// Made by ALLOC_MAP, and its first page (where its VMA starts) never unmapped: only then
    /// may UNMAP_FREE undo it.
    alloc_map: bool,
    /// The key of the file it was mapped through: its VMAs keep that open file alive (and so
    /// its device mappings) after the descriptor is closed.
    via: u64,
}

impl Map {
    /// The VMAs it is made of: runs of mapped pages (driver VMAs never merge).
    fn vmas(&self) -> u32 {
        let mut runs = 0;
        let mut previous = false;
        for &mapped in &self.mapped {
            if mapped && !previous {
                runs += 1;
            }
            previous = mapped;
        }
        runs
    }

    /// Unmaps the pages of `start..start + count` that this mapping still has: the others may
    /// hold other mappings by now.
    fn unmap_pages(&mut self, page: usize, start: usize, count: usize) {
        for index in start..start + count {
            if self.mapped[index] {
                // SAFETY: the page belongs to this mapping, which nothing else references.
                unsafe { libc::munmap((self.addr + index * page) as *mut libc::c_void, page) };
                self.mapped[index] = false;
            }
        }
    }

    fn unmap_all(&mut self, page: usize) {
        self.unmap_pages(page, 0, self.mapped.len());
    }

    /// Compares every mapped page with the model.
    fn verify(&self, page: usize) -> Result<(), Failure> {
        let mem = self.mem.borrow();
        for (index, _) in self.mapped.iter().enumerate().filter(|(_, m)| **m) {
            let start = (self.first + index) * page;
            // SAFETY: the page is mapped and only this thread writes it.
            let seen = unsafe {
                std::slice::from_raw_parts((self.addr + index * page) as *const u8, page)
            };
            let expected = &mem[start..start + page];
            if seen != expected {
                let at = seen
                    .iter()
                    .zip(expected)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                fail!(
                    "mapping of block {} at {:#x}, page {index}: byte {at} is {:#04x}, the model \
                     says {:#04x}",
                    self.block_id,
                    self.addr,
                    seen[at],
                    expected[at]
                );
            }
        }
        Ok(())
    }
}

/// A dma-buf of pages `first..first + pages` of a block: it holds the block's memory (and
/// the charge to its file) after FREE and the file's release.
struct Exported {
    buf: DmaBuf,
    block_id: u32,
    charged_to: u64,
    first: usize,
    pages: usize,
    mem: Memory,
}

/// A device mapping: made through file `file_key`, of pages `first..first + pages` of a block.
struct DmaMap {
    file_key: u64,
    block_id: u32,
    handle: u32,
    first: usize,
    pages: usize,
    direction: Direction,
}

impl DmaMap {
    /// Whether SYNC of `first..first + pages` in `direction` reaches this mapping.
    fn synced_by(&self, block_id: u32, first: usize, pages: usize, direction: Direction) -> bool {
        let overlap = first < self.first + self.pages && self.first < first + pages;
        let dirs = direction == self.direction
            || direction == Direction::Bidirectional
            || self.direction == Direction::Bidirectional;
        self.block_id == block_id && overlap && dirs
    }
}

/// The first PCI device: any will do for mappings that no device uses (no IOMMU in the
/// suite's VMs, and CMA under its 32-bit mask).
fn first_pci_device() -> Option<DmaDevice> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    DmaDevice::new(names.first()?).ok()
}

#[derive(Default)]
pub struct Tally {
    pub ops: u64,
    pub allocs: u64,
    pub refusals: u64,
    pub bytes_checked: u64,
    pub forks: u64,
}

pub struct Model<'c> {
    ctx: &'c Ctx,
    page: usize,
    default_strategy: Strategy,
    files: Vec<File>,
    next_key: u64,
    blocks: Vec<Block>,
    freed: Vec<(u32, u64)>,
    maps: Vec<Map>,
    seen_ids: HashSet<u32>,
    dma: Vec<DmaMap>,
    exports: Vec<Exported>,
    /// The device DMA_MAP maps for; none without root (DMA_MAP needs CAP_SYS_ADMIN).
    dma_device: Option<DmaDevice>,
    pub tally: Tally,
}

/// The value of a call the model says succeeds.
fn expect_ok<T>(result: Result<T, Errno>, what: &str) -> Result<T, Failure> {
    result.map_err(|got| Failure::new(format!("{what}: {got}, the model says it succeeds")))
}

/// Passes when a call the model says fails with `want` did; `undo` releases what a wrong
/// success made.
fn expect_refusal<T>(
    result: Result<T, Errno>,
    want: Errno,
    what: &str,
    undo: impl FnOnce(T),
) -> Result<(), Failure> {
    match result {
        Err(got) if got == want => Ok(()),
        Err(got) => fail!("{what}: {got}, the model says {want}"),
        Ok(value) => {
            undo(value);
            fail!("{what}: succeeded, the model says {want}")
        }
    }
}

/// Passes when an mmap of `len` bytes that the model says fails with EINVAL did; a wrong
/// success is unmapped.
fn expect_map_refused(result: Result<usize, Errno>, len: usize, what: &str) -> Result<(), Failure> {
    // SAFETY: a wrongly made mapping is fresh and unused.
    let undo = |addr: usize| unsafe {
        libc::munmap(addr as *mut libc::c_void, len);
    };
    expect_refusal(result, Errno::EINVAL, what, undo)
}

impl<'c> Model<'c> {
    pub fn new(ctx: &'c Ctx) -> Result<Self, Failure> {
        let probe = ctx.open()?;
        let default_strategy = probe.stat()?.default_strategy();
        Ok(Self {
            ctx,
            page: ctx.page,
            default_strategy,
            files: Vec::new(),
            next_key: 1,
            blocks: Vec::new(),
            freed: Vec::new(),
            maps: Vec::new(),
            seen_ids: HashSet::new(),
            dma: Vec::new(),
            exports: Vec::new(),
            dma_device: if ctx.root { first_pci_device() } else { None },
            tally: Tally::default(),
        })
    }

    fn open_file(&mut self) -> Result<(), Failure> {
        let dev = self.ctx.open()?;
        self.files.push(File {
            key: self.next_key,
            dev,
        });
        self.next_key += 1;
        Ok(())
    }

    fn close_file(&mut self, index: usize) {
        let file = self.files.remove(index);
        drop(file.dev);
        let (gone, kept): (Vec<Block>, Vec<Block>) =
            self.blocks.drain(..).partition(|b| b.owner == file.key);
        self.blocks = kept;
        self.freed.extend(gone.iter().map(|b| (b.id, b.offset)));
    }

    fn reaches(file: &File, block: &Block) -> bool {
        block.persist || block.owner == file.key
    }

    /// The blocks `file` reaches, by index into `self.blocks`.
    fn reachable(&self, file: usize) -> Vec<usize> {
        let file = &self.files[file];
        (0..self.blocks.len())
            .filter(|&i| Self::reaches(file, &self.blocks[i]))
            .collect()
    }

    /// The file that `file` picks and a block it reaches that `block` picks, by index; none
    /// without files or reachable blocks.
    fn pick_reachable(&self, file: u32, block: u32) -> Option<(usize, usize)> {
        let file = file as usize % self.files.len().max(1);
        let reachable = self.files.get(file).map(|_| self.reachable(file))?;
        let index = *reachable.get(block as usize % reachable.len().max(1))?;
        Some((file, index))
    }

    /// A file that reaches block `index`.
    fn file_for(&self, index: usize) -> Option<usize> {
        self.files
            .iter()
            .position(|f| Self::reaches(f, &self.blocks[index]))
    }

    fn map_count(&self, id: u32) -> u32 {
        self.maps
            .iter()
            .filter(|m| m.block_id == id)
            .map(Map::vmas)
            .sum()
    }

    fn verify_block(&self, index: usize) -> Result<(), Failure> {
        let Some(file) = self.file_for(index) else {
            return Ok(());
        };
        let block = &self.blocks[index];
        let mut buf = vec![0u8; block.pages * self.page];
        let read = self.files[file]
            .dev
            .pread(block.offset, &mut buf)
            .step("pread")?;
        ensure_eq!(read, buf.len(), "pread length of block {}", block.id);
        let mem = block.mem.borrow();
        if buf != *mem {
            let at = buf
                .iter()
                .zip(mem.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            fail!(
                "pread of block {}: byte {at} is {:#04x}, the model says {:#04x}",
                block.id,
                buf[at],
                mem[at]
            );
        }
        Ok(())
    }

    /// Runs one operation; `Err` when the device disagrees with the model. Device mappings
    /// end with their block (FREE, UNMAP_FREE, close) and with the release of the file that
    /// made them.
    pub fn run(&mut self, op: Op) -> Result<(), Failure> {
        let result = self.run_op(op);
        let (blocks, files, maps) = (&self.blocks, &self.files, &self.maps);
        // An open file is released once no descriptor and no VMA of it is left.
        let file_lives = |key: u64| {
            files.iter().any(|f| f.key == key)
                || maps
                    .iter()
                    .any(|m| m.via == key && m.mapped.contains(&true))
        };
        self.dma
            .retain(|d| blocks.iter().any(|b| b.id == d.block_id) && file_lives(d.file_key));
        result
    }

    fn run_op(&mut self, op: Op) -> Result<(), Failure> {
        self.tally.ops += 1;
        let p = self.page;
        let nfiles = self.files.len() as u32;
        match op {
            Op::Open => {
                if self.files.len() < MAX_FILES {
                    self.open_file()?;
                }
            }
            Op::Close { file } | Op::Reopen { file } => {
                if nfiles > 0 {
                    self.close_file((file % nfiles) as usize);
                }
                if matches!(op, Op::Reopen { .. }) {
                    self.open_file()?;
                }
            }
            Op::Alloc {
                file,
                pages,
                strategy,
                persist,
                map,
                spoil,
            } => {
                if nfiles == 0
                    || self.blocks.len() >= MAX_BLOCKS
                    || (map && self.maps.len() >= MAX_MAPS)
                {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let pages = usize::from(pages);
                let mut args = abi::AllocArgs {
                    size: (pages * p) as u64,
                    flags: if persist { abi::ALLOC_PERSIST } else { 0 },
                    strategy: u32::from(strategy),
                    ..Default::default()
                };
                if map {
                    args.prot = RW as u32;
                }
                match spoil {
                    Spoil::None => {}
                    Spoil::SizeZero => args.size = 0,
                    Spoil::UnknownFlag => args.flags |= 1 << 7,
                    Spoil::BadStrategy => args.strategy = 99,
                    Spoil::AlignTooBig => args.align_order = abi::MAX_ALIGN_ORDER + 1,
                    Spoil::Reserved => args.reserved = 1,
                }
                let fd = self.files[file].dev.as_fd();
                let result = if map {
                    raw::alloc_map(fd, &mut args)
                } else {
                    raw::alloc(fd, &mut args)
                };
                let what = format!(
                    "{} of {pages} pages ({spoil:?})",
                    if map { "ALLOC_MAP" } else { "ALLOC" }
                );
                if spoil != Spoil::None {
                    self.tally.refusals += 1;
                    // A wrongly made block dies with the run's files.
                    expect_refusal(result, Errno::EINVAL, &what, drop)?;
                    return Ok(());
                }
                expect_ok(result, &what)?;
                self.tally.allocs += 1;
                let resolved = if strategy == 0 {
                    self.default_strategy
                } else {
                    Strategy::from_raw(u32::from(strategy))
                };
                ensure_eq!(args.size, (pages * p) as u64, "{what}: size");
                ensure_eq!(
                    Strategy::from_raw(args.strategy),
                    resolved,
                    "{what}: strategy"
                );
                ensure_eq!(args.offset, abi::offset_of_id(args.id), "{what}: offset");
                ensure!(
                    self.seen_ids.insert(args.id),
                    "{what}: id {} handed out twice",
                    args.id
                );
                let mem: Memory = Rc::new(RefCell::new(vec![0; pages * p]));
                let owner = if persist { 0 } else { self.files[file].key };
                if map {
                    self.maps.push(Map {
                        addr: args.addr as usize,
                        block_id: args.id,
                        charged_to: owner,
                        first: 0,
                        mapped: vec![true; pages],
                        mem: mem.clone(),
                        alloc_map: true,
                        via: self.files[file].key,
                    });
                }
                self.blocks.push(Block {
                    id: args.id,
                    offset: args.offset,
                    pages,
                    strategy: resolved,
                    persist,
                    owner,
                    mem,
                });
            }
            Op::Free { file, block, wrong } => {
                if nfiles == 0 {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                if wrong {
                    let key = self.files[file].key;
                    let mut ids: Vec<u32> = self.freed.iter().map(|f| f.0).collect();
                    ids.extend(
                        self.blocks
                            .iter()
                            .filter(|b| !b.persist && b.owner != key)
                            .map(|b| b.id),
                    );
                    let id = if ids.is_empty() {
                        u32::MAX - 7
                    } else {
                        ids[block as usize % ids.len()]
                    };
                    self.tally.refusals += 1;
                    expect_refusal(
                        self.files[file].dev.free(id).map_err(|e| e.errno()),
                        Errno::ENOENT,
                        &format!("FREE of unreachable id {id}"),
                        drop,
                    )?;
                    return Ok(());
                }
                let reachable = self.reachable(file);
                if reachable.is_empty() {
                    return Ok(());
                }
                let index = reachable[block as usize % reachable.len()];
                let id = self.blocks[index].id;
                expect_ok(
                    self.files[file].dev.free(id).map_err(|e| e.errno()),
                    &format!("FREE of block {id}"),
                )?;
                let gone = self.blocks.remove(index);
                self.freed.push((gone.id, gone.offset));
            }
            Op::UnmapFree { map } => {
                if self.maps.is_empty() {
                    return Ok(());
                }
                let m = map as usize % self.maps.len();
                let (id, addr, charged_to) = (
                    self.maps[m].block_id,
                    self.maps[m].addr,
                    self.maps[m].charged_to,
                );
                let live = self.blocks.iter().position(|b| b.id == id);
                // Through a file that reaches the block: its owner (which may have freed it).
                let file = match live {
                    Some(index) => self.file_for(index),
                    None if charged_to == 0 => (!self.files.is_empty()).then_some(0),
                    None => self.files.iter().position(|f| f.key == charged_to),
                };
                let Some(file) = file else {
                    return Ok(());
                };
                let map_ref = &self.maps[m];
                let whole = map_ref.first == 0
                    && map_ref.mapped.iter().all(|&x| x)
                    && map_ref.mapped.len() * p == map_ref.mem.borrow().len();
                let args = abi::FreeArgs {
                    id,
                    addr: addr as u64,
                    ..Default::default()
                };
                // SAFETY: the model owns every mapping of the device in this process; the one at
                // `addr` is dropped from the model below if the driver unmaps it.
                let result = unsafe { raw::unmap_free(self.files[file].dev.as_fd(), &args) };
                let what = format!("UNMAP_FREE of block {id} at {addr:#x}");
                match live {
                    Some(index) if whole && map_ref.alloc_map => {
                        expect_ok(result, &what)?;
                        let mut gone = self.maps.remove(m);
                        gone.mapped.iter_mut().for_each(|x| *x = false);
                        let block = self.blocks.remove(index);
                        self.freed.push((block.id, block.offset));
                    }
                    None if whole && map_ref.alloc_map => {
                        // Freed already: refused, and the mapping stays.
                        self.tally.refusals += 1;
                        expect_refusal(result, Errno::ENOENT, &what, drop)?;
                    }
                    _ => {
                        self.tally.refusals += 1;
                        expect_refusal(result, Errno::EINVAL, &what, drop)?;
                    }
                }
            }
            Op::Map {
                file,
                block,
                first,
                pages,
                view,
            } => {
                if nfiles == 0 || self.maps.len() >= MAX_MAPS {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let reachable = self.reachable(file);
                if reachable.is_empty() {
                    return Ok(());
                }
                let index = reachable[block as usize % reachable.len()];
                let b = &self.blocks[index];
                let (first, count, valid) = if pages == 0 {
                    let first = usize::from(first) % b.pages;
                    (first, b.pages - first, true)
                } else {
                    let (first, count) = (usize::from(first), usize::from(pages));
                    (first, count, first + count <= b.pages)
                };
                let valid = valid && u32::from(view) <= abi::STRATEGY_HUGE;
                let offset = abi::view_offset(b.id, u32::from(view), (first * p) as u64);
                let result = mmap_raw(0, count * p, RW, 0, self.files[file].dev.as_fd(), offset);
                let what = format!(
                    "mmap of block {} pages {first}..{} through view {view}",
                    b.id,
                    first + count
                );
                if !valid {
                    self.tally.refusals += 1;
                    expect_map_refused(result, count * p, &what)?;
                    return Ok(());
                }
                let addr = expect_ok(result, &what)?;
                let (block_id, charged_to, mem) = (b.id, b.owner, b.mem.clone());
                self.maps.push(Map {
                    addr,
                    block_id,
                    charged_to,
                    first,
                    mapped: vec![true; count],
                    mem,
                    alloc_map: false,
                    via: self.files[file].key,
                });
            }
            Op::MapFreed { file, freed } => {
                if nfiles == 0 || self.freed.is_empty() {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let (id, offset) = self.freed[freed as usize % self.freed.len()];
                self.tally.refusals += 1;
                let result = mmap_raw(0, p, RW, 0, self.files[file].dev.as_fd(), offset);
                expect_map_refused(result, p, &format!("mmap of freed block {id}"))?;
            }
            Op::Mremap { map, pages, moved } => {
                if self.maps.is_empty() {
                    return Ok(());
                }
                let count = self.maps.len();
                let m = &mut self.maps[map as usize % count];
                let len = m.mapped.len();
                if !m.mapped.iter().all(|&x| x) {
                    return Ok(());
                }
                let region = Region::adopt(m.addr, len * p);
                if moved {
                    let target = region::reserve(len * p)?;
                    let what = format!("mremap of block {} to a fixed address", m.block_id);
                    let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
                    let at = expect_ok(region.mremap(len * p, flags, target.addr), &what)?;
                    ensure_eq!(at, target.addr, "{what}: address");
                    std::mem::forget(target);
                    // The VMA at the old address went away: it is not ALLOC_MAP's any more.
                    m.addr = at;
                    m.alloc_map = false;
                } else {
                    let new = usize::from(pages).min(len);
                    if new < len {
                        let what = format!("mremap of block {} to {new} pages", m.block_id);
                        let at = expect_ok(region.mremap(new * p, 0, 0), &what)?;
                        ensure_eq!(at, m.addr, "{what}: address");
                        m.mapped.truncate(new);
                    }
                }
                std::mem::forget(region);
            }
            Op::Munmap { map, first, pages } => {
                if self.maps.is_empty() {
                    return Ok(());
                }
                let m = map as usize % self.maps.len();
                let len = self.maps[m].mapped.len();
                let start = usize::from(first) % len;
                let count = usize::from(pages).min(len - start);
                self.maps[m].unmap_pages(p, start, count);
                if start == 0 {
                    // The VMA that ALLOC_MAP made is gone: UNMAP_FREE no longer applies to it.
                    self.maps[m].alloc_map = false;
                }
                if self.maps[m].mapped.iter().all(|&x| !x) {
                    self.maps.remove(m);
                }
            }
            Op::Write {
                map,
                block,
                at,
                len,
                seed,
                pwrite,
            } => {
                let seed = u64::from(seed);
                if pwrite {
                    if self.blocks.is_empty() {
                        return Ok(());
                    }
                    let index = block as usize % self.blocks.len();
                    let Some(file) = self.file_for(index) else {
                        return Ok(());
                    };
                    let b = &self.blocks[index];
                    let size = b.pages * p;
                    let off = usize::from(at) % size;
                    let n = usize::from(len).min(size - off);
                    let data = pattern::generate(n, seed, off as u64);
                    let written = self.files[file]
                        .dev
                        .pwrite(b.offset + off as u64, &data)
                        .step("pwrite")?;
                    ensure_eq!(written, n, "pwrite length to block {}", b.id);
                    b.mem.borrow_mut()[off..off + n].copy_from_slice(&data);
                } else {
                    if self.maps.is_empty() {
                        return Ok(());
                    }
                    let m = &self.maps[map as usize % self.maps.len()];
                    let pages = m.mapped.len();
                    let index = usize::from(at) / p % pages;
                    if !m.mapped[index] {
                        return Ok(());
                    }
                    let end_page = (index..pages).find(|&i| !m.mapped[i]).unwrap_or(pages);
                    let off = index * p + usize::from(at) % p;
                    let n = usize::from(len).min(end_page * p - off);
                    let block_off = m.first * p + off;
                    let data = pattern::generate(n, seed, block_off as u64);
                    // SAFETY: the range is inside mapped pages of this mapping.
                    unsafe {
                        std::ptr::copy_nonoverlapping(data.as_ptr(), (m.addr + off) as *mut u8, n)
                    };
                    m.mem.borrow_mut()[block_off..block_off + n].copy_from_slice(&data);
                }
            }
            Op::Verify { map, block, pread } => {
                if pread {
                    if !self.blocks.is_empty() {
                        let index = block as usize % self.blocks.len();
                        self.verify_block(index)?;
                        self.tally.bytes_checked += (self.blocks[index].pages * p) as u64;
                    }
                } else if !self.maps.is_empty() {
                    let m = &self.maps[map as usize % self.maps.len()];
                    m.verify(p)?;
                    self.tally.bytes_checked +=
                        (m.mapped.iter().filter(|&&x| x).count() * p) as u64;
                }
            }
            Op::ForkVerify { map, block } => {
                self.tally.forks += 1;
                let this = &*self;
                child::run(|| {
                    if !this.maps.is_empty() {
                        this.maps[map as usize % this.maps.len()].verify(p)?;
                    }
                    if !this.blocks.is_empty() {
                        this.verify_block(block as usize % this.blocks.len())?;
                    }
                    Ok(())
                })
                .map_err(|f| Failure::new(format!("fork and verify: {}", f.0)))?;
            }
            Op::Info { file, block } => {
                if nfiles == 0 {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let reachable = self.reachable(file);
                if reachable.is_empty() {
                    return Ok(());
                }
                let b = &self.blocks[reachable[block as usize % reachable.len()]];
                let info = self.files[file].dev.info(b.id).step("INFO")?;
                ensure_eq!(
                    info.size,
                    (b.pages * p) as u64,
                    "INFO size of block {}",
                    b.id
                );
                ensure_eq!(info.strategy, b.strategy, "INFO strategy of block {}", b.id);
                ensure_eq!(info.offset, b.offset, "INFO offset of block {}", b.id);
                ensure_eq!(
                    info.is_persistent(),
                    b.persist,
                    "INFO persistence of block {}",
                    b.id
                );
                let owner = if b.persist {
                    Owner::Module
                } else {
                    Owner::ThisFile
                };
                ensure_eq!(info.owner, owner, "INFO owner of block {}", b.id);
                ensure_eq!(
                    info.map_count,
                    self.map_count(b.id),
                    "INFO map_count of block {}",
                    b.id
                );
                let dma_maps = self.dma.iter().filter(|d| d.block_id == b.id).count();
                ensure_eq!(
                    info.dma_mappings as usize,
                    dma_maps,
                    "INFO dma_mappings of block {}",
                    b.id
                );
            }
            Op::DmaMap {
                file,
                block,
                first,
                pages,
                dir,
                past_end,
            } => {
                let Some(device) = &self.dma_device else {
                    return Ok(());
                };
                if self.dma.len() >= MAX_DMA_MAPS {
                    return Ok(());
                }
                let Some((file, b)) = self.pick_reachable(file, block) else {
                    return Ok(());
                };
                let b = &self.blocks[b];
                let direction = Direction::ALL[usize::from(dir) % 3];
                let first = if past_end {
                    b.pages
                } else {
                    usize::from(first) % b.pages
                };
                let pages = 1 + usize::from(pages) % b.pages.saturating_sub(first).max(1);
                let mut args = abi::DmaMapArgs {
                    id: b.id,
                    direction: direction.to_abi(),
                    offset: (first * p) as u64,
                    length: (pages * p) as u64,
                    device: device.to_abi(),
                    ..Default::default()
                };
                let dev = &self.files[file].dev;
                let result = dev.dma_map_raw(&mut args).map_err(|e| e.errno());
                let what = format!("DMA_MAP of pages {first}+{pages} of block {}", b.id);
                if past_end {
                    self.tally.refusals += 1;
                    return expect_refusal(result, Errno::EINVAL, &what, |()| {
                        let _ = dev.dma_unmap(args.handle);
                    });
                }
                expect_ok(result, &what)?;
                ensure!(
                    args.handle != 0 && !self.dma.iter().any(|d| d.handle == args.handle),
                    "{what}: handle {} is 0 or already live",
                    args.handle
                );
                self.dma.push(DmaMap {
                    file_key: self.files[file].key,
                    block_id: b.id,
                    handle: args.handle,
                    first,
                    pages,
                    direction,
                });
            }
            Op::DmaUnmap {
                file,
                mapping,
                wrong,
            } => {
                if nfiles == 0 {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let key = self.files[file].key;
                let own: Vec<usize> = (0..self.dma.len())
                    .filter(|&i| self.dma[i].file_key == key)
                    .collect();
                if wrong {
                    let others: Vec<u32> = self
                        .dma
                        .iter()
                        .filter(|d| d.file_key != key)
                        .map(|d| d.handle)
                        .collect();
                    let handle = others
                        .get(mapping as usize % others.len().max(1))
                        .copied()
                        .unwrap_or(u32::MAX - 3);
                    self.tally.refusals += 1;
                    return expect_refusal(
                        self.files[file]
                            .dev
                            .dma_unmap(handle)
                            .map_err(|e| e.errno()),
                        Errno::ENOENT,
                        &format!("DMA_UNMAP of handle {handle}, not this file's"),
                        drop,
                    );
                }
                if own.is_empty() {
                    return Ok(());
                }
                let gone = self.dma.remove(own[mapping as usize % own.len()]);
                expect_ok(
                    self.files[file]
                        .dev
                        .dma_unmap(gone.handle)
                        .map_err(|e| e.errno()),
                    &format!("DMA_UNMAP of handle {}", gone.handle),
                )?;
            }
            Op::Export {
                file,
                block,
                first,
                pages,
                spoil,
            } => {
                if self.exports.len() >= MAX_EXPORTS {
                    return Ok(());
                }
                let Some((file, index)) = self.pick_reachable(file, block) else {
                    return Ok(());
                };
                let b = &self.blocks[index];
                let first = usize::from(first);
                let count = match pages {
                    0 => b.pages.saturating_sub(first),
                    n => usize::from(n),
                };
                let valid = !spoil && first < b.pages && first + count <= b.pages;
                let mut args = abi::ExportArgs {
                    id: b.id,
                    flags: abi::EXPORT_RDWR | abi::EXPORT_CLOEXEC | if spoil { 1 << 7 } else { 0 },
                    offset: (first * p) as u64,
                    length: (usize::from(pages) * p) as u64,
                    ..Default::default()
                };
                let result = self.files[file]
                    .dev
                    .export_raw(&mut args)
                    .map_err(|e| e.errno());
                let what = format!(
                    "EXPORT of block {} pages {first}..{} (spoiled {spoil})",
                    b.id,
                    first + count
                );
                if !valid {
                    self.tally.refusals += 1;
                    expect_refusal(result, Errno::EINVAL, &what, drop)?;
                    return Ok(());
                }
                let buf = expect_ok(result, &what)?;
                ensure_eq!(buf.size(), (count * p) as u64, "{what}: size");
                let (block_id, charged_to, mem) = (b.id, b.owner, b.mem.clone());
                self.exports.push(Exported {
                    buf,
                    block_id,
                    charged_to,
                    first,
                    pages: count,
                    mem,
                });
            }
            Op::MapExport {
                export,
                first,
                pages,
            } => {
                if self.exports.is_empty() || self.maps.len() >= MAX_MAPS {
                    return Ok(());
                }
                let e = &self.exports[export as usize % self.exports.len()];
                let first = usize::from(first);
                let count = match pages {
                    0 => e.pages.saturating_sub(first),
                    n => usize::from(n),
                };
                let valid = count > 0 && first + count <= e.pages;
                let result = mmap_raw(0, count * p, RW, 0, e.buf.as_fd(), (first * p) as u64);
                let what = format!(
                    "mmap of pages {first}..{} of a dma-buf of block {}",
                    first + count,
                    e.block_id
                );
                if !valid {
                    self.tally.refusals += 1;
                    expect_map_refused(result, count * p, &what)?;
                    return Ok(());
                }
                let addr = expect_ok(result, &what)?;
                self.maps.push(Map {
                    addr,
                    block_id: e.block_id,
                    charged_to: e.charged_to,
                    first: e.first + first,
                    mapped: vec![true; count],
                    mem: e.mem.clone(),
                    alloc_map: false,
                    // Through no file of the device: no device mapping depends on it.
                    via: 0,
                });
            }
            Op::CloseExport { export } => {
                if !self.exports.is_empty() {
                    self.exports.remove(export as usize % self.exports.len());
                }
            }
            Op::SyncExport {
                export,
                access,
                end,
            } => {
                if self.exports.is_empty() {
                    return Ok(());
                }
                let e = &self.exports[export as usize % self.exports.len()];
                let flags = match access {
                    1..=3 => u64::from(access),
                    0 => 0,
                    _ => 1 << 3,
                } | if end { raw::DMA_BUF_SYNC_END } else { 0 };
                let result = raw::dma_buf_sync(e.buf.as_fd(), flags);
                let what = format!(
                    "DMA_BUF_IOCTL_SYNC {flags:#x} on a dma-buf of block {}",
                    e.block_id
                );
                if (1..=3).contains(&access) {
                    expect_ok(result, &what)?;
                } else {
                    self.tally.refusals += 1;
                    expect_refusal(result, Errno::EINVAL, &what, drop)?;
                }
            }
            Op::Sync {
                file,
                block,
                first,
                pages,
                dir,
                for_cpu,
            } => {
                let Some((file, b)) = self.pick_reachable(file, block) else {
                    return Ok(());
                };
                let b = &self.blocks[b];
                let direction = Direction::ALL[usize::from(dir) % 3];
                let first = usize::from(first) % b.pages;
                let pages = 1 + usize::from(pages) % (b.pages - first);
                let expected = self
                    .dma
                    .iter()
                    .filter(|d| d.synced_by(b.id, first, pages, direction))
                    .count();
                let synced = self.files[file]
                    .dev
                    .sync_raw(&mut abi::SyncArgs {
                        id: b.id,
                        flags: if for_cpu {
                            abi::SYNC_FOR_CPU
                        } else {
                            abi::SYNC_FOR_DEVICE
                        },
                        offset: (first * p) as u64,
                        length: (pages * p) as u64,
                        direction: direction.to_abi(),
                        ..Default::default()
                    })
                    .step("SYNC")?;
                ensure_eq!(
                    synced as usize,
                    expected,
                    "SYNC of pages {first}+{pages} of block {} ({direction})",
                    b.id
                );
            }
            Op::List { file } => {
                if nfiles == 0 {
                    return Ok(());
                }
                let file = (file % nfiles) as usize;
                let dev = &self.files[file].dev;
                // Device memory (a PCI BAR) is listed to every file; the model holds only CMA blocks.
                let mut listed: Vec<u32> = dev
                    .list()
                    .step("LIST")?
                    .iter()
                    .filter(|i| !i.is_device_memory())
                    .map(|i| i.id)
                    .collect();
                let mut model: Vec<u32> = self
                    .reachable(file)
                    .iter()
                    .map(|&i| self.blocks[i].id)
                    .collect();
                listed.sort_unstable();
                model.sort_unstable();
                ensure_eq!(listed, model, "LIST ids");
                // Charged: the file's live blocks, and its freed blocks still mapped (the
                // charge lasts until the memory goes back, so freeing early dodges no limit).
                let key = self.files[file].key;
                let mut charged: Vec<(u32, u64)> = self
                    .blocks
                    .iter()
                    .filter(|b| !b.persist && b.owner == key)
                    .map(|b| (b.id, (b.pages * p) as u64))
                    .collect();
                let holders = self
                    .maps
                    .iter()
                    .map(|m| (m.block_id, m.charged_to, &m.mem))
                    .chain(
                        self.exports
                            .iter()
                            .map(|e| (e.block_id, e.charged_to, &e.mem)),
                    );
                for (block_id, charged_to, mem) in holders {
                    let live = self.blocks.iter().any(|b| b.id == block_id);
                    if charged_to == key && !live && !charged.iter().any(|c| c.0 == block_id) {
                        charged.push((block_id, mem.borrow().len() as u64));
                    }
                }
                let stat = dev.stat().step("STAT")?;
                ensure_eq!(stat.blocks_file as usize, charged.len(), "STAT blocks_file");
                let bytes: u64 = charged.iter().map(|c| c.1).sum();
                ensure_eq!(stat.bytes_file, bytes, "STAT bytes_file");
            }
        }
        Ok(())
    }

    /// Unmaps everything, frees the persistent blocks and closes every file.
    pub fn teardown(&mut self) {
        for map in &mut self.maps {
            map.unmap_all(self.page);
        }
        self.maps.clear();
        self.exports.clear();
        if let Ok(dev) = self.ctx.open() {
            for block in self.blocks.iter().filter(|b| b.persist) {
                let _ = dev.free(block.id);
            }
        }
        self.blocks.clear();
        self.dma.clear();
        self.files.clear();
    }
}

impl Drop for Model<'_> {
    fn drop(&mut self) {
        self.teardown();
    }
}
