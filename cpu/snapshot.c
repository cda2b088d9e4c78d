/* cpu/snapshot.c -- saving and restoring a machine (see snapshot.h). */
#include "cpu/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/mmu.h"

typedef struct page {
    int refs;
    uint8_t bytes[CPU_PAGE];
} page;

struct cpu_snapshot {
    cpu_t regs;     /* the scalar state; its pointers are not used */
    page **pages;   /* one per physical page, shared with other snapshots */
    uint32_t npages;
    char *console;  /* console output so far */
    size_t console_len;
    size_t own;     /* bytes in pages this snapshot created */
};

static page *page_ref(page *p) {
    p->refs++;
    return p;
}

static void page_unref(page *p) {
    if (p && --p->refs == 0) free(p);
}

cpu_snapshot *cpu_snapshot_take(const cpu_t *c, const cpu_snapshot *prev) {
    cpu_snapshot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->regs = *c;
    s->npages = c->npages;
    s->pages = calloc(c->npages, sizeof *s->pages);
    if (!s->pages) {
        free(s);
        return NULL;
    }
    if (prev && prev->npages != c->npages) prev = NULL;
    for (uint32_t i = 0; i < c->npages; i++) {
        const uint8_t *now = c->mem + ((size_t)i << 12);
        if (prev && memcmp(prev->pages[i]->bytes, now, CPU_PAGE) == 0) {
            s->pages[i] = page_ref(prev->pages[i]);
            continue;
        }
        page *p = malloc(sizeof *p);
        if (!p) {
            cpu_snapshot_free(s);
            return NULL;
        }
        p->refs = 1;
        memcpy(p->bytes, now, CPU_PAGE);
        s->pages[i] = p;
        s->own += sizeof *p;
    }
    size_t clen;
    const char *con = cpu_console(c, &clen);
    if (clen) {
        s->console = malloc(clen);
        if (!s->console) {
            cpu_snapshot_free(s);
            return NULL;
        }
        memcpy(s->console, con, clen);
        s->console_len = clen;
    }
    return s;
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
    /* memory: only the pages that differ, dropping their decoded copies */
    for (uint32_t i = 0; i < c->npages; i++) {
        uint8_t *now = c->mem + ((size_t)i << 12);
        if (memcmp(now, s->pages[i]->bytes, CPU_PAGE) == 0) continue;
        if (c->code_page[i]) mmu_code_invalidate(c, i);
        memcpy(now, s->pages[i]->bytes, CPU_PAGE);
    }
    /* the TLB as it was, pointing into this machine's memory */
    for (int i = 0; i < CPU_TLB_SIZE; i++) {
        c->tlb[i] = r->tlb[i];
        if (c->tlb[i].vpn) {
            c->tlb[i].host = c->mem + ((size_t)c->tlb[i].ppn << 12);
            if (c->code_page[c->tlb[i].ppn]) c->tlb[i].perm &= ~(TLB_WK | TLB_WU);
        }
    }
    c->tlb_gen++;
    /* console */
    c->console_len = 0;
    if (s->console_len) {
        if (s->console_len > c->console_cap) {
            char *p = realloc(c->console, s->console_len + 1);
            if (!p) return -1;
            c->console = p;
            c->console_cap = s->console_len;
        }
        memcpy(c->console, s->console, s->console_len);
        c->console_len = s->console_len;
        c->console[c->console_len] = 0;
    } else if (c->console) {
        c->console[0] = 0;
    }
    return 0;
}

void cpu_snapshot_free(cpu_snapshot *s) {
    if (!s) return;
    if (s->pages)
        for (uint32_t i = 0; i < s->npages; i++) page_unref(s->pages[i]);
    free(s->pages);
    free(s->console);
    free(s);
}

uint64_t cpu_snapshot_steps(const cpu_snapshot *s) { return s->regs.steps; }
uint64_t cpu_snapshot_cycles(const cpu_snapshot *s) { return s->regs.cycles; }
size_t cpu_snapshot_own_bytes(const cpu_snapshot *s) { return s->own + sizeof *s; }
