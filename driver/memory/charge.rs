// SPDX-License-Identifier: GPL-2.0

//! Byte and block accounting against the module's limits.
//!
//! A block's bytes stay charged until its memory really goes back to CMA, which for a block
//! freed while mapped is the last munmap; freeing early cannot dodge the limits.

use kernel::{
    prelude::*,
    sync::{
        atomic::{ordering::Relaxed, Atomic},
        Arc,
    },
};

/// Bytes and blocks charged to one holder: the whole device, or one open file.
pub(crate) struct Counter {
    bytes: Atomic<u64>,
    blocks: Atomic<u32>,
}

/// Every live block's bytes, across all files and `PERSIST` blocks.
pub(crate) static TOTAL: Counter = Counter::new();

/// The new total after adding `add` to `current`, if it stays within `limit`.
fn charged_total(current: u64, add: u64, limit: u64) -> Option<u64> {
    current.checked_add(add).filter(|&total| total <= limit)
}

impl Counter {
    pub(crate) const fn new() -> Self {
        Self {
            bytes: Atomic::new(0),
            blocks: Atomic::new(0),
        }
    }

    /// Bytes charged.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Blocks charged.
    pub(crate) fn blocks(&self) -> u32 {
        self.blocks.load(Relaxed)
    }

    /// Charges `bytes` if the result stays within `limit`, else `ENOSPC`. Lock-free, so the
    /// charge can be taken before the sleeping CMA allocation without holding any lock.
    fn try_charge(&self, bytes: u64, limit: u64) -> Result {
        let mut current = self.bytes.load(Relaxed);
        loop {
            let total = charged_total(current, bytes, limit).ok_or(ENOSPC)?;
            match self.bytes.cmpxchg(current, total, Relaxed) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        self.blocks.add(1, Relaxed);
        Ok(())
    }

    fn uncharge(&self, bytes: u64) {
        self.bytes.fetch_sub(bytes, Relaxed);
        self.blocks.fetch_sub(1, Relaxed);
    }
}

/// Bytes charged to the device and, for file-owned blocks, to the file. Dropping it uncharges.
pub(crate) struct Charge {
    file: Option<Arc<Counter>>,
    bytes: u64,
}

impl Charge {
    /// Charges `bytes` to the file's counter (if any) and to [`TOTAL`], within the limits.
    pub(crate) fn new(
        file: Option<Arc<Counter>>,
        bytes: u64,
        file_limit: u64,
        total_limit: u64,
    ) -> Result<Self> {
        if let Some(file) = &file {
            file.try_charge(bytes, file_limit)?;
        }
        if let Err(e) = TOTAL.try_charge(bytes, total_limit) {
            if let Some(file) = &file {
                file.uncharge(bytes);
            }
            return Err(e);
        }
        Ok(Self { file, bytes })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        TOTAL.uncharge(self.bytes);
        if let Some(file) = &self.file {
            file.uncharge(self.bytes);
        }
    }
}

#[kunit_tests(cmamap_charge)]
mod tests {
    use super::*;

    #[test]
    fn charge_stays_within_limit() {
        assert_eq!(charged_total(10, 5, 15), Some(15));
        assert_eq!(charged_total(10, 6, 15), None);
        assert_eq!(charged_total(u64::MAX, 1, u64::MAX), None);
    }

    #[test]
    fn counter_refuses_over_limit_and_uncharges() {
        let counter = Counter::new();
        assert_eq!(counter.try_charge(4096, 8192), Ok(()));
        assert_eq!(counter.try_charge(8192, 8192), Err(ENOSPC));
        assert_eq!(counter.bytes(), 4096);
        assert_eq!(counter.blocks(), 1);
        counter.uncharge(4096);
        assert_eq!(counter.bytes(), 0);
        assert_eq!(counter.blocks(), 0);
    }
}
