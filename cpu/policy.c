/* cpu/policy.c -- the configurable privileged-instruction set and the cost
 * table.
 *
 * Presets (docs/isa.md):
 *   x86     the classic, non-virtualizable x86 of Robin & Irvine (USENIX
 *           Security 2000): cli/sti/hlt/in/out/mov-CR/invlpg trap at CPL>0
 *           (IOPL 0), POPF silently keeps IF, PUSHF/SMSW/SIDT/RDTSC/CPUID
 *           run and reveal the real state.  The x86 column of cpu/isa.def.
 *   strict  every sensitive instruction traps at CPL>0, so the sensitive
 *           instructions are a subset of the privileged ones and Popek &
 *           Goldberg's Theorem 1 holds.
 */
#include "cpu/cpu.h"

#include <string.h>

static int preset_behaviour(const char *name, int op) {
    if (!cpu_op_configurable(op)) return NA;
    if (strcmp(name, "strict") == 0) return TRAP;
    return cpu_isa[op].x86;
}

static int known(const char *name) {
    return strcmp(name, "x86") == 0 || strcmp(name, "strict") == 0;
}

int cpu_policy_preset(cpu_t *c, const char *name) {
    if (!known(name)) return -1;
    for (int op = 0; op < OP_COUNT; op++)
        c->behaviour[op] = (uint8_t)preset_behaviour(name, op);
    return 0;
}

void cpu_set_behaviour(cpu_t *c, int op, int behaviour) {
    if (!cpu_op_configurable(op) || behaviour < TRAP || behaviour >= BEHAVIOUR_COUNT) return;
    c->behaviour[op] = (uint8_t)behaviour;
    cpu_emit(c, EV_POLICY, op, behaviour, c->pc, 0, 0);
}

int cpu_policy_matches(const cpu_t *c, const char *name) {
    if (!known(name)) return 0;
    for (int op = 0; op < OP_COUNT; op++)
        if (cpu_op_configurable(op) && c->behaviour[op] != preset_behaviour(name, op)) return 0;
    return 1;
}

const char *cpu_policy_describe(const cpu_t *c) {
    if (cpu_policy_matches(c, "x86")) return "x86";
    if (cpu_policy_matches(c, "strict")) return "strict";
    return "custom";
}

/* Native costs: the cycles column of isa.def, plus trap delivery and page
 * walks.  Calibrated loosely to a Pentium 4 so that Adams & Agesen's (ASPLOS
 * 2006) native nanobenchmarks come out in the right range: a divide-by-zero
 * round trip (trap 500 + handler + iret 300) near their 889 cycles, port I/O
 * 3,209 cycles. */
void cpu_costs_default(cpu_t *c) {
    for (int op = 0; op < OP_COUNT; op++)
        c->cost[op] = cpu_isa[op].cycles;
    c->cost[OP_INVALID] = 1; /* decoding an invalid opcode before #UD */
    c->cost_trap = 500;
    c->cost_walk = 20;
}

void cpu_set_cost(cpu_t *c, int op, uint32_t cycles) {
    if (op < 0 || op >= OP_COUNT) return;
    c->cost[op] = cycles;
    cpu_emit(c, EV_COST, op, 0, c->pc, cycles, 0);
}
