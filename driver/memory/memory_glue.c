// SPDX-License-Identifier: GPL-2.0
/*
 * The memory domain's C side (driver/memory/cma.rs and driver/memory/quarantine.rs): static
 * inlines and macros that Rust cannot call, the page loops built on them, and the
 * quarantine's delayed work.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>

#include "memory_glue.h"

/* C: page_to_pfn() is a macro over the memory model. */
unsigned long cmamap_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

/* C: pfn_to_page() is a macro over the memory model. */
struct page *cmamap_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

/* C: page_address() is a macro (lowmem_page_address(), a static inline). */
void *cmamap_page_address(const struct page *page)
{
	return page_address(page);
}

/*
 * Zeroes @count pages from @pfn; cond_resched() keeps big blocks from stalling the CPU.
 * C: clear_highpage() and pfn_to_page() are static inlines and macros.
 */
void cmamap_zero_pfns(unsigned long pfn, unsigned long count)
{
	unsigned long i;

	for (i = 0; i < count; i++) {
		clear_highpage(pfn_to_page(pfn + i));
		cond_resched();
	}
}

/*
 * Free CMA pages (NR_FREE_CMA_PAGES), to tell a fragmented area from an exhausted one.
 * C: global_zone_page_state() is a static inline.
 */
unsigned long cmamap_free_cma_pages(void)
{
	return global_zone_page_state(NR_FREE_CMA_PAGES);
}

/*
 * Whether this driver holds the only reference to each of @count pages from @first.
 * C: page_count() is a static inline, called once a page.
 */
bool cmamap_pages_idle(const struct page *first, unsigned long count)
{
	unsigned long pfn = page_to_pfn(first), i;

	for (i = 0; i < count; i++)
		if (page_count(pfn_to_page(pfn + i)) != 1)
			return false;
	return true;
}

/* Rust's entry point (driver/memory/quarantine.rs). */
void cmamap_quarantine_retry(void);

static void cmamap_quarantine_work_fn(struct work_struct *work)
{
	cmamap_quarantine_retry();
}

/*
 * C because the Rust workqueue of 7.3 cannot cancel a work item, and the module's exit
 * must: cancel_delayed_work_sync() also waits for a run that re-arms itself.
 */
static DECLARE_DELAYED_WORK(cmamap_quarantine_work, cmamap_quarantine_work_fn);

/* C: schedule_delayed_work() is a static inline on the C-only work item above. */
void cmamap_quarantine_retry_later(unsigned int ms)
{
	schedule_delayed_work(&cmamap_quarantine_work, msecs_to_jiffies(ms));
}

void cmamap_quarantine_cancel(void)
{
	cancel_delayed_work_sync(&cmamap_quarantine_work);
}

/* C: __module_get() is a static inline and THIS_MODULE a macro. */
void cmamap_module_get(void)
{
	__module_get(THIS_MODULE);
}

/* C: THIS_MODULE is a macro. */
void cmamap_module_put(void)
{
	module_put(THIS_MODULE);
}
