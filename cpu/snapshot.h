/* cpu/snapshot.h -- a machine's whole state, saved and restored.
 *
 * Snapshots serve stepping back in time: the run's history (sim/history.c)
 * takes one whenever the host may have changed a machine, and the TUI
 * restores the nearest one and runs forward deterministically.
 *
 * A snapshot taken with prev, the previous snapshot of the same machine, is
 * a delta: the registers and only the pages written since prev (the
 * machine's written-page marks, cpu_t.written), so a checkpoint at every VM
 * exit costs little more than the pages the guest and the hypervisor wrote.
 * Every 256th one of a chain is full again (it shares unchanged pages).  It
 * also keeps what a VM's replay needs that is not in memory: the VMX
 * controls, exception bitmap, status mask and shadow, a copy of the EPT and
 * of the I/O bitmap (shared with prev while they do not change), and the
 * host-world mark. */
#ifndef VLAB_CPU_SNAPSHOT_H
#define VLAB_CPU_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"

typedef struct cpu_snapshot cpu_snapshot;

/* Save c, and clear its written-page marks (they count from this snapshot
 * on).  prev (may be NULL) is an earlier snapshot of the same machine: when
 * it is the last one taken of c, the new one is a delta that keeps prev
 * alive; otherwise pages equal to prev's are shared.  NULL when the host is
 * out of memory. */
cpu_snapshot *cpu_snapshot_take(cpu_t *c, cpu_snapshot *prev);
/* Put the saved state back into c, a machine of the same memory size
 * (the same machine, or another one).  Configuration that is not machine
 * state -- the trace, breakpoints, interceptions, callouts, port hook --
 * stays as c has it.  The EPT and I/O bitmap are copied into buffers c owns
 * (c->ept_own, c->io_own).  Returns 0, or -1 if the sizes differ or the
 * host is out of memory. */
int cpu_snapshot_restore(cpu_t *c, const cpu_snapshot *s);
/* Let go of s (a later delta that follows it keeps it alive). */
void cpu_snapshot_free(cpu_snapshot *s);

uint64_t cpu_snapshot_steps(const cpu_snapshot *s);
uint64_t cpu_snapshot_cycles(const cpu_snapshot *s);
/* Host bytes this snapshot holds alone (pages it does not share). */
size_t cpu_snapshot_own_bytes(const cpu_snapshot *s);
/* 1 for a full snapshot, 0 for a delta. */
int cpu_snapshot_is_full(const cpu_snapshot *s);

#endif
