// SPDX-License-Identifier: GPL-2.0
/*
 * Static inlines that Rust cannot call, wrapped as real functions for driver/cma.rs and
 * driver/vma.rs. No logic lives here.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/vmstat.h>

#include "cmamap_glue.h"

unsigned long cmamap_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

struct page *cmamap_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

void *cmamap_page_address(const struct page *page)
{
	return page_address(page);
}

/* Zeroes @count pages from @pfn; cond_resched() keeps big blocks from stalling the CPU. */
void cmamap_zero_pfns(unsigned long pfn, unsigned long count)
{
	unsigned long i;

	for (i = 0; i < count; i++) {
		clear_highpage(pfn_to_page(pfn + i));
		cond_resched();
	}
}

/* Free CMA pages (NR_FREE_CMA_PAGES), to tell a fragmented area from an exhausted one. */
unsigned long cmamap_free_cma_pages(void)
{
	return global_zone_page_state(NR_FREE_CMA_PAGES);
}

void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

/*
 * Deliberate faults for scripts/selftest-pipeline.sh, which proves that the VM runner fails a
 * run on a kernel warning or a leak. Compiled in only with CMAMAP_INJECT=-DCMAMAP_INJECT_*.
 */
void cmamap_selftest_inject(void)
{
#ifdef CMAMAP_INJECT_WARN
	WARN_ON(1);
#endif
#ifdef CMAMAP_INJECT_LEAK
	/* Several objects: a stale copy of one pointer on a cached stack must not hide them all. */
	int i;

	for (i = 0; i < 16; i++)
		if (!kmalloc(128 + i, GFP_KERNEL))
			break;
	pr_info("cmamap: selftest: leaked %d objects\n", i);
#endif
}
