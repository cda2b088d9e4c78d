/* sim/history.c -- the events and snapshots of a whole run (see history.h). */
#include "sim/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_history_init(sim_history *h) {
    memset(h, 0, sizeof *h);
    h->every = 50000;
}

void sim_history_free(sim_history *h) {
    for (int i = 0; i < h->nm; i++) {
        for (int k = 0; k < h->m[i].ncps; k++) cpu_snapshot_free(h->m[i].cps[k].snap);
        free(h->m[i].cps);
    }
    free(h->m);
    free(h->ev);
    memset(h, 0, sizeof *h);
}

void sim_history_sink(void *ud, const cpu_event *ev, size_t n) {
    sim_history *h = ud;
    if (h->n + n > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        while (cap < h->n + n) cap *= 2;
        cpu_event *p = realloc(h->ev, cap * sizeof *p);
        if (!p) abort(); /* the memory cap of the run is far below this */
        h->ev = p;
        h->cap = cap;
    }
    memcpy(h->ev + h->n, ev, n * sizeof *ev);
    h->n += n;
}

void sim_history_machine_add(sim_history *h, int id, const char *name, uint32_t mem_size) {
    if (id >= h->nm) {
        sim_history_machine *p = realloc(h->m, (size_t)(id + 1) * sizeof *p);
        if (!p) abort();
        memset(p + h->nm, 0, (size_t)(id + 1 - h->nm) * sizeof *p);
        h->m = p;
        h->nm = id + 1;
    }
    snprintf(h->m[id].name, sizeof h->m[id].name, "%s", name);
    h->m[id].mem_size = mem_size;
}

int sim_history_checkpoint(sim_history *h, int id, cpu_t *c, int forced) {
    if (id < 0 || id >= h->nm) return -1;
    if (h->events_only) return 0;
    sim_history_machine *m = &h->m[id];
    if (m->ncps && !forced && c->steps - m->last_steps < h->every) return 0;
    sim_checkpoint *last = m->ncps ? &m->cps[m->ncps - 1] : NULL;
    /* a delta from the newest checkpoint (cpu/snapshot.h) */
    cpu_snapshot *s = cpu_snapshot_take(c, last ? last->snap : NULL);
    if (!s) return -1;
    h->bytes += cpu_snapshot_own_bytes(s);
    h->taken++;
    if (cpu_snapshot_is_full(s)) h->full++;
    if (last && last->steps == c->steps) {
        /* same step: the newer state wins (the replaced one lives on inside
         * the new delta, which follows it) */
        cpu_snapshot_free(last->snap);
        last->snap = s;
        last->event_index = h->n;
        return 0;
    }
    if (m->ncps == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        sim_checkpoint *p = realloc(m->cps, (size_t)cap * sizeof *p);
        if (!p) {
            cpu_snapshot_free(s);
            return -1;
        }
        m->cps = p;
        m->cap = cap;
    }
    m->cps[m->ncps++] = (sim_checkpoint){.snap = s, .steps = c->steps, .event_index = h->n};
    m->last_steps = c->steps;
    return 0;
}

int sim_history_state_at(const sim_history *h, int id, uint64_t step, cpu_t *scratch) {
    if (id < 0 || id >= h->nm) return -1;
    const sim_history_machine *m = &h->m[id];
    /* the last checkpoint at or before step (binary search) */
    int lo = 0, hi = m->ncps - 1, best = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (m->cps[mid].steps <= step) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (best < 0) return -1;
    if (cpu_snapshot_restore(scratch, m->cps[best].snap)) return -1;
    cpu_trace *saved = scratch->trace;
    scratch->trace = NULL;
    for (int v = 0; v < CPU_NVEC; v++) cpu_intercept(scratch, v, 0);
    while (scratch->steps < step) {
        int rc = cpu_run(scratch, step - scratch->steps);
        if (rc != CPU_EXIT_BUDGET) break; /* the machine stopped there in the run too */
    }
    scratch->trace = saved;
    return 0;
}

void sim_history_read(const sim_history *h, cpu_reader_fn fn, void *ud) {
    cpu_trace_reader r;
    cpu_reader_init(&r);
    cpu_reader_feed(&r, h->ev, h->n, fn, ud);
    cpu_reader_free(&r);
}
