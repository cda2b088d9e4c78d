/* sim/summary.c -- counts traps, interceptions, sensitive instructions and
 * I/O per machine from the event stream, for the summary `vlab` prints. */
#include "sim/summary.h"

#include <stdlib.h>
#include <string.h>

void sim_summary_init(sim_summary *s) {
    memset(s, 0, sizeof *s);
}

void sim_summary_free(sim_summary *s) {
    free(s->m);
    memset(s, 0, sizeof *s);
}

static sim_counts *counts(sim_summary *s, int i) {
    if (i >= s->n) {
        sim_counts *p = realloc(s->m, (size_t)(i + 1) * sizeof *p);
        if (!p) return NULL;
        memset(p + s->n, 0, (size_t)(i + 1 - s->n) * sizeof *p);
        s->m = p;
        s->n = i + 1;
    }
    return &s->m[i];
}

void sim_summary_sink(void *ud, const cpu_event *ev, size_t n) {
    sim_summary *s = ud;
    for (size_t i = 0; i < n; i++) {
        const cpu_event *e = &ev[i];
        if ((e->kind == EV_INSN || e->kind == EV_BLOCK) && !s->skip) continue; /* the common case */
        if (s->skip) {
            s->skip--;
            continue;
        }
        sim_counts *c;
        switch (e->kind) {
        case EV_CONTEXT: s->current = e->a; break;
        case EV_TEXT:
        case EV_PAGE: s->skip = cpu_event_payload_records(e); break;
        case EV_TRAP:
            if (e->x && (c = counts(s, s->current))) c->traps[e->a]++;
            break;
        case EV_INTERCEPT:
            if ((c = counts(s, s->current))) c->intercepts[e->a]++;
            break;
        case EV_SENSITIVE:
            if ((c = counts(s, s->current))) c->sensitive++;
            break;
        case EV_IO:
            if ((c = counts(s, s->current))) c->io++;
            break;
        case EV_EMULATE:
            if ((c = counts(s, s->current))) c->emulated++;
            break;
        default: break;
        }
    }
}

const sim_counts *sim_summary_of(const sim_summary *s, int machine) {
    return machine >= 0 && machine < s->n ? &s->m[machine] : NULL;
}
