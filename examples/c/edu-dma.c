// SPDX-License-Identifier: GPL-2.0
/*
 * DMA into a cmamap block from a PCI device driven from userspace: QEMU's edu device
 * (1234:11e8), as one drives an FPGA through sysfs. The device copies page 0 of the block
 * into its own buffer and from there into page 1.
 *
 *   cmamap-example-edu-dma [PCI-ADDRESS [DMA-BITS]]
 *
 * DMA-BITS is how many address bits the device drives (edu: 28 unless QEMU was given
 * dma_mask=); the driver refuses memory the device cannot reach rather than letting it write
 * elsewhere. The steps:
 *   1. enable the device and set Bus Master (sysfs enable and config), map its registers
 *      (resource0);
 *   2. allocate a block the device can reach (CMAMAP_ALLOC_FOR_DEVICE) and map it;
 *   3. CMAMAP_IOC_DMA_MAP: the bus address the device must use (an IOVA behind an IOMMU, the
 *      physical address without one);
 *   4. sync for the device, let it copy, sync for the CPU, compare.
 * Needs root: DMA_MAP needs CAP_SYS_ADMIN.
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "common.h"

#define EDU_BAR0_LEN (1 << 20)
#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_CMD_START 1
#define EDU_CMD_TO_RAM 2
#define EDU_BUFFER 0x40000 /* the device's own 4 KiB buffer, in its DMA space */
#define EDU_ID 0x010000ed
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PAGE 4096

static char sysfs[256];

/* Reads a sysfs attribute of the device into buf; 0 on success. */
static int read_attr(const char *dev, const char *attr, char *buf, size_t len)
{
	char path[512];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev, attr);
	f = fopen(path, "r");
	if (!f)
		return -1;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	return ok ? 0 : -1;
}

/* The first edu device's PCI address; 0 on success. */
static int find_edu(char *address, size_t len)
{
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *entry;
	char vendor[16], device[16];
	int found = -1;

	if (!dir)
		return -1;
	while (found && (entry = readdir(dir))) {
		if (entry->d_name[0] == '.')
			continue;
		if (read_attr(entry->d_name, "vendor", vendor, sizeof(vendor)) ||
		    read_attr(entry->d_name, "device", device, sizeof(device)))
			continue;
		if (!strncmp(vendor, "0x1234", 6) && !strncmp(device, "0x11e8", 6) &&
		    strlen(entry->d_name) < len) {
			strcpy(address, entry->d_name);
			found = 0;
		}
	}
	closedir(dir);
	return found;
}

static void write_file(const char *attr, const void *buf, size_t len, off_t offset)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sysfs, attr);
	fd = open(path, O_RDWR);
	if (fd < 0 || pwrite(fd, buf, len, offset) != (ssize_t)len)
		die(path);
	close(fd);
}

static volatile uint64_t *reg(volatile uint8_t *regs, unsigned int offset)
{
	return (volatile uint64_t *)(regs + offset);
}

/* Starts one transfer and waits for the device (edu completes on a ~100 ms timer). */
static void edu_transfer(volatile uint8_t *regs, uint64_t src, uint64_t dst, uint64_t cmd)
{
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	int waited;

	*reg(regs, EDU_REG_DMA_SRC) = src;
	*reg(regs, EDU_REG_DMA_DST) = dst;
	*reg(regs, EDU_REG_DMA_COUNT) = PAGE;
	*reg(regs, EDU_REG_DMA_CMD) = EDU_CMD_START | cmd;
	for (waited = 0; *reg(regs, EDU_REG_DMA_CMD) & EDU_CMD_START; waited++) {
		if (waited > 2000) {
			fprintf(stderr, "edu: DMA did not finish in 10 s\n");
			exit(1);
		}
		nanosleep(&pause, NULL);
	}
}

static void sync_block(int fd, __u32 id, __u32 flags, __u64 offset, __u32 direction)
{
	struct cmamap_sync sync = { .id = id, .flags = flags, .offset = offset, .length = PAGE,
				    .direction = direction };

	if (ioctl(fd, CMAMAP_IOC_SYNC, &sync) < 0)
		die("CMAMAP_IOC_SYNC");
}

int main(int argc, char **argv)
{
	char address[32]; /* 0000:00:04.0; "pci:" and it fit CMAMAP_DEVICE_NAME_MAX */
	unsigned int bits = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 0) : 28;
	struct cmamap_device device = { .dma_bits = bits };
	struct cmamap_alloc alloc = { .size = 2 * PAGE, .strategy = CMAMAP_STRATEGY_PAGE,
				      .flags = CMAMAP_ALLOC_FOR_DEVICE,
				      .device = (__u64)(unsigned long)&device };
	struct cmamap_dma_map map = { .direction = CMAMAP_DMA_BIDIRECTIONAL };
	struct cmamap_dma_unmap unmap = { 0 };
	struct cmamap_info info = { 0 };
	volatile uint8_t *regs;
	uint16_t command = 0;
	uint8_t *block;
	int fd, bar, i;

	if (argc > 1 && strlen(argv[1]) < sizeof(address))
		strcpy(address, argv[1]);
	else if (argc > 1) {
		fprintf(stderr, "%s is no PCI address\n", argv[1]);
		return 1;
	} else if (find_edu(address, sizeof(address))) {
		fprintf(stderr, "no edu device (1234:11e8): start QEMU with -device edu\n");
		return 1;
	}
	snprintf(sysfs, sizeof(sysfs), "/sys/bus/pci/devices/%s", address);

	/* 1. The device: enabled, allowed to master the bus, registers mapped. */
	write_file("enable", "1", 1, 0);
	snprintf(map.device.name, sizeof(map.device.name), "pci:%s", address);
	snprintf(device.name, sizeof(device.name), "pci:%s", address);
	{
		char path[512];
		int config;

		snprintf(path, sizeof(path), "%s/config", sysfs);
		config = open(path, O_RDWR);
		if (config < 0 || pread(config, &command, 2, PCI_COMMAND) != 2)
			die("read the PCI command register");
		close(config);
	}
	command |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	write_file("config", &command, 2, PCI_COMMAND);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/resource0", sysfs);
		bar = open(path, O_RDWR | O_SYNC);
		if (bar < 0)
			die(path);
	}
	regs = mmap(NULL, EDU_BAR0_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 0);
	if (regs == MAP_FAILED)
		die("mmap resource0");
	if (*(volatile uint32_t *)(regs + EDU_REG_ID) != EDU_ID) {
		fprintf(stderr, "%s is not an edu device\n", address);
		return 1;
	}

	/* 2. A block the device reaches (ERANGE otherwise: place CMA lower with cma=). */
	fd = open_cmamap();
	if (ioctl(fd, CMAMAP_IOC_ALLOC, &alloc) < 0)
		die("CMAMAP_IOC_ALLOC for the device");
	block = mmap(NULL, alloc.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, alloc.offset);
	if (block == MAP_FAILED)
		die("mmap");
	for (i = 0; i < PAGE; i++)
		block[i] = (uint8_t)(i * 7 + 1);

	/* 3. The bus address the device must use. */
	map.id = alloc.id;
	map.device.dma_bits = bits;
	if (ioctl(fd, CMAMAP_IOC_DMA_MAP, &map) < 0)
		die("CMAMAP_IOC_DMA_MAP");
	info.id = alloc.id;
	if (ioctl(fd, CMAMAP_IOC_INFO, &info) < 0)
		die("CMAMAP_IOC_INFO");
	printf("block %u: physical 0x%llx, bus address for %s 0x%llx (%s)\n", alloc.id,
	       (unsigned long long)info.phys_addr, address, (unsigned long long)map.dma_addr,
	       map.dma_addr == info.phys_addr ? "no IOMMU: the same" : "an IOVA");

	/* 4. Page 0 to the device, the device's buffer to page 1, with the syncs around. */
	sync_block(fd, alloc.id, CMAMAP_SYNC_FOR_DEVICE, 0, CMAMAP_DMA_TO_DEVICE);
	edu_transfer(regs, map.dma_addr, EDU_BUFFER, 0);
	edu_transfer(regs, EDU_BUFFER, map.dma_addr + PAGE, EDU_CMD_TO_RAM);
	sync_block(fd, alloc.id, CMAMAP_SYNC_FOR_CPU, PAGE, CMAMAP_DMA_FROM_DEVICE);
	if (memcmp(block, block + PAGE, PAGE) != 0) {
		fprintf(stderr, "page 1 does not hold what edu read from page 0\n");
		return 1;
	}
	printf("edu copied page 0 to page 1 by DMA\n");

	unmap.handle = map.handle;
	if (ioctl(fd, CMAMAP_IOC_DMA_UNMAP, &unmap) < 0)
		die("CMAMAP_IOC_DMA_UNMAP");
	munmap(block, alloc.size);
	munmap((void *)regs, EDU_BAR0_LEN);
	close(bar);
	close(fd);
	printf("edu-dma: ok\n");
	return 0;
}
