/* cpu/cpu.c -- the executor: fetch through predecoded pages, execute, raise
 * and deliver traps.
 *
 * Privilege rules follow x86 (Intel SDM vol. 3A ch. 5-6) with Popek &
 * Goldberg's vocabulary: a configurable instruction at CPL>0 traps, runs
 * silently without its privileged effect, or leaks the real state, as its
 * entry in c->behaviour says (cpu/policy.c; Robin & Irvine 2000 for x86).
 *
 * The loop is written once and instantiated twice: a fast one (no per-
 * instruction recording, no breakpoints) and a checked one.  Interrupts, the
 * timer and stop requests are looked at on block boundaries: after every
 * control transfer, trap and system-part instruction, so a program observes
 * the same interrupt points whether it is single-stepped or run.
 */
#include "cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/io.h"
#include "cpu/mmu.h"

enum { LF_NONE, LF_ADD, LF_SUB, LF_LOGIC };

/* ---- flags ---------------------------------------------------------------------------- */

/* Lazy condition codes (QEMU's trick, Bellard 2005): arithmetic records its
 * operands, and the flags are computed only when something reads them.
 * LF_ADD and LF_SUB keep a and b; LF_LOGIC keeps the result in lf_a. */
static uint32_t arith_flags(const cpu_t *c) {
    uint32_t a = c->lf_a, b = c->lf_b, r = a, f = 0;
    switch (c->lf_op) {
    case LF_NONE: return c->flags & CPU_FL_ARITH;
    case LF_ADD:
        r = a + b;
        if (r < a) f |= CPU_FL_CF;
        if ((~(a ^ b) & (a ^ r)) >> 31) f |= CPU_FL_OF;
        break;
    case LF_SUB:
        r = a - b;
        if (a < b) f |= CPU_FL_CF;
        if (((a ^ b) & (a ^ r)) >> 31) f |= CPU_FL_OF;
        break;
    default: break;
    }
    if (r == 0) f |= CPU_FL_ZF;
    if (r >> 31) f |= CPU_FL_SF;
    return f;
}

uint32_t cpu_get_flags(const cpu_t *c) {
    return (c->flags & ~CPU_FL_ARITH & CPU_FL_IF) | arith_flags(c) |
           (uint32_t)c->cpl << CPU_FL_CPL_SHIFT;
}

void cpu_set_flags(cpu_t *c, uint32_t v) {
    c->flags = v & (CPU_FL_ARITH | CPU_FL_IF);
    c->lf_op = LF_NONE;
}

/* Condition of a jcc, from the lazy flags. */
static inline int cond(const cpu_t *c, int op) {
    if (c->lf_op == LF_SUB) { /* the common cmp/jcc pair, without materializing */
        uint32_t a = c->lf_a, b = c->lf_b;
        switch (op) {
        case OP_JE: return a == b;
        case OP_JNE: return a != b;
        case OP_JL: return (int32_t)a < (int32_t)b;
        case OP_JGE: return (int32_t)a >= (int32_t)b;
        case OP_JLE: return (int32_t)a <= (int32_t)b;
        case OP_JG: return (int32_t)a > (int32_t)b;
        case OP_JB: return a < b;
        case OP_JAE: return a >= b;
        }
    }
    uint32_t f = arith_flags(c);
    int zf = !!(f & CPU_FL_ZF), sf = !!(f & CPU_FL_SF), of = !!(f & CPU_FL_OF),
        cf = !!(f & CPU_FL_CF);
    switch (op) {
    case OP_JE: return zf;
    case OP_JNE: return !zf;
    case OP_JL: return sf != of;
    case OP_JGE: return sf == of;
    case OP_JLE: return zf || sf != of;
    case OP_JG: return !zf && sf == of;
    case OP_JB: return cf;
    case OP_JAE: return !cf;
    }
    return 0;
}

/* ---- machine --------------------------------------------------------------------------- */

cpu_t *cpu_new(uint32_t mem_bytes) {
    if (mem_bytes == 0 || mem_bytes > 0xfffff000u) return NULL;
    /* Cache-line aligned: where the heap put the struct once made the hot
     * loop 3.5x slower, its lazy-flag pair straddling a page boundary (a
     * split store on every arithmetic instruction). */
    size_t size = (sizeof(cpu_t) + 63) & ~(size_t)63;
    cpu_t *c = aligned_alloc(64, size);
    if (!c) return NULL;
    memset(c, 0, size);
    c->npages = (mem_bytes + CPU_PAGE - 1) / CPU_PAGE;
    c->mem_size = c->npages * CPU_PAGE;
    c->mem = calloc(c->mem_size, 1);
    c->code = calloc(c->npages, sizeof *c->code);
    c->code_page = calloc(c->npages, 1);
    c->snapped = calloc(c->npages, 1);
    c->written = malloc(c->npages);
    if (!c->mem || !c->code || !c->code_page || !c->snapped || !c->written) {
        cpu_free(c);
        return NULL;
    }
    memset(c->written, 1, c->npages); /* no checkpoint yet: every page counts as written */
    c->console_max = 1u << 20;
    cpu_costs_default(c);
    cpu_policy_preset(c, "x86");
    cpu_reset(c);
    return c;
}

void cpu_free(cpu_t *c) {
    if (!c) return;
    if (c->code)
        for (uint32_t i = 0; i < c->npages; i++)
            free(c->code[i]);
    free(c->code);
    free(c->code_page);
    free(c->snapped);
    free(c->written);
    free(c->ept_own);
    free(c->io_own);
    free(c->mem);
    free(c->console);
    free(c->breaks);
    free(c->callouts);
    free(c);
}

void cpu_reset(cpu_t *c) {
    memset(c->r, 0, sizeof c->r);
    memset(c->cr, 0, sizeof c->cr);
    c->pc = 0;
    c->flags = 0;
    c->lf_op = LF_NONE;
    c->cpl = 0;
    c->vmx_on = c->nonroot = c->halted = c->dead = c->mid_block = 0;
    c->timer_period = 0;
    c->timer_deadline = 0;
    c->irq_pending = 0;
    c->console_len = 0;
    c->stop_req = 0;
    cpu_tlb_flush(c);
}

void cpu_context_save(const cpu_t *c, cpu_context *x) {
    memcpy(x->r, c->r, sizeof x->r);
    x->pc = c->pc;
    x->flags = c->flags;
    x->lf_op = c->lf_op;
    x->lf_a = c->lf_a;
    x->lf_b = c->lf_b;
    memcpy(x->cr, c->cr, sizeof x->cr);
    x->cpl = c->cpl;
    x->vmx_on = c->vmx_on;
    x->nonroot = c->nonroot;
    x->halted = c->halted;
    x->dead = c->dead;
    x->mid_block = c->mid_block;
    x->world = c->world;
    x->cycles = c->cycles;
    x->tsc_offset = c->tsc_offset;
    memcpy(x->tlb, c->tlb, sizeof x->tlb);
    x->fault_err = c->fault_err;
    x->fault_addr = c->fault_addr;
    x->timer_period = c->timer_period;
    x->timer_deadline = c->timer_deadline;
    x->irq_pending = c->irq_pending;
    x->vmx_ctl = c->vmx_ctl;
    x->vmx_exc = c->vmx_exc;
    x->ept = c->ept;
    x->ept_pages = c->ept_pages;
    x->io_bitmap = c->io_bitmap;
    x->status_mask = c->status_mask;
    x->status_shadow = c->status_shadow;
    memcpy(x->intercept, c->intercept, sizeof x->intercept);
    x->callouts = c->callouts;
    x->ncallouts = c->ncallouts;
    x->callout_cap = c->callout_cap;
    x->exit = c->exit;
}

void cpu_context_load(cpu_t *c, const cpu_context *x) {
    memcpy(c->r, x->r, sizeof c->r);
    c->pc = x->pc;
    c->flags = x->flags;
    c->lf_op = x->lf_op;
    c->lf_a = x->lf_a;
    c->lf_b = x->lf_b;
    memcpy(c->cr, x->cr, sizeof c->cr);
    c->cpl = x->cpl;
    c->vmx_on = x->vmx_on;
    c->nonroot = x->nonroot;
    c->halted = x->halted;
    c->dead = x->dead;
    c->mid_block = x->mid_block;
    c->world = x->world;
    c->cycles = x->cycles;
    c->tsc_offset = x->tsc_offset;
    /* A page another processor started executing from meanwhile lost write
     * access in that processor's TLB only: take it away here too, so a
     * store to it goes the slow way and drops its decoded copy.  So does a
     * page not written since the last checkpoint: its first store marks it. */
    for (int i = 0; i < CPU_TLB_SIZE; i++) {
        c->tlb[i] = x->tlb[i];
        if (c->tlb[i].vpn && (c->code_page[c->tlb[i].ppn] || !c->written[c->tlb[i].ppn]))
            c->tlb[i].perm &= ~(TLB_WK | TLB_WU);
    }
    c->tlb_gen++;
    c->fault_err = x->fault_err;
    c->fault_addr = x->fault_addr;
    c->timer_period = x->timer_period;
    c->timer_deadline = x->timer_deadline;
    c->event_at = 0; /* the run loop recomputes when to look at the timer */
    c->irq_pending = x->irq_pending;
    c->vmx_ctl = x->vmx_ctl;
    c->vmx_exc = x->vmx_exc;
    c->ept = x->ept;
    c->ept_pages = x->ept_pages;
    c->io_bitmap = x->io_bitmap;
    c->status_mask = x->status_mask;
    c->status_shadow = x->status_shadow;
    memcpy(c->intercept, x->intercept, sizeof c->intercept);
    c->callouts = x->callouts;
    c->ncallouts = x->ncallouts;
    c->callout_cap = x->callout_cap;
    c->exit = x->exit;
}

const char *cpu_exit_name(int r) {
    static const char *const n[CPU_EXIT_COUNT] = {"none",  "budget",   "halt", "breakpoint", "trap",
                                                  "event", "shutdown", "vmx",  "stop", "callout"};
    return r >= 0 && r < CPU_EXIT_COUNT ? n[r] : "?";
}

uint32_t cpu_get_cr(const cpu_t *c, int n) {
    if (n == CR_STATUS) {
        uint32_t v = c->cr[CR_STATUS];
        if (c->nonroot) v = (v & ~c->status_mask) | (c->status_shadow & c->status_mask); /* read shadow */
        return (v & ~CPU_ST_CPL) | c->cpl;
    }
    return n >= 0 && n < CPU_NCR ? c->cr[n] : 0;
}

void cpu_set_cr(cpu_t *c, int n, uint32_t v) {
    switch (n) {
    case CR_STATUS:
        if ((c->cr[CR_STATUS] ^ v) & CPU_ST_PG) cpu_tlb_flush(c);
        c->cr[CR_STATUS] = v & CPU_ST_WRITABLE;
        break;
    case CR_PTBR:
        c->cr[CR_PTBR] = v & PTE_FRAME;
        cpu_tlb_flush(c);
        break;
    case CR_VBR:
    case CR_FADDR:
    case CR_KSP: c->cr[n] = v; break;
    default: break;
    }
}

void cpu_set_cpl(cpu_t *c, int cpl) {
    c->cpl = (uint8_t)(cpl & 3);
}

void cpu_intercept(cpu_t *c, int v, int on) {
    if (v < 0 || v >= CPU_NVEC) return;
    if (on)
        c->intercept[v >> 5] |= 1u << (v & 31);
    else
        c->intercept[v >> 5] &= ~(1u << (v & 31));
}

void cpu_request_stop(cpu_t *c) {
    c->stop_req = 1;
    c->event_at = 0;
}

int cpu_device_add(cpu_t *c, cpu_dev_fn fn, void *ud) {
    for (int i = 0; i < CPU_NDEV; i++)
        if (!c->dev[i].fn) {
            c->dev[i] = (cpu_device){.fn = fn, .ud = ud, .at = UINT64_MAX};
            return i;
        }
    return -1;
}

void cpu_device_remove(cpu_t *c, int slot) {
    if (slot >= 0 && slot < CPU_NDEV) c->dev[slot] = (cpu_device){.at = UINT64_MAX};
}

void cpu_device_at(cpu_t *c, int slot, uint64_t cycle) {
    if (slot < 0 || slot >= CPU_NDEV || !c->dev[slot].fn) return;
    c->dev[slot].at = cycle;
    c->event_at = 0; /* the run loop recomputes when to look next */
}

uint64_t cpu_device_next(const cpu_t *c) {
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < CPU_NDEV; i++)
        if (c->dev[i].fn && c->dev[i].at < next) next = c->dev[i].at;
    return next;
}

void cpu_raise_irq(cpu_t *c, int line) {
    if (line >= 0 && line < 32) c->irq_pending |= 1u << line;
    c->event_at = 0;
}

int cpu_break_add(cpu_t *c, uint32_t va) {
    for (int i = 0; i < c->nbreaks; i++)
        if (c->breaks[i] == va) return 0;
    if (c->nbreaks == c->breaks_cap) {
        int cap = c->breaks_cap ? c->breaks_cap * 2 : 8;
        uint32_t *p = realloc(c->breaks, (size_t)cap * sizeof *p);
        if (!p) return -1;
        c->breaks = p;
        c->breaks_cap = cap;
    }
    c->breaks[c->nbreaks++] = va;
    return 0;
}

int cpu_break_del(cpu_t *c, uint32_t va) {
    for (int i = 0; i < c->nbreaks; i++)
        if (c->breaks[i] == va) {
            c->breaks[i] = c->breaks[--c->nbreaks];
            return 0;
        }
    return -1;
}

static uint32_t callout_slot(uint32_t va, uint32_t cap) { return (va * 2654435761u) & (cap - 1); }

int cpu_is_callout(const cpu_t *c, uint32_t va) {
    if (!c->ncallouts) return 0;
    for (uint32_t i = callout_slot(va, c->callout_cap);; i = (i + 1) & (c->callout_cap - 1)) {
        if (c->callouts[i] == va + 1) return 1;
        if (c->callouts[i] == 0) return 0;
    }
}

int cpu_callout_add(cpu_t *c, uint32_t va) {
    if (cpu_is_callout(c, va)) return 0;
    if ((c->ncallouts + 1) * 2 > c->callout_cap) { /* grow, keeping it half empty */
        uint32_t cap = c->callout_cap ? c->callout_cap * 2 : 256, *old = c->callouts, oc = c->callout_cap;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        c->callouts = t;
        c->callout_cap = cap;
        c->ncallouts = 0;
        for (uint32_t i = 0; i < oc; i++)
            if (old[i]) cpu_callout_add(c, old[i] - 1);
        free(old);
    }
    uint32_t i = callout_slot(va, c->callout_cap);
    while (c->callouts[i]) i = (i + 1) & (c->callout_cap - 1);
    c->callouts[i] = va + 1;
    c->ncallouts++;
    return 0;
}

void cpu_callout_del(cpu_t *c, uint32_t va) {
    if (!cpu_is_callout(c, va)) return;
    /* rebuild without it (deletions are rare: a translated page was written) */
    uint32_t *old = c->callouts, oc = c->callout_cap;
    c->callouts = NULL;
    c->callout_cap = 0;
    c->ncallouts = 0;
    for (uint32_t i = 0; i < oc; i++)
        if (old[i] && old[i] != va + 1) cpu_callout_add(c, old[i] - 1);
    free(old);
}

void cpu_callout_clear(cpu_t *c) {
    free(c->callouts);
    c->callouts = NULL;
    c->ncallouts = c->callout_cap = 0;
}

static int is_break(const cpu_t *c, uint32_t pc) {
    for (int i = 0; i < c->nbreaks; i++)
        if (c->breaks[i] == pc) return 1;
    return 0;
}

void cpu_emit(cpu_t *c, int kind, int a, int b, uint32_t pc, uint32_t x, uint32_t y) {
    if (c->trace) {
        cpu_event e = {.kind = (uint8_t)kind,
                       .mode = cpu_mode_byte(c),
                       .a = (uint8_t)a,
                       .b = (uint8_t)b,
                       .pc = pc,
                       .x = x,
                       .y = y};
        cpu_trace_put(c->trace, c->steps, c->cycles, &e);
    }
    if (kind < 64 && ((c->stop_on >> kind) & 1)) {
        c->stop_req = 2;
        c->event_at = 0;
        c->stop_event = (cpu_event){.kind = (uint8_t)kind,
                                    .mode = cpu_mode_byte(c),
                                    .a = (uint8_t)a,
                                    .b = (uint8_t)b,
                                    .pc = pc,
                                    .x = x,
                                    .y = y};
    }
}

/* ---- traps ----------------------------------------------------------------------------- */

/* Push the five-word trap frame and enter the handler.  Returns 0, or -1 if
 * the delivery itself failed (no handler, frame not writable). */
static int enter_handler(cpu_t *c, int vec, uint32_t err, uint32_t *handler) {
    uint32_t slot = c->cr[CR_VBR] + 4u * (uint32_t)vec, h = 0;
    *handler = 0;
    if (mmu_ept(c, slot, &slot, ACC_READ) || cpu_phys_read(c, slot, &h, 4) || h == 0) return -1;
    *handler = h;
    uint32_t old_sp = c->r[CPU_REG_SP], old_cpl = c->cpl, old_flags = cpu_get_flags(c);
    uint32_t sp = c->cpl > 0 ? c->cr[CR_KSP] : old_sp;
    uint32_t frame[5] = {err, c->pc, old_flags, old_cpl, old_sp};
    uint8_t saved = c->cpl;
    c->cpl = 0; /* the frame is written with supervisor rights */
    sp -= sizeof frame;
    int fv = mmu_access_slow(c, sp, frame, sizeof frame, ACC_WRITE);
    if (fv) {
        c->cpl = saved;
        return fv; /* the fault vector */
    }
    c->r[CPU_REG_SP] = sp;
    c->flags = old_flags & CPU_FL_ARITH; /* materialize the lazy flags; IF cleared */
    c->lf_op = LF_NONE;
    c->pc = h;
    c->halted = 0;
    return 0;
}

static int pf_bits(uint32_t err) {
    return (int)((err & 7) | ((err & PF_FETCH) ? 8 : 0));
}

static int vm_exit(cpu_t *c, int reason, int vector, uint32_t qual, uint32_t insn_pc,
                   const uint32_t w[2], const cpu_insn *in);
static int ept_violation(cpu_t *c, uint32_t insn_pc, const uint32_t w[2], const cpu_insn *in);

/* Deliver vec through the vector table; escalate to #DF, then shut down.
 * Returns 0, -1 (shut down) or CPU_EXIT_VMX (see cpu_deliver). */
static int deliver(cpu_t *c, int vec, int cause, uint32_t err, uint32_t aux, uint32_t from_pc) {
    uint64_t at = c->cycles;
    c->cycles += c->cost_trap;
    uint32_t handler;
    uint8_t mode = cpu_mode_byte(c);
    if (vec == VEC_PF) c->cr[CR_FADDR] = aux;
    int bcode = cause | (vec == VEC_PF ? pf_bits(err) << 4 : 0);
    int fv = enter_handler(c, vec, err, &handler);
    if (fv == FAULT_EPT && c->nonroot) {
        /* the frame's page is write-protected in the EPT (copy-on-write):
         * an EPT violation, with the event being delivered remembered */
        int r = ept_violation(c, c->pc, NULL, NULL);
        c->exit.idt_valid = 1;
        c->exit.idt_vector = vec;
        c->exit.idt_cause = cause;
        c->exit.idt_err = err;
        c->exit.idt_aux = aux;
        return r;
    }
    if (fv == VEC_PF && c->nonroot && ((c->vmx_exc >> VEC_PF) & 1)) {
        /* the frame's page is not mapped yet (a shadow page table miss):
         * exit, and remember the event being delivered (SDM 27.2.4) */
        int r = vm_exit(c, VMX_EXIT_EXCEPTION, VEC_PF, c->fault_addr, c->pc, NULL, NULL);
        c->exit.err = c->fault_err;
        c->exit.addr = c->fault_addr;
        c->exit.cause = CAUSE_PF;
        c->exit.idt_valid = 1;
        c->exit.idt_vector = vec;
        c->exit.idt_cause = cause;
        c->exit.idt_err = err;
        c->exit.idt_aux = aux;
        return r;
    }
    if (fv == 0) {
        if (c->trace) {
            cpu_event e = {.kind = EV_TRAP,
                           .mode = mode,
                           .a = (uint8_t)vec,
                           .b = (uint8_t)bcode,
                           .pc = from_pc,
                           .x = handler,
                           .y = aux};
            cpu_trace_put(c->trace, c->steps, at, &e);
        }
        if ((c->stop_on >> EV_TRAP) & 1) {
            c->stop_req = 2;
            c->event_at = 0;
            c->stop_event = (cpu_event){.kind = EV_TRAP,
                                        .mode = mode,
                                        .a = (uint8_t)vec,
                                        .b = (uint8_t)bcode,
                                        .pc = from_pc,
                                        .x = handler,
                                        .y = aux};
        }
        return 0;
    }
    if (c->trace) {
        cpu_event e = {.kind = EV_TRAP,
                       .mode = mode,
                       .a = (uint8_t)vec,
                       .b = (uint8_t)bcode,
                       .pc = from_pc,
                       .x = 0,
                       .y = aux};
        cpu_trace_put(c->trace, c->steps, at, &e);
    }
    if (vec != VEC_DF) return deliver(c, VEC_DF, CAUSE_DF, 0, (uint32_t)vec, from_pc);
    c->dead = 1;
    cpu_emit(c, EV_SHUTDOWN, vec, 0, from_pc, aux, 0);
    return -1;
}

int cpu_deliver(cpu_t *c, int vector, int cause, uint32_t err, uint32_t aux) {
    /* after an intercepted trap, the event names the instruction that raised it */
    uint32_t at =
        (c->exit.reason == CPU_EXIT_TRAP && c->exit.vector == vector) ? c->exit.pc : c->pc;
    return deliver(c, vector & 0xff, cause, err, aux, at) == CPU_EXIT_VMX ? CPU_EXIT_VMX : 0;
}

/* A trap raised by the running program: intercepted, or delivered.
 * c->pc must hold the return address.  Returns an exit reason or 0. */
/* A VM exit from VMX non-root operation: the guest stops, the VMM decides.
 * c->pc is where the guest goes on if the VMM does nothing. */
static int vm_exit_y(cpu_t *c, int reason, int vector, uint32_t qual, uint32_t insn_pc,
                     const uint32_t w[2], const cpu_insn *in, uint32_t y);
static int vm_exit(cpu_t *c, int reason, int vector, uint32_t qual, uint32_t insn_pc,
                   const uint32_t w[2], const cpu_insn *in) {
    return vm_exit_y(c, reason, vector, qual, insn_pc, w, in, w ? w[0] : 0);
}

/* ... with y the trace record's last field (word 0, or an EPT violation's address) */
static int vm_exit_y(cpu_t *c, int reason, int vector, uint32_t qual, uint32_t insn_pc,
                     const uint32_t w[2], const cpu_insn *in, uint32_t y) {
    cpu_exit *x = &c->exit;
    *x = (cpu_exit){.reason = CPU_EXIT_VMX, .vmx_reason = reason, .qual = qual, .vector = vector,
                    .pc = insn_pc, .next_pc = insn_pc + (in ? in->size : 0)};
    if (w) {
        x->word[0] = w[0];
        x->word[1] = w[1];
    }
    if (in) x->insn = *in;
    cpu_emit(c, EV_VMEXIT, reason, vector, insn_pc, qual, y);
    return CPU_EXIT_VMX;
}

/* An EPT violation (SDM 28.2.3): the qualification says what the access was
 * and what the entry allowed (c->fault_err), exit.addr has the
 * guest-physical address; the trace record carries it in y. */
static int ept_violation(cpu_t *c, uint32_t insn_pc, const uint32_t w[2], const cpu_insn *in) {
    uint32_t gpa = c->fault_addr;
    int r = vm_exit_y(c, VMX_EXIT_EPT, 0, c->fault_err, insn_pc, w, in, gpa);
    c->exit.addr = gpa;
    return r;
}

static int raise_trap(cpu_t *c, int vec, int cause, uint32_t err, uint32_t aux, uint32_t insn_pc,
                      const uint32_t w[2], const cpu_insn *in) {
    if (vec == FAULT_EPT) /* guest-physical memory it does not have, or may not write */
        return ept_violation(c, insn_pc, w, in);
    if (c->nonroot && vec < 32 && ((c->vmx_exc >> vec) & 1)) { /* the exception bitmap */
        int r = vm_exit(c, VMX_EXIT_EXCEPTION, vec, aux, insn_pc, w, in);
        c->exit.err = err;
        c->exit.addr = aux;
        c->exit.cause = cause;
        return r;
    }
    if (cpu_intercepted(c, vec)) {
        cpu_exit *x = &c->exit;
        x->reason = CPU_EXIT_TRAP;
        x->vector = vec;
        x->cause = cause;
        x->err = err;
        x->addr = aux;
        x->pc = insn_pc;
        x->next_pc = insn_pc + (in ? in->size : 0);
        x->word[0] = w ? w[0] : 0;
        x->word[1] = w ? w[1] : 0;
        if (in) x->insn = *in;
        if (vec == VEC_PF) c->cr[CR_FADDR] = aux;
        int bcode = cause | (vec == VEC_PF ? pf_bits(err) << 4 : 0);
        cpu_emit(c, EV_INTERCEPT, vec, bcode, insn_pc, c->pc, aux);
        return CPU_EXIT_TRAP;
    }
    int r = deliver(c, vec, cause, err, aux, insn_pc);
    return r < 0 ? CPU_EXIT_SHUTDOWN : r;
}

/* ---- the loop -------------------------------------------------------------------------- */

/* Timer, interrupts and stop requests; returns an exit reason, -1 when an
 * interrupt was delivered (CPL and pc changed), or 0. */
static void update_event_at(cpu_t *c) {
    int extint = c->nonroot && (c->vmx_ctl & VMX_EXTINT_EXIT); /* interrupts exit whatever IF */
    if (c->stop_req || c->halted || (c->irq_pending && ((c->flags & CPU_FL_IF) || extint)))
        c->event_at = 0;
    else {
        uint64_t dev = cpu_device_next(c);
        c->event_at = c->timer_period && c->timer_deadline < dev ? c->timer_deadline : dev;
    }
}

static int check_events(cpu_t *c) {
    for (int i = 0; i < CPU_NDEV; i++) /* devices due: each called once, in slot order */
        if (c->dev[i].fn && c->cycles >= c->dev[i].at) {
            c->dev[i].at = UINT64_MAX;
            c->dev[i].fn(c->dev[i].ud, c);
        }
    if (c->timer_period && c->cycles >= c->timer_deadline) {
        c->irq_pending |= 1;
        uint64_t late = c->cycles - c->timer_deadline;
        c->timer_deadline += c->timer_period * (late / c->timer_period + 1);
    }
    if (c->irq_pending && c->nonroot && (c->vmx_ctl & VMX_EXTINT_EXIT)) /* the VMM acknowledges it */
        return vm_exit(c, VMX_EXIT_EXTINT, VEC_IRQ0 + __builtin_ctz(c->irq_pending),
                       (uint32_t)__builtin_ctz(c->irq_pending), c->pc, NULL, NULL);
    if (c->irq_pending && (c->flags & CPU_FL_IF)) {
        int line = __builtin_ctz(c->irq_pending);
        c->irq_pending &= ~(1u << line);
        int r = raise_trap(c, VEC_IRQ0 + line, CAUSE_IRQ, 0, (uint32_t)line, c->pc, NULL, NULL);
        return r ? r : -1;
    }
    if (c->stop_req) {
        int r = c->stop_req == 2 ? CPU_EXIT_EVENT : CPU_EXIT_STOP;
        c->stop_req = 0;
        update_event_at(c);
        return r;
    }
    update_event_at(c);
    return 0;
}

/* hlt: idle until the timer fires or a device's deadline (whichever comes
 * first), or stop for good. */
static int do_halt(cpu_t *c, uint32_t pc) {
    if (c->irq_pending && (c->flags & CPU_FL_IF)) return 0;
    uint64_t wake = cpu_device_next(c);
    if (c->timer_period && c->timer_deadline < wake) wake = c->timer_deadline;
    if ((c->flags & CPU_FL_IF) && wake != UINT64_MAX) {
        uint64_t idle = wake > c->cycles ? wake - c->cycles : 0;
        int by_device = !(c->timer_period && c->timer_deadline == wake); /* a = 1: a device wakes it */
        cpu_emit(c, EV_HALT, by_device, 0, pc, (uint32_t)idle, (uint32_t)(idle >> 32));
        c->cycles += idle;
        return 0;
    }
    c->halted = 1;
    cpu_emit(c, EV_HALT, 0, 0, pc, 0, 0);
    c->exit.reason = CPU_EXIT_HALT;
    c->exit.pc = pc;
    return CPU_EXIT_HALT;
}

static int iret(cpu_t *c, int behaviour) {
    uint32_t f[5];
    int v = mmu_access_slow(c, c->r[CPU_REG_SP], f, sizeof f, ACC_READ);
    if (v) return v;
    uint32_t new_cpl = f[3] & 3, from = c->pc;
    if (behaviour == SILENT) { /* cannot raise privilege or touch IF */
        if (new_cpl < c->cpl) new_cpl = c->cpl;
        f[2] = (f[2] & ~CPU_FL_IF) | (c->flags & CPU_FL_IF);
    }
    cpu_emit(c, EV_IRET, (int)new_cpl, 0, from, f[1], 0);
    c->pc = f[1];
    cpu_set_flags(c, f[2]);
    c->cpl = (uint8_t)new_cpl;
    c->r[CPU_REG_SP] = f[4];
    return 0;
}

static uint32_t cpuid(const cpu_t *c, uint32_t leaf) {
    switch (leaf) {
    case 0: return 0x42414c56u;         /* "VLAB" */
    case 1: return 1u | 2u | (1u << 5); /* paging, tsc, vmx */
    case 2: return c->mem_size / 1024;
    default: return 0;
    }
}

/* ---- the system part, out of the hot loop ------------------------------------------------ */

/* In VMX non-root operation, the exit an instruction causes under the
 * current controls (SDM 25.1), or -1.  CPUID always exits. */
static int nonroot_exit(const cpu_t *c, const cpu_insn *in) {
    uint32_t ctl = c->vmx_ctl;
    switch (in->op) {
    case OP_CPUID: return VMX_EXIT_CPUID;
    case OP_HLT: return (ctl & VMX_HLT_EXIT) ? VMX_EXIT_HLT : -1;
    case OP_RDTSC: return (ctl & VMX_RDTSC_EXIT) ? VMX_EXIT_RDTSC : -1;
    case OP_INVLPG: return (ctl & VMX_INVLPG_EXIT) ? VMX_EXIT_INVLPG : -1;
    case OP_SIDT: return (ctl & VMX_DESC_EXIT) ? VMX_EXIT_DESC : -1;
    case OP_WRCR:
        if (in->ra == CR_STATUS && ((c->r[in->rb] ^ c->status_shadow) & c->status_mask)) return VMX_EXIT_CR;
        if (in->ra == CR_VBR && (ctl & VMX_DESC_EXIT)) return VMX_EXIT_DESC; /* like LIDT */
        return (ctl & VMX_CR3_EXIT) && in->ra == CR_PTBR ? VMX_EXIT_CR : -1;
    case OP_RDCR:
        if (in->rb == CR_VBR && (ctl & VMX_DESC_EXIT)) return VMX_EXIT_DESC;
        return (ctl & VMX_CR3_EXIT) && in->rb == CR_PTBR ? VMX_EXIT_CR : -1;
    case OP_IN:
    case OP_OUT: {
        uint32_t port = (uint32_t)in->imm & 0xffff;
        if ((ctl & VMX_IO_EXIT) || (c->io_bitmap && ((c->io_bitmap[port >> 3] >> (port & 7)) & 1)))
            return VMX_EXIT_IO;
        return -1;
    }
    default: return -1;
    }
}

static uint32_t nonroot_qual(const cpu_t *c, const cpu_insn *in) {
    switch (in->op) {
    case OP_INVLPG: return c->r[in->ra];
    case OP_WRCR: return (uint32_t)in->ra | (uint32_t)in->rb << 8;
    case OP_RDCR: return (uint32_t)in->rb | 0x10 | (uint32_t)in->ra << 8;
    case OP_IN: return (uint32_t)in->imm & 0xffff;
    case OP_OUT: return ((uint32_t)in->imm & 0xffff) | 0x10000;
    default: return 0;
    }
}

/* Execute one system-part instruction at c->pc (cycles and steps at its
 * start).  Retires it (cost, step) and leaves c->pc at the next instruction
 * to run.  Returns 0 or an exit reason. */
static int exec_system(cpu_t *c, const cpu_insn *in, uint32_t cost) {
    uint32_t pc = c->pc, npc = pc + in->size, w[2];
    uint32_t *R = c->r;
    int op = in->op, ra = in->ra, rb = in->rb, rc = 0, beh = TRAP, fv = 0;
    cpu_encode(in, w);
#define RETIRE()                                                                                   \
    do {                                                                                           \
        c->cycles += cost;                                                                         \
        c->steps++;                                                                                \
    } while (0)
#define TRAP_OUT(vec, cause, err, aux)                                                             \
    do {                                                                                           \
        rc = raise_trap(c, vec, cause, err, aux, pc, w, in);                                       \
        RETIRE();                                                                                  \
        return rc;                                                                                 \
    } while (0)

    if (op >= OP_VMXON && op <= OP_VMCALL) {
        if (c->nonroot) { /* always a VM exit: the VMM decides (VT-x, SDM 25.1.2) */
            rc = vm_exit(c, op == OP_VMCALL ? VMX_EXIT_VMCALL : VMX_EXIT_VMX_INSN, 0, 0, pc, w, in);
            RETIRE();
            return rc;
        }
        if (!c->vmx_on && op != OP_VMXON) TRAP_OUT(VEC_UD, CAUSE_UD, 0, w[0]);
        if (op == OP_VMCALL && c->cpl > 0) TRAP_OUT(VEC_GP, CAUSE_PRIV, 0, w[0]); /* SDM: #GP(0) */
    }
    if (c->cpl > 0 && cpu_op_configurable(op)) {
        beh = c->behaviour[op];
        if (op == OP_RDTSC && (c->cr[CR_STATUS] & CPU_ST_TSD)) beh = TRAP;
        if (beh == TRAP) TRAP_OUT(VEC_GP, CAUSE_PRIV, 0, w[0]);
        cpu_emit(c, EV_SENSITIVE, beh, op, pc, w[0], 0);
    }
    if (c->nonroot) { /* the VMCS's controls: does this instruction exit? */
        int reason = nonroot_exit(c, in);
        if (reason >= 0) {
            rc = vm_exit(c, reason, 0, nonroot_qual(c, in), pc, w, in);
            RETIRE();
            return rc;
        }
    }
    c->pc = npc;
    switch (op) {
    case OP_CLI:
        if (beh != SILENT) c->flags &= ~CPU_FL_IF;
        break;
    case OP_STI:
        if (beh != SILENT) c->flags |= CPU_FL_IF;
        break;
    case OP_PUSHF: {
        uint32_t f = cpu_get_flags(c);
        if ((fv = mmu_access_slow(c, R[CPU_REG_SP] - 4, &f, 4, ACC_WRITE))) break;
        R[CPU_REG_SP] -= 4;
        break;
    }
    case OP_POPF: {
        uint32_t v;
        if ((fv = mmu_access_slow(c, R[CPU_REG_SP], &v, 4, ACC_READ))) break;
        R[CPU_REG_SP] += 4;
        if (beh == SILENT) v = (v & ~CPU_FL_IF) | (c->flags & CPU_FL_IF);
        cpu_set_flags(c, v);
        break;
    }
    case OP_HLT:
        if (beh == SILENT) break;
        rc = do_halt(c, pc);
        break;
    case OP_IRET:
        c->pc = pc;
        fv = iret(c, beh);
        break;
    case OP_IN: {
        uint32_t v = 0xffffffffu;
        if (beh != SILENT) io_port(c, 0, (uint16_t)in->imm, &v, pc);
        R[ra] = v;
        break;
    }
    case OP_OUT:
        if (beh != SILENT) {
            uint32_t v = R[rb];
            io_port(c, 1, (uint16_t)in->imm, &v, pc);
        }
        break;
    case OP_WRCR:
        if (beh == SILENT) break;
        if (c->nonroot && ra == CR_STATUS) /* the bits the VMM owns stay as they are */
            cpu_set_cr(c, ra, (R[rb] & ~c->status_mask) | (c->cr[CR_STATUS] & c->status_mask));
        else
            cpu_set_cr(c, ra, R[rb]);
        if (ra == CR_PTBR) cpu_emit(c, EV_ASPACE, 0, 0, pc, R[rb], 0); /* an address-space switch */
        break;
    case OP_RDCR: R[ra] = cpu_get_cr(c, rb); break;
    case OP_INVLPG:
        if (beh != SILENT) mmu_invlpg(c, R[ra]);
        break;
    case OP_SIDT: R[ra] = c->cr[CR_VBR]; break;
    case OP_SMSW: R[ra] = cpu_get_cr(c, CR_STATUS); break;
    case OP_RDTSC: {
        uint64_t t = c->cycles + (uint64_t)c->tsc_offset;
        R[ra] = (uint32_t)t;
        R[rb] = (uint32_t)(t >> 32);
        break;
    }
    case OP_CPUID: R[ra] = cpuid(c, R[rb]); break;
    case OP_VMXON:
        if (beh == SILENT) break;
        if (c->vmx_on) /* VMfailInvalid: CF=1, other arithmetic flags cleared (SDM 30.2) */
            cpu_set_flags(c, (c->flags & CPU_FL_IF) | CPU_FL_CF);
        else
            c->vmx_on = 1;
        break;
    case OP_VMXOFF:
        if (beh != SILENT) c->vmx_on = 0;
        break;
    case OP_VMCALL: /* in VMX root with no SMM monitor: VMfailInvalid (SDM 30.3, VMCALL) */
        cpu_set_flags(c, (c->flags & CPU_FL_IF) | CPU_FL_CF);
        break;
    case OP_VMLAUNCH:
    case OP_VMRESUME:
    case OP_VMREAD:
    case OP_VMWRITE:
        if (beh == SILENT) break;
        c->pc = pc;
        c->exit = (cpu_exit){.reason = CPU_EXIT_VMX, .pc = pc, .next_pc = npc, .insn = *in};
        c->exit.word[0] = w[0];
        c->exit.word[1] = w[1];
        rc = CPU_EXIT_VMX;
        break;
    default: break;
    }
    if (fv) {
        c->pc = pc;
        TRAP_OUT(fv, fv == VEC_PF ? CAUSE_PF : CAUSE_BUS, fv == VEC_PF ? c->fault_err : 0,
                 c->fault_addr);
    }
    RETIRE();
    if (!rc && c->nonroot && (c->vmx_ctl & VMX_INTWIN_EXIT) && (c->flags & CPU_FL_IF) &&
        (op == OP_STI || op == OP_POPF || op == OP_IRET)) /* the interrupt window opened */
        return vm_exit(c, VMX_EXIT_INTWIN, 0, 0, c->pc, NULL, NULL);
    return rc;
#undef TRAP_OUT
#undef RETIRE
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Dispatch: with GCC or Clang each handler jumps straight to the next one
 * through a table of label addresses (threaded code, as in Lua's lvm.c with
 * ljumptab.h); elsewhere a switch runs the same bodies. */
#if defined(__GNUC__) && !defined(VLAB_NO_JUMPTABLE)
#define vmdispatch(o) goto *disptab[o];
#define vmcase(l) L_##l:
#define vmnext goto *disptab[ip->op]
#else
#define vmdispatch(o) switch (o)
#define vmcase(l) case l:
#define vmnext goto dispatch
#endif

/* The hot state lives in locals: pc, the decoded slot ip, the cycle count,
 * and the steps left in this call.  SAVE() hands it to the machine before
 * anything out of line looks at it; LOAD() takes it back. */
#define SAVE()                                                                                     \
    do {                                                                                           \
        FLUSH_BLOCK();                                                                             \
        c->pc = pc;                                                                                \
        c->steps = end - left;                                                                     \
        c->cycles = cyc;                                                                           \
    } while (0)
#define LOAD()                                                                                     \
    do {                                                                                           \
        pc = c->pc;                                                                                \
        left = end - c->steps;                                                                     \
        cyc = c->cycles;                                                                           \
        event_at = c->event_at;                                                                    \
        if (c->tlb_gen != tlb_gen) { /* a TLB entry changed: look the code page up again */        \
            tlb_gen = c->tlb_gen;                                                                  \
            page_va = 1;                                                                           \
        }                                                                                          \
    } while (0)

/* Retire the instruction at ip, size n bytes, and go on to the next one in
 * the same page (the page's sentinel slot catches running off its end). */
#define NEXT(op, n)                                                                                \
    do {                                                                                           \
        cyc += c->cost[op];                                                                        \
        pc += (n);                                                                                 \
        ip += (n) / 4;                                                                             \
        if (unlikely(--left == 0)) goto budget_mid;                                                \
        PRE_INSN();                                                                                \
        vmnext;                                                                                    \
    } while (0)
/* Retire a control transfer to npc: a block boundary. */
#define JUMP(op, target)                                                                           \
    do {                                                                                           \
        cyc += c->cost[op];                                                                        \
        pc = (target);                                                                             \
        if (unlikely(--left == 0)) goto budget;                                                    \
        goto block;                                                                                \
    } while (0)

/* Before each instruction of the checked loop: breakpoints, and the trace.
 * Instructions that run straight through one page are gathered into a block
 * (one EV_BLOCK record, cpu/event.h); the block is written when the run
 * leaves the straight line or anything out of line happens (SAVE). */
#define PRE_INSN()                                                                                 \
    do {                                                                                           \
        if (checked) {                                                                             \
            if (has_breaks) {                                                                      \
                if (!skip_break && c->nbreaks && is_break(c, pc)) {                                \
                    SAVE();                                                                        \
                    cpu_emit(c, EV_BREAK, 0, 0, pc, 0, 0);                                         \
                    c->exit.pc = pc;                                                               \
                    rc = CPU_EXIT_BREAK;                                                           \
                    goto out;                                                                      \
                }                                                                                  \
                if (c->cpl != 3 && c->ncallouts && ip->op <= OP_INVALID && /* never skipped */    \
                    cpu_is_callout(c, pc)) {                                                       \
                    SAVE();                                                                        \
                    c->exit = (cpu_exit){.reason = CPU_EXIT_CALLOUT, .pc = pc,                     \
                                         .next_pc = pc + ip->size, .insn = *ip};                   \
                    cpu_encode(ip, c->exit.word);                                                  \
                    rc = CPU_EXIT_CALLOUT;                                                         \
                    goto out;                                                                      \
                }                                                                                  \
                skip_break = 0;                                                                    \
            }                                                                                      \
            if (trace_on && ip->op <= OP_INVALID) { /* ip is in the page: see PRE_INSN_TMP */      \
                if (!blk.count) {                                                                  \
                    blk.pc = pc;                                                                   \
                    blk.ppn = page_ppn;                                                            \
                    blk.step = end - left;                                                         \
                    blk.cycle = cyc;                                                               \
                    blk.mode = mode;                                                               \
                    blk.cost = 0;                                                                  \
                }                                                                                  \
                blk.count++;                                                                       \
                blk.cost += c->cost[ip->op];                                                       \
            }                                                                                      \
        }                                                                                          \
    } while (0)
/* The same for an instruction decoded outside the pages (tmp). */
#define PRE_INSN_TMP()                                                                             \
    do {                                                                                           \
        if (checked) {                                                                             \
            FLUSH_BLOCK();                                                                         \
            if (has_breaks && !skip_break && c->nbreaks && is_break(c, pc)) {                      \
                SAVE();                                                                            \
                cpu_emit(c, EV_BREAK, 0, 0, pc, 0, 0);                                             \
                c->exit.pc = pc;                                                                   \
                rc = CPU_EXIT_BREAK;                                                               \
                goto out;                                                                          \
            }                                                                                      \
            skip_break = 0;                                                                        \
            if (trace_on) record_insn(c, ip, pc, mode, end - left, cyc);                           \
        }                                                                                          \
    } while (0)
#define FLUSH_BLOCK()                                                                              \
    do {                                                                                           \
        if (checked && blk.count) {                                                                \
            cpu_trace *t_ = c->trace;                                                              \
            if (likely(c->snapped[blk.ppn] && blk.step == t_->step && blk.cycle == t_->cycle &&    \
                       t_->n + 1 < t_->cap)) { /* the reader's clock agrees: just the record */    \
                cpu_event eb_ = {.kind = EV_BLOCK,                                                 \
                                 .mode = blk.mode,                                                 \
                                 .pc = blk.pc,                                                     \
                                 .x = blk.count | blk.ppn << 12};                                  \
                cpu_event *last_ = t_->n ? &t_->buf[t_->n - 1] : NULL;                             \
                if (last_ && last_->kind == EV_REPEAT && t_->n >= 2 &&                             \
                    !memcmp(&t_->buf[t_->n - 2], &eb_, sizeof eb_) && blk.cost == t_->rep_cost &&  \
                    last_->x < UINT32_MAX)                                                         \
                    last_->x++; /* the same block again: count it */                               \
                else if (last_ && !memcmp(last_, &eb_, sizeof eb_) && blk.cost == t_->rep_cost)    \
                    t_->buf[t_->n++] = (cpu_event){.kind = EV_REPEAT, .x = 1};                     \
                else                                                                               \
                    t_->buf[t_->n++] = eb_;                                                        \
                t_->rep_cost = blk.cost;                                                           \
                t_->step += blk.count;                                                             \
                t_->cycle += blk.cost;                                                             \
            } else {                                                                               \
                record_block(c, &blk);                                                             \
            }                                                                                      \
            blk.count = 0;                                                                         \
        }                                                                                          \
    } while (0)

typedef struct pending_block {
    uint32_t pc, next, ppn, count, cost;
    uint8_t mode;
    uint64_t step, cycle;
} pending_block;

static void record_block(cpu_t *c, const pending_block *b) {
    cpu_trace *t = c->trace;
    if (!c->snapped[b->ppn]) { /* the reader decodes the block from a copy of its page */
        cpu_event h = {.kind = EV_PAGE, .x = CPU_PAGE, .y = b->ppn};
        cpu_trace_payload(t, b->step, b->cycle, &h, c->mem + ((size_t)b->ppn << 12));
        c->snapped[b->ppn] = 1;
    }
    cpu_event e = {.kind = EV_BLOCK, .mode = b->mode, .pc = b->pc, .x = b->count | b->ppn << 12};
    cpu_trace_put(t, b->step, b->cycle, &e);
    t->rep_cost = b->cost;
    t->step = b->step + b->count;
    t->cycle = b->cycle + b->cost;
}

/* One instruction that is not in a predecoded page (straddling, unaligned). */
static void record_insn(cpu_t *c, const cpu_insn *ip, uint32_t pc, uint8_t mode, uint64_t step,
                        uint64_t cycle) {
    uint32_t w[2] = {0, 0}, ic = c->cost[ip->op];
    cpu_encode(ip, w);
    cpu_event e = {.kind = EV_INSN,
                   .mode = mode,
                   .b = (uint8_t)(ic > 255 ? 255 : ic),
                   .pc = pc,
                   .x = w[0],
                   .y = w[1]};
    cpu_trace_put(c->trace, step, cycle, &e); /* a cost above 255 is corrected by the next sync */
}

/* A data access through the TLB fast path, or the slow path on a miss. */
#define MEM(acc, need, addr, buf, n, fastcond, fastop)                                             \
    do {                                                                                           \
        uint32_t a_ = (addr);                                                                      \
        cpu_tlb_entry *e_ = &c->tlb[(a_ >> 12) & (CPU_TLB_SIZE - 1)];                              \
        if (likely(e_->vpn == (a_ >> 12) + 1 && (e_->perm & (need)) && (fastcond))) {              \
            uint8_t *h_ = e_->host + (a_ & 0xfff);                                                 \
            fastop;                                                                                \
        } else {                                                                                   \
            SAVE();                                                                                \
            fv = mmu_access_slow(c, a_, (buf), (n), (acc));                                        \
            LOAD();                                                                                \
            if (fv) goto mem_fault;                                                                \
        }                                                                                          \
    } while (0)
#define LD32(addr, dst)                                                                            \
    MEM(ACC_READ, need_r, addr, &(dst), 4, (a_ & 0xfff) <= 0xffc, memcpy(&(dst), h_, 4))
#define ST32(addr, val)                                                                            \
    do {                                                                                           \
        uint32_t v_ = (val);                                                                       \
        MEM(ACC_WRITE, need_w, addr, &v_, 4, (a_ & 0xfff) <= 0xffc, memcpy(h_, &v_, 4));           \
    } while (0)
#define LD8(addr, dst)                                                                             \
    do {                                                                                           \
        uint8_t b_ = 0;                                                                            \
        MEM(ACC_READ, need_r, addr, &b_, 1, 1, b_ = *h_);                                          \
        (dst) = b_;                                                                                \
    } while (0)
#define ST8(addr, val)                                                                             \
    do {                                                                                           \
        uint8_t b_ = (uint8_t)(val);                                                               \
        MEM(ACC_WRITE, need_w, addr, &b_, 1, 1, *h_ = b_);                                         \
    } while (0)

#define LF_SET(op_, a_, b_)                                                                        \
    do {                                                                                           \
        c->lf_op = (op_);                                                                          \
        c->lf_a = (a_);                                                                            \
        c->lf_b = (b_);                                                                            \
    } while (0)

#define RUN_LOOP run_fast
#define CHECKED 0
#include "cpu/loop.inc"
#undef RUN_LOOP
#undef CHECKED

#define RUN_LOOP run_checked
#define CHECKED 1
#include "cpu/loop.inc"
#undef RUN_LOOP
#undef CHECKED

int cpu_run(cpu_t *c, uint64_t max_steps) {
    if (max_steps == 0) return CPU_EXIT_BUDGET;
    if (c->nbreaks || (c->trace && c->trace->insns) || (c->ncallouts && c->cpl != 3))
        return run_checked(c, max_steps);
    return run_fast(c, max_steps);
}
