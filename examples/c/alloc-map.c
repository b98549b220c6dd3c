// SPDX-License-Identifier: GPL-2.0
/*
 * Allocate a physically contiguous block, map it, write and read it back, describe it, and
 * free it.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "common.h"

int main(void)
{
	int fd = open_cmamap();
	struct cmamap_alloc alloc = { .size = 4 << 20, .strategy = CMAMAP_STRATEGY_PAGE };
	struct cmamap_info info = { 0 };
	struct cmamap_free free_args = { 0 };
	uint32_t *words;
	size_t i, count;

	if (ioctl(fd, CMAMAP_IOC_ALLOC, &alloc) < 0)
		die("CMAMAP_IOC_ALLOC");
	printf("allocated block %u: %llu bytes at mmap offset 0x%llx\n", alloc.id,
	       (unsigned long long)alloc.size, (unsigned long long)alloc.offset);

	/* Only MAP_SHARED works: the memory is the block itself, never a private copy. */
	words = mmap(NULL, alloc.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, alloc.offset);
	if (words == MAP_FAILED)
		die("mmap");
	count = alloc.size / sizeof(*words);
	for (i = 0; i < count; i++) {
		if (words[i] != 0) {
			fprintf(stderr, "word %zu is 0x%x: blocks come zeroed\n", i, words[i]);
			return 1;
		}
		words[i] = (uint32_t)i * 2654435761u;
	}
	for (i = 0; i < count; i++) {
		if (words[i] != (uint32_t)i * 2654435761u) {
			fprintf(stderr, "word %zu reads back 0x%x\n", i, words[i]);
			return 1;
		}
	}
	printf("wrote and verified %zu words\n", count);

	info.id = alloc.id;
	if (ioctl(fd, CMAMAP_IOC_INFO, &info) < 0)
		die("CMAMAP_IOC_INFO");
	/* The physical address is 0 unless the caller has CAP_SYS_ADMIN. */
	printf("block %u: physical address 0x%llx, mapped by %u VMA(s)\n", info.id,
	       (unsigned long long)info.phys_addr, info.map_count);

	if (munmap(words, alloc.size) < 0)
		die("munmap");
	free_args.id = alloc.id;
	if (ioctl(fd, CMAMAP_IOC_FREE, &free_args) < 0)
		die("CMAMAP_IOC_FREE");
	close(fd);
	printf("alloc-map: ok\n");
	return 0;
}
