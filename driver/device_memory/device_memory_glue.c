// SPDX-License-Identifier: GPL-2.0
/*
 * The device memory domain's C side (driver/device_memory/bar.rs and rmap.rs): BAR copies
 * through a short-lived kernel mapping, and the one address_space that every open file shares.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/pfn.h>
#include <linux/vmalloc.h>

#include "device_memory_glue.h"

/*
 * Where the copies map the BAR, x86 PAT being the reason. ioremap() reserves the page's memtype
 * for as long as it lives (UC-, or the memtype of a mapping that exists), and a write-combined
 * mapping of that page made meanwhile outside the driver (sysfs resourceN_wc, another driver's
 * ioremap_wc()) is then given UC- for its own lifetime. vmap_pfn() reserves no memtype, so such
 * a mapping keeps WC. The UC- copy mapping that may alias it is benign: the alias the SDM says
 * must never exist is WC with a cacheable type, and UC- and WC are both uncacheable.
 * vmap_pfn() exists only with CONFIG_VMAP_PFN, a hidden option that only i915 and xe select:
 * Debian's x86 kernel has it, the project's test kernels do not, and there the copies keep
 * ioremap(). vmap_pfn() WARNs on a pfn with a struct page (a BAR next to RAM in one section may
 * have one): such a page keeps ioremap() too. arm64 reserves no memtype: it keeps ioremap().
 */
#if defined(CONFIG_VMAP_PFN) && defined(CONFIG_X86_PAT)
static bool cmamap_bar_page_maps_pfn(unsigned long pfn)
{
	return !pfn_valid(pfn);
}
#else
static bool cmamap_bar_page_maps_pfn(unsigned long pfn)
{
	return false;
}
#endif

/*
 * Whether copies of any page of @phys..@phys+@len go through ioremap(), for the driver's line
 * at bind. C: pfn_valid() is a static inline.
 */
bool cmamap_bar_copy_uses_ioremap(phys_addr_t phys, u64 len)
{
	unsigned long pfn;

	for (pfn = PHYS_PFN(phys); pfn < PHYS_PFN(phys + len); pfn++) {
		if (!cmamap_bar_page_maps_pfn(pfn))
			return true;
		cond_resched();
	}
	return false;
}

/*
 * Copies @len bytes between device memory at @phys and @buf through a temporary uncached
 * mapping, so that the driver holds no long-lived kernel mapping whose cache mode would
 * override what user mappings ask for (x86 PAT keeps one mode per physical range). The bytes
 * lie in one page (the caller copies a page at a time).
 * C: memcpy_toio(), memcpy_fromio() and pgprot_noncached() are per-architecture macros, and
 * vmap_pfn() exists only with CONFIG_VMAP_PFN.
 */
int cmamap_bar_copy(phys_addr_t phys, void *buf, size_t len, bool to_device)
{
	void __iomem *io;
	void *page = NULL;

	if (offset_in_page(phys) + len > PAGE_SIZE)
		return -EINVAL;
#if defined(CONFIG_VMAP_PFN) && defined(CONFIG_X86_PAT)
	if (cmamap_bar_page_maps_pfn(PHYS_PFN(phys))) {
		unsigned long pfn = PHYS_PFN(phys);

		/* As ioremap() maps device memory: PAGE_KERNEL_IO, decrypted, UC-. */
		page = vmap_pfn(&pfn, 1, pgprot_decrypted(pgprot_noncached(PAGE_KERNEL_IO)));
		if (!page)
			return -ENOMEM;
	}
#endif
	io = page ? (void __force __iomem *)(page + offset_in_page(phys)) : ioremap(phys, len);
	if (!io)
		return -ENOMEM;
	if (to_device)
		memcpy_toio(io, buf, len);
	else
		memcpy_fromio(buf, io, len);
	if (page)
		vunmap(page);
	else
		iounmap(io);
	return 0;
}

/*
 * Whether any task still uses @mm (a plain read: no reference is taken or dropped).
 * C: atomic_read() is a static inline.
 */
bool cmamap_mm_has_users(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) > 0;
}

static const struct file_operations cmamap_rmap_fops = {};

/*
 * One anonymous inode whose address_space every open file of /dev/cmamap uses (as DRM does),
 * so that unmap_mapping_range() reaches every VMA of the device, whatever node it was opened
 * through. Returns the holder file or an ERR_PTR.
 * C: the inode's file_operations are a C static that must outlive every open file.
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

/* C: keeps struct file's fields out of Rust, as the rest of the rmap glue does. */
void cmamap_rmap_adopt(struct file *file, struct file *holder)
{
	file->f_mapping = holder->f_mapping;
}

/*
 * Zaps every user PTE of mmap offsets @offset..@offset+@len, in every process.
 * C: reads the holder's f_mapping, as above.
 */
void cmamap_rmap_zap(struct file *holder, u64 offset, u64 len)
{
	unmap_mapping_range(holder->f_mapping, offset, len, 1);
}
