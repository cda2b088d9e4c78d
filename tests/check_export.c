/* tests/check_export.c -- `vlab export`: diagrams through Graphviz.
 *
 * The DOT files of the slides examples match their golden files byte for
 * byte (tests/golden/export/<example>[.<variant>].<view>.dot; rewritten with
 * VLAB_UPDATE_GOLDEN=1, like the traces); the `dot` program accepts every
 * exported DOT file without a warning; PNG, SVG and PDF files are what their
 * names say; the same run gives the same bytes; the window options and
 * --machine choose what is drawn; a long run is cut with a note; and
 * mistakes are usage errors (exit 2) that name the allowed values, while
 * scenario errors behave as in a normal run and leave no file behind. */
#include <check.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runvlab.h"

Suite *suite_export(void);

extern char **environ;

static char dir[64];

/* One folder for the whole suite, made and removed by the runner (an
 * unchecked fixture), so a failing test leaves nothing behind. */
static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/vlab-export-XXXXXX");
    if (!mkdtemp(dir)) abort();
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static void out_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Run vlab export with argv (NULL-terminated, after "vlab"); expects status. */
static void export_ok(const char *const *args, run_result *r) {
    const char *argv[32] = {"vlab", "export"};
    int n = 2;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    ck_assert_msg(run_vlab(argv, NULL, r) == 0, "cannot run %s", vlab_bin());
    ck_assert_msg(r->status == 0, "export failed (%d)\nstdout: %s\nstderr: %s", r->status, r->out,
                  r->err);
    ck_assert_msg(!strstr(r->err, "AddressSanitizer") && !strstr(r->err, "runtime error"),
                  "sanitizer report:\n%s", r->err);
}

/* Run `dot -Tsvg file`; 0 when it accepts the file without a word on stderr. */
static int dot_accepts(const char *file, char *msg, size_t msglen) {
    char errf[128];
    out_path(errf, sizeof errf, "dot.err");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = {"dot", "-Tsvg", (char *)file, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "dot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        snprintf(msg, msglen, "cannot run dot");
        return -1;
    }
    int st;
    waitpid(pid, &st, 0);
    char *err = slurp_file(errf, NULL);
    snprintf(msg, msglen, "%s", err ? err : "");
    int bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0 || (err && err[0]);
    free(err);
    return bad ? -1 : 0;
}

/* ---- golden DOT files of the slides examples -------------------------------------------- */

static const struct golden_case {
    const char *scenario, *variant, *view;
    const char *args[8];
    const char *folder; /* NULL: slides-examples */
} goldens[] = {
    {"01-syscall-user-kernel", NULL, "traps", {NULL}, NULL},
    {"01-syscall-user-kernel", NULL, "schedule", {NULL}, NULL},
    {"02-sensitive-instructions", "policy-strict", "traps", {"--policy", "strict", NULL}, NULL},
    {"02-sensitive-instructions", "policy-x86", "traps", {"--policy", "x86", NULL}, NULL},
    {"02-sensitive-instructions", "policy-x86", "schedule", {"--policy", "x86", NULL}, NULL},
    /* vlab-os: the guest-process band (its first switches) */
    {"guest-os-native", "to-6000", "schedule", {"--to", "6000", NULL}, "scenarios"},
    /* two physical CPUs: a row each, VMs moving between them */
    {"09-vms-on-two-cpus", "machine1-window", "schedule",
     {"--machine", "1", "--from", "100000", "--to", "101500", NULL}, NULL},
    /* "Reading from disk": on bare metal, and through trap-and-emulate's device model */
    {"07-reading-from-disk", "machine0", "traps", {"--machine", "0", NULL}, NULL},
    {"07-reading-from-disk", "machine1-window", "traps", {"--machine", "1", "--from", "20", "--to", "75", NULL}, NULL},
    /* hosted: VMApp and the host OS do the guest's console write ("VMware I/O") */
    {"10-hosted-vm", "machine1-window", "traps", {"--machine", "1", "--from", "380", "--to", "460", NULL}, NULL},
    /* hosted "Reading from disk": the VMM, VMApp's read(), the host OS driving the host's disk */
    {"12-hosted-disk", "machine1-window", "traps", {"--machine", "1", "--from", "240", "--to", "1225", NULL}, NULL},
};

START_TEST(test_golden_dot) {
    const struct golden_case *k = &goldens[_i];
    char scen[128], file[128], golden[256];
    snprintf(scen, sizeof scen, "%s/%s.lua", k->folder ? k->folder : "slides-examples",
             k->scenario);
    out_path(file, sizeof file, "out.dot");
    snprintf(golden, sizeof golden, "tests/golden/export/%s%s%s.%s.dot", k->scenario,
             k->variant ? "." : "", k->variant ? k->variant : "", k->view);
    const char *args[12] = {scen, "--view", k->view, "-o", file};
    int n = 5;
    for (int i = 0; k->args[i]; i++)
        args[n++] = k->args[i];
    args[n] = NULL;
    run_result r;
    export_ok(args, &r);
    run_result_free(&r);
    size_t got_len, want_len;
    char *got = slurp_file(file, &got_len);
    ck_assert_ptr_nonnull(got);
    const char *update = getenv("VLAB_UPDATE_GOLDEN");
    if (update && *update && strcmp(update, "0")) {
        mkdir("tests/golden/export", 0755);
        FILE *f = fopen(golden, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(got, 1, got_len, f), got_len);
        ck_assert_int_eq(fclose(f), 0);
    }
    char *want = slurp_file(golden, &want_len);
    ck_assert_msg(want != NULL, "no golden file %s (make it with VLAB_UPDATE_GOLDEN=1)", golden);
    ck_assert_msg(got_len == want_len && memcmp(got, want, got_len) == 0,
                  "%s differs from %s (diff them; rewrite with VLAB_UPDATE_GOLDEN=1 when the "
                  "change is intended)",
                  file, golden);
    char msg[2048];
    ck_assert_msg(dot_accepts(file, msg, sizeof msg) == 0, "dot rejects %s:\n%s", golden, msg);
    free(got);
    free(want);
}
END_TEST

/* ---- every export is accepted by dot, for every example and both views ------------------ */

static const char *const all_scenarios[][3] = {
    {"slides-examples/01-syscall-user-kernel.lua", NULL, NULL},
    {"slides-examples/02-sensitive-instructions.lua", "--policy", "strict"},
    {"slides-examples/03-trap-and-emulate.lua", "--policy", "x86"},
    {"slides-examples/04-vt-x.lua", NULL, NULL},
    {"slides-examples/08-copy-on-write.lua", NULL, NULL}, /* copy-on-write events, EPT violations */
    {"docs/examples/trap-handler.lua", NULL, NULL},
    {"docs/examples/isa-programs.lua", NULL, NULL},
    {"tests/cli/guest_fault.lua", NULL, NULL},
};

START_TEST(test_dot_accepts_every_export) {
    for (size_t s = 0; s < sizeof all_scenarios / sizeof all_scenarios[0]; s++)
        for (int view = 0; view < 2; view++) {
            char file[128], msg[2048];
            out_path(file, sizeof file, "x.dot");
            const char *args[] = {all_scenarios[s][0],
                                  "--view",
                                  view ? "schedule" : "traps",
                                  "-o",
                                  file,
                                  all_scenarios[s][1],
                                  all_scenarios[s][2],
                                  NULL};
            run_result r;
            export_ok(args, &r);
            run_result_free(&r);
            ck_assert_msg(dot_accepts(file, msg, sizeof msg) == 0, "dot rejects %s (%s):\n%s",
                          all_scenarios[s][0], view ? "schedule" : "traps", msg);
        }
}
END_TEST

/* ---- images are images ------------------------------------------------------------------ */

START_TEST(test_formats) {
    static const char *const views[] = {"traps", "schedule"};
    for (int v = 0; v < 2; v++) {
        char png[128], svg[128], pdf[128], tmp[160];
        out_path(png, sizeof png, "a.png");
        out_path(svg, sizeof svg, "a.svg");
        out_path(pdf, sizeof pdf, "a.pdf");
        const char *files[] = {png, svg, pdf};
        for (int f = 0; f < 3; f++) {
            const char *args[] = {"slides-examples/01-syscall-user-kernel.lua",
                                  "--view",
                                  views[v],
                                  "-o",
                                  files[f],
                                  NULL};
            run_result r;
            export_ok(args, &r);
            ck_assert_msg(strstr(r.out, "vlab: wrote ") && strstr(r.out, files[f]), "%s", r.out);
            run_result_free(&r);
            snprintf(tmp, sizeof tmp, "%s.tmp", files[f]);
            ck_assert_int_ne(access(tmp, F_OK), 0); /* no temporary left */
        }
        size_t n;
        char *b = slurp_file(png, &n);
        ck_assert_ptr_nonnull(b);
        ck_assert_msg(n > 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
        free(b);
        b = slurp_file(svg, &n);
        ck_assert_ptr_nonnull(b);
        ck_assert_msg(strncmp(b, "<?xml", 5) == 0 && strstr(b, "<svg") && strstr(b, "</svg>"),
                      "not an SVG");
        ck_assert_msg(strstr(b, views[v][0] == 't' ? "syscall (int 0x80)" : "kernel"),
                      "the SVG lacks the words of the picture");
        free(b);
        b = slurp_file(pdf, &n);
        ck_assert_ptr_nonnull(b);
        ck_assert_msg(n > 5 && memcmp(b, "%PDF-", 5) == 0, "not a PDF");
        free(b);
    }
}
END_TEST

/* ---- the same run gives the same bytes -------------------------------------------------- */

START_TEST(test_deterministic) {
    static const char *const kinds[][2] = {
        {"traps", "a.dot"}, {"traps", "a.svg"}, {"schedule", "a.dot"}, {"schedule", "a.svg"}};
    for (int k = 0; k < 4; k++) {
        char file[128];
        char *first = NULL;
        size_t first_len = 0;
        for (int run = 0; run < 2; run++) {
            out_path(file, sizeof file, kinds[k][1]);
            const char *args[] = {
                "slides-examples/03-trap-and-emulate.lua", "--view", kinds[k][0], "-o", file, NULL};
            run_result r;
            export_ok(args, &r);
            run_result_free(&r);
            size_t n;
            char *b = slurp_file(file, &n);
            ck_assert_ptr_nonnull(b);
            if (!run) {
                first = b;
                first_len = n;
                continue;
            }
            ck_assert_msg(n == first_len && memcmp(b, first, n) == 0,
                          "two runs gave different %s (%s)", kinds[k][1], kinds[k][0]);
            ck_assert_msg(!strstr(b, "0x7f") && !strstr(b, "0x55"), "a pointer in the file?");
            free(b);
        }
        free(first);
    }
}
END_TEST

/* ---- what is drawn: the window, the cut, one machine, the words ------------------------- */

static char *export_text(const char *const *args, run_result *r) {
    char file[128];
    out_path(file, sizeof file, "w.dot");
    const char *argv[16];
    int n = 0;
    for (; args[n]; n++)
        argv[n] = args[n];
    argv[n++] = "-o";
    argv[n++] = file;
    argv[n] = NULL;
    export_ok(argv, r);
    char *text = slurp_file(file, NULL);
    ck_assert_ptr_nonnull(text);
    return text;
}

START_TEST(test_window_and_words) {
    run_result r;
    /* the whole of example 01: its seven transitions, in the slide's words */
    const char *a1[] = {"slides-examples/01-syscall-user-kernel.lua", NULL};
    char *t = export_text(a1, &r);
    ck_assert_msg(strstr(r.out, "7 transitions, steps 0-328 of 329"), "%s", r.out);
    ck_assert(strstr(t, "label=\"1: return (iret)\""));
    ck_assert(strstr(t, "label=\"2: syscall (int 0x80)\""));
    ck_assert(strstr(t, "3: out 0x3f8 x18\\n\\\"hello from ring 3\\\\n\\\"")); /* folded */
    ck_assert(strstr(t, "label=\"user application\\nring 3\""));
    ck_assert(strstr(t, "label=\"kernel (OS)\\nring 0\""));
    ck_assert(strstr(t, "label=\"hardware\\ndevices, timer\""));
    ck_assert(strstr(t, "7: hlt: halted"));
    ck_assert(!strstr(t, "cut after"));
    free(t);
    run_result_free(&r);

    /* a window: only what happened in steps 140-150, numbered from 1 */
    const char *a2[] = {
        "slides-examples/01-syscall-user-kernel.lua", "--from", "140", "--to", "150", NULL};
    t = export_text(a2, &r);
    ck_assert_msg(strstr(r.out, "2 transitions, steps 140-150 of 329"), "%s", r.out);
    ck_assert(strstr(t, "steps 140-150 of 329"));
    ck_assert(strstr(t, "label=\"1: return (iret)\""));
    ck_assert(strstr(t, "label=\"2: syscall (int 0x80)\""));
    ck_assert(!strstr(t, "hello from ring 3"));
    ck_assert(!strstr(t, "3: "));
    free(t);
    run_result_free(&r);

    /* x86: the holes are marks on the user's lane */
    const char *a3[] = {"slides-examples/02-sensitive-instructions.lua", "--policy", "x86", NULL};
    t = export_text(a3, &r);
    ck_assert(strstr(t, "!! smsw ran at ring 3 without trapping"));
    ck_assert(strstr(t, "!! popf ran at ring 3 without trapping\\nits privileged effect was "
                        "dropped"));
    ck_assert(strstr(t, "#GP cli"));
    free(t);
    run_result_free(&r);

    /* trap-and-emulate: one machine, the hypervisor's lane, and a cut */
    const char *a4[] = {
        "slides-examples/03-trap-and-emulate.lua", "--policy", "strict", "--machine", "1", NULL};
    t = export_text(a4, &r);
    ck_assert_msg(strstr(r.out, "60 transitions") && strstr(r.out, "(cut: use --from/--to)"), "%s",
                  r.out);
    ck_assert(strstr(t, "cut after 60 transitions; use --from/--to"));
    ck_assert(strstr(t, "label=\"guest OS\\nvm 0, real ring 1\""));
    ck_assert(strstr(t, "label=\"hypervisor\\nthe VMM\""));
    ck_assert(strstr(t, "reflect #GP smsw"));
    ck_assert(strstr(t, "emulated iret"));
    ck_assert(strstr(t, "shadow page table: page 0x00001000"));
    ck_assert(!strstr(t, "bare metal"));
    free(t);
    run_result_free(&r);

    /* the Lua monitor: trap-and-emulate done by the scenario */
    const char *a5[] = {"docs/examples/trap-handler.lua", NULL};
    t = export_text(a5, &r);
    ck_assert(strstr(t, "label=\"host monitor (Lua)\\nthe scenario's trap handlers\""));
    ck_assert(strstr(t, "label=\"1: #GP cli\""));
    ck_assert(strstr(t, "label=\"2: emulated cli\""));
    free(t);
    run_result_free(&r);

    /* the schedule: spans of a CPU with their share */
    const char *a6[] = {"slides-examples/01-syscall-user-kernel.lua", "--view", "schedule", NULL};
    t = export_text(a6, &r);
    ck_assert_msg(strstr(r.out, "schedule, 5 spans"), "%s", r.out);
    ck_assert(strstr(t, "layout=nop2"));
    ck_assert(strstr(t, "label=\"user 0.4%\\nkernel 99.6%\""));
    ck_assert(strstr(t, "cycles 0-152807"));
    free(t);
    run_result_free(&r);
}
END_TEST

/* ---- guest processes: the schedule's third band ------------------------------------------ */

/* The label of process-band node cpu0_procN in a DOT file, or NULL. */
static const char *proc_node(const char *dot, int n, char *tip, size_t len) {
    char name[32];
    snprintf(name, sizeof name, "\tcpu0_proc%d\t", n);
    const char *p = strstr(dot, name);
    if (!p) return NULL;
    const char *t = strstr(p, "tooltip=\""), *end = strstr(p, "];");
    if (!t || !end || t > end) return NULL;
    t += 9;
    size_t k = strcspn(t, "\"");
    snprintf(tip, len, "%.*s", (int)(k < len ? k : len - 1), t);
    return tip;
}

START_TEST(test_process_band) {
    run_result r;
    /* vlab-os natively: nothing before its first `wrcr ptbr`, then its boot page
     * directory, then its processes (six: the machine has a disk), numbered from 0
     * in the order they first run */
    const char *a1[] = {"scenarios/guest-os-native.lua", "--view", "schedule", "--to", "8000", NULL};
    char *t = export_text(a1, &r);
    char tip[256];
    ck_assert_ptr_nonnull(proc_node(t, 1, tip, sizeof tip));
    ck_assert_msg(strstr(tip, "no process yet") && strstr(tip, "cycles 0-"), "%s", tip);
    static const char *const want[] = {"process 0: page tables at 0x00009000",
                                       "process 1: page tables at 0x00020000",
                                       "process 2: page tables at 0x00024000",
                                       "process 3: page tables at 0x00028000",
                                       "process 4: page tables at 0x0002c000",
                                       "process 5: page tables at 0x00030000"};
    for (int i = 0; i < 6; i++) {
        ck_assert_ptr_nonnull(proc_node(t, i + 2, tip, sizeof tip));
        ck_assert_msg(strncmp(tip, want[i], strlen(want[i])) == 0, "span %d: %s", i + 2, tip);
    }
    ck_assert(strstr(t, "process 6: page tables at 0x00034000"));
    ck_assert(!strstr(t, "process 7")); /* six processes and the boot page directory */
    ck_assert(strstr(t, "label=<process 4 <FONT POINT-SIZE=\"6\">0x0002c000</FONT>>"));
    ck_assert(strstr(t, "guest process: its page tables"));
    free(t);
    run_result_free(&r);

    /* in a VM (VT-x): the same processes, per VM, under the VM band */
    const char *a2[] = {"scenarios/guest-os-vm.lua", "--view", "schedule", "--machine", "4",
                        "--from", "1500", "--to", "3000", NULL};
    t = export_text(a2, &r);
    ck_assert(strstr(t, "cpu4_vm1"));
    ck_assert(strstr(t, "process 1: page tables at 0x00020000 (vm 0)"));
    free(t);
    run_result_free(&r);

    /* no page-table switch: no band */
    const char *a3[] = {"slides-examples/05-scheduling-vms.lua", "--view", "schedule", "--to",
                        "100000", NULL};
    t = export_text(a3, &r);
    ck_assert(strstr(t, "cpu0_vm1"));
    ck_assert(!strstr(t, "_proc1"));
    free(t);
    run_result_free(&r);
}
END_TEST

/* ---- mistakes ---------------------------------------------------------------------------- */

typedef struct err_case {
    const char *name;
    const char *argv[12];
    int status;
    const char *in_err;
} err_case;

static const err_case errs[] = {
    {"unknown view",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--view", "pie", "-o",
      "/tmp/vlab-x.dot", NULL},
     2,
     "unknown view 'pie' (expected traps or schedule)"},
    {"unknown format",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--format", "gif", "-o",
      "/tmp/vlab-x.gif", NULL},
     2,
     "unknown format 'gif' (expected dot, svg, png or pdf)"},
    {"no output file",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", NULL},
     2,
     "export needs an output file: -o FILE"},
    {"format from the name",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "-o", "/tmp/vlab-x.jpeg",
      NULL},
     2,
     "cannot tell the format of '/tmp/vlab-x.jpeg' from its name: give --format dot, svg, png or "
     "pdf"},
    {"window backwards",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--from", "9", "--to", "3",
      "-o", "/tmp/vlab-x.dot", NULL},
     2,
     "--from 9 is after --to 3"},
    {"bad step",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--from", "x", "-o",
      "/tmp/vlab-x.dot", NULL},
     2,
     "--from expects a step number, got 'x'"},
    {"value missing",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "-o", NULL},
     2,
     "-o needs a value"},
    {"run options still checked",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--policy", "arm", "-o",
      "/tmp/vlab-x.dot", NULL},
     2,
     "unknown policy 'arm'"},
    {"missing scenario",
     {"vlab", "export", "tests/cli/nope.lua", "-o", "/tmp/vlab-x.dot", NULL},
     2,
     "cannot read scenario 'tests/cli/nope.lua'"},
    {"lua error as in a run",
     {"vlab", "export", "tests/cli/bad_lua.lua", "-o", "/tmp/vlab-x.dot", NULL},
     1,
     "tests/cli/bad_lua.lua:1: attempt to index a nil value (field 'y')\nstack traceback:"},
    {"budget as in a run",
     {"vlab", "export", "tests/cli/runaway.lua", "--max-steps", "1000", "-o", "/tmp/vlab-x.dot",
      NULL},
     3,
     "step budget of 1000 steps exhausted (raise it with --max-steps)"},
    {"no such machine",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--machine", "3", "-o",
      "/tmp/vlab-x.dot", NULL},
     2,
     "--machine 3: the run made 1 machine (0-0)"},
    {"tui is for running",
     {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua", "--tui", "-o",
      "/tmp/vlab-x.dot", NULL},
     2,
     "export draws a run; --tui is for running one"},
    {"help names export", {"vlab", "--help", NULL}, 0, NULL},
};

START_TEST(test_errors) {
    const err_case *k = &errs[_i];
    unlink("/tmp/vlab-x.dot");
    run_result r;
    ck_assert_msg(run_vlab(k->argv, NULL, &r) == 0, "cannot run %s", vlab_bin());
    ck_assert_msg(r.status == k->status, "%s: exit %d, expected %d\nstderr: %s", k->name, r.status,
                  k->status, r.err);
    if (k->in_err)
        ck_assert_msg(strstr(r.err, k->in_err), "%s: stderr lacks \"%s\":\n%s", k->name, k->in_err,
                      r.err);
    if (k->status == 0) ck_assert(strstr(r.out, "vlab export SCENARIO.lua -o FILE"));
    ck_assert_msg(access("/tmp/vlab-x.dot", F_OK) != 0, "%s: a file was written", k->name);
    ck_assert_msg(access("/tmp/vlab-x.dot.tmp", F_OK) != 0, "%s: a temporary was left", k->name);
    ck_assert_msg(!strstr(r.err, "AddressSanitizer") && !strstr(r.err, "runtime error"),
                  "%s: sanitizer report:\n%s", k->name, r.err);
    run_result_free(&r);
}
END_TEST

/* a file that cannot be written: exit 1, why, and nothing left behind */
START_TEST(test_unwritable) {
    static const char *const exts[] = {"dot", "png"};
    for (int i = 0; i < 2; i++) {
        char file[160];
        snprintf(file, sizeof file, "%s/no/such/dir/out.%s", dir, exts[i]);
        const char *argv[] = {"vlab", "export", "slides-examples/01-syscall-user-kernel.lua",
                              "-o",   file,     NULL};
        run_result r;
        ck_assert(run_vlab(argv, NULL, &r) == 0);
        ck_assert_int_eq(r.status, 1);
        ck_assert_msg(strstr(r.err, "cannot write") && strstr(r.err, "No such file or directory"),
                      "%s", r.err);
        run_result_free(&r);
    }
    /* an existing file is replaced whole */
    char file[128];
    out_path(file, sizeof file, "keep.dot");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("old", f);
    fclose(f);
    const char *argv[] = {"vlab", "export", "tests/cli/bad_lua.lua", "-o", file, NULL};
    run_result r;
    ck_assert(run_vlab(argv, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 1);
    run_result_free(&r);
    char *text = slurp_file(file, NULL);
    ck_assert_str_eq(text, "old"); /* a failed run leaves the old file alone */
    free(text);
}
END_TEST

Suite *suite_export(void) {
    Suite *s = suite_create("export");
    TCase *t = tcase_create("export");
    tcase_set_timeout(t, 300);
    tcase_add_unchecked_fixture(t, make_dir, remove_dir);
    tcase_add_loop_test(t, test_golden_dot, 0, (int)(sizeof goldens / sizeof goldens[0]));
    tcase_add_test(t, test_dot_accepts_every_export);
    tcase_add_test(t, test_formats);
    tcase_add_test(t, test_deterministic);
    tcase_add_test(t, test_window_and_words);
    tcase_add_test(t, test_process_band);
    tcase_add_loop_test(t, test_errors, 0, (int)(sizeof errs / sizeof errs[0]));
    tcase_add_test(t, test_unwritable);
    suite_add_tcase(s, t);
    return s;
}
