/* hypervisor/cowmem.h -- copy-on-write memory: the frame table with its
 * reference counts, VM fork (clone) and content-based page sharing.
 *
 * The model (../shared/ground-truth.md, "Copy-on-write"): every host frame
 * has a reference count, the number of guest pages (p2m entries) that map
 * it.  Sharing maps a frame read-only in every VM that uses it and raises
 * its count; the first write to a shared page faults, and the hypervisor
 * copies the page when the count is above one (else it just restores write
 * permission), remaps the page writable and lowers the count.  A frame
 * whose count drops to 0 goes back on the free list, and is zeroed when it
 * is handed out again (ESX zeroes new machine pages, Waldspurger 2002).
 *
 *   hv_vm_clone     VM fork (SnowFlock, Lagar-Cavilla et al. 2009): a new VM
 *                   with a copy of the parent's vCPU and VMCS, sharing every
 *                   guest frame with it copy-on-write;
 *   hv_share_pages  the content-based sharing scanner (Waldspurger, OSDI
 *                   2002; Linux KSM): hash every guest frame, compare
 *                   candidates in full, merge identical frames
 *                   copy-on-write and free the duplicates.
 *
 * Hypervisor-owned frames (shadow page tables) are kept apart: they are
 * never shared, never counted as guest memory. */
#ifndef VLAB_HYPERVISOR_COWMEM_H
#define VLAB_HYPERVISOR_COWMEM_H

#include <stddef.h>
#include <stdint.h>

#include "hypervisor/hv.h"

enum hv_frame_use { HV_FRAME_FREE = 0, HV_FRAME_HV = 1, HV_FRAME_GUEST = 2 };

/* A page hash for the scanner; the default is FNV-1a over the 4 KiB. */
typedef uint32_t (*hv_page_hash)(const uint8_t *page);
uint32_t hv_hash_fnv1a(const uint8_t *page);
uint32_t hv_hash_first_word(const uint8_t *page); /* a weak hash: pages collide often */

/* The memory at one moment: the summary's "over time" line. */
typedef struct hv_frames_point {
    uint64_t cycle;
    uint32_t mappings, guest; /* guest pages of all VMs, the frames they use */
    uint64_t copies;          /* copies on write so far */
} hv_frames_point;
#define HV_FRAMES_POINTS 16

typedef struct hv_frames {
    uint32_t n;      /* host frames */
    uint32_t *count; /* per frame: the guest pages (p2m entries) that map it */
    uint8_t *use;    /* per frame: hv_frame_use */
    uint32_t *free;  /* freed frames, the last freed handed out first */
    uint32_t nfree;
    int shared; /* a clone or a scan happened: the summary reports memory */
    uint64_t copies, restores, merges, freed, clones, scans;
    hv_frames_point points[HV_FRAMES_POINTS]; /* after each clone, before and after each scan (the first ones) */
    int npoints;
} hv_frames;

/* The frame table as a user sees it. */
typedef struct hv_frames_summary {
    uint32_t total;      /* host frames */
    uint32_t hypervisor; /* the hypervisor's own (below the first guest frame, shadow tables) */
    uint32_t guest;      /* frames that hold guest pages */
    uint32_t shared;     /* ... of them mapped by more than one guest page */
    uint32_t free;       /* on the free list or never used */
    uint32_t mappings;   /* guest pages of all VMs: what they would take without sharing */
    uint32_t saved;      /* mappings - guest: frames sharing saves */
    uint64_t copies, restores, merges, freed, clones, scans;
} hv_frames_summary;

/* One VM's memory. */
typedef struct hv_footprint {
    uint32_t pages;  /* its guest-physical pages */
    uint32_t frames; /* distinct host frames it maps */
    uint32_t own;    /* ... of them mapped by no other VM */
    uint32_t shared; /* its pages that are read-only, shared copy-on-write */
    uint64_t copies, restores, merged;
} hv_footprint;

/* What one run of the scanner did. */
typedef struct hv_share_stats {
    uint32_t scanned;    /* guest pages looked at */
    uint32_t compared;   /* full page compares (hash matches) */
    uint32_t collisions; /* hash matches whose contents differed */
    uint32_t merged;     /* guest pages remapped onto an identical frame */
    uint32_t freed;      /* frames freed */
} hv_share_stats;

int hv_frames_init(hv *h); /* -1 when out of memory */
void hv_frames_free(hv *h);
uint32_t hv_frame_count(const hv *h, uint32_t frame);
void hv_frames_summarize(const hv *h, hv_frames_summary *out);
void hv_vm_footprint(const hv *h, const hv_vm *vm, hv_footprint *out);

/* A clone of parent named name: same technique and settings, a copy of its
 * vCPU (registers, virtual state, VMCS controls) and console, every guest
 * frame shared read-only.  NULL with a message when the host has no frames
 * for its shadow page tables or memory runs out. */
hv_vm *hv_vm_clone(hv *h, hv_vm *parent, const char *name, char *err, size_t errlen);

/* Destroy vm: its guest pages let go of their frames (a frame no other VM
 * maps is freed), its shadow page tables are freed; it never runs again,
 * and has no memory.  Taken off the CPU first if it is on it. */
void hv_vm_destroy(hv *h, hv_vm *vm);

/* Run the sharing scanner once over every VM's memory, with hash (NULL: the
 * default).  0, or -1 when out of host memory (nothing changed). */
int hv_share_pages(hv *h, hv_page_hash hash, hv_share_stats *out);

/* The invariants: every frame's count equals the guest pages mapping it, no
 * mapped frame is free or the hypervisor's, a page of a frame with count > 1
 * is read-only, each EPT entry agrees with the p2m, the free list holds
 * exactly the free frames.  0, or -1 with what is wrong in err. */
int hv_frames_check(const hv *h, char *err, size_t errlen);

#endif
