// SPDX-License-Identifier: GPL-2.0

//! Every live block: the one list of them all, and the indexes that find them by id.
//!
//! Ids are per open file. Each file's blocks are indexed by id in the file's own tree
//! ([`FileBlocks`], which is also the list its release walks), and the blocks every file sees
//! (`PERSIST`, device memory) in one shared tree, with ids from [`abi::SHARED_ID_BASE`] up.
//! Lookups are O(log n) in the tree they need, a file's release is O(its blocks), and a file
//! that uses up its ids hurts nobody else. The list of every block stays, so that `rmmod` and
//! debugfs see them all; a block leaves it in O(1).
//!
//! `FileBlocks::index` is lock 8 of the crate's lock order and `BLOCKS` lock 9; neither is
//! held while the other is taken. A block is in the list before it is in an index, and leaves
//! the index before the list: whoever takes it out of its index owns its death. Blocks leave
//! as `ListArc`s that the caller drops (and so perhaps frees) after the guards: whatever must
//! happen when a block's id dies belongs in [`retire`].

use crate::{
    abi,
    memory::block::{Block, Owner},
    module_parameters,
};
use kernel::{
    list::{List, ListArc},
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{ordering::Relaxed, Atomic},
        Arc, Mutex,
    },
};

/// How many ids of failed allocations are kept to be handed out again; more are dropped.
const RETURNED_IDS: usize = 8;

/// The highest id of a file's own blocks.
const FILE_MAX_ID: u32 = abi::SHARED_ID_BASE - 1;

/// Blocks looked at by lookups, frees and releases since load (not by LIST, fdinfo or
/// debugfs, which show every block they may): a test reads it to check that the work of a
/// release follows the blocks released, not the blocks alive.
static BLOCKS_VISITED: Atomic<u64> = Atomic::new(0);

fn visited(blocks: u64) {
    BLOCKS_VISITED.add(blocks, Relaxed);
}

/// See [`BLOCKS_VISITED`].
pub(crate) fn blocks_visited() -> u64 {
    BLOCKS_VISITED.load(Relaxed)
}

/// One id space: ids count up from `first` to `max` and are never handed out twice, but for
/// those of allocations that failed before anyone saw them.
struct IdSpace {
    last: u32,
    max: u32,
    /// Ids handed out for blocks that were never published, handed out again first.
    returned: [u32; RETURNED_IDS],
    returned_len: usize,
}

impl IdSpace {
    /// The ids `first..=max`; with the test-only parameter `id_headroom` set, only the last
    /// `id_headroom` of them.
    const fn new(first: u32, max: u32, headroom: u32) -> Self {
        let last = match max.checked_sub(headroom) {
            Some(last) if headroom != 0 && last >= first => last,
            _ => first - 1,
        };
        Self {
            last,
            max,
            returned: [0; RETURNED_IDS],
            returned_len: 0,
        }
    }

    /// A returned id if there is one, else the next new one; past `max` there are none.
    fn take(&mut self) -> Result<u32> {
        if self.returned_len > 0 {
            self.returned_len -= 1;
            return Ok(self.returned[self.returned_len]);
        }
        if self.last >= self.max {
            return Err(ENOSPC);
        }
        self.last += 1;
        Ok(self.last)
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

fn headroom() -> u32 {
    module_parameters::id_headroom.value()
}

/// Blocks by id, and their id space.
struct Index {
    tree: RBTree<u32, Arc<Block>>,
    ids: IdSpace,
}

impl Index {
    fn new(first: u32, max: u32) -> Self {
        Self {
            tree: RBTree::new(),
            ids: IdSpace::new(first, max, headroom()),
        }
    }
}

/// The list of every block, and the index of the shared ones.
pub(crate) struct Registry {
    list: List<Block>,
    shared: Option<Index>,
}

impl Registry {
    const fn new() -> Self {
        Self {
            list: List::new(),
            shared: None,
        }
    }

    fn shared(&mut self) -> &mut Index {
        self.shared
            .get_or_insert_with(|| Index::new(abi::SHARED_ID_BASE, abi::MAX_ID))
    }
}

kernel::sync::global_lock! {
    // SAFETY: `registry::init` runs in module init before the device is registered.
    unsafe(uninit) static BLOCKS: Mutex<Registry> = Registry::new();
}

/// Initializes the registry. Call once, from module init, before anything else uses it.
pub(crate) fn init() {
    // SAFETY: Called exactly once, from module init, before the misc device exists.
    unsafe { BLOCKS.init() };
}

/// One open file's blocks: its index by id, which is also the list its release walks, and
/// its own id space.
#[pin_data]
pub(crate) struct FileBlocks {
    #[pin]
    index: Mutex<Index>,
}

impl FileBlocks {
    /// An empty set, for a file being opened.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                index <- new_mutex!(Index::new(1, FILE_MAX_ID)),
            }),
            GFP_KERNEL,
        )
    }
}

/// Which id space an id comes from.
pub(crate) enum Space {
    /// An open file's own.
    File(Arc<FileBlocks>),
    /// The one of `PERSIST` and device-memory blocks.
    Shared,
}

impl Space {
    fn take_id(&self) -> Result<u32> {
        match self {
            Space::File(file) => file.index.lock().ids.take(),
            Space::Shared => BLOCKS.lock().shared().ids.take(),
        }
    }

    fn give_back(&self, id: u32) {
        match self {
            Space::File(file) => file.index.lock().ids.give_back(id),
            Space::Shared => BLOCKS.lock().shared().ids.give_back(id),
        }
    }
}

/// An id for a block that is not published yet, with the index node it will take (allocated
/// here, so that publishing allocates nothing under a lock). Publishing the block keeps the
/// id; dropping the lease gives it back, so a failed allocation (a read-only argument, say)
/// uses up no id. The id of a published block is never handed out again in its space, so a
/// stale id or offset stays dead.
pub(crate) struct IdLease {
    id: LeasedId,
    node: RBTreeNodeReservation<u32, Arc<Block>>,
}

/// The id of a lease, given back to its space on drop unless kept.
struct LeasedId {
    id: u32,
    space: Space,
    give_back: bool,
}

impl Drop for LeasedId {
    fn drop(&mut self) {
        if self.give_back {
            self.space.give_back(self.id);
        }
    }
}

impl IdLease {
    pub(crate) fn id(&self) -> u32 {
        self.id.id
    }

    /// Never hands the id out again, though its block was not published: a VMA may still map
    /// the block under this id.
    pub(crate) fn retire(mut self) {
        self.id.give_back = false;
    }
}

/// Leases an id in `space` for a new block.
pub(crate) fn lease_id(space: Space) -> Result<IdLease> {
    let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
    Ok(IdLease {
        id: LeasedId {
            id: space.take_id()?,
            space,
            give_back: true,
        },
        node,
    })
}

/// Makes a block visible by its id, which `lease` handed out: first in the list, then in its
/// index, so that whoever finds it by id finds it in the list too.
pub(crate) fn publish(block: ListArc<Block>, lease: IdLease) {
    let IdLease {
        id: mut leased,
        node,
    } = lease;
    debug_assert_eq!(block.id(), leased.id);
    leased.give_back = false;
    let node = node.into_node(leased.id, block.clone_arc());
    let old = match &leased.space {
        Space::File(file) => {
            BLOCKS.lock().list.push_back(block);
            file.index.lock().tree.insert(node)
        }
        Space::Shared => {
            let mut registry = BLOCKS.lock();
            registry.list.push_back(block);
            registry.shared().tree.insert(node)
        }
    };
    // An id is handed out once per space, so the slot was empty.
    debug_assert!(old.is_none());
    drop(old);
}

/// The live block `id` as the open file `file` sees it: its own, or a shared one.
pub(crate) fn lookup(id: u32, file: &FileBlocks) -> Result<Arc<Block>> {
    visited(1);
    let found = if id >= abi::SHARED_ID_BASE {
        BLOCKS.lock().shared().tree.get(&id).cloned()
    } else {
        file.index.lock().tree.get(&id).cloned()
    };
    found.ok_or(ENOENT)
}

/// Takes block `id`, as the open file `file` sees it, out of its index and the list; its id
/// is dead from now on. The caller drops the returned reference outside the lock; the memory
/// goes back once no VMA maps it.
pub(crate) fn unpublish(id: u32, file: &FileBlocks) -> Result<ListArc<Block>> {
    visited(1);
    let taken = if id >= abi::SHARED_ID_BASE {
        BLOCKS.lock().shared().tree.remove(&id)
    } else {
        file.index.lock().tree.remove(&id)
    };
    taken.and_then(retire).ok_or(ENOENT)
}

/// Takes the shared block `id` (device memory, on unbind) out; absent already is fine.
pub(crate) fn unpublish_shared(id: u32) {
    visited(1);
    let taken = BLOCKS.lock().shared().tree.remove(&id);
    drop(taken.and_then(retire));
}

/// Takes every block of the open file `file`, which is being released, out of the list, in
/// O(its blocks): the tree is emptied under its lock in O(1), then each block leaves the list
/// on its own, so that the global lock is held for O(1) at a time.
pub(crate) fn release_file(file: &FileBlocks) -> (usize, u64) {
    let tree = core::mem::replace(&mut file.index.lock().tree, RBTree::new());
    drain(tree, |_| true)
}

/// Takes every shared block out, at `rmmod`; how many `PERSIST` blocks there were and their
/// bytes (device memory is not returned to CMA: it is revoked when its device unbinds).
pub(crate) fn release_shared() -> (usize, u64) {
    let tree = match BLOCKS.lock().shared.as_mut() {
        Some(shared) => core::mem::replace(&mut shared.tree, RBTree::new()),
        None => RBTree::new(),
    };
    drain(tree, |block| block.owner() == Owner::Module)
}

/// Retires every block of `tree`, which no lock holds any more; how many of them `counts`
/// accepts, and their bytes.
fn drain(mut tree: RBTree<u32, Arc<Block>>, counts: impl Fn(&Block) -> bool) -> (usize, u64) {
    let (mut blocks, mut bytes) = (0, 0);
    while let Some(cursor) = tree.cursor_front_mut() {
        let (_, node) = cursor.remove_current();
        let (_, block) = node.to_key_value();
        visited(1);
        if counts(&block) {
            blocks += 1;
            bytes += block.size();
        }
        drop(retire(block));
    }
    (blocks, bytes)
}

/// Takes a block that just left its index out of the list: the one way out of it, for FREE,
/// UNMAP_FREE, a file's release, `rmmod` and a device's unbind alike.
fn retire(block: Arc<Block>) -> Option<ListArc<Block>> {
    let taken = {
        let mut registry = BLOCKS.lock();
        // SAFETY: `BLOCKS` holds the only `List<Block>` (list id 0) there is: a block is in
        // it or in none.
        unsafe { registry.list.remove(&block) }
    };
    drop(block);
    let taken = taken?;
    // The block's id is dead from here. What must end with it, and may sleep, goes here,
    // outside the lock: no device may keep reaching it.
    crate::dma::block_freed(&taken);
    Some(taken)
}

/// Calls `f` on every block the open file `file` may use (its own, then the shared ones),
/// under the lock of each; `f` must not sleep.
pub(crate) fn for_each_visible(file: &FileBlocks, mut f: impl FnMut(&Block)) {
    for block in file.index.lock().tree.values() {
        f(block);
    }
    let mut registry = BLOCKS.lock();
    for block in registry.shared().tree.values() {
        f(block);
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
    fn ids_count_up_from_the_first() {
        let mut ids = IdSpace::new(1, 10, 0);
        assert_eq!(ids.take(), Ok(1));
        assert_eq!(ids.take(), Ok(2));
        let mut shared = IdSpace::new(abi::SHARED_ID_BASE, abi::MAX_ID, 0);
        assert_eq!(shared.take(), Ok(abi::SHARED_ID_BASE));
    }

    #[test]
    fn ids_never_wrap() {
        let mut ids = IdSpace::new(1, FILE_MAX_ID, 2);
        assert_eq!(ids.take(), Ok(FILE_MAX_ID - 1));
        assert_eq!(ids.take(), Ok(FILE_MAX_ID));
        assert_eq!(ids.take(), Err(ENOSPC));
        assert_eq!(ids.take(), Err(ENOSPC));
        let mut shared = IdSpace::new(abi::SHARED_ID_BASE, abi::MAX_ID, 1);
        assert_eq!(shared.take(), Ok(abi::MAX_ID));
        assert_eq!(shared.take(), Err(ENOSPC));
    }

    #[test]
    fn a_headroom_past_the_space_starts_at_its_beginning() {
        let mut ids = IdSpace::new(1, 10, 11);
        assert_eq!(ids.take(), Ok(1));
        let mut ids = IdSpace::new(1, 10, u32::MAX);
        assert_eq!(ids.take(), Ok(1));
    }

    #[test]
    fn the_spaces_do_not_overlap() {
        assert!(FILE_MAX_ID < abi::SHARED_ID_BASE);
        assert!(abi::SHARED_ID_BASE < abi::MAX_ID);
    }

    #[test]
    fn a_space_used_up_leaves_the_others_alone() {
        let mut greedy = IdSpace::new(1, FILE_MAX_ID, 1);
        let mut other = IdSpace::new(1, FILE_MAX_ID, 0);
        assert_eq!(greedy.take(), Ok(FILE_MAX_ID));
        assert_eq!(greedy.take(), Err(ENOSPC));
        assert_eq!(other.take(), Ok(1));
    }

    #[test]
    fn returned_ids_come_back_first() {
        let mut ids = IdSpace::new(1, FILE_MAX_ID, 0);
        assert_eq!(ids.take(), Ok(1));
        assert_eq!(ids.take(), Ok(2));
        ids.give_back(2);
        assert_eq!(ids.take(), Ok(2));
        assert_eq!(ids.take(), Ok(3));
    }

    #[test]
    fn a_full_store_drops_returned_ids() {
        let mut ids = IdSpace::new(1, FILE_MAX_ID, 0);
        for id in 1..=(RETURNED_IDS as u32 + 2) {
            assert_eq!(ids.take(), Ok(id));
        }
        for id in 1..=(RETURNED_IDS as u32 + 2) {
            ids.give_back(id);
        }
        for _ in 0..RETURNED_IDS {
            assert!(ids.take().is_ok_and(|id| id <= RETURNED_IDS as u32));
        }
        assert_eq!(ids.take(), Ok(RETURNED_IDS as u32 + 3));
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
