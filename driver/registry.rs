// SPDX-License-Identifier: GPL-2.0

//! The one list of live blocks.
//!
//! Lock order: `BLOCKS` and `OpenFile::pending` are never held together, and
//! `quarantine::QUARANTINE` is a leaf. Nothing sleeps in CMA or in `copy_to_user` under `BLOCKS`;
//! blocks leave the list as `ListArc`s and are dropped (and possibly freed) after the guard.

use crate::{abi, block::Block};
use kernel::{
    list::{List, ListArc},
    prelude::*,
    sync::Arc,
};

/// Live blocks and the id counter.
pub(crate) struct BlockList {
    list: List<Block>,
    last_id: u32,
}

kernel::sync::global_lock! {
    // SAFETY: `registry::init` runs in module init before the device is registered.
    unsafe(uninit) static BLOCKS: Mutex<BlockList> = BlockList { list: List::new(), last_id: 0 };
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

/// Hands out the next id. Ids are never reused, so a stale id or offset stays dead.
pub(crate) fn next_id() -> Result<u32> {
    let mut blocks = BLOCKS.lock();
    blocks.last_id = id_after(blocks.last_id)?;
    Ok(blocks.last_id)
}

/// Makes a block visible by its id.
pub(crate) fn publish(block: ListArc<Block>) {
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

/// Takes every block that `keep` refuses out of the list and returns how many blocks and
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

fn take_first(mut matches: impl FnMut(&Block) -> bool) -> Option<ListArc<Block>> {
    let mut blocks = BLOCKS.lock();
    let mut cursor = blocks.list.cursor_front();
    while let Some(next) = cursor.peek_next() {
        if matches(&next) {
            return Some(next.remove());
        }
        cursor.move_next();
    }
    None
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
    fn every_id_has_a_positive_offset() {
        assert!(abi::offset_of_id(abi::MAX_ID) < 1 << 63);
        assert!(abi::offset_of_id(abi::MAX_ID) + (1 << abi::OFFSET_SHIFT) - 1 <= i64::MAX as u64);
        assert_eq!(
            abi::id_of_offset(abi::offset_of_id(abi::MAX_ID)).0,
            abi::MAX_ID
        );
    }
}
