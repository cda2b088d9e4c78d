/* sim/session.h -- one run of a scenario: its options, its budgets, its
 * machines, and the one event trace they all record into.
 *
 * The session owns the cpu_trace; its sinks are the text printer (stdout),
 * the binary trace file (--trace), and the run summary.  Machines are
 * created from Lua (sim/lua_machine.c) and registered here so the step
 * budget and memory cap cover all of them. */
#ifndef VLAB_SIM_SESSION_H
#define VLAB_SIM_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cpu/cpu.h"
#include "sim/history.h"
#include "sim/summary.h"
#include "sim/tracefile.h"
#include "viz/text.h"

/* Exit codes of `vlab`. */
enum {
    SIM_EXIT_OK = 0,
    SIM_EXIT_FAIL = 1,  /* a scenario error, a failed expectation, bad assembly */
    SIM_EXIT_USAGE = 2, /* bad command line */
    SIM_EXIT_LIMIT = 3  /* a budget ran out: steps, Lua instructions, time, memory */
};

typedef struct sim_options {
    const char *scenario;   /* path of the .lua file */
    uint64_t seed;          /* --seed: seeds math.random, the only RNG */
    uint64_t max_steps;     /* --max-steps: simulated instructions, all machines together */
    const char *policy;     /* --policy: default policy of new machines */
    int quiet;              /* --quiet: only the scenario's own output */
    const char *trace_file; /* --trace FILE */
    int unsafe;             /* --unsafe: no sandbox */
    const char *out_dir;    /* --out DIR: where a scenario may write files */
    unsigned show;          /* --show classes */
    double time_limit;      /* --time-limit seconds of host time (a safety net) */
    uint64_t lua_budget;    /* --lua-budget Lua VM instructions */
    size_t mem_limit;       /* --mem-limit bytes: Lua heap + machine memory */
    const char *guest_dir;  /* the project's guest library (readable by scenarios) */
    char **args;            /* words after "--": vlab.args */
    int nargs;
    int keep_history;       /* keep every event and snapshots (TUI, export) */
    int history_events_only; /* ... but no snapshots (export: it rebuilds no machine) */
    int quiz;               /* --quiz / --answers: VIZ_QUIZ_* */
    int color;              /* -1 auto (a terminal), 0 never, 1 always */
} sim_options;

void sim_options_default(sim_options *o);

typedef struct sim_machine {
    cpu_t *cpu;
    int id;
    char name[32];
    struct asm_image *images; /* loaded images (for symbols and source lines) */
    int nimages;
    int lua_ref; /* registry reference of the Lua handler table, or LUA_NOREF */
    int host_dirty;  /* the host changed the machine since the last history checkpoint */
    char *vm_lines;  /* summary lines of the VMs of hypervisors already collected on it */
    struct disk_ctl *disk; /* its disk controller (m:attach_disk), or NULL */
} sim_machine;

typedef struct sim_session {
    sim_options opt;
    cpu_trace trace;
    viz_text text;
    sim_tracefile *tf;
    sim_summary summary;
    sim_history *history; /* when opt.keep_history */
    struct hv *hvs[8];    /* hypervisors of the run, for the summary */
    int nhvs;
    struct sim_native_run { /* bare-machine runs, to compare VMs of the same image with */
        char image[96];
        uint64_t cycles;
        int machine;   /* the machine that ran it (it may run on and be noted again) */
        int ambiguous; /* runs of it differed (other inputs): no single reference */
    } native[16];
    int nnative;
    int keep_history_after_close; /* the caller takes s->history over (TUI, export) */
    sim_machine **machines;
    int nmachines;
    char **gone; /* per machine id: its summary, rendered when Lua collected it (or NULL) */
    int ngone;
    int current; /* machine whose events are being recorded (EV_CONTEXT) */
    uint64_t steps_used;
    size_t lua_bytes;     /* Lua heap in use */
    size_t machine_bytes; /* simulated memory allocated */
    double start_time;    /* host monotonic clock at start, for the time limit only */
    uint64_t lua_count;   /* Lua instructions executed (in units of the hook period) */
    int expect_passed, expect_failed;
    char limit_msg[160]; /* set when a budget ran out */
} sim_session;

int sim_session_init(sim_session *s, const sim_options *o);
/* Flush and close: the trace file is renamed into place only when keep is 1. */
int sim_session_close(sim_session *s, int keep);

/* Register a new machine; returns NULL (and sets a message) when the memory
 * cap would be exceeded. */
sim_machine *sim_machine_new(sim_session *s, uint32_t mem_bytes, const char *policy,
                             const char *name, char *err, size_t errlen);
void sim_machine_free(sim_session *s, sim_machine *m);
/* Record that m is running now (emits EV_CONTEXT on a change). */
void sim_switch_to(sim_session *s, sim_machine *m);

/* Host monotonic time in seconds (the time budget only, never the simulation). */
double sim_now(void);
/* 0, or SIM_EXIT_LIMIT with s->limit_msg set if host time ran out. */
int sim_check_time(sim_session *s);

/* Hypervisors report their VMs in the summary. */
void sim_register_hv(sim_session *s, struct hv *h, sim_machine *host);
void sim_unregister_hv(sim_session *s, struct hv *h);

/* Record the end-of-run summary (machines, traps, console) into the trace. */
void sim_print_summary(sim_session *s);

/* Record text of the given EV_TEXT kind (print output, notes, header). */
void sim_text(sim_session *s, int kind, const char *txt, size_t len);

#endif
