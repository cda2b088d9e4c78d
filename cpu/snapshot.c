/* cpu/snapshot.c -- saving and restoring a machine (see snapshot.h).
 *
 * Memory is kept per 4 KiB page in reference-counted copies.  A snapshot is
 * either full (one page pointer per physical page) or a delta: the pages
 * written since the snapshot it follows (its base), found through the
 * machine's written-page marks (cpu_t.written, set by every write path of
 * cpu/mmu.c) instead of comparing all of memory.  Every SNAP_FULL_EVERY-th
 * snapshot of a chain is full again, so a restore walks at most that many
 * deltas.  The newest snapshot of a chain keeps the "view" -- the newest
 * copy of every page -- which lets the next one tell a page rewritten with
 * the same bytes from a changed one, and makes the next full one cheap. */
#include "cpu/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/mmu.h"

#define SNAP_FULL_EVERY 64

typedef struct page {
    int refs;
    uint8_t bytes[CPU_PAGE];
} page;

/* An EPT, an I/O bitmap or the console text, shared between snapshots while
 * it does not change. */
typedef struct blob {
    int refs;
    size_t len;
    uint8_t bytes[];
} blob;

struct cpu_snapshot {
    int refs;
    cpu_t regs;           /* the scalar state; its pointers are not used */
    const cpu_t *owner;   /* the machine it was taken of, and its written_gen */
    uint32_t gen;         /* after the take: a next take with the same gen is a delta */
    cpu_snapshot *base;   /* a delta: the snapshot it follows (referenced); NULL: full */
    int depth;            /* deltas since the last full snapshot */
    uint32_t npages;
    page **pages;         /* full: one per physical page */
    uint32_t *didx;       /* delta: the pages that changed since base, and their copies */
    page **dpages;
    uint32_t ndelta;
    page **view;          /* the newest copy of every page, while this is the newest snapshot */
    blob *ept;            /* VMX non-root state that is not in memory: the EPT ... */
    blob *io;             /* ... and the I/O bitmap (NULL: none) */
    blob *console;        /* console output so far (NULL: none) */
    size_t own;           /* bytes this snapshot holds alone */
};

static page *page_ref(page *p) {
    p->refs++;
    return p;
}

static void page_unref(page *p) {
    if (p && --p->refs == 0) free(p);
}

static void blob_unref(blob *b) {
    if (b && --b->refs == 0) free(b);
}

/* The bytes as a blob: prev's when equal (shared), else a new copy.  *ok is
 * cleared when the host is out of memory. */
static blob *blob_of(const void *bytes, size_t len, blob *prev, size_t *own, int *ok) {
    if (!bytes || !len) return NULL;
    if (prev && prev->len == len && memcmp(prev->bytes, bytes, len) == 0) {
        prev->refs++;
        return prev;
    }
    blob *b = malloc(sizeof *b + len);
    if (!b) {
        *ok = 0;
        return NULL;
    }
    b->refs = 1;
    b->len = len;
    memcpy(b->bytes, bytes, len);
    *own += sizeof *b + len;
    return b;
}

static page *page_copy(const uint8_t *bytes) {
    page *p = malloc(sizeof *p);
    if (!p) return NULL;
    p->refs = 1;
    memcpy(p->bytes, bytes, CPU_PAGE);
    return p;
}

cpu_snapshot *cpu_snapshot_take(cpu_t *c, cpu_snapshot *prev) {
    cpu_snapshot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->refs = 1;
    s->regs = *c;
    s->npages = c->npages;
    int ok = 1;
    if (prev && prev->npages != c->npages) prev = NULL;
    /* prev's view is reliable for c when prev was the last snapshot taken of c */
    int follows = prev && prev->view && prev->owner == c && prev->gen == c->written_gen;
    s->view = calloc(c->npages, sizeof *s->view);
    if (!s->view) goto oom; /* not counted in own: only the newest snapshot has one */
    if (follows && prev->depth + 1 < SNAP_FULL_EVERY) { /* a delta: the written pages */
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->npages; i++) n += c->written[i] != 0;
        s->didx = malloc((n ? n : 1) * sizeof *s->didx);
        s->dpages = malloc((n ? n : 1) * sizeof *s->dpages);
        if (!s->didx || !s->dpages) goto oom;
        s->own += (size_t)n * (sizeof *s->didx + sizeof *s->dpages);
        for (uint32_t i = 0; i < c->npages; i++) {
            const uint8_t *now = c->mem + ((size_t)i << 12);
            if (!c->written[i] || memcmp(prev->view[i]->bytes, now, CPU_PAGE) == 0) continue;
            page *p = page_copy(now);
            if (!p) goto oom;
            s->own += sizeof *p;
            s->didx[s->ndelta] = i;
            s->dpages[s->ndelta++] = p;
        }
        /* the view moves on from prev to s */
        memcpy(s->view, prev->view, c->npages * sizeof *s->view);
        for (uint32_t k = 0; k < s->ndelta; k++) {
            page_unref(s->view[s->didx[k]]);
            s->view[s->didx[k]] = page_ref(s->dpages[k]);
        }
        free(prev->view);
        prev->view = NULL;
        s->base = prev;
        prev->refs++;
        s->depth = prev->depth + 1;
    } else { /* full: a page pointer for every page, sharing those that did not change */
        s->pages = calloc(c->npages, sizeof *s->pages);
        if (!s->pages) goto oom;
        s->own += (size_t)c->npages * sizeof *s->pages;
        for (uint32_t i = 0; i < c->npages; i++) {
            const uint8_t *now = c->mem + ((size_t)i << 12);
            page *old = prev && prev->view ? prev->view[i] : prev && prev->pages ? prev->pages[i] : NULL;
            if (old && ((follows && !c->written[i]) || memcmp(old->bytes, now, CPU_PAGE) == 0)) {
                s->pages[i] = page_ref(old);
            } else {
                if (!(s->pages[i] = page_copy(now))) goto oom;
                s->own += sizeof(page);
            }
            s->view[i] = page_ref(s->pages[i]);
        }
        if (prev && prev->view && follows) { /* the view is s's now */
            for (uint32_t i = 0; i < c->npages; i++) page_unref(prev->view[i]);
            free(prev->view);
            prev->view = NULL;
        }
    }
    /* VMX non-root state the replay needs and memory does not hold */
    s->ept = blob_of(c->ept, (size_t)c->ept_pages * sizeof *c->ept, prev ? prev->ept : NULL, &s->own, &ok);
    s->io = blob_of(c->io_bitmap, 65536 / 8, prev ? prev->io : NULL, &s->own, &ok);
    size_t clen;
    const char *con = cpu_console(c, &clen);
    s->console = blob_of(con, clen, prev ? prev->console : NULL, &s->own, &ok);
    if (!ok) goto oom;
    /* from here on the marks count from this snapshot */
    cpu_written_clear(c);
    s->owner = c;
    s->gen = c->written_gen;
    return s;
oom:
    cpu_snapshot_free(s);
    return NULL;
}

/* Make page i of c hold bytes (only if it differs, dropping its decoded copy). */
static void put_page(cpu_t *c, uint32_t i, const page *p) {
    uint8_t *now = c->mem + ((size_t)i << 12);
    if (memcmp(now, p->bytes, CPU_PAGE) == 0) return;
    if (c->code_page[i]) mmu_code_invalidate(c, i);
    memcpy(now, p->bytes, CPU_PAGE);
    c->written[i] = 1; /* differs from c's last checkpoint, if it has one */
}

/* c's copy of a blob, in the buffer c owns for it; NULL for none. */
static void *own_copy(void **buf, const blob *b) {
    if (!b) return NULL;
    void *p = realloc(*buf, b->len);
    if (!p) return NULL;
    *buf = p;
    memcpy(p, b->bytes, b->len);
    return p;
}

int cpu_snapshot_restore(cpu_t *c, const cpu_snapshot *s) {
    if (c->npages != s->npages) return -1;
    const cpu_t *r = &s->regs;
    /* architectural state */
    memcpy(c->r, r->r, sizeof c->r);
    c->pc = r->pc;
    c->flags = r->flags;
    c->lf_op = r->lf_op;
    c->lf_a = r->lf_a;
    c->lf_b = r->lf_b;
    memcpy(c->cr, r->cr, sizeof c->cr);
    c->cpl = r->cpl;
    c->vmx_on = r->vmx_on;
    c->nonroot = r->nonroot;
    c->halted = r->halted;
    c->dead = r->dead;
    c->mid_block = r->mid_block;
    c->world = r->world;
    c->cycles = r->cycles;
    c->steps = r->steps;
    c->tsc_offset = r->tsc_offset;
    c->fault_err = r->fault_err;
    c->fault_addr = r->fault_addr;
    /* VMX non-root execution state (the VMM's settings for the guest) */
    c->vmx_ctl = r->vmx_ctl;
    c->vmx_exc = r->vmx_exc;
    c->status_mask = r->status_mask;
    c->status_shadow = r->status_shadow;
    void *buf = c->ept_own;
    c->ept = own_copy(&buf, s->ept);
    c->ept_own = buf;
    c->ept_pages = c->ept ? r->ept_pages : 0;
    if (s->ept && !c->ept) return -1;
    buf = c->io_own;
    c->io_bitmap = own_copy(&buf, s->io);
    c->io_own = buf;
    if (s->io && !c->io_bitmap) return -1;
    /* devices, policy, costs */
    c->timer_period = r->timer_period;
    c->timer_deadline = r->timer_deadline;
    for (int i = 0; i < CPU_NDEV; i++) /* the deadlines; which devices are attached is c's */
        if (c->dev[i].fn) c->dev[i].at = r->dev[i].fn ? r->dev[i].at : UINT64_MAX;
    c->event_at = 0; /* the run loop recomputes it */
    c->irq_pending = r->irq_pending;
    memcpy(c->behaviour, r->behaviour, sizeof c->behaviour);
    memcpy(c->cost, r->cost, sizeof c->cost);
    c->cost_trap = r->cost_trap;
    c->cost_walk = r->cost_walk;
    c->exit = r->exit;
    c->stop_req = 0;
    /* memory: the newest copy of each page, from s back to its full snapshot */
    uint8_t *seen = s->base ? calloc(c->npages, 1) : NULL;
    if (s->base && !seen) return -1;
    const cpu_snapshot *x = s;
    for (; x->base; x = x->base)
        for (uint32_t k = 0; k < x->ndelta; k++)
            if (!seen[x->didx[k]]) {
                seen[x->didx[k]] = 1;
                put_page(c, x->didx[k], x->dpages[k]);
            }
    for (uint32_t i = 0; i < c->npages; i++)
        if (!seen || !seen[i]) put_page(c, i, x->pages[i]);
    free(seen);
    /* the TLB as it was, pointing into this machine's memory */
    for (int i = 0; i < CPU_TLB_SIZE; i++) {
        c->tlb[i] = r->tlb[i];
        if (c->tlb[i].vpn) {
            c->tlb[i].host = c->mem + ((size_t)c->tlb[i].ppn << 12);
            if (c->code_page[c->tlb[i].ppn] || !c->written[c->tlb[i].ppn])
                c->tlb[i].perm &= ~(TLB_WK | TLB_WU);
        }
    }
    c->tlb_gen++;
    /* console */
    c->console_len = 0;
    if (s->console) {
        if (s->console->len > c->console_cap) {
            char *p = realloc(c->console, s->console->len + 1);
            if (!p) return -1;
            c->console = p;
            c->console_cap = s->console->len;
        }
        memcpy(c->console, s->console->bytes, s->console->len);
        c->console_len = s->console->len;
        c->console[c->console_len] = 0;
    } else if (c->console) {
        c->console[0] = 0;
    }
    return 0;
}

void cpu_snapshot_free(cpu_snapshot *s) {
    while (s && --s->refs == 0) {
        if (s->pages)
            for (uint32_t i = 0; i < s->npages; i++) page_unref(s->pages[i]);
        if (s->view)
            for (uint32_t i = 0; i < s->npages; i++) page_unref(s->view[i]);
        for (uint32_t k = 0; k < s->ndelta; k++) page_unref(s->dpages[k]);
        free(s->pages);
        free(s->view);
        free(s->didx);
        free(s->dpages);
        blob_unref(s->ept);
        blob_unref(s->io);
        blob_unref(s->console);
        cpu_snapshot *base = s->base;
        free(s);
        s = base; /* a delta let go of the snapshot it follows */
    }
}

uint64_t cpu_snapshot_steps(const cpu_snapshot *s) { return s->regs.steps; }
uint64_t cpu_snapshot_cycles(const cpu_snapshot *s) { return s->regs.cycles; }
size_t cpu_snapshot_own_bytes(const cpu_snapshot *s) { return s->own + sizeof *s; }
int cpu_snapshot_is_full(const cpu_snapshot *s) { return s->base == NULL; }
