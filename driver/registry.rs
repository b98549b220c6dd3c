// SPDX-License-Identifier: GPL-2.0

//! The one list of live blocks, and their ids.
//!
//! `BLOCKS` is lock 8 of the crate's lock order. Every block leaves the list through
//! [`take_first`], as a `ListArc` that the caller drops (and so perhaps frees) after the
//! guard: whatever must happen when a block's id dies belongs there.

use crate::{abi, memory::block::Block};
use kernel::{
    list::{List, ListArc},
    prelude::*,
    sync::Arc,
};

/// How many ids of failed allocations are kept to be handed out again; more are dropped.
const RETURNED_IDS: usize = 8;

/// Live blocks and the ids.
pub(crate) struct BlockList {
    list: List<Block>,
    last_id: u32,
    /// Ids handed out for blocks that were never published, handed out again first.
    returned: [u32; RETURNED_IDS],
    returned_len: usize,
}

impl BlockList {
    const fn new() -> Self {
        Self {
            list: List::new(),
            last_id: 0,
            returned: [0; RETURNED_IDS],
            returned_len: 0,
        }
    }

    /// A returned id if there is one, else the next new one.
    fn take_id(&mut self) -> Result<u32> {
        if self.returned_len > 0 {
            self.returned_len -= 1;
            return Ok(self.returned[self.returned_len]);
        }
        self.last_id = id_after(self.last_id)?;
        Ok(self.last_id)
    }

    /// Keeps `id`, which was never published, to be handed out again (or drops it when the
    /// store is full: an id lost, never one reused while known).
    fn give_back(&mut self, id: u32) {
        if let Some(slot) = self.returned.get_mut(self.returned_len) {
            *slot = id;
            self.returned_len += 1;
        }
    }
}

kernel::sync::global_lock! {
    // SAFETY: `registry::init` runs in module init before the device is registered.
    unsafe(uninit) static BLOCKS: Mutex<BlockList> = BlockList::new();
}

/// Initializes the registry. Call once, from module init, before anything else uses it.
pub(crate) fn init() {
    // SAFETY: Called exactly once, from module init, before the misc device exists.
    unsafe { BLOCKS.init() };
}

/// The id after `last`: ids count up from 1 and never wrap, so a stale id stays dead; past
/// `abi::MAX_ID` (whose offsets would not fit a positive `off_t`) there are none.
fn id_after(last: u32) -> Result<u32> {
    if last >= abi::MAX_ID {
        return Err(ENOSPC);
    }
    Ok(last + 1)
}

/// An id for a block that is not published yet. Publishing the block keeps the id; dropping
/// the lease gives it back, so a failed allocation (a read-only argument, say) uses up no id.
/// The id of a published block is never handed out again, so a stale id or offset stays dead.
pub(crate) struct IdLease {
    id: u32,
    give_back: bool,
}

impl IdLease {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Never hands the id out again, though its block was not published: a VMA may still map
    /// the block under this id.
    pub(crate) fn retire(mut self) {
        self.give_back = false;
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        if self.give_back {
            BLOCKS.lock().give_back(self.id);
        }
    }
}

/// Leases an id for a new block.
pub(crate) fn lease_id() -> Result<IdLease> {
    Ok(IdLease {
        id: BLOCKS.lock().take_id()?,
        give_back: true,
    })
}

/// Makes a block visible by its id, which `lease` handed out.
pub(crate) fn publish(block: ListArc<Block>, mut lease: IdLease) {
    debug_assert_eq!(block.id(), lease.id);
    lease.give_back = false;
    BLOCKS.lock().list.push_back(block);
}

/// The live block `id`, if the open file `file_key` may use it.
pub(crate) fn lookup(id: u32, file_key: u64) -> Result<Arc<Block>> {
    let blocks = BLOCKS.lock();
    blocks
        .list
        .iter()
        .find(|block| block.id() == id && block.visible_to(file_key))
        .map(Arc::from)
        .ok_or(ENOENT)
}

/// Takes block `id` out of the list; its id is dead from now on. The caller drops the
/// returned reference outside the lock; the memory goes back once no VMA maps it.
pub(crate) fn unpublish(id: u32, file_key: u64) -> Result<ListArc<Block>> {
    take_first(|block| block.id() == id && block.visible_to(file_key)).ok_or(ENOENT)
}

/// Takes every block that `take` accepts out of the list and returns how many blocks and
/// bytes it took. The blocks are dropped after the lock is released.
pub(crate) fn unpublish_where(mut take: impl FnMut(&Block) -> bool) -> (usize, u64) {
    let (mut blocks, mut bytes) = (0, 0);
    while let Some(block) = take_first(&mut take) {
        blocks += 1;
        bytes += block.size();
        drop(block);
    }
    (blocks, bytes)
}

/// Takes the first block that `matches` accepts out of the list: the one way out of it, for
/// FREE, UNMAP_FREE, a file's release, `rmmod` and a device's unbind alike.
fn take_first(mut matches: impl FnMut(&Block) -> bool) -> Option<ListArc<Block>> {
    let taken = {
        let mut blocks = BLOCKS.lock();
        let mut cursor = blocks.list.cursor_front();
        loop {
            let next = cursor.peek_next()?;
            if matches(&next) {
                break next.remove();
            }
            cursor.move_next();
        }
    };
    // The block's id is dead from here. What must end with it, and may sleep, goes here,
    // outside the lock: no device may keep reaching it.
    crate::dma::block_freed(taken.id());
    Some(taken)
}

/// Calls `f` on every block the open file `file_key` may use, under the lock; `f` must not
/// sleep.
pub(crate) fn for_each_visible(file_key: u64, mut f: impl FnMut(&Block)) {
    let blocks = BLOCKS.lock();
    for block in blocks
        .list
        .iter()
        .filter(|block| block.visible_to(file_key))
    {
        f(&block);
    }
}

/// Calls `f` on every live block, under the lock; `f` must not sleep.
pub(crate) fn for_each(mut f: impl FnMut(&Block)) {
    let blocks = BLOCKS.lock();
    for block in blocks.list.iter() {
        f(&block);
    }
}

#[kunit_tests(cmamap_registry)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_from_one() {
        assert_eq!(id_after(0), Ok(1));
        assert_eq!(id_after(1), Ok(2));
        assert_eq!(id_after(abi::MAX_ID - 1), Ok(abi::MAX_ID));
    }

    #[test]
    fn ids_never_wrap() {
        assert_eq!(id_after(abi::MAX_ID), Err(ENOSPC));
        assert_eq!(id_after(u32::MAX), Err(ENOSPC));
    }

    #[test]
    fn returned_ids_come_back_first() {
        let mut blocks = BlockList::new();
        assert_eq!(blocks.take_id(), Ok(1));
        assert_eq!(blocks.take_id(), Ok(2));
        blocks.give_back(2);
        assert_eq!(blocks.take_id(), Ok(2));
        assert_eq!(blocks.take_id(), Ok(3));
    }

    #[test]
    fn a_full_store_drops_returned_ids() {
        let mut blocks = BlockList::new();
        for id in 1..=(RETURNED_IDS as u32 + 2) {
            assert_eq!(blocks.take_id(), Ok(id));
        }
        for id in 1..=(RETURNED_IDS as u32 + 2) {
            blocks.give_back(id);
        }
        for _ in 0..RETURNED_IDS {
            assert!(blocks.take_id().is_ok_and(|id| id <= RETURNED_IDS as u32));
        }
        assert_eq!(blocks.take_id(), Ok(RETURNED_IDS as u32 + 3));
    }

    #[test]
    fn every_id_has_a_positive_offset() {
        assert!(abi::offset_of_id(abi::MAX_ID) < 1 << 63);
        assert!(abi::offset_of_id(abi::MAX_ID) + (1 << abi::OFFSET_SHIFT) - 1 <= i64::MAX as u64);
        assert_eq!(
            abi::id_of_offset(abi::offset_of_id(abi::MAX_ID)).0,
            abi::MAX_ID
        );
    }
}
