/* hypervisor/rawdisk.c -- a raw disk image on the host: sector n lives at
 * byte 512 n of the file, read and written by sector with pread/pwrite, so
 * an image is never loaded whole (the "backed by a real image file"). */
#include "hypervisor/blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct rawdisk {
    blockdev dev;
    int fd;
} rawdisk;

static int range_ok(blockdev *d, uint32_t lba, uint32_t count) {
    if (count == 0 || lba >= d->sectors || count > d->sectors - lba) {
        snprintf(d->error, sizeof d->error, "sectors %u-%u are outside the disk (%u sectors)", lba,
                 lba + count - 1, d->sectors);
        return 0;
    }
    return 1;
}

/* pread/pwrite the whole range, retrying short transfers and EINTR. */
static int transfer(rawdisk *r, int write, uint32_t lba, uint32_t count, void *buf) {
    size_t n = (size_t)count * BLOCKDEV_SECTOR, done = 0;
    off_t off = (off_t)lba * BLOCKDEV_SECTOR;
    while (done < n) {
        ssize_t k = write ? pwrite(r->fd, (const char *)buf + done, n - done, off + (off_t)done)
                          : pread(r->fd, (char *)buf + done, n - done, off + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            snprintf(r->dev.error, sizeof r->dev.error, "host %s error at sector %u: %s",
                     write ? "write" : "read", lba + (uint32_t)(done / BLOCKDEV_SECTOR), strerror(errno));
            return -1;
        }
        if (k == 0) { /* the file shrank under us */
            snprintf(r->dev.error, sizeof r->dev.error, "image truncated at sector %u",
                     lba + (uint32_t)(done / BLOCKDEV_SECTOR));
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

static int raw_read(blockdev *d, uint32_t lba, uint32_t count, void *buf) {
    if (!range_ok(d, lba, count)) return -1;
    return transfer((rawdisk *)d, 0, lba, count, buf);
}

static int raw_write(blockdev *d, uint32_t lba, uint32_t count, const void *buf) {
    if (d->readonly) {
        snprintf(d->error, sizeof d->error, "the disk is read-only");
        return -1;
    }
    if (!range_ok(d, lba, count)) return -1;
    return transfer((rawdisk *)d, 1, lba, count, (void *)buf);
}

static void raw_close(blockdev *d) {
    rawdisk *r = (rawdisk *)d;
    close(r->fd);
    free(r);
}

blockdev *blockdev_open_raw(const char *path, int writable, char *err, size_t errlen) {
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0 || st.st_size % BLOCKDEV_SECTOR || st.st_size / BLOCKDEV_SECTOR > UINT32_MAX) {
        snprintf(err, errlen, "'%s' is %lld bytes: a disk image is a whole number of %u-byte sectors",
                 path, (long long)st.st_size, BLOCKDEV_SECTOR);
        close(fd);
        return NULL;
    }
    rawdisk *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    r->fd = fd;
    r->dev.sectors = (uint32_t)(st.st_size / BLOCKDEV_SECTOR);
    r->dev.readonly = !writable;
    r->dev.read = raw_read;
    r->dev.write = raw_write;
    r->dev.close = raw_close;
    return &r->dev;
}

int blockdev_create_file(const char *path, int (*fill)(void *ud, int fd), void *ud, char *err,
                         size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        snprintf(err, errlen, "'%s' exists already", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    int ok = fill(ud, fd) == 0 && fsync(fd) == 0;
    ok &= close(fd) == 0;
    /* link() fails if path appeared meanwhile: never replace a file */
    if (!ok || link(tmp, path) != 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    unlink(tmp);
    return 0;
}

static int fill_zeros(void *ud, int fd) { /* a sparse file of zeroed sectors */
    return ftruncate(fd, (off_t)*(const uint32_t *)ud * BLOCKDEV_SECTOR);
}

int blockdev_create_raw(const char *path, uint32_t sectors, char *err, size_t errlen) {
    if (sectors == 0) {
        snprintf(err, errlen, "a disk needs at least one sector");
        return -1;
    }
    return blockdev_create_file(path, fill_zeros, &sectors, err, errlen);
}
