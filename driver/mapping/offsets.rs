// SPDX-License-Identifier: GPL-2.0

//! Size and offset arithmetic for user-supplied numbers. Every step is checked: a user value
//! that would overflow is refused with `EINVAL`, never wrapped.

use crate::{
    abi,
    memory::{PAGE_SHIFT, PAGE_SIZE},
};
use kernel::prelude::*;

/// The whole pages that hold `size` bytes. Zero and sizes whose rounding overflows are invalid.
/// Sizes above [`abi::MAX_BLOCK_SIZE`] are over a limit (`ENOSPC`), as are the module's own.
pub(crate) fn pages_for_size(size: u64) -> Result<usize> {
    if size == 0 {
        return Err(EINVAL);
    }
    let rounded = size.checked_add(PAGE_SIZE as u64 - 1).ok_or(EINVAL)?;
    if rounded & !(PAGE_SIZE as u64 - 1) > abi::MAX_BLOCK_SIZE {
        return Err(ENOSPC);
    }
    usize::try_from(rounded >> PAGE_SHIFT).map_err(|_| EINVAL)
}

/// Bytes in `pages` pages, checked.
pub(crate) fn bytes_of_pages(pages: usize) -> Result<u64> {
    (pages as u64).checked_mul(PAGE_SIZE as u64).ok_or(EINVAL)
}

/// A window of a block selected by an mmap offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MapWindow {
    /// The block's id.
    pub(crate) id: u32,
    /// The view strategy asked for (`STRATEGY_DEFAULT`: the block's own).
    pub(crate) view: u32,
    /// The first page of the block that the window maps.
    pub(crate) first_page: usize,
    /// The number of pages mapped.
    pub(crate) pages: usize,
}

/// Decodes the page offset `pgoff` of a mapping of `len` bytes.
///
/// Gives the block id and the page window; the caller checks the window against the block.
pub(crate) fn map_window(pgoff: u64, len: usize) -> Result<MapWindow> {
    let offset = pgoff.checked_mul(PAGE_SIZE as u64).ok_or(EINVAL)?;
    let (id, view, inner) = abi::view_of_offset(offset);
    let first_page = usize::try_from(inner >> PAGE_SHIFT).map_err(|_| EINVAL)?;
    if len == 0 || len % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    Ok(MapWindow {
        id,
        view,
        first_page,
        pages: len / PAGE_SIZE,
    })
}

impl MapWindow {
    /// Checks that the window lies inside a block of `block_pages` pages.
    pub(crate) fn check_inside(&self, block_pages: usize) -> Result {
        let end = self.first_page.checked_add(self.pages).ok_or(EINVAL)?;
        if end > block_pages {
            return Err(EINVAL);
        }
        Ok(())
    }
}

/// Decodes a file position for `pread`/`pwrite`: the block id and the byte offset inside it.
pub(crate) fn io_position(pos: i64) -> Result<(u32, usize)> {
    let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
    let (id, inner) = abi::id_of_offset(pos);
    Ok((id, usize::try_from(inner).map_err(|_| EINVAL)?))
}

#[kunit_tests(cmamap_offsets)]
mod tests {
    use super::*;

    #[test]
    fn size_rounds_up_to_pages() {
        assert_eq!(pages_for_size(1), Ok(1));
        assert_eq!(pages_for_size(PAGE_SIZE as u64), Ok(1));
        assert_eq!(pages_for_size(PAGE_SIZE as u64 + 1), Ok(2));
    }

    #[test]
    fn zero_and_overflowing_sizes_are_invalid() {
        assert_eq!(pages_for_size(0), Err(EINVAL));
        assert_eq!(pages_for_size(u64::MAX), Err(EINVAL));
        assert_eq!(pages_for_size(u64::MAX - PAGE_SIZE as u64 + 2), Err(EINVAL));
        // 0xfffffffffffff000 rounds to itself: valid arithmetic, but over the block limit.
        assert_eq!(pages_for_size(0xffff_ffff_ffff_f000), Err(ENOSPC));
        assert_eq!(
            pages_for_size(abi::MAX_BLOCK_SIZE),
            Ok((abi::MAX_BLOCK_SIZE >> PAGE_SHIFT) as usize)
        );
        assert_eq!(pages_for_size(abi::MAX_BLOCK_SIZE + 1), Err(ENOSPC));
    }

    #[test]
    fn map_window_decodes_id_and_page() {
        let pgoff = (abi::offset_of_id(7) >> PAGE_SHIFT) + 3;
        let window = map_window(pgoff, 2 * PAGE_SIZE).unwrap();
        assert_eq!(
            window,
            MapWindow {
                id: 7,
                view: 0,
                first_page: 3,
                pages: 2
            }
        );
        assert_eq!(window.check_inside(5), Ok(()));
        assert_eq!(window.check_inside(4), Err(EINVAL));
    }

    #[test]
    fn map_window_refuses_overflow() {
        assert_eq!(map_window(u64::MAX, PAGE_SIZE).err(), Some(EINVAL));
        let window = MapWindow {
            id: 1,
            view: 0,
            first_page: usize::MAX,
            pages: 1,
        };
        assert_eq!(window.check_inside(usize::MAX), Err(EINVAL));
    }

    #[test]
    fn map_window_decodes_view() {
        let pgoff = abi::view_offset(9, abi::STRATEGY_PAGE, 4 * PAGE_SIZE as u64) >> PAGE_SHIFT;
        let window = map_window(pgoff, PAGE_SIZE).unwrap();
        assert_eq!(
            window,
            MapWindow {
                id: 9,
                view: abi::STRATEGY_PAGE,
                first_page: 4,
                pages: 1
            }
        );
    }

    #[test]
    fn io_position_refuses_negative() {
        assert_eq!(io_position(-1).err(), Some(EINVAL));
        assert_eq!(io_position(abi::offset_of_id(2) as i64 + 5), Ok((2, 5)));
    }
}
