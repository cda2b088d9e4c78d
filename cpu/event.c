/* cpu/event.c -- recording and reading the event stream (see cpu/event.h). */
#include "cpu/event.h"

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
    for (int i = 0; i < t->nsinks; i++) t->sinks[i](t->sink_ud[i], t->buf, t->n);
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

void cpu_trace_text(cpu_trace *t, uint64_t step, uint64_t cycle, uint8_t mode, int kind,
                    const char *s, size_t len) {
    if (len > UINT32_MAX) len = UINT32_MAX;
    cpu_event h = {.kind = EV_TEXT, .mode = mode, .a = (uint8_t)kind, .x = (uint32_t)len};
    cpu_trace_put(t, step, cycle, &h);
    for (size_t off = 0; off < len; off += sizeof(cpu_event)) {
        cpu_event *e = slot(t);
        memset(e, 0, sizeof *e);
        size_t k = len - off < sizeof *e ? len - off : sizeof *e;
        memcpy(e, s + off, k);
    }
}

void cpu_reader_init(cpu_trace_reader *r) { memset(r, 0, sizeof *r); }

void cpu_reader_free(cpu_trace_reader *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

int cpu_reader_feed(cpu_trace_reader *r, const cpu_event *ev, cpu_stamped *out) {
    if (r->text_need) { /* a payload record of an EV_TEXT */
        size_t k = r->text_need < sizeof *ev ? r->text_need : sizeof *ev;
        memcpy(r->text + r->text_len, ev, k);
        r->text_len += k;
        r->text_need -= k;
        if (r->text_need) return 0;
        out->ev = r->text_ev;
        out->step = r->step;
        out->cycle = r->cycle;
        out->text = r->text;
        out->text_len = r->text_len;
        return 1;
    }
    switch (ev->kind) {
    case EV_SYNC:
        r->step = ev->pc | (uint64_t)ev->a << 32 | (uint64_t)ev->b << 40;
        r->cycle = ev->x | (uint64_t)ev->y << 32;
        return 0;
    case EV_TEXT:
        if (ev->x > r->text_cap) {
            char *p = realloc(r->text, ev->x);
            if (!p) abort();
            r->text = p;
            r->text_cap = ev->x;
        }
        r->text_ev = *ev;
        r->text_len = 0;
        r->text_need = ev->x;
        if (r->text_need) return 0;
        out->ev = *ev;
        out->step = r->step;
        out->cycle = r->cycle;
        out->text = r->text;
        out->text_len = 0;
        return 1;
    default:
        out->ev = *ev;
        out->step = r->step;
        out->cycle = r->cycle;
        out->text = NULL;
        out->text_len = 0;
        if (ev->kind == EV_INSN) {
            r->step++;
            r->cycle += ev->b;
        }
        return 1;
    }
}

const char *cpu_event_kind_name(int kind) {
    static const char *const n[EV_CPU_LAST] = {
        [EV_NONE] = "none",         [EV_INSN] = "insn",     [EV_SYNC] = "sync",
        [EV_TRAP] = "trap",         [EV_INTERCEPT] = "intercept", [EV_IRET] = "iret",
        [EV_SENSITIVE] = "sensitive", [EV_IO] = "io",       [EV_HALT] = "halt",
        [EV_SHUTDOWN] = "shutdown", [EV_BREAK] = "break",   [EV_TEXT] = "text",
        [EV_POLICY] = "policy",     [EV_EMULATE] = "emulate", [EV_CONTEXT] = "context"};
    return kind >= 0 && kind < EV_CPU_LAST && n[kind] ? n[kind] : "?";
}

const char *cpu_cause_name(int cause) {
    static const char *const n[CAUSE_COUNT] = {
        [CAUSE_NONE] = "",
        [CAUSE_PRIV] = "privileged instruction at CPL>0",
        [CAUSE_INT_DENIED] = "int to a kernel-only vector",
        [CAUSE_NO_HANDLER] = "no handler in the vector table",
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
