/* sim/main.c -- the `vlab` command line: run a scenario, assemble, list the
 * ISA, analyze it, replay a trace.  `vlab --help` documents every flag;
 * usage errors exit 2. */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/analyze.h"
#include "cpu/asm.h"
#include "cpu/isa.h"
#include "sim/lua_host.h"
#include "sim/session.h"
#include "sim/tracefile.h"
#include "viz/dot.h"
#include "viz/text.h"
#include "viz/tui.h"

#define VLAB_VERSION "0.1"

static const char USAGE[] =
    "vlab " VLAB_VERSION " -- a virtualization lab: a simulated CPU with rings, traps and a\n"
    "configurable privileged-instruction set, driven by Lua scenarios.\n"
    "\n"
    "usage:\n"
    "  vlab SCENARIO.lua [options] [-- ARGS]\n"
    "                                run a scenario and print its trace; ARGS are\n"
    "                                handed to it as vlab.args\n"
    "  vlab asm FILE.s               assemble FILE.s and print a listing\n"
    "  vlab isa                      the instruction set: user part and system part\n"
    "  vlab analyze [--policy P]     classify every instruction by running it\n"
    "                                (Popek & Goldberg) and give the theorems' verdicts\n"
    "  vlab replay FILE [--show L]   print a trace file written with --trace\n"
    "  vlab export SCENARIO.lua -o FILE [--view traps|schedule] [--format F]\n"
    "              [--from STEP] [--to STEP] [--machine N] [run options] [-- ARGS]\n"
    "                                run a scenario and draw it with Graphviz: the\n"
    "                                traps between application, kernel, hypervisor\n"
    "                                and hardware, or a timeline per CPU; F is dot,\n"
    "                                svg, png or pdf (default: FILE's extension);\n"
    "                                at most 60 transitions (docs/diagrams.md)\n"
    "  vlab --help                   this text\n"
    "  vlab --version\n"
    "\n"
    "options for running a scenario:\n"
    "  --seed N         seed of math.random, the only random source (default 1)\n"
    "  --max-steps N    simulated instructions for the whole run, all machines\n"
    "                   together (default 100000000)\n"
    "  --policy P       policy of machines that do not name one: x86 or strict\n"
    "                   (default x86)\n"
    "  --quiet          print only the scenario's own output: no trace, no summary\n"
    "  --show LIST      event classes to print, comma-separated (default all), as\n"
    "                   sys161's trace flags: insn (every instruction), traps\n"
    "                   (traps, interrupts, iret, hlt), exits (VM exits and entries,\n"
    "                   traps handed to the host, the hypervisor's emulations,\n"
    "                   reflections, injections, shadow pages, the disk's device\n"
    "                   model), io (port I/O, the disk's requests and DMA),\n"
    "                   sched (world switches, VMs idling, address-space switches),\n"
    "                   cow (copy-on-write memory: copies, clones, merges,\n"
    "                   freed frames, sharing scans), sens (sensitive\n"
    "                   instructions that did not trap), notes, or all\n"
    "  --color WHEN     colour the trace: auto (on a terminal, unless NO_COLOR is\n"
    "                   set), always, never (default auto)\n"
    "  --quiz           print the run as questions: every trap, interrupt, return,\n"
    "                   VM exit and sensitive instruction that did not trap, with\n"
    "                   its outcome hidden\n"
    "  --answers        the same questions, each followed by its answer (and what\n"
    "                   the hypervisor did about it)\n"
    "  --trace FILE     also write every event to FILE (read it with vlab replay)\n"
    "  --out DIR        folder where the scenario may write files (vlab.write_file,\n"
    "                   disk images: vlab.disk{file=...})\n"
    "  --unsafe         no sandbox: the full Lua library and any file\n"
    "  --lua-budget N   Lua instructions the scenario may run (default 2000000000)\n"
    "  --time-limit S   host seconds before the run is stopped (default 60)\n"
    "  --mem-limit MB   memory for Lua and the simulated machines (default 1024)\n"
    "  --tui            run the scenario, then step through its run in a full-screen\n"
    "                   viewer: s/b step and step back, S step over, t y i o e run\n"
    "                   to the next trap/syscall/interrupt/I/O/exit, c to a\n"
    "                   breakpoint (:b), B run back, g go to a step, ? help, q quit\n"
    "                   (docs/tui.md)\n"
    "  --tui-script K   the viewer without a terminal: replay keys K, print the screen\n"
    "\n"
    "Scenarios run in a sandbox: no os.execute, io.popen or C modules; files are\n"
    "read only from the scenario's folder and the guest library (scenarios/guests\n"
    "next to vlab, or $VLAB_GUESTS), and written only into --out DIR.  The same\n"
    "scenario with the same --seed prints the same trace.\n"
    "\n"
    "exit status: 0 ok; 1 scenario error, failed expectation or bad assembly;\n"
    "2 usage error; 3 a budget ran out (steps, Lua instructions, time, memory)\n"
    "\n"
    "docs: README.md, docs/lua-api.md (scenarios), docs/isa.md (the machine)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vlab: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run 'vlab --help' for usage)\n");
    return SIM_EXIT_USAGE;
}

static int parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return -1;
    (void)flag;
    *out = v;
    return 0;
}

/* The project's guest library: $VLAB_GUESTS, or scenarios/guests found
 * next to the executable (./vlab at the root, build/vlab-asan one down). */
static char *guest_dir(void) {
    const char *env = getenv("VLAB_GUESTS");
    if (env && *env) return realpath(env, NULL);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    /* ./vlab at the root, or build/vlab-asan one level down */
    for (int up = 0; up < 2; up++) {
        char cand[PATH_MAX + 32];
        snprintf(cand, sizeof cand, "%s/scenarios/guests", exe);
        if (access(cand, R_OK) == 0) return realpath(cand, NULL);
        slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = 0;
    }
    return NULL;
}

/* ---- vlab isa ---------------------------------------------------------------------------- */

static int cmd_isa(void) {
    printf("vlab's instruction set (declared once, in cpu/isa.def): %d instructions\n", OP_COUNT);
    printf("Encoding: 32-bit words, opcode in bits 0-7; opcodes 0x00-0x7f are the user part,\n"
           "0x80-0xff the system part.  At ring > 0 the policy decides what a sensitive\n"
           "instruction does: trap (#GP), silent (runs, privileged effect dropped) or leak\n"
           "(runs and shows the real state).\n");
    for (int part = USER; part <= SYSTEM; part++) {
        if (part == USER)
            printf("\nUSER PART -- the instructions applications use; they behave the same in "
                   "every ring\n");
        else
            printf("\nSYSTEM PART -- the instructions that manage the machine: interrupts, "
                   "privilege,\n"
                   "memory management, devices, virtualization\n");
        printf("  %-4s %-9s %-17s %-9s %-7s %-7s %6s  %s\n", "op", "mnemonic", "operands", "class",
               "x86", "strict", "cycles", "semantics");
        for (int op = 0; op < OP_COUNT; op++) {
            const cpu_isa_info *d = &cpu_isa[op];
            if (d->part != part) continue;
            int conf = cpu_op_configurable(op);
            printf("  %02x   %-9s %-17s %-9s %-7s %-7s %6u  %s\n", d->code, d->mnem,
                   cpu_fmt_operands(d->fmt), cpu_sens_name(d->sens),
                   conf ? cpu_behaviour_name(d->x86) : "-", conf ? "trap" : "-", d->cycles, d->doc);
        }
    }
    printf("\nclass: Popek & Goldberg's terms -- control (changes mode or resources), mode or\n"
           "location (behaviour-sensitive), traps (always traps by design), innocuous.\n"
           "Run 'vlab analyze' to see these classes computed by executing each instruction.\n");
    return 0;
}

/* ---- vlab asm ---------------------------------------------------------------------------- */

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, cap * 2 + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static int cmd_asm(int argc, char **argv) {
    if (argc != 1) return usage_error("asm expects one file: vlab asm FILE.s%s", "");
    size_t len;
    char *src = read_all(argv[0], &len);
    if (!src) {
        fprintf(stderr, "vlab: cannot read '%s': %s\n", argv[0], strerror(errno));
        return SIM_EXIT_FAIL;
    }
    asm_image img;
    char *errors = NULL;
    int n = asm_assemble(src, len, argv[0], NULL, &img, &errors);
    free(src);
    if (n) {
        fputs(errors ? errors : "assembly failed\n", stderr);
        free(errors);
        return SIM_EXIT_FAIL;
    }
    asm_listing(&img, stdout);
    asm_image_free(&img);
    return 0;
}

/* ---- vlab analyze ------------------------------------------------------------------------ */

static int cmd_analyze(int argc, char **argv) {
    const char *policy = "x86";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
            policy = argv[++i];
        else if (strncmp(argv[i], "--policy=", 9) == 0)
            policy = argv[i] + 9;
        else
            return usage_error("analyze: unknown argument '%s'", argv[i]);
    }
    cpu_pg_report *r = malloc(sizeof *r);
    if (!r) return SIM_EXIT_FAIL;
    if (cpu_analyze(policy, r) != 0) {
        free(r);
        return usage_error("unknown policy '%s' (expected x86 or strict)", policy);
    }
    cpu_analyze_print(r, stdout);
    free(r);
    return 0;
}

/* ---- vlab replay ------------------------------------------------------------------------- */

static int cmd_replay(int argc, char **argv) {
    const char *file = NULL;
    unsigned show = VIZ_SHOW_ALL;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--show") == 0 && i + 1 < argc) {
            char bad[32];
            if (viz_show_parse(argv[++i], &show, bad, sizeof bad))
                return usage_error(
                    "--show: unknown event class '%s' (" VIZ_SHOW_WORDS ")", bad);
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (argv[i][0] == '-') {
            return usage_error("replay: unknown option '%s'", argv[i]);
        } else if (!file) {
            file = argv[i];
        } else {
            return usage_error("replay expects one trace file, got another: '%s'", argv[i]);
        }
    }
    if (!file) return usage_error("replay expects a trace file: vlab replay FILE%s", "");
    viz_text t;
    viz_text_init(&t, stdout, show, quiet);
    char err[512];
    int rc = sim_tracefile_replay(file, viz_text_sink, &t, err, sizeof err);
    viz_text_free(&t);
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "vlab: %s\n", err);
        return SIM_EXIT_FAIL;
    }
    return 0;
}

/* ---- vlab SCENARIO.lua ------------------------------------------------------------------- */

/* hist: keep the run's history for the caller; events_only: its events
 * without machine snapshots (a reader that never rebuilds a machine). */
static int cmd_run(int argc, char **argv, sim_history **hist, int events_only) {
    sim_options o;
    sim_options_default(&o);
    o.history_events_only = events_only;
    int tui = 0;
    const char *tui_script = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
#define NEEDS_VALUE                                                                                \
    do {                                                                                           \
        if (!v) return usage_error("%s needs a value", a);                                         \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--") == 0) {
            o.args = argv + i + 1;
            o.nargs = argc - i - 1;
            break;
        } else if (strcmp(a, "--seed") == 0) {
            NEEDS_VALUE;
            if (parse_u64(a, v, &o.seed))
                return usage_error("--seed expects a number, got '%s'", v);
        } else if (strcmp(a, "--max-steps") == 0) {
            NEEDS_VALUE;
            if (parse_u64(a, v, &o.max_steps) || o.max_steps == 0)
                return usage_error("--max-steps expects a positive number, got '%s'", v);
        } else if (strcmp(a, "--policy") == 0) {
            NEEDS_VALUE;
            if (strcmp(v, "x86") && strcmp(v, "strict"))
                return usage_error("unknown policy '%s' (expected x86 or strict)", v);
            o.policy = v;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1;
        } else if (strcmp(a, "--quiz") == 0) {
            if (!o.quiz) o.quiz = VIZ_QUIZ_ASK;
        } else if (strcmp(a, "--answers") == 0) {
            o.quiz = VIZ_QUIZ_ANSWER;
        } else if (strcmp(a, "--color") == 0) {
            NEEDS_VALUE;
            if (strcmp(v, "auto") == 0) o.color = -1;
            else if (strcmp(v, "always") == 0) o.color = 1;
            else if (strcmp(v, "never") == 0) o.color = 0;
            else return usage_error("--color expects auto, always or never, got '%s'", v);
        } else if (strcmp(a, "--show") == 0) {
            NEEDS_VALUE;
            char bad[32];
            if (viz_show_parse(v, &o.show, bad, sizeof bad))
                return usage_error(
                    "--show: unknown event class '%s' (" VIZ_SHOW_WORDS ")", bad);
        } else if (strcmp(a, "--trace") == 0) {
            NEEDS_VALUE;
            o.trace_file = v;
        } else if (strcmp(a, "--out") == 0) {
            NEEDS_VALUE;
            o.out_dir = v;
        } else if (strcmp(a, "--unsafe") == 0) {
            o.unsafe = 1;
        } else if (strcmp(a, "--tui") == 0) {
            tui = 1;
        } else if (strcmp(a, "--tui-script") == 0) {
            NEEDS_VALUE;
            tui_script = v;
        } else if (strcmp(a, "--lua-budget") == 0) {
            NEEDS_VALUE;
            if (parse_u64(a, v, &o.lua_budget) || o.lua_budget == 0)
                return usage_error("--lua-budget expects a positive number, got '%s'", v);
        } else if (strcmp(a, "--time-limit") == 0) {
            NEEDS_VALUE;
            char *end;
            o.time_limit = strtod(v, &end);
            if (*end || o.time_limit <= 0)
                return usage_error("--time-limit expects seconds, got '%s'", v);
        } else if (strcmp(a, "--mem-limit") == 0) {
            NEEDS_VALUE;
            if (parse_u64(a, v, &n) || n == 0 || n > (1u << 20))
                return usage_error("--mem-limit expects megabytes, got '%s'", v);
            o.mem_limit = (size_t)n << 20;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else if (!o.scenario) {
            o.scenario = a;
        } else {
            return usage_error("one scenario at a time; also got '%s'", a);
        }
#undef NEEDS_VALUE
    }
    if (!o.scenario) return usage_error("no scenario given%s", "");
    if (access(o.scenario, R_OK) != 0) {
        fprintf(stderr, "vlab: cannot read scenario '%s': %s\n", o.scenario, strerror(errno));
        return SIM_EXIT_USAGE;
    }
    char *g = guest_dir();
    o.guest_dir = g;
    int rc = tui || tui_script ? viz_tui_main(&o, tui_script) : sim_run_scenario(&o, hist);
    free(g);
    return rc;
}

/* ---- vlab export SCENARIO.lua ----------------------------------------------------------- */

/* Runs the scenario quietly with its history kept (the run options are
 * cmd_run's), then draws it (viz/dot.c). */
static int cmd_export(int argc, char **argv) {
    viz_export_opts x;
    viz_export_opts_default(&x);
    const char *out = NULL;
    int have_format = 0;
    char **rest = calloc((size_t)argc + 2, sizeof *rest);
    if (!rest) return SIM_EXIT_FAIL;
    int nrest = 0, rc = 0;
    rest[nrest++] = "--quiet";
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--") == 0) {
            while (i < argc)
                rest[nrest++] = argv[i++];
        } else if (strcmp(a, "--view") == 0 || strcmp(a, "--format") == 0 || strcmp(a, "-o") == 0 ||
                   strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0 ||
                   strcmp(a, "--machine") == 0) {
            if (!v) {
                rc = usage_error("%s needs a value", a);
                break;
            }
            i++;
            if (strcmp(a, "--view") == 0 && viz_export_view_parse(v, &x.view))
                rc = usage_error("unknown view '%s' (expected " VIZ_EXPORT_VIEWS ")", v);
            else if (strcmp(a, "--format") == 0 && (have_format = 1) &&
                     viz_export_format_parse(v, &x.format))
                rc = usage_error("unknown format '%s' (expected " VIZ_EXPORT_FORMATS ")", v);
            else if (strcmp(a, "-o") == 0)
                out = v;
            else if (strcmp(a, "--from") == 0 && parse_u64(a, v, &x.from))
                rc = usage_error("--from expects a step number, got '%s'", v);
            else if (strcmp(a, "--to") == 0 && parse_u64(a, v, &x.to))
                rc = usage_error("--to expects a step number, got '%s'", v);
            else if (strcmp(a, "--machine") == 0) {
                if (parse_u64(a, v, &n) || n > 255)
                    rc = usage_error("--machine expects a machine number, got '%s'", v);
                else
                    x.machine = (int)n;
            }
        } else if (strcmp(a, "--tui") == 0 || strcmp(a, "--tui-script") == 0) {
            rc = usage_error("export draws a run; %s is for running one", a);
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (!rc && !out) rc = usage_error("export needs an output file: -o FILE%s", "");
    if (!rc && !have_format && viz_export_format_of_path(out, &x.format))
        rc = usage_error(
            "cannot tell the format of '%s' from its name: give --format " VIZ_EXPORT_FORMATS, out);
    if (!rc && x.from > x.to)
        rc = usage_error("--from %llu is after --to %llu", (unsigned long long)x.from,
                         (unsigned long long)x.to);
    sim_history *h = NULL;
    if (!rc) rc = cmd_run(nrest, rest, &h, 1); /* diagrams read events only */
    free(rest);
    if (!rc && h && x.machine >= h->nm)
        rc = usage_error("--machine %d: the run made %d machine%s (0-%d)", x.machine, h->nm,
                         h->nm == 1 ? "" : "s", h->nm - 1);
    if (!rc && h) {
        const char **names = calloc((size_t)h->nm + 1, sizeof *names);
        for (int i = 0; names && i < h->nm; i++)
            names[i] = h->m[i].name;
        x.machine_names = names;
        x.nmachines = names ? h->nm : 0;
        viz_export_info info;
        char err[600];
        if (viz_export(h->ev, h->n, &x, out, &info, err, sizeof err)) {
            fprintf(stderr, "vlab: %s\n", err);
            rc = SIM_EXIT_FAIL;
        } else {
            printf("vlab: wrote %s: %s, %d %s, steps %llu-%llu of %llu%s\n", out,
                   x.view == VIZ_VIEW_TRAPS ? "trap diagram" : "schedule", info.items,
                   x.view == VIZ_VIEW_TRAPS ? "transitions" : "spans", (unsigned long long)info.lo,
                   (unsigned long long)info.hi, (unsigned long long)info.total,
                   info.cut ? " (cut: use --from/--to)" : "");
        }
        free(names);
    }
    if (h) {
        sim_history_free(h);
        free(h);
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return SIM_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("vlab %s\n", VLAB_VERSION);
        return 0;
    }
    if (strcmp(cmd, "isa") == 0) {
        if (argc != 2) return usage_error("isa takes no arguments%s", "");
        return cmd_isa();
    }
    if (strcmp(cmd, "asm") == 0) return cmd_asm(argc - 2, argv + 2);
    if (strcmp(cmd, "analyze") == 0) return cmd_analyze(argc - 2, argv + 2);
    if (strcmp(cmd, "replay") == 0) return cmd_replay(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    return cmd_run(argc - 1, argv + 1, NULL, 0);
}
