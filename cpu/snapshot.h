/* cpu/snapshot.h -- a machine's whole state, saved and restored.
 *
 * Snapshots serve stepping back in time (the TUI restores the nearest one
 * and runs forward deterministically) and, later, forking a running VM.
 * Memory is kept per 4 KiB page and a page that did not change since the
 * previous snapshot of the same machine is shared with it, so a snapshot
 * every few thousand steps costs little more than the pages written. */
#ifndef VLAB_CPU_SNAPSHOT_H
#define VLAB_CPU_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"

typedef struct cpu_snapshot cpu_snapshot;

/* Save c.  prev (may be NULL) is an earlier snapshot of the same machine
 * whose unchanged pages are shared.  NULL when the host is out of memory. */
cpu_snapshot *cpu_snapshot_take(const cpu_t *c, const cpu_snapshot *prev);
/* Put the saved state back into c, a machine of the same memory size
 * (the same machine, or another one).  Configuration that is not machine
 * state -- the trace, breakpoints, interceptions, port hook -- stays as c has
 * it.  Returns 0, or -1 if the sizes differ. */
int cpu_snapshot_restore(cpu_t *c, const cpu_snapshot *s);
void cpu_snapshot_free(cpu_snapshot *s);

uint64_t cpu_snapshot_steps(const cpu_snapshot *s);
uint64_t cpu_snapshot_cycles(const cpu_snapshot *s);
/* Host bytes this snapshot holds alone (pages it does not share). */
size_t cpu_snapshot_own_bytes(const cpu_snapshot *s);

#endif
