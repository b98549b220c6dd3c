// SPDX-License-Identifier: GPL-2.0
/*
 * Static inlines that Rust cannot call, wrapped as real functions for driver/cma.rs and
 * driver/vma.rs. No logic lives here.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched.h>

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

void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}
