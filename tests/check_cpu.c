/* tests/check_cpu.c -- the simulated processor (cpu/cpu.c, mmu.c, io.c, policy.c).
 *
 * Covers: arithmetic and the lazy flags against a 64-bit reference model with
 * every jcc (lazy and materialized), logic/shift/mul/div, #DE; loads, stores,
 * the stack, calls, 32-bit immediates, an 8-byte instruction straddling a page,
 * unaligned pc; trap delivery (the five-word frame of cpu/cpu.h, the stack
 * switch to CR_KSP, IF, iret back to CPL 3), int/syscall/brk rules, #DF and
 * shutdown; the configurable privileged-instruction set under the "x86" and
 * "strict" presets and per-instruction behaviours, EV_SENSITIVE records;
 * interception (cpu_intercept / cpu_deliver / skipping); paging (#PF error
 * codes, CR_FADDR, A/D bits, TLB staleness, invlpg, ptbr flush, #MC);
 * self-modifying code; the timer, hlt and the console; determinism and
 * single-step equivalence; the step budget, fault loops, breakpoints; VMX.
 *
 * Programs are built with emit() (cpu_encode + cpu_phys_write): there is no
 * assembler in cpu/.  Every machine starts from the same layout (see below):
 * each vector's handler is a one-instruction `hlt` stub, so a test that ends in
 * "halted in the stub of vector v" has taken exactly that trap, with IF = 0 and
 * the trap frame on top of the stack.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"

Suite *suite_cpu(void);

/* ---- machine layout --------------------------------------------------------------------- */

enum {
    MEM_SIZE = 256 * 1024,
    VT = 0x0800,      /* vector table (CR_VBR), non-zero so sidt shows something */
    CODE = 0x1000,    /* main program */
    STUBS = 0x3000,   /* `hlt` stub of vector v at STUBS + 4v */
    SUBR = 0x4000,    /* handlers and routines written by a test */
    DATA = 0x6000,    /* scratch data */
    PD = 0x8000,      /* page directory (paging tests) */
    PT = 0x9000,      /* page table for the first 4 MiB */
    USTACK = 0xE000,  /* user stack top */
    KSTACK0 = 0xF000, /* initial kernel sp */
    KSTACK = 0x10000, /* CR_KSP: kernel stack used on traps from CPL > 0 */
};

static cpu_t *C; /* the fixture's machine */

static uint32_t stub(int vec) {
    return STUBS + 4u * (uint32_t)vec;
}

static void poke32(cpu_t *c, uint32_t pa, uint32_t v) {
    ck_assert_int_eq(cpu_phys_write(c, pa, &v, 4), 0);
}

static uint32_t peek32(cpu_t *c, uint32_t pa) {
    uint32_t v = 0;
    ck_assert_int_eq(cpu_phys_read(c, pa, &v, 4), 0);
    return v;
}

static void set_vector(cpu_t *c, int vec, uint32_t handler) {
    poke32(c, VT + 4u * (uint32_t)vec, handler);
}

/* Write one instruction at *at and advance *at; returns its address. */
static uint32_t emit(cpu_t *c, uint32_t *at, int op, int ra, int rb, int32_t imm) {
    cpu_insn in = {.op = (uint8_t)op,
                   .ra = (uint8_t)ra,
                   .rb = (uint8_t)rb,
                   .size = (uint8_t)cpu_fmt_size(cpu_isa[op].fmt),
                   .imm = imm};
    uint32_t w[2] = {0, 0};
    int n = cpu_encode(&in, w);
    uint32_t here = *at;
    ck_assert_int_eq(cpu_phys_write(c, here, w, (size_t)n), 0);
    *at += (uint32_t)n;
    return here;
}

/* Tests declare `cpu_t *c` and `uint32_t at` (the emit cursor). */
#define EMIT(op, ra, rb, imm) emit(c, &at, OP_##op, (ra), (rb), (imm))

static uint32_t encode1(int op, int ra, int rb, int32_t imm) {
    cpu_insn in = {.op = (uint8_t)op, .ra = (uint8_t)ra, .rb = (uint8_t)rb, .imm = imm};
    uint32_t w[2] = {0, 0};
    cpu_encode(&in, w);
    return w[0];
}

/* pc-relative displacement of a jcc at `from` to `to` */
static int32_t rel(uint32_t from, uint32_t to) {
    return (int32_t)(to - (from + 4));
}

static cpu_t *new_machine(void) {
    cpu_t *c = cpu_new(MEM_SIZE);
    ck_assert_ptr_nonnull(c);
    for (int v = 0; v < CPU_NVEC; v++) {
        uint32_t at = stub(v);
        emit(c, &at, OP_HLT, 0, 0, 0);
        set_vector(c, v, stub(v));
    }
    cpu_set_cr(c, CR_VBR, VT);
    cpu_set_cr(c, CR_KSP, KSTACK);
    c->r[CPU_REG_SP] = KSTACK0;
    c->pc = CODE;
    return c;
}

static void setup(void) {
    C = new_machine();
}

/* Continue a machine that stopped in hlt from another pc (hlt state is sticky). */
static void restart(cpu_t *c, uint32_t pc) {
    c->halted = 0;
    c->pc = pc;
}

static void teardown(void) {
    cpu_free(C);
    C = NULL;
}

/* The five words pushed by a trap, lowest address first. */
typedef struct {
    uint32_t err, pc, flags, cpl, sp;
} trap_frame;

static trap_frame frame_at(cpu_t *c, uint32_t sp) {
    uint32_t w[5] = {0};
    ck_assert_int_eq(cpu_phys_read(c, sp, w, sizeof w), 0);
    return (trap_frame){w[0], w[1], w[2], w[3], w[4]};
}

static trap_frame top_frame(cpu_t *c) {
    return frame_at(c, c->r[CPU_REG_SP]);
}

/* Run; the machine must halt in the stub of `vec`. */
static void expect_trap(cpu_t *c, uint64_t budget, int vec) {
    int rc = cpu_run(c, budget);
    uint32_t pc = c->exit.pc;
    int got = pc >= STUBS && pc < stub(CPU_NVEC) ? (int)((pc - STUBS) / 4) : -1;
    ck_assert_msg(rc == CPU_EXIT_HALT && got == vec,
                  "expected a trap to vector %d; run ended with '%s' at pc %#x (vector %d)", vec,
                  cpu_exit_name(rc), pc, got);
}

/* Run; the machine must halt on the `hlt` at `where` (not in a trap stub). */
static void expect_halt_at(cpu_t *c, uint64_t budget, uint32_t where) {
    int rc = cpu_run(c, budget);
    ck_assert_msg(rc == CPU_EXIT_HALT && c->exit.pc == where,
                  "expected hlt at %#x; run ended with '%s' at pc %#x", where, cpu_exit_name(rc),
                  c->exit.pc);
}

/* Event collection through a cpu_trace sink. */
typedef struct {
    cpu_event *ev;
    size_t n, cap;
} evbuf;

static void evbuf_sink(void *ud, const cpu_event *ev, size_t n) {
    evbuf *b = ud;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->ev = realloc(b->ev, b->cap * sizeof *b->ev);
        ck_assert_ptr_nonnull(b->ev);
    }
    memcpy(b->ev + b->n, ev, n * sizeof *ev);
    b->n += n;
}

static void trace_attach(cpu_t *c, cpu_trace *t, evbuf *b, int insns) {
    memset(b, 0, sizeof *b);
    cpu_trace_init(t, 64);
    t->insns = insns;
    ck_assert_int_eq(cpu_trace_add_sink(t, evbuf_sink, b), 0);
    c->trace = t;
}

static void trace_detach(cpu_t *c, cpu_trace *t, evbuf *b) {
    c->trace = NULL;
    cpu_trace_free(t);
    free(b->ev);
    b->ev = NULL;
}

static size_t count_kind(const evbuf *b, int kind) {
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        k += b->ev[i].kind == kind;
    return k;
}

static const cpu_event *find_kind(const evbuf *b, int kind, size_t nth) {
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i].kind == kind && nth-- == 0) return &b->ev[i];
    return NULL;
}

static uint32_t flags_of(const cpu_t *c) {
    return cpu_get_flags(c);
}

/* ==== arithmetic and lazy flags ========================================================== */

/* Reference flags of a + b or a - b, computed in 64 bits independently of the executor. */
static uint32_t ref_flags(int sub, uint32_t a, uint32_t b) {
    uint32_t r = sub ? a - b : a + b, f = 0;
    int64_t s = sub ? (int64_t)(int32_t)a - (int32_t)b : (int64_t)(int32_t)a + (int32_t)b;
    int cf = sub ? (uint64_t)a < (uint64_t)b : (((uint64_t)a + (uint64_t)b) >> 32) != 0;
    if (cf) f |= CPU_FL_CF;
    if (s < INT32_MIN || s > INT32_MAX) f |= CPU_FL_OF;
    if (r == 0) f |= CPU_FL_ZF;
    if (r & 0x80000000u) f |= CPU_FL_SF;
    return f;
}

static const int jccs[8] = {OP_JE, OP_JNE, OP_JL, OP_JGE, OP_JLE, OP_JG, OP_JB, OP_JAE};

/* Intel SDM Jcc conditions from the flags. */
static int ref_taken(int jcc, uint32_t f) {
    int zf = !!(f & CPU_FL_ZF), sf = !!(f & CPU_FL_SF), of = !!(f & CPU_FL_OF),
        cf = !!(f & CPU_FL_CF);
    switch (jcc) {
    case OP_JE: return zf;
    case OP_JNE: return !zf;
    case OP_JL: return sf != of;
    case OP_JGE: return sf == of;
    case OP_JLE: return zf || sf != of;
    case OP_JG: return !zf && sf == of;
    case OP_JB: return cf;
    case OP_JAE: return !cf;
    }
    return -1;
}

/* The comparison a jcc stands for after cmp a, b. */
static int ref_compare(int jcc, uint32_t a, uint32_t b) {
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    switch (jcc) {
    case OP_JE: return a == b;
    case OP_JNE: return a != b;
    case OP_JL: return sa < sb;
    case OP_JGE: return sa >= sb;
    case OP_JLE: return sa <= sb;
    case OP_JG: return sa > sb;
    case OP_JB: return a < b;
    case OP_JAE: return a >= b;
    }
    return -1;
}

/* Run `op r2, r3` (or `op r2, imm`), push the flags, optionally reload them
 * through popf (materialized flags instead of lazy ones), then probe all eight
 * jcc: each jumps over a store, so DATA+4k stays 0 iff jcc k was taken. */
static void check_alu_case(int op, uint32_t a, int32_t b, int materialize) {
    cpu_t *c = new_machine();
    uint32_t at = CODE;
    int imm_form = op == OP_ADDI || op == OP_CMPI;
    uint32_t bv = imm_form ? (uint32_t)(int32_t)(int16_t)b : (uint32_t)b;
    c->r[2] = a;
    c->r[3] = bv;
    c->r[4] = DATA;
    c->r[5] = 1;
    emit(c, &at, op, 2, imm_form ? 0 : 3, imm_form ? b : 0);
    EMIT(PUSHF, 0, 0, 0);
    if (materialize) {
        EMIT(PUSHF, 0, 0, 0);
        EMIT(POPF, 0, 0, 0);
    }
    for (int k = 0; k < 8; k++) {
        emit(c, &at, jccs[k], 0, 0, 4);
        EMIT(ST, 4, 5, 4 * k);
    }
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);

    int sub = op == OP_SUB || op == OP_CMP || op == OP_CMPI;
    uint32_t want = ref_flags(sub, a, bv);
    uint32_t pushed = peek32(c, KSTACK0 - 4);
    ck_assert_msg((pushed & CPU_FL_ARITH) == want, "%s %#x, %#x: flags %#x, want %#x",
                  cpu_isa[op].mnem, a, bv, pushed & CPU_FL_ARITH, want);
    uint32_t result = op == OP_CMP || op == OP_CMPI ? a : sub ? a - bv : a + bv;
    ck_assert_uint_eq(c->r[2], result);
    for (int k = 0; k < 8; k++) {
        int taken = peek32(c, DATA + 4u * (uint32_t)k) == 0;
        ck_assert_msg(taken == ref_taken(jccs[k], want), "%s %#x, %#x (%s): %s %s, expected %s",
                      cpu_isa[op].mnem, a, bv, materialize ? "popf'd" : "lazy",
                      cpu_isa[jccs[k]].mnem, taken ? "taken" : "not taken",
                      taken ? "not taken" : "taken");
        if (sub) ck_assert_int_eq(taken, ref_compare(jccs[k], a, bv));
    }
    cpu_free(c);
}

typedef struct {
    uint32_t a;
    int32_t b;
} ab_case;

START_TEST(test_add_flags_and_jcc) {
    static const ab_case cs[] = {
        {0x7fffffff, 1},  {0xffffffff, 1},  {0x80000000, (int32_t)0x80000000},
        {1, 2},           {0xfffffffe, 1},  {0, 0},
        {0x80000000, -1}, {0xffffffff, -1}, {0x40000000, 0x40000000}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int m = 0; m < 2; m++)
            check_alu_case(OP_ADD, cs[i].a, cs[i].b, m);
}
END_TEST

static const ab_case sub_cases[] = {{0x80000000, 1},
                                    {0, 1},
                                    {5, 5},
                                    {0x7fffffff, -1},
                                    {0xffffffff, 0},
                                    {1, (int32_t)0x80000000},
                                    {0x80000000, 0x7fffffff},
                                    {3, 7},
                                    {7, 3},
                                    {0xffffffff, 1},
                                    {0x80000000, (int32_t)0x80000000},
                                    {0, (int32_t)0x80000000},
                                    {0xfffffffe, -1}};

START_TEST(test_sub_flags_and_jcc) {
    for (size_t i = 0; i < sizeof sub_cases / sizeof sub_cases[0]; i++)
        for (int m = 0; m < 2; m++)
            check_alu_case(OP_SUB, sub_cases[i].a, sub_cases[i].b, m);
}
END_TEST

START_TEST(test_cmp_flags_and_jcc) {
    for (size_t i = 0; i < sizeof sub_cases / sizeof sub_cases[0]; i++)
        for (int m = 0; m < 2; m++)
            check_alu_case(OP_CMP, sub_cases[i].a, sub_cases[i].b, m);
}
END_TEST

START_TEST(test_addi_cmpi_sign_extend_and_jcc) {
    static const ab_case addi[] = {
        {0x7fffffff, 1},      {0xffffffff, 1},      {5, -1},    {0, -1}, {0x80000000, -1},
        {0x7fff0000, 0x7fff}, {0x7fffffff, 0x7fff}, {0, -32768}};
    static const ab_case cmpi[] = {{0x80000000, 1}, {0, 1},           {0xffffffff, -1},
                                   {5, -1},         {0x7fffffff, -1}, {0xffff8000, -32768},
                                   {0, -32768},     {0x7fff, 0x7fff}, {0x8000, -32768}};
    for (size_t i = 0; i < sizeof addi / sizeof addi[0]; i++)
        for (int m = 0; m < 2; m++)
            check_alu_case(OP_ADDI, addi[i].a, addi[i].b, m);
    for (size_t i = 0; i < sizeof cmpi / sizeof cmpi[0]; i++)
        for (int m = 0; m < 2; m++)
            check_alu_case(OP_CMPI, cmpi[i].a, cmpi[i].b, m);
}
END_TEST

/* and/or/xor/andi/ori: ZF SF from the result, CF and OF cleared. */
START_TEST(test_logic_clears_cf_of) {
    static const int ops[] = {OP_AND, OP_OR, OP_XOR, OP_ANDI, OP_ORI};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        int op = ops[i], imm = op == OP_ANDI || op == OP_ORI;
        c->r[1] = 0x80000000; /* 0x80000000 + 0x80000000 sets CF, OF and ZF */
        c->r[2] = 0x80000000;
        c->r[3] = 0xf0f0f0f0;
        c->r[4] = 0x0ff00ff0;
        c->r[5] = DATA;
        c->r[6] = 1;
        EMIT(ADD, 1, 2, 0);
        emit(c, &at, op, 3, imm ? 0 : 4, imm ? -16 /* 0xfffffff0 */ : 0);
        EMIT(PUSHF, 0, 0, 0);
        EMIT(JB, 0, 0, 4); /* taken would skip the store */
        EMIT(ST, 5, 6, 0);
        EMIT(JL, 0, 0, 4); /* OF = 0, so taken iff SF */
        EMIT(ST, 5, 6, 4);
        uint32_t end = EMIT(HLT, 0, 0, 0);
        expect_halt_at(c, 100, end);
        uint32_t a = 0xf0f0f0f0, b = imm ? 0xfffffff0u : 0x0ff00ff0u;
        uint32_t r = op == OP_AND || op == OP_ANDI ? a & b : op == OP_XOR ? a ^ b : a | b;
        uint32_t want = (r == 0 ? CPU_FL_ZF : 0) | (r >> 31 ? CPU_FL_SF : 0);
        ck_assert_uint_eq(c->r[3], r);
        ck_assert_msg((peek32(c, KSTACK0 - 4) & CPU_FL_ARITH) == want, "%s: flags %#x, want %#x",
                      cpu_isa[op].mnem, peek32(c, KSTACK0 - 4), want);
        ck_assert_uint_eq(peek32(c, DATA), 1); /* jb not taken: CF clear */
        ck_assert_uint_eq(peek32(c, DATA + 4),
                          (want & CPU_FL_SF) ? 0 : 1); /* jl: SF != OF, OF clear */
        cpu_free(c);
    }
}
END_TEST

START_TEST(test_shifts) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = 0x80000001;
    c->r[2] = 0x80000001;
    c->r[3] = 0x80000010;
    c->r[4] = 4;
    c->r[5] = 33; /* counts are taken mod 32 */
    c->r[6] = 0x40000000;
    c->r[7] = 0x80000000;
    EMIT(SHL, 1, 4, 0);  /* 0x00000010 */
    EMIT(SHR, 2, 5, 0);  /* >> 1: 0x40000000 */
    EMIT(SAR, 3, 4, 0);  /* 0xf8000001 */
    EMIT(SHLI, 6, 0, 2); /* 0x00000000, ZF */
    EMIT(PUSHF, 0, 0, 0);
    EMIT(SHRI, 7, 0, 31); /* 1 */
    EMIT(SAR, 7, 0, 0);   /* r0 = 0: unchanged */
    EMIT(SHLI, 7, 0, 31); /* 0x80000000, SF */
    EMIT(PUSHF, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[1], 0x00000010);
    ck_assert_uint_eq(c->r[2], 0x40000000);
    ck_assert_uint_eq(c->r[3], 0xf8000001);
    ck_assert_uint_eq(c->r[6], 0);
    ck_assert_uint_eq(c->r[7], 0x80000000);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 4) & (CPU_FL_ZF | CPU_FL_SF), CPU_FL_ZF);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 8) & (CPU_FL_ZF | CPU_FL_SF), CPU_FL_SF);
}
END_TEST

START_TEST(test_mul_low_bits) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = 0x10000;
    c->r[2] = 0x10000;
    c->r[3] = 0xffffffff; /* -1 * 7 */
    c->r[4] = 7;
    c->r[5] = 12345;
    c->r[6] = 6789;
    EMIT(MUL, 1, 2, 0); /* 2^32 -> 0, ZF */
    EMIT(PUSHF, 0, 0, 0);
    EMIT(MUL, 3, 4, 0); /* 0xfffffff9, SF */
    EMIT(PUSHF, 0, 0, 0);
    EMIT(MUL, 5, 6, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[1], 0);
    ck_assert_uint_eq(c->r[3], 0xfffffff9);
    ck_assert_uint_eq(c->r[5], 12345u * 6789u);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 4) & (CPU_FL_ZF | CPU_FL_SF), CPU_FL_ZF);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 8) & (CPU_FL_ZF | CPU_FL_SF), CPU_FL_SF);
}
END_TEST

START_TEST(test_div_rem_unsigned) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = 0xffffffff;
    c->r[2] = 2;
    c->r[3] = 0xffffffff;
    c->r[4] = 10;
    c->r[5] = 7;
    c->r[6] = 9;
    EMIT(DIV, 1, 2, 0); /* unsigned: 0x7fffffff, not 0 */
    EMIT(REM, 3, 4, 0); /* 4294967295 % 10 = 5 */
    EMIT(DIV, 5, 6, 0); /* 0 */
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[1], 0x7fffffff);
    ck_assert_uint_eq(c->r[3], 5);
    ck_assert_uint_eq(c->r[5], 0);
}
END_TEST

START_TEST(test_div_by_zero_de) {
    static const int ops[] = {OP_DIV, OP_REM};
    for (int i = 0; i < 2; i++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        c->r[1] = 100;
        c->r[2] = 0;
        EMIT(NOP, 0, 0, 0);
        uint32_t fault = emit(c, &at, ops[i], 1, 2, 0);
        EMIT(HLT, 0, 0, 0);
        expect_trap(c, 100, VEC_DE);
        trap_frame f = top_frame(c);
        ck_assert_uint_eq(f.err, 0);
        ck_assert_uint_eq(f.pc, fault); /* a fault: returns to the divide */
        ck_assert_uint_eq(f.cpl, 0);
        ck_assert_uint_eq(f.sp, KSTACK0);
        ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0 - 20);
        ck_assert_uint_eq(c->r[1], 100); /* destination untouched */
        cpu_free(c);
    }
}
END_TEST

/* ==== memory, stack, control transfer ==================================================== */

START_TEST(test_ld_st_word_and_byte) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = DATA + 0x100;
    c->r[2] = 0xa1b2c3d4;
    c->r[3] = 0x1234ff80;
    EMIT(ST, 1, 2, -4); /* mem32[DATA+0xfc] */
    EMIT(LD, 4, 1, -4);
    EMIT(STB, 1, 3, 8);     /* one byte 0x80 at DATA+0x108 */
    EMIT(LDB, 5, 1, 8);     /* zero-extended: 0x80 */
    EMIT(LDB, 6, 1, -2);    /* byte 2 of the word: 0xb2 */
    EMIT(LD, 7, 1, 8);      /* only the low byte was written */
    c->r[8] = DATA + 0xffe; /* a word straddling two pages */
    EMIT(ST, 8, 2, 0);
    EMIT(LD, 9, 8, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(peek32(c, DATA + 0xfc), 0xa1b2c3d4);
    ck_assert_uint_eq(c->r[4], 0xa1b2c3d4);
    ck_assert_uint_eq(c->r[5], 0x80);
    ck_assert_uint_eq(c->r[6], 0xb2);
    ck_assert_uint_eq(c->r[7], 0x80);
    ck_assert_uint_eq(c->r[9], 0xa1b2c3d4);
    uint8_t b[4];
    cpu_phys_read(c, DATA + 0xffe, b, 4);
    ck_assert_uint_eq(b[0], 0xd4);
    ck_assert_uint_eq(b[3], 0xa1);
}
END_TEST

START_TEST(test_push_pop) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = 0x11111111;
    c->r[2] = 0x22222222;
    EMIT(PUSH, 1, 0, 0);
    EMIT(PUSH, 2, 0, 0);
    EMIT(MOV, 5, CPU_REG_SP, 0);
    EMIT(POP, 3, 0, 0);
    EMIT(POP, 4, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[5], KSTACK0 - 8);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 4), 0x11111111);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 8), 0x22222222);
    ck_assert_uint_eq(c->r[3], 0x22222222);
    ck_assert_uint_eq(c->r[4], 0x11111111);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0);
}
END_TEST

START_TEST(test_call_ret_callr_jmpr) {
    cpu_t *c = C;
    uint32_t at = SUBR; /* subroutine: r1 += 1; saves its return address in r9 */
    EMIT(ADDI, 1, 0, 1);
    EMIT(LD, 9, CPU_REG_SP, 0);
    EMIT(RET, 0, 0, 0);
    at = CODE;
    uint32_t call = EMIT(CALL, 0, 0, SUBR);
    uint32_t after_call = at;
    EMIT(MOV, 10, 9, 0);
    EMIT(LI, 2, 0, SUBR);
    uint32_t callr = EMIT(CALLR, 2, 0, 0);
    uint32_t after_callr = at;
    EMIT(LI, 3, 0, CODE + 0x100);
    EMIT(JMPR, 3, 0, 0);
    EMIT(LI, 1, 0, 999); /* skipped */
    at = CODE + 0x100;
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(after_call, call + 8);
    ck_assert_uint_eq(c->r[10], after_call); /* call pushed the next instruction */
    ck_assert_uint_eq(c->r[9], after_callr); /* so did callr */
    ck_assert_uint_eq(after_callr, callr + 4);
    ck_assert_uint_eq(c->r[1], 2);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0);
}
END_TEST

START_TEST(test_li_32bit_immediates) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(LI, 1, 0, (int32_t)0xdeadbeef);
    EMIT(LI, 2, 0, -1);
    EMIT(LI, 3, 0, (int32_t)0x80000000);
    EMIT(LI, 4, 0, 0x12345678);
    EMIT(LI, 14, 0, 0x00010000); /* beyond 16 bits */
    uint32_t end = EMIT(HLT, 0, 0, 0);
    ck_assert_uint_eq(end, CODE + 5 * 8);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[1], 0xdeadbeef);
    ck_assert_uint_eq(c->r[2], 0xffffffff);
    ck_assert_uint_eq(c->r[3], 0x80000000);
    ck_assert_uint_eq(c->r[4], 0x12345678);
    ck_assert_uint_eq(c->r[14], 0x10000);
    ck_assert_uint_eq(c->steps, 6);
}
END_TEST

/* li at 0x1ffc: its immediate is the first word of the next page. */
START_TEST(test_insn_straddling_page) {
    cpu_t *c = C;
    uint32_t at = CODE + 0xffc;
    c->pc = at;
    EMIT(LI, 1, 0, 0x12345678);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    ck_assert_uint_eq(end, CODE + 0x1004);
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(c->r[1], 0x12345678);
    /* the host rewrites the immediate on the second page: the next run sees it */
    poke32(c, CODE + 0x1000, 0xcafef00d);
    restart(c, CODE + 0xffc);
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(c->r[1], 0xcafef00d);
}
END_TEST

/* Unaligned pc in a page the loop is not executing from: decoded from the bytes at pc. */
START_TEST(test_unaligned_pc_other_page) {
    cpu_t *c = C;
    uint32_t at = CODE + 0x1000 + 2;
    EMIT(ADDI, 1, 0, 7);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    at = CODE;
    EMIT(JMP, 0, 0, (int32_t)(CODE + 0x1002));
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(end, CODE + 0x1006);
    ck_assert_uint_eq(c->r[1], 7);
}
END_TEST

/* Unaligned pc in the very page being executed: must also decode the bytes at
 * pc, not the aligned word below it (here 0x0000xxxx, an invalid opcode). */
START_TEST(test_unaligned_pc_same_page) {
    cpu_t *c = C;
    uint32_t at = CODE + 0x100 + 2;
    EMIT(ADDI, 1, 0, 7);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    at = CODE;
    EMIT(JMP, 0, 0, (int32_t)(CODE + 0x102));
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(c->r[1], 7);
}
END_TEST

START_TEST(test_invalid_opcode_ud) {
    static const uint32_t words[] = {0x00000000, 0xdeadbeff, 0x0000004f};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        EMIT(NOP, 0, 0, 0);
        poke32(c, CODE + 4, words[i]);
        expect_trap(c, 10, VEC_UD);
        trap_frame f = top_frame(c);
        ck_assert_uint_eq(f.pc, CODE + 4);
        ck_assert_uint_eq(f.err, 0);
        ck_assert_uint_eq(c->steps, 3); /* nop, the bad word, the stub's hlt */
        cpu_free(c);
    }
}
END_TEST

/* ==== trap delivery ====================================================================== */

START_TEST(test_trap_frame_cpl0) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_flags(c, CPU_FL_IF);
    EMIT(LI, 1, 0, 0x7fffffff);
    EMIT(ADDI, 1, 0, 1); /* OF and SF */
    uint32_t sc = EMIT(SYSCALL, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    expect_trap(c, 10, VEC_SYSCALL);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0 - 20); /* same stack at CPL 0 */
    ck_assert_uint_eq(f.err, 0);
    ck_assert_uint_eq(f.pc, sc + 4); /* syscall returns to the next instruction */
    ck_assert_uint_eq(f.flags, CPU_FL_IF | CPU_FL_OF | CPU_FL_SF);
    ck_assert_uint_eq(f.cpl, 0);
    ck_assert_uint_eq(f.sp, KSTACK0);
    ck_assert_uint_eq(c->cpl, 0);
    ck_assert_uint_eq(flags_of(c) & CPU_FL_IF, 0);
}
END_TEST

START_TEST(test_trap_from_cpl3_switches_stack) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    cpu_set_flags(c, CPU_FL_IF);
    c->r[CPU_REG_SP] = USTACK;
    EMIT(LI, 1, 0, -1);
    EMIT(ADDI, 1, 0, 1); /* ZF and CF */
    uint32_t sc = EMIT(SYSCALL, 0, 0, 0);
    expect_trap(c, 10, VEC_SYSCALL);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK - 20);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.err, 0);
    ck_assert_uint_eq(f.pc, sc + 4);
    ck_assert_uint_eq(f.flags & 0xffffcfffu, CPU_FL_IF | CPU_FL_ZF | CPU_FL_CF);
    ck_assert_uint_eq((f.flags >> CPU_FL_CPL_SHIFT) & 3, 3);
    ck_assert_uint_eq(f.cpl, 3);
    ck_assert_uint_eq(f.sp, USTACK);
    ck_assert_uint_eq(c->cpl, 0);
    ck_assert_uint_eq(flags_of(c) & CPU_FL_IF, 0);
    for (uint32_t a = USTACK - 32; a < USTACK; a += 4)
        ck_assert_uint_eq(peek32(c, a), 0); /* user stack untouched */
}
END_TEST

START_TEST(test_trap_from_cpl1_switches_stack) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 1);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t cli = EMIT(CLI, 0, 0, 0);
    expect_trap(c, 10, VEC_GP);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK - 20);
    ck_assert_uint_eq(f.pc, cli);
    ck_assert_uint_eq(f.cpl, 1);
    ck_assert_uint_eq((f.flags >> CPU_FL_CPL_SHIFT) & 3, 1);
    ck_assert_uint_eq(f.sp, USTACK);
}
END_TEST

/* iret pops a host-built frame: pc, FLAGS (IF included), CPL and sp. */
START_TEST(test_iret_restores_everything) {
    cpu_t *c = C;
    uint32_t at = CODE;
    uint32_t fr[5] = {0xdead, CODE + 0x100, CPU_FL_IF | CPU_FL_CF | CPU_FL_ZF | CPU_FL_OF, 3,
                      USTACK - 8};
    cpu_phys_write(c, KSTACK0 - 20, fr, sizeof fr);
    c->r[CPU_REG_SP] = KSTACK0 - 20;
    EMIT(IRET, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->pc, CODE + 0x100);
    ck_assert_uint_eq(c->cpl, 3);
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK - 8);
    ck_assert_uint_eq(flags_of(c),
                      CPU_FL_IF | CPU_FL_CF | CPU_FL_ZF | CPU_FL_OF | (3u << CPU_FL_CPL_SHIFT));
    /* and back to CPL 0 with IF clear */
    uint32_t fr2[5] = {0, CODE + 0x200, CPU_FL_SF, 0, KSTACK0 - 100};
    cpu_phys_write(c, KSTACK0 - 40, fr2, sizeof fr2);
    cpu_set_cpl(c, 0);
    c->r[CPU_REG_SP] = KSTACK0 - 40;
    c->pc = CODE;
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->pc, CODE + 0x200);
    ck_assert_uint_eq(c->cpl, 0);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0 - 100);
    ck_assert_uint_eq(flags_of(c), CPU_FL_SF);
}
END_TEST

/* A syscall handler irets back to CPL 3; user code sees CPL 3 again. */
START_TEST(test_syscall_iret_round_trip_cpl3) {
    cpu_t *c = C;
    uint32_t at = SUBR;
    EMIT(ADDI, 7, 0, 1);
    EMIT(IRET, 0, 0, 0);
    set_vector(c, VEC_SYSCALL, SUBR);
    at = CODE;
    cpu_set_cpl(c, 3);
    cpu_set_flags(c, CPU_FL_IF);
    c->r[CPU_REG_SP] = USTACK;
    EMIT(SYSCALL, 0, 0, 0);
    EMIT(SMSW, 3, 0, 0);  /* x86: runs at CPL 3, shows the CPL */
    EMIT(PUSHF, 0, 0, 0); /* onto the user stack */
    uint32_t brk = EMIT(BRK, 0, 0, 0);
    expect_trap(c, 100, VEC_BP);
    ck_assert_uint_eq(c->r[7], 1);
    ck_assert_uint_eq(c->r[3] & CPU_ST_CPL, 3);
    uint32_t pushed = peek32(c, USTACK - 4);
    ck_assert_uint_eq((pushed >> CPU_FL_CPL_SHIFT) & 3, 3);
    ck_assert_uint_eq(pushed & CPU_FL_IF, CPU_FL_IF);
    trap_frame f = top_frame(c); /* brk's frame, again on the kernel stack */
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK - 20);
    ck_assert_uint_eq(f.pc, brk + 4);
    ck_assert_uint_eq(f.cpl, 3);
    ck_assert_uint_eq(f.sp, USTACK - 4);
    ck_assert_uint_eq(f.flags & CPU_FL_IF, CPU_FL_IF);
}
END_TEST

/* x86 keeps the arithmetic flags on trap entry (only IF/TF change): a
 * handler's pushf must show the interrupted code's flags, not stale bits. */
START_TEST(test_handler_sees_interrupted_arith_flags) {
    cpu_t *c = C;
    uint32_t at = SUBR;
    EMIT(PUSHF, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    set_vector(c, VEC_SYSCALL, SUBR);
    at = CODE;
    c->r[1] = CPU_FL_ZF | CPU_FL_CF;
    c->r[2] = 5;
    EMIT(PUSH, 1, 0, 0);
    EMIT(POPF, 0, 0, 0); /* ZF CF from memory */
    EMIT(ADDI, 2, 0, 1); /* 6: ZF CF now clear */
    EMIT(SYSCALL, 0, 0, 0);
    expect_halt_at(c, 100, SUBR + 4);
    trap_frame f = frame_at(c, c->r[CPU_REG_SP] + 4);
    ck_assert_uint_eq(f.flags & CPU_FL_ARITH, 0); /* the frame is right */
    ck_assert_uint_eq(peek32(c, c->r[CPU_REG_SP]) & CPU_FL_ARITH,
                      0); /* and so must the handler be */
}
END_TEST

START_TEST(test_brk_and_int3) {
    cpu_t *c = C;
    uint32_t at = CODE;
    uint32_t b = EMIT(BRK, 0, 0, 0);
    expect_trap(c, 10, VEC_BP);
    ck_assert_uint_eq(top_frame(c).pc, b + 4);
    /* int 3 is allowed from CPL 3 */
    cpu_t *u = new_machine();
    at = CODE;
    cpu_set_cpl(u, 3);
    u->r[CPU_REG_SP] = USTACK;
    uint32_t i3 = emit(u, &at, OP_INT, 0, 0, 3);
    expect_trap(u, 10, VEC_BP);
    ck_assert_uint_eq(top_frame(u).pc, i3 + 4);
    ck_assert_uint_eq(top_frame(u).cpl, 3);
    cpu_free(u);
}
END_TEST

START_TEST(test_int_any_vector_at_cpl0) {
    cpu_t *c = C;
    uint32_t at = CODE;
    uint32_t i = EMIT(INT, 0, 0, 0x20);
    expect_trap(c, 10, 0x20);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.pc, i + 4);
    ck_assert_uint_eq(f.err, 0);
}
END_TEST

START_TEST(test_int_0x80_from_cpl3_allowed) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t i = EMIT(INT, 0, 0, 0x80);
    expect_trap(c, 10, 0x80);
    ck_assert_uint_eq(top_frame(c).pc, i + 4);
    ck_assert_uint_eq(top_frame(c).cpl, 3);
}
END_TEST

START_TEST(test_int_kernel_vector_from_cpl3_gp) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t i = EMIT(INT, 0, 0, 0x20);
    cpu_intercept(c, VEC_GP, 1);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.vector, VEC_GP);
    ck_assert_int_eq(c->exit.cause, CAUSE_INT_DENIED);
    ck_assert_uint_eq(c->exit.pc, i);
    ck_assert_uint_eq(c->pc, i); /* a fault: the int did not happen */
    cpu_intercept(c, VEC_GP, 0);
    cpu_deliver(c, c->exit.vector, c->exit.cause, c->exit.err, c->exit.addr);
    expect_trap(c, 10, VEC_GP);
    ck_assert_uint_eq(top_frame(c).pc, i);
    ck_assert_uint_eq(top_frame(c).cpl, 3);
}
END_TEST

START_TEST(test_missing_handler_double_fault) {
    cpu_t *c = C;
    set_vector(c, VEC_UD, 0);
    poke32(c, CODE, 0); /* #UD */
    expect_trap(c, 10, VEC_DF);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.err, 0);
    ck_assert_uint_eq(f.pc, CODE);
    ck_assert_uint_eq(f.sp, KSTACK0);
}
END_TEST

START_TEST(test_missing_df_shutdown) {
    cpu_t *c = C;
    cpu_trace t;
    evbuf b;
    trace_attach(c, &t, &b, 0);
    set_vector(c, VEC_UD, 0);
    set_vector(c, VEC_DF, 0);
    poke32(c, CODE, 0);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_SHUTDOWN);
    ck_assert_int_eq(c->exit.reason, CPU_EXIT_SHUTDOWN);
    ck_assert_uint_eq(c->dead, 1);
    uint64_t steps = c->steps;
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_SHUTDOWN);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_SHUTDOWN);
    ck_assert_uint_eq(c->steps, steps);
    cpu_trace_flush(&t);
    const cpu_event *e = find_kind(&b, EV_SHUTDOWN, 0);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(e->pc, CODE);
    trace_detach(c, &t, &b);
}
END_TEST

/* iret whose frame cannot be read (sp outside memory) must raise #MC, not
 * deliver an out-of-range vector. */
START_TEST(test_iret_unreadable_frame_mc) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[CPU_REG_SP] = 0xfffffff0;
    uint32_t ir = EMIT(IRET, 0, 0, 0);
    cpu_intercept(c, VEC_MC, 1); /* no stack to deliver it on: look at the exit */
    int rc = cpu_run(c, 10);
    ck_assert_msg(rc == CPU_EXIT_TRAP, "iret with sp outside memory: '%s'", cpu_exit_name(rc));
    ck_assert_int_eq(c->exit.vector, VEC_MC);
    ck_assert_int_eq(c->exit.cause, CAUSE_BUS);
    ck_assert_uint_eq(c->exit.pc, ir);
    ck_assert_uint_eq(c->pc, ir);
    ck_assert_uint_eq(c->r[CPU_REG_SP], 0xfffffff0);
}
END_TEST

/* ==== the configurable privileged-instruction set ======================================== */

static int32_t imm_for(int op) {
    int fmt = cpu_isa[op].fmt;
    return fmt == F_PIN || fmt == F_POUT ? PORT_CONSOLE : 0;
}

/* One instruction `op r1, r2` at CODE, run at `cpl` with #GP and #UD intercepted. */
static int run_single(cpu_t *c, int op, int cpl) {
    uint32_t at = CODE;
    emit(c, &at, op, 1, 2, imm_for(op));
    emit(c, &at, OP_NOP, 0, 0, 0);
    c->pc = CODE;
    cpu_set_cpl(c, cpl);
    if (cpl) c->r[CPU_REG_SP] = USTACK;
    cpu_intercept(c, VEC_GP, 1);
    cpu_intercept(c, VEC_UD, 1);
    return cpu_run(c, 1);
}

static void expect_priv_gp(cpu_t *c, int op, int rc) {
    const char *m = cpu_isa[op].mnem;
    ck_assert_msg(rc == CPU_EXIT_TRAP && c->exit.vector == VEC_GP, "%s at CPL 3: '%s' vector %d", m,
                  cpu_exit_name(rc), c->exit.vector);
    ck_assert_msg(c->exit.cause == CAUSE_PRIV, "%s: cause %d", m, c->exit.cause);
    ck_assert_msg(c->exit.insn.op == op, "%s: exit.insn.op %d", m, c->exit.insn.op);
    ck_assert_uint_eq(c->exit.pc, CODE);
    ck_assert_uint_eq(c->exit.next_pc, CODE + 4);
    ck_assert_uint_eq(c->exit.word[0], encode1(op, 1, 2, imm_for(op)));
    ck_assert_uint_eq(c->pc, CODE);
    ck_assert_uint_eq(c->cpl, 3);
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK);
}

START_TEST(test_strict_every_configurable_traps_at_cpl3) {
    int n = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!cpu_op_configurable(op)) continue;
        cpu_t *c = new_machine();
        ck_assert_int_eq(cpu_policy_preset(c, "strict"), 0);
        c->vmx_on = 1; /* so that VMX instructions reach the privilege check */
        cpu_set_flags(c, CPU_FL_IF);
        expect_priv_gp(c, op, run_single(c, op, 3));
        ck_assert_uint_eq(flags_of(c) & CPU_FL_IF, CPU_FL_IF);
        size_t len = 1;
        cpu_console(c, &len);
        ck_assert_uint_eq(len, 0);
        cpu_free(c);
        n++;
    }
    ck_assert_int_ge(n, 21);
}
END_TEST

START_TEST(test_x86_trapping_set) {
    static const int traps[] = {OP_CLI,    OP_STI,      OP_HLT,      OP_IN,     OP_OUT,
                                OP_WRCR,   OP_RDCR,     OP_INVLPG,   OP_IRET,   OP_VMXON,
                                OP_VMXOFF, OP_VMLAUNCH, OP_VMRESUME, OP_VMREAD, OP_VMWRITE};
    static const int runs[] = {OP_PUSHF, OP_POPF, OP_SIDT, OP_SMSW, OP_RDTSC, OP_CPUID};
    for (size_t i = 0; i < sizeof traps / sizeof traps[0]; i++) {
        cpu_t *c = new_machine();
        c->vmx_on = 1;
        expect_priv_gp(c, traps[i], run_single(c, traps[i], 3));
        cpu_free(c);
    }
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        cpu_t *c = new_machine();
        int rc = run_single(c, runs[i], 3);
        ck_assert_msg(rc == CPU_EXIT_BUDGET && c->pc == CODE + 4,
                      "%s at CPL 3 under x86: '%s' pc %#x", cpu_isa[runs[i]].mnem,
                      cpu_exit_name(rc), c->pc);
        cpu_free(c);
    }
}
END_TEST

/* x86 POPF at CPL 3: arithmetic flags restored, IF silently kept (Robin & Irvine). */
START_TEST(test_popf_cpl3_keeps_if) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    cpu_set_flags(c, CPU_FL_IF);
    c->r[1] = CPU_FL_CF | CPU_FL_ZF; /* IF = 0 in the popped value */
    c->r[2] = CPU_FL_IF | CPU_FL_SF;
    EMIT(PUSH, 1, 0, 0);
    EMIT(POPF, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 2), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(flags_of(c), CPU_FL_IF | CPU_FL_CF | CPU_FL_ZF | (3u << CPU_FL_CPL_SHIFT));
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK);
    /* and the other way: IF = 0 stays 0 */
    EMIT(PUSH, 2, 0, 0);
    EMIT(POPF, 0, 0, 0);
    cpu_set_flags(c, 0);
    ck_assert_int_eq(cpu_run(c, 2), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(flags_of(c), CPU_FL_SF | (3u << CPU_FL_CPL_SHIFT));
}
END_TEST

START_TEST(test_popf_cpl0_changes_if) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_flags(c, CPU_FL_IF);
    c->r[1] = CPU_FL_OF;
    EMIT(PUSH, 1, 0, 0);
    EMIT(POPF, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 2), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(flags_of(c), CPU_FL_OF);
}
END_TEST

START_TEST(test_popf_leak_clears_if) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_behaviour(c, OP_POPF, LEAK);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    cpu_set_flags(c, CPU_FL_IF);
    EMIT(PUSH, 0, 0, 0); /* r0 = 0 */
    EMIT(POPF, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 2), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(flags_of(c) & CPU_FL_IF, 0);
    ck_assert_uint_eq(c->pc, CODE + 8);
}
END_TEST

START_TEST(test_pushf_cpl3_reveals_cpl) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    cpu_set_flags(c, CPU_FL_IF | CPU_FL_CF);
    EMIT(PUSHF, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK - 4);
    ck_assert_uint_eq(peek32(c, USTACK - 4), CPU_FL_IF | CPU_FL_CF | (3u << CPU_FL_CPL_SHIFT));
}
END_TEST

START_TEST(test_smsw_reveals_cpl) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    cpu_set_cr(c, CR_STATUS, CPU_ST_TSD | CPU_ST_CPL); /* the CPL bits are read-only */
    EMIT(SMSW, 1, 0, 0);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->r[1], CPU_ST_TSD | 3);
    ck_assert_uint_eq(cpu_get_cr(c, CR_STATUS), CPU_ST_TSD | 3);
    cpu_set_cpl(c, 2);
    ck_assert_uint_eq(cpu_get_cr(c, CR_STATUS), CPU_ST_TSD | 2);
}
END_TEST

START_TEST(test_sidt_returns_real_vbr) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    EMIT(SIDT, 4, 0, 0);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->r[4], VT);
}
END_TEST

START_TEST(test_rdtsc_cycles_plus_offset) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    EMIT(NOP, 0, 0, 0);
    EMIT(RDTSC, 1, 2, 0);
    c->tsc_offset = (int64_t)0x100000005ll;
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    uint64_t before = c->cycles; /* the counter as rdtsc starts */
    ck_assert_uint_eq(before, c->cost[OP_NOP]);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    uint64_t t = before + 0x100000005ull;
    ck_assert_uint_eq(c->cycles, before + c->cost[OP_RDTSC]);
    ck_assert_uint_eq(c->r[1], (uint32_t)t);
    ck_assert_uint_eq(c->r[2], (uint32_t)(t >> 32));
    /* a negative offset, and a counter beyond 32 bits */
    c->tsc_offset = -3;
    c->cycles = 0x200000001ull;
    c->pc = CODE + 4;
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->r[1], 0xfffffffeu);
    ck_assert_uint_eq(c->r[2], 1);
}
END_TEST

START_TEST(test_rdtsc_tsd_traps_at_cpl3_even_x86) {
    cpu_t *c = C;
    ck_assert_str_eq(cpu_policy_describe(c), "x86");
    cpu_set_cr(c, CR_STATUS, CPU_ST_TSD);
    expect_priv_gp(c, OP_RDTSC, run_single(c, OP_RDTSC, 3));
    /* at CPL 0 the TSD bit does not matter */
    cpu_t *k = new_machine();
    cpu_set_cr(k, CR_STATUS, CPU_ST_TSD);
    k->cycles = 0x123456789ull;
    ck_assert_int_eq(run_single(k, OP_RDTSC, 0), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(k->r[1], 0x23456789u);
    ck_assert_uint_eq(k->r[2], 1);
    cpu_free(k);
}
END_TEST

START_TEST(test_cpuid_leaves) {
    static const uint32_t leaf[] = {0, 1, 2, 77};
    uint32_t want[] = {0x42414c56u /* "VLAB" */, 0x23, MEM_SIZE / 1024, 0};
    for (int i = 0; i < 4; i++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        cpu_set_cpl(c, 3); /* x86: cpuid never traps */
        c->r[2] = leaf[i];
        EMIT(CPUID, 1, 2, 0);
        ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
        ck_assert_msg(c->r[1] == want[i], "leaf %u: %#x", leaf[i], c->r[1]);
        cpu_free(c);
    }
}
END_TEST

/* Under "strict", at CPL 0, every configurable instruction does its job. */
START_TEST(test_cpl0_every_configurable_runs) {
    int n = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!cpu_op_configurable(op)) continue;
        cpu_t *c = new_machine();
        const char *m = cpu_isa[op].mnem;
        cpu_policy_preset(c, "strict");
        int is_vmx = op >= OP_VMXON && op <= OP_VMWRITE;
        c->vmx_on = is_vmx && op != OP_VMXON;
        cpu_set_flags(c, op == OP_STI ? 0 : CPU_FL_IF);
        c->r[1] = 0x55;
        c->r[2] = op == OP_WRCR ? 0x1234 : op == OP_CPUID ? 0 : 0x41;
        cpu_set_cr(c, CR_FADDR, 0xfadd);
        if (op == OP_IRET) {
            uint32_t fr[5] = {0, CODE + 0x40, CPU_FL_CF, 0, KSTACK0};
            cpu_phys_write(c, KSTACK0 - 20, fr, sizeof fr);
            c->r[CPU_REG_SP] = KSTACK0 - 20;
        }
        if (op == OP_POPF) poke32(c, KSTACK0, CPU_FL_ZF);
        if (op == OP_RDTSC) c->cycles = 0x123456789ull;
        int rc = run_single(c, op, 0);
        ck_assert_msg(rc != CPU_EXIT_TRAP, "%s at CPL 0 trapped to vector %d", m, c->exit.vector);
        int ok = 0;
        switch (op) {
        case OP_CLI: ok = !(flags_of(c) & CPU_FL_IF); break;
        case OP_STI: ok = !!(flags_of(c) & CPU_FL_IF); break;
        case OP_PUSHF:
            ok = peek32(c, KSTACK0 - 4) == CPU_FL_IF && c->r[CPU_REG_SP] == KSTACK0 - 4;
            break;
        case OP_POPF: ok = flags_of(c) == CPU_FL_ZF && c->r[CPU_REG_SP] == KSTACK0 + 4; break;
        case OP_HLT:
            ok = rc == CPU_EXIT_HALT && c->exit.pc == CODE;
            break; /* nothing can wake it */
        case OP_IRET: ok = c->pc == CODE + 0x40 && flags_of(c) == CPU_FL_CF; break;
        case OP_IN: ok = c->r[1] == 0; break; /* the console reads 0 */
        case OP_OUT: {
            size_t len = 0;
            const char *s = cpu_console(c, &len);
            ok = len == 1 && s[0] == 0x41;
            break;
        }
        case OP_WRCR: ok = cpu_get_cr(c, CR_VBR) == 0x1234; break; /* wrcr vbr, r2 */
        case OP_RDCR: ok = c->r[1] == 0xfadd; break;               /* rdcr r1, faddr */
        case OP_INVLPG: ok = c->pc == CODE + 4; break;
        case OP_SIDT: ok = c->r[1] == VT; break;
        case OP_SMSW: ok = (c->r[1] & 3) == 0; break;
        case OP_RDTSC: ok = c->r[1] == 0x23456789u && c->r[2] == 1; break;
        case OP_CPUID: ok = c->r[1] == 0x42414c56u; break;
        case OP_VMXON: ok = c->vmx_on == 1; break;
        case OP_VMXOFF: ok = c->vmx_on == 0; break;
        case OP_VMLAUNCH:
        case OP_VMRESUME:
        case OP_VMREAD:
        case OP_VMWRITE: ok = rc == CPU_EXIT_VMX && c->exit.insn.op == op; break;
        default: ck_abort_msg("no expectation for %s", m);
        }
        ck_assert_msg(ok, "%s at CPL 0 did not do its job (rc '%s', pc %#x)", m, cpu_exit_name(rc),
                      c->pc);
        if (op != OP_HLT && op != OP_IRET && !(op >= OP_VMLAUNCH && op <= OP_VMWRITE))
            ck_assert_msg(c->pc == CODE + 4, "%s: pc %#x", m, c->pc);
        cpu_free(c);
        n++;
    }
    ck_assert_int_ge(n, 21);
}
END_TEST

START_TEST(test_policy_describe) {
    cpu_t *c = C;
    ck_assert_str_eq(cpu_policy_describe(c), "x86");
    ck_assert(cpu_policy_matches(c, "x86"));
    ck_assert(!cpu_policy_matches(c, "strict"));
    ck_assert_int_eq(cpu_policy_preset(c, "strict"), 0);
    ck_assert_str_eq(cpu_policy_describe(c), "strict");
    ck_assert_int_eq(cpu_policy_preset(c, "bogus"), -1);
    ck_assert_str_eq(cpu_policy_describe(c), "strict");
    cpu_set_behaviour(c, OP_ADD, LEAK); /* not configurable: ignored */
    cpu_set_behaviour(c, OP_CLI, NA);   /* not a behaviour: ignored */
    ck_assert_str_eq(cpu_policy_describe(c), "strict");
    cpu_set_behaviour(c, OP_POPF, SILENT);
    ck_assert_str_eq(cpu_policy_describe(c), "custom");
    ck_assert_int_eq(c->behaviour[OP_POPF], SILENT);
    cpu_policy_preset(c, "x86");
    ck_assert_str_eq(cpu_policy_describe(c), "x86");
    ck_assert_int_eq(c->behaviour[OP_POPF], SILENT);
    ck_assert_int_eq(c->behaviour[OP_CLI], TRAP);
    ck_assert_int_eq(c->behaviour[OP_SMSW], LEAK);
}
END_TEST

/* x86 at CPL 3: each sensitive instruction that runs records EV_SENSITIVE. */
START_TEST(test_sensitive_events_at_cpl3) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_trace t;
    evbuf b;
    trace_attach(c, &t, &b, 0);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    static const int ops[] = {OP_PUSHF, OP_POPF, OP_SMSW, OP_SIDT, OP_RDTSC, OP_CPUID};
    static const int beh[] = {LEAK, SILENT, LEAK, LEAK, LEAK, LEAK};
    for (int i = 0; i < 6; i++)
        emit(c, &at, ops[i], 1, 2, 0);
    EMIT(BRK, 0, 0, 0);
    expect_trap(c, 20, VEC_BP);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(count_kind(&b, EV_SENSITIVE), 6);
    for (int i = 0; i < 6; i++) {
        const cpu_event *e = find_kind(&b, EV_SENSITIVE, (size_t)i);
        ck_assert_int_eq(e->a, beh[i]);
        ck_assert_int_eq(e->b, ops[i]);
        ck_assert_uint_eq(e->pc, CODE + 4u * (uint32_t)i);
        ck_assert_uint_eq(e->x, encode1(ops[i], 1, 2, 0));
        ck_assert_uint_eq(e->mode & EV_MODE_CPL, 3);
    }
    trace_detach(c, &t, &b);
}
END_TEST

START_TEST(test_no_sensitive_events_at_cpl0_or_strict) {
    for (int strict = 0; strict < 2; strict++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        cpu_trace t;
        evbuf b;
        trace_attach(c, &t, &b, 0);
        if (strict) {
            cpu_policy_preset(c, "strict");
            cpu_set_cpl(c, 3);
            c->r[CPU_REG_SP] = USTACK;
        }
        EMIT(SMSW, 1, 0, 0);
        EMIT(PUSHF, 0, 0, 0);
        EMIT(HLT, 0, 0, 0);
        cpu_run(c, 20);
        cpu_trace_flush(&t);
        ck_assert_uint_eq(count_kind(&b, EV_SENSITIVE), 0);
        if (strict) {
            const cpu_event *e = find_kind(&b, EV_TRAP, 0);
            ck_assert_ptr_nonnull(e);
            ck_assert_int_eq(e->a, VEC_GP);
            ck_assert_int_eq(e->b, CAUSE_PRIV);
            ck_assert_uint_eq(e->pc, CODE);
        }
        trace_detach(c, &t, &b);
        cpu_free(c);
    }
}
END_TEST

/* ==== interception ======================================================================= */

static uint32_t intercept_program(cpu_t *c) {
    uint32_t at = CODE;
    cpu_set_cpl(c, 3);
    cpu_set_flags(c, CPU_FL_IF);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t cli = EMIT(CLI, 0, 0, 0);
    EMIT(LI, 1, 0, 42);
    EMIT(BRK, 0, 0, 0);
    cpu_intercept(c, VEC_GP, 1);
    return cli;
}

START_TEST(test_intercept_gp_fills_exit_pushes_nothing) {
    cpu_t *c = C;
    uint32_t cli = intercept_program(c);
    ck_assert(cpu_intercepted(c, VEC_GP));
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.reason, CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.vector, VEC_GP);
    ck_assert_int_eq(c->exit.cause, CAUSE_PRIV);
    ck_assert_uint_eq(c->exit.pc, cli);
    ck_assert_uint_eq(c->exit.next_pc, cli + 4);
    ck_assert_int_eq(c->exit.insn.op, OP_CLI);
    ck_assert_uint_eq(c->exit.word[0], encode1(OP_CLI, 0, 0, 0));
    ck_assert_uint_eq(c->pc, cli);
    ck_assert_uint_eq(c->cpl, 3);
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK);
    ck_assert_uint_eq(c->steps, 1);
    for (uint32_t a = KSTACK - 32; a < KSTACK; a += 4)
        ck_assert_uint_eq(peek32(c, a), 0);
    ck_assert_uint_eq(flags_of(c) & CPU_FL_IF, CPU_FL_IF);
}
END_TEST

START_TEST(test_intercept_then_deliver) {
    cpu_t *c = C;
    uint32_t cli = intercept_program(c);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_TRAP);
    cpu_deliver(c, c->exit.vector, c->exit.cause, c->exit.err, c->exit.addr);
    ck_assert_uint_eq(c->pc, stub(VEC_GP));
    ck_assert_uint_eq(c->cpl, 0);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK - 20);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.pc, cli);
    ck_assert_uint_eq(f.cpl, 3);
    ck_assert_uint_eq(f.sp, USTACK);
    expect_trap(c, 10, VEC_GP);
}
END_TEST

START_TEST(test_intercept_then_skip) {
    cpu_t *c = C;
    intercept_program(c);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_TRAP);
    c->pc = c->exit.next_pc; /* the host emulates cli as a no-op */
    expect_trap(c, 100, VEC_BP);
    ck_assert_uint_eq(c->r[1], 42);
    ck_assert_uint_eq(top_frame(c).flags & CPU_FL_IF, CPU_FL_IF);
    ck_assert_uint_eq(top_frame(c).cpl, 3);
}
END_TEST

START_TEST(test_intercept_syscall_leaves_next_pc) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(NOP, 0, 0, 0);
    uint32_t sc = EMIT(SYSCALL, 0, 0, 0);
    cpu_intercept(c, VEC_SYSCALL, 1);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.vector, VEC_SYSCALL);
    ck_assert_int_eq(c->exit.cause, CAUSE_SOFT);
    ck_assert_uint_eq(c->exit.pc, sc);
    ck_assert_uint_eq(c->pc, sc + 4);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0);
    cpu_intercept(c, VEC_SYSCALL, 0);
    ck_assert(!cpu_intercepted(c, VEC_SYSCALL));
}
END_TEST

/* ==== paging ============================================================================= */

enum { NPAGES = MEM_SIZE / 4096, PAGE_USER = PTE_P | PTE_W | PTE_U };

static uint32_t pte_addr(uint32_t va) {
    return PT + (va >> 12) * 4;
}
static void set_pte(cpu_t *c, uint32_t va, uint32_t pte) {
    poke32(c, pte_addr(va), pte);
}
static uint32_t get_pte(cpu_t *c, uint32_t va) {
    return peek32(c, pte_addr(va));
}

/* Identity-map all of memory (P W U), without A/D bits; paging stays off. */
static void build_tables(cpu_t *c) {
    poke32(c, PD, PT | PTE_P | PTE_W | PTE_U);
    for (uint32_t i = 0; i < NPAGES; i++)
        set_pte(c, i << 12, (i << 12) | PAGE_USER);
}

static void paging_on(cpu_t *c) {
    cpu_set_cr(c, CR_PTBR, PD);
    cpu_set_cr(c, CR_STATUS, CPU_ST_PG);
}

START_TEST(test_paging_enabled_by_wrcr) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, DATA | PAGE_USER); /* va 0x5000 -> pa DATA */
    poke32(c, DATA + 8, 0xcafebabe);
    EMIT(LI, 1, 0, PD);
    EMIT(WRCR, CR_PTBR, 1, 0);
    EMIT(LI, 1, 0, (int32_t)CPU_ST_PG);
    EMIT(WRCR, CR_STATUS, 1, 0);
    EMIT(LI, 2, 0, 0x5000);
    EMIT(LD, 3, 2, 8);
    EMIT(RDCR, 4, CR_STATUS, 0);
    EMIT(RDCR, 5, CR_PTBR, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 0xcafebabe);
    ck_assert_uint_eq(c->r[4], CPU_ST_PG);
    ck_assert_uint_eq(c->r[5], PD);
    uint32_t pa = 0;
    ck_assert_int_eq(cpu_translate(c, 0x5008, 0, &pa), 0);
    ck_assert_uint_eq(pa, DATA + 8);
}
END_TEST

/* Run `insn` (built by the caller at CODE) and expect #PF with err and faddr. */
static void expect_pf(cpu_t *c, uint32_t fault_pc, uint32_t err, uint32_t faddr) {
    expect_trap(c, 100, VEC_PF);
    trap_frame f = top_frame(c);
    ck_assert_msg(f.err == err, "#PF error code %#x, want %#x", f.err, err);
    ck_assert_uint_eq(f.pc, fault_pc);
    ck_assert_uint_eq(cpu_get_cr(c, CR_FADDR), faddr);
}

START_TEST(test_pf_not_present_read) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0);
    paging_on(c);
    c->r[2] = 0x5000;
    uint32_t ld = EMIT(LD, 3, 2, 0x24);
    expect_pf(c, ld, 0, 0x5024);
    ck_assert_uint_eq(top_frame(c).cpl, 0);
}
END_TEST

START_TEST(test_pf_not_present_write_user) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    c->r[2] = 0x5000;
    uint32_t st = EMIT(ST, 2, 3, 0x10);
    expect_pf(c, st, PF_WRITE | PF_USER, 0x5010);
    ck_assert_uint_eq(top_frame(c).cpl, 3);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK - 20);
}
END_TEST

START_TEST(test_pf_not_present_fetch) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0);
    paging_on(c);
    EMIT(JMP, 0, 0, 0x5000);
    expect_pf(c, 0x5000, PF_FETCH, 0x5000);
}
END_TEST

START_TEST(test_pf_user_reads_supervisor_page) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, DATA, DATA | PTE_P | PTE_W);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    c->r[2] = DATA;
    uint32_t ld = EMIT(LD, 3, 2, 4);
    expect_pf(c, ld, PF_PRESENT | PF_USER, DATA + 4);
}
END_TEST

START_TEST(test_pf_user_fetches_supervisor_page) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0x5000 | PTE_P | PTE_W);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    EMIT(JMP, 0, 0, 0x5000);
    expect_pf(c, 0x5000, PF_PRESENT | PF_USER | PF_FETCH, 0x5000);
}
END_TEST

/* The U bit must be set in both the PDE and the PTE. */
START_TEST(test_pf_pde_without_user_bit) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    poke32(c, PD, PT | PTE_P | PTE_W);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    EMIT(NOP, 0, 0, 0);
    expect_pf(c, CODE, PF_PRESENT | PF_USER | PF_FETCH, CODE);
}
END_TEST

START_TEST(test_pf_user_writes_readonly) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, DATA, DATA | PTE_P | PTE_U);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    c->r[2] = DATA;
    c->r[3] = 0x77;
    EMIT(LD, 4, 2, 0); /* reading is fine */
    uint32_t st = EMIT(STB, 2, 3, 1);
    expect_pf(c, st, PF_PRESENT | PF_WRITE | PF_USER, DATA + 1);
    ck_assert_uint_eq(peek32(c, DATA), 0);
}
END_TEST

/* CR0.WP is always on: supervisor writes honour W too. */
START_TEST(test_pf_supervisor_writes_readonly) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, DATA, DATA | PTE_P);
    paging_on(c);
    c->r[2] = DATA;
    uint32_t st = EMIT(ST, 2, 3, 8);
    expect_pf(c, st, PF_PRESENT | PF_WRITE, DATA + 8);
}
END_TEST

START_TEST(test_accessed_dirty_bits) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    poke32(c, PD, PT | PTE_P | PTE_W | PTE_U); /* no A yet */
    paging_on(c);
    c->r[2] = 0x5000;
    c->r[3] = 0x7000;
    EMIT(LD, 4, 2, 0);
    EMIT(ST, 3, 4, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(peek32(c, PD) & PTE_A, PTE_A);
    ck_assert_uint_eq(get_pte(c, 0x5000) & (PTE_A | PTE_D), PTE_A);
    ck_assert_uint_eq(get_pte(c, 0x7000) & (PTE_A | PTE_D), PTE_A | PTE_D);
    ck_assert_uint_eq(get_pte(c, CODE) & (PTE_A | PTE_D), PTE_A); /* fetched, not written */
    ck_assert_uint_eq(get_pte(c, 0xA000) & (PTE_A | PTE_D), 0);   /* untouched */
    /* a write after a read-only TLB fill still sets D */
    at = end;
    EMIT(ST, 2, 4, 0);
    uint32_t end2 = EMIT(HLT, 0, 0, 0);
    restart(c, end);
    expect_halt_at(c, 100, end2);
    ck_assert_uint_eq(get_pte(c, 0x5000) & (PTE_A | PTE_D), PTE_A | PTE_D);
}
END_TEST

START_TEST(test_translate_has_no_side_effects) {
    cpu_t *c = C;
    build_tables(c);
    set_pte(c, 0x5000, 0x7000 | PAGE_USER);
    set_pte(c, 0xA000, 0);
    paging_on(c);
    uint32_t pa = 0;
    ck_assert_int_eq(cpu_translate(c, 0x5abc, 1, &pa), 0);
    ck_assert_uint_eq(pa, 0x7abc);
    ck_assert_uint_eq(get_pte(c, 0x5000) & (PTE_A | PTE_D), 0);
    ck_assert_int_eq(cpu_translate(c, 0xA000, 1, &pa), PF_WRITE | 0x100);
    poke32(c, 0x7abc, 0x13579bdf);
    uint32_t v = 0;
    ck_assert_int_eq(cpu_virt_read(c, 0x5abc, &v, 4), 0);
    ck_assert_uint_eq(v, 0x13579bdf);
    ck_assert_int_eq(cpu_virt_read(c, 0xA000, &v, 4), -1);
}
END_TEST

/* Program for the TLB tests: read va 0x5000, repoint its PTE with a store,
 * read again (stale), then `flush` (an instruction chosen by the test), read. */
static void tlb_program(cpu_t *c, int flush_op) {
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0x6000 | PAGE_USER);
    poke32(c, 0x6000, 0x1111);
    poke32(c, 0x7000, 0x2222);
    paging_on(c);
    c->r[2] = 0x5000;
    c->r[4] = pte_addr(0x5000);
    c->r[5] = 0x7000 | PAGE_USER;
    c->r[9] = PD;
    EMIT(LD, 3, 2, 0); /* fills the TLB: 0x1111 */
    EMIT(ST, 4, 5, 0); /* PTE now points at 0x7000 */
    EMIT(LD, 6, 2, 0); /* stale: still 0x1111 */
    if (flush_op == OP_INVLPG)
        EMIT(INVLPG, 2, 0, 0);
    else
        EMIT(WRCR, CR_PTBR, 9, 0);
    EMIT(LD, 7, 2, 0); /* fresh: 0x2222 */
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
}

START_TEST(test_tlb_stale_until_invlpg) {
    cpu_t *c = C;
    tlb_program(c, OP_INVLPG);
    ck_assert_uint_eq(c->r[3], 0x1111);
    ck_assert_uint_eq(c->r[6], 0x1111);
    ck_assert_uint_eq(c->r[7], 0x2222);
}
END_TEST

START_TEST(test_tlb_flushed_by_ptbr_write) {
    cpu_t *c = C;
    tlb_program(c, OP_WRCR);
    ck_assert_uint_eq(c->r[3], 0x1111);
    ck_assert_uint_eq(c->r[6], 0x1111);
    ck_assert_uint_eq(c->r[7], 0x2222);
}
END_TEST

START_TEST(test_page_table_outside_memory_mc) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    poke32(c, PD + 4, 0x10000000 | PTE_P | PTE_W | PTE_U); /* PT for 4-8 MiB beyond memory */
    set_pte(c, 0x5000, 0x20000000 | PAGE_USER);            /* frame beyond memory */
    paging_on(c);
    c->r[2] = 0x400000;
    c->r[3] = 0x5000;
    uint32_t ld = EMIT(LD, 4, 2, 0);
    cpu_intercept(c, VEC_MC, 1);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.vector, VEC_MC);
    ck_assert_int_eq(c->exit.cause, CAUSE_BUS);
    ck_assert_uint_eq(c->exit.pc, ld);
    cpu_intercept(c, VEC_MC, 0);
    expect_trap(c, 10, VEC_MC);
    ck_assert_uint_eq(top_frame(c).pc, ld);
    /* a PTE whose frame is outside memory */
    at = CODE;
    uint32_t ld2 = EMIT(LD, 4, 3, 0);
    restart(c, CODE);
    c->r[CPU_REG_SP] = KSTACK0;
    expect_trap(c, 10, VEC_MC);
    ck_assert_uint_eq(top_frame(c).pc, ld2);
}
END_TEST

START_TEST(test_straddling_insn_second_page_missing) {
    cpu_t *c = C;
    uint32_t at = CODE + 0xffc;
    build_tables(c);
    EMIT(LI, 1, 0, 0x12345678);
    set_pte(c, CODE + 0x1000, 0);
    paging_on(c);
    c->pc = CODE + 0xffc;
    expect_pf(c, CODE + 0xffc, PF_FETCH, CODE + 0x1000);
    ck_assert_uint_eq(c->r[1], 0);
}
END_TEST

START_TEST(test_straddling_insn_translated_halves) {
    cpu_t *c = C;
    uint32_t at = CODE + 0xffc;
    build_tables(c);
    EMIT(LI, 1, 0, 0x12345678);
    poke32(c, 0x7000, 0x0badcafe); /* the immediate as seen through the map */
    poke32(c, 0x7004, encode1(OP_HLT, 0, 0, 0));
    set_pte(c, CODE + 0x1000, 0x7000 | PAGE_USER); /* va 0x2000 -> pa 0x7000 */
    paging_on(c);
    c->pc = CODE + 0xffc;
    expect_halt_at(c, 10, CODE + 0x1004);
    ck_assert_uint_eq(c->r[1], 0x0badcafe);
}
END_TEST

START_TEST(test_intercept_pf_fills_exit) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, 0x5000, 0);
    paging_on(c);
    cpu_intercept(c, VEC_PF, 1);
    c->r[2] = 0x5000;
    uint32_t st = EMIT(ST, 2, 3, 0x44);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_TRAP);
    ck_assert_int_eq(c->exit.vector, VEC_PF);
    ck_assert_int_eq(c->exit.cause, CAUSE_PF);
    ck_assert_uint_eq(c->exit.err, PF_WRITE);
    ck_assert_uint_eq(c->exit.addr, 0x5044);
    ck_assert_uint_eq(c->exit.pc, st);
    ck_assert_uint_eq(cpu_get_cr(c, CR_FADDR), 0x5044);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0);
}
END_TEST

/* ==== self-modifying code ================================================================ */

/* A loop whose body rewrites its own first instruction: the second pass must
 * execute the new one (addi r3, 100), not the predecoded old one (addi r3, 1). */
START_TEST(test_smc_store_over_executed_insn) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[4] = encode1(OP_ADDI, 3, 0, 100);
    c->r[6] = 2;
    uint32_t target = EMIT(ADDI, 3, 0, 1);
    EMIT(ST, 0, 4, (int32_t)target);
    EMIT(ADDI, 6, 0, -1);
    EMIT(CMPI, 6, 0, 0);
    uint32_t j = EMIT(JNE, 0, 0, 0);
    poke32(c, j, encode1(OP_JNE, 0, 0, rel(j, target)));
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 101);
}
END_TEST

/* Straight-line code patching a later instruction of the same block with a byte store. */
START_TEST(test_smc_byte_store_in_block) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[7] = 0x40;
    uint32_t patch = EMIT(STB, 0, 7, 0); /* displacement fixed below */
    EMIT(NOP, 0, 0, 0);
    uint32_t target = EMIT(ADDI, 3, 0, 1);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    poke32(c, patch, encode1(OP_STB, 0, 7, (int32_t)(target + 2))); /* low byte of imm16 */
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 0x40);
    /* every slot is decoded now; run again patching a different byte */
    restart(c, CODE);
    c->r[3] = 0;
    c->r[7] = 0x21;
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 0x21);
}
END_TEST

START_TEST(test_smc_host_write_invalidates) {
    cpu_t *c = C;
    uint32_t at = CODE;
    uint32_t target = EMIT(ADDI, 3, 0, 1);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 1);
    poke32(c, target, encode1(OP_ADDI, 3, 0, 500));
    restart(c, CODE);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[3], 501);
}
END_TEST

/* ==== timer, hlt, console ================================================================ */

START_TEST(test_timer_irq_at_block_boundary) {
    cpu_t *c = C;
    uint32_t at = CODE;
    /* The deadline is `period` after the out (whether counted from its start or
     * its end): after the sti boundary, inside the straight run of divs. */
    const uint32_t period = 4000, ndiv = 200;
    ck_assert(c->cost[OP_OUT] + c->cost[OP_STI] < period);
    ck_assert(c->cost[OP_STI] + ndiv * c->cost[OP_DIV] > period);
    c->r[2] = 1;
    EMIT(LI, 1, 0, (int32_t)period);
    EMIT(OUT, 0, 1, PORT_TIMER);
    EMIT(STI, 0, 0, 0); /* a block boundary before the deadline: nothing yet */
    for (uint32_t i = 0; i < ndiv; i++)
        EMIT(DIV, 3, 2, 0); /* the deadline passes in here */
    EMIT(JMP, 0, 0, (int32_t)(at + 8));
    uint32_t boundary = at;
    EMIT(NOP, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    expect_trap(c, 1000, VEC_IRQ0);
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.pc, boundary);
    ck_assert_uint_eq(f.err, 0);
    ck_assert_uint_eq(f.flags & CPU_FL_IF, CPU_FL_IF);
    uint64_t want = c->cost[OP_LI] + c->cost[OP_OUT] + c->cost[OP_STI] + ndiv * c->cost[OP_DIV] +
                    c->cost[OP_JMP] + c->cost_trap + c->cost[OP_HLT];
    ck_assert_uint_eq(c->cycles, want);
}
END_TEST

START_TEST(test_timer_irq_waits_for_if) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(LI, 1, 0, 5);
    EMIT(OUT, 0, 1, PORT_TIMER);
    for (int i = 0; i < 20; i++)
        EMIT(NOP, 0, 0, 0);
    EMIT(JMP, 0, 0, (int32_t)(at + 8)); /* a boundary past the deadline, but IF = 0 */
    EMIT(STI, 0, 0, 0);                 /* the pending tick is taken right after sti */
    uint32_t next = at;
    EMIT(HLT, 0, 0, 0);
    expect_trap(c, 100, VEC_IRQ0);
    ck_assert_uint_eq(top_frame(c).pc, next);
    ck_assert_uint_eq(top_frame(c).flags & CPU_FL_IF, CPU_FL_IF);
}
END_TEST

typedef struct {
    uint32_t hlt;
    uint64_t deadline;
    int seen;
} halt_check;

/* EV_HALT says how long it idled: from its own stamp to the deadline (first one only) */
static void check_halt(void *ud, const cpu_stamped *st) {
    halt_check *h = ud;
    if (st->ev.kind != EV_HALT || h->seen++) return;
    ck_assert_uint_eq(st->ev.pc, h->hlt);
    ck_assert_uint_gt(st->ev.x, 0);
    ck_assert_uint_eq(st->cycle + st->ev.x + ((uint64_t)st->ev.y << 32), h->deadline);
}

START_TEST(test_hlt_idles_until_timer) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_trace t;
    evbuf b;
    trace_attach(c, &t, &b, 0);
    const uint32_t period = 100000;
    EMIT(LI, 1, 0, (int32_t)period);
    EMIT(OUT, 0, 1, PORT_TIMER);
    EMIT(STI, 0, 0, 0);
    uint32_t hlt = EMIT(HLT, 0, 0, 0);
    EMIT(NOP, 0, 0, 0);
    expect_trap(c, 100, VEC_IRQ0);
    ck_assert_uint_eq(top_frame(c).pc, hlt + 4);
    ck_assert_uint_eq(c->steps, 5); /* li out sti hlt, the stub's hlt: no busy waiting */
    uint64_t deadline = c->timer_deadline - period; /* the tick that woke it */
    ck_assert_uint_ge(deadline, c->cost[OP_LI] + period);
    ck_assert_uint_le(deadline, c->cost[OP_LI] + c->cost[OP_OUT] + period);
    /* the cycle counter jumped to the deadline, then the trap and the stub */
    ck_assert_uint_ge(c->cycles, deadline + c->cost_trap + c->cost[OP_HLT]);
    ck_assert_uint_le(c->cycles, deadline + c->cost_trap + 2 * c->cost[OP_HLT]);
    /* EV_HALT says how long it idled: from its own stamp to the deadline */
    cpu_trace_flush(&t);
    cpu_trace_reader rd;
    cpu_reader_init(&rd);
    halt_check hc = {.hlt = hlt, .deadline = deadline};
    cpu_reader_feed(&rd, b.ev, b.n, check_halt, &hc);
    cpu_reader_free(&rd);
    int seen = hc.seen;
    ck_assert_int_eq(seen, 2); /* the idle one, then the stub's (halted for good) */
    trace_detach(c, &t, &b);
}
END_TEST

START_TEST(test_timer_ticks_with_iret_handler) {
    cpu_t *c = C;
    uint32_t at = SUBR;
    EMIT(ADDI, 7, 0, 1);
    EMIT(IRET, 0, 0, 0);
    set_vector(c, VEC_IRQ0, SUBR);
    at = CODE;
    EMIT(LI, 1, 0, 5000);
    EMIT(OUT, 0, 1, PORT_TIMER);
    EMIT(STI, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    EMIT(HLT, 0, 0, 0);
    EMIT(CLI, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[7], 3);
}
END_TEST

START_TEST(test_hlt_with_if0_exits) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(LI, 1, 0, 100);
    EMIT(OUT, 0, 1, PORT_TIMER); /* a timer does not help with IF = 0 */
    uint32_t hlt = EMIT(HLT, 0, 0, 0);
    EMIT(NOP, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_HALT);
    ck_assert_uint_eq(c->exit.pc, hlt);
    ck_assert_uint_eq(c->halted, 1);
    uint64_t steps = c->steps;
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_HALT); /* stays halted */
    ck_assert_uint_eq(c->steps, steps);
}
END_TEST

START_TEST(test_timer_port_reads_remaining) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(IN, 2, 0, PORT_TIMER); /* off: 0 */
    EMIT(LI, 1, 0, 100000);
    EMIT(OUT, 0, 1, PORT_TIMER);
    EMIT(NOP, 0, 0, 0);
    EMIT(IN, 3, 0, PORT_TIMER);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(c->r[2], 0);
    ck_assert_uint_eq(c->r[3], 100000 - c->cost[OP_NOP] - c->cost[OP_IN]);
}
END_TEST

START_TEST(test_console_collects_bytes) {
    cpu_t *c = C;
    uint32_t at = CODE;
    cpu_trace t;
    evbuf b;
    trace_attach(c, &t, &b, 0);
    EMIT(LI, 1, 0, 0x148); /* only the low byte: 'H' */
    EMIT(OUT, 0, 1, PORT_CONSOLE);
    EMIT(LI, 1, 0, 'i');
    EMIT(OUT, 0, 1, PORT_CONSOLE);
    EMIT(IN, 2, 0, PORT_CONSOLE);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    c->r[2] = 77;
    expect_halt_at(c, 100, end);
    size_t len = 0;
    const char *s = cpu_console(c, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_mem_eq(s, "Hi", 2);
    ck_assert_uint_eq(c->r[2], 0);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(count_kind(&b, EV_IO), 3);
    const cpu_event *e = find_kind(&b, EV_IO, 1);
    ck_assert_int_eq(e->a, 1);
    ck_assert_uint_eq(e->x, PORT_CONSOLE);
    ck_assert_uint_eq(e->y, 'i');
    trace_detach(c, &t, &b);
}
END_TEST

static int test_port(void *ud, cpu_t *c, int is_out, uint16_t port, uint32_t *value) {
    uint32_t *reg = ud;
    if (port != 0x100) return 0;
    if (is_out)
        *reg = *value;
    else
        *value = *reg + 1;
    return 1;
}

START_TEST(test_port_hook_and_open_bus) {
    cpu_t *c = C;
    uint32_t at = CODE;
    uint32_t reg = 0;
    c->port_fn = test_port;
    c->port_ud = &reg;
    c->r[1] = 41;
    EMIT(OUT, 0, 1, 0x100);
    EMIT(IN, 2, 0, 0x100);
    EMIT(IN, 3, 0, 0x101); /* nobody: all ones */
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 100, end);
    ck_assert_uint_eq(reg, 41);
    ck_assert_uint_eq(c->r[2], 42);
    ck_assert_uint_eq(c->r[3], 0xffffffff);
}
END_TEST

/* ==== determinism, budget, breakpoints =================================================== */

enum { LOG = DATA, LOOP_END = 30000, TICK = 5000 };

/* A compute loop interrupted by the timer; the handler logs each return pc at r13. */
static uint32_t busy_program(cpu_t *c, uint32_t *loop) {
    uint32_t at = SUBR;
    EMIT(PUSH, 1, 0, 0);
    EMIT(LD, 1, CPU_REG_SP, 8); /* frame.pc, above the pushed r1 */
    EMIT(ST, 13, 1, 0);
    EMIT(ADDI, 13, 0, 4);
    EMIT(POP, 1, 0, 0);
    EMIT(IRET, 0, 0, 0);
    set_vector(c, VEC_IRQ0, SUBR);
    at = CODE;
    EMIT(LI, 13, 0, LOG);
    EMIT(LI, 1, 0, TICK);
    EMIT(OUT, 0, 1, PORT_TIMER);
    EMIT(STI, 0, 0, 0);
    EMIT(LI, 1, 0, 0);
    EMIT(LI, 2, 0, 0);
    uint32_t top = EMIT(ADDI, 1, 0, 3);
    EMIT(NOP, 0, 0, 0);
    EMIT(XOR, 2, 1, 0);
    EMIT(SHLI, 2, 0, 1);
    EMIT(ADDI, 2, 0, 7);
    EMIT(CMPI, 1, 0, LOOP_END);
    uint32_t j = EMIT(JL, 0, 0, 0);
    poke32(c, j, encode1(OP_JL, 0, 0, rel(j, top)));
    EMIT(CLI, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    if (loop) *loop = top;
    return end;
}

static void assert_same_machine(cpu_t *a, cpu_t *b) {
    ck_assert_uint_eq(a->cycles, b->cycles);
    ck_assert_uint_eq(a->steps, b->steps);
    ck_assert_uint_eq(a->pc, b->pc);
    ck_assert_uint_eq(cpu_get_flags(a), cpu_get_flags(b));
    for (int r = 0; r < 16; r++)
        ck_assert_msg(a->r[r] == b->r[r], "r%d: %#x vs %#x", r, a->r[r], b->r[r]);
    ck_assert_msg(memcmp(a->mem, b->mem, MEM_SIZE) == 0, "memories differ");
}

START_TEST(test_determinism_two_runs) {
    cpu_t *a = new_machine(), *b = new_machine();
    uint32_t end = busy_program(a, NULL);
    busy_program(b, NULL);
    expect_halt_at(a, 1000000, end);
    expect_halt_at(b, 1000000, end);
    assert_same_machine(a, b);
    ck_assert_uint_eq(a->r[1], LOOP_END);
    ck_assert_uint_gt(a->r[13], LOG + 4 * 10); /* more than ten ticks were taken */
    cpu_free(a);
    cpu_free(b);
}
END_TEST

/* cpu/cpu.c promises the same interrupt points whether single-stepped or run. */
START_TEST(test_single_step_equals_run) {
    cpu_t *a = new_machine(), *b = new_machine();
    uint32_t loop = 0;
    uint32_t end = busy_program(a, &loop);
    uint32_t after_loop = end - 4; /* the cli after the final jl */
    busy_program(b, NULL);
    expect_halt_at(a, 1000000, end);
    int rc;
    uint64_t calls = 0;
    while ((rc = cpu_run(b, 1)) == CPU_EXIT_BUDGET)
        calls++;
    ck_assert_int_eq(rc, CPU_EXIT_HALT);
    ck_assert_uint_eq(b->exit.pc, end);
    /* in one big run, ticks land on block boundaries: the loop head */
    for (uint32_t p = LOG; p < a->r[13]; p += 4)
        ck_assert(peek32(a, p) == loop || peek32(a, p) == after_loop);
    ck_assert_uint_eq(a->r[13], b->r[13]);
    for (uint32_t p = LOG; p < a->r[13]; p += 4)
        ck_assert_msg(peek32(a, p) == peek32(b, p),
                      "tick %u: run returned to %#x, single-step to %#x", (p - LOG) / 4,
                      peek32(a, p), peek32(b, p));
    assert_same_machine(a, b);
    ck_assert_uint_eq(calls + 1, b->steps);
    cpu_free(a);
    cpu_free(b);
}
END_TEST

START_TEST(test_budget_exact_steps) {
    cpu_t *c = C;
    uint32_t at = CODE;
    for (int i = 0; i < 100; i++)
        EMIT(NOP, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 0), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->steps, 0);
    ck_assert_int_eq(cpu_run(c, 37), CPU_EXIT_BUDGET);
    ck_assert_int_eq(c->exit.reason, CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->steps, 37);
    ck_assert_uint_eq(c->pc, CODE + 37 * 4);
    ck_assert_uint_eq(c->exit.pc, CODE + 37 * 4);
    ck_assert_uint_eq(c->cycles, 37 * c->cost[OP_NOP]);
    ck_assert_int_eq(cpu_run(c, 63), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->steps, 100);
    expect_halt_at(c, 1000, end);
    ck_assert_uint_eq(c->steps, 101);
}
END_TEST

/* A huge budget means "no limit", whatever the step counter already is. */
START_TEST(test_budget_max_after_steps) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(NOP, 0, 0, 0);
    EMIT(NOP, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 1), CPU_EXIT_BUDGET);
    expect_halt_at(c, UINT64_MAX, end);
}
END_TEST

START_TEST(test_fault_loop_ends_by_budget) {
    cpu_t *c = C;
    poke32(c, CODE, 0);          /* #UD ... */
    set_vector(c, VEC_UD, CODE); /* ... whose handler is the same bad word */
    ck_assert_int_eq(cpu_run(c, 1000), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->steps, 1000);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0 - 1000 * 20);
}
END_TEST

START_TEST(test_fault_loop_ends_by_shutdown) {
    cpu_t *c = C;
    poke32(c, CODE, 0);
    set_vector(c, VEC_UD, CODE);
    set_vector(c, VEC_DF, CODE);
    c->r[CPU_REG_SP] = 0x400; /* room for 51 frames below the vector table */
    ck_assert_int_eq(cpu_run(c, 1000000), CPU_EXIT_SHUTDOWN); /* the stack runs out first */
    ck_assert_uint_lt(c->steps, 1000000);
    ck_assert_uint_eq(c->dead, 1);
}
END_TEST

START_TEST(test_fetch_fault_loop_ends_by_budget) {
    cpu_t *c = C;
    uint32_t at = CODE;
    for (int v = 0; v < CPU_NVEC; v++)
        set_vector(c, v, 0x10000000); /* beyond memory */
    EMIT(JMP, 0, 0, 0x20000000);
    ck_assert_int_eq(cpu_run(c, 500), CPU_EXIT_BUDGET);
    ck_assert_uint_eq(c->steps, 500);
    ck_assert_uint_eq(c->pc, 0x10000000);
}
END_TEST

START_TEST(test_breakpoint_stops_and_continues) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(ADDI, 1, 0, 1);
    EMIT(ADDI, 1, 0, 1);
    uint32_t bp = EMIT(ADDI, 1, 0, 1);
    EMIT(ADDI, 1, 0, 1);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    ck_assert_int_eq(cpu_break_add(c, bp), 0);
    ck_assert_int_eq(cpu_break_add(c, bp), 0); /* no duplicate */
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_BREAK);
    ck_assert_int_eq(c->exit.reason, CPU_EXIT_BREAK);
    ck_assert_uint_eq(c->exit.pc, bp);
    ck_assert_uint_eq(c->pc, bp);
    ck_assert_uint_eq(c->r[1], 2); /* not executed yet */
    ck_assert_uint_eq(c->steps, 2);
    expect_halt_at(c, 100, end); /* continues past it */
    ck_assert_uint_eq(c->r[1], 4);
    ck_assert_int_eq(cpu_break_del(c, bp), 0);
    ck_assert_int_eq(cpu_break_del(c, bp), -1);
}
END_TEST

START_TEST(test_breakpoint_in_loop_hits_each_pass) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(LI, 1, 0, 3);
    uint32_t top = EMIT(ADDI, 1, 0, -1);
    EMIT(CMPI, 1, 0, 0);
    uint32_t j = EMIT(JNE, 0, 0, 0);
    poke32(c, j, encode1(OP_JNE, 0, 0, rel(j, top)));
    uint32_t end = EMIT(HLT, 0, 0, 0);
    cpu_break_add(c, top);
    for (uint32_t left = 3; left > 0; left--) {
        ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_BREAK);
        ck_assert_uint_eq(c->r[1], left);
    }
    expect_halt_at(c, 100, end);
}
END_TEST

/* ==== VMX ================================================================================ */

START_TEST(test_vmxon_enters_vmx) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(VMXON, 0, 0, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(c->vmx_on, 1);
    ck_assert_uint_eq(cpu_mode_byte(c), EV_MODE_VMX);
    at = CODE;
    EMIT(VMXOFF, 0, 0, 0);
    restart(c, CODE);
    expect_halt_at(c, 10, end);
    ck_assert_uint_eq(c->vmx_on, 0);
}
END_TEST

START_TEST(test_vmx_insn_outside_vmx_ud) {
    static const int ops[] = {OP_VMREAD,   OP_VMWRITE, OP_VMLAUNCH,
                              OP_VMRESUME, OP_VMXOFF,  OP_VMCALL};
    for (int cpl = 0; cpl <= 3; cpl += 3)
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            cpu_t *c = new_machine();
            uint32_t at = CODE;
            cpu_set_cpl(c, cpl);
            c->r[CPU_REG_SP] = USTACK;
            emit(c, &at, ops[i], 1, 2, 0);
            expect_trap(c, 10, VEC_UD);
            ck_assert_uint_eq(top_frame(c).pc, CODE);
            cpu_free(c);
        }
}
END_TEST

/* vmcall outside VMX operation: #UD; in VMX root at CPL 0: VMfailInvalid
 * (CF = 1, SDM 30.3); in VMX root at CPL 3: #GP */
START_TEST(test_vmcall_outside_vmx_ud) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(VMCALL, 0, 0, 0);
    expect_trap(c, 10, VEC_UD);
    ck_assert_uint_eq(top_frame(c).pc, CODE);
}
END_TEST

START_TEST(test_vmcall_in_root_vmfail) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->vmx_on = 1;
    EMIT(CMPI, 0, 0, 0); /* ZF = 1 before: VMfailInvalid clears it */
    EMIT(VMCALL, 0, 0, 0);
    uint32_t h = EMIT(HLT, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_HALT);
    ck_assert_uint_eq(c->exit.pc, h);
    ck_assert_uint_eq(cpu_get_flags(c) & CPU_FL_ARITH, CPU_FL_CF);
}
END_TEST

START_TEST(test_vmcall_in_root_cpl3_gp) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->vmx_on = 1;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t vc = EMIT(VMCALL, 0, 0, 0);
    expect_trap(c, 10, VEC_GP);
    ck_assert_uint_eq(top_frame(c).pc, vc);
}
END_TEST

START_TEST(test_vmlaunch_root_cpl0_exits) {
    cpu_t *c = C;
    uint32_t at = CODE;
    EMIT(VMXON, 0, 0, 0);
    uint32_t vl = EMIT(VMLAUNCH, 0, 0, 0);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_VMX);
    ck_assert_int_eq(c->exit.reason, CPU_EXIT_VMX);
    ck_assert_int_eq(c->exit.insn.op, OP_VMLAUNCH);
    ck_assert_uint_eq(c->exit.pc, vl);
    ck_assert_uint_eq(c->exit.next_pc, vl + 4);
    ck_assert_uint_eq(c->exit.word[0], encode1(OP_VMLAUNCH, 0, 0, 0));
    ck_assert_uint_eq(c->pc, vl);
    ck_assert_uint_eq(c->r[CPU_REG_SP], KSTACK0);
}
END_TEST

START_TEST(test_vmread_root_exits_with_operands) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->vmx_on = 1;
    uint32_t vr = EMIT(VMREAD, 3, 4, 0);
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_VMX);
    ck_assert_int_eq(c->exit.insn.op, OP_VMREAD);
    ck_assert_int_eq(c->exit.insn.ra, 3);
    ck_assert_int_eq(c->exit.insn.rb, 4);
    ck_assert_uint_eq(c->exit.pc, vr);
}
END_TEST

START_TEST(test_vmlaunch_cpl3_gp) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->vmx_on = 1;
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    uint32_t vl = EMIT(VMLAUNCH, 0, 0, 0);
    expect_trap(c, 10, VEC_GP);
    ck_assert_uint_eq(top_frame(c).pc, vl);
    ck_assert_uint_eq(top_frame(c).cpl, 3);
}
END_TEST

/* vmxon inside VMX operation fails with CF = 1 (VMfailInvalid, SDM 30.2),
 * whatever the lazy flags held before. */
START_TEST(test_vmxon_twice_sets_cf) {
    cpu_t *c = C;
    uint32_t at = CODE;
    c->r[1] = 5;
    c->r[4] = DATA;
    c->r[5] = 1;
    EMIT(CMPI, 1, 0, 0); /* CF = 0, lazily */
    EMIT(VMXON, 0, 0, 0);
    EMIT(VMXON, 0, 0, 0);
    EMIT(PUSHF, 0, 0, 0);
    EMIT(JB, 0, 0, 4);
    EMIT(ST, 4, 5, 0);
    uint32_t end = EMIT(HLT, 0, 0, 0);
    expect_halt_at(c, 20, end);
    ck_assert_uint_eq(c->vmx_on, 1);
    ck_assert_uint_eq(peek32(c, KSTACK0 - 4) & CPU_FL_CF, CPU_FL_CF);
    ck_assert_uint_eq(peek32(c, DATA), 0); /* jb taken */
}
END_TEST

START_TEST(test_nonroot_vmx_insns_exit) {
    static const int ops[] = {OP_VMCALL, OP_VMXON, OP_VMREAD};
    for (size_t i = 0; i < 3; i++) {
        cpu_t *c = new_machine();
        uint32_t at = CODE;
        c->vmx_on = 1;
        c->nonroot = 1;
        cpu_set_cpl(c, 3); /* the guest's own CPL does not matter */
        emit(c, &at, ops[i], 0, 0, 0);
        ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_VMX);
        ck_assert_int_eq(c->exit.insn.op, ops[i]);
        ck_assert_uint_eq(c->exit.pc, CODE);
        ck_assert_uint_eq(c->exit.next_pc, CODE + 4);
        cpu_free(c);
    }
}
END_TEST

/* Shadow paging under VT-x: #PF in the exception bitmap and the page of the
 * kernel stack not mapped.  Delivering a syscall from ring 3 page-faults on
 * the trap frame: the CPU exits with the fault and the event it was
 * delivering (SDM 27.2.4), and the VMM can deliver it again. */
START_TEST(test_nonroot_fault_during_delivery_exits) {
    cpu_t *c = C;
    uint32_t at = CODE;
    build_tables(c);
    set_pte(c, KSTACK - 4096, 0); /* the frame's page */
    uint32_t sc = EMIT(SYSCALL, 0, 0, 0);
    paging_on(c);
    cpu_set_cpl(c, 3);
    c->r[CPU_REG_SP] = USTACK;
    c->vmx_on = 1;
    c->nonroot = 1;
    c->vmx_exc = 1u << VEC_PF;
    ck_assert_int_eq(cpu_run(c, 10), CPU_EXIT_VMX);
    ck_assert_int_eq(c->exit.vmx_reason, VMX_EXIT_EXCEPTION);
    ck_assert_int_eq(c->exit.vector, VEC_PF);
    ck_assert_uint_eq(c->exit.addr, KSTACK - 20);
    ck_assert_uint_eq(c->exit.err & (PF_WRITE | PF_USER), PF_WRITE); /* a supervisor write */
    ck_assert_int_eq(c->exit.idt_valid, 1);
    ck_assert_int_eq(c->exit.idt_vector, VEC_SYSCALL);
    ck_assert_int_eq(c->cpl, 3);
    ck_assert_uint_eq(c->r[CPU_REG_SP], USTACK); /* nothing pushed */
    /* the VMM maps the page and delivers the event again */
    set_pte(c, KSTACK - 4096, (KSTACK - 4096) | PTE_P | PTE_W);
    cpu_invlpg(c, KSTACK - 4096);
    ck_assert_int_eq(cpu_deliver(c, c->exit.idt_vector, c->exit.idt_cause, c->exit.idt_err, c->exit.idt_aux), 0);
    ck_assert_uint_eq(c->pc, stub(VEC_SYSCALL));
    trap_frame f = top_frame(c);
    ck_assert_uint_eq(f.pc, sc + 4);
    ck_assert_uint_eq(f.cpl, 3);
    ck_assert_uint_eq(f.sp, USTACK);
}
END_TEST

/* ==== suite ============================================================================== */

static TCase *tcase(Suite *s, const char *name) {
    TCase *t = tcase_create(name);
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    suite_add_tcase(s, t);
    return t;
}

Suite *suite_cpu(void) {
    Suite *s = suite_create("cpu");
    TCase *t = tcase(s, "alu");
    tcase_add_test(t, test_add_flags_and_jcc);
    tcase_add_test(t, test_sub_flags_and_jcc);
    tcase_add_test(t, test_cmp_flags_and_jcc);
    tcase_add_test(t, test_addi_cmpi_sign_extend_and_jcc);
    tcase_add_test(t, test_logic_clears_cf_of);
    tcase_add_test(t, test_shifts);
    tcase_add_test(t, test_mul_low_bits);
    tcase_add_test(t, test_div_rem_unsigned);
    tcase_add_test(t, test_div_by_zero_de);

    t = tcase(s, "memory");
    tcase_add_test(t, test_ld_st_word_and_byte);
    tcase_add_test(t, test_push_pop);
    tcase_add_test(t, test_call_ret_callr_jmpr);
    tcase_add_test(t, test_li_32bit_immediates);
    tcase_add_test(t, test_insn_straddling_page);
    tcase_add_test(t, test_unaligned_pc_other_page);
    tcase_add_test(t, test_unaligned_pc_same_page);
    tcase_add_test(t, test_invalid_opcode_ud);

    t = tcase(s, "traps");
    tcase_add_test(t, test_trap_frame_cpl0);
    tcase_add_test(t, test_trap_from_cpl3_switches_stack);
    tcase_add_test(t, test_trap_from_cpl1_switches_stack);
    tcase_add_test(t, test_iret_restores_everything);
    tcase_add_test(t, test_syscall_iret_round_trip_cpl3);
    tcase_add_test(t, test_handler_sees_interrupted_arith_flags);
    tcase_add_test(t, test_brk_and_int3);
    tcase_add_test(t, test_int_any_vector_at_cpl0);
    tcase_add_test(t, test_int_0x80_from_cpl3_allowed);
    tcase_add_test(t, test_int_kernel_vector_from_cpl3_gp);
    tcase_add_test(t, test_missing_handler_double_fault);
    tcase_add_test(t, test_missing_df_shutdown);
    tcase_add_test(t, test_iret_unreadable_frame_mc);

    t = tcase(s, "policy");
    tcase_add_test(t, test_strict_every_configurable_traps_at_cpl3);
    tcase_add_test(t, test_x86_trapping_set);
    tcase_add_test(t, test_popf_cpl3_keeps_if);
    tcase_add_test(t, test_popf_cpl0_changes_if);
    tcase_add_test(t, test_popf_leak_clears_if);
    tcase_add_test(t, test_pushf_cpl3_reveals_cpl);
    tcase_add_test(t, test_smsw_reveals_cpl);
    tcase_add_test(t, test_sidt_returns_real_vbr);
    tcase_add_test(t, test_rdtsc_cycles_plus_offset);
    tcase_add_test(t, test_rdtsc_tsd_traps_at_cpl3_even_x86);
    tcase_add_test(t, test_cpuid_leaves);
    tcase_add_test(t, test_cpl0_every_configurable_runs);
    tcase_add_test(t, test_policy_describe);
    tcase_add_test(t, test_sensitive_events_at_cpl3);
    tcase_add_test(t, test_no_sensitive_events_at_cpl0_or_strict);

    t = tcase(s, "intercept");
    tcase_add_test(t, test_intercept_gp_fills_exit_pushes_nothing);
    tcase_add_test(t, test_intercept_then_deliver);
    tcase_add_test(t, test_intercept_then_skip);
    tcase_add_test(t, test_intercept_syscall_leaves_next_pc);
    tcase_add_test(t, test_intercept_pf_fills_exit);

    t = tcase(s, "paging");
    tcase_add_test(t, test_paging_enabled_by_wrcr);
    tcase_add_test(t, test_pf_not_present_read);
    tcase_add_test(t, test_pf_not_present_write_user);
    tcase_add_test(t, test_pf_not_present_fetch);
    tcase_add_test(t, test_pf_user_reads_supervisor_page);
    tcase_add_test(t, test_pf_user_fetches_supervisor_page);
    tcase_add_test(t, test_pf_pde_without_user_bit);
    tcase_add_test(t, test_pf_user_writes_readonly);
    tcase_add_test(t, test_pf_supervisor_writes_readonly);
    tcase_add_test(t, test_accessed_dirty_bits);
    tcase_add_test(t, test_translate_has_no_side_effects);
    tcase_add_test(t, test_tlb_stale_until_invlpg);
    tcase_add_test(t, test_tlb_flushed_by_ptbr_write);
    tcase_add_test(t, test_page_table_outside_memory_mc);
    tcase_add_test(t, test_straddling_insn_second_page_missing);
    tcase_add_test(t, test_straddling_insn_translated_halves);

    t = tcase(s, "smc");
    tcase_add_test(t, test_smc_store_over_executed_insn);
    tcase_add_test(t, test_smc_byte_store_in_block);
    tcase_add_test(t, test_smc_host_write_invalidates);

    t = tcase(s, "devices");
    tcase_add_test(t, test_timer_irq_at_block_boundary);
    tcase_add_test(t, test_timer_irq_waits_for_if);
    tcase_add_test(t, test_hlt_idles_until_timer);
    tcase_add_test(t, test_timer_ticks_with_iret_handler);
    tcase_add_test(t, test_hlt_with_if0_exits);
    tcase_add_test(t, test_timer_port_reads_remaining);
    tcase_add_test(t, test_console_collects_bytes);
    tcase_add_test(t, test_port_hook_and_open_bus);

    t = tcase(s, "run");
    tcase_add_test(t, test_determinism_two_runs);
    tcase_add_test(t, test_single_step_equals_run);
    tcase_add_test(t, test_budget_exact_steps);
    tcase_add_test(t, test_budget_max_after_steps);
    tcase_add_test(t, test_fault_loop_ends_by_budget);
    tcase_add_test(t, test_fault_loop_ends_by_shutdown);
    tcase_add_test(t, test_fetch_fault_loop_ends_by_budget);
    tcase_add_test(t, test_breakpoint_stops_and_continues);
    tcase_add_test(t, test_breakpoint_in_loop_hits_each_pass);

    t = tcase(s, "vmx");
    tcase_add_test(t, test_vmxon_enters_vmx);
    tcase_add_test(t, test_vmx_insn_outside_vmx_ud);
    tcase_add_test(t, test_vmcall_outside_vmx_ud);
    tcase_add_test(t, test_vmcall_in_root_vmfail);
    tcase_add_test(t, test_vmcall_in_root_cpl3_gp);
    tcase_add_test(t, test_vmlaunch_root_cpl0_exits);
    tcase_add_test(t, test_vmread_root_exits_with_operands);
    tcase_add_test(t, test_vmlaunch_cpl3_gp);
    tcase_add_test(t, test_vmxon_twice_sets_cf);
    tcase_add_test(t, test_nonroot_vmx_insns_exit);
    tcase_add_test(t, test_nonroot_fault_during_delivery_exits);
    return s;
}
