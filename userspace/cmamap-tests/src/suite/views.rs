//! Views: one block mapped through any strategy by the view bits of the mmap offset.

use cmamap::{abi, AllocRequest, Errno, Prot, Strategy, VIEW_LIMIT};
use cmamap_testkit::pattern;

use crate::check::{expect_errno, pass, Failure, TestResult};
use crate::ctx::{faults_touching, Ctx};
use crate::suite::gup::check_vmsplice;

/// The strategies other than `strategy`.
fn others(strategy: Strategy) -> impl Iterator<Item = Strategy> {
    Strategy::CONCRETE
        .into_iter()
        .filter(move |s| *s != strategy)
}

pub fn views_share_data(ctx: &Ctx) -> TestResult {
    let pages = 4;
    let p = ctx.page;
    let size = pages * p;
    let dev = ctx.open()?;
    for own in Strategy::CONCRETE {
        let block = dev.alloc(&AllocRequest::new(size as u64).strategy(own))?;
        let base_seed = 400 + 100 * u64::from(own.to_raw());
        let mut whole = block.map(Prot::ReadWrite)?;
        pattern::fill(whole.as_mut_slice(), base_seed, 0);

        // All three views at once, each showing what the block's own mapping wrote.
        let mut views = Vec::new();
        for view in Strategy::CONCRETE {
            let mapping = block.map_view(view, 0, size, Prot::ReadWrite)?;
            pattern::check(mapping.as_slice(), base_seed, 0)
                .map_err(|m| Failure::new(format!("{own} block through the {view} view: {m}")))?;
            views.push((view, mapping));
        }
        ensure_eq!(
            block.info()?.map_count,
            1 + views.len() as u32,
            "{own} block: map_count with its own mapping and three views"
        );

        // A partial view at a page offset sees the right part of the block.
        for view in Strategy::CONCRETE {
            let part = block.map_view(view, ctx.pages(1), 2 * p, Prot::Read)?;
            pattern::check(part.as_slice(), base_seed, p as u64)
                .map_err(|m| Failure::new(format!("{own} block, {view} view of pages 1-2: {m}")))?;
        }

        // A write through each view shows through the next view, the block's own mapping
        // and pread.
        for index in 0..views.len() {
            let seed = base_seed + 1 + index as u64;
            let writer = views[index].0;
            pattern::fill(views[index].1.as_mut_slice(), seed, 0);
            let (reader, reading) = &views[(index + 1) % views.len()];
            let sources = [
                (format!("the {reader} view"), reading.as_slice().to_vec()),
                (
                    "the block's own mapping".to_owned(),
                    whole.as_slice().to_vec(),
                ),
                ("pread".to_owned(), block.read_all()?),
            ];
            for (source, bytes) in sources {
                pattern::check(&bytes, seed, 0).map_err(|m| {
                    Failure::new(format!(
                        "{own} block: written through the {writer} view, read through \
                         {source}: {m}"
                    ))
                })?;
            }
        }

        // pread and pwrite know no views: view bits put the position past the block's end.
        for view in Strategy::CONCRETE {
            let offset = abi::view_offset(block.id(), view.to_raw(), 0);
            let mut buf = [0u8; 16];
            ensure_eq!(
                dev.pread(offset, &mut buf)?,
                0,
                "{own} block: pread at the {view} view's offset"
            );
            expect_errno(
                dev.pwrite(offset, &buf),
                Errno::ENOSPC,
                &format!("{own} block: pwrite at the {view} view's offset"),
            )?;
        }
        drop(views);
        drop(whole);
        block.free()?;
    }
    pass()
}

pub fn view_fault_counts(ctx: &Ctx) -> TestResult {
    let pages = 16;
    let dev = ctx.open()?;
    for view in Strategy::CONCRETE {
        let expected = if view == Strategy::Remap {
            0
        } else {
            pages as i64
        };
        for own in others(view) {
            let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(own))?;
            let mut mapping = block.map_view(view, 0, pages * ctx.page, Prot::ReadWrite)?;
            let first = faults_touching(&mut mapping, ctx.page, pages, 1)?;
            let second = faults_touching(&mut mapping, ctx.page, pages, 101)?;
            ensure_eq!(
                first,
                expected,
                "{view} view of a {own} block: minor faults touching {pages} fresh pages"
            );
            ensure_eq!(
                second,
                0,
                "{view} view of a {own} block: minor faults touching them again"
            );
            let read = block.read_all()?;
            for page in 0..pages {
                ensure_eq!(
                    read[page * ctx.page],
                    101 + page as u8,
                    "{view} view of a {own} block: byte written to page {page}, read by pread"
                );
            }
        }
    }
    pass()
}

pub fn view_gup_only_through_page_view(ctx: &Ctx) -> TestResult {
    let size = 4 * ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(size as u64).strategy(Strategy::Remap))?;
    let mut own = block.map(Prot::ReadWrite)?;
    pattern::fill(own.as_mut_slice(), 72, 0);
    // The block's own (remap) mapping is not pinnable either.
    check_vmsplice(&own, 72, false, "the remap block's own mapping")?;
    for view in Strategy::CONCRETE {
        let mapping = block.map_view(view, 0, size, Prot::ReadWrite)?;
        check_vmsplice(
            &mapping,
            72,
            view == Strategy::Page,
            &format!("the {view} view of a remap block"),
        )?;
    }
    drop(own);
    block.free()?;
    pass()
}

pub fn view_invalid_einval(ctx: &Ctx) -> TestResult {
    // Views past the last strategy this crate knows, up to 7, the largest three bits hold.
    let known = Strategy::CONCRETE
        .iter()
        .map(|s| s.to_raw())
        .max()
        .unwrap_or(0);
    let invalid: Vec<u32> = (known + 1..=7).collect();
    let dev = ctx.open()?;
    // Two blocks, so that both parities of the id are tried: the view field ends where the id
    // begins, and a view that does not fit spills into the id.
    let first = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let second = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let mut problems = Vec::new();
    for block in [&first, &second] {
        for &raw in &invalid {
            let what = format!("mmap of block {} through view {raw}", block.id());
            // The library passes views that fit on to the driver and refuses the others.
            expect_errno(
                block.map_view(Strategy::Unknown(raw), 0, ctx.page, Prot::Read),
                Errno::EINVAL,
                &format!("library {what}"),
            )?;
            // The driver, given the offset that the ABI's own encoding builds (what
            // CMAMAP_MMAP_OFFSET gives a C program).
            let offset = abi::view_offset(block.id(), raw, 0);
            match dev.map(offset, ctx.page, Prot::Read) {
                Err(err) if err.errno() == Errno::EINVAL => {}
                Err(err) => problems.push(format!("{what} (offset {offset:#x}): {err}")),
                Ok(_) => {
                    let (id, view, inner) = abi::view_of_offset(offset);
                    problems.push(format!(
                        "{what} (offset {offset:#x}) succeeded: the offset decodes as block \
                         {id}, view {view}, byte {inner:#x}"
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        if invalid.iter().any(|&raw| raw >= VIEW_LIMIT) {
            problems.push(format!(
                "the view field has {} bits (VIEW_SHIFT {} up to OFFSET_SHIFT {}): a view of \
                 {VIEW_LIMIT} or more spills into the block id and reaches the driver as \
                 another block or view",
                abi::OFFSET_SHIFT - abi::VIEW_SHIFT,
                abi::VIEW_SHIFT,
                abi::OFFSET_SHIFT
            ));
        }
        return Err(Failure::new(problems.join("\n")));
    }
    pass()
}
