// SPDX-License-Identifier: GPL-2.0
/*
 * C half of driver/dma.rs: finding a device by name, mapping a block for it without a
 * bounce buffer, syncing, and the bus notifier that ends mappings when a device goes.
 * C because the checks are static inlines (device_lock, phys_to_dma, use_dma_iommu,
 * dma_sync_single_*) and 7.3's Rust has no bus notifier.
 */
#include <linux/cc_platform.h>
#include <linux/cpu.h>
#include <linux/device.h>
#include <linux/dma-direct.h>
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/iommu.h>
#include <linux/iommu-dma.h>
#include <linux/limits.h>
#include <linux/notifier.h>
#include <linux/pci.h>
#include <linux/platform_device.h>
#include <linux/string.h>
#include <linux/swiotlb.h>
#ifdef CONFIG_ARM_AMBA
#include <linux/amba/bus.h>
#endif

#include "dma_glue.h"

static const struct {
	const char *name;
	const struct bus_type *bus;
} cmamap_dma_buses[] = {
	{ "pci", &pci_bus_type },
	{ "platform", &platform_bus_type },
#ifdef CONFIG_ARM_AMBA
	{ "amba", &amba_bustype },
#endif
	/* Devices that do no DMA: a name users may give by mistake gets EOPNOTSUPP, not ENODEV. */
	{ "cpu", &cpu_subsys },
};

/*
 * The device @name on bus @bus, with a reference the caller drops with put_device(), or
 * NULL when there is none.
 */
struct device *cmamap_dma_find_device(const char *bus, const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cmamap_dma_buses); i++)
		if (!strcmp(bus, cmamap_dma_buses[i].name))
			return bus_find_device_by_name(cmamap_dma_buses[i].bus, NULL, name);
	return NULL;
}

void cmamap_dma_device_lock(struct device *dev)
{
	device_lock(dev);
}

void cmamap_dma_device_unlock(struct device *dev)
{
	device_unlock(dev);
}

/* Whether the DMA API goes through an IOMMU (or other ops) for @dev rather than direct. */
static bool cmamap_dma_translated(struct device *dev)
{
	return use_dma_iommu(dev) || get_dma_ops(dev);
}

/* Whether bus address @addr reaches @phys itself for @size bytes, not a bounce buffer. */
bool cmamap_dma_reaches(struct device *dev, phys_addr_t phys, dma_addr_t addr, size_t size)
{
	struct iommu_domain *domain;
	size_t last = size - PAGE_SIZE;

	if (!use_dma_iommu(dev))
		return !get_dma_ops(dev) && addr == phys_to_dma(dev, phys);
	domain = iommu_get_domain_for_dev(dev);
	/*
	 * dma-iommu maps a physically contiguous range as one IOVA range, and a bounce buffer
	 * lies elsewhere: its first and last pages show which it is, at a cost that does not
	 * grow with the size.
	 */
	return domain && iommu_iova_to_phys(domain, addr) == phys &&
	       iommu_iova_to_phys(domain, addr + last) == phys + last;
}

/*
 * dma_capable() without its memory-encryption test, which calls force_dma_unencrypted():
 * kernels built with memory encryption (AMD_MEM_ENCRYPT, as Debian's) define that out of
 * line and do not export it, so a module using dma_capable() does not link there. With
 * encryption active, direct DMA may need an unencrypted bounce buffer: refuse it, as any
 * bounce is refused.
 */
static bool cmamap_dma_capable(struct device *dev, dma_addr_t addr, size_t size)
{
	if (addr == DMA_MAPPING_ERROR || cc_platform_has(CC_ATTR_MEM_ENCRYPT))
		return false;
	return addr + size - 1 <= min_not_zero(*dev->dma_mask, dev->bus_dma_limit);
}

static int cmamap_dma_is_dev(struct device *dev, const void *data)
{
	return dev == data;
}

/* Whether @dev is still on its bus: removal takes it off before the IOMMU core lets go. */
static bool cmamap_dma_on_bus(struct device *dev)
{
	struct device *found = dev->bus ? bus_find_device(dev->bus, NULL, dev, cmamap_dma_is_dev) :
					  NULL;

	put_device(found);
	return found;
}

/*
 * Maps @size bytes at @phys for @dev in direction @dir and stores the bus address in @addr.
 * The caller holds the device lock, so no driver binds meanwhile, and the lock of the
 * mappings, which the removal notifications take: a device still on its bus here has its
 * mapping ended by them before the IOMMU core releases it. @dma_bits, if not 0, is the
 * device's address width: a device that no driver owns gets it as its DMA mask for this call
 * only (so that IOVAs are allocated below it), and it bounds the address in any case.
 *
 * Returns 0, -EOPNOTSUPP (no DMA for this device, or ops whose result cannot be checked),
 * -EIO (the mask was refused), -ERANGE (the device cannot reach the memory without a bounce
 * buffer) or -ENOMEM (the DMA API failed, e.g. no IOVA space).
 */
int cmamap_dma_map(struct device *dev, phys_addr_t phys, size_t size, int dir,
		   unsigned int dma_bits, dma_addr_t *addr)
{
	u64 limit = dma_bits ? DMA_BIT_MASK(dma_bits) : U64_MAX;
	dma_addr_t mapped;

	u64 saved_mask;
	int ret = 0;

	device_lock_assert(dev);
	if (!cmamap_dma_on_bus(dev))
		return -ENODEV;
	if (!dev->dma_mask || !*dev->dma_mask)
		return -EOPNOTSUPP;
	if (get_dma_ops(dev) && !use_dma_iommu(dev))
		return -EOPNOTSUPP;
	saved_mask = *dev->dma_mask;
	if (dma_bits && !dev->driver && dma_set_mask(dev, limit))
		return -EIO;
	/*
	 * Direct DMA to memory past the mask would bounce or WARN, and swiotlb=force bounces
	 * everything: refuse before mapping.
	 */
	if (!cmamap_dma_translated(dev) &&
	    (is_swiotlb_force_bounce(dev) ||
	     !cmamap_dma_capable(dev, phys_to_dma(dev, phys), size) ||
	     phys_to_dma(dev, phys) + size - 1 > limit)) {
		ret = -ERANGE;
		goto out;
	}
	mapped = dma_map_phys(dev, phys, size, dir, 0);
	if (dma_mapping_error(dev, mapped)) {
		ret = -ENOMEM;
		goto out;
	}
	if (!cmamap_dma_reaches(dev, phys, mapped, size) || mapped + size - 1 > limit) {
		/* A bounce buffer's copy-back would overwrite what the CPU wrote meanwhile. */
		dma_unmap_phys(dev, mapped, size, dir, DMA_ATTR_SKIP_CPU_SYNC);
		ret = -ERANGE;
		goto out;
	}
	*addr = mapped;
out:
	/* The mask is the driver's to set; a driverless device keeps the bus's default. */
	*dev->dma_mask = saved_mask;
	return ret;
}

/*
 * Whether @dev can reach @size bytes at @phys without a bounce buffer, as cmamap_dma_map
 * would map them: through its IOMMU, or directly under its mask and @dma_bits. Returns 0,
 * -EOPNOTSUPP (no DMA, or ops that cannot be checked) or -ERANGE, as cmamap_dma_map does.
 */
int cmamap_dma_reachable(struct device *dev, phys_addr_t phys, size_t size,
			 unsigned int dma_bits)
{
	u64 limit = dma_bits ? DMA_BIT_MASK(dma_bits) : U64_MAX;
	dma_addr_t addr = phys_to_dma(dev, phys);

	if (!dev->dma_mask || !*dev->dma_mask)
		return -EOPNOTSUPP;
	if (use_dma_iommu(dev))
		return 0;
	if (get_dma_ops(dev))
		return -EOPNOTSUPP;
	if (is_swiotlb_force_bounce(dev))
		return -ERANGE;
	/* A device no driver owns gets @dma_bits as its mask when it is mapped for. */
	if (!(dma_bits && !dev->driver) && !cmamap_dma_capable(dev, addr, size))
		return -ERANGE;
	return addr + size - 1 <= limit ? 0 : -ERANGE;
}

void cmamap_dma_unmap(struct device *dev, dma_addr_t addr, size_t size, int dir)
{
	dma_unmap_phys(dev, addr, size, dir, 0);
}

/*
 * Syncs @size bytes at @addr for the CPU or the device. Returns whether the DMA API had work
 * to do there (cache maintenance on a non-coherent device, or a bounce copy): false on a
 * cache-coherent device such as QEMU's, where the sync returns at once.
 */
bool cmamap_dma_sync(struct device *dev, dma_addr_t addr, size_t size, int dir, bool for_cpu)
{
	bool work = dma_need_sync(dev, addr);

	if (for_cpu)
		dma_sync_single_for_cpu(dev, addr, size, dir);
	else
		dma_sync_single_for_device(dev, addr, size, dir);
	return work;
}

/*
 * A device that goes away, or whose driver binds or unbinds, loses its mappings first: a
 * driver takes the device over, and unbinding undoes its DMA set-up. Both removal events are
 * handled: a lookup can still find the device between DEL and REMOVED. The highest priority
 * runs this before the IOMMU core releases the device.
 */
static int cmamap_dma_bus_event(struct notifier_block *nb, unsigned long action, void *data)
{
	switch (action) {
	case BUS_NOTIFY_DEL_DEVICE:
	case BUS_NOTIFY_REMOVED_DEVICE:
	case BUS_NOTIFY_BIND_DRIVER:
	case BUS_NOTIFY_UNBIND_DRIVER:
		cmamap_dma_device_gone(data);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block cmamap_dma_nbs[ARRAY_SIZE(cmamap_dma_buses)];

int cmamap_dma_watch_buses(void)
{
	size_t i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(cmamap_dma_buses); i++) {
		cmamap_dma_nbs[i].notifier_call = cmamap_dma_bus_event;
		cmamap_dma_nbs[i].priority = INT_MAX;
		ret = bus_register_notifier(cmamap_dma_buses[i].bus, &cmamap_dma_nbs[i]);
		if (ret) {
			while (i--)
				bus_unregister_notifier(cmamap_dma_buses[i].bus, &cmamap_dma_nbs[i]);
			return ret;
		}
	}
	return 0;
}

void cmamap_dma_unwatch_buses(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cmamap_dma_buses); i++)
		bus_unregister_notifier(cmamap_dma_buses[i].bus, &cmamap_dma_nbs[i]);
}
