/* sim/summary.h -- the end-of-run summary, counted from the event stream. */
#ifndef VLAB_SIM_SUMMARY_H
#define VLAB_SIM_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "cpu/event.h"

typedef struct sim_counts {
    uint64_t traps[256];      /* delivered, by vector */
    uint64_t intercepts[256]; /* handed to the host, by vector */
    uint64_t sensitive;       /* sensitive instructions that ran at CPL>0 without trapping */
    uint64_t io;
    uint64_t emulated;
} sim_counts;

typedef struct sim_summary {
    sim_counts *m; /* per machine index */
    int n;
    int current;
    size_t skip; /* payload records of an EV_TEXT still to pass over */
} sim_summary;

void sim_summary_init(sim_summary *s);
void sim_summary_free(sim_summary *s);
void sim_summary_sink(void *ud, const cpu_event *ev, size_t n);      /* a cpu_trace_sink */
const sim_counts *sim_summary_of(const sim_summary *s, int machine); /* NULL if none */

#endif
