/* tests/check_tui.c -- the TUI (`vlab --tui`) as a student meets it.
 *
 * The real binary ($VLAB_BIN) runs inside tmux, on a private server per test
 * (tmux -L vlabtest-PID-N), at 80x24; the test sends keys and reads the
 * screen with capture-pane, polling until the expected text shows up.  It
 * checks what a student would look at: after a step the step counter and pc
 * move on, a step back shows the very same registers again, a breakpoint on
 * `syscall` stops on the syscall, a resize re-lays the screen out (and a too
 * small one says so and recovers), the help lists the keys, no colour still
 * shows the current line, and q leaves with status 0 (under ASan: no leaks).
 *
 * Without a terminal, --tui-script replays keys and prints the screen: those
 * cases check the searches (step over, run to an event, run back, goto) and
 * that stepping forward through a whole run rebuilds exactly the machine the
 * run recorded, instruction by instruction (@verify). */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runvlab.h"

Suite *suite_tui(void);

extern char **environ;

#define SLIDE1 "slides-examples/01-syscall-user-kernel.lua"
#define WAIT_S 8.0 /* generous for ASan builds on a loaded machine */

/* ---- running a program and collecting its output ---------------------------------------- */

static int run_capture(const char *const *argv, char **out) {
    int po[2];
    if (pipe(po)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, po[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, po[1]); /* or a tmux server keeps the pipe open */
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    if (rc) {
        close(po[0]);
        return -1;
    }
    size_t n = 0, cap = 8192;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(po[0], buf + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (n + 1 == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) break;
            buf = p;
            cap *= 2;
        }
    }
    close(po[0]);
    if (buf) buf[n] = 0;
    int st;
    waitpid(pid, &st, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap(void) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* ---- a TUI in tmux ------------------------------------------------------------------------ */

typedef struct tmx {
    char sock[64];
    char dir[64];
    char status[128];
} tmx;

static int tmx_counter;
static tmx *tmx_live; /* killed at exit if a failed assertion left it running */

static void tmx_kill_live(void) {
    if (!tmx_live) return;
    const char *argv[] = {"tmux", "-L", tmx_live->sock, "kill-server", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) == 0)
        waitpid(pid, NULL, 0);
    tmx_live = NULL;
}

static const char *abs_bin(char *buf, size_t len) {
    const char *b = vlab_bin();
    if (b[0] == '/') return b;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return b;
    snprintf(buf, len, "%s/%s", cwd, b);
    return buf;
}

/* Start `vlab --tui ARGS` in a w x h tmux window; env is put before it. */
static void tmx_start(tmx *x, int w, int h, const char *env, const char *args) {
    snprintf(x->sock, sizeof x->sock, "vlabtest-%d-%d", (int)getpid(), tmx_counter++);
    snprintf(x->dir, sizeof x->dir, "/tmp/vlabtui-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(x->dir));
    snprintf(x->status, sizeof x->status, "%s/status", x->dir);
    char bin[PATH_MAX + 64], cwd[PATH_MAX], cmd[4 * PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    /* `timeout`: a test that fails half-way never leaves a TUI behind for long */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && timeout --foreground 300 env %s '%s' --tui %s; echo $? > '%s.tmp'; mv "
             "'%s.tmp' '%s'",
             cwd, env, abs_bin(bin, sizeof bin), args, x->status, x->status, x->status);
    static int registered;
    if (!registered++) atexit(tmx_kill_live);
    tmx_live = x;
    char ws[16], hs[16];
    snprintf(ws, sizeof ws, "%d", w);
    snprintf(hs, sizeof hs, "%d", h);
    const char *argv[] = {"tmux", "-L", x->sock, "-f", "/dev/null", "new-session", "-d",
                          "-x",   ws,   "-y",    hs,   cmd,         NULL};
    ck_assert_msg(run_capture(argv, NULL) == 0, "tmux new-session failed (is tmux installed? "
                                                "make deps installs it)");
}

static char *tmx_capture(tmx *x, int escapes) {
    const char *argv[] = {"tmux", "-L", x->sock, "capture-pane", "-p", escapes ? "-e" : NULL, NULL};
    char *out = NULL;
    if (run_capture(argv, &out) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Poll the screen until it holds `needle`; returns the screen (free it). */
static char *tmx_wait(tmx *x, const char *needle) {
    double t0 = now_s();
    char *s = NULL;
    while (now_s() - t0 < WAIT_S) {
        free(s);
        s = tmx_capture(x, 0);
        if (s && strstr(s, needle)) return s;
        nap();
    }
    ck_abort_msg("the screen never showed \"%s\"; it shows:\n%s", needle, s ? s : "(nothing)");
    return NULL;
}

static void tmx_keys(tmx *x, const char *k) {
    const char *argv[] = {"tmux", "-L", x->sock, "send-keys", k, NULL};
    run_capture(argv, NULL);
}

/* Literal text (for the ':' prompt). */
static void tmx_text(tmx *x, const char *s) {
    const char *argv[] = {"tmux", "-L", x->sock, "send-keys", "-l", s, NULL};
    run_capture(argv, NULL);
}

static void tmx_resize(tmx *x, int w, int h) {
    char ws[16], hs[16];
    snprintf(ws, sizeof ws, "%d", w);
    snprintf(hs, sizeof hs, "%d", h);
    const char *argv[] = {"tmux", "-L", x->sock, "resize-window", "-x", ws, "-y", hs, NULL};
    run_capture(argv, NULL);
}

/* Wait for the program to end; its exit status, or -1. */
static int tmx_exit_status(tmx *x) {
    double t0 = now_s();
    while (now_s() - t0 < WAIT_S) {
        FILE *f = fopen(x->status, "r");
        if (f) {
            int st = -1;
            if (fscanf(f, "%d", &st) != 1) st = -1;
            fclose(f);
            return st;
        }
        nap();
    }
    return -1;
}

static void tmx_stop(tmx *x) {
    const char *argv[] = {"tmux", "-L", x->sock, "kill-server", NULL};
    run_capture(argv, NULL);
    tmx_live = NULL;
    unlink(x->status);
    rmdir(x->dir);
}

/* Row y (0-based) of a captured screen, into buf. */
static const char *row(const char *screen, int y, char *buf, size_t len) {
    const char *p = screen;
    for (int i = 0; i < y && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p) {
        buf[0] = 0;
        return buf;
    }
    size_t n = strcspn(p, "\n");
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

static int count_rows(const char *screen) {
    int n = 0;
    for (const char *p = screen; *p; p++)
        if (*p == '\n') n++;
    return n;
}

/* The line of a screen that starts with prefix, or "". */
static const char *line_starting(const char *screen, const char *prefix, char *buf, size_t len) {
    for (int y = 0; y < 200; y++) {
        row(screen, y, buf, len);
        if (strncmp(buf, prefix, strlen(prefix)) == 0) return buf;
        if (!strchr(screen, '\n')) break;
    }
    buf[0] = 0;
    return buf;
}

/* The four register rows (2-5) of an 80x24 screen. */
static void regs_of(const char *screen, char *out, size_t len) {
    char r[256];
    out[0] = 0;
    for (int y = 2; y <= 5; y++) {
        strncat(out, row(screen, y, r, sizeof r), len - strlen(out) - 2);
        strncat(out, "\n", len - strlen(out) - 1);
    }
}

static void quit_ok(tmx *x) {
    tmx_keys(x, "q");
    int st = tmx_exit_status(x);
    tmx_stop(x);
    ck_assert_msg(st == 0, "vlab --tui exited with status %d after q (ASan finds leaks?)", st);
}

/* ---- the tests in tmux --------------------------------------------------------------------- */

START_TEST(test_step_and_step_back) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", SLIDE1);
    char *s0 = tmx_wait(&x, "instructions recorded");
    char regs0[1024], regs1[1024], buf[256];
    regs_of(s0, regs0, sizeof regs0);
    ck_assert_ptr_nonnull(strstr(row(s0, 23, buf, sizeof buf), " step 0 "));
    ck_assert_ptr_nonnull(strstr(regs0, "pc  00001000"));
    ck_assert_ptr_nonnull(strstr(line_starting(s0, "> ", buf, sizeof buf), "00001000  li"));

    tmx_keys(&x, "s");
    char *s1 = tmx_wait(&x, " step 1 ");
    regs_of(s1, regs1, sizeof regs1);
    ck_assert_msg(strstr(regs1, "pc  00001008"), "pc did not move on:\n%s", s1);
    ck_assert_msg(strstr(regs1, "sp  00008000"), "li sp, 0x8000 did not show:\n%s", s1);
    ck_assert_ptr_nonnull(strstr(line_starting(s1, "> ", buf, sizeof buf), "00001008  li"));

    tmx_keys(&x, "b");
    char *s2 = tmx_wait(&x, " step 0 ");
    regs_of(s2, regs1, sizeof regs1);
    ck_assert_str_eq(regs1, regs0); /* the very same machine again */
    free(s0);
    free(s1);
    free(s2);
    quit_ok(&x);
}
END_TEST

/* Inside a VM: run to the tenth exit of slide 4, step into the guest
 * kernel's loop under trap-and-emulate and back -- registers at every step. */
START_TEST(test_step_inside_a_vm) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", "slides-examples/04-vt-x.lua");
    free(tmx_wait(&x, "instructions recorded"));
    for (int i = 0; i < 10; i++)
        tmx_keys(&x, "e");
    tmx_keys(&x, "s");
    tmx_keys(&x, "s");
    tmx_keys(&x, "s");
    char *s1 = tmx_wait(&x, " step 171  cycle 10600 machine 1");
    char regs[1024], buf[256];
    regs_of(s1, regs, sizeof regs);
    ck_assert_msg(!strstr(s1, "no registers here"), "no registers inside the VM:\n%s", s1);
    ck_assert_ptr_nonnull(strstr(row(s1, 1, buf, sizeof buf), "RING 1   VMX off   VM 0 on 'trap-and-emulate host'"));
    ck_assert_msg(strstr(regs, "pc  000010c0"), "pc:\n%s", s1);
    tmx_keys(&x, "b");
    char *s2 = tmx_wait(&x, " step 170  cycle 10599 machine 1");
    regs_of(s2, regs, sizeof regs);
    ck_assert_msg(!strstr(s2, "no registers here"), "no registers inside the VM:\n%s", s2);
    ck_assert_msg(strstr(regs, " r0  00000001 r1  000100bd r2  00000018 r3  000100d4"), "registers:\n%s", s2);
    ck_assert_msg(strstr(regs, "sp  00007fec pc  000010bc"), "pc:\n%s", s2);
    ck_assert_ptr_nonnull(strstr(line_starting(s2, "> ", buf, sizeof buf), "000010bc  cmp      r1, r3"));
    free(s1);
    free(s2);
    quit_ok(&x);
}
END_TEST

START_TEST(test_breakpoint_on_mnemonic) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", SLIDE1);
    free(tmx_wait(&x, "instructions recorded"));
    tmx_keys(&x, ":");
    tmx_text(&x, "b mnem syscall");
    tmx_keys(&x, "Enter");
    char *s = tmx_wait(&x, "breakpoint 1: mnem syscall");
    free(s);
    tmx_keys(&x, "c");
    s = tmx_wait(&x, "breakpoint: stopped before step 25");
    char buf[256];
    ck_assert_msg(strstr(line_starting(s, "> ", buf, sizeof buf), "syscall"),
                  "the current instruction is not the syscall:\n%s", s);
    ck_assert_msg(strstr(s, "breakpoints: 1:mnem syscall"), "breakpoints not listed:\n%s", s);
    ck_assert_msg(strstr(s, "RING 3  user"), "the syscall runs in ring 3:\n%s", s);
    free(s);
    /* the next one (exit), then back to the first */
    tmx_keys(&x, "c");
    s = tmx_wait(&x, "breakpoint: stopped before step");
    ck_assert_msg(strstr(line_starting(s, "> ", buf, sizeof buf), "syscall") &&
                      !strstr(s, "before step 25"),
                  "c did not go on to the second syscall:\n%s", s);
    free(s);
    tmx_keys(&x, "B");
    s = tmx_wait(&x, "back to breakpoint: stopped before step 25");
    free(s);
    quit_ok(&x);
}
END_TEST

START_TEST(test_resize) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", SLIDE1);
    free(tmx_wait(&x, "instructions recorded"));
    tmx_resize(&x, 100, 30);
    double t0 = now_s();
    char *s = NULL, buf[256];
    while (now_s() - t0 < WAIT_S) { /* the status line moves to the new last row */
        free(s);
        s = tmx_capture(&x, 0);
        if (s && count_rows(s) == 30 && strstr(row(s, 29, buf, sizeof buf), " step 0 ")) break;
        nap();
    }
    ck_assert_msg(s && strstr(row(s, 29, buf, sizeof buf), "?:help"),
                  "the status line is not on row 30 after the resize:\n%s", s ? s : "");
    ck_assert_int_ge((int)strlen(row(s, 0, buf, sizeof buf)), 99); /* the timeline is wider */
    free(s);
    tmx_resize(&x, 60, 20);
    free(tmx_wait(&x, "terminal too small: 80x24 needed"));
    tmx_resize(&x, 80, 24);
    s = tmx_wait(&x, "?:help");
    ck_assert_ptr_nonnull(strstr(row(s, 23, buf, sizeof buf), " step 0 "));
    ck_assert_ptr_null(strstr(s, "too small"));
    free(s);
    quit_ok(&x);
}
END_TEST

START_TEST(test_help_overlay) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", SLIDE1);
    free(tmx_wait(&x, "instructions recorded"));
    tmx_keys(&x, "?");
    char *s = tmx_wait(&x, "step over a call or syscall");
    ck_assert_ptr_nonnull(strstr(s, "step back one instruction"));
    ck_assert_ptr_nonnull(strstr(s, "b mnem NAME"));
    ck_assert_ptr_nonnull(strstr(s, "q quit"));
    free(s);
    tmx_keys(&x, "x"); /* any key closes it, and does nothing else */
    double t0 = now_s();
    while (now_s() - t0 < WAIT_S) {
        s = tmx_capture(&x, 0);
        int gone = s && !strstr(s, "step over a call");
        if (gone) break;
        free(s);
        s = NULL;
        nap();
    }
    ck_assert_msg(s != NULL, "the help did not close");
    ck_assert_ptr_nonnull(strstr(s, " step 0 "));
    free(s);
    quit_ok(&x);
}
END_TEST

START_TEST(test_without_colour) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color NO_COLOR=1", SLIDE1);
    free(tmx_wait(&x, "instructions recorded"));
    tmx_keys(&x, "y");
    free(tmx_wait(&x, "syscall at step 25"));
    char *s = tmx_capture(&x, 1);
    ck_assert_ptr_nonnull(s);
    /* no colours (SGR 30-49 other than the defaults 39/49), but reverse video */
    for (const char *p = s; (p = strstr(p, "\033[")) != NULL; p++) {
        const char *q = p + 2;
        while (*q && *q != 'm' && (q - p) < 40) {
            int n = atoi(q);
            ck_assert_msg(n < 30 || n > 49 || n == 39 || n == 49,
                          "a colour (SGR %d) without colour", n);
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q == ';')
                q++;
            else
                break;
        }
    }
    ck_assert_msg(strstr(s, "\033[7m") || strstr(s, ";7m") || strstr(s, "[7;"),
                  "no reverse video for the current line:\n%s", s);
    free(s);
    quit_ok(&x);
}
END_TEST

START_TEST(test_quit_status) {
    tmx x;
    tmx_start(&x, 80, 24, "TERM=xterm-256color", SLIDE1);
    free(tmx_wait(&x, "instructions recorded"));
    tmx_keys(&x, "End");
    free(tmx_wait(&x, "the end of the run"));
    quit_ok(&x);
}
END_TEST

/* ---- without a terminal -------------------------------------------------------------------- */

START_TEST(test_needs_a_terminal) {
    const char *argv[] = {"vlab", SLIDE1, "--tui", NULL};
    run_result r;
    ck_assert_int_eq(run_vlab(argv, "", &r), 0);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "vlab: --tui needs a terminal"));
    run_result_free(&r);
}
END_TEST

static char *script(const char *scenario, const char *keys, int *status) {
    const char *argv[] = {"vlab", scenario, "--tui-script", keys, NULL};
    run_result r;
    ck_assert_int_eq(run_vlab(argv, NULL, &r), 0);
    *status = r.status;
    if (r.status != 0) fprintf(stderr, "%s", r.err);
    char *out = r.out;
    free(r.err);
    return out;
}

START_TEST(test_script_step_over_and_runs) {
    int st;
    /* :b mnem call stops on the kernel's `call puts`; S comes back after it */
    char *out = script(SLIDE1, ":b mnem call; c @screen S @screen", &st);
    ck_assert_int_eq(st, 0);
    char *second = strstr(out + 1, "== screen");
    ck_assert_ptr_nonnull(second);
    char buf[256];
    ck_assert_ptr_nonnull(strstr(line_starting(out, "> ", buf, sizeof buf), "call     0x1190"));
    ck_assert_ptr_nonnull(strstr(line_starting(second, "> ", buf, sizeof buf), "000010f0  hlt"));
    ck_assert_ptr_nonnull(strstr(second, "stepped over the call"));
    free(out);

    /* y: right after the system call's trap, in ring 0 at the handler */
    out = script(SLIDE1, "y", &st);
    ck_assert_ptr_nonnull(strstr(out, "RING 0  kernel"));
    ck_assert_ptr_nonnull(strstr(out, "syscall at step 25"));
    ck_assert_ptr_nonnull(strstr(line_starting(out, "> ", buf, sizeof buf), "00001088  cmpi"));
    ck_assert_ptr_nonnull(strstr(out, "*    25    3 00010018  >> trap syscall"));
    free(out);

    /* o: after the first out; t twice then B: back to the first trap */
    out = script(SLIDE1, "o", &st);
    ck_assert_ptr_nonnull(strstr(out, "io at step 33"));
    free(out);
    out = script(SLIDE1, "t t B", &st);
    ck_assert_ptr_nonnull(strstr(out, "back to trap at step 25"));
    free(out);

    /* i: this run has no interrupt; e: no exit */
    out = script(SLIDE1, "i", &st);
    ck_assert_ptr_nonnull(strstr(out, "no interrupt after this point"));
    free(out);

    /* g goes to a step; Home and End */
    out = script(SLIDE1, "g 1 0 0 Enter", &st);
    ck_assert_ptr_nonnull(strstr(out, " step 100 "));
    free(out);
    out = script(SLIDE1, "End Home", &st);
    ck_assert_ptr_nonnull(strstr(out, " step 0 "));
    free(out);
}
END_TEST

START_TEST(test_script_process_line) {
    int st;
    char buf[256];
    /* vlab-os switches page tables: a process line under the ring line, and
     * the badge names the process (processes count from 0, the boot page
     * directory, so vlab-os's pid 4 is process 4; with its disk it runs six) */
    char *out = script("scenarios/guest-os-native.lua", "g 5 0 0 0 Enter", &st);
    ck_assert_int_eq(st, 0);
    const char *proc = line_starting(out, "proc ", buf, sizeof buf);
    ck_assert_msg(proc[0] && proc[5] == '-' && strspn(proc + 5, "-0123456") >= 70,
                  "no process line:\n%s", out);
    ck_assert_msg(strchr(proc + 5, '0') && strchr(proc + 5, '4'), "%s", proc);
    ck_assert_ptr_nonnull(strstr(line_starting(out, "ring ", buf, sizeof buf), "3"));
    ck_assert_msg(strstr(out, "machine 0 'bare metal'   process 4 "), "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "ptbr 0002c000"));
    free(out);
    out = script("scenarios/guest-os-native.lua", "Home", &st);
    ck_assert_msg(strstr(out, "   no process yet"), "%s", out);
    free(out);
    /* a breakpoint on process switches: the first two are the boot page
     * directory (process 0), then process 1's */
    out = script("scenarios/guest-os-native.lua", ":b event process; c @screen c", &st);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(strstr(out, "*  2178    0 00001250     address space: page tables at 0x00009000"), "%s", out);
    ck_assert_msg(strstr(out, "address space: page tables at 0x00020000"), "%s", out);
    ck_assert_msg(strstr(out, "breakpoints: 1:event process"), "%s", out);
    free(out);
    out = script("scenarios/guest-os-native.lua", "?", &st);
    ck_assert_ptr_nonnull(strstr(out, "proc line, in runs that switch page tables"));
    free(out);
    /* one address space: no process line, the screen as before */
    out = script(SLIDE1, "s", &st);
    ck_assert_str_eq(line_starting(out, "proc ", buf, sizeof buf), "");
    ck_assert_ptr_nonnull(strstr(out, "\n RING 0  kernel "));
    ck_assert_ptr_null(strstr(out, "process"));
    free(out);
}
END_TEST

START_TEST(test_script_stepping_rebuilds_the_run) {
    /* every instruction of these runs, by stepping forward: pc, step and ring
     * as recorded, and the same machine as a fresh rebuild */
    static const char *const runs[] = {
        SLIDE1, "slides-examples/02-sensitive-instructions.lua", "docs/examples/isa-programs.lua",
        "docs/examples/stepping.lua", "docs/examples/trap-handler.lua"};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        if (access(runs[i], R_OK)) continue;
        int st;
        char *out = script(runs[i], "@verify q", &st);
        ck_assert_msg(st == 0 && strstr(out, "positions: ok"), "%s: %s", runs[i], out);
        free(out);
    }
}
END_TEST

/* The same inside VM runs: the history checkpoints after every exit, world
 * switch and VM switch, so each step of a VM rebuilds exactly (trap-and-
 * emulate, VT-x, binary translation, a disk through the device model, copy-
 * on-write, a hosted VMM, a hosted VMM whose host OS drives the disk). */
START_TEST(test_script_stepping_rebuilds_vm_runs) {
    static const char *const runs[] = {
        "slides-examples/03-trap-and-emulate.lua", "slides-examples/04-vt-x.lua",
        "slides-examples/06-binary-translation.lua", "slides-examples/07-reading-from-disk.lua",
        "slides-examples/08-copy-on-write.lua", "slides-examples/10-hosted-vm.lua",
        "slides-examples/12-hosted-disk.lua"};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int st;
        char *out = script(runs[i], "@verify q", &st);
        ck_assert_msg(st == 0 && strstr(out, "positions: ok"), "%s: %s", runs[i], out);
        free(out);
    }
}
END_TEST

/* Registers inside a VM run, between two exits: a guest kernel under
 * trap-and-emulate (stepping forward, then back), and a VM on the second
 * physical CPU of a two-CPU machine. */
START_TEST(test_script_registers_inside_vms) {
    int st;
    char *out = script("slides-examples/04-vt-x.lua", "e e e e e e e e e e s s s @screen b", &st);
    ck_assert_int_eq(st, 0);
    ck_assert_ptr_null(strstr(out, "no registers here"));
    ck_assert_ptr_nonnull(strstr(out, " RING 1   VMX off   VM 0 on 'trap-and-emulate host'"));
    ck_assert_ptr_nonnull(strstr(out, " step 171  cycle 10600 machine 1"));
    ck_assert_ptr_nonnull(strstr(out, " step 170  cycle 10599 machine 1"));
    ck_assert_ptr_nonnull(strstr(out, " r0  00000001 r1  000100bd r2  00000018 r3  000100d4"));
    ck_assert_ptr_nonnull(strstr(out, "sp  00007fec pc  000010bc IF"));
    ck_assert_ptr_nonnull(strstr(out, ">  000010bc  cmp      r1, r3"));
    free(out);
    out = script("slides-examples/09-vms-on-two-cpus.lua", ":g 150000; @screen", &st);
    ck_assert_int_eq(st, 0);
    ck_assert_ptr_null(strstr(out, "no registers here"));
    ck_assert_ptr_nonnull(strstr(out, "VM 0 on '2 CPUs' CPU 1   process 3"));
    ck_assert_ptr_nonnull(strstr(out, "r1  00001bea"));
    ck_assert_ptr_nonnull(strstr(out, "sp  00007bac pc  00001ba8"));
    free(out);
}
END_TEST

START_TEST(test_script_errors) {
    const char *argv[] = {"vlab", SLIDE1, "--tui-script", "s Bogus", NULL};
    run_result r;
    ck_assert_int_eq(run_vlab(argv, NULL, &r), 0);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown key 'Bogus'"));
    run_result_free(&r);
    int st;
    char *out =
        script(SLIDE1, ":b mnem bogus; @screen :b event nothing; @screen :b 0x1048; c b", &st);
    ck_assert_ptr_nonnull(strstr(out, "unknown instruction 'bogus'"));
    ck_assert_ptr_nonnull(strstr(out, "unknown event 'nothing'"));
    ck_assert_ptr_nonnull(strstr(out, " B 00001048  li       r1, 0x20000"));
    free(out);
}
END_TEST

/* Copy-on-write events show in the events pane, where they happened. */
START_TEST(test_script_copy_on_write_events) {
    int st;
    char *out = script("slides-examples/08-copy-on-write.lua", ":g 407; @screen", &st);
    ck_assert_int_eq(st, 0);
    ck_assert_ptr_nonnull(strstr(out, "cow: vm 0 wrote shared guest page 0x00020000: copied"));
    free(out);
}
END_TEST

Suite *suite_tui(void) {
    Suite *s = suite_create("tui");
    TCase *t = tcase_create("tmux");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_step_and_step_back);
    tcase_add_test(t, test_step_inside_a_vm);
    tcase_add_test(t, test_breakpoint_on_mnemonic);
    tcase_add_test(t, test_resize);
    tcase_add_test(t, test_help_overlay);
    tcase_add_test(t, test_without_colour);
    tcase_add_test(t, test_quit_status);
    suite_add_tcase(s, t);
    TCase *n = tcase_create("script");
    tcase_set_timeout(n, 120);
    tcase_add_test(n, test_needs_a_terminal);
    tcase_add_test(n, test_script_step_over_and_runs);
    tcase_add_test(n, test_script_process_line);
    tcase_add_test(n, test_script_stepping_rebuilds_the_run);
    tcase_add_test(n, test_script_stepping_rebuilds_vm_runs);
    tcase_add_test(n, test_script_registers_inside_vms);
    tcase_add_test(n, test_script_errors);
    tcase_add_test(n, test_script_copy_on_write_events);
    suite_add_tcase(s, n);
    return s;
}
