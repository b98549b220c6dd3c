// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberate faults for scripts/selftest-pipeline.sh, which proves that the VM runner fails a
 * run on a kernel warning, a leaked object or a leaked CMA page. Compiled in only with
 * CMAMAP_INJECT=-DCMAMAP_INJECT_*; in C so that a -D flag switches them (Rust sees no ccflags).
 */
#include <linux/bug.h>
#include <linux/cma.h>
#include <linux/dma-map-ops.h>
#include <linux/mm.h>
#include <linux/printk.h>
#include <linux/slab.h>

void cmamap_selftest_inject(void);

void cmamap_selftest_inject(void)
{
#ifdef CMAMAP_INJECT_WARN
	WARN_ON(1);
#endif
#ifdef CMAMAP_INJECT_LEAK
	/*
	 * Many objects in many caches: a stale copy of a pointer (on a cached stack, in a slab's
	 * per-CPU state) must not hide them all.
	 */
	int i;

	for (i = 0; i < 64; i++)
		if (!kmalloc(64 + 64 * i, GFP_KERNEL))
			break;
	pr_info("cmamap: selftest: leaked %d objects\n", i);
#endif
#ifdef CMAMAP_INJECT_CMA_PAGE
	/*
	 * A page reference that outlives its block: cma_release clears the area's bitmap and
	 * drops one reference, so the page never reaches the free lists. kmemleak cannot see it
	 * and the bitmap counters are back; only the CMA settling of the verdict can.
	 */
	struct cma *area = dev_get_cma_area(NULL);
	struct page *page = area ? cma_alloc(area, 1, 0, false) : NULL;

	if (page) {
		get_page(page);
		cma_release(area, page, 1);
		pr_info("cmamap: selftest: leaked a reference to CMA pfn %#lx\n", page_to_pfn(page));
	} else {
		pr_info("cmamap: selftest: no CMA page to leak\n");
	}
#endif
}
