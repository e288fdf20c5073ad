/* crc32c.h - CRC-32C (Castagnoli), the archive's per-row checksum.
 *
 * The polynomial of iSCSI, ext4 and Btrfs, chosen because x86-64 CPUs compute it in hardware
 * (SSE4.2's crc32 instruction, 8 bytes a cycle or so): checking every row a stage reads costs
 * less than reading it. Elsewhere a table-driven loop gives the same values. */
#ifndef CH_CRC32C_H
#define CH_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes, continuing from crc (0 to start): ch_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t ch_crc32c(uint32_t crc, const void *p, size_t n);
/* The same without the hardware instruction (tests compare the two). */
uint32_t ch_crc32c_portable(uint32_t crc, const void *p, size_t n);

#endif
