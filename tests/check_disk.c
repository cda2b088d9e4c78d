/* tests/check_disk.c -- the disk: the controller on a bare machine (reads,
 * writes, every error code, the interrupt at its deterministic cycle, DMA
 * that replaces decoded code, determinism), the hypervisor's device model
 * (the same driver in a VM under every technique sees the same bytes; DMA
 * outside guest memory), and the Lua API with its sandbox (no image outside
 * the scenario's folder, no writing a base image, files only in --out, the
 * scratch folder removed at the end).  hypervisor/disk.h, docs/devices.md. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "hypervisor/blockdev.h"
#include "hypervisor/disk.h"
#include "hypervisor/hv.h"
#include "runvlab.h"

Suite *suite_disk(void);

/* ---- fixtures ---------------------------------------------------------------------------- */

static char dir[64]; /* a fresh folder per test */

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/vlab-disk-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_in(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *data, size_t n) {
    char p[128];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A 16-sector image whose sector s holds bytes (s * 7 + i) & 0xff. */
static disk_media *image(const char *name, int writable) {
    char p[128], err[160];
    path_in(p, sizeof p, name);
    ck_assert_msg(blockdev_create_raw(p, 16, err, sizeof err) == 0, "%s", err);
    blockdev *b = blockdev_open_raw(p, 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    uint8_t sec[512];
    for (uint32_t s = 0; s < 16; s++) {
        for (int i = 0; i < 512; i++)
            sec[i] = (uint8_t)(s * 7 + i);
        ck_assert_int_eq(blockdev_write(b, s, 1, sec), 0);
    }
    blockdev_close(b);
    b = blockdev_open_raw(p, writable, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    disk_media *m = disk_media_new(b);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* The driver every test runs: r1 = sector, r2 = count, r3 = buffer, r4 =
 * command; the handler leaves the status at the interrupt in r5 and after
 * the acknowledgement in r6, and r7 = 1 once it ran. */
static const char DRIVER[] =
    "start:  li    sp, 0x8000\n"
    "        li    r9, 0\n"
    "        wrcr  vbr, r9\n"
    "        li    r9, handler\n"
    "        li    r8, 46 * 4\n"
    "        st    [r8], r9\n"
    "        out   0x1f2, r1\n"
    "        out   0x1f3, r2\n"
    "        out   0x1f4, r3\n"
    "cmd:    out   0x1f0, r4\n"
    "again:  out   0x1f0, r10\n" /* r10 != 0: a second command, while busy */
    "        sti\n"
    "wait:   hlt\n"
    "        cmpi  r7, 1\n"
    "        jne   wait\n"
    "        cli\n"
    "        hlt\n"
    "handler: in   r5, 0x1f1\n"
    "        out   0x1f1, r5\n"
    "        in    r6, 0x1f1\n"
    "        li    r7, 1\n"
    "        iret\n";

static asm_image assemble(const char *src) {
    asm_image img;
    char *err = NULL;
    ck_assert_msg(asm_assemble(src, strlen(src), "driver.s", NULL, &img, &err) == 0, "%s",
                  err ? err : "");
    return img;
}

static uint32_t sym(const asm_image *img, const char *name) {
    uint32_t v = 0;
    ck_assert_int_eq(asm_symbol_value(img, name, &v), 0);
    return v;
}

typedef struct bare {
    cpu_t *c;
    disk_ctl *d;
    asm_image img;
} bare;

static bare machine(disk_media *m, uint32_t mem, uint32_t lba, uint32_t count, uint32_t addr,
                    uint32_t cmd) {
    bare b;
    char err[160];
    b.c = cpu_new(mem);
    ck_assert_ptr_nonnull(b.c);
    b.d = NULL;
    if (m) {
        b.d = disk_attach_native(b.c, m, err, sizeof err);
        ck_assert_msg(b.d != NULL, "%s", err);
    }
    b.img = assemble(DRIVER);
    for (int k = 0; k < b.img.nchunks; k++)
        ck_assert_int_eq(
            cpu_phys_write(b.c, b.img.chunks[k].addr, b.img.chunks[k].data, b.img.chunks[k].len),
            0);
    b.c->pc = b.img.entry;
    b.c->r[1] = lba;
    b.c->r[2] = count;
    b.c->r[3] = addr;
    b.c->r[4] = cmd;
    return b;
}

static void bare_free(bare *b) {
    disk_detach_native(b->c, b->d);
    asm_image_free(&b->img);
    cpu_free(b->c);
}

/* Run to the command, then to the handler: the cycles between, less what
 * the CPU adds on its own (hlt retires after idling to the deadline, then
 * the interrupt's delivery costs cost_trap): the disk's latency. */
static uint64_t run_timed(bare *b) {
    cpu_break_add(b->c, sym(&b->img, "cmd"));
    cpu_break_add(b->c, sym(&b->img, "handler"));
    ck_assert_int_eq(cpu_run(b->c, 100000), CPU_EXIT_BREAK);
    uint64_t t0 = b->c->cycles;
    ck_assert_int_eq(cpu_run(b->c, 100000), CPU_EXIT_BREAK);
    ck_assert_uint_eq(b->c->pc, sym(&b->img, "handler"));
    uint64_t t1 = b->c->cycles;
    ck_assert_int_eq(cpu_run(b->c, 100000), CPU_EXIT_HALT);
    return t1 - t0 - b->c->cost[OP_HLT] - b->c->cost_trap;
}

/* ---- the controller on a bare machine ------------------------------------------------------ */

START_TEST(test_read_dma_and_interrupt) {
    disk_media *m = image("a.img", 1);
    bare b = machine(m, 64 * 1024, 2, 3, 0x4000, DISK_CMD_READ);
    uint64_t lat = run_timed(&b);
    /* the interrupt comes request + 3 sectors after the command */
    ck_assert_uint_eq(lat, DISK_COST_REQUEST + 3 * DISK_COST_SECTOR);
    ck_assert_uint_eq(b.c->r[7], 1);
    ck_assert_uint_eq(b.c->r[5], DISK_ST_DONE);
    ck_assert_uint_eq(b.c->r[6], 0); /* acknowledged */
    uint8_t got[3 * 512];
    ck_assert_int_eq(cpu_phys_read(b.c, 0x4000, got, sizeof got), 0);
    for (int i = 0; i < (int)sizeof got; i++)
        ck_assert_uint_eq(got[i], (uint8_t)((2 + i / 512) * 7 + i % 512));
    ck_assert_uint_eq(b.d->requests, 1);
    ck_assert_uint_eq(b.d->sectors_read, 3);
    ck_assert_uint_eq(b.d->failures, 0);
    bare_free(&b);
    disk_media_unref(m);
}
END_TEST

START_TEST(test_write_reaches_the_image) {
    disk_media *m = image("w.img", 1);
    bare b = machine(m, 64 * 1024, 7, 2, 0x5000, DISK_CMD_WRITE);
    uint8_t pat[1024];
    for (int i = 0; i < 1024; i++)
        pat[i] = (uint8_t)(0xa5 ^ i);
    ck_assert_int_eq(cpu_phys_write(b.c, 0x5000, pat, sizeof pat), 0);
    ck_assert_uint_eq(run_timed(&b), DISK_COST_REQUEST + 2 * DISK_COST_SECTOR);
    ck_assert_uint_eq(b.c->r[5], DISK_ST_DONE);
    bare_free(&b);
    /* in the file itself, and its neighbours untouched */
    char p[128], err[160];
    path_in(p, sizeof p, "w.img");
    blockdev *r = blockdev_open_raw(p, 0, err, sizeof err);
    ck_assert_ptr_nonnull(r);
    uint8_t got[3 * 512];
    ck_assert_int_eq(blockdev_read(r, 6, 3, got), 0);
    ck_assert_uint_eq(got[0], (uint8_t)(6 * 7));
    ck_assert(memcmp(got + 512, pat, sizeof pat) == 0);
    blockdev_close(r);
    disk_media_unref(m);
}
END_TEST

START_TEST(test_latency_is_a_cost) {
    disk_media *m = image("c.img", 1);
    m->cost_request = 9000;
    m->cost_sector = 100;
    bare b = machine(m, 128 * 1024, 0, 16, 0x10000, DISK_CMD_READ); /* the whole disk */
    ck_assert_uint_eq(run_timed(&b), 9000 + 16 * 100);
    ck_assert_uint_eq(b.c->r[5], DISK_ST_DONE);
    ck_assert_uint_eq(b.d->sectors_read, 16);
    bare_free(&b);
    disk_media_unref(m);
}
END_TEST

/* Bad requests: the error status, with its code, and the interrupt after
 * the request's overhead alone; nothing reaches memory. */
static const struct {
    const char *name;
    uint32_t lba, count, addr, cmd;
    int readonly, code;
} bad[] = {
    {"sector past the end", 16, 1, 0x4000, DISK_CMD_READ, 0, DISK_E_RANGE},
    {"range sticking out", 15, 2, 0x4000, DISK_CMD_READ, 0, DISK_E_RANGE},
    {"huge sector", 0xfffffff0u, 1, 0x4000, DISK_CMD_READ, 0, DISK_E_RANGE},
    {"buffer past memory", 0, 1, 0xff00, DISK_CMD_READ, 0, DISK_E_ADDR},
    {"buffer wraps", 0, 2, 0xfffffe00u, DISK_CMD_WRITE, 0, DISK_E_ADDR},
    {"write to a read-only disk", 0, 1, 0x4000, DISK_CMD_WRITE, 1, DISK_E_READONLY},
    {"no such command", 0, 1, 0x4000, 9, 0, DISK_E_CMD},
    {"count 0", 0, 0, 0x4000, DISK_CMD_READ, 0, DISK_E_COUNT},
    {"count above the maximum", 0, 129, 0x4000, DISK_CMD_READ, 0, DISK_E_COUNT},
};

START_TEST(test_bad_requests) {
    disk_media *m = image("e.img", !bad[_i].readonly);
    bare b = machine(m, 64 * 1024, bad[_i].lba, bad[_i].count, bad[_i].addr, bad[_i].cmd);
    uint8_t before[4096], after[4096];
    ck_assert_int_eq(cpu_phys_read(b.c, 0x4000, before, sizeof before), 0);
    ck_assert_uint_eq(run_timed(&b), DISK_COST_REQUEST);
    ck_assert_msg(b.c->r[5] == (DISK_ST_DONE | DISK_ST_ERROR | (uint32_t)bad[_i].code << 8),
                  "%s: status 0x%x", bad[_i].name, b.c->r[5]);
    ck_assert_uint_eq(b.c->r[6], 0);
    ck_assert_uint_eq(b.d->failures, 1);
    ck_assert_int_eq(cpu_phys_read(b.c, 0x4000, after, sizeof after), 0);
    ck_assert_msg(memcmp(before, after, sizeof before) == 0, "%s: memory changed", bad[_i].name);
    ck_assert_str_ne(disk_error_name(bad[_i].code), "?");
    bare_free(&b);
    disk_media_unref(m);
}
END_TEST

START_TEST(test_truncated_image_is_a_device_error) {
    disk_media *m = image("t.img", 1);
    char p[128];
    path_in(p, sizeof p, "t.img");
    ck_assert_int_eq(truncate(p, 4 * 512), 0); /* the file shrinks under the machine */
    bare b = machine(m, 64 * 1024, 8, 1, 0x4000, DISK_CMD_READ);
    run_timed(&b);
    ck_assert_uint_eq(b.c->r[5], DISK_ST_DONE | DISK_ST_ERROR | DISK_E_MEDIA << 8);
    ck_assert(strstr(m->dev->error, "truncated") != NULL);
    bare_free(&b);
    disk_media_unref(m);
    /* an image that is not whole sectors is refused when opened */
    char junk[1000] = {0}, err[160];
    write_file("junk.img", junk, sizeof junk);
    path_in(p, sizeof p, "junk.img");
    ck_assert_ptr_null(blockdev_open_raw(p, 0, err, sizeof err));
    ck_assert(strstr(err, "whole number of 512-byte sectors") != NULL);
}
END_TEST

START_TEST(test_command_while_busy_is_refused) {
    disk_media *m = image("b.img", 1);
    bare b = machine(m, 64 * 1024, 1, 1, 0x4000, DISK_CMD_READ);
    b.c->r[10] = DISK_CMD_WRITE; /* the second out, right after */
    run_timed(&b);
    ck_assert_uint_eq(b.c->r[5], DISK_ST_DONE); /* the first request went on */
    ck_assert_uint_eq(b.d->requests, 1);
    ck_assert_uint_eq(b.d->sectors_written, 0);
    uint8_t x;
    ck_assert_int_eq(cpu_phys_read(b.c, 0x4000, &x, 1), 0);
    ck_assert_uint_eq(x, 7);
    bare_free(&b);
    disk_media_unref(m);
}
END_TEST

START_TEST(test_no_disk_reads_open_bus) {
    cpu_t *c = cpu_new(16 * 1024);
    asm_image img = assemble("in r1, 0x1f5\nin r2, 0x1f1\nhlt\n");
    ck_assert_int_eq(cpu_phys_write(c, 0, img.chunks[0].data, img.chunks[0].len), 0);
    ck_assert_int_eq(cpu_run(c, 100), CPU_EXIT_HALT);
    ck_assert_uint_eq(c->r[1], 0xffffffffu);
    ck_assert_uint_eq(c->r[2], 0xffffffffu);
    asm_image_free(&img);
    cpu_free(c);
}
END_TEST

/* What a reader of the trace sees at pc 0x3000: the immediates of the
 * instructions it decodes there, from the trace's page snapshots. */
typedef struct seen {
    cpu_trace_reader rd;
    uint32_t imm[4];
    int n;
} seen;

static void seen_insn(void *ud, const cpu_stamped *st) {
    seen *s = ud;
    if (st->ev.kind == EV_INSN && st->ev.pc == 0x3000 && s->n < 4) s->imm[s->n++] = st->ev.y;
}

static void seen_sink(void *ud, const cpu_event *ev, size_t n) {
    seen *s = ud;
    cpu_reader_feed(&s->rd, ev, n, seen_insn, s);
}

/* DMA over code the CPU has decoded: the next run of it is the new code,
 * and the trace shows the new code too (a fresh snapshot of the page). */
START_TEST(test_dma_replaces_decoded_code) {
    disk_media *m = image("code.img", 1);
    asm_image newcode = assemble(".org 0x3000\nli r11, 2\nret\n");
    uint8_t sec[512] = {0};
    memcpy(sec, newcode.chunks[0].data, newcode.chunks[0].len);
    ck_assert_int_eq(blockdev_write(m->dev, 5, 1, sec), 0);
    asm_image_free(&newcode);
    cpu_t *c = cpu_new(64 * 1024);
    char err[160];
    disk_ctl *d = disk_attach_native(c, m, err, sizeof err);
    ck_assert_ptr_nonnull(d);
    asm_image img = assemble("start: li sp, 0x8000\n"
                             "       li r9, 0\n"
                             "       wrcr vbr, r9\n"
                             "       li r9, handler\n"
                             "       li r8, 46 * 4\n"
                             "       st [r8], r9\n"
                             "       call 0x3000\n"
                             "       mov r12, r11\n" /* 1: the old code */
                             "       li r1, 5\n"
                             "       out 0x1f2, r1\n"
                             "       li r1, 1\n"
                             "       out 0x1f3, r1\n"
                             "       li r1, 0x3000\n"
                             "       out 0x1f4, r1\n"
                             "       li r1, 1\n"
                             "       out 0x1f0, r1\n" /* read */
                             "       sti\n"
                             "wait:  hlt\n"
                             "       cmpi r7, 1\n"
                             "       jne wait\n"
                             "       call 0x3000\n" /* 2: what the disk brought */
                             "       cli\n"
                             "       hlt\n"
                             "handler: li r7, 1\n"
                             "       out 0x1f1, r7\n"
                             "       iret\n"
                             ".org 0x3000\n"
                             "       li r11, 1\n"
                             "       ret\n");
    for (int k = 0; k < img.nchunks; k++)
        ck_assert_int_eq(
            cpu_phys_write(c, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
    c->pc = 0;
    cpu_trace t;
    cpu_trace_init(&t, 64);
    seen sn = {0};
    cpu_reader_init(&sn.rd);
    cpu_trace_add_sink(&t, seen_sink, &sn);
    t.insns = 1;
    c->trace = &t; /* blocks and page snapshots, as a normal run records them */
    ck_assert_int_eq(cpu_run(c, 100000), CPU_EXIT_HALT);
    cpu_trace_flush(&t);
    ck_assert_uint_eq(c->r[12], 1);
    ck_assert_uint_eq(c->r[11], 2);
    ck_assert_int_eq(sn.n, 2);
    ck_assert_uint_eq(sn.imm[0], 1); /* li r11, 1 */
    ck_assert_uint_eq(sn.imm[1], 2); /* li r11, 2: the reader decoded the new bytes */
    c->trace = NULL;
    cpu_trace_free(&t);
    cpu_reader_free(&sn.rd);
    asm_image_free(&img);
    disk_detach_native(c, d);
    cpu_free(c);
    disk_media_unref(m);
}
END_TEST

typedef struct hashsink {
    uint64_t h;
    size_t n;
} hashsink;

static void hash_sink(void *ud, const cpu_event *ev, size_t n) {
    hashsink *s = ud;
    const uint8_t *p = (const uint8_t *)ev;
    for (size_t i = 0; i < n * sizeof *ev; i++)
        s->h = (s->h ^ p[i]) * 1099511628211ull;
    s->n += n;
}

START_TEST(test_deterministic) {
    uint64_t h[2], cyc[2];
    for (int run = 0; run < 2; run++) {
        char name[16];
        snprintf(name, sizeof name, "d%d.img", run);
        disk_media *m = image(name, 1);
        bare b = machine(m, 64 * 1024, 3, 4, 0x4000, DISK_CMD_READ);
        cpu_trace t;
        cpu_trace_init(&t, 64);
        hashsink hs = {1469598103934665603ull, 0};
        cpu_trace_add_sink(&t, hash_sink, &hs);
        t.insns = 1;
        b.c->trace = &t;
        ck_assert_int_eq(cpu_run(b.c, 100000), CPU_EXIT_HALT);
        cpu_trace_flush(&t);
        ck_assert_uint_gt(hs.n, 20);
        h[run] = hs.h;
        cyc[run] = b.c->cycles;
        b.c->trace = NULL;
        cpu_trace_free(&t);
        bare_free(&b);
        disk_media_unref(m);
    }
    ck_assert_uint_eq(h[0], h[1]);
    ck_assert_uint_eq(cyc[0], cyc[1]);
}
END_TEST

/* ---- the hypervisor's device model --------------------------------------------------------- */

static const char *const TECH[] = {"trap-and-emulate", "binary-translation", "vt-x", "vt-x shadow"};


typedef struct virt {
    cpu_t *host;
    hv *h;
    hv_vm *vm;
} virt;

static virt vm_with(const char *tech, disk_media *m, uint32_t mem, const char *const *files) {
    virt v;
    char err[160];
    v.host = cpu_new(4 << 20);
    cpu_policy_preset(v.host, "strict");
    v.h = hv_new(v.host, err, sizeof err);
    ck_assert_ptr_nonnull(v.h);
    int t = strncmp(tech, "vt-x", 4) == 0 ? HV_VTX : hv_technique_by_name(tech);
    v.vm = hv_vm_new(v.h, "guest", mem, t, 1, err, sizeof err);
    ck_assert_msg(v.vm != NULL, "%s", err);
    v.vm->vtx_shadow = strcmp(tech, "vt-x shadow") == 0;
    ck_assert_int_eq(hv_vm_attach_disk(v.h, v.vm, m, err, sizeof err), 0);
    ck_assert_int_ne(hv_vm_attach_disk(v.h, v.vm, m, err, sizeof err), 0); /* one disk per VM */
    for (int i = 0; files[i]; i++) {
        asm_image img = assemble_file(files[i]);
        for (int k = 0; k < img.nchunks; k++)
            ck_assert_int_eq(hv_vm_write_phys(v.h, v.vm, img.chunks[k].addr, img.chunks[k].data,
                                              img.chunks[k].len),
                             0);
        if (i == 0) v.vm->vcpu.pc = img.entry;
        asm_image_free(&img);
    }
    return v;
}

static void virt_free(virt *v) {
    hv_free(v->h);
    cpu_free(v->host);
}

/* The slides' disk kernel reads sector 0 and prints its first line: the
 * same console and the same DMA buffer natively and in every kind of VM. */
START_TEST(test_vm_read_equivalent) {
    static const char *const files[] = {"scenarios/guests/tiny/disk-kernel.s",
                                        "scenarios/guests/tiny/disk-user.s", NULL};
    static const char line[] = "sector zero speaking\n";
    uint8_t sec[512] = {0};
    memcpy(sec, line, sizeof line - 1);
    /* natively */
    disk_media *m = image("n.img", 1);
    ck_assert_int_eq(blockdev_write(m->dev, 0, 1, sec), 0);
    cpu_t *c = cpu_new(1 << 20);
    char err[160];
    disk_ctl *d = disk_attach_native(c, m, err, sizeof err);
    for (int i = 0; files[i]; i++) {
        asm_image img = assemble_file(files[i]);
        for (int k = 0; k < img.nchunks; k++)
            ck_assert_int_eq(
                cpu_phys_write(c, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
        if (i == 0) c->pc = img.entry;
        asm_image_free(&img);
    }
    ck_assert_int_eq(cpu_run(c, 1000000), CPU_EXIT_HALT);
    size_t clen;
    const char *con = cpu_console(c, &clen);
    ck_assert_uint_eq(clen, sizeof line - 1);
    ck_assert(memcmp(con, line, clen) == 0);
    uint8_t nbuf[512];
    ck_assert_int_eq(cpu_phys_read(c, 0x9000, nbuf, sizeof nbuf), 0);
    ck_assert(memcmp(nbuf, sec, sizeof sec) == 0);
    /* in each VM */
    for (size_t t = 0; t < sizeof TECH / sizeof TECH[0]; t++) {
        virt v = vm_with(TECH[t], m, 1 << 20, files);
        ck_assert_int_eq(hv_run(v.h, 10000000), CPU_EXIT_HALT);
        ck_assert_msg(v.vm->console_len == clen && memcmp(v.vm->console, con, clen) == 0,
                      "%s: console '%s'", TECH[t], v.vm->console ? v.vm->console : "");
        uint8_t vbuf[512];
        ck_assert_int_eq(hv_vm_read_phys(v.h, v.vm, 0x9000, vbuf, sizeof vbuf), 0);
        ck_assert_msg(memcmp(vbuf, nbuf, sizeof vbuf) == 0, "%s: DMA buffer", TECH[t]);
        const disk_ctl *vd = hv_vm_disk(v.vm);
        ck_assert_uint_eq(vd->sectors_read, 1);
        ck_assert_uint_ge(v.vm->vcpu.injections, 1);
        ck_assert_uint_ne(v.host->cycles, c->cycles); /* time is all that may differ */
        virt_free(&v);
    }
    disk_detach_native(c, d);
    cpu_free(c);
    disk_media_unref(m);
}
END_TEST

/* The driver of the bare-machine tests in a VM: a buffer outside the VM's
 * guest-physical memory is the guest's device error, and so is a sector
 * past the end; a good write lands in the image. */
START_TEST(test_vm_errors_and_write) {
    disk_media *m = image("v.img", 1);
    write_file("driver.s", DRIVER, sizeof DRIVER - 1);
    char p[128];
    path_in(p, sizeof p, "driver.s");
    const char *files[] = {p, NULL};
    static const struct {
        uint32_t lba, count, addr, cmd, status;
    } k[] = {
        {0, 1, 0xff00, DISK_CMD_READ, DISK_ST_DONE | DISK_ST_ERROR | DISK_E_ADDR << 8},
        {16, 1, 0x4000, DISK_CMD_READ, DISK_ST_DONE | DISK_ST_ERROR | DISK_E_RANGE << 8},
        {9, 1, 0x0000, DISK_CMD_WRITE, DISK_ST_DONE},
    };
    for (size_t t = 0; t < sizeof TECH / sizeof TECH[0]; t++)
        for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
            virt v = vm_with(TECH[t], m, 64 * 1024, files);
            v.vm->vcpu.r[1] = k[i].lba;
            v.vm->vcpu.r[2] = k[i].count;
            v.vm->vcpu.r[3] = k[i].addr;
            v.vm->vcpu.r[4] = k[i].cmd;
            ck_assert_int_eq(hv_run(v.h, 1000000), CPU_EXIT_HALT);
            ck_assert_msg(v.vm->vcpu.r[5] == k[i].status, "%s case %zu: status 0x%x", TECH[t], i,
                          v.vm->vcpu.r[5]);
            ck_assert_uint_eq(v.vm->vcpu.r[6], 0);
            if (k[i].cmd ==
                DISK_CMD_WRITE) { /* guest-physical page 0 (its vector table) went to sector 9 */
                uint8_t got[512], mem[512];
                ck_assert_int_eq(blockdev_read(m->dev, 9, 1, got), 0);
                ck_assert_int_eq(hv_vm_read_phys(v.h, v.vm, 0, mem, sizeof mem), 0);
                ck_assert(memcmp(got, mem, sizeof got) == 0);
                uint32_t handler;
                memcpy(&handler, got + 46 * 4, 4);
                ck_assert_uint_ne(handler, 0); /* the disk vector was in it */
                uint8_t zero[512] = {0};
                ck_assert_int_eq(blockdev_write(m->dev, 9, 1, zero),
                                 0); /* for the next technique */
            }
            virt_free(&v);
        }
    disk_media_unref(m);
}
END_TEST

/* ---- Lua: vlab.disk, attaching it, the sandbox -------------------------------------------- */

static run_result run_scenario(const char *name, const char *lua, const char *out_dir) {
    char p[128];
    write_file(name, lua, strlen(lua));
    path_in(p, sizeof p, name);
    const char *argv[] = {"vlab", p, "--quiet", out_dir ? "--out" : NULL, out_dir, NULL};
    run_result r;
    ck_assert_int_eq(run_vlab(argv, NULL, &r), 0);
    ck_assert_msg(!strstr(r.err, "AddressSanitizer") && !strstr(r.err, "runtime error"), "%s",
                  r.err);
    return r;
}

START_TEST(test_lua_scratch_disk_and_machine) {
    char tmp[128];
    path_in(tmp, sizeof tmp, "tmp");
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    setenv("TMPDIR", tmp, 1);
    run_result r = run_scenario(
        "s.lua",
        "local d = vlab.disk{sectors = 8, latency = 500, per_sector = 5}\n"
        "print(tostring(d), d.sectors, d.readonly, d.kind, d.latency, d.per_sector)\n"
        "expect_eq(d:write(1, 'abc'), 1)\n"
        "expect_eq(d:read(1):sub(1, 4), 'abc\\0')\n"
        "expect(not pcall(d.read, d, 8), 'past the end raises')\n"
        "local m = vlab.machine{ memory = 64 * 1024 }\n"
        "expect_eq(m:disk(), nil)\n"
        "m:attach_disk(d)\n"
        "expect(not pcall(m.attach_disk, m, d), 'one disk per machine')\n"
        "m:load([[\n .org 0x1000\n  li sp, 0x8000\n"
        "  li r1, 0\n  wrcr vbr, r1\n  li r1, h\n  st [r0 + 46*4], r1\n"
        "  li r1, 1\n  out 0x1f2, r1\n  out 0x1f3, r1\n  li r1, 0x2000\n  out 0x1f4, r1\n"
        "  li r1, 1\n  out 0x1f0, r1\n"
        "  sti\nw: hlt\n  jmp w\nh: in r5, 0x1f1\n  cli\n  hlt\n]])\n"
        "m:run()\n"
        "expect_eq(m:read_string(0x2000), 'abc')\n"
        "local s = m:disk()\n"
        "print(s.requests, s.sectors_read, s.error, m.r5)\n",
        NULL);
    unsetenv("TMPDIR");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ck_assert_msg(
        strstr(
            r.out,
            "disk \"scratch\" (scratch, 8 sectors, 4 KiB, read-write)\t8\tfalse\tscratch\t500\t5"),
        "%s", r.out);
    ck_assert_msg(strstr(r.out, "1\t1\tok\t2\n"), "%s", r.out);
    run_result_free(&r);
    /* the private folder is gone with the run */
    char cmd[192];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", tmp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Lua: overlays (linked clones and snapshots) over a base: reads fall
 * through, writes stay in the overlay, the base is untouched; commit and
 * discard; a read-only base refuses a commit; files only in --out; scratch
 * overlays leave nothing behind. */
START_TEST(test_lua_overlays) {
    uint8_t img[4096];
    for (int i = 0; i < (int)sizeof img; i++)
        img[i] = (uint8_t)('a' + i % 26);
    write_file("ro.img", img, sizeof img);
    char tmp[128], out[128];
    path_in(tmp, sizeof tmp, "tmp2");
    path_in(out, sizeof out, "out2");
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_int_eq(mkdir(out, 0700), 0);
    setenv("TMPDIR", tmp, 1);
    run_result r = run_scenario(
        "ov.lua",
        "local base = vlab.disk{sectors = 32}\n"
        "base:write(0, 'base sector 0')\n"
        "local a, b = base:overlay(), base:overlay{file = 'b.cow', cluster = 4}\n"
        "expect_eq(a:read(0):sub(1, 13), 'base sector 0')\n"
        "a:write(1, 'mine')\n"
        "expect_eq(a:read(1):sub(1, 4), 'mine')\n"
        "expect_eq(b:read(1):sub(1, 4), '\\0\\0\\0\\0')\n"
        "expect_eq(base:read(1):sub(1, 4), '\\0\\0\\0\\0')\n"
        "local st = a:overlay_stats()\n"
        "print('stats', st.clusters_allocated, st.copies, st.bytes_copied, st.cluster_sectors)\n"
        "expect(a.base == base, 'o.base')\n"
        "local snap = a:overlay()\n"
        "snap:write(2, 'snap')\n"
        "snap:discard()\n"
        "expect_eq(snap:read(2), a:read(2))\n"
        "snap:write(2, 'kept')\n"
        "snap:commit()\n"
        "expect_eq(a:read(2):sub(1, 4), 'kept')\n"
        "expect(not pcall(base.commit, base), 'not an overlay')\n"
        "local ro = vlab.disk{image = 'ro.img'}\n"
        "local o = ro:overlay()\n"
        "o:write(0, 'x')\n"
        "local ok, err = pcall(o.commit, o)\n"
        "print('ro commit', ok, err)\n"
        "expect(not pcall(base.overlay, base, {file = 'x.txt'}), 'names end in .cow or .img')\n"
        "expect(not pcall(base.overlay, base, {file = '../x.cow'}), 'only in --out')\n"
        "print(tostring(b))\n",
        out);
    unsetenv("TMPDIR");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    /* sector 1's cluster (8 sectors) copied from the base but the sector written */
    ck_assert_msg(strstr(r.out, "stats\t1\t1\t3584\t8\n"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "ro commit\tfalse\t"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "disk \"b.cow\" (overlay, 32 sectors"), "%s", r.out);
    run_result_free(&r);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\" && test -f '%s/b.cow'", tmp, out);
    ck_assert_int_eq(system(cmd), 0); /* scratch overlays gone; b.cow kept in --out */
    uint8_t now[4096];
    char p[128];
    path_in(p, sizeof p, "ro.img");
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(now, 1, sizeof now, f), sizeof now);
    fclose(f);
    ck_assert(memcmp(now, img, sizeof img) == 0); /* the read-only base untouched */
}
END_TEST

START_TEST(test_lua_image_is_read_only_and_sandboxed) {
    uint8_t img[1024];
    for (int i = 0; i < 1024; i++)
        img[i] = (uint8_t)('a' + i % 26);
    write_file("base.img", img, sizeof img);
    char inner[128];
    path_in(inner, sizeof inner, "sub");
    ck_assert_int_eq(mkdir(inner, 0700), 0);
    /* a scenario in sub/ cannot reach ../base.img */
    run_result r = run_scenario("sub/escape.lua", "vlab.disk{image = '../base.img'}\n", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "outside the scenario's folder"), "%s", r.err);
    run_result_free(&r);
    r = run_scenario("sub/abs.lua", "vlab.disk{image = '/etc/passwd.img'}\n", NULL);
    ck_assert_int_eq(r.status, 1);
    run_result_free(&r);
    /* from its own folder: read-only, for Lua and for a guest */
    r = run_scenario(
        "ro.lua",
        "local d = vlab.disk{image = 'base.img'}\n"
        "expect(d.readonly)\n"
        "expect_eq(d:read(1):sub(1, 3), 'stu')\n"
        "local ok, err = pcall(d.write, d, 0, 'x')\n"
        "expect(not ok and err:find('read%-only'), err)\n"
        "local m = vlab.machine{ memory = 64 * 1024 }\n"
        "m:attach_disk(d)\n"
        "m:load([[\n .org 0x1000\n  li sp, 0x8000\n"
        "  li r1, 0\n  wrcr vbr, r1\n  li r1, h\n  st [r0 + 46*4], r1\n"
        "  li r1, 1\n  out 0x1f3, r1\n  li r1, 0x2000\n  out 0x1f4, r1\n"
        "  li r1, 2\n  out 0x1f0, r1\n  sti\nw: hlt\n  jmp w\nh: in r5, 0x1f1\n  cli\n  hlt\n]])\n"
        "m:run()\n"
        "expect_eq(m.r5, 2 | 4 | 3 << 8)\n"
        "expect_eq(m:disk().error, 'the disk is read-only')\n",
        NULL);
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    run_result_free(&r);
    char p[128];
    path_in(p, sizeof p, "base.img");
    size_t len;
    char *after = slurp_file(p, &len);
    ck_assert_uint_eq(len, sizeof img);
    ck_assert(memcmp(after, img, len) == 0); /* the base image is untouched */
    free(after);
    /* names and sizes */
    write_file("odd.img", img, 1000);
    r = run_scenario("odd.lua", "vlab.disk{image = 'odd.img'}\n", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "whole number of 512-byte sectors"), "%s", r.err);
    run_result_free(&r);
    write_file("base.txt", img, 512);
    r = run_scenario("txt.lua", "vlab.disk{image = 'base.txt'}\n", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "must end in .img"), "%s", r.err);
    run_result_free(&r);
}
END_TEST

START_TEST(test_lua_files_only_in_out) {
    static const char make[] = "local d = vlab.disk{file = 'new.img', sectors = 8}\n"
                               "d:write(2, 'kept')\n";
    run_result r = run_scenario("f.lua", make, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "needs an output folder"), "%s", r.err);
    run_result_free(&r);
    char out[128], p[160];
    path_in(out, sizeof out, "out");
    ck_assert_int_eq(mkdir(out, 0700), 0);
    r = run_scenario("f.lua", make, out);
    ck_assert_msg(r.status == 0, "%s", r.err);
    run_result_free(&r);
    snprintf(p, sizeof p, "%s/new.img", out);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, 8 * 512);
    /* never replaced; reopened without sectors= */
    r = run_scenario("f.lua", make, out);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "exists already"), "%s", r.err);
    run_result_free(&r);
    r = run_scenario(
        "g.lua", "local d = vlab.disk{file = 'new.img'}\nexpect_eq(d:read(2):sub(1, 4), 'kept')\n",
        out);
    ck_assert_msg(r.status == 0, "%s", r.err);
    run_result_free(&r);
    r = run_scenario("h.lua", "vlab.disk{file = '../x.img', sectors = 1}\n", out);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "plain name"), "%s", r.err);
    run_result_free(&r);
    path_in(p, sizeof p, "x.img");
    ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_lua_misuse_raises) {
    run_result r = run_scenario(
        "m.lua",
        "local function fails(f, pat)\n"
        "  local ok, e = pcall(f)\n"
        "  expect(not ok and tostring(e):find(pat, 1, true), tostring(e))\n"
        "end\n"
        "fails(function() vlab.disk{sectors = 0} end, 'sectors must be 1..2097152')\n"
        "fails(function() vlab.disk{} end, 'give sectors=')\n"
        "fails(function() vlab.disk{image = 'a.img', sectors = 3} end, 'opened as it is')\n"
        "fails(function() vlab.disk{file = 'a.img', image = 'b.img'} end, 'not both')\n"
        "fails(function() vlab.disk{image = 'nope.img'} end, 'cannot find')\n"
        "local m = vlab.machine{}\n"
        "fails(function() m:attach_disk(42) end, 'vlab.disk expected')\n"
        "local d = vlab.disk{sectors = 2}\n"
        "fails(function() d.sectors = 3 end, 'cannot be set')\n"
        "fails(function() d.latency = -1 end, 'cycles must be')\n"
        "d.latency = 7\n"
        "expect_eq(d.latency, 7)\n"
        "fails(function() d:write(2, 'x') end, 'outside the disk')\n"
        "fails(function() d:read(0, 0) end, 'count must be')\n",
        NULL);
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    run_result_free(&r);
}
END_TEST

/* The TUI rebuilds a machine by running it again from a checkpoint, without
 * its devices: a machine with a disk checkpoints after each completion and
 * each read of a controller register, so every step still rebuilds exactly. */
START_TEST(test_tui_rebuilds_a_machine_with_a_disk) {
    static const char lua[] = "local d = vlab.disk{ sectors = 4 }\n"
                              "d:write(0, 'rebuilt\\n')\n"
                              "local m = vlab.machine{}\n"
                              "m:attach_disk(d)\n"
                              "m:load_file('tiny/disk-kernel.s')\n"
                              "m:load_file('tiny/disk-user.s', { entry = false })\n"
                              "m:run()\n"
                              "expect_eq(m:console(), 'rebuilt\\n')\n";
    char p[128];
    write_file("tui.lua", lua, sizeof lua - 1);
    path_in(p, sizeof p, "tui.lua");
    const char *argv[] = {"vlab", p, "--tui-script", "@verify q", NULL};
    run_result r;
    ck_assert_int_eq(run_vlab(argv, NULL, &r), 0);
    ck_assert_msg(r.status == 0 && strstr(r.out, "positions: ok"), "%s%s", r.out, r.err);
    run_result_free(&r);
}
END_TEST

Suite *suite_disk(void) {
    Suite *s = suite_create("disk");
    TCase *t = tcase_create("controller");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_read_dma_and_interrupt);
    tcase_add_test(t, test_write_reaches_the_image);
    tcase_add_test(t, test_latency_is_a_cost);
    tcase_add_loop_test(t, test_bad_requests, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(t, test_truncated_image_is_a_device_error);
    tcase_add_test(t, test_command_while_busy_is_refused);
    tcase_add_test(t, test_no_disk_reads_open_bus);
    tcase_add_test(t, test_dma_replaces_decoded_code);
    tcase_add_test(t, test_deterministic);
    suite_add_tcase(s, t);
    TCase *v = tcase_create("device model");
    tcase_add_checked_fixture(v, setup, teardown);
    tcase_set_timeout(v, 60);
    tcase_add_test(v, test_vm_read_equivalent);
    tcase_add_test(v, test_vm_errors_and_write);
    suite_add_tcase(s, v);
    TCase *l = tcase_create("lua");
    tcase_add_checked_fixture(l, setup, teardown);
    tcase_set_timeout(l, 60);
    tcase_add_test(l, test_lua_scratch_disk_and_machine);
    tcase_add_test(l, test_lua_image_is_read_only_and_sandboxed);
    tcase_add_test(l, test_lua_files_only_in_out);
    tcase_add_test(l, test_lua_misuse_raises);
    tcase_add_test(l, test_lua_overlays);
    tcase_add_test(l, test_tui_rebuilds_a_machine_with_a_disk);
    suite_add_tcase(s, l);
    return s;
}
