// SPDX-License-Identifier: GPL-2.0

//! A device that blocks are mapped for: found by the name users give, held by a reference,
//! and the only place that calls the DMA API (through `dma/glue.c`).

use super::Direction;
use crate::memory::cma::CmaArea;
use core::ffi::c_void;
use kernel::{
    device::Device,
    prelude::*,
    str::CStr,
    sync::{
        aref::ARef,
        atomic::{ordering::Relaxed, Atomic},
    },
};

/// DMA API syncs made since the module loaded: for the CPU, for the device, and how many of
/// them the DMA API had work for (cache maintenance or a bounce copy). debugfs `dma_syncs`
/// shows them, so a test can see that SYNC reaches the DMA API even where, as on QEMU's
/// cache-coherent devices, the sync itself does nothing.
static SYNCS_FOR_CPU: Atomic<u64> = Atomic::new(0);
static SYNCS_FOR_DEVICE: Atomic<u64> = Atomic::new(0);
static SYNCS_WITH_WORK: Atomic<u64> = Atomic::new(0);

/// The `dma_syncs` debugfs file: `for_cpu N`, `for_device N`, `with_work N`, one a line.
pub(crate) fn render_syncs(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    writeln!(f, "for_cpu {}", SYNCS_FOR_CPU.load(Relaxed))?;
    writeln!(f, "for_device {}", SYNCS_FOR_DEVICE.load(Relaxed))?;
    writeln!(f, "with_work {}", SYNCS_WITH_WORK.load(Relaxed))
}

// `struct device` is passed as `c_void`: bindgen's view of it holds a zero-sized array that
// the FFI lint refuses.
extern "C" {
    fn cmamap_dma_find_device(bus: *const u8, name: *const u8) -> *mut c_void;
    fn cmamap_dma_device_lock(dev: *mut c_void);
    fn cmamap_dma_device_unlock(dev: *mut c_void);
    fn cmamap_dma_map(
        dev: *mut c_void,
        phys: u64,
        size: usize,
        dir: i32,
        dma_bits: u32,
        addr: *mut u64,
    ) -> i32;
    fn cmamap_dma_reachable(dev: *mut c_void, phys: u64, size: usize, dma_bits: u32) -> i32;
    fn cmamap_dma_unmap(dev: *mut c_void, addr: u64, size: usize, dir: i32);
    fn cmamap_dma_sync(dev: *mut c_void, addr: u64, size: usize, dir: i32, for_cpu: bool) -> bool;
    fn cmamap_dma_watch_buses() -> i32;
    fn cmamap_dma_unwatch_buses();
}

/// The `struct device` behind `dev`; `Device` wraps it transparently (its own accessor is
/// private to the kernel crate).
fn raw(dev: &Device) -> *mut c_void {
    core::ptr::from_ref(dev).cast::<c_void>().cast_mut()
}

/// A device, by reference.
///
/// # Invariants
///
/// `dev` holds one reference to a live `struct device`, taken by the lookup.
pub(crate) struct DmaDevice {
    dev: ARef<Device>,
}

impl DmaDevice {
    /// The device `name` on bus `bus` (both NUL-terminated), or `ENODEV`.
    pub(crate) fn find(bus: &CStr, name: &CStr) -> Result<Self> {
        // SAFETY: Both strings are NUL-terminated and outlive the call.
        let raw =
            unsafe { cmamap_dma_find_device(bus.as_char_ptr().cast(), name.as_char_ptr().cast()) };
        let raw = core::ptr::NonNull::new(raw).ok_or(ENODEV)?;
        // SAFETY: The lookup returned a device with a reference that is now ours to drop;
        // `Device` wraps `struct device` transparently.
        let dev = unsafe { ARef::from_raw(raw.cast::<Device>()) };
        Ok(Self { dev })
    }

    fn as_raw(&self) -> *mut c_void {
        raw(&self.dev)
    }

    /// The CMA area to allocate from for this device: its own, else the default.
    pub(crate) fn cma_area(&self) -> Result<CmaArea> {
        // SAFETY: The device is live (we hold a reference).
        unsafe { CmaArea::of_device(self.as_raw()) }
    }

    /// `Ok` if the device can reach `size` bytes at `phys` without a bounce buffer, as a
    /// DMA_MAP with `dma_bits` would map them; else `EOPNOTSUPP` (it does no DMA) or `ERANGE`.
    pub(crate) fn reaches(&self, phys: u64, size: usize, dma_bits: u32) -> Result {
        // SAFETY: The device is live; the call only reads it.
        kernel::error::to_result(unsafe {
            cmamap_dma_reachable(self.as_raw(), phys, size, dma_bits)
        })
    }

    /// Holds the device lock, so that no driver binds or unbinds while we map.
    pub(crate) fn lock(&self) -> DeviceLock<'_> {
        // SAFETY: The device is live (invariant); we may sleep.
        unsafe { cmamap_dma_device_lock(self.as_raw()) };
        DeviceLock { device: self }
    }

    /// Maps `size` bytes at `phys` for the device; see `cmamap_dma_map` for the errors. The
    /// mapping ends when the result is dropped.
    pub(crate) fn map(
        &self,
        _locked: &DeviceLock<'_>,
        phys: u64,
        size: usize,
        direction: Direction,
        dma_bits: u32,
    ) -> Result<DeviceMapping> {
        let mut addr = 0u64;
        // SAFETY: The device is live and locked (the guard proves it); `addr` is ours.
        let ret = unsafe {
            cmamap_dma_map(
                self.as_raw(),
                phys,
                size,
                direction.to_c(),
                dma_bits,
                &mut addr,
            )
        };
        kernel::error::to_result(ret)?;
        Ok(DeviceMapping {
            dev: self.dev.clone(),
            addr,
            size,
            direction,
        })
    }
}

/// A live DMA API mapping, ended on drop.
///
/// # Invariants
///
/// `addr`, `size` and `direction` are those of a live mapping made for `dev`.
pub(crate) struct DeviceMapping {
    dev: ARef<Device>,
    addr: u64,
    size: usize,
    direction: Direction,
}

impl DeviceMapping {
    /// The bus address.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// Whether the mapping is for the device at `other` (an identity only).
    pub(crate) fn is_for(&self, other: *const c_void) -> bool {
        core::ptr::eq(raw(&self.dev), other)
    }

    /// Syncs `size` bytes from byte `offset` of the mapping, which must lie inside it.
    pub(crate) fn sync(&self, offset: u64, size: usize, for_cpu: bool) {
        if offset.saturating_add(size as u64) > self.size as u64 {
            return;
        }
        // SAFETY: The mapping is live (invariant) and the range lies inside it (checked).
        let work = unsafe {
            cmamap_dma_sync(
                raw(&self.dev),
                self.addr + offset,
                size,
                self.direction.to_c(),
                for_cpu,
            )
        };
        let counter = if for_cpu {
            &SYNCS_FOR_CPU
        } else {
            &SYNCS_FOR_DEVICE
        };
        counter.fetch_add(1, Relaxed);
        if work {
            SYNCS_WITH_WORK.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for DeviceMapping {
    fn drop(&mut self) {
        // SAFETY: The mapping is live (invariant) and ends here, once.
        unsafe { cmamap_dma_unmap(raw(&self.dev), self.addr, self.size, self.direction.to_c()) };
    }
}

/// The device lock of a [`DmaDevice`], released on drop.
pub(crate) struct DeviceLock<'a> {
    device: &'a DmaDevice,
}

impl Drop for DeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: Locked by `DmaDevice::lock`, which made this guard.
        unsafe { cmamap_dma_device_unlock(self.device.as_raw()) };
    }
}

/// Starts calling `cmamap_dma_device_gone` when a device on a bus we map for goes away.
pub(crate) fn watch_buses() -> Result {
    // SAFETY: Registers static notifier blocks once, from module init.
    kernel::error::to_result(unsafe { cmamap_dma_watch_buses() })
}

/// Stops the notifications; any call under way has returned when this does.
pub(crate) fn unwatch_buses() {
    // SAFETY: Called once, from module exit, after `watch_buses` succeeded.
    unsafe { cmamap_dma_unwatch_buses() };
}
