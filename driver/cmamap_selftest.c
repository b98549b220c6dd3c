// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberate faults for scripts/selftest-pipeline.sh, which proves that the VM runner fails a
 * run on a kernel warning or a leak. Compiled in only with CMAMAP_INJECT=-DCMAMAP_INJECT_*;
 * in C so that a -D flag switches them (Rust sees no ccflags).
 */
#include <linux/bug.h>
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
}
