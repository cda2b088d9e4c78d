/* tests/check_cowdisk.c -- the copy-on-write overlay (hypervisor/cowdisk.c):
 * reads fall through to the base, the first write to a cluster copies the
 * old contents, random writes agree with a model in memory, overlays chain,
 * commit and discard, corrupt and truncated overlays are refused, and for
 * every crash point of a scripted sequence of writes, of a commit and of a
 * discard the reopened overlay reads old-or-new contents and the base is
 * untouched (ground-truth "Disk COW (qcow2-style overlays)"). */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hypervisor/blockdev.h"
#include "hypervisor/cowdisk.h"

Suite *suite_cowdisk(void);

#define S BLOCKDEV_SECTOR

static char dir[64];
static char err[256];

static void setup(void) {
    strcpy(dir, "/tmp/vlab-cowdisk-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(dp);
    rmdir(dir);
}

static const char *path(const char *name) {
    static char p[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

/* deterministic contents: sector lba of version `tag` */
static void pattern(uint8_t *buf, uint32_t lba, uint32_t tag) {
    uint32_t x = lba * 2654435761u ^ (tag + 1) * 40503u;
    for (uint32_t i = 0; i < S; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    memcpy(buf, &lba, 4);
    memcpy(buf + 4, &tag, 4);
}

/* a raw base of `sectors` sectors, sector n = pattern(n, tag); returns its
 * contents in *bytes if asked */
static void make_base(const char *p, uint32_t sectors, uint32_t tag, uint8_t **bytes) {
    ck_assert_msg(blockdev_create_raw(p, sectors, err, sizeof err) == 0, "%s", err);
    blockdev *b = blockdev_open_raw(p, 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    uint8_t *all = malloc((size_t)sectors * S);
    for (uint32_t i = 0; i < sectors; i++)
        pattern(all + (size_t)i * S, i, tag);
    ck_assert_int_eq(blockdev_write(b, 0, sectors, all), 0);
    blockdev_close(b);
    if (bytes)
        *bytes = all;
    else
        free(all);
}

static uint8_t *slurp(const char *p, size_t *len) {
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    ck_assert_int_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void spit(const char *p, const uint8_t *b, size_t len) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, b, len, 0), (ssize_t)len);
    close(fd);
}

static off_t file_size(const char *p) {
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_size;
}

static blockdev *open_raw(const char *p, int writable) {
    blockdev *b = blockdev_open_raw(p, writable, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    return b;
}

static blockdev *open_cow(const char *p, blockdev *base, int writable) {
    blockdev *d = cowdisk_open(p, base, writable, err, sizeof err);
    ck_assert_msg(d != NULL, "%s", err);
    return d;
}

static blockdev *new_cow(const char *p, blockdev *base, uint32_t cs) {
    ck_assert_msg(cowdisk_create(p, base, cs, err, sizeof err) == 0, "%s", err);
    return open_cow(p, base, 1);
}

static cowdisk_stats stats(blockdev *d) {
    cowdisk_stats st;
    ck_assert_int_eq(cowdisk_get_stats(d, &st), 0);
    return st;
}

/* the whole disk reads as `want` */
static void reads_as(blockdev *d, const uint8_t *want) {
    size_t n = (size_t)d->sectors * S;
    uint8_t *got = malloc(n);
    ck_assert_msg(blockdev_read(d, 0, d->sectors, got) == 0, "%s", d->error);
    for (uint32_t i = 0; i < d->sectors; i++)
        ck_assert_msg(memcmp(got + (size_t)i * S, want + (size_t)i * S, S) == 0,
                      "sector %u differs", i);
    free(got);
}

static void file_is(const char *p, const uint8_t *want, size_t len) {
    size_t n;
    uint8_t *b = slurp(p, &n);
    ck_assert_uint_eq(n, len);
    ck_assert_msg(memcmp(b, want, len) == 0, "'%s' changed", p);
    free(b);
}

/* write `count` sectors of version tag at lba, and the same into the model */
static int put(blockdev *d, uint8_t *model, uint32_t lba, uint32_t count, uint32_t tag) {
    uint8_t *buf = malloc((size_t)count * S);
    for (uint32_t i = 0; i < count; i++)
        pattern(buf + (size_t)i * S, lba + i, tag);
    int rc = blockdev_write(d, lba, count, buf);
    if (rc == 0 && model) memcpy(model + (size_t)lba * S, buf, (size_t)count * S);
    free(buf);
    return rc;
}

/* ---- reads, first writes, partial clusters ------------------------------ */

START_TEST(test_fall_through) {
    uint8_t *base_bytes;
    make_base(path("base"), 100, 0, &base_bytes);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 8);
    ck_assert(cowdisk_is_overlay(d));
    ck_assert(!cowdisk_is_overlay(b));
    ck_assert_uint_eq(d->sectors, 100);
    reads_as(d, base_bytes);
    cowdisk_stats st = stats(d);
    ck_assert_uint_eq(st.sectors_read_base, 100);
    ck_assert_uint_eq(st.sectors_read_overlay, 0);
    ck_assert_uint_eq(st.clusters, 13); /* 12 whole clusters and one of 4 sectors */
    ck_assert_uint_eq(st.cluster_sectors, 8);
    ck_assert_uint_eq(st.clusters_allocated, 0);
    /* header, one map sector, padded to a cluster: 4 KiB, no data */
    ck_assert_int_eq(file_size(path("ov")), 4096);
    blockdev_close(d);
    blockdev_close(b);
    free(base_bytes);
}
END_TEST

START_TEST(test_first_write_copies) {
    uint8_t *model;
    make_base(path("base"), 100, 0, &model);
    size_t blen;
    uint8_t *base_file = slurp(path("base"), &blen);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 8);

    /* one sector in the middle of cluster 1: the other 7 are copied first */
    ck_assert_int_eq(put(d, model, 10, 1, 1), 0);
    cowdisk_stats st = stats(d);
    ck_assert_uint_eq(st.allocations, 1);
    ck_assert_uint_eq(st.copies, 1);
    ck_assert_uint_eq(st.bytes_copied, 7 * S);
    ck_assert_uint_eq(st.clusters_allocated, 1);
    ck_assert_int_eq(file_size(path("ov")), 8192); /* one data cluster appended */
    reads_as(d, model);

    /* a second write to the same cluster: in place, nothing copied */
    ck_assert_int_eq(put(d, model, 11, 3, 2), 0);
    st = stats(d);
    ck_assert_uint_eq(st.allocations, 1);
    ck_assert_uint_eq(st.bytes_copied, 7 * S);

    /* a whole cluster: allocated, nothing to copy */
    ck_assert_int_eq(put(d, model, 16, 8, 3), 0);
    st = stats(d);
    ck_assert_uint_eq(st.allocations, 2);
    ck_assert_uint_eq(st.copies, 1);

    /* across a cluster boundary: the tail of cluster 3, the head of 4 */
    ck_assert_int_eq(put(d, model, 30, 5, 4), 0);
    st = stats(d);
    ck_assert_uint_eq(st.allocations, 4);
    ck_assert_uint_eq(st.copies, 3);
    ck_assert_uint_eq(st.bytes_copied, (7 + 6 + 5) * S);

    /* the last cluster has 4 sectors (96-99): 3 are copied */
    ck_assert_int_eq(put(d, model, 99, 1, 5), 0);
    st = stats(d);
    ck_assert_uint_eq(st.bytes_copied, (7 + 6 + 5 + 3) * S);
    ck_assert_uint_eq(st.clusters_allocated, 5);
    ck_assert_uint_eq(st.sectors_written, 1 + 3 + 8 + 5 + 1);
    /* a barrier between each new data cluster and its map entry; host
     * writes: a data cluster and a map sector per allocation, one in place */
    ck_assert_uint_eq(st.barriers, 5);
    ck_assert_uint_eq(st.host_writes, 5 * 2 + 1);

    uint8_t s[2 * S];
    ck_assert_int_eq(blockdev_read(d, 9, 2, s), 0); /* old sector 9, new sector 10 */
    ck_assert(memcmp(s, model + 9 * S, 2 * S) == 0);
    st = stats(d);
    reads_as(d, model);
    cowdisk_stats st2 = stats(d);
    ck_assert_uint_eq(st2.sectors_read_overlay - st.sectors_read_overlay, 4 * 8 + 4);
    ck_assert_uint_eq(st2.sectors_read_base - st.sectors_read_base, 100 - (4 * 8 + 4));

    /* the base is never written; the overlay keeps it all across a reopen */
    file_is(path("base"), base_file, blen);
    blockdev_close(d);
    d = open_cow(path("ov"), b, 0);
    reads_as(d, model);
    ck_assert_uint_eq(stats(d).clusters_allocated, 5);
    blockdev_close(d);
    blockdev_close(b);
    free(model);
    free(base_file);
}
END_TEST

START_TEST(test_out_of_range_and_readonly) {
    make_base(path("base"), 40, 0, NULL);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 4);
    uint8_t s[2 * S];
    memset(s, 0, sizeof s);
    ck_assert_int_eq(blockdev_read(d, 39, 2, s), -1);
    ck_assert_str_eq(d->error, "sectors 39-40 are outside the disk (40 sectors)");
    ck_assert_int_eq(blockdev_write(d, 40, 1, s), -1);
    ck_assert_int_eq(blockdev_write(d, 0, 0, s), -1);
    ck_assert_int_eq(blockdev_read(d, UINT32_MAX, 1, s), -1);
    /* a second writer is refused */
    ck_assert_ptr_null(cowdisk_open(path("ov"), b, 1, err, sizeof err));
    ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
    blockdev_close(d);
    d = open_cow(path("ov"), b, 0);
    ck_assert_int_eq(blockdev_write(d, 0, 1, s), -1);
    ck_assert_str_eq(d->error, "the overlay is read-only");
    ck_assert_int_eq(cowdisk_discard(d), -1);
    ck_assert_int_eq(cowdisk_commit(d), -1);
    ck_assert_int_eq(stats(d).clusters_allocated, 0);
    /* the stats and snapshot calls on something that is not an overlay */
    cowdisk_stats st;
    ck_assert_int_eq(cowdisk_get_stats(b, &st), -1);
    ck_assert_int_eq(cowdisk_commit(b), -1);
    ck_assert_str_eq(b->error, "not a copy-on-write overlay");
    blockdev_close(d);
    blockdev_close(b);
}
END_TEST

/* ---- random writes against a model, for several cluster sizes ----------- */

static uint32_t rng(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static const uint32_t CLUSTERS[] = {1, 2, 8, 16, 128};

START_TEST(test_random_writes) {
    uint32_t cs = CLUSTERS[_i], n = 301;
    uint8_t *model;
    make_base(path("base"), n, 0, &model);
    size_t blen;
    uint8_t *base_file = slurp(path("base"), &blen);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, cs);
    uint8_t *touched = calloc(n, 1);
    uint8_t *buf = malloc(24 * S);
    uint64_t seed = 42 + _i;
    for (uint32_t op = 1; op <= 600; op++) {
        uint32_t lba = rng(&seed) % n, count = 1 + rng(&seed) % 24;
        if (count > n - lba) count = n - lba;
        uint32_t what = rng(&seed) % 10;
        if (what < 6) {
            ck_assert_int_eq(put(d, model, lba, count, op), 0);
            memset(touched + lba, 1, count);
        } else if (what < 9) {
            ck_assert_int_eq(blockdev_read(d, lba, count, buf), 0);
            ck_assert_msg(memcmp(buf, model + (size_t)lba * S, (size_t)count * S) == 0,
                          "op %u: read %u+%u differs", op, lba, count);
        } else {
            blockdev_close(d); /* everything survives a reopen */
            d = open_cow(path("ov"), b, 1);
        }
    }
    reads_as(d, model);
    uint32_t want = 0;
    for (uint32_t c = 0; c * cs < n; c++) {
        int any = 0;
        for (uint32_t s = c * cs; s < (c + 1) * cs && s < n; s++)
            any |= touched[s];
        want += any != 0;
    }
    ck_assert_uint_eq(stats(d).clusters_allocated, want);
    file_is(path("base"), base_file, blen);
    blockdev_close(d);
    blockdev_close(b);
    free(model);
    free(base_file);
    free(touched);
    free(buf);
}
END_TEST

/* ---- chains, commit, discard ---------------------------------------------- */

START_TEST(test_chained_overlays) {
    uint8_t *base_bytes, *clone, *snap;
    make_base(path("base"), 64, 0, &base_bytes);
    size_t blen;
    uint8_t *base_file = slurp(path("base"), &blen);
    clone = malloc(64 * S);
    memcpy(clone, base_bytes, 64 * S);
    /* a linked clone of the base */
    blockdev *b = open_raw(path("base"), 0);
    blockdev *c = new_cow(path("clone"), b, 4);
    ck_assert_int_eq(put(c, clone, 5, 6, 1), 0);
    ck_assert_int_eq(put(c, clone, 40, 2, 1), 0);
    blockdev_close(c);
    /* a snapshot of the clone: the clone is its read-only base */
    c = open_cow(path("clone"), b, 0);
    blockdev *s = new_cow(path("snap"), c, 8);
    snap = malloc(64 * S);
    memcpy(snap, clone, 64 * S);
    reads_as(s, snap);
    ck_assert_int_eq(put(s, snap, 3, 4, 2), 0); /* copies base and clone sectors */
    ck_assert_int_eq(put(s, snap, 60, 4, 2), 0);
    reads_as(s, snap);
    reads_as(c, clone); /* the clone does not see the snapshot's writes */
    ck_assert_uint_eq(stats(s).bytes_copied, (4 + 4) * S);
    /* a second clone of the same base sees none of it */
    blockdev *c2 = new_cow(path("clone2"), b, 8);
    reads_as(c2, base_bytes);
    blockdev_close(c2);
    /* commit the snapshot into the clone (reopened writable) */
    blockdev_close(s);
    blockdev_close(c);
    c = open_cow(path("clone"), b, 1);
    s = open_cow(path("snap"), c, 1);
    ck_assert_msg(cowdisk_commit(s) == 0, "%s", s->error);
    reads_as(s, snap);
    reads_as(c, snap);
    ck_assert_uint_eq(stats(s).clusters_allocated, 0);
    ck_assert_uint_eq(stats(s).bytes_committed, 2 * 8 * S);
    /* the clone now holds 0-11 (3 clusters), 40-43 and 56-63 (2) */
    ck_assert_uint_eq(stats(c).clusters_allocated, 6);
    blockdev_close(s);
    /* discarding the clone: back to the base */
    ck_assert_int_eq(cowdisk_discard(c), 0);
    reads_as(c, base_bytes);
    ck_assert_uint_eq(stats(c).discards, 1);
    file_is(path("base"), base_file, blen);
    blockdev_close(c);
    blockdev_close(b);
    free(base_bytes);
    free(base_file);
    free(clone);
    free(snap);
}
END_TEST

START_TEST(test_commit) {
    uint8_t *model;
    make_base(path("base"), 50, 0, &model);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 8);
    ck_assert_int_eq(put(d, model, 2, 3, 1), 0);
    ck_assert_int_eq(put(d, model, 20, 10, 1), 0);
    ck_assert_int_eq(put(d, model, 49, 1, 1), 0); /* the 2-sector last cluster */
    /* a read-only base cannot take a commit */
    ck_assert_int_eq(cowdisk_commit(d), -1);
    ck_assert_str_eq(d->error, "the base is read-only: open it writable to commit");
    reads_as(d, model);
    blockdev_close(d);
    blockdev_close(b);

    b = open_raw(path("base"), 1);
    d = open_cow(path("ov"), b, 1);
    ck_assert_msg(cowdisk_commit(d) == 0, "%s", d->error);
    cowdisk_stats st = stats(d);
    ck_assert_uint_eq(st.commits, 1);
    ck_assert_uint_eq(st.clusters_allocated, 0);
    ck_assert_int_eq(st.commit_pending, 0);
    /* clusters 0, 2, 3, and the last one of 2 sectors */
    ck_assert_uint_eq(st.bytes_committed, (8 + 8 + 8 + 2) * S);
    ck_assert_int_eq(file_size(path("ov")), 4096); /* the data area is freed */
    reads_as(d, model);
    ck_assert_uint_eq(stats(d).sectors_read_overlay, 0);
    file_is(path("base"), model, 50 * S);
    /* and the overlay goes on working */
    ck_assert_int_eq(put(d, model, 7, 2, 2), 0);
    reads_as(d, model);
    blockdev_close(d);
    blockdev_close(b);
    free(model);
}
END_TEST

START_TEST(test_discard) {
    uint8_t *base_bytes, *model;
    make_base(path("base"), 50, 0, &base_bytes);
    model = malloc(50 * S);
    memcpy(model, base_bytes, 50 * S);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 2);
    for (uint32_t i = 0; i < 50; i += 3)
        ck_assert_int_eq(put(d, model, i, 1, 1), 0);
    ck_assert_uint_eq(stats(d).clusters_allocated, 17);
    ck_assert_int_eq(cowdisk_discard(d), 0);
    reads_as(d, base_bytes);
    ck_assert_uint_eq(stats(d).clusters_allocated, 0);
    ck_assert_int_eq(file_size(path("ov")), 1024); /* header + one map sector */
    blockdev_close(d);
    d = open_cow(path("ov"), b, 1);
    reads_as(d, base_bytes);
    memcpy(model, base_bytes, 50 * S);
    ck_assert_int_eq(put(d, model, 10, 5, 2), 0);
    reads_as(d, model);
    blockdev_close(d);
    blockdev_close(b);
    free(base_bytes);
    free(model);
}
END_TEST

/* ---- creation, bad overlays, bad bases -------------------------------------- */

START_TEST(test_create_rules) {
    make_base(path("base"), 30, 0, NULL);
    blockdev *b = open_raw(path("base"), 0);
    ck_assert_int_eq(cowdisk_create(path("ov"), b, 3, err, sizeof err), -1);
    ck_assert_str_eq(err, "a cluster is a power of two of 1 to 128 sectors, not 3");
    ck_assert_int_eq(cowdisk_create(path("ov"), b, 256, err, sizeof err), -1);
    ck_assert_int_eq(cowdisk_create(path("ov"), b, 0, err, sizeof err), 0);
    blockdev *d = open_cow(path("ov"), b, 0);
    ck_assert_uint_eq(stats(d).cluster_sectors, COWDISK_DEFAULT_CLUSTER);
    blockdev_close(d);
    /* an existing file is never replaced */
    spit(path("keep"), (const uint8_t *)"precious", 8);
    ck_assert_int_eq(cowdisk_create(path("keep"), b, 8, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "exists already") != NULL, "%s", err);
    file_is(path("keep"), (const uint8_t *)"precious", 8);
    ck_assert_int_eq(cowdisk_create(path("nodir/ov"), b, 8, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot create") != NULL, "%s", err);
    /* no temporary files are left behind */
    DIR *dp = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(dp)) != NULL)
        if (e->d_name[0] != '.') {
            ck_assert_msg(strstr(e->d_name, "tmp") == NULL, "left over: %s", e->d_name);
            files++;
        }
    closedir(dp);
    ck_assert_int_eq(files, 3); /* base, ov, keep */
    blockdev_close(b);
    /* a base too large for the map at this cluster size (a sparse file) */
    ck_assert_int_eq(blockdev_create_raw(path("big"), COWDISK_MAX_CLUSTERS + 1, err, sizeof err),
                     0);
    b = open_raw(path("big"), 0);
    ck_assert_int_eq(cowdisk_create(path("ov2"), b, 1, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "choose larger clusters") != NULL, "%s", err);
    ck_assert_int_eq(cowdisk_create(path("ov2"), b, 2, err, sizeof err), 0);
    blockdev_close(b);
}
END_TEST

START_TEST(test_wrong_base_size) {
    make_base(path("base"), 100, 0, NULL);
    make_base(path("other"), 101, 0, NULL);
    blockdev *b = open_raw(path("base"), 0), *o = open_raw(path("other"), 0);
    ck_assert_int_eq(cowdisk_create(path("ov"), b, 8, err, sizeof err), 0);
    ck_assert_ptr_null(cowdisk_open(path("ov"), o, 0, err, sizeof err));
    char want[700];
    snprintf(want, sizeof want, "'%s' was made for a base of 100 sectors; this base has 101",
             path("ov"));
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(cowdisk_open(path("ov"), NULL, 0, err, sizeof err));
    ck_assert_ptr_null(cowdisk_open(path("missing"), b, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot open") != NULL, "%s", err);
    ck_assert_ptr_null(cowdisk_open(dir, b, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
    blockdev_close(b);
    blockdev_close(o);
}
END_TEST

/* little-endian helpers to forge overlay bytes */
static void put32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc32(const uint8_t *p, size_t n) { /* as the format defines it */
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static void reseal_header(uint8_t *f) {
    put32le(f + 508, crc32(f, 508));
}

static void set_entry(uint8_t *f, uint32_t guest, uint32_t data) {
    uint8_t e[8];
    put32le(e, guest);
    put32le(e + 4, data);
    put32le(f + S + 8 * guest, data);
    put32le(f + S + 8 * guest + 4, crc32(e, 8));
}

/* a good overlay of 100 sectors, 8-sector clusters, holding clusters 0, 3, 7 */
static uint8_t *good_overlay(size_t *len) {
    make_base(path("base"), 100, 0, NULL);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("good"), b, 8);
    ck_assert_int_eq(put(d, NULL, 1, 1, 1), 0);
    ck_assert_int_eq(put(d, NULL, 25, 2, 1), 0);
    ck_assert_int_eq(put(d, NULL, 60, 1, 1), 0);
    blockdev_close(d);
    blockdev_close(b);
    return slurp(path("good"), len);
}

static void refused(const uint8_t *f, size_t len, const char *why) {
    unlink(path("bad"));
    spit(path("bad"), f, len);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = cowdisk_open(path("bad"), b, 1, err, sizeof err);
    ck_assert_msg(d == NULL, "a bad overlay was opened (wanted: %s)", why);
    ck_assert_msg(strstr(err, why) != NULL, "'%s' does not say '%s'", err, why);
    blockdev_close(b);
}

START_TEST(test_corrupt_overlays) {
    size_t len;
    uint8_t *good = good_overlay(&len);
    ck_assert_uint_eq(len, 4096 + 3 * 4096);
    uint8_t *f = malloc(len);
#define FRESH() memcpy(f, good, len)
    FRESH();
    memcpy(f, "qcow2\0\0\0", 8);
    refused(f, len, "not a vlab overlay (bad magic)");
    FRESH();
    f[16] ^= 0x10; /* cluster size, checksum not fixed */
    refused(f, len, "header checksum mismatch");
    FRESH();
    put32le(f + 8, 2);
    reseal_header(f);
    refused(f, len, "format version 2; this vlab reads version 1");
    FRESH();
    put32le(f + 16, 16); /* another cluster size: the layout no longer follows */
    reseal_header(f);
    refused(f, len, "layout does not follow");
    FRESH();
    put32le(f + 16, 5);
    reseal_header(f);
    refused(f, len, "power of two");
    FRESH();
    put32le(f + 40, 8);
    reseal_header(f);
    refused(f, len, "unknown header flags 0x8");
    FRESH();
    f[100] = 1;
    reseal_header(f);
    refused(f, len, "reserved header byte 100");
    FRESH();
    f[S + 8 * 3 + 1] ^= 1; /* entry 3's data cluster, check word not fixed */
    refused(f, len, "map entry 3 fails its checksum");
    FRESH();
    set_entry(f, 5, 14); /* outside the data area (clusters 1-13) */
    refused(f, len, "map entry 5 points at cluster 14");
    FRESH();
    set_entry(f, 5, 0x7fffffff);
    refused(f, len, "outside the data area");
    FRESH();
    set_entry(f, 4, 0); /* (0, check) is not a free entry */
    refused(f, len, "map entry 4 points at cluster 0, outside the data area");
    FRESH();
    set_entry(f, 5, 2); /* cluster 2 is entry 3's */
    refused(f, len, "two map entries share data cluster 2");
    FRESH();
    set_entry(f, 5, 4); /* past the end of the file */
    refused(f, len, "is truncated: cluster 5 of the disk ends at byte 20480, the file at 16384");
    FRESH();
    set_entry(f, 13, 4); /* padding entry after the 13 real ones */
    refused(f, len, "an entry past the end of the map (13)");
    refused(good, len - 100, "truncated: cluster 7 of the disk");
    refused(good, 1000, "the map ends at byte 1024, the file at 1000");
    refused(good, 300, "no whole header sector");
    refused(good, 0, "no whole header sector");
    /* and the good one opens */
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = open_cow(path("good"), b, 0);
    ck_assert_uint_eq(stats(d).clusters_allocated, 3);
    blockdev_close(d);
    blockdev_close(b);
    free(f);
    free(good);
#undef FRESH
}
END_TEST

/* A sound overlay whose one cluster sits at the end of the data area (not
 * what vlab writes, but valid): allocations fill the holes below it, and the
 * result still opens. */
START_TEST(test_holes_in_data_area) {
    uint8_t *model;
    make_base(path("base"), 100, 0, &model);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path("ov"), b, 8);
    ck_assert_int_eq(put(d, model, 2, 1, 1), 0); /* cluster 0 -> data cluster 1 */
    blockdev_close(d);
    size_t len;
    uint8_t *f = slurp(path("ov"), &len);
    ck_assert_uint_eq(len, 2 * 4096);
    uint8_t *g = calloc(14, 4096);
    memcpy(g, f, 4096);
    memcpy(g + 13 * 4096, f + 4096, 4096); /* move it to data cluster 13, the last */
    set_entry(g, 0, 13);
    unlink(path("ov"));
    spit(path("ov"), g, 14 * 4096);
    d = open_cow(path("ov"), b, 1);
    reads_as(d, model);
    for (uint32_t lba = 8; lba < 100; lba += 8)
        ck_assert_int_eq(put(d, model, lba, 1, 2), 0);
    ck_assert_uint_eq(stats(d).clusters_allocated, 13);
    ck_assert_int_eq(file_size(path("ov")), 14 * 4096); /* the holes were used */
    blockdev_close(d);
    d = open_cow(path("ov"), b, 0);
    reads_as(d, model);
    blockdev_close(d);
    blockdev_close(b);
    free(model);
    free(f);
    free(g);
}
END_TEST

/* The file shrinks under an open overlay: a read of the lost cluster fails
 * with a message, the rest still reads. */
START_TEST(test_truncated_while_open) {
    size_t len;
    uint8_t *good = good_overlay(&len);
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = open_cow(path("good"), b, 0);
    ck_assert_int_eq(truncate(path("good"), (off_t)len - 4096), 0);
    uint8_t s[8 * S];
    ck_assert_int_eq(blockdev_read(d, 56, 8, s), -1); /* cluster 7 was the last one */
    ck_assert_msg(strstr(d->error, "overlay truncated") != NULL, "%s", d->error);
    ck_assert_int_eq(blockdev_read(d, 0, 8, s), 0);
    ck_assert_int_eq(blockdev_read(d, 80, 8, s), 0);
    blockdev_close(d);
    blockdev_close(b);
    free(good);
}
END_TEST

/* Random damage to the header and map: refused with a message, or opened
 * and every sector readable -- never a crash (ASan watches). */
START_TEST(test_fuzzed_metadata) {
    size_t len;
    uint8_t *good = good_overlay(&len);
    uint8_t *f = malloc(len), *all = malloc(100 * S);
    uint64_t seed = 7;
    int opened = 0, refused_n = 0;
    blockdev *b = open_raw(path("base"), 0);
    for (int round = 0; round < 300; round++) {
        memcpy(f, good, len);
        int flips = 1 + (int)(rng(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            uint32_t kind = rng(&seed) % 3;
            if (kind == 0) /* a random byte of the header or map */
                f[rng(&seed) % (2 * S)] ^= (uint8_t)(1 + rng(&seed) % 255);
            else if (kind == 1) /* a forged entry with a good checksum */
                set_entry(f, rng(&seed) % 13, rng(&seed) % 20);
            else /* an entry freed: its cluster falls back to the base */
                memset(f + S + 8 * (rng(&seed) % 13), 0, 8);
        }
        if (round % 3 == 0) reseal_header(f); /* get past the header checksum */
        unlink(path("fz"));
        spit(path("fz"), f, round % 5 == 0 ? len - (rng(&seed) % len) : len);
        blockdev *d = cowdisk_open(path("fz"), b, 1, err, sizeof err);
        if (!d) {
            ck_assert(err[0] != 0);
            refused_n++;
            continue;
        }
        opened++;
        ck_assert_int_eq(blockdev_read(d, 0, 100, all), 0);
        ck_assert_int_eq(put(d, NULL, rng(&seed) % 100, 1, 9), 0);
        blockdev_close(d);
    }
    blockdev_close(b);
    ck_assert_int_gt(refused_n, 0);
    ck_assert_int_gt(opened, 0); /* freed entries, forged entries that happen to be sound */
    free(f);
    free(all);
    free(good);
}
END_TEST

/* ---- crash safety ------------------------------------------------------- */

/* The scripted sequence, for a disk of 50 sectors (scaled for larger ones):
 * allocating partial writes, writes across clusters, whole clusters,
 * in-place rewrites, the short last cluster. */
static const struct {
    uint32_t lba, count;
} SCRIPT[] = {{3, 2}, {3, 9}, {16, 8}, {20, 6}, {47, 3}, {0, 50}, {30, 1}, {12, 20}, {49, 1}};
#define NSCRIPT (sizeof SCRIPT / sizeof SCRIPT[0])

/* two geometries: 4-sector clusters (13 clusters, the last one short, one
 * map sector) and 1-sector clusters on 100 sectors (two map sectors) */
static const struct { uint32_t sectors, cs; } GEO[] = {{50, 4}, {100, 1}};
#define NGEO ((int)(sizeof GEO / sizeof GEO[0]))

static struct {
    uint32_t sectors, cs, scale;
    uint8_t *base;  /* the base's contents */
    uint8_t *empty; /* an empty overlay's file */
    size_t empty_len;
    uint8_t *m[NSCRIPT + 1]; /* m[k]: the disk after the first k writes */
} cr;

static uint32_t script_lba(size_t k) {
    return SCRIPT[k].lba * cr.scale;
}
static uint32_t script_count(size_t k) {
    return SCRIPT[k].count * cr.scale;
}

static void crash_setup(int geo) {
    cr.sectors = GEO[geo].sectors;
    cr.cs = GEO[geo].cs;
    cr.scale = cr.sectors / 50;
    make_base(path("base0"), cr.sectors, 0, &cr.base);
    blockdev *b = open_raw(path("base0"), 0);
    ck_assert_int_eq(cowdisk_create(path("empty"), b, cr.cs, err, sizeof err), 0);
    blockdev_close(b);
    cr.empty = slurp(path("empty"), &cr.empty_len);
    for (size_t k = 0; k <= NSCRIPT; k++) {
        cr.m[k] = malloc((size_t)cr.sectors * S);
        memcpy(cr.m[k], k ? cr.m[k - 1] : cr.base, (size_t)cr.sectors * S);
        if (k)
            for (uint32_t i = 0; i < script_count(k - 1); i++)
                pattern(cr.m[k] + (size_t)(script_lba(k - 1) + i) * S, script_lba(k - 1) + i,
                        (uint32_t)k);
    }
}

static void crash_teardown(void) {
    free(cr.base);
    free(cr.empty);
    for (size_t k = 0; k <= NSCRIPT; k++)
        free(cr.m[k]);
}

/* write script step k (0-based) */
static int script_step(blockdev *d, size_t k) {
    return put(d, NULL, script_lba(k), script_count(k), (uint32_t)k + 1);
}

/* a fresh base and an empty overlay, by copying bytes (no fsyncs) */
static void fresh_files(void) {
    unlink(path("base"));
    unlink(path("ov"));
    spit(path("base"), cr.base, (size_t)cr.sectors * S);
    spit(path("ov"), cr.empty, cr.empty_len);
}

/* the size of an emptied overlay: header and map, up to a whole cluster */
static off_t emptied_size(void) {
    uint32_t clusters = (cr.sectors + cr.cs - 1) / cr.cs, map = (clusters + 63) / 64;
    uint32_t first = (1 + map + cr.cs - 1) / cr.cs;
    return (off_t)first * cr.cs * S;
}

/* Run the script on a fresh overlay, crashing at host write n (0: never).
 * Returns the number of writes that completed; *host_writes the total. */
static size_t run_script(uint64_t n, uint64_t *host_writes) {
    fresh_files();
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = open_cow(path("ov"), b, 1);
    cowdisk_set_barriers(d, 0); /* a process crash: the page cache survives */
    cowdisk_test_crash_after(d, n);
    size_t done = 0;
    while (done < NSCRIPT && script_step(d, done) == 0)
        done++;
    if (done < NSCRIPT) ck_assert_msg(strstr(d->error, "simulated crash") != NULL, "%s", d->error);
    *host_writes = stats(d).host_writes;
    blockdev_close(d);
    blockdev_close(b);
    return done;
}

START_TEST(test_crash_during_writes) {
    crash_setup(_i);
    size_t bytes = (size_t)cr.sectors * S;
    uint64_t total;
    ck_assert_uint_eq(run_script(0, &total), NSCRIPT);
    ck_assert_uint_ge(total, 20); /* data clusters, map sectors, in-place writes */
    uint8_t *got = malloc(bytes);
    int torn = 0; /* crash points where the write in flight was partly visible */
    for (uint64_t n = 1; n <= total; n++) {
        uint64_t hw;
        size_t done = run_script(n, &hw);
        ck_assert_msg(done < NSCRIPT, "crash point %llu: no crash", (unsigned long long)n);
        ck_assert_uint_eq(hw, n);
        /* reopen: every sector is as after `done` writes or after done+1 */
        blockdev *b = open_raw(path("base"), 0);
        blockdev *d = cowdisk_open(path("ov"), b, 1, err, sizeof err);
        ck_assert_msg(d != NULL, "crash point %llu: %s", (unsigned long long)n, err);
        ck_assert_int_eq(blockdev_read(d, 0, cr.sectors, got), 0);
        int old = 0, new = 0;
        for (uint32_t i = 0; i < cr.sectors; i++) {
            const uint8_t *g = got + (size_t)i * S;
            const uint8_t *was = cr.m[done] + (size_t)i * S, *will = cr.m[done + 1] + (size_t)i * S;
            int is_old = memcmp(g, was, S) == 0, is_new = memcmp(g, will, S) == 0;
            ck_assert_msg(is_old || is_new, "crash point %llu: sector %u is neither old nor new",
                          (unsigned long long)n, i);
            if (memcmp(was, will, S) != 0) {
                old += is_old;
                new += is_new;
            }
        }
        torn += old && new;
        /* the base is untouched */
        file_is(path("base"), cr.base, bytes);
        /* the reopened overlay goes on: the rest of the script lands */
        for (size_t k = done; k < NSCRIPT; k++)
            ck_assert_int_eq(script_step(d, k), 0);
        reads_as(d, cr.m[NSCRIPT]);
        blockdev_close(d);
        blockdev_close(b);
    }
    ck_assert_int_gt(torn, 0);
    free(got);
    crash_teardown();
}
END_TEST

/* an overlay holding the whole script over a fresh base; its host writes */
static void scripted_files(void) {
    fresh_files();
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = open_cow(path("ov"), b, 1);
    cowdisk_set_barriers(d, 0);
    for (size_t k = 0; k < NSCRIPT; k++)
        ck_assert_int_eq(script_step(d, k), 0);
    blockdev_close(d);
    blockdev_close(b);
}

START_TEST(test_crash_during_commit) {
    crash_setup(_i);
    size_t bytes = (size_t)cr.sectors * S;
    const uint8_t *view = cr.m[NSCRIPT];
    /* count the commit's host writes */
    scripted_files();
    blockdev *b = open_raw(path("base"), 1);
    blockdev *d = open_cow(path("ov"), b, 1);
    uint64_t before = stats(d).host_writes;
    ck_assert_int_eq(cowdisk_commit(d), 0);
    uint64_t total = stats(d).host_writes - before;
    blockdev_close(d);
    blockdev_close(b);
    file_is(path("base"), view, bytes);
    ck_assert_uint_ge(total, 10);
    uint8_t *bf = malloc(bytes);
    int mixed = 0; /* crash points where the base was part old, part new */
    for (uint64_t n = 1; n <= total; n++) {
        scripted_files();
        b = open_raw(path("base"), 1);
        d = open_cow(path("ov"), b, 1);
        cowdisk_set_barriers(d, 0);
        cowdisk_test_crash_after(d, n);
        ck_assert_int_eq(cowdisk_commit(d), -1);
        ck_assert_msg(strstr(d->error, "simulated crash") != NULL, "%s", d->error);
        blockdev_close(d);
        blockdev_close(b);
        /* the base: each sector old or committed */
        int fd = open(path("base"), O_RDONLY);
        ck_assert_int_eq(pread(fd, bf, bytes, 0), (ssize_t)bytes);
        close(fd);
        int old = 0, new = 0;
        for (uint32_t i = 0; i < cr.sectors; i++) {
            size_t at = (size_t)i * S;
            int is_old = memcmp(bf + at, cr.base + at, S) == 0;
            int is_new = memcmp(bf + at, view + at, S) == 0;
            ck_assert_msg(is_old || is_new, "crash point %llu: base sector %u",
                          (unsigned long long)n, i);
            if (memcmp(cr.base + at, view + at, S) != 0) {
                old += is_old;
                new += is_new;
            }
        }
        mixed += old && new;
        /* the overlay reads as before the commit, read-only or writable */
        b = open_raw(path("base"), 1);
        d = open_cow(path("ov"), b, 0);
        reads_as(d, view);
        blockdev_close(d);
        d = open_cow(path("ov"), b, 1);
        reads_as(d, view);
        ck_assert_int_eq(stats(d).commit_pending, n > 1); /* the first write sets the flag */
        if (n > 1) {
            ck_assert_int_eq(cowdisk_discard(d), -1); /* the base has changed: no way back */
            ck_assert_msg(strstr(d->error, "interrupted commit") != NULL, "%s", d->error);
        }
        /* a new commit finishes the job */
        ck_assert_msg(cowdisk_commit(d) == 0, "%s", d->error);
        ck_assert_int_eq(stats(d).commit_pending, 0);
        ck_assert_uint_eq(stats(d).clusters_allocated, 0);
        reads_as(d, view);
        blockdev_close(d);
        blockdev_close(b);
        file_is(path("base"), view, bytes);
        ck_assert_int_eq(file_size(path("ov")), emptied_size());
    }
    ck_assert_int_gt(mixed, 0);
    free(bf);
    crash_teardown();
}
END_TEST

START_TEST(test_crash_during_discard) {
    crash_setup(_i);
    size_t bytes = (size_t)cr.sectors * S;
    uint32_t clusters = (cr.sectors + cr.cs - 1) / cr.cs; /* the script writes them all */
    scripted_files();
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = open_cow(path("ov"), b, 1);
    uint64_t before = stats(d).host_writes;
    ck_assert_int_eq(cowdisk_discard(d), 0);
    uint64_t total = stats(d).host_writes - before;
    blockdev_close(d);
    blockdev_close(b);
    /* flag, each map sector, truncate, clear */
    ck_assert_uint_eq(total, 3 + (clusters + 63) / 64);
    for (uint64_t n = 1; n <= total; n++) {
        scripted_files();
        b = open_raw(path("base"), 0);
        d = open_cow(path("ov"), b, 1);
        cowdisk_set_barriers(d, 0);
        cowdisk_test_crash_after(d, n);
        ck_assert_int_eq(cowdisk_discard(d), -1);
        blockdev_close(d);
        /* all or nothing: the header write decides */
        const uint8_t *want = n == 1 ? cr.m[NSCRIPT] : cr.base;
        d = open_cow(path("ov"), b, 0); /* read-only: honoured, not finished */
        reads_as(d, want);
        blockdev_close(d);
        d = open_cow(path("ov"), b, 1); /* writable: finished */
        reads_as(d, want);
        ck_assert_uint_eq(stats(d).clusters_allocated, n == 1 ? clusters : 0);
        blockdev_close(d);
        blockdev_close(b);
        if (n > 1) ck_assert_int_eq(file_size(path("ov")), emptied_size());
        file_is(path("base"), cr.base, bytes);
    }
    crash_teardown();
}
END_TEST

/* ---- determinism ---------------------------------------------------------- */

static uint8_t *scripted_overlay(const char *name, size_t *len) {
    blockdev *b = open_raw(path("base"), 0);
    blockdev *d = new_cow(path(name), b, 4);
    uint64_t seed = 99;
    for (int op = 0; op < 200; op++) {
        uint32_t lba = rng(&seed) % 64, count = 1 + rng(&seed) % 8;
        if (count > 64 - lba) count = 64 - lba;
        ck_assert_int_eq(put(d, NULL, lba, count, (uint32_t)op), 0);
    }
    blockdev_close(d);
    blockdev_close(b);
    return slurp(path(name), len);
}

START_TEST(test_deterministic) {
    make_base(path("base"), 64, 0, NULL);
    size_t la, lb;
    uint8_t *a = scripted_overlay("a", &la), *bb = scripted_overlay("b", &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_uint_eq(la, 2048 + 16 * 2048); /* header+map padded to 4 sectors, 16 clusters */
    ck_assert(memcmp(a, bb, la) == 0);
    free(a);
    free(bb);
}
END_TEST

Suite *suite_cowdisk(void) {
    Suite *s = suite_create("cowdisk");
    TCase *tc = tcase_create("overlay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fall_through);
    tcase_add_test(tc, test_first_write_copies);
    tcase_add_test(tc, test_out_of_range_and_readonly);
    tcase_add_loop_test(tc, test_random_writes, 0, (int)(sizeof CLUSTERS / sizeof CLUSTERS[0]));
    tcase_add_test(tc, test_chained_overlays);
    tcase_add_test(tc, test_commit);
    tcase_add_test(tc, test_discard);
    tcase_add_test(tc, test_create_rules);
    tcase_add_test(tc, test_wrong_base_size);
    tcase_add_test(tc, test_corrupt_overlays);
    tcase_add_test(tc, test_holes_in_data_area);
    tcase_add_test(tc, test_truncated_while_open);
    tcase_add_test(tc, test_fuzzed_metadata);
    tcase_add_loop_test(tc, test_crash_during_writes, 0, NGEO);
    tcase_add_loop_test(tc, test_crash_during_commit, 0, NGEO);
    tcase_add_loop_test(tc, test_crash_during_discard, 0, NGEO);
    tcase_add_test(tc, test_deterministic);
    suite_add_tcase(s, tc);
    return s;
}
