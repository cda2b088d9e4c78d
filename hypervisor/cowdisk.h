/* hypervisor/cowdisk.h -- a copy-on-write disk: an overlay file over a
 * read-only base block device, qcow2-style (ground-truth "Disk COW"):
 * clusters of the overlay are allocated on the first write to them, after
 * the old contents are copied from the base; reads of clusters the overlay
 * does not hold fall through to the base.  A linked clone is an overlay over
 * a shared base image; a snapshot is an overlay that is later committed
 * into its base or discarded.  The overlay is itself a blockdev, so overlays
 * chain (a snapshot of a linked clone).
 *
 * Crash safety: a data cluster is written before the map entry that points
 * at it, and a map entry is changed by one aligned 512-byte write (assumed
 * atomic, as disks and qcow2 assume of a sector), so a crash at any point
 * leaves the overlay readable and the base untouched; commit is
 * restartable.  The file format and the argument are in docs/disks.md. */
#ifndef VLAB_HYPERVISOR_COWDISK_H
#define VLAB_HYPERVISOR_COWDISK_H

#include <stddef.h>
#include <stdint.h>

#include "hypervisor/blockdev.h"

#define COWDISK_VERSION 1u
#define COWDISK_DEFAULT_CLUSTER 8u      /* sectors (4 KiB) when 0 is asked for */
#define COWDISK_MAX_CLUSTER 128u        /* sectors (64 KiB, qcow2's default size) */
#define COWDISK_MAX_CLUSTERS (1u << 22) /* map entries: 16 MiB of map in memory */

/* Create a new, empty overlay file over `base` with clusters of
 * cluster_sectors sectors (a power of two up to COWDISK_MAX_CLUSTER; 0 for
 * the default).  Whole or not at all: written under a temporary name and
 * linked into place; an existing file is never replaced.  0, or -1 with a
 * message in err. */
int cowdisk_create(const char *overlay_path, blockdev *base, uint32_t cluster_sectors, char *err,
                   size_t errlen);

/* Open an overlay over `base`.  The header (magic, version, checksum,
 * geometry: the base must have the size the overlay was made for) and every
 * map entry are checked; a corrupt or truncated overlay is refused with a
 * message in err.  The overlay never writes the base except in
 * cowdisk_commit, and does not own it: close the overlay first, then the
 * base.  A writable overlay is locked against a second opener.  An
 * interrupted discard is finished here (writable) or honoured (read-only). */
blockdev *cowdisk_open(const char *overlay_path, blockdev *base, int writable, char *err,
                       size_t errlen);

/* Is d an overlay made by cowdisk_open? */
int cowdisk_is_overlay(const blockdev *d);

/* Copy every cluster the overlay holds into its base (which must be
 * writable), then empty the overlay.  Restartable: after a crash the
 * overlay still reads the same data and a new cowdisk_commit finishes the
 * job.  Every other overlay of the same base sees the base change.  0, or
 * -1 with d->error saying why. */
int cowdisk_commit(blockdev *d);
/* Empty the overlay: the disk reads as its base again.  Atomic (one header
 * write decides).  Refused while an interrupted commit is unfinished. */
int cowdisk_discard(blockdev *d);

typedef struct cowdisk_stats {
    uint32_t cluster_sectors;    /* size of a cluster */
    uint32_t clusters;           /* clusters of the disk (map entries) */
    uint32_t clusters_allocated; /* held by the overlay now */
    int commit_pending;          /* an interrupted commit awaits cowdisk_commit */
    /* counted since open: */
    uint64_t allocations;          /* first writes to a cluster */
    uint64_t copies;               /* allocations that copied old contents from the base */
    uint64_t bytes_copied;         /* bytes copied from the base by those copies */
    uint64_t sectors_read_overlay; /* sectors read served by the overlay */
    uint64_t sectors_read_base;    /* ... and by the base (unallocated clusters) */
    uint64_t sectors_written;      /* sectors written (all into the overlay) */
    uint64_t commits, discards;    /* completed */
    uint64_t bytes_committed;      /* bytes copied into the base by commits */
    uint64_t host_writes;          /* write calls to the overlay file and base */
    uint64_t barriers;             /* write barriers (fdatasync) issued */
} cowdisk_stats;

/* 0, or -1 if d is not an overlay. */
int cowdisk_get_stats(const blockdev *d, cowdisk_stats *out);

/* Write barriers: an fdatasync of the overlay file between a data cluster
 * and the map entry that points at it (and around the steps of commit and
 * discard), so the order also holds across a power failure.  On by
 * default; off keeps the order against a crash of the process only. */
void cowdisk_set_barriers(blockdev *d, int on);

/* Test hook, the crash model of tests/check_cowdisk.c: the n-th host write
 * from now (n >= 1; counting pwrites to the overlay file, ftruncates of it
 * and writes to the base) is torn -- only the first half of its sectors,
 * rounded down, reach the file -- and the process "dies": that and every
 * later operation of d fails with "simulated crash", and nothing more is
 * written.  n = 0 turns it off. */
void cowdisk_test_crash_after(blockdev *d, uint64_t n);

#endif
