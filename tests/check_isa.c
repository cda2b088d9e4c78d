/* tests/check_isa.c -- the instruction table and the pure decoder. */
#include <check.h>
#include <string.h>

#include "cpu/isa.h"

Suite *suite_isa(void);

/* Every row: encode a representative instruction, decode it back. */
START_TEST(test_encode_decode_every_op) {
    int op = _i;
    cpu_insn in = {
        .op = (uint8_t)op, .ra = 3, .rb = 5, .size = (uint8_t)cpu_fmt_size(cpu_isa[op].fmt)};
    int fmt = cpu_isa[op].fmt;
    in.imm = (fmt == F_RI32 || fmt == F_A32)                   ? 0x12345678
             : (fmt == F_IMM || fmt == F_PIN || fmt == F_POUT) ? 0x80
                                                               : -8;
    uint32_t w[2] = {0, 0};
    int n = cpu_encode(&in, w);
    ck_assert_int_eq(n, in.size);
    ck_assert_uint_eq(w[0] & 0xff, cpu_isa[op].code);
    cpu_insn out = cpu_decode(w[0], w[1]);
    ck_assert_int_eq(out.op, op);
    ck_assert_int_eq(out.ra, 3);
    ck_assert_int_eq(out.rb, 5);
    ck_assert_int_eq(out.imm, in.imm);
    ck_assert_int_eq(out.size, in.size);
}
END_TEST

START_TEST(test_parts_follow_opcode_bit) {
    for (int op = 0; op < OP_COUNT; op++)
        ck_assert_msg((cpu_isa[op].part == SYSTEM) == (cpu_isa[op].code >= 0x80), "%s",
                      cpu_isa[op].mnem);
}
END_TEST

START_TEST(test_invalid_opcodes) {
    cpu_insn in = cpu_decode(0x00000000, 0);
    ck_assert_int_eq(in.op, OP_INVALID);
    in = cpu_decode(0xdeadbeff, 0);
    ck_assert_int_eq(in.op, OP_INVALID);
    ck_assert_uint_eq((uint32_t)in.imm, 0xdeadbeff);
    char buf[64];
    cpu_disasm(&in, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, ".word 0xdeadbeff");
}
END_TEST

START_TEST(test_disasm_forms) {
    char buf[64];
    cpu_insn in = {.op = OP_LD, .ra = 1, .rb = 15, .size = 4, .imm = -4};
    cpu_disasm(&in, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "ld       r1, [sp-4]");
    in = (cpu_insn){.op = OP_JL, .size = 4, .imm = -12};
    cpu_disasm(&in, 0x100, buf, sizeof buf);
    ck_assert_str_eq(buf, "jl       0xf8");
    in = (cpu_insn){.op = OP_WRCR, .ra = CR_PTBR, .rb = 2, .size = 4};
    cpu_disasm(&in, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "wrcr     ptbr, r2");
    in = (cpu_insn){.op = OP_OUT, .rb = 0, .size = 4, .imm = 0x3f8};
    cpu_disasm(&in, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "out      0x3f8, r0");
}
END_TEST

START_TEST(test_mnemonics_unique_and_found) {
    for (int op = 0; op < OP_COUNT; op++)
        ck_assert_int_eq(cpu_op_by_mnem(cpu_isa[op].mnem), op);
    ck_assert_int_eq(cpu_op_by_mnem("bogus"), OP_INVALID);
}
END_TEST

START_TEST(test_configurable_set) {
    ck_assert(cpu_op_configurable(OP_POPF));
    ck_assert(cpu_op_configurable(OP_SMSW));
    ck_assert(!cpu_op_configurable(OP_ADD));
    ck_assert(!cpu_op_configurable(OP_SYSCALL));
    ck_assert(!cpu_op_configurable(OP_VMCALL));
    ck_assert_int_eq(cpu_isa[OP_POPF].x86, SILENT);
    ck_assert_int_eq(cpu_isa[OP_PUSHF].x86, LEAK);
}
END_TEST

Suite *suite_isa(void) {
    Suite *s = suite_create("isa");
    TCase *t = tcase_create("table");
    tcase_add_loop_test(t, test_encode_decode_every_op, 0, OP_COUNT);
    tcase_add_test(t, test_parts_follow_opcode_bit);
    tcase_add_test(t, test_invalid_opcodes);
    tcase_add_test(t, test_disasm_forms);
    tcase_add_test(t, test_mnemonics_unique_and_found);
    tcase_add_test(t, test_configurable_set);
    suite_add_tcase(s, t);
    return s;
}
