/* hypervisor/blockdev.h -- what a disk controller reads and writes: a block
 * device of 512-byte sectors.
 *
 * Two kinds implement it: a raw image file on the host, read and written by
 * sector with pread/pwrite and never loaded whole (hypervisor/rawdisk.c), and a
 * copy-on-write overlay over a read-only base image (hypervisor/cowdisk.c,
 * qcow2-style).  The controller (hypervisor/disk.c: the bare machine's, and
 * the hypervisor's device model for VMs) only ever sees this interface, so
 * either backs either. */
#ifndef VLAB_HYPERVISOR_BLOCKDEV_H
#define VLAB_HYPERVISOR_BLOCKDEV_H

#include <stddef.h>
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
    /* Optional (NULL: none): one line about what the device did, for the
     * run's summary (a copy-on-write overlay's clusters and copies). */
    void (*describe)(blockdev *d, char *buf, size_t len);
    char error[160];
};

/* A raw image file: sector n at byte offset 512 n, read and written with
 * pread/pwrite (hypervisor/rawdisk.c).  The size is taken from the file; a
 * file whose size is not whole sectors is refused (truncated).  NULL on
 * failure with a message in err. */
blockdev *blockdev_open_raw(const char *path, int writable, char *err, size_t errlen);
/* Create a raw image of `sectors` zeroed sectors (sparse), whole or not at
 * all: written under a temporary name and renamed into place.  Fails if
 * path exists.  0, or -1 with a message. */
int blockdev_create_raw(const char *path, uint32_t sectors, char *err, size_t errlen);

/* Create the file `path` whole or not at all: fill(ud, fd) writes it under
 * a temporary name in the same folder (0 on success), then it is synced and
 * linked into place; an existing file is never replaced.  0, or -1 with a
 * message in err.  (Raw images and copy-on-write overlays are made so.) */
int blockdev_create_file(const char *path, int (*fill)(void *ud, int fd), void *ud, char *err,
                         size_t errlen);

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
