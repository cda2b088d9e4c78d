/* viz/dot.h -- diagrams of a recorded run, built with Graphviz (libcgraph)
 * and rendered with libgvc: `vlab export`.
 *
 * Two views of the same event stream (cpu/event.h):
 *
 *   traps     a swimlane diagram, one lane (a column) per layer of the
 *             machine -- user application, kernel (guest OS under a
 *             hypervisor), host monitor / hypervisor, host OS, hardware --
 *             and one numbered arrow per transition between them (syscall,
 *             trap, interrupt, return, interception, emulation, reflection,
 *             device I/O), in time order from top to bottom.  The pictures
 *             of the lecture's "App scheduling with VMs" and "Reading from
 *             disk" slides, drawn from a real run.
 *   schedule  a timeline per physical CPU along the cycle axis: boxes for the
 *             spans spent in user mode, in the kernel and idle, with a mark
 *             at every trap.
 *
 * The graph is built with cgraph calls, never as hand-assembled DOT text;
 * the `dot` format is the graph before layout, written with agwrite, so
 * `dot -Tpng FILE.dot` draws the same picture.  Node names and attributes
 * depend only on the events, so the same run gives the same bytes. */
#ifndef VLAB_VIZ_DOT_H
#define VLAB_VIZ_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/event.h"

enum viz_export_view { VIZ_VIEW_TRAPS = 0, VIZ_VIEW_SCHEDULE = 1 };
enum viz_export_format { VIZ_FORMAT_DOT = 0, VIZ_FORMAT_SVG, VIZ_FORMAT_PNG, VIZ_FORMAT_PDF };

/* The allowed words, for usage messages. */
#define VIZ_EXPORT_VIEWS "traps or schedule"
#define VIZ_EXPORT_FORMATS "dot, svg, png or pdf"

typedef struct viz_export_opts {
    int view;          /* enum viz_export_view */
    int format;        /* enum viz_export_format */
    uint64_t from, to; /* window of steps, both included (the step column of the trace) */
    int max_items;     /* numbered transitions (traps) or spans (schedule) before the
                        * picture is cut; 0: the default (60 and 300) */
    int machine;       /* only this machine's events (EV_CONTEXT), or -1: all */
    const char *title; /* first line of the caption: the scenario's path */
    const char *const *machine_names; /* by machine index (EV_CONTEXT), may be NULL */
    int nmachines;
} viz_export_opts;

/* What a picture holds, for the message after writing it. */
typedef struct viz_export_info {
    int items;       /* numbered transitions and marks, or spans */
    int cut;         /* the window held more than max_items */
    int max;         /* max_items in effect */
    uint64_t lo, hi; /* the steps shown */
    uint64_t total;  /* steps in the whole run */
} viz_export_info;

void viz_export_opts_default(viz_export_opts *o);

/* "traps"/"schedule" and "dot"/"svg"/"png"/"pdf"; 0, or -1 for another word. */
int viz_export_view_parse(const char *word, int *view);
int viz_export_format_parse(const char *word, int *format);
/* The format a file name asks for by its extension; -1 if none. */
int viz_export_format_of_path(const char *path, int *format);
const char *viz_export_view_name(int view);
const char *viz_export_format_name(int format);

/* Draw ev[0..n) (a recorded stream, as sim_history keeps it) and write the
 * picture to path, whole or not at all (path.tmp, then renamed).  Returns 0,
 * or -1 with the reason in err.  info may be NULL. */
int viz_export(const cpu_event *ev, size_t n, const viz_export_opts *o, const char *path,
               viz_export_info *info, char *err, size_t errlen);

#endif
