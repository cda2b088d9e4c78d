/* tests/check_analyze.c -- the Popek & Goldberg analyzer (cpu/analyze.c).
 *
 * The analyzer classifies every instruction by executing it; here its
 * findings are checked against the sens and x86 columns of cpu/isa.def, and
 * its verdicts against the literature: under the x86 preset Theorem 1 fails
 * because of Robin & Irvine's (USENIX Security 2000) register instructions
 * pushf popf sidt smsw plus rdtsc and cpuid; Theorem 3 fails only because of
 * the location-sensitive ones (sidt rdtsc cpuid), popf and pushf not being
 * user-sensitive (Popek & Goldberg, CACM 1974: user-sensitive = control- or
 * location-sensitive in user mode).  Under the strict preset both hold.
 *
 * A row that disagrees with isa.def means the table or the probe is wrong:
 * find out which, don't just edit the expectation.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/analyze.h"

Suite *suite_analyze(void);

static cpu_pg_report rep_x86, rep_strict;

/* Unchecked fixture: runs in the parent before Check forks the tests; computed once. */
static void compute_reports(void) {
    static int done;
    if (done) return;
    if (cpu_analyze("x86", &rep_x86) != 0 || cpu_analyze("strict", &rep_strict) != 0) abort();
    done = 1;
}

/* Sets of ops as membership arrays (OP_COUNT may exceed 64). */
typedef struct op_set {
    unsigned char in[OP_COUNT];
} op_set;

static op_set set_from_list(const int *ops, int n) {
    op_set s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < n; i++)
        s.in[ops[i]] = 1;
    return s;
}

static op_set set_from_terminated(const int *ops) {
    int n = 0;
    while (ops[n] >= 0)
        n++;
    return set_from_list(ops, n);
}

static void set_names(const op_set *s, char *buf, size_t len) {
    buf[0] = 0;
    for (int op = 0; op < OP_COUNT; op++)
        if (s->in[op]) {
            size_t k = strlen(buf);
            snprintf(buf + k, len - k, " %s", cpu_isa[op].mnem);
        }
}

#define ck_assert_op_set(ops, n, ...)                                                              \
    do {                                                                                           \
        static const int want_[] = {__VA_ARGS__, -1};                                              \
        op_set got_ = set_from_list((ops), (n)), exp_ = set_from_terminated(want_);                \
        char g_[512], e_[512];                                                                     \
        set_names(&got_, g_, sizeof g_);                                                           \
        set_names(&exp_, e_, sizeof e_);                                                           \
        ck_assert_msg(memcmp(&got_, &exp_, sizeof got_) == 0, "got {%s }, expected {%s }", g_,     \
                      e_);                                                                         \
    } while (0)

/* ---- every row against isa.def ----------------------------------------------------------- */

static void check_row(const cpu_pg_report *r, int op, int (*trap_under)(int op)) {
    const cpu_pg_row *w = &r->rows[op];
    const char *m = cpu_isa[op].mnem;
    ck_assert_int_eq(w->op, op);
    ck_assert_msg(w->states > 0, "%s: no probe state was executed", m);
    ck_assert_msg(w->cls == cpu_isa[op].sens, "%s under %s: executing it says %s, isa.def says %s",
                  m, r->policy, cpu_sens_name(w->cls), cpu_sens_name(cpu_isa[op].sens));
    if (cpu_op_configurable(op))
        ck_assert_msg(w->privileged == trap_under(op), "%s under %s: privileged %d, policy %s", m,
                      r->policy, w->privileged, cpu_behaviour_name(cpu_isa[op].x86));
    else
        ck_assert_msg(!w->privileged, "%s: not configurable, yet found privileged", m);
}

static int x86_traps(int op) {
    return cpu_isa[op].x86 == TRAP;
}
static int strict_traps(int op) {
    (void)op;
    return 1;
}

START_TEST(test_x86_row) {
    check_row(&rep_x86, _i, x86_traps);
}
END_TEST

START_TEST(test_strict_row) {
    check_row(&rep_strict, _i, strict_traps);
}
END_TEST

/* What each instruction does at CPL 3, found by running it, is the x86 column. */
START_TEST(test_x86_at_user_row) {
    int op = _i;
    const cpu_pg_row *w = &rep_x86.rows[op];
    int want = cpu_op_configurable(op) ? cpu_isa[op].x86 : cpu_isa[op].sens == TRAPS ? TRAP : NA;
    ck_assert_msg(w->at_user == want, "%s: at CPL 3 it does '%s', isa.def says '%s'",
                  cpu_isa[op].mnem, cpu_behaviour_name(w->at_user), cpu_behaviour_name(want));
}
END_TEST

/* ---- the verdicts ---------------------------------------------------------------------------- */

START_TEST(test_strict_both_hold) {
    ck_assert_str_eq(rep_strict.policy, "strict");
    ck_assert(rep_strict.thm1_holds);
    ck_assert(rep_strict.thm3_holds);
    ck_assert_int_eq(rep_strict.n_thm1, 0);
    ck_assert_int_eq(rep_strict.n_thm3, 0);
}
END_TEST

START_TEST(test_x86_theorem1_fails) {
    ck_assert_str_eq(rep_x86.policy, "x86");
    ck_assert(!rep_x86.thm1_holds);
    ck_assert_op_set(rep_x86.thm1_breakers, rep_x86.n_thm1, OP_PUSHF, OP_POPF, OP_SIDT, OP_SMSW,
                     OP_RDTSC, OP_CPUID);
}
END_TEST

START_TEST(test_x86_theorem3_fails) {
    ck_assert(!rep_x86.thm3_holds);
    ck_assert_op_set(rep_x86.thm3_breakers, rep_x86.n_thm3, OP_SIDT, OP_RDTSC, OP_CPUID);
    /* popf runs silently and pushf only reveals the mode: not user-sensitive */
    ck_assert(!rep_x86.rows[OP_POPF].user_sensitive);
    ck_assert(!rep_x86.rows[OP_PUSHF].user_sensitive);
    ck_assert(!rep_x86.rows[OP_SMSW].user_sensitive);
}
END_TEST

START_TEST(test_breakers_in_op_order) {
    for (int i = 1; i < rep_x86.n_thm1; i++)
        ck_assert_int_lt(rep_x86.thm1_breakers[i - 1], rep_x86.thm1_breakers[i]);
    for (int i = 1; i < rep_x86.n_thm3; i++)
        ck_assert_int_lt(rep_x86.thm3_breakers[i - 1], rep_x86.thm3_breakers[i]);
}
END_TEST

/* The sensitivity columns do not depend on the policy analysed. */
START_TEST(test_sensitivity_independent_of_policy) {
    for (int op = 0; op < OP_COUNT; op++) {
        const cpu_pg_row *a = &rep_x86.rows[op], *b = &rep_strict.rows[op];
        ck_assert_msg(a->control == b->control && a->mode == b->mode &&
                          a->location == b->location && a->always_traps == b->always_traps,
                      "%s", cpu_isa[op].mnem);
    }
}
END_TEST

/* ---- custom policies ------------------------------------------------------------------------- */

static void analyze_custom(cpu_pg_report *r, int op, int behaviour) {
    cpu_t *c = cpu_new(CPU_PAGE);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cpu_policy_preset(c, "x86"), 0);
    cpu_set_behaviour(c, op, behaviour);
    uint8_t before[OP_COUNT];
    memcpy(before, c->behaviour, sizeof before);
    cpu_analyze_machine(c, r);
    ck_assert_mem_eq(before, c->behaviour, sizeof before); /* the machine is left alone */
    cpu_free(c);
}

START_TEST(test_custom_popf_trap) {
    cpu_pg_report r;
    analyze_custom(&r, OP_POPF, TRAP);
    ck_assert_str_eq(r.policy, "custom");
    ck_assert(r.rows[OP_POPF].privileged);
    ck_assert_int_eq(r.rows[OP_POPF].at_user, TRAP);
    ck_assert(!r.thm1_holds);
    ck_assert_op_set(r.thm1_breakers, r.n_thm1, OP_PUSHF, OP_SIDT, OP_SMSW, OP_RDTSC, OP_CPUID);
    ck_assert_op_set(r.thm3_breakers, r.n_thm3, OP_SIDT, OP_RDTSC, OP_CPUID);
}
END_TEST

/* cli that silently does nothing at CPL 3 is not privileged (P&G), so it
 * breaks Theorem 1; it changes nothing there, so it is not user-sensitive. */
START_TEST(test_custom_cli_silent) {
    cpu_pg_report r;
    analyze_custom(&r, OP_CLI, SILENT);
    ck_assert(!r.rows[OP_CLI].privileged);
    ck_assert(!r.rows[OP_CLI].user_sensitive);
    ck_assert_int_eq(r.rows[OP_CLI].at_user, SILENT);
    ck_assert_op_set(r.thm1_breakers, r.n_thm1, OP_CLI, OP_PUSHF, OP_POPF, OP_SIDT, OP_SMSW,
                     OP_RDTSC, OP_CPUID);
    ck_assert_op_set(r.thm3_breakers, r.n_thm3, OP_SIDT, OP_RDTSC, OP_CPUID);
}
END_TEST

/* cli that really disables interrupts at CPL 3 is user-sensitive (control). */
START_TEST(test_custom_cli_leak) {
    cpu_pg_report r;
    analyze_custom(&r, OP_CLI, LEAK);
    ck_assert(r.rows[OP_CLI].user_sensitive);
    ck_assert_int_eq(r.rows[OP_CLI].at_user, LEAK);
    ck_assert_op_set(r.thm3_breakers, r.n_thm3, OP_CLI, OP_SIDT, OP_RDTSC, OP_CPUID);
}
END_TEST

/* Robin & Irvine: RDTSC faults at CPL>0 only with CR4.TSD set. */
START_TEST(test_tsd_makes_rdtsc_privileged) {
    cpu_t *c = cpu_new(CPU_PAGE);
    ck_assert_ptr_nonnull(c);
    cpu_set_cr(c, CR_STATUS, CPU_ST_TSD);
    cpu_pg_report r;
    cpu_analyze_machine(c, &r);
    cpu_free(c);
    ck_assert_str_eq(r.policy, "x86");
    ck_assert(r.tsd);
    ck_assert(r.rows[OP_RDTSC].privileged);
    ck_assert_int_eq(r.rows[OP_RDTSC].cls, LOCATION);
    ck_assert_op_set(r.thm1_breakers, r.n_thm1, OP_PUSHF, OP_POPF, OP_SIDT, OP_SMSW, OP_CPUID);
    ck_assert_op_set(r.thm3_breakers, r.n_thm3, OP_SIDT, OP_CPUID);
}
END_TEST

/* Strict but for the mode-sensitive ones: Theorem 1 fails, Theorem 3 holds (a
 * hybrid VMM runs virtual user mode in real user mode, where the mode seen is
 * the right one). */
START_TEST(test_hybrid_only) {
    cpu_t *c = cpu_new(CPU_PAGE);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cpu_policy_preset(c, "strict"), 0);
    cpu_set_behaviour(c, OP_PUSHF, LEAK);
    cpu_set_behaviour(c, OP_SMSW, LEAK);
    cpu_pg_report r;
    cpu_analyze_machine(c, &r);
    cpu_free(c);
    ck_assert(!r.thm1_holds);
    ck_assert(r.thm3_holds);
    ck_assert_op_set(r.thm1_breakers, r.n_thm1, OP_PUSHF, OP_SMSW);
}
END_TEST

START_TEST(test_unknown_policy) {
    cpu_pg_report r;
    memset(&r, 0x5a, sizeof r);
    ck_assert_int_eq(cpu_analyze("bogus", &r), -1);
    unsigned char *p = (unsigned char *)&r;
    for (size_t i = 0; i < sizeof r; i++)
        ck_assert_uint_eq(p[i], 0x5a);
}
END_TEST

START_TEST(test_deterministic_and_fast) {
    struct timespec t0, t1;
    cpu_pg_report r;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(cpu_analyze("x86", &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_mem_eq(&r, &rep_x86, sizeof r);
    ck_assert_msg(s < 1.0, "one analysis took %.3f s", s);
}
END_TEST

/* ---- the printed report ---------------------------------------------------------------------- */

static char *print_report(const cpu_pg_report *r, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ck_assert_ptr_nonnull(f);
    cpu_analyze_print(r, f);
    fclose(f);
    return buf;
}

/* Columns, counting a UTF-8 sequence as one. */
static void check_width(const char *text) {
    int line = 1, col = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n') {
            line++;
            col = 0;
            continue;
        }
        if ((*p & 0xc0) != 0x80) col++;
        ck_assert_msg(col <= 100, "line %d is wider than 100 columns", line);
        ck_assert_msg(!(p[1] == '\n' && *p == ' '), "line %d ends in a space", line);
    }
}

START_TEST(test_print_x86) {
    size_t len;
    char *out = print_report(&rep_x86, &len);
    ck_assert_uint_eq(strlen(out), len);
    ck_assert_ptr_nonnull(strstr(out,
                                 "Theorem 1 (Popek & Goldberg 1974): a VMM can be built if every "
                                 "sensitive instruction is privileged.\n"));
    ck_assert_ptr_nonnull(strstr(out, "  Verdict under x86: FAILS \xe2\x80\x94 sensitive but not "
                                      "privileged: pushf popf sidt smsw rdtsc cpuid\n"));
    ck_assert_ptr_nonnull(strstr(out, "Theorem 3 (Popek & Goldberg 1974): a hybrid VMM"));
    ck_assert_ptr_nonnull(strstr(out, "  Verdict under x86: FAILS \xe2\x80\x94 user-sensitive but "
                                      "not privileged: sidt rdtsc cpuid\n"));
    const char *user = strstr(out, "User part of the ISA");
    const char *sys = strstr(out, "System part of the ISA");
    ck_assert_ptr_nonnull(user);
    ck_assert_ptr_nonnull(sys);
    ck_assert(user < sys);
    /* every instruction has its row, in its part */
    for (int op = 0; op < OP_COUNT; op++) {
        char row[32];
        snprintf(row, sizeof row, "\n  %-8s  ", cpu_isa[op].mnem);
        const char *at = strstr(out, row);
        ck_assert_msg(at != NULL, "no row for %s", cpu_isa[op].mnem);
        ck_assert_msg(cpu_isa[op].part == SYSTEM ? at > sys : (at > user && at < sys), "%s",
                      cpu_isa[op].mnem);
    }
    ck_assert_ptr_nonnull(strstr(out, "runs silently  <- breaks Thm 1\n"));
    check_width(out);
    free(out);
}
END_TEST

START_TEST(test_print_strict) {
    size_t len;
    char *out = print_report(&rep_strict, &len);
    ck_assert_ptr_nonnull(strstr(out, "  Verdict under strict: HOLDS"));
    ck_assert_ptr_nonnull(strstr(out, "every sensitive instruction is privileged.\n"));
    ck_assert_ptr_nonnull(strstr(out, "every user-sensitive instruction is privileged.\n"));
    ck_assert_ptr_null(strstr(out, "FAILS"));
    ck_assert_ptr_null(strstr(out, "<- breaks"));
    check_width(out);
    free(out);
}
END_TEST

/* A policy that leaks everything: long breaker lists wrap within 100 columns. */
START_TEST(test_print_wraps) {
    cpu_t *c = cpu_new(CPU_PAGE);
    ck_assert_ptr_nonnull(c);
    for (int op = 0; op < OP_COUNT; op++)
        cpu_set_behaviour(c, op, LEAK);
    cpu_pg_report r;
    cpu_analyze_machine(c, &r);
    cpu_free(c);
    ck_assert_int_eq(r.n_thm1, 21); /* every sensitive instruction */
    size_t len;
    char *out = print_report(&r, &len);
    ck_assert_ptr_nonnull(strstr(out, "Verdict under custom: FAILS"));
    ck_assert_ptr_nonnull(strstr(out, "vmwrite\n"));
    check_width(out);
    free(out);
}
END_TEST

Suite *suite_analyze(void) {
    Suite *s = suite_create("analyze");
    TCase *t = tcase_create("rows");
    tcase_add_unchecked_fixture(t, compute_reports, NULL);
    tcase_add_loop_test(t, test_x86_row, 0, OP_COUNT);
    tcase_add_loop_test(t, test_strict_row, 0, OP_COUNT);
    tcase_add_loop_test(t, test_x86_at_user_row, 0, OP_COUNT);
    suite_add_tcase(s, t);

    t = tcase_create("verdicts");
    tcase_add_unchecked_fixture(t, compute_reports, NULL);
    tcase_add_test(t, test_strict_both_hold);
    tcase_add_test(t, test_x86_theorem1_fails);
    tcase_add_test(t, test_x86_theorem3_fails);
    tcase_add_test(t, test_breakers_in_op_order);
    tcase_add_test(t, test_sensitivity_independent_of_policy);
    tcase_add_test(t, test_custom_popf_trap);
    tcase_add_test(t, test_custom_cli_silent);
    tcase_add_test(t, test_custom_cli_leak);
    tcase_add_test(t, test_tsd_makes_rdtsc_privileged);
    tcase_add_test(t, test_hybrid_only);
    tcase_add_test(t, test_unknown_policy);
    tcase_add_test(t, test_deterministic_and_fast);
    suite_add_tcase(s, t);

    t = tcase_create("print");
    tcase_add_unchecked_fixture(t, compute_reports, NULL);
    tcase_add_test(t, test_print_x86);
    tcase_add_test(t, test_print_strict);
    tcase_add_test(t, test_print_wraps);
    suite_add_tcase(s, t);
    return s;
}
