//! The in-VM half: runs every contender at every size and prints raw samples as CSV.

use std::hint::black_box;
use std::io::Write;

use cmamap::{AllocRequest, Block, Device, Prot};

use crate::clock;
use crate::contender::{Contender, Kind};
use crate::meter::{measure, Cost};
use crate::sample::{header, Sample};
use cmamap_testkit::dma_heap::DmaHeap;
use cmamap_testkit::progress::Ticker;
use cmamap_testkit::Region;

/// The line before the CSV section on stdout.
pub const BEGIN: &str = "CMAMAP-BENCH-BEGIN";
/// The line after it.
pub const END: &str = "CMAMAP-BENCH-END";

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Sizes in bytes, each a whole number of pages.
    pub sizes: Vec<u64>,
    /// Repeats per size below `large_from`.
    pub repeats: u32,
    /// Repeats per size from `large_from` up.
    pub large_repeats: u32,
    /// The first size that gets `large_repeats`.
    pub large_from: u64,
    /// Copies move at least this many bytes (the size, repeated), so that small sizes still
    /// take long enough to time.
    pub min_copy: u64,
    /// Who runs.
    pub contenders: Vec<Contender>,
    /// The time-stamp counter's rate as the host measured it, if given.
    pub tsc_khz: Option<f64>,
}

impl Plan {
    /// Repeats at `size`.
    pub fn repeats_at(&self, size: u64) -> u32 {
        if size >= self.large_from {
            self.large_repeats
        } else {
            self.repeats
        }
    }
}

/// The byte the pattern has at `index`: a period (251) that no page size divides.
fn pattern(index: usize) -> u8 {
    (index % 251) as u8
}

/// Writes one byte to every page, the way a first user of fresh memory would.
fn touch(memory: &mut [u8], page: usize) {
    for index in (0..memory.len()).step_by(page) {
        memory[index] = 0xa5;
    }
    black_box(memory);
}

/// Checks at every page (and the last byte) that `memory` holds the pattern from `phase` on.
fn verify(memory: &[u8], page: usize, phase: usize) -> Result<(), String> {
    let last = memory.len().saturating_sub(1);
    for index in (0..memory.len()).step_by(page).chain([last]) {
        let wanted = pattern(index + phase);
        if memory[index] != wanted {
            return Err(format!(
                "byte {index} reads {:#x}, wrote {wanted:#x}",
                memory[index]
            ));
        }
    }
    Ok(())
}

struct Copies {
    bytes: u64,
    write_ns: u64,
    read_ns: u64,
}

/// The source and target of the copies: a pattern buffer as large as the largest size.
struct Copier {
    scratch: Region,
    page: usize,
    min_copy: u64,
}

/// The benchmark's state: the device, the heap and the copier.
pub struct Bench {
    dev: Result<Device, String>,
    heap: Result<DmaHeap, String>,
    copier: Copier,
}

/// Bytes moved by `rounds` copies of `size` bytes, checked.
fn copied_bytes(rounds: u64, size: usize) -> Result<u64, String> {
    u64::try_from(size)
        .ok()
        .and_then(|size| size.checked_mul(rounds))
        .ok_or_else(|| format!("{rounds} copies of {size} bytes overflow"))
}

fn usize_of(size: u64) -> Result<usize, String> {
    usize::try_from(size).map_err(|_| format!("size {size} does not fit usize"))
}

impl Bench {
    /// Opens the device and the heap (either may be missing: their contenders then fail or
    /// skip) and fills a pattern buffer as large as the largest size.
    pub fn new(plan: &Plan) -> Result<Self, String> {
        // One page more than the largest size, for the source's phase (see `copy_through`).
        let largest = usize_of(plan.sizes.iter().copied().max().unwrap_or(0))?
            .checked_add(cmamap::page_size())
            .ok_or("sizes too large")?;
        let mut scratch = Region::anonymous(largest, true)
            .map_err(|err| format!("scratch buffer of {largest} bytes: {err}"))?;
        for (index, byte) in scratch.as_mut_slice().iter_mut().enumerate() {
            *byte = pattern(index);
        }
        Ok(Self {
            dev: Device::open().map_err(|err| err.to_string()),
            heap: DmaHeap::find(),
            copier: Copier {
                scratch,
                page: cmamap::page_size(),
                min_copy: plan.min_copy,
            },
        })
    }

    /// The heap in use, or why there is none.
    pub fn heap(&self) -> Result<&DmaHeap, &str> {
        self.heap.as_ref().map_err(String::as_str)
    }
}

impl Copier {
    /// memcpy of `size` bytes into `memory` and back out, repeated up to `min_copy` bytes,
    /// checking the data in between.
    ///
    /// The source starts where its page number differs from the target's by an odd amount.
    /// QEMU's TCG looks pages up in a direct-mapped software TLB indexed by page number, so a
    /// source and target an even (power-of-two) number of pages apart evict each other on every
    /// access and run many times slower; an odd distance gives every contender the same,
    /// collision-free placement.
    fn copy_through(&mut self, memory: &mut [u8]) -> Result<Copies, String> {
        let size = memory.len();
        let rounds = (self.min_copy / size as u64).max(1);
        let page = self.page;
        let base = self.scratch.as_mut_slice().as_ptr() as usize;
        let target = memory.as_ptr() as usize;
        let phase = if (base / page).wrapping_sub(target / page) % 2 == 1 {
            0
        } else {
            page
        };
        let source = &mut self.scratch.as_mut_slice()[phase..phase + size];
        let (_, write) = measure(|| {
            for _ in 0..rounds {
                memory.copy_from_slice(black_box(&*source));
                black_box(&mut *memory);
            }
        });
        verify(memory, page, phase)?;
        let (_, read) = measure(|| {
            for _ in 0..rounds {
                source.copy_from_slice(black_box(&*memory));
                black_box(&mut *source);
            }
        });
        verify(source, page, phase)?;
        Ok(Copies {
            bytes: copied_bytes(rounds, size)?,
            write_ns: write.ns,
            read_ns: read.ns,
        })
    }

    /// `pwrite` of `size` bytes into the block and `pread` back, like [`Bench::copy_through`].
    fn io_through(&mut self, block: &Block<'_>, size: usize) -> Result<Copies, String> {
        let rounds = (self.min_copy / size as u64).max(1);
        let buf = &mut self.scratch.as_mut_slice()[..size];
        let (written, write) = measure(|| -> Result<(), String> {
            for _ in 0..rounds {
                let mut done = 0;
                while done < size {
                    done += block
                        .pwrite(done as u64, &buf[done..])
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        });
        written?;
        buf.fill(0);
        let (read_back, read) = measure(|| -> Result<(), String> {
            for _ in 0..rounds {
                let mut done = 0;
                while done < size {
                    match block.pread(done as u64, &mut buf[done..]) {
                        Ok(0) => return Err(format!("pread ended at {done} of {size}")),
                        Ok(n) => done += n,
                        Err(err) => return Err(err.to_string()),
                    }
                }
            }
            Ok(())
        });
        read_back?;
        verify(buf, self.page, 0)?;
        Ok(Copies {
            bytes: copied_bytes(rounds, size)?,
            write_ns: write.ns,
            read_ns: read.ns,
        })
    }
}

impl Bench {
    /// One repeat of `contender` at `size`.
    pub fn sample(
        &mut self,
        contender: Contender,
        size: u64,
        repeat: u32,
    ) -> Result<Sample, String> {
        let len = usize_of(size)?;
        let mut sample = match contender {
            Contender::Cmamap(kind) => self.cmamap(kind, size, len)?,
            Contender::Anon | Contender::AnonPopulate => {
                self.anon(len, contender == Contender::AnonPopulate)?
            }
            Contender::DmaHeap => self.dma_heap(size, len)?,
            Contender::DeviceIo => self.device_io(size, len)?,
        };
        sample.contender = contender;
        sample.size = size;
        sample.repeat = repeat;
        Ok(sample)
    }

    fn cmamap(&mut self, kind: Kind, size: u64, len: usize) -> Result<Sample, String> {
        let dev = self.dev.as_ref().map_err(Clone::clone)?;
        let request = AllocRequest::new(size).strategy(kind.strategy());
        let (block, alloc) = measure(|| dev.alloc(&request));
        let block = block.map_err(|e| e.to_string())?;
        let (mapping, mmap) = measure(|| block.map(Prot::ReadWrite));
        // The memory outlives the block handle; detaching lets the free step own both.
        let mut mapping = mapping.map_err(|e| e.to_string())?.detach();
        let ((), touched) = measure(|| touch(mapping.as_mut_slice(), self.copier.page));
        if mapping.len() != len {
            return Err(format!("mapped {} bytes, asked {len}", mapping.len()));
        }
        let copies = self.copier.copy_through(mapping.as_mut_slice())?;
        let (freed, free) = measure(|| {
            drop(mapping);
            block.free()
        });
        freed.map_err(|e| e.to_string())?;
        Ok(Self::mapped(Some(alloc), mmap, touched, copies, free))
    }

    fn anon(&mut self, len: usize, populate: bool) -> Result<Sample, String> {
        let (region, mmap) = measure(|| Region::anonymous(len, populate));
        let mut region = region.map_err(|e| format!("mmap: {e}"))?;
        let ((), touched) = measure(|| touch(region.as_mut_slice(), self.copier.page));
        let copies = self.copier.copy_through(region.as_mut_slice())?;
        let (freed, free) = measure(|| region.unmap());
        freed.map_err(|e| format!("munmap: {e}"))?;
        Ok(Self::mapped(None, mmap, touched, copies, free))
    }

    fn dma_heap(&mut self, size: u64, len: usize) -> Result<Sample, String> {
        let heap = self.heap.as_ref().map_err(Clone::clone)?;
        let (buf, alloc) = measure(|| heap.alloc(size));
        let buf = buf.map_err(|e| format!("DMA_HEAP_IOCTL_ALLOC: {e}"))?;
        let (region, mmap) = measure(|| Region::map(std::os::fd::AsFd::as_fd(&buf), 0, len));
        let mut region = region.map_err(|e| format!("mmap: {e}"))?;
        let ((), touched) = measure(|| touch(region.as_mut_slice(), self.copier.page));
        let copies = self.copier.copy_through(region.as_mut_slice())?;
        let (freed, free) = measure(|| {
            let unmapped = region.unmap();
            drop(buf);
            unmapped
        });
        freed.map_err(|e| format!("munmap: {e}"))?;
        Ok(Self::mapped(Some(alloc), mmap, touched, copies, free))
    }

    fn device_io(&mut self, size: u64, len: usize) -> Result<Sample, String> {
        let dev = self.dev.as_ref().map_err(Clone::clone)?;
        // The block is never mapped; its strategy does not matter.
        let request = AllocRequest::new(size).strategy(Kind::Remap.strategy());
        let (block, alloc) = measure(|| dev.alloc(&request));
        let block = block.map_err(|e| e.to_string())?;
        let copies = self.copier.io_through(&block, len)?;
        let (freed, free) = measure(|| block.free());
        freed.map_err(|e| e.to_string())?;
        Ok(Sample {
            contender: Contender::DeviceIo,
            size,
            repeat: 0,
            alloc_ns: Some(alloc.ns),
            mmap_ns: None,
            mmap_faults: None,
            touch_ns: None,
            touch_faults: None,
            copy_bytes: copies.bytes,
            write_ns: copies.write_ns,
            read_ns: copies.read_ns,
            free_ns: free.ns,
        })
    }

    fn mapped(
        alloc: Option<Cost>,
        mmap: Cost,
        touched: Cost,
        copies: Copies,
        free: Cost,
    ) -> Sample {
        Sample {
            contender: Contender::Anon,
            size: 0,
            repeat: 0,
            alloc_ns: alloc.map(|c| c.ns),
            mmap_ns: Some(mmap.ns),
            mmap_faults: Some(mmap.faults),
            touch_ns: Some(touched.ns),
            touch_faults: Some(touched.faults),
            copy_bytes: copies.bytes,
            write_ns: copies.write_ns,
            read_ns: copies.read_ns,
            free_ns: free.ns,
        }
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|err| format!("unreadable ({err})"))
}

/// Runs the plan, printing the CSV section to stdout as it goes. Returns how many samples
/// failed.
pub fn run(plan: &Plan) -> Result<usize, String> {
    let mut bench = Bench::new(plan)?;
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: &str| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say(&mut out, BEGIN);
    say(
        &mut out,
        &format!("# kernel: {}", read_trimmed("/proc/sys/kernel/osrelease")),
    );
    say(
        &mut out,
        &format!(
            "# thp: {}",
            read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled")
        ),
    );
    let mut contenders = plan.contenders.clone();
    match bench.heap() {
        Ok(heap) => say(&mut out, &format!("# dma-heap: {}", heap.path().display())),
        Err(why) => {
            say(
                &mut out,
                &format!("# dma-heap: none, contender skipped: {why}"),
            );
            contenders.retain(|c| *c != Contender::DmaHeap);
        }
    }
    let repeats: Vec<String> = plan
        .sizes
        .iter()
        .map(|&s| {
            format!(
                "{}x{}",
                cmamap::units::format_size(s).replace(' ', ""),
                plan.repeats_at(s)
            )
        })
        .collect();
    say(&mut out, &format!("# repeats: {}", repeats.join(" ")));
    say(&mut out, &format!("# min-copy: {}", plan.min_copy));
    // The guest's own measurement, against a clock that may move in 4 ms steps.
    let guest_khz = clock::calibrate(std::time::Duration::from_millis(500));
    let khz = plan.tsc_khz.unwrap_or(guest_khz);
    clock::set_khz(khz);
    say(
        &mut out,
        &format!(
            "# tsc-khz: {khz:.0} ({}; the guest measured {guest_khz:.0})",
            if plan.tsc_khz.is_some() {
                "measured on the host"
            } else {
                "measured in the guest"
            }
        ),
    );
    // One discarded round at the smallest size pages in code and warms the caches.
    if let Some(&first) = plan.sizes.first() {
        for &contender in &contenders {
            let _ = bench.sample(contender, first, 0);
        }
    }
    say(&mut out, &header());
    let mut failed = 0;
    // Progress on the console (CMAMAP_PROGRESS), weighted by bytes: big sizes take longest.
    let weight = |size: u64| size * u64::from(plan.repeats_at(size)) * contenders.len() as u64;
    let total: u64 = plan.sizes.iter().map(|&s| weight(s)).sum();
    let mut ticker = Ticker::from_env("bench", "bytes", total);
    let (mut done, mut samples) = (0u64, 0u64);
    for &size in &plan.sizes {
        // QEMU sizes its software TLB at flushes: the first copies over a larger working set
        // run several times slower. One discarded sample per size absorbs that.
        if let Some(&first) = contenders.first() {
            let _ = bench.sample(first, size, 0);
        }
        // Repeats go round the contenders, each starting one further, so that drift and order
        // effects spread over all of them.
        for repeat in 0..plan.repeats_at(size) {
            let shift = repeat as usize % contenders.len().max(1);
            for &contender in contenders.iter().cycle().skip(shift).take(contenders.len()) {
                if let Some(ticker) = &mut ticker {
                    ticker.tick(done, || {
                        format!(
                            "{samples} samples, now {} {contender}",
                            cmamap::units::format_size(size)
                        )
                    });
                }
                done += size;
                samples += 1;
                match bench.sample(contender, size, repeat) {
                    Ok(sample) => say(&mut out, &sample.to_row()),
                    Err(err) => {
                        failed += 1;
                        say(
                            &mut out,
                            &format!("# error: {contender} size {size}: {err}"),
                        );
                    }
                }
            }
        }
    }
    say(&mut out, END);
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_memory_runs_on_the_host() {
        let plan = Plan {
            sizes: vec![16 << 10],
            repeats: 1,
            large_repeats: 1,
            large_from: u64::MAX,
            min_copy: 64 << 10,
            contenders: vec![Contender::Anon, Contender::AnonPopulate],
            tsc_khz: None,
        };
        let mut bench = Bench::new(&plan).unwrap();
        let lazy = bench.sample(Contender::Anon, 16 << 10, 0).unwrap();
        assert_eq!(lazy.copy_bytes, 64 << 10);
        assert!(lazy.touch_faults.unwrap() >= 1, "{lazy:?}");
        assert_eq!(lazy.alloc_ns, None);
        let populated = bench.sample(Contender::AnonPopulate, 16 << 10, 1).unwrap();
        assert_eq!(populated.touch_faults, Some(0), "{populated:?}");
        assert_eq!(populated.repeat, 1);
    }

    #[test]
    fn verify_spots_a_wrong_byte() {
        let mut memory: Vec<u8> = (0..3 * 4096).map(pattern).collect();
        assert_eq!(verify(&memory, 4096, 0), Ok(()));
        assert!(verify(&memory, 4096, 4096).is_err());
        assert_eq!(verify(&memory[4096..], 4096, 4096), Ok(()));
        memory[4096] ^= 1;
        assert!(verify(&memory, 4096, 0).is_err());
    }

    #[test]
    fn copied_bytes_are_checked() {
        assert_eq!(copied_bytes(4, 4096), Ok(16384));
        assert!(copied_bytes(u64::MAX, 2).is_err());
    }

    #[test]
    fn large_sizes_get_fewer_repeats() {
        let plan = Plan {
            sizes: vec![],
            repeats: 5,
            large_repeats: 3,
            large_from: 64 << 20,
            min_copy: 0,
            contenders: vec![],
            tsc_khz: None,
        };
        assert_eq!(plan.repeats_at(16 << 20), 5);
        assert_eq!(plan.repeats_at(64 << 20), 3);
    }
}
