/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers of the memory domain, called from driver/memory/{cma,quarantine}.rs. */
#ifndef CMAMAP_MEMORY_GLUE_H
#define CMAMAP_MEMORY_GLUE_H

#include <linux/mm_types.h>

unsigned long cmamap_page_to_pfn(const struct page *page);
struct page *cmamap_pfn_to_page(unsigned long pfn);
void *cmamap_page_address(const struct page *page);
void cmamap_zero_pfns(unsigned long pfn, unsigned long count);
unsigned long cmamap_free_cma_pages(void);
bool cmamap_pages_idle(const struct page *first, unsigned long count);
void cmamap_quarantine_retry_later(unsigned int ms);
void cmamap_quarantine_cancel(void);
void cmamap_module_get(void);
void cmamap_module_put(void);

#endif
