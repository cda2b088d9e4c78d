/* viz/tui.h -- `vlab --tui`: a full-screen viewer of a recorded run.
 *
 * The scenario runs first, headless, keeping its whole history
 * (sim/history.h); the TUI then lets a student move through that history in
 * time: step, step back, step over a call, run forwards or backwards to the
 * next trap / system call / interrupt / I/O / exit or to a breakpoint.  The
 * machine shown at each step is rebuilt from the history's checkpoints
 * (sim_history_state_at), so stepping back is exact and cheap.
 *
 * Panes: a timeline strip of the whole run (which machine and ring held the
 * CPU), a badge for the ring, VMX mode and running machine, the registers,
 * the code around pc, memory and the page-table walk of pc, the event log
 * (the same lines as the printed trace) and a status line.  docs/tui.md
 * describes the screen and the keys.
 *
 * This is the only file that talks to ncurses.  With a key script
 * (--tui-script) it runs without a terminal: keys come from the script and
 * the screen is printed as text, which the tests and `make bench` use. */
#ifndef VLAB_VIZ_TUI_H
#define VLAB_VIZ_TUI_H

#include "sim/history.h"
#include "sim/session.h"

/* vlab --tui: run opt->scenario headless (nothing printed), then show its
 * history.  script NULL: interactive, stdin and stdout must be a terminal.
 * Otherwise the keys of the script are replayed without a terminal and the
 * screen is printed to stdout (docs/tui.md, "Key scripts").  Returns the
 * exit status of vlab: the scenario's (SIM_EXIT_*), or SIM_EXIT_USAGE. */
int viz_tui_main(const sim_options *opt, const char *script);

/* The viewer alone, on a run's history. */
typedef struct viz_tui_opts {
    unsigned show;       /* event classes listed in the event log (VIZ_SHOW_*) */
    const char *script;  /* NULL: the terminal; else keys to replay (see above) */
    int width, height;   /* screen size of a script run (default 80x24) */
    const char *title;   /* shown in the status line at start (scenario path) */
    const char *message; /* first message (e.g. why the scenario failed), or NULL */
    int message_is_error;
} viz_tui_opts;

/* Returns 0, SIM_EXIT_USAGE for a bad script or no terminal, SIM_EXIT_FAIL
 * when the history has nothing to show. */
int viz_tui_view(const sim_history *h, const viz_tui_opts *o);

#endif
