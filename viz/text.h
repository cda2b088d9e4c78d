/* viz/text.h -- the text trace: recorded events printed for a student.
 *
 * A viz_text is a cpu_trace sink.  It reads the event stream and prints one
 * line per event: step, cycle, ring, pc, and the disassembled instruction or
 * what happened (which trap, why, which vector, where control went, which
 * ring).  The same printer serves a live run and `vlab replay`. */
#ifndef VLAB_VIZ_TEXT_H
#define VLAB_VIZ_TEXT_H

#include <stdio.h>

#include "cpu/event.h"

/* Event classes a reader can choose (--show), like sys161's trace flags.
 * An event belongs to one class (a virtual device's I/O to two: exits, io). */
enum {
    VIZ_SHOW_INSN = 1u << 0,  /* every instruction */
    VIZ_SHOW_TRAPS = 1u << 1, /* traps, interrupts, returns, halts, breakpoints, shutdown */
    VIZ_SHOW_IO = 1u << 2,    /* port I/O (real, and a hypervisor's virtual devices) */
    VIZ_SHOW_NOTES = 1u << 3, /* scenario notes, machine creation, policy changes */
    VIZ_SHOW_SENS = 1u << 4,  /* sensitive instructions that did not trap */
    VIZ_SHOW_EXITS = 1u << 5, /* VM exits and entries, traps handed to the host, and the
                               * hypervisor's work: emulations, reflections, injections,
                               * shadow page tables, translations, virtual devices */
    VIZ_SHOW_SCHED = 1u << 6, /* who has the CPU: world switches (EV_HV_VMRUN), VMs idling
                               * or finished (EV_HV_HALT), address-space switches
                               * (EV_ASPACE), machine switches (EV_CONTEXT) */
    VIZ_SHOW_COW = 1u << 7,   /* copy-on-write memory (EV_MEM_*) */
    VIZ_SHOW_ALL = 0xff
};
/* The words of --show, for usage messages. */
#define VIZ_SHOW_WORDS "insn, traps, exits, io, sched, cow, sens, notes, all"

/* Quiz mode (--quiz): the trace becomes questions.  Every trap, interrupt,
 * return and sensitive instruction that ran without trapping is printed as a
 * numbered question under the instruction that led to it, with its outcome
 * hidden; with --answers the outcome follows each question.  The same run
 * and seed give the same questions (OSTEP's homework convention). */
enum { VIZ_QUIZ_OFF = 0, VIZ_QUIZ_ASK = 1, VIZ_QUIZ_ANSWER = 2 };

typedef struct viz_text {
    FILE *out;
    cpu_trace_reader rd;
    unsigned show;
    int quiet;        /* print only the scenario's own print() output */
    int color;        /* ANSI colours (a terminal, no NO_COLOR) */
    int quiz;         /* VIZ_QUIZ_* */
    int questions;    /* asked so far */
    int columns_done; /* the column header has been printed */
    int machine;      /* current EV_CONTEXT */
    int8_t pcpu[64];  /* per machine: the physical CPU of its events (EV_HV_PCPU) */
    int8_t shown[64]; /* ... and of the last line printed (-1: none) */
    uint8_t multi[64]; /* ... it has several (an EV_HV_PCPU was seen) */
    cpu_stamped last_insn; /* quiz: the instruction a question is about */
    int have_last;
    int follow;       /* --answers: the question whose outcome the hypervisor's next events finish */
} viz_text;

void viz_text_init(viz_text *t, FILE *out, unsigned show, int quiet);
/* Colour when out is a terminal and NO_COLOR is unset and TERM is not "dumb". */
int viz_text_want_color(FILE *out);
void viz_text_free(viz_text *t);
void viz_text_sink(void *ud, const cpu_event *ev, size_t n); /* a cpu_trace_sink */

/* Parse a comma-separated list of VIZ_SHOW_WORDS ("traps,exits,io"); returns
 * 0, or -1 with the bad word copied into bad. */
int viz_show_parse(const char *list, unsigned *mask, char *bad, size_t badlen);
/* The VIZ_SHOW_* classes of an event (the trace and the TUI's log agree). */
unsigned viz_event_class(const cpu_event *e);
/* The hypervisor did it: the ring column says "hv" (EV_HV_*, an emulated EV_ASPACE). */
int viz_event_by_hv(const cpu_event *e);

/* The text of one stamped event, without the step/cycle/ring/pc columns. */
void viz_event_text(const cpu_stamped *s, char *buf, size_t len);
/* A paravirtual hypercall's name (EV_HV_EMULATE with b == 3: a = its number), or "?". */
const char *viz_hypercall_name(int n);
/* A vector's short name: "#GP", "syscall", "timer", "IRQ 3", "vector 42". */
const char *viz_vector_name(int vector, char *buf, size_t len);

#endif
