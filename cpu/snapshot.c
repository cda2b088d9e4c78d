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
 * the same bytes from a changed one, and makes the next full one cheap.
 * The processor state is kept whole in each (a few hundred bytes), the TLB
 * as the entries that changed, the policy and cost tables, the EPT, the I/O
 * bitmap and the console as blobs shared while they do not change: a delta
 * taken at a VM exit that wrote no memory costs about half a kilobyte.  In
 * a full snapshot the pages of zeros share one copy, so the first snapshot
 * of a large, mostly unused machine costs the pages in use. */
#include "cpu/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/mmu.h"

#define SNAP_FULL_EVERY 256

typedef struct page {
    int refs;
    uint8_t bytes[CPU_PAGE];
} page;

/* The processor state a restore puts back (the rest of cpu_t is
 * configuration, pointers or caches). */
typedef struct core {
    uint32_t r[16], pc, flags, lf_a, lf_b, cr[CPU_NCR];
    uint8_t lf_op, cpl, vmx_on, nonroot, halted, dead, mid_block, world;
    uint64_t cycles, steps;
    int64_t tsc_offset;
    uint32_t fault_err, fault_addr;
    uint32_t vmx_ctl, vmx_exc, status_mask, status_shadow, ept_pages;
    uint32_t timer_period, irq_pending;
    uint64_t timer_deadline;
    uint64_t dev_at[CPU_NDEV]; /* UINT64_MAX for a free slot */
    uint32_t cost_trap, cost_walk;
    cpu_exit exit;
} core;

/* A TLB entry without its host pointer, and without the fast path's write
 * permission (a restore leaves that to the slow path, which grants it). */
typedef struct tlb_ent {
    uint32_t vpn, perm, ppn;
} tlb_ent;

/* What the newest snapshot of a chain keeps for the next one. */
typedef struct view {
    page **pages; /* the newest copy of every page (referenced) */
    tlb_ent tlb[CPU_TLB_SIZE];
} view;

/* An EPT, an I/O bitmap or the console text, shared between snapshots while
 * it does not change. */
typedef struct blob {
    int refs;
    size_t len;
    uint8_t bytes[];
} blob;

struct cpu_snapshot {
    int refs;
    core regs;
    blob *config;     /* behaviour and cost tables, shared while unchanged */
    tlb_ent *tlb;     /* full: all CPU_TLB_SIZE entries; delta: those that changed ... */
    uint8_t *tlb_idx; /* ... at these indexes */
    int ntlb;
    const cpu_t *owner; /* the machine it was taken of, and its written_gen */
    uint32_t gen;       /* after the take: a next take with the same gen is a delta */
    cpu_snapshot *base; /* a delta: the snapshot it follows (referenced); NULL: full */
    int depth;          /* deltas since the last full snapshot */
    uint32_t npages;
    page **pages;   /* full: one per physical page */
    uint32_t *didx; /* delta: the pages that changed since base, and their copies */
    page **dpages;
    uint32_t ndelta;
    view *view;    /* while this is the newest snapshot of its chain */
    blob *ept;     /* VMX non-root state that is not in memory: the EPT ... */
    blob *io;      /* ... and the I/O bitmap (NULL: none) */
    blob *console; /* console output so far (NULL: none) */
    size_t own;    /* bytes this snapshot holds alone */
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

static void view_free(view *v, uint32_t npages) {
    if (!v) return;
    if (v->pages)
        for (uint32_t i = 0; i < npages; i++)
            page_unref(v->pages[i]);
    free(v->pages);
    free(v);
}

static tlb_ent tlb_of(const cpu_tlb_entry *e) {
    return (tlb_ent){.vpn = e->vpn,
                     .perm = e->vpn ? e->perm & ~(TLB_WK | TLB_WU) : 0,
                     .ppn = e->vpn ? e->ppn : 0};
}

static void core_of(const cpu_t *c, core *k) {
    memset(k, 0, sizeof *k);
    memcpy(k->r, c->r, sizeof k->r);
    k->pc = c->pc;
    k->flags = c->flags;
    k->lf_a = c->lf_a;
    k->lf_b = c->lf_b;
    memcpy(k->cr, c->cr, sizeof k->cr);
    k->lf_op = c->lf_op;
    k->cpl = c->cpl;
    k->vmx_on = c->vmx_on;
    k->nonroot = c->nonroot;
    k->halted = c->halted;
    k->dead = c->dead;
    k->mid_block = c->mid_block;
    k->world = c->world;
    k->cycles = c->cycles;
    k->steps = c->steps;
    k->tsc_offset = c->tsc_offset;
    k->fault_err = c->fault_err;
    k->fault_addr = c->fault_addr;
    k->vmx_ctl = c->vmx_ctl;
    k->vmx_exc = c->vmx_exc;
    k->status_mask = c->status_mask;
    k->status_shadow = c->status_shadow;
    k->ept_pages = c->ept_pages;
    k->timer_period = c->timer_period;
    k->irq_pending = c->irq_pending;
    k->timer_deadline = c->timer_deadline;
    for (int i = 0; i < CPU_NDEV; i++)
        k->dev_at[i] = c->dev[i].fn ? c->dev[i].at : UINT64_MAX;
    k->cost_trap = c->cost_trap;
    k->cost_walk = c->cost_walk;
    k->exit = c->exit;
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
    core_of(c, &s->regs);
    s->npages = c->npages;
    int ok = 1;
    if (prev && prev->npages != c->npages) prev = NULL;
    /* prev's view is reliable for c when prev was the last snapshot taken of c */
    int follows = prev && prev->view && prev->owner == c && prev->gen == c->written_gen;
    view *pv = prev ? prev->view : NULL;
    if (follows && prev->depth + 1 < SNAP_FULL_EVERY) {
        /* a delta: the written pages that changed, the TLB entries that changed */
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->npages; i++)
            n += c->written[i] != 0;
        if (n) {
            s->didx = malloc(n * sizeof *s->didx);
            s->dpages = malloc(n * sizeof *s->dpages);
            if (!s->didx || !s->dpages) goto oom;
        }
        for (uint32_t i = 0; n && i < c->npages; i++) {
            const uint8_t *now = c->mem + ((size_t)i << 12);
            if (!c->written[i] || memcmp(pv->pages[i]->bytes, now, CPU_PAGE) == 0) continue;
            page *p = page_copy(now);
            if (!p) goto oom;
            s->own += sizeof *p + sizeof *s->didx + sizeof *s->dpages;
            s->didx[s->ndelta] = i;
            s->dpages[s->ndelta++] = p;
        }
        int nt = 0;
        tlb_ent now[CPU_TLB_SIZE];
        for (int i = 0; i < CPU_TLB_SIZE; i++) {
            now[i] = tlb_of(&c->tlb[i]);
            nt += memcmp(&now[i], &pv->tlb[i], sizeof now[i]) != 0;
        }
        if (nt) {
            s->tlb = malloc((size_t)nt * sizeof *s->tlb);
            s->tlb_idx = malloc((size_t)nt);
            if (!s->tlb || !s->tlb_idx) goto oom;
            s->own += (size_t)nt * (sizeof *s->tlb + 1);
            for (int i = 0; i < CPU_TLB_SIZE; i++)
                if (memcmp(&now[i], &pv->tlb[i], sizeof now[i]) != 0) {
                    s->tlb_idx[s->ntlb] = (uint8_t)i;
                    s->tlb[s->ntlb++] = now[i];
                }
        }
        /* the view moves on from prev to s */
        for (uint32_t k = 0; k < s->ndelta; k++) {
            page_unref(pv->pages[s->didx[k]]);
            pv->pages[s->didx[k]] = page_ref(s->dpages[k]);
        }
        memcpy(pv->tlb, now, sizeof now);
        s->view = pv;
        prev->view = NULL;
        s->base = prev;
        prev->refs++;
        s->depth = prev->depth + 1;
    } else { /* full: a page pointer for every page, sharing those that did not change */
        view *v = calloc(1, sizeof *v);
        if (!v) goto oom;
        s->view = v;
        s->pages = calloc(c->npages, sizeof *s->pages);
        v->pages = calloc(c->npages, sizeof *v->pages);
        s->tlb = malloc(CPU_TLB_SIZE * sizeof *s->tlb);
        if (!s->pages || !v->pages || !s->tlb) goto oom;
        s->own += (size_t)c->npages * sizeof *s->pages + CPU_TLB_SIZE * sizeof *s->tlb;
        page *zero = NULL; /* the pages of zeros share one copy (most of a fresh machine) */
        for (uint32_t i = 0; i < c->npages; i++) {
            const uint8_t *now = c->mem + ((size_t)i << 12);
            page *old = pv ? pv->pages[i] : prev && prev->pages ? prev->pages[i] : NULL;
            if (old && ((follows && !c->written[i]) || memcmp(old->bytes, now, CPU_PAGE) == 0)) {
                s->pages[i] = page_ref(old);
            } else if (zero && memcmp(zero->bytes, now, CPU_PAGE) == 0) {
                s->pages[i] = page_ref(zero);
            } else if (!zero && !now[0] && memcmp(now, now + 1, CPU_PAGE - 1) == 0) {
                if (!(zero = s->pages[i] = page_copy(now))) goto oom;
                s->own += sizeof(page);
            } else {
                if (!(s->pages[i] = page_copy(now))) goto oom;
                s->own += sizeof(page);
            }
            v->pages[i] = page_ref(s->pages[i]);
        }
        for (int i = 0; i < CPU_TLB_SIZE; i++)
            v->tlb[i] = s->tlb[i] = tlb_of(&c->tlb[i]);
        s->ntlb = CPU_TLB_SIZE;
        if (follows) { /* the chain goes on from s */
            view_free(pv, c->npages);
            prev->view = NULL;
        }
    }
    /* configuration that rarely changes, and VMX non-root state the replay
     * needs that memory does not hold */
    uint8_t cfg[sizeof c->behaviour + sizeof c->cost];
    memcpy(cfg, c->behaviour, sizeof c->behaviour);
    memcpy(cfg + sizeof c->behaviour, c->cost, sizeof c->cost);
    s->config = blob_of(cfg, sizeof cfg, prev ? prev->config : NULL, &s->own, &ok);
    s->ept = blob_of(c->ept, (size_t)c->ept_pages * sizeof *c->ept, prev ? prev->ept : NULL,
                     &s->own, &ok);
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
oom: /* prev may have lost its view: the next snapshot of c is a full one */
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

/* TLB entry i of c, pointing into c's memory (written pages get fast
 * write access again at their next store, through the slow path). */
static void put_tlb(cpu_t *c, int i, const tlb_ent *t) {
    if (!t->vpn) {
        memset(&c->tlb[i], 0, sizeof c->tlb[i]);
        return;
    }
    c->tlb[i] = (cpu_tlb_entry){
        .vpn = t->vpn, .perm = t->perm, .ppn = t->ppn, .host = c->mem + ((size_t)t->ppn << 12)};
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
    const core *r = &s->regs;
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
        if (c->dev[i].fn) c->dev[i].at = r->dev_at[i];
    c->event_at = 0; /* the run loop recomputes it */
    c->irq_pending = r->irq_pending;
    memcpy(c->behaviour, s->config->bytes, sizeof c->behaviour);
    memcpy(c->cost, s->config->bytes + sizeof c->behaviour, sizeof c->cost);
    c->cost_trap = r->cost_trap;
    c->cost_walk = r->cost_walk;
    c->exit = r->exit;
    c->stop_req = 0;
    /* memory and the TLB: the newest copy of each page and entry, from s
     * back to its full snapshot */
    uint8_t *seen = s->base ? calloc(c->npages, 1) : NULL;
    if (s->base && !seen) return -1;
    uint8_t tseen[CPU_TLB_SIZE] = {0};
    const cpu_snapshot *x = s;
    for (; x->base; x = x->base) {
        for (uint32_t k = 0; k < x->ndelta; k++)
            if (!seen[x->didx[k]]) {
                seen[x->didx[k]] = 1;
                put_page(c, x->didx[k], x->dpages[k]);
            }
        for (int k = 0; k < x->ntlb; k++)
            if (!tseen[x->tlb_idx[k]]) {
                tseen[x->tlb_idx[k]] = 1;
                put_tlb(c, x->tlb_idx[k], &x->tlb[k]);
            }
    }
    for (uint32_t i = 0; i < c->npages; i++)
        if (!seen || !seen[i]) put_page(c, i, x->pages[i]);
    for (int i = 0; i < CPU_TLB_SIZE; i++)
        if (!tseen[i]) put_tlb(c, i, &x->tlb[i]);
    free(seen);
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
            for (uint32_t i = 0; i < s->npages; i++)
                page_unref(s->pages[i]);
        view_free(s->view, s->npages);
        for (uint32_t k = 0; k < s->ndelta; k++)
            page_unref(s->dpages[k]);
        free(s->pages);
        free(s->didx);
        free(s->dpages);
        free(s->tlb);
        free(s->tlb_idx);
        blob_unref(s->config);
        blob_unref(s->ept);
        blob_unref(s->io);
        blob_unref(s->console);
        cpu_snapshot *base = s->base;
        free(s);
        s = base; /* a delta let go of the snapshot it follows */
    }
}

uint64_t cpu_snapshot_steps(const cpu_snapshot *s) {
    return s->regs.steps;
}
uint64_t cpu_snapshot_cycles(const cpu_snapshot *s) {
    return s->regs.cycles;
}
size_t cpu_snapshot_own_bytes(const cpu_snapshot *s) {
    return s->own + sizeof *s;
}
int cpu_snapshot_is_full(const cpu_snapshot *s) {
    return s->base == NULL;
}
