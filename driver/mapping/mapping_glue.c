// SPDX-License-Identifier: GPL-2.0
/* The mapping domain's C side (driver/mapping/vma.rs): VMA setters that are static inlines. */
#include <linux/mm.h>

#include "mapping_glue.h"

/* C: vm_flags_set() is a static inline (it also asserts the VMA write lock). */
void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

/*
 * Uncached (UC-) or write-combined page protection for a VMA of device memory.
 * C: pgprot_noncached() is a macro.
 */
void cmamap_vma_set_cache(struct vm_area_struct *vma, bool write_combine)
{
	vma->vm_page_prot = write_combine ? pgprot_writecombine(vma->vm_page_prot) :
					    pgprot_noncached(vma->vm_page_prot);
}
