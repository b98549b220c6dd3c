//! What every test gets: the device path, the page size, whether it runs as root, and small
//! helpers shared by the suites.

use std::path::PathBuf;

use cmamap::{meminfo, Device, Errno};
use nix::unistd::{Gid, Uid};

use crate::check::{skip, Failure, Step, TestResult};
use crate::cma::{self, Level};

/// The uid and gid of `nobody`, set without a passwd lookup (the guest has no NSS).
pub const NOBODY: u32 = 65534;

pub struct Ctx {
    pub device: PathBuf,
    pub page: usize,
    pub root: bool,
    pub cma_tolerance_kib: u64,
    /// Operations of the random tester, and its seed (fresh when `None`).
    pub fuzz_ops: usize,
    pub fuzz_seed: Option<u64>,
}

impl Ctx {
    pub fn open(&self) -> Result<Device, Failure> {
        Ok(Device::open_path(&self.device)?)
    }

    pub fn open_readonly(&self) -> Result<Device, Failure> {
        Ok(Device::open_path_readonly(&self.device)?)
    }

    /// `n` pages in bytes.
    pub fn pages(&self, n: usize) -> u64 {
        (n * self.page) as u64
    }

    /// `CmaFree` in KiB, settled (see [`meminfo::settled_cma_free_kib`]) through a file of its own.
    pub fn cma_free_kib(&self) -> Option<u64> {
        let flusher = Device::open_path(&self.device).ok();
        meminfo::settled_cma_free_kib(flusher.as_ref()).ok()
    }

    /// How much CMA is free now, by the most exact figure there is ([`Level`]).
    pub fn cma_level(&self) -> Option<Level> {
        let flusher = Device::open_path(&self.device).ok();
        Level::read(flusher.as_ref())
    }

    /// Fails unless CMA has at least `bytes` fewer free than at `base` (`when` names the
    /// moment); does nothing without a reading.
    pub fn ensure_cma_held(
        &self,
        base: Option<Level>,
        bytes: u64,
        when: &str,
    ) -> Result<(), Failure> {
        let Some(base) = base else { return Ok(()) };
        let flusher = Device::open_path(&self.device).ok();
        let now = Level::read(flusher.as_ref()).filter(|now| now.is_exact() == base.is_exact());
        if let Some(now) = now {
            ensure!(
                cma::holds(base, now, bytes, self.page as u64, self.cma_tolerance_kib),
                "{when}: {now}, {base} before: the {bytes}-byte block went back to CMA while \
                 still in use"
            );
        }
        Ok(())
    }

    /// Fails unless CMA is back at `base` within [`meminfo::SETTLE`]; does nothing without a
    /// reading.
    pub fn ensure_cma_returned(&self, base: Option<Level>, when: &str) -> Result<(), Failure> {
        let Some(base) = base else { return Ok(()) };
        let flusher = Device::open_path(&self.device).ok();
        match cma::wait_returned(
            base,
            flusher.as_ref(),
            self.page as u64,
            self.cma_tolerance_kib,
        ) {
            Ok(()) => Ok(()),
            Err(Some(now)) => fail!("{when}: {now}, {base} before"),
            Err(None) => fail!("{when}: the CMA figure ({base} before) can no longer be read"),
        }
    }

    /// A skip verdict when the test needs root and does not have it.
    pub fn needs_root(&self) -> Option<TestResult> {
        (!self.root).then(|| skip("needs root (CAP_SYS_ADMIN)"))
    }
}

/// Frees a persistent block through a fresh open when dropped, so a failing test leaves no
/// module-owned block behind.
pub struct PersistGuard {
    device: PathBuf,
    id: Option<u32>,
}

impl PersistGuard {
    pub fn new(ctx: &Ctx, id: u32) -> Self {
        Self {
            device: ctx.device.clone(),
            id: Some(id),
        }
    }

    /// The test freed the block itself.
    pub fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for PersistGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(dev) = Device::open_path(&self.device) {
                let _ = dev.free(id);
            }
        }
    }
}

/// Minor faults of this process so far.
pub fn minor_fault_count() -> Result<i64, Failure> {
    cmamap_testkit::minor_faults().step("getrusage")
}

/// Writes `value + i` to the first byte of page `i`, for each of the first `pages` pages of
/// `mapping`, and returns the minor faults that took.
pub fn faults_touching(
    mapping: &mut cmamap::Mapping<'_>,
    page: usize,
    pages: usize,
    value: u8,
) -> Result<i64, Failure> {
    // Warm up getrusage itself so that its first call's faults are not counted.
    minor_fault_count()?;
    let before = minor_fault_count()?;
    for index in 0..pages {
        mapping.write_volatile(index * page, value.wrapping_add(index as u8));
    }
    Ok(minor_fault_count()? - before)
}

/// The effective capability set from /proc/self/status.
pub fn effective_caps() -> Result<u64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status").step("read /proc/self/status")?;
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .ok_or_else(|| Failure::new("/proc/self/status has no CapEff"))?;
    u64::from_str_radix(hex.trim(), 16).step("parse CapEff")
}

/// Becomes `nobody`. Moving every uid away from 0 clears the permitted and effective
/// capabilities (no SECBIT_KEEP_CAPS), which the check confirms.
pub fn drop_privileges() -> Result<(), Failure> {
    nix::unistd::setgroups(&[]).step("setgroups")?;
    let gid = Gid::from_raw(NOBODY);
    nix::unistd::setresgid(gid, gid, gid).step("setresgid")?;
    let uid = Uid::from_raw(NOBODY);
    nix::unistd::setresuid(uid, uid, uid).step("setresuid")?;
    let caps = effective_caps()?;
    if caps != 0 {
        return Err(Failure::new(format!(
            "still has capabilities {caps:#x} after setresuid({NOBODY})"
        )));
    }
    Ok(())
}

/// True for the errors a CMA allocation gives when memory is short or fragmented.
pub fn is_cma_shortage(errno: Errno) -> bool {
    matches!(errno, Errno::ENOMEM | Errno::EBUSY)
}

/// The blocks of CMA memory that `dev` lists: device memory (a bound PCI BAR, visible to every
/// file) is not the tests' to count.
pub fn ram_blocks_listed(dev: &Device) -> Result<u32, Failure> {
    let listed = dev.list().step("LIST")?;
    Ok(listed
        .iter()
        .filter(|info| !info.is_device_memory())
        .count() as u32)
}
