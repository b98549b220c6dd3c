// SPDX-License-Identifier: GPL-2.0
/*
 * Static inlines that Rust cannot call, wrapped as real functions for driver/cma.rs,
 * driver/vma.rs, driver/bar.rs and driver/rmap.rs, and the delayed work of
 * driver/quarantine.rs. No logic lives here.
 */
#include <linux/anon_inodes.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>

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

/* Whether this driver holds the only reference to each of @count pages from @first. */
bool cmamap_pages_idle(const struct page *first, unsigned long count)
{
	unsigned long pfn = page_to_pfn(first), i;

	for (i = 0; i < count; i++)
		if (page_count(pfn_to_page(pfn + i)) != 1)
			return false;
	return true;
}

/* Rust's entry point (driver/quarantine.rs). */
void cmamap_quarantine_retry(void);

static void cmamap_quarantine_work_fn(struct work_struct *work)
{
	cmamap_quarantine_retry();
}

/*
 * In C because the Rust workqueue of 7.3 cannot cancel a work item, and the module's exit
 * must: cancel_delayed_work_sync() also waits for a run that re-arms itself.
 */
static DECLARE_DELAYED_WORK(cmamap_quarantine_work, cmamap_quarantine_work_fn);

void cmamap_quarantine_retry_later(unsigned int ms)
{
	schedule_delayed_work(&cmamap_quarantine_work, msecs_to_jiffies(ms));
}

void cmamap_quarantine_cancel(void)
{
	cancel_delayed_work_sync(&cmamap_quarantine_work);
}

void cmamap_module_get(void)
{
	__module_get(THIS_MODULE);
}

void cmamap_module_put(void)
{
	module_put(THIS_MODULE);
}

void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

/* Uncached (UC-) or write-combined page protection for a VMA of device memory. */
void cmamap_vma_set_cache(struct vm_area_struct *vma, bool write_combine)
{
	vma->vm_page_prot = write_combine ? pgprot_writecombine(vma->vm_page_prot) :
					    pgprot_noncached(vma->vm_page_prot);
}

/*
 * Copies @len bytes between device memory at @phys and @buf through a temporary uncached
 * mapping, so that the driver holds no long-lived kernel mapping whose cache mode would
 * override what user mappings ask for (x86 PAT keeps one mode per physical range).
 */
int cmamap_bar_copy(phys_addr_t phys, void *buf, size_t len, bool to_device)
{
	void __iomem *io = ioremap(phys, len);

	if (!io)
		return -ENOMEM;
	if (to_device)
		memcpy_toio(io, buf, len);
	else
		memcpy_fromio(buf, io, len);
	iounmap(io);
	return 0;
}

/* Whether any task still uses @mm (a plain read: no reference is taken or dropped). */
bool cmamap_mm_has_users(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) > 0;
}

static const struct file_operations cmamap_rmap_fops = {};

/*
 * One anonymous inode whose address_space every open file of /dev/cmamap uses (as DRM does),
 * so that unmap_mapping_range() reaches every VMA of the device, whatever node it was opened
 * through. Returns the holder file or an ERR_PTR.
 */
struct file *cmamap_rmap_create(void)
{
	return anon_inode_create_getfile("[cmamap]", &cmamap_rmap_fops, NULL, O_RDWR, NULL);
}

/*
 * Synchronous: the holder's file_operations live in this module, which is being unloaded; a
 * deferred fput() would run __fput() after the module text is gone. Nothing else holds it.
 */
void cmamap_rmap_destroy(struct file *holder)
{
	__fput_sync(holder);
}

void cmamap_rmap_adopt(struct file *file, struct file *holder)
{
	file->f_mapping = holder->f_mapping;
}

/* Zaps every user PTE of mmap offsets @offset..@offset+@len, in every process. */
void cmamap_rmap_zap(struct file *holder, u64 offset, u64 len)
{
	unmap_mapping_range(holder->f_mapping, offset, len, 1);
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
