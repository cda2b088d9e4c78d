/* cpu/analyze.h -- the Popek & Goldberg analyzer: is this instruction set,
 * under this privilege policy, virtualizable?
 *
 * Sources: G. J. Popek and R. P. Goldberg, "Formal requirements for
 * virtualizable third generation architectures", CACM 17(7), 1974 (the
 * definitions of privileged, control-, mode- and location-sensitive and
 * user-sensitive instructions, Theorems 1 and 3); J. S. Robin and C. E.
 * Irvine, "Analysis of the Intel Pentium's ability to support a secure
 * virtual machine monitor", USENIX Security 2000 (the x86 holes that the x86
 * preset reproduces).
 *
 * The analyzer never reads the sens and x86 columns of cpu/isa.def: it
 * classifies every instruction of cpu_isa[] by executing it, one instruction
 * at a time, on scratch machines built for the purpose (cpu/analyze.c says
 * exactly which pairs of states it compares).  The test suite
 * (tests/check_analyze.c) then checks that what it finds agrees with the
 * table.  `vlab analyze` prints the report with cpu_analyze_print.
 */
#ifndef VLAB_CPU_ANALYZE_H
#define VLAB_CPU_ANALYZE_H

#include <stdio.h>

#include "cpu/cpu.h"

/* One instruction's findings. */
typedef struct cpu_pg_row {
    int op; /* cpu_op */
    /* Sensitivity: what the instruction does when it executes (probed with
     * every configurable instruction set to LEAK, so that it runs at any CPL). */
    int control;      /* changes the mode or the resources without trapping */
    int mode;         /* its result differs between CPL 0 and CPL 3 */
    int location;     /* its result differs with the real resources (placement, size, clock) */
    int always_traps; /* traps at CPL 0 and at CPL 3, whatever the operands */
    /* Under the policy being analysed. */
    int privileged;     /* traps at CPL 3 and not at CPL 0, in every probed state */
    int user_sensitive; /* at CPL 3, runs without trapping and is control- or location-sensitive */
    int at_user;        /* what it does at CPL 3, found by running it: TRAP (traps in every
                         * probed state), SILENT (runs without some of its effect), LEAK
                         * (runs with its full effect), NA (innocuous: runs normally) */
    int cls;            /* cpu_sens: TRAPS, else CONTROL, else LOCATION, else MODE, else NONE */
    int states;         /* how many operand/state variants were executed */
} cpu_pg_row;

typedef struct cpu_pg_report {
    cpu_pg_row rows[OP_COUNT]; /* indexed by op */
    char policy[16];           /* "x86", "strict" or "custom" */
    int tsd;                   /* the analysed machine had status.TSD set (rdtsc traps at CPL>0) */
    int thm1_holds, thm3_holds;
    int thm1_breakers[OP_COUNT], n_thm1; /* sensitive but not privileged, in op order */
    int thm3_breakers[OP_COUNT], n_thm3; /* user-sensitive but not privileged, in op order */
    long runs;                           /* single-instruction runs executed in all */
} cpu_pg_report;

/* Analyse a preset policy ("x86" or "strict").  Returns 0, or -1 if the
 * policy is unknown or the host is out of memory (*out is then left
 * untouched). */
int cpu_analyze(const char *policy, cpu_pg_report *out);

/* Analyse the policy of an existing machine: its c->behaviour table and its
 * status.TSD bit are copied into the scratch machines; c is not modified.
 * The report's policy name is cpu_policy_describe(c). */
void cpu_analyze_machine(const cpu_t *c, cpu_pg_report *out);

/* The table (user part, then system part of the ISA) and the two verdicts,
 * for `vlab analyze`.  Lines are at most 100 columns wide. */
void cpu_analyze_print(const cpu_pg_report *r, FILE *out);

#endif
