/* tests/check_snapshot.c -- saving and restoring a machine: a restored
 * machine runs on exactly as the original did (registers, memory, cycles,
 * console, TLB, decoded code), into the same or another machine, and
 * unchanged pages are shared between successive snapshots (and pages of
 * zeros within one). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "cpu/snapshot.h"

Suite *suite_snapshot(void);

/* a program that writes memory, prints, loops and rewrites its own code */
static const char PROG[] = "        .org 0x1000\n"
                           "start:  li    sp, 0x8000\n"
                           "        li    r1, 0\n"
                           "        li    r2, 0x3000\n"
                           "loop:   st    [r2], r1\n"
                           "        addi  r2, 4\n"
                           "        addi  r1, 1\n"
                           "        li    r3, 'a'\n"
                           "        add   r3, r1\n"
                           "        out   0x3f8, r3\n"
                           "        cmpi  r1, 20\n"
                           "        jl    loop\n"
                           "        li    r4, patch\n"
                           "        li    r5, 42\n"
                           "        st    [r4+4], r5\n" /* li r6, 99 becomes li r6, 42 */
                           "patch:  li    r6, 99\n"
                           "        hlt\n";

static cpu_t *machine(void) {
    cpu_t *c = cpu_new(64 * 1024);
    ck_assert_ptr_nonnull(c);
    asm_image img;
    char *err = NULL;
    ck_assert_int_eq(asm_assemble(PROG, strlen(PROG), "prog.s", NULL, &img, &err), 0);
    for (int i = 0; i < img.nchunks; i++)
        ck_assert_int_eq(cpu_phys_write(c, img.chunks[i].addr, img.chunks[i].data, img.chunks[i].len), 0);
    c->pc = img.entry;
    asm_image_free(&img);
    return c;
}

static void same_state(const cpu_t *a, const cpu_t *b) {
    ck_assert(memcmp(a->r, b->r, sizeof a->r) == 0);
    ck_assert_uint_eq(a->pc, b->pc);
    ck_assert_uint_eq(a->steps, b->steps);
    ck_assert_uint_eq(a->cycles, b->cycles);
    ck_assert_uint_eq(cpu_get_flags(a), cpu_get_flags(b));
    ck_assert(memcmp(a->mem, b->mem, a->mem_size) == 0);
    size_t la, lb;
    const char *ca = cpu_console(a, &la), *cb = cpu_console(b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(ca, cb, la) == 0);
}

START_TEST(test_restore_and_run_again) {
    cpu_t *ref = machine();
    ck_assert_int_eq(cpu_run(ref, 1000), CPU_EXIT_HALT);
    ck_assert_uint_eq(ref->r[6], 42); /* the rewritten instruction ran */
    for (uint64_t at = 0; at < ref->steps; at += 7) {
        cpu_t *c = machine();
        cpu_run(c, at);
        cpu_snapshot *s = cpu_snapshot_take(c, NULL);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(cpu_snapshot_steps(s), c->steps);
        ck_assert_int_eq(cpu_run(c, 1000), CPU_EXIT_HALT);
        same_state(c, ref);
        ck_assert_int_eq(cpu_snapshot_restore(c, s), 0); /* back in time, same machine */
        ck_assert_uint_eq(c->steps, cpu_snapshot_steps(s));
        ck_assert_int_eq(cpu_run(c, 1000), CPU_EXIT_HALT);
        same_state(c, ref);
        cpu_t *other = cpu_new(64 * 1024); /* into another machine */
        ck_assert_int_eq(cpu_snapshot_restore(other, s), 0);
        ck_assert_int_eq(cpu_run(other, 1000), CPU_EXIT_HALT);
        same_state(other, ref);
        cpu_free(other);
        cpu_snapshot_free(s);
        cpu_free(c);
    }
    cpu_free(ref);
}
END_TEST

START_TEST(test_pages_are_shared) {
    cpu_t *c = machine();
    cpu_snapshot *a = cpu_snapshot_take(c, NULL);
    /* the program's page, and one page of zeros shared by the 15 others */
    ck_assert_uint_ge(cpu_snapshot_own_bytes(a), 2 * 4096);
    ck_assert_uint_le(cpu_snapshot_own_bytes(a), 3 * 4096);
    cpu_run(c, 5); /* writes one data page at most */
    cpu_snapshot *b = cpu_snapshot_take(c, a);
    ck_assert_uint_le(cpu_snapshot_own_bytes(b), 2 * 4096 + 1024);
    cpu_snapshot_free(a); /* b keeps the shared pages alive */
    cpu_t *d = cpu_new(64 * 1024);
    ck_assert_int_eq(cpu_snapshot_restore(d, b), 0);
    ck_assert(memcmp(c->mem, d->mem, c->mem_size) == 0);
    cpu_snapshot_free(b);
    cpu_free(d);
    cpu_free(c);
}
END_TEST

START_TEST(test_size_mismatch) {
    cpu_t *c = machine(), *small = cpu_new(8192);
    cpu_snapshot *s = cpu_snapshot_take(c, NULL);
    ck_assert_int_eq(cpu_snapshot_restore(small, s), -1);
    cpu_snapshot_free(s);
    cpu_free(small);
    cpu_free(c);
}
END_TEST

Suite *suite_snapshot(void) {
    Suite *s = suite_create("snapshot");
    TCase *t = tcase_create("snapshot");
    tcase_add_test(t, test_restore_and_run_again);
    tcase_add_test(t, test_pages_are_shared);
    tcase_add_test(t, test_size_mismatch);
    suite_add_tcase(s, t);
    return s;
}
