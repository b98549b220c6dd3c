/* SPDX-License-Identifier: GPL-2.0 */
/* C half of driver/dma.rs (see dma_glue.c); the Rust declarations are in driver/dma/device.rs. */
#ifndef CMAMAP_DMA_GLUE_H
#define CMAMAP_DMA_GLUE_H

#include <linux/device.h>
#include <linux/types.h>

struct device *cmamap_dma_find_device(const char *bus, const char *name);
void cmamap_dma_device_lock(struct device *dev);
void cmamap_dma_device_unlock(struct device *dev);
int cmamap_dma_map(struct device *dev, phys_addr_t phys, size_t size, int dir,
		   unsigned int dma_bits, dma_addr_t *addr);
int cmamap_dma_reachable(struct device *dev, phys_addr_t phys, size_t size,
			 unsigned int dma_bits);
bool cmamap_dma_reaches(struct device *dev, phys_addr_t phys, dma_addr_t addr, size_t size);
void cmamap_dma_unmap(struct device *dev, dma_addr_t addr, size_t size, int dir);
bool cmamap_dma_sync(struct device *dev, dma_addr_t addr, size_t size, int dir, bool for_cpu);
int cmamap_dma_watch_buses(void);
void cmamap_dma_unwatch_buses(void);
/* Implemented in Rust (driver/dma.rs). */
void cmamap_dma_device_gone(struct device *dev);

#endif
