/* tests/check_cli.c -- the command line as a user meets it: usage errors,
 * bad assembly, bad Lua, failed expectations, runaway scenarios ended by the
 * step, Lua-instruction and memory budgets, the sandbox, determinism of
 * --seed, trace files, and a misbehaving guest as an outcome.  Each case runs
 * the real binary ($VLAB_BIN) and checks the exit status and what it says. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runvlab.h"

Suite *suite_cli(void);

typedef struct cli_case {
    const char *name;
    const char *argv[10];
    int status;
    const char *in_out; /* must appear in stdout (or NULL) */
    const char *in_err; /* must appear in stderr (or NULL) */
} cli_case;

static const cli_case cases[] = {
    {"no arguments", {"vlab", NULL}, 2, NULL, "usage:"},
    {"help", {"vlab", "--help", NULL}, 0, "--max-steps N", NULL},
    {"help lists every run flag", {"vlab", "--help", NULL}, 0, "--mem-limit MB", NULL},
    {"version", {"vlab", "--version", NULL}, 0, "vlab ", NULL},
    {"unknown option", {"vlab", "x.lua", "--bogus", NULL}, 2, NULL, "unknown option '--bogus'"},
    {"bad seed",
     {"vlab", "tests/cli/seeded.lua", "--seed", "abc", NULL},
     2,
     NULL,
     "--seed expects a number"},
    {"missing value",
     {"vlab", "tests/cli/seeded.lua", "--seed", NULL},
     2,
     NULL,
     "--seed needs a value"},
    {"bad policy",
     {"vlab", "tests/cli/seeded.lua", "--policy", "arm", NULL},
     2,
     NULL,
     "unknown policy 'arm'"},
    {"bad show",
     {"vlab", "tests/cli/seeded.lua", "--show", "traps,bogus", NULL},
     2,
     NULL,
     "unknown event class 'bogus'"},
    {"bad show names the classes",
     {"vlab", "replay", "tests/cli/none.trace", "--show", "exit", NULL},
     2,
     NULL,
     "unknown event class 'exit' (insn, traps, exits, io, sched, cow, sens, notes, all)"},
    {"help: the show classes", {"vlab", "--help", NULL}, 0, "cow (copy-on-write memory: copies, clones, merges,",
     NULL},
    {"show cow is accepted",
     {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--show", "cow", NULL},
     0,
     "== summary",
     NULL},
    {"show sched: address-space switches",
     {"vlab", "scenarios/guest-os-native.lua", "--show", "sched", NULL},
     0,
     "   2178    320855    0 00001250     address space: page tables at 0x00009000\n",
     NULL},
    {"show sched: a guest's switch, emulated by the hypervisor",
     {"vlab", "scenarios/guest-os-vm.lua", "--show", "sched", NULL},
     0,
     "   2340    488702   hv 00001250     address space: page tables at 0x00009000\n",
     NULL},
    {"show sched: world switches",
     {"vlab", "slides-examples/05-scheduling-vms.lua", "--show", "sched", NULL},
     0,
     "hv: vm 1 runs on the CPU",
     NULL},
    {"missing scenario",
     {"vlab", "tests/cli/nope.lua", NULL},
     2,
     NULL,
     "cannot read scenario 'tests/cli/nope.lua'"},
    {"cpus out of range", {"vlab", "tests/cli/smp-bad-cpus.lua", NULL}, 1, NULL,
     "smp-bad-cpus.lua:2: hypervisor: cpus must be 1 .. 8"},
    {"hosted takes true or a file", {"vlab", "tests/cli/hosted-bad.lua", NULL}, 1, NULL,
     "hosted-bad.lua:2: hypervisor: hosted must be true, false or a host image file"},
    {"fields of two CPUs and a hosted VMM", {"vlab", "tests/cli/smp-fields.lua", "--quiet", NULL}, 0,
     "cpus\t2\ton\t0\t1\nafter\tnil\tnil\t3000\t3000\nhosted\ttrue\t0\t5000\n", NULL},
    {"isa takes no args", {"vlab", "isa", "x", NULL}, 2, NULL, "isa takes no arguments"},
    {"isa lists both parts", {"vlab", "isa", NULL}, 0, "SYSTEM PART", NULL},
    {"analyze x86", {"vlab", "analyze", NULL}, 0, "Verdict under x86: FAILS", NULL},
    {"analyze strict",
     {"vlab", "analyze", "--policy", "strict", NULL},
     0,
     "Verdict under strict: HOLDS",
     NULL},
    {"analyze bad policy",
     {"vlab", "analyze", "--policy", "arm", NULL},
     2,
     NULL,
     "unknown policy 'arm'"},
    {"asm listing", {"vlab", "asm", "scenarios/guests/tiny/hello-user.s", NULL}, 0, "00010000", NULL},
    {"asm error with caret",
     {"vlab", "asm", "tests/cli/bad.s", NULL},
     1,
     NULL,
     "tests/cli/bad.s:2:8: error: unknown instruction 'bogus'\n       bogus r1\n       ^\n"},
    {"asm second error",
     {"vlab", "asm", "tests/cli/bad.s", NULL},
     1,
     NULL,
     "bad.s:3:12: error: undefined symbol 'nowhere'"},
    {"asm error from a scenario",
     {"vlab", "tests/cli/bad_asm.lua", NULL},
     1,
     NULL,
     "<asm from tests/cli/bad_asm.lua:2>:2:17: error: bad register 'r99'"},
    {"lua error with traceback",
     {"vlab", "tests/cli/bad_lua.lua", NULL},
     1,
     NULL,
     "tests/cli/bad_lua.lua:1: attempt to index a nil value (field 'y')\nstack traceback:"},
    {"lua error names the caller",
     {"vlab", "tests/cli/bad_lua.lua", NULL},
     1,
     NULL,
     "bad_lua.lua:3: in main chunk"},
    {"failed expectation",
     {"vlab", "tests/cli/expect_fail.lua", "--quiet", NULL},
     1,
     NULL,
     "tests/cli/expect_fail.lua:5: expectation failed: r1 after the program (got 41, expected 42)"},
    {"runaway guest",
     {"vlab", "tests/cli/runaway.lua", "--quiet", "--max-steps", "100000", NULL},
     3,
     NULL,
     "step budget of 100000 steps exhausted (raise it with --max-steps)"},
    {"runaway lua",
     {"vlab", "tests/cli/lualoop.lua", "--lua-budget", "1000000", NULL},
     3,
     NULL,
     "Lua instruction budget of 1000000 exhausted"},
    {"pcall cannot swallow a budget",
     {"vlab", "tests/cli/pcallloop.lua", "--lua-budget", "1000000", NULL},
     3,
     NULL,
     "Lua instruction budget"},
    {"memory cap",
     {"vlab", "tests/cli/mem.lua", "--mem-limit", "32", NULL},
     3,
     NULL,
     "memory cap of 32 MiB exhausted"},
    {"sandbox hides os, io.open, package",
     {"vlab", "tests/cli/sandbox.lua", "--quiet", NULL},
     0,
     "nil\tnil\tnil\ttrue",
     NULL},
    {"sandbox reads",
     {"vlab", "tests/cli/sandbox.lua", "--quiet", NULL},
     0,
     "'/etc/passwd' is outside the scenario's folder and the guest library",
     NULL},
    {"sandbox writes",
     {"vlab", "tests/cli/sandbox.lua", "--quiet", NULL},
     0,
     "writing files needs an output folder",
     NULL},
    {"sandbox binary chunks",
     {"vlab", "tests/cli/sandbox.lua", "--quiet", NULL},
     0,
     "attempt to load a binary chunk",
     NULL},
    {"unsafe lifts the sandbox",
     {"vlab", "tests/cli/sandbox.lua", "--quiet", "--unsafe", NULL},
     0,
     "table: ",
     NULL},
    {"seed 1",
     {"vlab", "tests/cli/seeded.lua", "--quiet", NULL},
     0,
     "757150\t83432\n3 a b c\n",
     NULL},
    {"seed 2",
     {"vlab", "tests/cli/seeded.lua", "--quiet", "--seed", "2", NULL},
     0,
     "97198\t258402\n",
     NULL},
    {"triple fault is an outcome",
     {"vlab", "tests/cli/guest_fault.lua", NULL},
     0,
     "shutdown: triple fault",
     NULL},
    {"include relative to the including file",
     {"vlab", "tests/cli/include.lua", "--quiet", NULL},
     0,
     NULL,
     NULL},
    {"lua trap handlers", {"vlab", "tests/cli/handlers.lua", "--quiet", NULL}, 0, "ok\n", NULL},
    {"replay of a missing file",
     {"vlab", "replay", "tests/cli/none.trace", NULL},
     1,
     NULL,
     "cannot open 'tests/cli/none.trace'"},
    {"replay of a non-trace",
     {"vlab", "replay", "tests/cli/bad.s", NULL},
     1,
     NULL,
     "is not a vlab trace file"},
    {"quiz asks", {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--quiz", NULL}, 0,
     "syscall\n                               ?? Q2: what happens next: a trap? which vector and handler, and which ring?\n", NULL},
    {"quiz hides the answers", {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--quiz", NULL}, 0,
     "run again with --answers", NULL},
    {"answers", {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--answers", NULL}, 0,
     "A2: >> trap syscall (vector 0x80) from ring 3 -> handler 0x00001088, ring 0\n", NULL},
    {"quiz asks about VM exits", {"vlab", "slides-examples/04-vt-x.lua", "--quiz", NULL}, 0,
     "out      0x3f8, r4\n                               ?? Q298: the guest runs in VMX non-root mode: does this leave the VM?", NULL},
    {"answers: what the hypervisor did", {"vlab", "slides-examples/04-vt-x.lua", "--answers", NULL}, 0,
     "A298: >> VM exit: I/O instruction (reason 30), port 0x3f8 out\n"
     "                               A298:    hv: virtual out port 0x3f8 (console) <- 0x31 '1'\n", NULL},
    {"answers: an emulation after a trap", {"vlab", "slides-examples/03-trap-and-emulate.lua", "--answers", NULL}, 0,
     "intercepted by the host\n                               A", NULL},
    {"color always", {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--color", "always", "--show", "traps", NULL}, 0,
     "\033[1;33m>> trap syscall", NULL},
    {"color bad", {"vlab", "slides-examples/01-syscall-user-kernel.lua", "--color", "sometimes", NULL}, 2, NULL,
     "--color expects auto, always or never"},
    {"a wrong emulation routine shows", {"vlab", "tests/cli/hv-bad-routine.lua", "--quiet", NULL}, 0,
     "sti  -> IF=0\n", NULL},
    {"hv: unknown technique", {"vlab", "tests/cli/hv-bad-technique.lua", NULL}, 1, NULL,
     "vm: technique 'magic' is not available"},
    {"cow: a clone's name", {"vlab", "tests/cli/cow-bad-clone.lua", NULL}, 1, NULL,
     "cow-bad-clone.lua:4: clone: name must be a string"},
    {"cow: an unknown hash", {"vlab", "tests/cli/cow-bad-hash.lua", NULL}, 1, NULL,
     "share_pages: hash must be 'fnv1a' or 'first-word'"},
    {"cow: no clone inside hv:run", {"vlab", "tests/cli/cow-in-routine.lua", NULL}, 1, NULL,
     "clone: not inside hv:run (an emulation routine); clone between runs"},
    {"args after --",
     {"vlab", "tests/cli/args.lua", "--quiet", "--", "10", "--flat", NULL},
     0,
     "2\t10|--flat\n",
     NULL},
};

/* --quiz never shows an answer line */
START_TEST(test_quiz_has_no_answers) {
    const char *argv[] = {"vlab", "slides-examples/02-sensitive-instructions.lua", "--quiz", NULL};
    run_result r;
    ck_assert(run_vlab(argv, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, "?? Q1:"));
    ck_assert(!strstr(r.out, "A1:"));
    ck_assert(!strstr(r.out, ">> trap")); /* outcomes are hidden */
    run_result_free(&r);
}
END_TEST

START_TEST(test_cli_case) {
    const cli_case *k = &cases[_i];
    run_result r;
    ck_assert_msg(run_vlab(k->argv, NULL, &r) == 0, "cannot run %s", vlab_bin());
    ck_assert_msg(r.status == k->status, "%s: exit %d, expected %d\nstdout: %s\nstderr: %s",
                  k->name, r.status, k->status, r.out, r.err);
    if (k->in_out)
        ck_assert_msg(strstr(r.out, k->in_out), "%s: stdout lacks \"%s\":\n%s", k->name, k->in_out,
                      r.out);
    if (k->in_err)
        ck_assert_msg(strstr(r.err, k->in_err), "%s: stderr lacks \"%s\":\n%s", k->name, k->in_err,
                      r.err);
    ck_assert_msg(!strstr(r.err, "AddressSanitizer") && !strstr(r.err, "runtime error"),
                  "%s: sanitizer report:\n%s", k->name, r.err);
    run_result_free(&r);
}
END_TEST

/* --show picks classes: exits are the hypervisor's, without instructions or guest traps;
 * traps no longer include them */
START_TEST(test_show_classes) {
    const char *ex[] = {"vlab", "slides-examples/03-trap-and-emulate.lua", "--show", "exits", NULL};
    run_result r;
    ck_assert(run_vlab(ex, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, "hv: emulated 'out' on the virtual CPU"));
    ck_assert(strstr(r.out, "-> intercepted by the host"));
    ck_assert(strstr(r.out, "hv: reflected syscall into the guest kernel"));
    ck_assert(!strstr(r.out, "runs on the CPU")); /* sched */
    ck_assert(!strstr(r.out, "\n-- machine")); /* notes */
    int lines = 0;
    for (const char *p = r.out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        unsigned long long step, cycle;
        char ring[8];
        unsigned pc;
        int n = 0;
        if (sscanf(p, "%llu %llu %7s %x%n", &step, &cycle, ring, &pc, &n) != 4) continue;
        lines++;
        const char *text = p + n + 2; /* the disassembly of an instruction starts with a letter */
        ck_assert_msg(!(*text >= 'a' && *text <= 'z'), "an instruction line:\n%.80s", p);
    }
    ck_assert_int_gt(lines, 50);
    run_result_free(&r);

    const char *tr[] = {"vlab", "slides-examples/03-trap-and-emulate.lua", "--show", "traps", NULL};
    ck_assert(run_vlab(tr, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, ">> trap syscall (vector 0x80) from ring 3 -> handler")); /* bare metal */
    ck_assert(!strstr(r.out, "hv: "));
    ck_assert(!strstr(r.out, "intercepted by the host"));
    run_result_free(&r);

    /* a virtual device is I/O too */
    const char *io[] = {"vlab", "slides-examples/03-trap-and-emulate.lua", "--show", "io", NULL};
    ck_assert(run_vlab(io, NULL, &r) == 0);
    ck_assert(strstr(r.out, "hv: virtual out port 0x3f8 (console)"));
    ck_assert(strstr(r.out, "   out port 0x3f8 (console)"));
    ck_assert(!strstr(r.out, "hv: emulated"));
    run_result_free(&r);
}
END_TEST

/* writes land whole inside --out DIR, and nowhere else */
START_TEST(test_write_file_into_out_dir) {
    char dir[] = "/tmp/vlab-out-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    const char *argv[] = {"vlab", "tests/cli/write.lua", "--quiet", "--out", dir, NULL};
    run_result r;
    ck_assert(run_vlab(argv, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, "must be a plain name inside the output folder"));
    char path[128];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    size_t n;
    char *text = slurp_file(path, &n);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "hello\n");
    free(text);
    snprintf(path, sizeof path, "%s/out.txt.tmp", dir);
    ck_assert_int_ne(access(path, F_OK), 0); /* no temporary left behind */
    unlink(path);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    unlink(path);
    rmdir(dir);
    run_result_free(&r);
}
END_TEST

/* the same scenario and seed print the same bytes */
START_TEST(test_same_seed_same_output) {
    const char *argv[] = {"vlab", "slides-examples/02-sensitive-instructions.lua", "--seed", "7",
                          NULL};
    run_result a, b;
    ck_assert(run_vlab(argv, NULL, &a) == 0 && run_vlab(argv, NULL, &b) == 0);
    ck_assert_int_eq(a.status, 0);
    ck_assert_uint_eq(a.out_len, b.out_len);
    ck_assert(memcmp(a.out, b.out, a.out_len) == 0);
    run_result_free(&a);
    run_result_free(&b);
}
END_TEST

/* a trace file is whole or absent: a run stopped by a budget still leaves a
 * complete, replayable file; a file that cannot be created leaves nothing */
START_TEST(test_trace_file_whole) {
    char dir[] = "/tmp/vlab-trace-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char tf[128];
    snprintf(tf, sizeof tf, "%s/run.trace", dir);
    const char *argv[] = {
        "vlab", "tests/cli/runaway.lua", "--quiet", "--max-steps", "1000", "--trace", tf, NULL};
    run_result r;
    ck_assert(run_vlab(argv, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 3);
    run_result_free(&r);
    const char *rp[] = {"vlab", "replay", tf, "--show", "insn", NULL};
    ck_assert(run_vlab(rp, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, "jmp      0x0"));
    run_result_free(&r);
    unlink(tf);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/run.trace", dir);
    const char *bv[] = {"vlab", "tests/cli/seeded.lua", "--trace", bad, NULL};
    ck_assert(run_vlab(bv, NULL, &r) == 0);
    ck_assert_int_eq(r.status, 1);
    ck_assert(strstr(r.err, "cannot write trace file"));
    run_result_free(&r);
    rmdir(dir);
}
END_TEST

Suite *suite_cli(void) {
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("cli");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_cli_case, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(t, test_write_file_into_out_dir);
    tcase_add_test(t, test_quiz_has_no_answers);
    tcase_add_test(t, test_show_classes);
    tcase_add_test(t, test_same_seed_same_output);
    tcase_add_test(t, test_trace_file_whole);
    suite_add_tcase(s, t);
    return s;
}
