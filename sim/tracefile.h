/* sim/tracefile.h -- the binary trace file (--trace FILE, `vlab replay`).
 *
 * Format: an 16-byte header, "VLABTRC" then a version byte (1), then a
 * 4-byte little-endian record size (16) and 4 reserved bytes; then the
 * cpu_event records exactly as recorded (cpu/event.h), little-endian.  The
 * file is written to FILE.tmp and renamed into place when the run ends, so
 * it is whole or absent. */
#ifndef VLAB_SIM_TRACEFILE_H
#define VLAB_SIM_TRACEFILE_H

#include <stddef.h>
#include <stdio.h>

#include "cpu/event.h"

typedef struct sim_tracefile sim_tracefile;

/* Open for writing; NULL with a message in err on failure. */
sim_tracefile *sim_tracefile_create(const char *path, char *err, size_t errlen);
void sim_tracefile_sink(void *ud, const cpu_event *ev, size_t n); /* a cpu_trace_sink */
/* Finish: keep = 1 renames into place, 0 removes the temporary.  Returns 0,
 * or -1 with a message if writing failed (then nothing is left behind). */
int sim_tracefile_close(sim_tracefile *t, int keep, char *err, size_t errlen);

/* Read a trace file and feed every record to sink.  Returns 0, or -1 with a
 * message (not a trace file, wrong version, truncated). */
int sim_tracefile_replay(const char *path, cpu_trace_sink sink, void *ud, char *err, size_t errlen);

#endif
