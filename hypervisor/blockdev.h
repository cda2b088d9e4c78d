/* hypervisor/blockdev.h -- what a disk controller reads and writes: a block
 * device of 512-byte sectors.
 *
 * Two kinds implement it: a raw image file on the host, read and written by
 * sector with pread/pwrite and never loaded whole (hypervisor/disk.c), and a
 * copy-on-write overlay over a read-only base image (hypervisor/cowdisk.c,
 * qcow2-style).  The controller (bare machine) and the hypervisor's device
 * model (VMs) only ever see this interface, so either backs either. */
#ifndef VLAB_HYPERVISOR_BLOCKDEV_H
#define VLAB_HYPERVISOR_BLOCKDEV_H

#include <stdint.h>

#define BLOCKDEV_SECTOR 512u

typedef struct blockdev blockdev;
struct blockdev {
    uint32_t sectors; /* size in sectors */
    int readonly;     /* writes fail */
    /* Transfer count sectors from lba.  0, or -1 with error[] saying why
     * (out of range, a host I/O error, a corrupt image).  A failed write
     * leaves every sector it did not report written as it was. */
    int (*read)(blockdev *d, uint32_t lba, uint32_t count, void *buf);
    int (*write)(blockdev *d, uint32_t lba, uint32_t count, const void *buf);
    void (*close)(blockdev *d); /* frees d */
    char error[160];
};

static inline int blockdev_read(blockdev *d, uint32_t lba, uint32_t count, void *buf) {
    return d->read(d, lba, count, buf);
}
static inline int blockdev_write(blockdev *d, uint32_t lba, uint32_t count, const void *buf) {
    return d->write(d, lba, count, buf);
}
static inline void blockdev_close(blockdev *d) {
    if (d) d->close(d);
}

#endif
