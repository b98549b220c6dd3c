/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers called from Rust (driver/cma.rs, driver/vma.rs, driver/sys.rs). */
#ifndef CMAMAP_GLUE_H
#define CMAMAP_GLUE_H

#include <linux/mm_types.h>

unsigned long cmamap_page_to_pfn(const struct page *page);
struct page *cmamap_pfn_to_page(unsigned long pfn);
void *cmamap_page_address(const struct page *page);
void cmamap_zero_pfns(unsigned long pfn, unsigned long count);
unsigned long cmamap_free_cma_pages(void);
void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags);
void cmamap_selftest_inject(void);

#endif
