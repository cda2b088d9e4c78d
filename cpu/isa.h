/* cpu/isa.h -- the instruction set: opcodes, formats, encoding, decoding.
 *
 * Encoding (little-endian 32-bit words):
 *   word 0:  bits 0-7 opcode | bits 8-11 ra | bits 12-15 rb | bits 16-31 imm16
 *   word 1:  imm32, present only for the 8-byte formats (F_RI32, F_A32)
 * Which of ra/rb/imm16 an instruction uses is fixed by its format.  The
 * opcode byte's top bit separates the user part (0x00-0x7f) from the system
 * part (0x80-0xff) of the ISA.  Opcode 0x00 is never valid, so running into
 * zeroed memory raises #UD.
 */
#ifndef VLAB_CPU_ISA_H
#define VLAB_CPU_ISA_H

#include <stddef.h>
#include <stdint.h>

typedef enum cpu_fmt {
    F_NONE, /* mnem                         */
    F_R,    /* mnem ra                      */
    F_RR,   /* mnem ra, rb                  */
    F_RI,   /* mnem ra, simm16              */
    F_RI32, /* mnem ra, imm32         (8 B) */
    F_LD,   /* mnem ra, [rb + simm16]       */
    F_ST,   /* mnem [ra + simm16], rb       */
    F_J,    /* mnem target   (pc-relative simm16 bytes from the next insn) */
    F_A32,  /* mnem target   (absolute imm32, 8 B)                         */
    F_IMM,  /* mnem imm8                    */
    F_PIN,  /* mnem ra, port16              */
    F_POUT, /* mnem port16, rb              */
    F_CRW,  /* mnem crN, rb  (crN in ra)    */
    F_CRR,  /* mnem ra, crN  (crN in rb)    */
    F_COUNT
} cpu_fmt;

typedef enum cpu_part { USER, SYSTEM } cpu_part;

typedef enum cpu_sens { NONE, CONTROL, MODE, LOCATION, TRAPS, SENS_COUNT } cpu_sens;

/* What a configurable (sensitive) instruction does at CPL > 0. */
typedef enum cpu_behaviour { NA, TRAP, SILENT, LEAK, BEHAVIOUR_COUNT } cpu_behaviour;

typedef enum cpu_op {
#define ISA(name, code, mnem, fmt, part, sens, x86, cyc, doc) OP_##name,
#include "cpu/isa.def"
#undef ISA
    OP_COUNT,
    OP_INVALID = OP_COUNT, /* decoded from an unassigned opcode byte: #UD */
    OP_XPAGE,              /* an 8-byte instruction straddling a page (executor-internal) */
    OP_UNDECODED,          /* predecode slot not filled yet (executor-internal) */
    OP_PAGEEND,            /* the sentinel slot after a page's last one (executor-internal) */
    OP_INTERNAL_COUNT
} cpu_op;

/* One row of isa.def, as data. */
typedef struct cpu_isa_info {
    const char *mnem;
    const char *doc;
    uint8_t code;
    uint8_t fmt;  /* cpu_fmt */
    uint8_t part; /* cpu_part */
    uint8_t sens; /* cpu_sens */
    uint8_t x86;  /* cpu_behaviour */
    uint16_t cycles;
} cpu_isa_info;

extern const cpu_isa_info cpu_isa[OP_COUNT];

/* A decoded instruction.  Decoding is a pure function of the bytes. */
typedef struct cpu_insn {
    uint8_t op;   /* cpu_op */
    uint8_t ra;   /* first register field (or control register number) */
    uint8_t rb;   /* second register field */
    uint8_t size; /* 4 or 8 */
    int32_t imm;  /* simm16 sign-extended, imm16 for ports/int, imm32 for 8-byte formats */
} cpu_insn;

/* Control registers (wrcr/rdcr operand names in brackets). */
enum {
    CR_STATUS = 0, /* [status] machine status: CPL (bits 0-1, read-only), TSD, PG */
    CR_VBR = 1,    /* [vbr]    vector table base, physical */
    CR_FADDR = 2,  /* [faddr]  faulting virtual address of the last page fault */
    CR_PTBR = 3,   /* [ptbr]   page directory base, physical */
    CR_KSP = 4,    /* [ksp]    stack pointer loaded on a trap from CPL>0 */
    CPU_NCR = 5
};
extern const char *const cpu_cr_names[CPU_NCR];

/* Status register bits. */
#define CPU_ST_CPL 0x3u      /* read-only view of the current privilege level */
#define CPU_ST_TSD (1u << 2) /* rdtsc faults at CPL>0 (x86 CR4.TSD) */
#define CPU_ST_PG (1u << 31) /* paging enabled (x86 CR0.PG) */
#define CPU_ST_WRITABLE (CPU_ST_TSD | CPU_ST_PG)

/* FLAGS bits (x86 positions where x86 has them). */
#define CPU_FL_CF (1u << 0)
#define CPU_FL_ZF (1u << 6)
#define CPU_FL_SF (1u << 7)
#define CPU_FL_IF (1u << 9)
#define CPU_FL_OF (1u << 11)
#define CPU_FL_CPL_SHIFT 12 /* bits 12-13: read-only copy of the CPL (x86 shows it via PUSH CS) */
#define CPU_FL_ARITH (CPU_FL_CF | CPU_FL_ZF | CPU_FL_SF | CPU_FL_OF)

#define CPU_REG_SP 15

int cpu_fmt_size(int fmt);
/* Operand shape of a format, as text ("ra, [rb+simm16]"). */
const char *cpu_fmt_operands(int fmt);

/* Decode the instruction whose first word is w0 and (for 8-byte formats)
 * second word w1.  Never fails: unknown opcodes decode to OP_INVALID. */
cpu_insn cpu_decode(uint32_t w0, uint32_t w1);

/* Encode a decoded instruction back into its words; returns the size. */
int cpu_encode(const cpu_insn *in, uint32_t out[2]);

/* Disassemble into buf; pc is the instruction's own address (for targets).
 * Returns the length written (snprintf semantics). */
int cpu_disasm(const cpu_insn *in, uint32_t pc, char *buf, size_t len);

/* Mnemonic lookup for the assembler: OP_INVALID if unknown. */
int cpu_op_by_mnem(const char *mnem);

const char *cpu_sens_name(int sens);
const char *cpu_behaviour_name(int b);
int cpu_behaviour_by_name(const char *name); /* -1 if unknown */

/* Is this an instruction whose policy can be set (sensitive, not TRAPS)? */
static inline int cpu_op_configurable(int op) {
    return op < OP_COUNT && cpu_isa[op].sens != NONE && cpu_isa[op].sens != TRAPS;
}

#endif
