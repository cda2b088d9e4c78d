/* cpu/event.c -- recording and reading the event stream (see cpu/event.h). */
#include "cpu/event.h"

#include "cpu/isa.h"

#include <stdlib.h>
#include <string.h>

void cpu_trace_init(cpu_trace *t, size_t cap) {
    memset(t, 0, sizeof *t);
    t->cap = cap ? cap : 4096;
    t->buf = malloc(t->cap * sizeof *t->buf);
    if (!t->buf) abort();
}

void cpu_trace_free(cpu_trace *t) {
    free(t->buf);
    t->buf = NULL;
    t->n = t->cap = 0;
}

int cpu_trace_add_sink(cpu_trace *t, cpu_trace_sink fn, void *ud) {
    if (t->nsinks == (int)(sizeof t->sinks / sizeof t->sinks[0])) return -1;
    t->sinks[t->nsinks] = fn;
    t->sink_ud[t->nsinks] = ud;
    t->nsinks++;
    return 0;
}

void cpu_trace_flush(cpu_trace *t) {
    if (t->n == 0) return;
    for (int i = 0; i < t->nsinks; i++)
        t->sinks[i](t->sink_ud[i], t->buf, t->n);
    t->n = 0;
}

static inline cpu_event *slot(cpu_trace *t) {
    if (t->n == t->cap) cpu_trace_flush(t);
    return &t->buf[t->n++];
}

static void sync(cpu_trace *t, uint64_t step, uint64_t cycle) {
    cpu_event *e = slot(t);
    e->kind = EV_SYNC;
    e->mode = 0;
    e->pc = (uint32_t)step;
    e->a = (uint8_t)(step >> 32);
    e->b = (uint8_t)(step >> 40);
    e->x = (uint32_t)cycle;
    e->y = (uint32_t)(cycle >> 32);
    t->step = step;
    t->cycle = cycle;
}

void cpu_trace_put(cpu_trace *t, uint64_t step, uint64_t cycle, const cpu_event *ev) {
    if (step != t->step || cycle != t->cycle) sync(t, step, cycle);
    *slot(t) = *ev;
    if (ev->kind == EV_INSN) {
        t->step++;
        t->cycle += ev->b;
    }
}

void cpu_trace_payload(cpu_trace *t, uint64_t step, uint64_t cycle, const cpu_event *head,
                       const void *data) {
    cpu_trace_put(t, step, cycle, head);
    const char *p = data;
    for (size_t off = 0; off < head->x; off += sizeof(cpu_event)) {
        cpu_event *e = slot(t);
        memset(e, 0, sizeof *e);
        size_t k = head->x - off < sizeof *e ? head->x - off : sizeof *e;
        memcpy(e, p + off, k);
    }
}

void cpu_trace_text(cpu_trace *t, uint64_t step, uint64_t cycle, uint8_t mode, int kind,
                    const char *s, size_t len) {
    if (len > UINT32_MAX) len = UINT32_MAX;
    cpu_event h = {.kind = EV_TEXT, .mode = mode, .a = (uint8_t)kind, .x = (uint32_t)len};
    cpu_trace_payload(t, step, cycle, &h, s);
}

/* ---- reading ------------------------------------------------------------------------------ */

void cpu_reader_init(cpu_trace_reader *r) {
    memset(r, 0, sizeof *r);
}

void cpu_reader_free(cpu_trace_reader *r) {
    for (int i = 0; i < r->nctx; i++) {
        for (uint32_t p = 0; p < r->ctx[i].npages; p++)
            free(r->ctx[i].pages[p]);
        free(r->ctx[i].pages);
        free(r->ctx[i].cost);
    }
    free(r->ctx);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static cpu_reader_ctx *ctx_of(cpu_trace_reader *r) {
    if (r->cur >= r->nctx) {
        cpu_reader_ctx *p = realloc(r->ctx, (size_t)(r->cur + 1) * sizeof *p);
        if (!p) abort();
        memset(p + r->nctx, 0, (size_t)(r->cur + 1 - r->nctx) * sizeof *p);
        r->ctx = p;
        r->nctx = r->cur + 1;
    }
    return &r->ctx[r->cur];
}

static void keep_page(cpu_trace_reader *r, uint32_t ppn, const char *bytes, size_t len) {
    cpu_reader_ctx *x = ctx_of(r);
    if (ppn >= x->npages) {
        uint32_t n = ppn + 1 > x->npages * 2 ? ppn + 1 : x->npages * 2;
        uint8_t **p = realloc(x->pages, n * sizeof *p);
        if (!p) abort();
        memset(p + x->npages, 0, (n - x->npages) * sizeof *p);
        x->pages = p;
        x->npages = n;
    }
    if (!x->pages[ppn] && !(x->pages[ppn] = malloc(4096))) abort();
    memset(x->pages[ppn], 0, 4096);
    memcpy(x->pages[ppn], bytes, len < 4096 ? len : 4096);
}

static uint32_t cost_of(const cpu_reader_ctx *x, int op) {
    if (op >= OP_COUNT) return 1;
    return x->cost ? x->cost[op] : cpu_isa[op].cycles;
}

/* Hand out the instructions of an EV_BLOCK, decoded from the page snapshot. */
static void expand_block(cpu_trace_reader *r, const cpu_event *e, cpu_reader_fn fn, void *ud) {
    cpu_reader_ctx *x = ctx_of(r);
    uint64_t cycle0 = r->cycle;
    uint32_t count = e->x & 0xfff, ppn = e->x >> 12, pc = e->pc;
    const uint8_t *page = ppn < x->npages ? x->pages[ppn] : NULL;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t off = pc & 0xfff, w0 = 0, w1 = 0;
        if (page) {
            memcpy(&w0, page + off, 4);
            if (off <= 0xff8) memcpy(&w1, page + off + 4, 4);
        }
        cpu_insn in = cpu_decode(w0, w1);
        uint32_t cost = cost_of(x, in.op);
        if (fn) { /* one EV_INSN, exactly as if it had been recorded alone */
            cpu_stamped s = {.ev = {.kind = EV_INSN,
                                    .mode = e->mode,
                                    .b = (uint8_t)(cost > 255 ? 255 : cost),
                                    .pc = pc,
                                    .x = w0,
                                    .y = in.size == 8 ? w1 : 0},
                             .step = r->step,
                             .cycle = r->cycle};
            fn(ud, &s);
        }
        r->step++;
        r->cycle += cost;
        pc += in.size;
    }
    r->last_block = *e;
    r->last_block_cost = r->cycle - cycle0;
}

static void emit(cpu_trace_reader *r, const cpu_event *e, cpu_reader_fn fn, void *ud) {
    if (!fn) return;
    cpu_stamped s = {.ev = *e, .step = r->step, .cycle = r->cycle};
    if (e->kind == EV_TEXT) {
        s.text = r->text ? r->text : "";
        s.text_len = r->text_len;
    }
    fn(ud, &s);
}

void cpu_reader_feed(cpu_trace_reader *r, const cpu_event *ev, size_t n, cpu_reader_fn fn,
                     void *ud) {
    for (size_t i = 0; i < n; i++) {
        const cpu_event *e = &ev[i];
        if (r->text_need) { /* a payload record */
            size_t k = r->text_need < sizeof *e ? r->text_need : sizeof *e;
            memcpy(r->text + r->text_len, e, k);
            r->text_len += k;
            r->text_need -= k;
            if (r->text_need) continue;
            if (r->text_ev.kind == EV_PAGE)
                keep_page(r, r->text_ev.y, r->text, r->text_len);
            else
                emit(r, &r->text_ev, fn, ud);
            continue;
        }
        switch (e->kind) {
        case EV_SYNC:
            r->step = e->pc | (uint64_t)e->a << 32 | (uint64_t)e->b << 40;
            r->cycle = e->x | (uint64_t)e->y << 32;
            break;
        case EV_TEXT:
        case EV_PAGE:
            if (e->x > r->text_cap) {
                char *p = realloc(r->text, e->x);
                if (!p) abort();
                r->text = p;
                r->text_cap = e->x;
            }
            r->text_ev = *e;
            r->text_len = 0;
            r->text_need = e->x;
            if (!r->text_need && e->kind == EV_TEXT) emit(r, e, fn, ud);
            break;
        case EV_BLOCK:
            if (r->blocks == READ_SKIP) {
                r->step += e->x & 0xfff;
                r->last_block = *e;
            } else {
                expand_block(r, e, r->blocks == READ_INSNS ? fn : NULL, ud);
            }
            break;
        case EV_REPEAT:
            if (r->blocks == READ_INSNS) {
                cpu_event b = r->last_block;
                for (uint32_t k = 0; k < e->x; k++)
                    expand_block(r, &b, fn, ud);
            } else {
                r->step += (uint64_t)(r->last_block.x & 0xfff) * e->x;
                r->cycle += r->last_block_cost * e->x;
            }
            break;
        case EV_COST: {
            cpu_reader_ctx *x = ctx_of(r);
            if (!x->cost) {
                if (!(x->cost = malloc(OP_COUNT * sizeof *x->cost))) abort();
                for (int op = 0; op < OP_COUNT; op++)
                    x->cost[op] = cpu_isa[op].cycles;
            }
            if (e->a < OP_COUNT) x->cost[e->a] = e->x;
            break;
        }
        case EV_CONTEXT:
            r->cur = e->a;
            emit(r, e, fn, ud);
            break;
        case EV_INSN:
            emit(r, e, fn, ud);
            r->step++;
            r->cycle += e->b;
            break;
        default: emit(r, e, fn, ud); break;
        }
    }
}

static const char *const hv_names[EV_HV_LAST - EV_HV_EMULATE] = {
    "hv-emulate", "hv-reflect", "hv-inject", "hv-shadow", "hv-ptwrite", "hv-vmrun", "hv-io", "hv-halt",
    "hv-translate", "hv-pcpu", "hv-to-host", "hv-to-vmm"};

static const char *const disk_names[EV_DISK_LAST - EV_DISK_CMD] = {"disk-cmd", "disk-dma", "disk-done"};

const char *cpu_event_kind_name(int kind) {
    if (kind >= EV_HV_EMULATE && kind < EV_HV_LAST) return hv_names[kind - EV_HV_EMULATE];
    if (kind >= EV_DISK_CMD && kind < EV_DISK_LAST) return disk_names[kind - EV_DISK_CMD];
    static const char *const mem_names[EV_MEM_LAST - EV_MEM_COW] = {"mem-cow", "mem-clone", "mem-merge",
                                                                   "mem-free", "mem-scan", "mem-destroy"};
    if (kind >= EV_MEM_COW && kind < EV_MEM_LAST) return mem_names[kind - EV_MEM_COW];
    static const char *const n[EV_CPU_LAST] = {
        [EV_NONE] = "none",           [EV_INSN] = "insn",
        [EV_SYNC] = "sync",           [EV_TRAP] = "trap",
        [EV_INTERCEPT] = "intercept", [EV_IRET] = "iret",
        [EV_SENSITIVE] = "sensitive", [EV_IO] = "io",
        [EV_HALT] = "halt",           [EV_SHUTDOWN] = "shutdown",
        [EV_BREAK] = "break",         [EV_TEXT] = "text",
        [EV_POLICY] = "policy",       [EV_EMULATE] = "emulate",
        [EV_CONTEXT] = "context",     [EV_BLOCK] = "block",
        [EV_PAGE] = "page",           [EV_COST] = "cost",
        [EV_REPEAT] = "repeat",     [EV_VMEXIT] = "vmexit", [EV_VMENTRY] = "vmentry",
        [EV_ASPACE] = "aspace"};
    return kind >= 0 && kind < EV_CPU_LAST && n[kind] ? n[kind] : "?";
}

const char *cpu_cause_name(int cause) {
    static const char *const n[CAUSE_COUNT] = {
        [CAUSE_NONE] = "",
        [CAUSE_PRIV] = "privileged instruction at CPL>0",
        [CAUSE_INT_DENIED] = "int to a kernel-only vector",
        [CAUSE_UD] = "invalid opcode",
        [CAUSE_DE] = "division by zero",
        [CAUSE_PF] = "page fault",
        [CAUSE_BUS] = "physical address outside memory",
        [CAUSE_SOFT] = "software interrupt",
        [CAUSE_IRQ] = "external interrupt",
        [CAUSE_DF] = "fault while delivering a trap",
    };
    return cause >= 0 && cause < CAUSE_COUNT ? n[cause] : "?";
}
