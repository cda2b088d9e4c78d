/* tests/check_event.c -- the event recorder and reader (cpu/event.c).
 *
 * Covers: records of 16 bytes without a clock; the reader's reconstruction
 * of step and cycle from EV_INSN deltas; the EV_SYNC the recorder inserts when
 * the reconstruction would be wrong (jumps, a first record not at 0/0, costs
 * above 255, 48-bit steps, 64-bit cycles); EV_TEXT payloads of 0, 1, 15, 16,
 * 17 and 100 bytes; flushing in batches no bigger than the buffer (cap 1 and
 * 4), also in the middle of a text; several sinks and the sink limit; names of
 * kinds and causes; and a whole CPU run recorded with per-instruction events,
 * whose reconstructed stamps must equal the machine's own step and cycle
 * counters observed by single-stepping a twin machine.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/event.h"

Suite *suite_event(void);

/* ---- a sink that keeps everything and remembers the batch sizes ------------------------ */

typedef struct {
    cpu_event *ev;
    size_t n, cap;
    size_t batches, max_batch;
} sinkbuf;

static void sink(void *ud, const cpu_event *ev, size_t n) {
    sinkbuf *b = ud;
    ck_assert_uint_gt(n, 0);
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->ev = realloc(b->ev, b->cap * sizeof *b->ev);
        ck_assert_ptr_nonnull(b->ev);
    }
    memcpy(b->ev + b->n, ev, n * sizeof *ev);
    b->n += n;
    b->batches++;
    if (n > b->max_batch) b->max_batch = n;
}

static cpu_trace T;
static sinkbuf B;

static void setup(void) {
    memset(&B, 0, sizeof B);
    cpu_trace_init(&T, 64);
    ck_assert_int_eq(cpu_trace_add_sink(&T, sink, &B), 0);
}

static void teardown(void) {
    cpu_trace_free(&T);
    free(B.ev);
    memset(&B, 0, sizeof B);
}

static cpu_event ev_insn(uint32_t pc, uint8_t cost) {
    return (cpu_event){.kind = EV_INSN, .b = cost, .pc = pc, .x = 0x01};
}

static cpu_event ev_of(int kind, uint32_t pc) {
    return (cpu_event){.kind = (uint8_t)kind, .pc = pc, .x = 7, .y = 9};
}

/* Feed every recorded event to a fresh reader; keep what it outputs (text is copied). */
typedef struct {
    cpu_stamped s[256];
    char text[256][128];
    size_t n;
} replay;

static void keep_one(void *ud, const cpu_stamped *out) {
    replay *r = ud;
    ck_assert_uint_lt(r->n, 256);
    r->s[r->n] = *out;
    if (out->text && out->text_len) {
        ck_assert_uint_le(out->text_len, sizeof r->text[0]);
        memcpy(r->text[r->n], out->text, out->text_len);
    }
    r->s[r->n].text = r->text[r->n];
    r->n++;
}

static void replay_all(const sinkbuf *b, replay *r) {
    cpu_trace_reader rd;
    cpu_reader_init(&rd);
    r->n = 0;
    cpu_reader_feed(&rd, b->ev, b->n, keep_one,
                    r); /* one record at a time is the same: see below */
    cpu_reader_free(&rd);
}

/* records of a kind, passing over payloads (page snapshots hold raw bytes) */
static size_t count_kind(const sinkbuf *b, int kind) {
    size_t k = 0;
    for (size_t i = 0; i < b->n; i += 1 + cpu_event_payload_records(&b->ev[i]))
        k += b->ev[i].kind == kind;
    return k;
}

/* ---- clock reconstruction ------------------------------------------------------------- */

START_TEST(test_insn_deltas_need_no_sync) {
    cpu_event e;
    e = ev_insn(0x100, 1), cpu_trace_put(&T, 0, 0, &e);
    e = ev_insn(0x104, 3), cpu_trace_put(&T, 1, 1, &e);
    e = ev_insn(0x108, 255), cpu_trace_put(&T, 2, 4, &e);
    e = ev_of(EV_IO, 0x108), cpu_trace_put(&T, 3, 259, &e); /* right where the reader will be */
    e = ev_insn(0x10c, 0), cpu_trace_put(&T, 3, 259, &e);   /* costs nothing */
    e = ev_of(EV_HALT, 0x110), cpu_trace_put(&T, 4, 259, &e);
    cpu_trace_flush(&T);
    ck_assert_uint_eq(B.n, 6);
    ck_assert_uint_eq(count_kind(&B, EV_SYNC), 0);
    ck_assert_uint_eq(T.step, 4);
    ck_assert_uint_eq(T.cycle, 259);
    replay r;
    replay_all(&B, &r);
    ck_assert_uint_eq(r.n, 6);
    static const uint64_t step[] = {0, 1, 2, 3, 3, 4}, cyc[] = {0, 1, 4, 259, 259, 259};
    for (size_t i = 0; i < 6; i++) {
        ck_assert_uint_eq(r.s[i].step, step[i]);
        ck_assert_uint_eq(r.s[i].cycle, cyc[i]);
    }
    ck_assert_int_eq(r.s[3].ev.kind, EV_IO);
    ck_assert_uint_eq(r.s[3].ev.pc, 0x108);
    ck_assert_uint_eq(r.s[3].ev.y, 9);
}
END_TEST

START_TEST(test_sync_when_stamps_jump) {
    cpu_event e;
    e = ev_insn(0x100, 2), cpu_trace_put(&T, 10, 1000, &e);     /* not at 0/0: sync first */
    e = ev_of(EV_TRAP, 0x100), cpu_trace_put(&T, 11, 1502, &e); /* a trap cost 500 more */
    e = ev_insn(0x200, 1), cpu_trace_put(&T, 11, 1502, &e);     /* no sync */
    e = ev_insn(0x204, 1), cpu_trace_put(&T, 13, 1503, &e);     /* a step with no record */
    e = ev_insn(0x208, 1), cpu_trace_put(&T, 14, 1503, &e);     /* cycle lower than predicted */
    cpu_trace_flush(&T);
    static const int kinds[] = {EV_SYNC, EV_INSN, EV_SYNC, EV_TRAP, EV_INSN,
                                EV_SYNC, EV_INSN, EV_SYNC, EV_INSN};
    ck_assert_uint_eq(B.n, 9);
    for (size_t i = 0; i < 9; i++)
        ck_assert_msg(B.ev[i].kind == kinds[i], "record %zu: kind %d", i, B.ev[i].kind);
    replay r;
    replay_all(&B, &r);
    ck_assert_uint_eq(r.n, 5); /* the syncs are bookkeeping */
    static const uint64_t step[] = {10, 11, 11, 13, 14}, cyc[] = {1000, 1502, 1502, 1503, 1503};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_uint_eq(r.s[i].step, step[i]);
        ck_assert_uint_eq(r.s[i].cycle, cyc[i]);
        ck_assert_int_ne(r.s[i].ev.kind, EV_SYNC);
    }
}
END_TEST

START_TEST(test_sync_wide_values) {
    const uint64_t step = 0x123456789abcull;      /* 48 bits */
    const uint64_t cycle = 0xfedcba9876543210ull; /* 64 bits */
    cpu_event e = ev_insn(0x40, 7);
    cpu_trace_put(&T, step, cycle, &e);
    e = ev_of(EV_HALT, 0x44);
    cpu_trace_put(&T, step + 1, cycle + 7, &e);
    cpu_trace_flush(&T);
    ck_assert_uint_eq(B.n, 3);
    ck_assert_int_eq(B.ev[0].kind, EV_SYNC);
    replay r;
    replay_all(&B, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_uint_eq(r.s[0].step, step);
    ck_assert_uint_eq(r.s[0].cycle, cycle);
    ck_assert_uint_eq(r.s[1].step, step + 1);
    ck_assert_uint_eq(r.s[1].cycle, cycle + 7);
}
END_TEST

/* The first record at 0/0 needs no sync: a fresh trace agrees with a fresh reader. */
START_TEST(test_first_record_at_zero_no_sync) {
    cpu_event e = ev_of(EV_POLICY, 0);
    cpu_trace_put(&T, 0, 0, &e);
    cpu_trace_flush(&T);
    ck_assert_uint_eq(B.n, 1);
    ck_assert_int_eq(B.ev[0].kind, EV_POLICY);
}
END_TEST

/* ---- text ------------------------------------------------------------------------------ */

static const size_t text_lengths[] = {0, 1, 15, 16, 17, 100};

START_TEST(test_text_round_trip) {
    size_t len = text_lengths[_i];
    char s[128];
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(i * 7 + (i % 3 == 0 ? 0 : 'a')); /* zeros inside too */
    cpu_event e = ev_insn(0x10, 4);
    cpu_trace_put(&T, 5, 50, &e);
    cpu_trace_text(&T, 6, 54, 3, TEXT_PRINT, s, len);
    e = ev_insn(0x14, 4);
    cpu_trace_put(&T, 6, 54, &e); /* the record after the payload is read normally */
    cpu_trace_flush(&T);
    size_t payload = (len + 15) / 16;
    ck_assert_uint_eq(B.n, 1 /* sync */ + 1 + 1 + payload + 1);
    ck_assert_int_eq(B.ev[2].kind, EV_TEXT);
    ck_assert_uint_eq(B.ev[2].x, len);
    ck_assert_int_eq(B.ev[2].a, TEXT_PRINT);
    ck_assert_int_eq(B.ev[2].mode, 3);
    replay r;
    replay_all(&B, &r);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_int_eq(r.s[1].ev.kind, EV_TEXT);
    ck_assert_uint_eq(r.s[1].text_len, len);
    ck_assert_uint_eq(r.s[1].step, 6);
    ck_assert_uint_eq(r.s[1].cycle, 54);
    if (len) ck_assert_mem_eq(r.s[1].text, s, len);
    ck_assert_int_eq(r.s[2].ev.kind, EV_INSN);
    ck_assert_uint_eq(r.s[2].ev.pc, 0x14);
    ck_assert_uint_eq(r.s[2].step, 6);
    ck_assert_uint_eq(r.s[2].cycle, 54);
}
END_TEST

/* Two texts in a row, the second shorter: the reader must not mix their bytes. */
START_TEST(test_texts_back_to_back) {
    cpu_trace_text(&T, 0, 0, 0, TEXT_NOTE, "abcdefghijklmnopqrstuvwxyz", 26);
    cpu_trace_text(&T, 0, 0, 0, TEXT_NOTE, "XY", 2);
    cpu_trace_text(&T, 0, 0, 0, TEXT_NOTE, "", 0);
    cpu_trace_flush(&T);
    ck_assert_uint_eq(B.n, 1 + 2 + 1 + 1 + 1);
    replay r;
    replay_all(&B, &r);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_uint_eq(r.s[0].text_len, 26);
    ck_assert_mem_eq(r.s[0].text, "abcdefghijklmnopqrstuvwxyz", 26);
    ck_assert_uint_eq(r.s[1].text_len, 2);
    ck_assert_mem_eq(r.s[1].text, "XY", 2);
    ck_assert_uint_eq(r.s[2].text_len, 0);
    ck_assert_int_eq(r.s[2].ev.kind, EV_TEXT);
}
END_TEST

/* ---- buffering and sinks --------------------------------------------------------------- */

START_TEST(test_small_cap_flushes_in_order) {
    cpu_trace t;
    sinkbuf b = {0};
    cpu_trace_init(&t, 4);
    ck_assert_uint_eq(t.cap, 4);
    cpu_trace_add_sink(&t, sink, &b);
    for (uint32_t i = 0; i < 10; i++) {
        cpu_event e = ev_insn(0x1000 + 4 * i, 1);
        cpu_trace_put(&t, i, i, &e);
    }
    ck_assert_uint_eq(b.n, 8); /* two full batches went out; two records wait */
    ck_assert_uint_eq(t.n, 2);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(b.n, 10);
    ck_assert_uint_eq(b.batches, 3);
    ck_assert_uint_eq(b.max_batch, 4);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_uint_eq(b.ev[i].pc, 0x1000 + 4 * i);
    cpu_trace_flush(&t); /* nothing buffered: no call */
    ck_assert_uint_eq(b.batches, 3);
    cpu_trace_free(&t);
    free(b.ev);
}
END_TEST

/* A sync and its record, and a text with its payload, may be split across batches. */
START_TEST(test_cap_boundary_splits_sync_and_text) {
    cpu_trace t;
    sinkbuf b = {0};
    cpu_trace_init(&t, 4);
    cpu_trace_add_sink(&t, sink, &b);
    char s[100];
    for (int i = 0; i < 100; i++)
        s[i] = (char)('A' + i % 26);
    for (uint32_t i = 0; i < 3; i++) {
        cpu_event e = ev_insn(4 * i, 2);
        cpu_trace_put(&t, i, 2 * i, &e);
    }
    cpu_event e = ev_of(EV_TRAP, 8); /* sync at slot 3, the trap in the next batch */
    cpu_trace_put(&t, 3, 600, &e);
    cpu_trace_text(&t, 3, 600, 0, TEXT_NOTE, s, 100); /* header + 7 payload records */
    e = ev_insn(0x300, 1);
    cpu_trace_put(&t, 3, 600, &e);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(b.n, 3 + 1 + 1 + 1 + 7 + 1);
    ck_assert_uint_le(b.max_batch, 4);
    replay r;
    replay_all(&b, &r);
    ck_assert_uint_eq(r.n, 3 + 1 + 1 + 1);
    ck_assert_int_eq(r.s[3].ev.kind, EV_TRAP);
    ck_assert_uint_eq(r.s[3].cycle, 600);
    ck_assert_int_eq(r.s[4].ev.kind, EV_TEXT);
    ck_assert_uint_eq(r.s[4].text_len, 100);
    ck_assert_mem_eq(r.s[4].text, s, 100);
    ck_assert_uint_eq(r.s[5].ev.pc, 0x300);
    ck_assert_uint_eq(r.s[5].step, 3);
    cpu_trace_free(&t);
    free(b.ev);
}
END_TEST

/* cap 1: every record is its own batch, a sync included. */
START_TEST(test_cap_one) {
    cpu_trace t;
    sinkbuf b = {0};
    cpu_trace_init(&t, 1);
    cpu_trace_add_sink(&t, sink, &b);
    cpu_event e = ev_insn(0x10, 1);
    cpu_trace_put(&t, 4, 4, &e);
    cpu_trace_text(&t, 5, 5, 0, TEXT_NOTE, "hello, world 123", 16);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(b.n, 1 + 1 + 1 + 1);
    ck_assert_uint_eq(b.max_batch, 1);
    replay r;
    replay_all(&b, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_uint_eq(r.s[0].step, 4);
    ck_assert_mem_eq(r.s[1].text, "hello, world 123", 16);
    cpu_trace_free(&t);
    free(b.ev);
}
END_TEST

START_TEST(test_multiple_sinks) {
    sinkbuf more[3] = {{0}};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cpu_trace_add_sink(&T, sink, &more[i]), 0);
    sinkbuf extra = {0};
    ck_assert_int_eq(cpu_trace_add_sink(&T, sink, &extra), -1); /* four at most */
    for (uint32_t i = 0; i < 100; i++) {
        cpu_event e = ev_insn(i, 1);
        cpu_trace_put(&T, i, i, &e);
    }
    cpu_trace_text(&T, 100, 100, 0, TEXT_NOTE, "abc", 3);
    cpu_trace_flush(&T);
    ck_assert_uint_eq(B.n, 102);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(more[i].n, B.n);
        ck_assert_uint_eq(more[i].batches, B.batches);
        ck_assert_mem_eq(more[i].ev, B.ev, B.n * sizeof *B.ev);
        free(more[i].ev);
    }
    ck_assert_uint_eq(extra.n, 0);
    ck_assert_uint_eq(B.batches, 2); /* cap 64 */
}
END_TEST

START_TEST(test_default_cap_and_free) {
    cpu_trace t;
    cpu_trace_init(&t, 0);
    ck_assert_uint_eq(t.cap, 4096);
    ck_assert_ptr_nonnull(t.buf);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_int_eq(t.nsinks, 0);
    cpu_event e = ev_insn(0, 1);
    cpu_trace_put(&t, 0, 0, &e); /* no sink: recording still works */
    ck_assert_uint_eq(t.n, 1);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(t.n, 0);
    cpu_trace_free(&t);
    ck_assert_ptr_null(t.buf);
    ck_assert_uint_eq(t.cap, 0);
}
END_TEST

START_TEST(test_names) {
    ck_assert_str_eq(cpu_event_kind_name(EV_INSN), "insn");
    ck_assert_str_eq(cpu_event_kind_name(EV_TRAP), "trap");
    ck_assert_str_eq(cpu_event_kind_name(EV_SENSITIVE), "sensitive");
    ck_assert_str_eq(cpu_event_kind_name(EV_EMULATE), "emulate");
    ck_assert_str_eq(cpu_event_kind_name(EV_CPU_LAST), "?");
    ck_assert_str_eq(cpu_event_kind_name(-1), "?");
    for (int k = 0; k < EV_CPU_LAST; k++)
        ck_assert_str_ne(cpu_event_kind_name(k), "?");
    ck_assert_str_eq(cpu_cause_name(CAUSE_PF), "page fault");
    ck_assert_str_eq(cpu_cause_name(CAUSE_NONE), "");
    ck_assert_str_eq(cpu_cause_name(CAUSE_COUNT), "?");
    for (int k = 1; k < CAUSE_COUNT; k++)
        ck_assert_str_ne(cpu_cause_name(k), "?");
}
END_TEST

/* ---- a real run ------------------------------------------------------------------------ */

enum { VT = 0x800, CODE = 0x1000, HANDLER = 0x2000, KSTACK0 = 0xF000 };

static uint32_t put(cpu_t *c, uint32_t *at, int op, int ra, int rb, int32_t imm) {
    cpu_insn in = {.op = (uint8_t)op, .ra = (uint8_t)ra, .rb = (uint8_t)rb, .imm = imm};
    uint32_t w[2];
    int n = cpu_encode(&in, w);
    ck_assert_int_eq(cpu_phys_write(c, *at, w, (size_t)n), 0);
    uint32_t here = *at;
    *at += (uint32_t)n;
    return here;
}

/* Straight-line code, a syscall (trap + iret), costs above 255 (out, iret), a loop. */
static cpu_t *traced_machine(void) {
    cpu_t *c = cpu_new(64 * 1024);
    ck_assert_ptr_nonnull(c);
    uint32_t at = HANDLER;
    put(c, &at, OP_ADDI, 5, 0, 1);
    put(c, &at, OP_IRET, 0, 0, 0);
    uint32_t h = HANDLER;
    cpu_phys_write(c, VT + 4 * VEC_SYSCALL, &h, 4);
    cpu_set_cr(c, CR_VBR, VT);
    c->r[CPU_REG_SP] = KSTACK0;
    c->pc = CODE;
    at = CODE;
    put(c, &at, OP_LI, 1, 0, 3);
    put(c, &at, OP_LI, 2, 0, 'x');
    uint32_t top = put(c, &at, OP_OUT, 0, 2, PORT_CONSOLE);
    put(c, &at, OP_SYSCALL, 0, 0, 0);
    put(c, &at, OP_ADDI, 1, 0, -1);
    put(c, &at, OP_CMPI, 1, 0, 0);
    uint32_t j = at;
    put(c, &at, OP_JNE, 0, 0, (int32_t)(top - (j + 4)));
    put(c, &at, OP_MUL, 1, 2, 0);
    put(c, &at, OP_HLT, 0, 0, 0);
    return c;
}

typedef struct {
    const uint32_t *pcs;
    const uint64_t *steps, *cycles;
    size_t n, k;
} insn_check;

static void check_insn(void *ud, const cpu_stamped *s) {
    insn_check *c = ud;
    if (s->ev.kind != EV_INSN) return;
    size_t k = c->k;
    ck_assert_uint_lt(k, c->n);
    ck_assert_msg(s->ev.pc == c->pcs[k] && s->step == c->steps[k] && s->cycle == c->cycles[k],
                  "insn %zu: pc %#x step %llu cycle %llu, machine had pc %#x step %llu cycle %llu",
                  k, s->ev.pc, (unsigned long long)s->step, (unsigned long long)s->cycle, c->pcs[k],
                  (unsigned long long)c->steps[k], (unsigned long long)c->cycles[k]);
    c->k++;
}

START_TEST(test_cpu_run_stamps_match_single_step) {
    /* the twin, single-stepped: the machine's own counters before each instruction */
    cpu_t *twin = traced_machine();
    uint64_t steps[256], cycles[256];
    uint32_t pcs[256];
    size_t n = 0;
    int rc;
    do {
        ck_assert_uint_lt(n, 256);
        steps[n] = twin->steps;
        cycles[n] = twin->cycles;
        pcs[n] = twin->pc;
        n++;
    } while ((rc = cpu_run(twin, 1)) == CPU_EXIT_BUDGET);
    ck_assert_int_eq(rc, CPU_EXIT_HALT);

    /* the recorded run */
    cpu_t *c = traced_machine();
    cpu_trace t;
    sinkbuf b = {0};
    cpu_trace_init(&t, 8);
    t.insns = 1;
    cpu_trace_add_sink(&t, sink, &b);
    c->trace = &t;
    ck_assert_int_eq(cpu_run(c, 1000), CPU_EXIT_HALT);
    cpu_trace_flush(&t);
    c->trace = NULL;

    ck_assert_uint_gt(count_kind(&b, EV_SYNC), 0); /* out, the trap and iret cost more than 255 */
    ck_assert_uint_eq(count_kind(&b, EV_TRAP), 3);
    ck_assert_uint_eq(count_kind(&b, EV_IRET), 3);
    ck_assert_uint_eq(count_kind(&b, EV_IO), 3);

    cpu_trace_reader rd;
    cpu_reader_init(&rd);
    insn_check ic = {.pcs = pcs, .steps = steps, .cycles = cycles, .n = n};
    for (size_t i = 0; i < b.n; i++)
        cpu_reader_feed(&rd, &b.ev[i], 1, check_insn, &ic); /* record by record */
    ck_assert_uint_eq(ic.k, n);
    ck_assert_uint_eq(c->cycles, twin->cycles);
    ck_assert_uint_eq(c->r[5], 3);
    cpu_reader_free(&rd);
    cpu_trace_free(&t);
    free(b.ev);
    cpu_free(c);
    cpu_free(twin);
}
END_TEST

/* ---- compact instruction records: blocks, repeats, page snapshots, costs ---------------- */

typedef struct {
    uint32_t pc[4096], word[4096];
    uint64_t step[4096], cycle[4096];
    size_t n, k;
    int mismatch;
} twin_log;

/* Single-step a machine, logging each instruction's pc, first word, step and cycle. */
static void log_twin(cpu_t *c, twin_log *l, int (*between)(cpu_t *, uint64_t)) {
    for (;;) {
        ck_assert_uint_lt(l->n, 4096);
        uint32_t w = 0;
        cpu_virt_read(c, c->pc, &w, 4);
        l->pc[l->n] = c->pc;
        l->word[l->n] = w;
        l->step[l->n] = c->steps;
        l->cycle[l->n] = c->cycles;
        l->n++;
        if (between) between(c, c->steps);
        if (cpu_run(c, 1) != CPU_EXIT_BUDGET) break;
    }
}

static void cmp_twin(void *ud, const cpu_stamped *s) {
    twin_log *l = ud;
    if (s->ev.kind != EV_INSN) return;
    size_t k = l->k++;
    ck_assert_uint_lt(k, l->n);
    ck_assert_msg(s->ev.pc == l->pc[k] && s->ev.x == l->word[k] && s->step == l->step[k] &&
                      s->cycle == l->cycle[k],
                  "insn %zu: read pc %#x word %#x step %llu cycle %llu; twin pc %#x word %#x step "
                  "%llu cycle %llu",
                  k, s->ev.pc, s->ev.x, (unsigned long long)s->step, (unsigned long long)s->cycle,
                  l->pc[k], l->word[k], (unsigned long long)l->step[k],
                  (unsigned long long)l->cycle[k]);
}

/* Run c traced (cap records a batch), then check the reader against the twin log. */
static void traced_equals_twin(cpu_t *c, twin_log *l, sinkbuf *b, size_t cap,
                               int (*between)(cpu_t *, uint64_t)) {
    cpu_trace t;
    cpu_trace_init(&t, cap);
    t.insns = 1;
    cpu_trace_add_sink(&t, sink, b);
    c->trace = &t;
    if (between) { /* stop at every step the hook cares about, as the twin did */
        while (cpu_run(c, 1) == CPU_EXIT_BUDGET)
            between(c, c->steps);
    } else {
        ck_assert_int_ne(cpu_run(c, 100000), CPU_EXIT_BUDGET);
    }
    cpu_trace_flush(&t);
    c->trace = NULL;
    cpu_trace_free(&t);
    cpu_trace_reader rd;
    cpu_reader_init(&rd);
    l->k = 0;
    cpu_reader_feed(&rd, b->ev, b->n, cmp_twin, l);
    cpu_reader_free(&rd);
    ck_assert_uint_eq(l->k, l->n);
}

static cpu_t *loop_machine(int iterations) {
    cpu_t *c = cpu_new(64 * 1024);
    uint32_t at = CODE;
    c->pc = CODE;
    put(c, &at, OP_LI, 1, 0, 0);
    put(c, &at, OP_LI, 2, 0, 0);
    uint32_t top = put(c, &at, OP_ADD, 1, 2, 0);
    put(c, &at, OP_ADDI, 2, 0, 1);
    put(c, &at, OP_CMPI, 2, 0, iterations);
    uint32_t j = at;
    put(c, &at, OP_JL, 0, 0, (int32_t)(top - (j + 4)));
    put(c, &at, OP_HLT, 0, 0, 0);
    return c;
}

START_TEST(test_loop_is_one_block_and_a_repeat) {
    static twin_log l;
    memset(&l, 0, sizeof l);
    cpu_t *twin = loop_machine(500);
    log_twin(twin, &l, NULL);
    cpu_t *c = loop_machine(500);
    sinkbuf b = {0};
    traced_equals_twin(c, &l, &b, 4096, NULL);
    ck_assert_uint_eq(count_kind(&b, EV_REPEAT), 1);
    ck_assert_uint_eq(count_kind(&b, EV_PAGE), 1);
    ck_assert_uint_lt(
        b.n, 270 + 20); /* a page snapshot (257 records) and a handful more for 2000 insns */
    ck_assert_uint_eq(c->r[1], 500 * 499 / 2);
    free(b.ev);
    cpu_free(c);
    cpu_free(twin);
}
END_TEST

/* the same with a tiny buffer: blocks and repeats cut across batches */
START_TEST(test_blocks_across_small_batches) {
    static twin_log l;
    memset(&l, 0, sizeof l);
    cpu_t *twin = loop_machine(50);
    log_twin(twin, &l, NULL);
    cpu_t *c = loop_machine(50);
    sinkbuf b = {0};
    traced_equals_twin(c, &l, &b, 3, NULL);
    free(b.ev);
    cpu_free(c);
    cpu_free(twin);
}
END_TEST

/* code that rewrites itself: the reader decodes the new bytes after the store */
static cpu_t *smc_machine(void) {
    cpu_t *c = cpu_new(64 * 1024);
    uint32_t at = CODE;
    c->pc = CODE;
    cpu_insn nw = {.op = OP_LI, .ra = 3, .imm = 77};
    uint32_t w[2];
    cpu_encode(&nw, w);
    put(c, &at, OP_LI, 4, 0, (int32_t)w[0]);
    put(c, &at, OP_LI, 5, 0, (int32_t)w[1]);
    uint32_t fix = at + 8 * 2 + 4 * 2 + 8; /* the address of the 'target' below */
    put(c, &at, OP_LI, 6, 0, (int32_t)fix);
    put(c, &at, OP_LI, 7, 0, 0);
    put(c, &at, OP_ST, 6, 4, 0);
    put(c, &at, OP_ST, 6, 5, 4);
    put(c, &at, OP_NOP, 0, 0, 0);
    put(c, &at, OP_NOP, 0, 0, 0);
    ck_assert_uint_eq(at, fix);
    put(c, &at, OP_LI, 3, 0, 11); /* target: replaced by li r3, 77 before it runs */
    put(c, &at, OP_HLT, 0, 0, 0);
    return c;
}

START_TEST(test_self_modifying_code_is_snapshot_again) {
    static twin_log l;
    memset(&l, 0, sizeof l);
    cpu_t *twin = smc_machine();
    log_twin(twin, &l, NULL);
    ck_assert_uint_eq(twin->r[3], 77);
    cpu_t *c = smc_machine();
    sinkbuf b = {0};
    traced_equals_twin(c, &l, &b, 4096, NULL);
    ck_assert_uint_ge(count_kind(&b, EV_PAGE), 2); /* the page again after the stores */
    ck_assert_uint_eq(c->r[3], 77);
    free(b.ev);
    cpu_free(c);
    cpu_free(twin);
}
END_TEST

/* a cost changed mid-run reaches the reader (EV_COST) */
static int change_cost_at_40(cpu_t *c, uint64_t step) {
    if (step == 40) cpu_set_cost(c, OP_ADD, 9);
    return 0;
}

START_TEST(test_cost_change_reaches_reader) {
    static twin_log l;
    memset(&l, 0, sizeof l);
    cpu_t *twin = loop_machine(30);
    log_twin(twin, &l, change_cost_at_40);
    cpu_t *c = loop_machine(30);
    sinkbuf b = {0};
    traced_equals_twin(c, &l, &b, 4096, change_cost_at_40);
    ck_assert_uint_eq(count_kind(&b, EV_COST), 1);
    ck_assert_uint_eq(c->cycles, twin->cycles);
    free(b.ev);
    cpu_free(c);
    cpu_free(twin);
}
END_TEST

/* a `wrcr ptbr` instruction records an address-space switch (EV_ASPACE);
 * the host writing ptbr (cpu_set_cr) and other control registers do not */
START_TEST(test_wrcr_ptbr_is_an_address_space_switch) {
    cpu_t *c = cpu_new(64 * 1024);
    uint32_t at = CODE;
    c->pc = CODE;
    put(c, &at, OP_LI, 1, 0, 0x3000);
    put(c, &at, OP_WRCR, CR_VBR, 1, 0);
    put(c, &at, OP_LI, 1, 0, 0x5123);
    uint32_t wrcr = at;
    put(c, &at, OP_WRCR, CR_PTBR, 1, 0);
    put(c, &at, OP_HLT, 0, 0, 0);
    cpu_trace t;
    sinkbuf b = {0};
    cpu_trace_init(&t, 64);
    cpu_trace_add_sink(&t, sink, &b);
    c->trace = &t;
    cpu_set_cr(c, CR_PTBR, 0x7000); /* the host: no event */
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_HALT);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(count_kind(&b, EV_ASPACE), 1);
    for (size_t i = 0; i < b.n; i += 1 + cpu_event_payload_records(&b.ev[i]))
        if (b.ev[i].kind == EV_ASPACE) {
            ck_assert_uint_eq(b.ev[i].pc, wrcr);
            ck_assert_uint_eq(b.ev[i].x, 0x5123); /* as the program wrote it */
            ck_assert_uint_eq(b.ev[i].a, 0);
            ck_assert_uint_eq(b.ev[i].mode & EV_MODE_CPL, 0);
        }
    ck_assert_uint_eq(cpu_get_cr(c, CR_PTBR), 0x5000);
    ck_assert_str_eq(cpu_event_kind_name(EV_ASPACE), "aspace");
    cpu_trace_free(&t);
    free(b.ev);
    cpu_free(c);
}
END_TEST

Suite *suite_event(void) {
    Suite *s = suite_create("event");
    TCase *t = tcase_create("recorder");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_insn_deltas_need_no_sync);
    tcase_add_test(t, test_sync_when_stamps_jump);
    tcase_add_test(t, test_sync_wide_values);
    tcase_add_test(t, test_first_record_at_zero_no_sync);
    tcase_add_loop_test(t, test_text_round_trip, 0,
                        (int)(sizeof text_lengths / sizeof text_lengths[0]));
    tcase_add_test(t, test_texts_back_to_back);
    tcase_add_test(t, test_small_cap_flushes_in_order);
    tcase_add_test(t, test_cap_boundary_splits_sync_and_text);
    tcase_add_test(t, test_cap_one);
    tcase_add_test(t, test_multiple_sinks);
    tcase_add_test(t, test_default_cap_and_free);
    tcase_add_test(t, test_names);
    suite_add_tcase(s, t);

    t = tcase_create("cpu");
    tcase_add_test(t, test_cpu_run_stamps_match_single_step);
    tcase_add_test(t, test_loop_is_one_block_and_a_repeat);
    tcase_add_test(t, test_blocks_across_small_batches);
    tcase_add_test(t, test_self_modifying_code_is_snapshot_again);
    tcase_add_test(t, test_cost_change_reaches_reader);
    tcase_add_test(t, test_wrcr_ptbr_is_an_address_space_switch);
    suite_add_tcase(s, t);
    return s;
}
