/* hypervisor/cowdisk.c -- a copy-on-write overlay over a read-only base
 * block device, in the manner of qcow2 (ground-truth "Disk COW (qcow2-style
 * overlays)": unallocated clusters are read from the backing image; the first
 * write allocates a cluster, copies the old contents and writes).
 *
 * The file: one header sector, a flat map of 8-byte entries (guest cluster
 * -> overlay cluster), then the data clusters, appended in the order they
 * are first written.  qcow2 has a two-level map (L1/L2) to reach large
 * disks; one level is enough for the lab's disks and keeps every map update
 * a single sector write.  Byte layout and the crash argument: docs/disks.md.
 *
 * Write order (qcow2 does the same: data before the L2 entry that points at
 * it): a new data cluster is written whole at the end of the data area,
 * then a barrier, then the one map sector holding its entry.  The one
 * assumption is that a single aligned 512-byte write is atomic (a disk's
 * sector write).  Nothing a reader trusts -- the header, a map entry --
 * ever points at data that is not yet written. */
#include "hypervisor/cowdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR BLOCKDEV_SECTOR
#define MAGIC "vlab-cow"                /* 8 bytes, no terminator on disk */
#define ENTRIES_PER_SECTOR (SECTOR / 8) /* map entries per map sector */
#define HDR_CRC_AT 508u

/* header flags: a multi-step operation under way (docs/disks.md) */
#define F_COMMITTING 1u
#define F_DISCARDING 2u
#define F_KNOWN (F_COMMITTING | F_DISCARDING)

typedef struct cowdisk {
    blockdev dev;
    blockdev *base;
    int fd;
    uint32_t cs;          /* sectors per cluster */
    uint32_t clusters;    /* guest clusters = map entries */
    uint32_t map_sectors; /* map sectors, from sector 1 */
    uint32_t first_data;  /* first data cluster (in clusters from the file's start) */
    uint32_t next_free;   /* the next data cluster to allocate */
    uint32_t *map;        /* guest cluster -> data cluster, 0 = in the base */
    uint8_t *cbuf;        /* one cluster */
    uint32_t flags;       /* header flags as on disk */
    int barriers;
    int broken; /* metadata may differ from memory: writes refused until reopened */
    int dead;   /* a simulated crash happened: everything refused */
    uint64_t crash_at;
    cowdisk_stats st;
} cowdisk;

static void cowdisk_close(blockdev *d);

/* ---- little helpers ---------------------------------------------------- */

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    /* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit by bit */
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* the check word of a map entry: CRC-32 of (guest cluster, data cluster) */
static uint32_t entry_check(uint32_t guest, uint32_t data) {
    uint8_t b[8];
    put32(b, guest);
    put32(b + 4, data);
    return crc32_update(0, b, sizeof b);
}

/* geometry derived from the base size and cluster size */
typedef struct geometry {
    uint32_t cs, clusters, map_sectors, first_data;
} geometry;

static int geometry_of(uint32_t base_sectors, uint32_t cs, geometry *g, char *err, size_t errlen) {
    if (cs == 0 || cs > COWDISK_MAX_CLUSTER || (cs & (cs - 1)) != 0) {
        snprintf(err, errlen, "a cluster is a power of two of 1 to %u sectors, not %u",
                 COWDISK_MAX_CLUSTER, cs);
        return -1;
    }
    if (base_sectors == 0) {
        snprintf(err, errlen, "the base has no sectors");
        return -1;
    }
    uint64_t clusters = ((uint64_t)base_sectors + cs - 1) / cs;
    if (clusters > COWDISK_MAX_CLUSTERS) {
        snprintf(err, errlen,
                 "a base of %u sectors needs %llu clusters of %u sectors; an overlay maps at most "
                 "%u (choose larger clusters)",
                 base_sectors, (unsigned long long)clusters, cs, COWDISK_MAX_CLUSTERS);
        return -1;
    }
    g->cs = cs;
    g->clusters = (uint32_t)clusters;
    g->map_sectors = (uint32_t)((clusters + ENTRIES_PER_SECTOR - 1) / ENTRIES_PER_SECTOR);
    g->first_data = (1 + g->map_sectors + cs - 1) / cs;
    return 0;
}

static void header_encode(uint8_t *h, uint32_t base_sectors, const geometry *g, uint32_t flags) {
    memset(h, 0, SECTOR);
    memcpy(h, MAGIC, 8);
    put32(h + 8, COWDISK_VERSION);
    put32(h + 12, 1); /* header sectors */
    put32(h + 16, g->cs);
    put32(h + 20, base_sectors);
    put32(h + 24, g->clusters);
    put32(h + 28, 1); /* first map sector */
    put32(h + 32, g->map_sectors);
    put32(h + 36, g->first_data);
    put32(h + 40, flags);
    put32(h + HDR_CRC_AT, crc32_update(0, h, HDR_CRC_AT));
}

static int crashed(cowdisk *c) {
    if (!c->dead) return 0;
    snprintf(c->dev.error, sizeof c->dev.error,
             "simulated crash: the overlay is gone until reopened");
    return 1;
}

/* The crash hook: the write that is due is torn. */
static int crash_now(cowdisk *c) {
    if (c->crash_at == 0) return 0;
    if (--c->crash_at) return 0;
    c->dead = 1;
    return 1;
}

/* ---- host I/O: every write goes through here (the crash model) --------- */

static int file_write(cowdisk *c, const void *buf, uint32_t sectors, uint64_t at_sector) {
    if (crashed(c)) return -1;
    c->st.host_writes++;
    size_t n = (size_t)sectors * SECTOR, done = 0;
    if (crash_now(c)) n = (size_t)(sectors / 2) * SECTOR; /* torn at a sector boundary */
    off_t off = (off_t)(at_sector * SECTOR);
    while (done < n) {
        ssize_t k = pwrite(c->fd, (const char *)buf + done, n - done, off + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            snprintf(c->dev.error, sizeof c->dev.error,
                     "overlay: host write error at byte %lld: %s", (long long)(off + (off_t)done),
                     k < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        done += (size_t)k;
    }
    return crashed(c) ? -1 : 0;
}

static int file_truncate(cowdisk *c, uint64_t sectors) {
    if (crashed(c)) return -1;
    c->st.host_writes++;
    if (crash_now(c)) { /* the truncate did not happen */
        crashed(c);
        return -1;
    }
    if (ftruncate(c->fd, (off_t)(sectors * SECTOR)) != 0) {
        snprintf(c->dev.error, sizeof c->dev.error, "overlay: cannot truncate: %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int base_write(cowdisk *c, uint32_t lba, uint32_t count, const void *buf) {
    if (crashed(c)) return -1;
    c->st.host_writes++;
    if (crash_now(c)) {
        if (count / 2) blockdev_write(c->base, lba, count / 2, buf);
        crashed(c);
        return -1;
    }
    if (blockdev_write(c->base, lba, count, buf) != 0) {
        snprintf(c->dev.error, sizeof c->dev.error, "base: %.150s", c->base->error);
        return -1;
    }
    return 0;
}

static int file_read(cowdisk *c, void *buf, uint32_t sectors, uint64_t at_sector) {
    size_t n = (size_t)sectors * SECTOR, done = 0;
    off_t off = (off_t)(at_sector * SECTOR);
    while (done < n) {
        ssize_t k = pread(c->fd, (char *)buf + done, n - done, off + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            snprintf(c->dev.error, sizeof c->dev.error, "overlay: host read error at byte %lld: %s",
                     (long long)(off + (off_t)done), strerror(errno));
            return -1;
        }
        if (k == 0) {
            snprintf(c->dev.error, sizeof c->dev.error,
                     "overlay truncated: byte %lld of a data cluster is past the end of the file",
                     (long long)(off + (off_t)done));
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

static int base_read(cowdisk *c, uint32_t lba, uint32_t count, void *buf) {
    if (blockdev_read(c->base, lba, count, buf) != 0) {
        snprintf(c->dev.error, sizeof c->dev.error, "base: %.150s", c->base->error);
        return -1;
    }
    return 0;
}

static int barrier(cowdisk *c) {
    if (crashed(c)) return -1;
    if (!c->barriers) return 0;
    c->st.barriers++;
    if (fdatasync(c->fd) != 0) {
        snprintf(c->dev.error, sizeof c->dev.error, "overlay: fdatasync: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- metadata writes ----------------------------------------------------- */

static int write_header(cowdisk *c, uint32_t flags) {
    geometry g = {c->cs, c->clusters, c->map_sectors, c->first_data};
    uint8_t h[SECTOR];
    header_encode(h, c->dev.sectors, &g, flags);
    if (file_write(c, h, 1, 0) != 0) return -1;
    c->flags = flags;
    return 0;
}

/* Write map sector s from the in-memory map, with `guest`'s entry taken to
 * be `data` (the one entry this write changes). */
static int write_map_sector(cowdisk *c, uint32_t s, uint32_t guest, uint32_t data) {
    uint8_t sec[SECTOR];
    memset(sec, 0, sizeof sec);
    for (uint32_t k = 0; k < ENTRIES_PER_SECTOR; k++) {
        uint32_t g = s * ENTRIES_PER_SECTOR + k;
        if (g >= c->clusters) break;
        uint32_t v = g == guest ? data : c->map[g];
        if (v) {
            put32(sec + 8 * k, v);
            put32(sec + 8 * k + 4, entry_check(g, v));
        }
    }
    return file_write(c, sec, 1, 1 + (uint64_t)s);
}

/* Zero every map sector that holds an entry (each one sector write), in
 * order: a crash leaves a prefix of them zeroed. */
static int zero_map(cowdisk *c, const uint32_t *map) {
    uint8_t zero[SECTOR];
    memset(zero, 0, sizeof zero);
    for (uint32_t s = 0; s < c->map_sectors; s++) {
        int any = 0;
        for (uint32_t k = 0; k < ENTRIES_PER_SECTOR && !any; k++) {
            uint32_t g = s * ENTRIES_PER_SECTOR + k;
            any = g < c->clusters && map[g] != 0;
        }
        if (any && file_write(c, zero, 1, 1 + (uint64_t)s) != 0) return -1;
    }
    return 0;
}

static void forget_clusters(cowdisk *c) {
    memset(c->map, 0, (size_t)c->clusters * sizeof *c->map);
    c->st.clusters_allocated = 0;
    c->next_free = c->first_data;
}

/* Steps 2-4 of a discard whose decision (the DISCARDING flag) is on disk;
 * `old` is the map as the file holds it. */
static int finish_discard(cowdisk *c, const uint32_t *old) {
    if (zero_map(c, old) != 0 || barrier(c) != 0) return -1;
    if (file_truncate(c, (uint64_t)c->first_data * c->cs) != 0) return -1;
    if (write_header(c, c->flags & ~F_DISCARDING) != 0 || barrier(c) != 0) return -1;
    return 0;
}

/* ---- the block device ---------------------------------------------------- */

static int range_ok(blockdev *d, uint32_t lba, uint32_t count) {
    if (count == 0 || lba >= d->sectors || count > d->sectors - lba) {
        snprintf(d->error, sizeof d->error, "sectors %u-%u are outside the disk (%u sectors)", lba,
                 lba + count - 1, d->sectors);
        return 0;
    }
    return 1;
}

static int cow_read(blockdev *d, uint32_t lba, uint32_t count, void *buf) {
    cowdisk *c = (cowdisk *)d;
    if (crashed(c) || !range_ok(d, lba, count)) return -1;
    uint8_t *out = buf;
    while (count) {
        /* one run: clusters all in the base, or contiguous in the overlay */
        uint32_t ci = lba / c->cs, off = lba % c->cs;
        uint32_t data = c->map[ci];
        uint32_t n = c->cs - off < count ? c->cs - off : count;
        while (n < count) {
            uint32_t next = c->map[ci + 1];
            if (data ? next != c->map[ci] + 1 : next != 0) break;
            ci++;
            n += c->cs < count - n ? c->cs : count - n;
        }
        if (data) {
            if (file_read(c, out, n, (uint64_t)data * c->cs + off) != 0) return -1;
            c->st.sectors_read_overlay += n;
        } else {
            if (base_read(c, lba, n, out) != 0) return -1;
            c->st.sectors_read_base += n;
        }
        lba += n;
        count -= n;
        out += (size_t)n * SECTOR;
    }
    return 0;
}

/* The data cluster for the next allocation: the one after the highest in
 * use (after a crash, that reuses a torn, unreferenced cluster).  If a map
 * with holes pushed that past the data area, the lowest free one. */
static int free_cluster(cowdisk *c, uint32_t *out) {
    if (c->next_free - c->first_data < c->clusters) {
        *out = c->next_free;
        return 0;
    }
    uint8_t *used = calloc((size_t)c->clusters / 8 + 1, 1);
    if (!used) {
        snprintf(c->dev.error, sizeof c->dev.error, "out of memory");
        return -1;
    }
    for (uint32_t g = 0; g < c->clusters; g++)
        if (c->map[g])
            used[(c->map[g] - c->first_data) / 8] |=
                (uint8_t)(1u << ((c->map[g] - c->first_data) % 8));
    uint32_t u = 0;
    while (u < c->clusters && (used[u / 8] & (1u << (u % 8))))
        u++;
    free(used);
    *out = c->first_data + u; /* u < clusters: the cluster being allocated is not in use */
    return 0;
}

/* First write to guest cluster ci: build the whole cluster (old contents
 * from the base around the n new sectors at off), write it to a fresh data
 * cluster, barrier, then point the map entry at it. */
static int allocate(cowdisk *c, uint32_t ci, uint32_t off, uint32_t n, const uint8_t *src) {
    uint32_t first = ci * c->cs;
    uint32_t valid = c->dev.sectors - first < c->cs ? c->dev.sectors - first : c->cs;
    uint32_t copied = 0;
    memset(c->cbuf, 0, (size_t)c->cs * SECTOR);
    if (off > 0) {
        if (base_read(c, first, off, c->cbuf) != 0) return -1;
        copied += off;
    }
    if (off + n < valid) {
        if (base_read(c, first + off + n, valid - off - n, c->cbuf + (size_t)(off + n) * SECTOR) !=
            0)
            return -1;
        copied += valid - off - n;
    }
    memcpy(c->cbuf + (size_t)off * SECTOR, src, (size_t)n * SECTOR);
    uint32_t data;
    if (free_cluster(c, &data) != 0) return -1;
    if (file_write(c, c->cbuf, c->cs, (uint64_t)data * c->cs) != 0) return -1;
    if (barrier(c) != 0) return -1;
    if (write_map_sector(c, ci / ENTRIES_PER_SECTOR, ci, data) != 0) {
        c->broken = 1; /* the entry may or may not be on disk now */
        return -1;
    }
    c->map[ci] = data;
    if (data >= c->next_free) c->next_free = data + 1;
    c->st.clusters_allocated++;
    c->st.allocations++;
    if (copied) {
        c->st.copies++;
        c->st.bytes_copied += (uint64_t)copied * SECTOR;
    }
    return 0;
}

static int refuse_writes(cowdisk *c) {
    if (crashed(c)) return 1;
    if (c->dev.readonly) {
        snprintf(c->dev.error, sizeof c->dev.error, "the overlay is read-only");
        return 1;
    }
    if (c->broken) {
        snprintf(c->dev.error, sizeof c->dev.error,
                 "the overlay's metadata could not be written: reopen it before writing");
        return 1;
    }
    return 0;
}

static int cow_write(blockdev *d, uint32_t lba, uint32_t count, const void *buf) {
    cowdisk *c = (cowdisk *)d;
    if (refuse_writes(c) || !range_ok(d, lba, count)) return -1;
    const uint8_t *src = buf;
    while (count) {
        uint32_t ci = lba / c->cs, off = lba % c->cs;
        uint32_t n = c->cs - off < count ? c->cs - off : count;
        if (c->map[ci]) {
            if (file_write(c, src, n, (uint64_t)c->map[ci] * c->cs + off) != 0) return -1;
        } else if (allocate(c, ci, off, n, src) != 0) {
            return -1;
        }
        c->st.sectors_written += n;
        lba += n;
        count -= n;
        src += (size_t)n * SECTOR;
    }
    return 0;
}

static void cowdisk_close(blockdev *d) {
    cowdisk *c = (cowdisk *)d;
    if (c->fd >= 0) close(c->fd); /* drops the lock too */
    free(c->map);
    free(c->cbuf);
    free(c);
}

/* ---- create and open ----------------------------------------------------- */

/* A new overlay file: the header, then a sparse, all-zero map up to the data area. */
struct new_overlay {
    uint32_t sectors;
    const geometry *g;
};

static int write_new_overlay(void *ud, int fd) {
    const struct new_overlay *n = ud;
    uint8_t h[SECTOR];
    header_encode(h, n->sectors, n->g, 0);
    if (pwrite(fd, h, SECTOR, 0) != (ssize_t)SECTOR) return -1;
    return ftruncate(fd, (off_t)n->g->first_data * n->g->cs * SECTOR);
}

int cowdisk_create(const char *overlay_path, blockdev *base, uint32_t cluster_sectors, char *err,
                   size_t errlen) {
    if (!base) {
        snprintf(err, errlen, "no base disk");
        return -1;
    }
    geometry g;
    if (geometry_of(base->sectors, cluster_sectors ? cluster_sectors : COWDISK_DEFAULT_CLUSTER, &g,
                    err, errlen) != 0)
        return -1;
    struct new_overlay n = {base->sectors, &g};
    return blockdev_create_file(overlay_path, write_new_overlay, &n, err, errlen);
}

/* Check the header against the base; fills g and flags. */
static int check_header(const uint8_t *h, const char *path, const blockdev *base, geometry *g,
                        uint32_t *flags, char *err, size_t errlen) {
    if (memcmp(h, MAGIC, 8) != 0) {
        snprintf(err, errlen, "'%s' is not a vlab overlay (bad magic)", path);
        return -1;
    }
    if (get32(h + HDR_CRC_AT) != crc32_update(0, h, HDR_CRC_AT)) {
        snprintf(err, errlen, "'%s' is corrupt: header checksum mismatch", path);
        return -1;
    }
    uint32_t version = get32(h + 8);
    if (version != COWDISK_VERSION) {
        snprintf(err, errlen, "'%s' is an overlay of format version %u; this vlab reads version %u",
                 path, version, COWDISK_VERSION);
        return -1;
    }
    uint32_t base_sectors = get32(h + 20);
    if (base_sectors != base->sectors) {
        snprintf(err, errlen, "'%s' was made for a base of %u sectors; this base has %u", path,
                 base_sectors, base->sectors);
        return -1;
    }
    char why[200];
    if (geometry_of(base_sectors, get32(h + 16), g, why, sizeof why) != 0) {
        snprintf(err, errlen, "'%s' is corrupt: %s", path, why);
        return -1;
    }
    if (get32(h + 12) != 1 || get32(h + 24) != g->clusters || get32(h + 28) != 1 ||
        get32(h + 32) != g->map_sectors || get32(h + 36) != g->first_data) {
        snprintf(err, errlen, "'%s' is corrupt: its layout does not follow from its geometry",
                 path);
        return -1;
    }
    *flags = get32(h + 40);
    if ((*flags & ~F_KNOWN) || *flags == F_KNOWN) {
        snprintf(err, errlen, "'%s' is corrupt: unknown header flags 0x%x", path, *flags);
        return -1;
    }
    for (uint32_t i = 44; i < HDR_CRC_AT; i++)
        if (h[i]) {
            snprintf(err, errlen, "'%s' is corrupt: reserved header byte %u is not zero", path, i);
            return -1;
        }
    return 0;
}

/* Read and check every map entry into c->map; sets next_free and the count. */
static int load_map(cowdisk *c, const char *path, uint64_t file_size, char *err, size_t errlen) {
    uint8_t *used = calloc((size_t)c->clusters / 8 + 1, 1); /* data clusters seen */
    uint8_t *chunk = malloc(64 * SECTOR);
    if (!used || !chunk) {
        free(used);
        free(chunk);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    c->next_free = c->first_data;
    for (uint32_t s = 0; s < c->map_sectors; s += 64) {
        uint32_t n = c->map_sectors - s < 64 ? c->map_sectors - s : 64;
        if (file_read(c, chunk, n, 1 + (uint64_t)s) != 0) {
            snprintf(err, errlen, "'%s': cannot read the map: %s", path, c->dev.error);
            goto out;
        }
        for (uint32_t k = 0; k < n * ENTRIES_PER_SECTOR; k++) {
            uint32_t g = s * ENTRIES_PER_SECTOR + k;
            uint32_t data = get32(chunk + 8 * k), check = get32(chunk + 8 * k + 4);
            if (data == 0 && check == 0) continue;
            if (g >= c->clusters) {
                snprintf(err, errlen, "'%s' is corrupt: an entry past the end of the map (%u)",
                         path, g);
                goto out;
            }
            if (check != entry_check(g, data)) {
                snprintf(err, errlen, "'%s' is corrupt: map entry %u fails its checksum", path, g);
                goto out;
            }
            if (data < c->first_data || data - c->first_data >= c->clusters) {
                snprintf(
                    err, errlen,
                    "'%s' is corrupt: map entry %u points at cluster %u, outside the data area",
                    path, g, data);
                goto out;
            }
            uint64_t end = ((uint64_t)data + 1) * c->cs * SECTOR;
            if (end > file_size) {
                snprintf(err, errlen,
                         "'%s' is truncated: cluster %u of the disk ends at byte %llu, the file at "
                         "%llu",
                         path, g, (unsigned long long)end, (unsigned long long)file_size);
                goto out;
            }
            uint32_t u = data - c->first_data;
            if (used[u / 8] & (1u << (u % 8))) {
                snprintf(err, errlen, "'%s' is corrupt: two map entries share data cluster %u",
                         path, data);
                goto out;
            }
            used[u / 8] |= (uint8_t)(1u << (u % 8));
            c->map[g] = data;
            c->st.clusters_allocated++;
            if (data >= c->next_free) c->next_free = data + 1;
        }
    }
    rc = 0;
out:
    free(used);
    free(chunk);
    return rc;
}

blockdev *cowdisk_open(const char *overlay_path, blockdev *base, int writable, char *err,
                       size_t errlen) {
    if (!base) {
        snprintf(err, errlen, "no base disk");
        return NULL;
    }
    int fd = open(overlay_path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s': %s", overlay_path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a regular file", overlay_path);
        close(fd);
        return NULL;
    }
    if (flock(fd, (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        snprintf(err, errlen, "'%s' is in use (%s elsewhere)", overlay_path,
                 writable ? "open" : "open for writing");
        close(fd);
        return NULL;
    }
    uint8_t h[SECTOR];
    if (st.st_size < (off_t)SECTOR || pread(fd, h, SECTOR, 0) != (ssize_t)SECTOR) {
        snprintf(err, errlen, "'%s' is truncated: %lld bytes, no whole header sector", overlay_path,
                 (long long)st.st_size);
        close(fd);
        return NULL;
    }
    geometry g;
    uint32_t flags;
    if (check_header(h, overlay_path, base, &g, &flags, err, errlen) != 0) {
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size < (1 + (uint64_t)g.map_sectors) * SECTOR) {
        snprintf(err, errlen, "'%s' is truncated: the map ends at byte %llu, the file at %lld",
                 overlay_path, (unsigned long long)(1 + (uint64_t)g.map_sectors) * SECTOR,
                 (long long)st.st_size);
        close(fd);
        return NULL;
    }
    cowdisk *c = calloc(1, sizeof *c);
    uint32_t *map = c ? calloc(g.clusters, sizeof *map) : NULL;
    uint8_t *cbuf = map ? malloc((size_t)g.cs * SECTOR) : NULL;
    if (!cbuf) {
        free(map);
        free(c);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->base = base;
    c->map = map;
    c->cbuf = cbuf;
    c->cs = g.cs;
    c->clusters = g.clusters;
    c->map_sectors = g.map_sectors;
    c->first_data = g.first_data;
    c->flags = flags;
    c->barriers = 1;
    c->dev.sectors = base->sectors;
    c->dev.readonly = !writable;
    c->dev.read = cow_read;
    c->dev.write = cow_write;
    c->dev.close = cowdisk_close;
    c->st.cluster_sectors = g.cs;
    c->st.clusters = g.clusters;
    if (load_map(c, overlay_path, (uint64_t)st.st_size, err, errlen) != 0) {
        cowdisk_close(&c->dev);
        return NULL;
    }
    if (flags & F_DISCARDING) {
        /* the discard was decided: the disk reads as its base */
        uint32_t *old = writable ? malloc((size_t)g.clusters * sizeof *old) : NULL;
        if (writable && !old) {
            snprintf(err, errlen, "out of memory");
            cowdisk_close(&c->dev);
            return NULL;
        }
        if (old) memcpy(old, c->map, (size_t)g.clusters * sizeof *old);
        forget_clusters(c);
        if (old) {
            int rc = finish_discard(c, old);
            free(old);
            if (rc != 0) {
                snprintf(err, errlen, "'%s': cannot finish an interrupted discard: %s",
                         overlay_path, c->dev.error);
                cowdisk_close(&c->dev);
                return NULL;
            }
        }
    }
    c->dev.error[0] = 0;
    return &c->dev;
}

/* ---- snapshots: commit and discard ------------------------------------- */

int cowdisk_is_overlay(const blockdev *d) {
    return d && d->close == cowdisk_close;
}

static cowdisk *as_overlay(blockdev *d) {
    if (!cowdisk_is_overlay(d)) {
        if (d) snprintf(d->error, sizeof d->error, "not a copy-on-write overlay");
        return NULL;
    }
    return (cowdisk *)d;
}

int cowdisk_commit(blockdev *d) {
    cowdisk *c = as_overlay(d);
    if (!c || refuse_writes(c)) return -1;
    if (c->base->readonly) {
        snprintf(d->error, sizeof d->error, "the base is read-only: open it writable to commit");
        return -1;
    }
    /* 1. record that the base is being changed (one header sector) */
    if (!(c->flags & F_COMMITTING)) {
        if (write_header(c, c->flags | F_COMMITTING) != 0 || barrier(c) != 0) {
            c->broken = 1;
            return -1;
        }
    }
    /* 2. copy every held cluster into the base; the map still points at
     * them, so the disk reads the same whatever the base holds meanwhile */
    uint64_t bytes = 0;
    for (uint32_t ci = 0; ci < c->clusters; ci++) {
        if (!c->map[ci]) continue;
        uint32_t first = ci * c->cs;
        uint32_t valid = d->sectors - first < c->cs ? d->sectors - first : c->cs;
        if (file_read(c, c->cbuf, valid, (uint64_t)c->map[ci] * c->cs) != 0) return -1;
        if (base_write(c, first, valid, c->cbuf) != 0) return -1;
        bytes += (uint64_t)valid * SECTOR;
    }
    /* 3. empty the map (each entry now reads the same from the base), free
     * the data area, and clear the flag */
    if (zero_map(c, c->map) != 0 || barrier(c) != 0 ||
        file_truncate(c, (uint64_t)c->first_data * c->cs) != 0 ||
        write_header(c, c->flags & ~F_COMMITTING) != 0 || barrier(c) != 0) {
        c->broken = 1;
        return -1;
    }
    forget_clusters(c);
    c->st.commits++;
    c->st.bytes_committed += bytes;
    return 0;
}

int cowdisk_discard(blockdev *d) {
    cowdisk *c = as_overlay(d);
    if (!c || refuse_writes(c)) return -1;
    if (c->flags & F_COMMITTING) {
        snprintf(d->error, sizeof d->error,
                 "an interrupted commit has changed the base: finish it with commit first");
        return -1;
    }
    uint32_t *old = malloc((size_t)c->clusters * sizeof *old);
    if (!old) {
        snprintf(d->error, sizeof d->error, "out of memory");
        return -1;
    }
    memcpy(old, c->map, (size_t)c->clusters * sizeof *old);
    /* 1. the decision: one header sector; from here the disk is its base */
    if (write_header(c, c->flags | F_DISCARDING) != 0 || barrier(c) != 0) {
        c->broken = 1;
        free(old);
        return -1;
    }
    forget_clusters(c);
    /* 2. tidy up: zero the map, free the data area, clear the flag */
    int rc = finish_discard(c, old);
    free(old);
    if (rc != 0) {
        c->broken = 1;
        return -1;
    }
    c->st.discards++;
    return 0;
}

int cowdisk_get_stats(const blockdev *d, cowdisk_stats *out) {
    if (!cowdisk_is_overlay(d)) return -1;
    const cowdisk *c = (const cowdisk *)d;
    *out = c->st;
    out->commit_pending = (c->flags & F_COMMITTING) != 0;
    return 0;
}

void cowdisk_set_barriers(blockdev *d, int on) {
    if (cowdisk_is_overlay(d)) ((cowdisk *)d)->barriers = on != 0;
}

void cowdisk_test_crash_after(blockdev *d, uint64_t n) {
    if (cowdisk_is_overlay(d)) ((cowdisk *)d)->crash_at = n;
}
