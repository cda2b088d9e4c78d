/* cpu/isa.c -- tables generated from cpu/isa.def, the pure decoder, the
 * encoder and the disassembler.  One decoder serves the executor, the
 * disassembler, the trace printer and the analyzer. */
#include "cpu/isa.h"

#include <stdio.h>
#include <string.h>

const cpu_isa_info cpu_isa[OP_COUNT] = {
#define ISA(name, code_, mnem_, fmt_, part_, sens_, x86_, cyc, doc_)                               \
    [OP_##name] = {.mnem = mnem_,                                                                  \
                   .doc = doc_,                                                                    \
                   .code = code_,                                                                  \
                   .fmt = fmt_,                                                                    \
                   .part = part_,                                                                  \
                   .sens = sens_,                                                                  \
                   .x86 = x86_,                                                                    \
                   .cycles = cyc},
#include "cpu/isa.def"
#undef ISA
};

/* Every row must have a mnemonic; the count of rows must equal OP_COUNT. */
enum {
#define ISA(name, ...) ROW_##name,
#include "cpu/isa.def"
#undef ISA
    ROW_COUNT
};
_Static_assert((int)ROW_COUNT == (int)OP_COUNT, "isa.def rows and cpu_op disagree");
_Static_assert(sizeof(cpu_isa) / sizeof(cpu_isa[0]) == OP_COUNT, "cpu_isa has one entry per op");

/* opcode byte -> op + 1 (0: unassigned). */
static const uint8_t op_plus1[256] = {
#define ISA(name, code, ...) [code] = OP_##name + 1,
#include "cpu/isa.def"
#undef ISA
};

/* Opcode bytes are unique: a duplicate is a duplicate case label, a build error. */
static inline void opcodes_are_unique(int b) {
    switch (b) {
#define ISA(name, code, ...)                                                                       \
    case code:                                                                                     \
        break;
#include "cpu/isa.def"
#undef ISA
    }
}

static int op_of_code(uint8_t b) {
    return op_plus1[b] ? op_plus1[b] - 1 : OP_INVALID;
}

/* Rows must be user part below 0x80 and system part at or above. */
#define ISA(name, code, mnem, fmt, part, ...)                                                      \
    _Static_assert((part == SYSTEM) == ((code) >= 0x80), "opcode of " mnem " is in the wrong "     \
                                                                           "part");
#include "cpu/isa.def"
#undef ISA

const char *const cpu_cr_names[CPU_NCR] = {"status", "vbr", "faddr", "ptbr", "ksp"};

const char *cpu_fmt_operands(int fmt) {
    static const char *const t[F_COUNT] = {[F_NONE] = "",
                                           [F_R] = "ra",
                                           [F_RR] = "ra, rb",
                                           [F_RI] = "ra, simm16",
                                           [F_RI32] = "ra, imm32",
                                           [F_LD] = "ra, [rb+simm16]",
                                           [F_ST] = "[ra+simm16], rb",
                                           [F_J] = "target",
                                           [F_A32] = "target",
                                           [F_IMM] = "imm8",
                                           [F_PIN] = "ra, port",
                                           [F_POUT] = "port, rb",
                                           [F_CRW] = "cr, rb",
                                           [F_CRR] = "ra, cr"};
    return fmt >= 0 && fmt < F_COUNT ? t[fmt] : "?";
}

int cpu_fmt_size(int fmt) {
    return (fmt == F_RI32 || fmt == F_A32) ? 8 : 4;
}

cpu_insn cpu_decode(uint32_t w0, uint32_t w1) {
    cpu_insn in;
    int op = op_of_code(w0 & 0xff);
    (void)opcodes_are_unique;
    in.op = (uint8_t)op;
    in.ra = (w0 >> 8) & 0xf;
    in.rb = (w0 >> 12) & 0xf;
    in.size = 4;
    in.imm = (int16_t)(w0 >> 16);
    if (op == OP_INVALID) {
        in.imm = (int32_t)w0; /* keep the raw word for the #UD report */
        return in;
    }
    switch (cpu_isa[op].fmt) {
    case F_RI32:
    case F_A32:
        in.size = 8;
        in.imm = (int32_t)w1;
        break;
    case F_IMM: in.imm = (int32_t)((w0 >> 16) & 0xff); break; /* the vector: 8 bits */
    case F_PIN:
    case F_POUT: in.imm = (int32_t)(w0 >> 16); break;
    default: break;
    }
    return in;
}

int cpu_encode(const cpu_insn *in, uint32_t out[2]) {
    if (in->op >= OP_COUNT) {
        out[0] = (uint32_t)in->imm;
        return 4;
    }
    const cpu_isa_info *d = &cpu_isa[in->op];
    uint32_t w = d->code | (uint32_t)(in->ra & 0xf) << 8 | (uint32_t)(in->rb & 0xf) << 12;
    if (d->fmt == F_RI32 || d->fmt == F_A32) {
        out[0] = w;
        out[1] = (uint32_t)in->imm;
        return 8;
    }
    out[0] = w | ((uint32_t)in->imm & 0xffff) << 16;
    return 4;
}

static const char *reg(int r) {
    static const char *const names[16] = {"r0", "r1", "r2",  "r3",  "r4",  "r5",  "r6",  "r7",
                                          "r8", "r9", "r10", "r11", "r12", "r13", "r14", "sp"};
    return names[r & 15];
}

static const char *cr(int n) {
    static const char *const numbered[16] = {"cr0",  "cr1",  "cr2",  "cr3", "cr4",  "cr5",
                                             "cr6",  "cr7",  "cr8",  "cr9", "cr10", "cr11",
                                             "cr12", "cr13", "cr14", "cr15"};
    return n < CPU_NCR ? cpu_cr_names[n] : numbered[n & 15];
}

static void fmt_disp(char *buf, size_t len, int32_t d) {
    if (d == 0)
        buf[0] = 0;
    else if (d < 0)
        snprintf(buf, len, "-%d", -d);
    else
        snprintf(buf, len, "+%d", d);
}

int cpu_disasm(const cpu_insn *in, uint32_t pc, char *buf, size_t len) {
    if (in->op >= OP_COUNT) return snprintf(buf, len, ".word 0x%08x", (uint32_t)in->imm);
    const cpu_isa_info *d = &cpu_isa[in->op];
    const char *m = d->mnem;
    char disp[16];
    switch (d->fmt) {
    case F_NONE: return snprintf(buf, len, "%s", m);
    case F_R: return snprintf(buf, len, "%-8s %s", m, reg(in->ra));
    case F_RR: return snprintf(buf, len, "%-8s %s, %s", m, reg(in->ra), reg(in->rb));
    case F_RI:
    case F_RI32:
        if (in->imm > -256 && in->imm < 256)
            return snprintf(buf, len, "%-8s %s, %d", m, reg(in->ra), in->imm);
        return snprintf(buf, len, "%-8s %s, 0x%x", m, reg(in->ra), (uint32_t)in->imm);
    case F_LD:
        fmt_disp(disp, sizeof disp, in->imm);
        return snprintf(buf, len, "%-8s %s, [%s%s]", m, reg(in->ra), reg(in->rb), disp);
    case F_ST:
        fmt_disp(disp, sizeof disp, in->imm);
        return snprintf(buf, len, "%-8s [%s%s], %s", m, reg(in->ra), disp, reg(in->rb));
    case F_J: return snprintf(buf, len, "%-8s 0x%x", m, pc + 4u + (uint32_t)in->imm);
    case F_A32: return snprintf(buf, len, "%-8s 0x%x", m, (uint32_t)in->imm);
    case F_IMM: return snprintf(buf, len, "%-8s 0x%x", m, (uint32_t)in->imm);
    case F_PIN: return snprintf(buf, len, "%-8s %s, 0x%x", m, reg(in->ra), (uint32_t)in->imm);
    case F_POUT: return snprintf(buf, len, "%-8s 0x%x, %s", m, (uint32_t)in->imm, reg(in->rb));
    case F_CRW: return snprintf(buf, len, "%-8s %s, %s", m, cr(in->ra), reg(in->rb));
    case F_CRR: return snprintf(buf, len, "%-8s %s, %s", m, reg(in->ra), cr(in->rb));
    }
    return snprintf(buf, len, "?");
}

int cpu_op_by_mnem(const char *mnem) {
    for (int op = 0; op < OP_COUNT; op++)
        if (strcmp(cpu_isa[op].mnem, mnem) == 0) return op;
    return OP_INVALID;
}

const char *cpu_sens_name(int s) {
    static const char *const n[SENS_COUNT] = {"innocuous", "control", "mode", "location", "traps"};
    return s >= 0 && s < SENS_COUNT ? n[s] : "?";
}

const char *cpu_behaviour_name(int b) {
    static const char *const n[BEHAVIOUR_COUNT] = {"-", "trap", "silent", "leak"};
    return b >= 0 && b < BEHAVIOUR_COUNT ? n[b] : "?";
}

int cpu_behaviour_by_name(const char *name) {
    for (int b = TRAP; b < BEHAVIOUR_COUNT; b++)
        if (strcmp(cpu_behaviour_name(b), name) == 0) return b;
    return -1;
}
