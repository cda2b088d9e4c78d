/* sim/history.h -- a whole run kept for looking back at: every event, and
 * snapshots of each machine from which any step can be rebuilt.
 *
 * The TUI (stepping back and forth), `vlab export` (diagrams of a window of
 * steps) and the quiz printer read a run through its history instead of
 * running it again.
 *
 * Rebuilding step N of a machine restores the last snapshot at or before N
 * and runs the machine forward, untraced, to N.  That is exact because a
 * snapshot is taken whenever the host may have changed the machine, and
 * between two snapshots only the machine itself acts, deterministically:
 *   - a bare machine (sim/lua_machine.c): at the start of every run slice
 *     after a host action (a Lua trap handler, a method that changed it, the
 *     disk writing memory);
 *   - a machine a hypervisor runs (sim/lua_hv.c): before every run slice of
 *     the CPU inside hv_run (hv.checkpoint_hook), i.e. after every exit the
 *     hypervisor handled (emulation, reflection, shadow fill, injection, VMX
 *     exit, callout), every VM switch, world switch and physical-CPU turn,
 *     and once more when hv_run returns;
 *   - and at least every `every` steps.
 * Several at the same step keep the newest.  Checkpoints are cheap deltas
 * (cpu/snapshot.h): the registers and the pages written since the previous
 * one, with a full one every 64. */
#ifndef VLAB_SIM_HISTORY_H
#define VLAB_SIM_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"
#include "cpu/event.h"
#include "cpu/snapshot.h"

typedef struct sim_checkpoint {
    cpu_snapshot *snap;
    uint64_t steps;
    size_t event_index; /* events recorded before this checkpoint */
} sim_checkpoint;

typedef struct sim_history_machine {
    char name[32];
    uint32_t mem_size;
    sim_checkpoint *cps;
    int ncps, cap;
    uint64_t last_steps; /* steps of the newest checkpoint */
} sim_history_machine;

typedef struct sim_history {
    cpu_event *ev; /* the raw record stream, as recorded */
    size_t n, cap;
    sim_history_machine *m;
    int nm;
    uint64_t every; /* a checkpoint at least every this many steps (default 50,000) */
    size_t bytes;   /* memory held by snapshots */
    uint64_t taken; /* snapshots taken (a later one at the same step replaces one) */
    uint64_t full;  /* of which full ones */
    int events_only; /* take no snapshots: for a reader of events only (vlab export) */
} sim_history;

void sim_history_init(sim_history *h);
void sim_history_free(sim_history *h);
void sim_history_sink(void *ud, const cpu_event *ev, size_t n); /* a cpu_trace_sink */

/* Note a machine (its index in the run, name, memory size). */
void sim_history_machine_add(sim_history *h, int id, const char *name, uint32_t mem_size);
/* Take a checkpoint of machine id if forced (the host touched it) or if
 * `every` steps passed since the last one: a delta from the previous one,
 * which clears c's written-page marks (cpu/snapshot.h).  Returns 0, -1 on
 * host memory. */
int sim_history_checkpoint(sim_history *h, int id, cpu_t *c, int forced);

/* Rebuild machine id as it was before step `step` ran: into scratch, a
 * machine of the same memory size.  Returns 0, or -1 if there is no
 * checkpoint at or before that step.  scratch keeps pointers into its own
 * copies only (never into the history). */
int sim_history_state_at(const sim_history *h, int id, uint64_t step, cpu_t *scratch);

/* Hand every event out, stamped, through a reader (instructions expanded). */
void sim_history_read(const sim_history *h, cpu_reader_fn fn, void *ud);

#endif
