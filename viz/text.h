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

/* Event classes a reader can choose (--show). */
enum {
    VIZ_SHOW_INSN = 1u << 0,  /* every instruction */
    VIZ_SHOW_TRAPS = 1u << 1, /* traps, interrupts, returns, interceptions, halts */
    VIZ_SHOW_IO = 1u << 2,    /* port I/O */
    VIZ_SHOW_NOTES = 1u << 3, /* scenario notes, machine creation, policy changes */
    VIZ_SHOW_SENS = 1u << 4,  /* sensitive instructions that did not trap */
    VIZ_SHOW_ALL = 0x1f
};

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
    cpu_stamped last_insn; /* quiz: the instruction a question is about */
    int have_last;
} viz_text;

void viz_text_init(viz_text *t, FILE *out, unsigned show, int quiet);
/* Colour when out is a terminal and NO_COLOR is unset and TERM is not "dumb". */
int viz_text_want_color(FILE *out);
void viz_text_free(viz_text *t);
void viz_text_sink(void *ud, const cpu_event *ev, size_t n); /* a cpu_trace_sink */

/* Parse "insn,traps,io,notes,sens" or "all"; returns 0, or -1 with the bad
 * word copied into bad. */
int viz_show_parse(const char *list, unsigned *mask, char *bad, size_t badlen);

/* The text of one stamped event, without the step/cycle/ring/pc columns. */
void viz_event_text(const cpu_stamped *s, char *buf, size_t len);
/* A vector's short name: "#GP", "syscall", "timer", "IRQ 3", "vector 42". */
const char *viz_vector_name(int vector, char *buf, size_t len);

#endif
