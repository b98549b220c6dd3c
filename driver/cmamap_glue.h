/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers called from Rust (driver/{cma,vma,sys,bar,rmap,quarantine}.rs). */
#ifndef CMAMAP_GLUE_H
#define CMAMAP_GLUE_H

#include <linux/fs.h>
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
void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags);
void cmamap_vma_set_cache(struct vm_area_struct *vma, bool write_combine);
int cmamap_bar_copy(phys_addr_t phys, void *buf, size_t len, bool to_device);
bool cmamap_mm_has_users(struct mm_struct *mm);
struct file *cmamap_rmap_create(void);
void cmamap_rmap_destroy(struct file *holder);
void cmamap_rmap_adopt(struct file *file, struct file *holder);
void cmamap_rmap_zap(struct file *holder, u64 offset, u64 len);
void cmamap_selftest_inject(void);

#endif
