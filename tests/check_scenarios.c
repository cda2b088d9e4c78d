/* tests/check_scenarios.c -- every scenario in slides-examples/,
 * scenarios/ and docs/examples/ runs, passes its own expectations, and prints exactly its golden
 * trace (tests/golden/<path>[.<variant>].out).  A scenario lists extra runs
 * in lines like "-- vlab-test: --policy strict"; each is a variant with its
 * own golden file.  The trace file round trip is checked too: --trace, then
 * `vlab replay`, prints the same text.
 *
 * VLAB_UPDATE_GOLDEN=1 rewrites the golden files instead (make golden);
 * a golden file changes only in a commit that says why. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runvlab.h"

Suite *suite_scenarios(void);

#define MAX_CASES 256
#define MAX_ARGS 8

typedef struct scase {
    char path[256];
    char variant[64];
    char args[MAX_ARGS][64];
    int nargs;
} scase;

static scase cases[MAX_CASES];
static int ncases;

static void add_case(const char *path, const char *argline) {
    if (ncases == MAX_CASES) return;
    scase *c = &cases[ncases++];
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    if (!argline) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", argline);
    size_t vl = 0;
    for (char *tok = strtok(buf, " \t\r\n"); tok && c->nargs < MAX_ARGS;
         tok = strtok(NULL, " \t\r\n")) {
        snprintf(c->args[c->nargs++], sizeof c->args[0], "%s", tok);
        for (const char *p = tok; *p && vl + 1 < sizeof c->variant; p++)
            if (*p != '-')
                c->variant[vl++] = *p;
            else if (vl && c->variant[vl - 1] != '-')
                c->variant[vl++] = '-';
        if (vl + 1 < sizeof c->variant) c->variant[vl++] = '-';
    }
    while (vl && c->variant[vl - 1] == '-')
        vl--;
    c->variant[vl] = 0;
}

static int visit(const char *path, const struct stat *sb, int type, struct FTW *f) {
    (void)sb;
    (void)f;
    if (type == FTW_D) return 0;
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".lua") != 0) return 0;
    if (strstr(path, "/guests/") || strstr(path, "/lib/")) return 0;
    char *text = slurp_file(path, NULL);
    int variants = 0;
    for (char *p = text; p && (p = strstr(p, "-- vlab-test:")); p++) {
        char line[256];
        size_t k = strcspn(p + 13, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 255 ? k : 255), p + 13);
        add_case(path, line);
        variants++;
    }
    if (!variants) add_case(path, NULL);
    free(text);
    return 0;
}

static int by_name(const void *a, const void *b) {
    const scase *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : strcmp(x->variant, y->variant);
}

static void discover(void) {
    if (ncases) return;
    nftw("slides-examples", visit, 16, FTW_PHYS);
    nftw("scenarios", visit, 16, FTW_PHYS);
    nftw("docs/examples", visit, 16, FTW_PHYS);
    qsort(cases, (size_t)ncases, sizeof cases[0], by_name);
}

static void golden_path(const scase *c, char *out, size_t len) {
    char base[256];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(c->path) - 4), c->path);
    if (c->variant[0])
        snprintf(out, len, "tests/golden/%s.%s.out", base, c->variant);
    else
        snprintf(out, len, "tests/golden/%s.out", base);
}

static void mkdirs_for(const char *file) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", file);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
}

static void run_case(const scase *c, const char *extra1, const char *extra2, run_result *r) {
    const char *argv[MAX_ARGS + 5] = {"vlab", c->path};
    int n = 2;
    for (int i = 0; i < c->nargs; i++)
        argv[n++] = c->args[i];
    if (extra1) argv[n++] = extra1;
    if (extra2) argv[n++] = extra2;
    argv[n] = NULL;
    ck_assert_msg(run_vlab(argv, NULL, r) == 0, "could not run %s", vlab_bin());
}

START_TEST(test_scenario_golden) {
    discover();
    ck_assert_msg(_i < ncases, "no scenario %d", _i);
    const scase *c = &cases[_i];
    run_result r;
    run_case(c, NULL, NULL, &r);
    ck_assert_msg(r.status == 0, "%s %s exited %d:\n%s", c->path, c->variant, r.status, r.err);
    char gp[512];
    golden_path(c, gp, sizeof gp);
    if (getenv("VLAB_UPDATE_GOLDEN")) {
        mkdirs_for(gp);
        FILE *f = fopen(gp, "wb");
        ck_assert_msg(f != NULL, "cannot write %s", gp);
        fwrite(r.out, 1, r.out_len, f);
        fclose(f);
        run_result_free(&r);
        return;
    }
    size_t glen;
    char *golden = slurp_file(gp, &glen);
    ck_assert_msg(golden != NULL, "missing golden file %s (run make golden and commit it)", gp);
    if (glen != r.out_len || memcmp(golden, r.out, glen) != 0) {
        /* point at the first differing line */
        size_t i = 0, line = 1;
        while (i < glen && i < r.out_len && golden[i] == r.out[i])
            line += golden[i++] == '\n';
        ck_abort_msg("%s: output differs from %s at line %zu", c->path, gp, line);
    }
    free(golden);
    run_result_free(&r);
}
END_TEST

START_TEST(test_scenario_replay) {
    discover();
    const scase *c = &cases[_i];
    char dir[] = "/tmp/vlab-replay-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char tf[64];
    snprintf(tf, sizeof tf, "%s/run.trace", dir);
    run_result a, b;
    run_case(c, "--trace", tf, &a);
    ck_assert_msg(a.status == 0, "%s exited %d: %s", c->path, a.status, a.err);
    const char *argv[6] = {"vlab", "replay", tf, NULL};
    for (int i = 0; i + 1 < c->nargs; i++) /* the same event classes as the run */
        if (strcmp(c->args[i], "--show") == 0) {
            argv[3] = "--show";
            argv[4] = c->args[i + 1];
            argv[5] = NULL;
        }
    ck_assert(run_vlab(argv, NULL, &b) == 0);
    ck_assert_msg(b.status == 0, "replay exited %d: %s", b.status, b.err);
    ck_assert_msg(a.out_len == b.out_len && memcmp(a.out, b.out, a.out_len) == 0,
                  "%s: replay of the trace file differs from the run", c->path);
    unlink(tf);
    rmdir(dir);
    run_result_free(&a);
    run_result_free(&b);
}
END_TEST

Suite *suite_scenarios(void) {
    discover();
    Suite *s = suite_create("scenarios");
    TCase *t = tcase_create("golden");
    tcase_set_timeout(t, 300);
    tcase_add_loop_test(t, test_scenario_golden, 0, ncases);
    tcase_add_loop_test(t, test_scenario_replay, 0, ncases);
    suite_add_tcase(s, t);
    return s;
}
