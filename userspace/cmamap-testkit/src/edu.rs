//! QEMU's `edu` PCI device (1234:11e8), driven from userspace as FPGA users drive theirs
//! through sysfs: enable it, set Bus Master in its config space, and program its DMA engine
//! through BAR 0 (`resource0`). No kernel driver is bound to it, so its DMA goes through the
//! PCI address space as the kernel's DMA API set it up (through the IOMMU when there is one).
//!
//! The device copies between bus addresses and its own 4 KiB buffer at BAR offset 0x40000.
//! It finishes a transfer on a timer (about 100 ms) and clears bit 0 of the command register.
//! QEMU aborts on a transfer that leaves that buffer, so every call checks its range first.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const VENDOR: &str = "0x1234";
const DEVICE: &str = "0x11e8";
const BAR0_LEN: usize = 1 << 20;
const REG_ID: usize = 0x00;
const REG_DMA_SRC: usize = 0x80;
const REG_DMA_DST: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_CMD: usize = 0x98;
const CMD_START: u64 = 1 << 0;
const CMD_TO_RAM: u64 = 1 << 1;
/// The device's own buffer: its offset in the device's DMA space and its size.
pub const BUFFER_ADDR: u64 = 0x40000;
pub const BUFFER_LEN: usize = 4096;
/// Its identification register: version 1.0, then 0xed.
const ID_VALUE: u32 = 0x0100_00ed;
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// A transfer takes about 100 ms under TCG; far more means the device is gone or stuck.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// The PCI addresses of every edu device, sorted.
pub fn find_all() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let read = |name: &str| {
                std::fs::read_to_string(entry.path().join(name))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default()
            };
            read("vendor") == VENDOR && read("device") == DEVICE
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// One edu device, enabled, with its registers mapped.
pub struct Edu {
    address: String,
    regs: *mut u8,
    _resource: File,
}

impl Edu {
    /// Opens the edu device at PCI address `address` (`0000:00:04.0`).
    pub fn open(address: &str) -> Result<Self, String> {
        let dir = Self::sysfs_dir_of(address);
        std::fs::write(dir.join("enable"), "1")
            .map_err(|e| format!("enable {}: {e}", dir.display()))?;
        set_command_bits(&dir, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)?;
        let resource = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("resource0"))
            .map_err(|e| format!("open resource0 of {address}: {e}"))?;
        // SAFETY: a fresh shared mapping of the BAR file; the kernel picks the address.
        let regs = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BAR0_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                resource.as_raw_fd(),
                0,
            )
        };
        if regs == libc::MAP_FAILED {
            return Err(format!(
                "mmap resource0 of {address}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let edu = Self {
            address: address.to_owned(),
            regs: regs.cast(),
            _resource: resource,
        };
        let id = edu.read32(REG_ID);
        if id != ID_VALUE {
            return Err(format!(
                "{address}: id register {id:#x}, not edu's {ID_VALUE:#x}"
            ));
        }
        Ok(edu)
    }

    /// The device's sysfs directory.
    pub fn sysfs_dir_of(address: &str) -> PathBuf {
        Path::new("/sys/bus/pci/devices").join(address)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn read32(&self, reg: usize) -> u32 {
        // SAFETY: `reg` is a register inside the mapped BAR; MMIO needs volatile access.
        unsafe { std::ptr::read_volatile(self.regs.add(reg).cast::<u32>()) }
    }

    fn read64(&self, reg: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { std::ptr::read_volatile(self.regs.add(reg).cast::<u64>()) }
    }

    fn write64(&self, reg: usize, value: u64) {
        // SAFETY: as in `read32`.
        unsafe { std::ptr::write_volatile(self.regs.add(reg).cast::<u64>(), value) }
    }

    /// Copies `len` bytes from bus address `bus_addr` into the device buffer at `buf_off`.
    pub fn dma_from_ram(&self, bus_addr: u64, buf_off: usize, len: usize) -> Result<(), String> {
        check_buffer_range(buf_off, len)?;
        self.transfer(bus_addr, BUFFER_ADDR + buf_off as u64, len, 0)
    }

    /// Copies `len` bytes from the device buffer at `buf_off` to bus address `bus_addr`.
    pub fn dma_to_ram(&self, buf_off: usize, bus_addr: u64, len: usize) -> Result<(), String> {
        check_buffer_range(buf_off, len)?;
        self.transfer(BUFFER_ADDR + buf_off as u64, bus_addr, len, CMD_TO_RAM)
    }

    fn transfer(&self, src: u64, dst: u64, len: usize, direction: u64) -> Result<(), String> {
        self.wait_idle()?;
        self.write64(REG_DMA_SRC, src);
        self.write64(REG_DMA_DST, dst);
        self.write64(REG_DMA_COUNT, len as u64);
        self.write64(REG_DMA_CMD, CMD_START | direction);
        self.wait_idle()
    }

    fn wait_idle(&self) -> Result<(), String> {
        let start = Instant::now();
        while self.read64(REG_DMA_CMD) & CMD_START != 0 {
            if start.elapsed() > TRANSFER_TIMEOUT {
                return Err(format!(
                    "{}: DMA did not finish in {TRANSFER_TIMEOUT:?}",
                    self.address
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Edu {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped.
        unsafe { libc::munmap(self.regs.cast(), BAR0_LEN) };
    }
}

fn check_buffer_range(buf_off: usize, len: usize) -> Result<(), String> {
    if len == 0 || buf_off.checked_add(len).is_none_or(|end| end > BUFFER_LEN) {
        return Err(format!(
            "edu transfer of {len} bytes at buffer offset {buf_off} leaves its {BUFFER_LEN}-byte buffer"
        ));
    }
    Ok(())
}

/// Sets `bits` in the PCI command register through the sysfs `config` file.
fn set_command_bits(dir: &Path, bits: u16) -> Result<(), String> {
    let mut config = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("config"))
        .map_err(|e| format!("open config of {}: {e}", dir.display()))?;
    let mut word = [0u8; 2];
    config
        .seek(SeekFrom::Start(PCI_COMMAND))
        .and_then(|_| config.read_exact(&mut word))
        .map_err(|e| format!("read the command register: {e}"))?;
    let command = u16::from_le_bytes(word) | bits;
    config
        .seek(SeekFrom::Start(PCI_COMMAND))
        .and_then(|_| config.write_all(&command.to_le_bytes()))
        .map_err(|e| format!("write the command register: {e}"))
}
