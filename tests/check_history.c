/* tests/check_history.c -- the run's history rebuilds machines a hypervisor
 * runs exactly (sim/history.h): for VMs under trap-and-emulate, binary
 * translation, VT-x with EPT and with shadow paging, on one and on two
 * physical CPUs, and for a hosted VMM, the machine rebuilt at a step from
 * the checkpoints has the registers, flags, ring, cycles and every byte of
 * memory the live run had at that step (recorded by a probe device as it
 * ran).  And no write escapes the written-page marks a delta checkpoint
 * relies on: fast-path and slow-path stores, accessed/dirty bits set by the
 * page walk, the host's physical and virtual writes, a disk's DMA. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "cpu/snapshot.h"
#include "hypervisor/blockdev.h"
#include "hypervisor/disk.h"
#include "hypervisor/hv.h"
#include "runvlab.h"
#include "sim/history.h"

Suite *suite_history(void);

static asm_image assemble(const char *path) {
    size_t len;
    char *src = slurp_file(path, &len);
    ck_assert_msg(src != NULL, "cannot read %s", path);
    asm_image img;
    char *err = NULL;
    ck_assert_msg(asm_assemble(src, len, path, NULL, &img, &err) == 0, "%s", err ? err : "");
    free(src);
    return img;
}

enum { T_TE, T_BT, T_EPT, T_VTX_SHADOW, T_NKINDS };
static const int TECH[T_NKINDS] = {HV_TRAP_EMULATE, HV_BT, HV_VTX, HV_VTX};

typedef struct setup {
    int kind;   /* T_*: the technique of VM 0 (VM 1, on two CPUs: the next one) */
    int cpus;   /* physical CPUs; as many VMs */
    int hosted; /* a hosted VMM (one CPU) */
} setup;

/* vlab-os in one VM per CPU, ready to run. */
static hv *build(const setup *su, cpu_t **host_out) {
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    ck_assert_ptr_nonnull(host);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    h->quantum = 20000;
    if (su->hosted) {
        asm_image img = assemble("scenarios/guests/hosted/host.s");
        ck_assert_msg(hv_hosted_setup(h, &img, err, sizeof err) == 0, "%s", err);
        asm_image_free(&img);
    }
    ck_assert_int_eq(hv_set_cpus(h, su->cpus, err, sizeof err), 0);
    asm_image img = assemble("scenarios/guests/os.s");
    for (int i = 0; i < su->cpus; i++) {
        int k = (su->kind + i) % T_NKINDS;
        hv_vm *vm = hv_vm_new(h, "os", 256 << 10, TECH[k], 1, err, sizeof err);
        ck_assert_msg(vm != NULL, "%s", err);
        vm->vtx_shadow = k == T_VTX_SHADOW;
        for (int j = 0; j < img.nchunks; j++)
            ck_assert_int_eq(
                hv_vm_write_phys(h, vm, img.chunks[j].addr, img.chunks[j].data, img.chunks[j].len),
                0);
        vm->vcpu.pc = img.entry;
    }
    asm_image_free(&img);
    *host_out = host;
    return h;
}

static uint64_t last_checkpoint_steps;

static int hook(void *ud, cpu_t *c) {
    last_checkpoint_steps = c->steps;
    return sim_history_checkpoint(ud, 0, c, 1);
}

/* Is there a checkpoint at exactly this step (the hypervisor acted there)? */
static int checkpoint_at(const sim_history *hist, uint64_t step) {
    const sim_history_machine *m = &hist->m[0];
    for (int i = 0; i < m->ncps; i++)
        if (m->cps[i].steps == step) return 1;
    return 0;
}

#define RUN_STEPS 150000
#define PROBES 48

static uint64_t mem_hash(const cpu_t *c) {
    uint64_t h = 1469598103934665603ull, w;
    for (uint32_t i = 0; i < c->mem_size; i += 8) {
        memcpy(&w, c->mem + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    return h;
}

/* The reference: the live machine at chosen moments of the run, recorded
 * by a device whose deadline the CPU's run loop honours at a block boundary
 * (cpu_device_add): the run goes on undisturbed. */
typedef struct probe {
    uint64_t steps, cycles, mem;
    uint32_t r[16], pc, flags, ptbr;
    uint8_t cpl, nonroot, world;
} probe;

typedef struct probes {
    probe p[PROBES];
    int n, slot;
    uint64_t every;
} probes;

static void probe_fn(void *ud, cpu_t *c) {
    probes *ps = ud;
    if (c->steps == last_checkpoint_steps) { /* due while the hypervisor ran: a little later */
        cpu_device_at(c, ps->slot, c->cycles + 5);
        return;
    }
    if (ps->n < PROBES) {
        probe *p = &ps->p[ps->n++];
        p->steps = c->steps;
        p->cycles = c->cycles;
        p->mem = mem_hash(c);
        memcpy(p->r, c->r, sizeof p->r);
        p->pc = c->pc;
        p->flags = cpu_get_flags(c);
        p->ptbr = c->cr[CR_PTBR];
        p->cpl = c->cpl;
        p->nonroot = c->nonroot;
        p->world = c->world;
    }
    cpu_device_at(c, ps->slot, c->cycles + ps->every);
}

static void rebuild_matches_the_run(const setup *su) {
    /* the run with its history, as vlab --tui keeps it */
    sim_history hist;
    sim_history_init(&hist);
    cpu_t *host;
    hv *h = build(su, &host);
    sim_history_machine_add(&hist, 0, "host", host->mem_size);
    h->checkpoint_hook = hook;
    h->checkpoint_ud = &hist;
    static probes ps;
    memset(&ps, 0, sizeof ps);
    last_checkpoint_steps = UINT64_MAX;
    ps.every = 17011 + 1000 * (uint64_t)su->kind;
    ps.slot = cpu_device_add(host, probe_fn, &ps);
    ck_assert_int_ge(ps.slot, 0);
    cpu_device_at(host, ps.slot, host->cycles + ps.every);
    hv_run(h, RUN_STEPS);
    ck_assert_int_eq(sim_history_checkpoint(&hist, 0, host, 1), 0);
    ck_assert_uint_gt(host->steps, 20000);
    /* a checkpoint after every exit: many, and mostly deltas */
    ck_assert_uint_gt(hist.m[0].ncps, 50);
    ck_assert_uint_lt(hist.full * 8, hist.taken);
    hv_free(h);
    cpu_free(host);

    /* every probe between two checkpoints, rebuilt from the history */
    cpu_t *scratch = cpu_new(4 << 20);
    int compared = 0;
    for (int k = 0; k < ps.n; k++) {
        const probe *p = &ps.p[k];
        if (checkpoint_at(&hist, p->steps)) continue; /* a checkpoint itself: trivially exact */
        ck_assert_int_eq(sim_history_state_at(&hist, 0, p->steps, scratch), 0);
        ck_assert_uint_eq(scratch->steps, p->steps);
        ck_assert_msg(scratch->pc == p->pc, "step %llu: pc %08x, the run had %08x",
                      (unsigned long long)p->steps, scratch->pc, p->pc);
        ck_assert(memcmp(scratch->r, p->r, sizeof p->r) == 0);
        ck_assert_uint_eq(cpu_get_flags(scratch), p->flags);
        ck_assert_uint_eq(scratch->cpl, p->cpl);
        ck_assert_uint_eq(scratch->nonroot, p->nonroot);
        ck_assert_uint_eq(scratch->world, p->world);
        ck_assert_uint_eq(scratch->cycles, p->cycles);
        ck_assert_uint_eq(scratch->cr[CR_PTBR], p->ptbr);
        ck_assert_msg(mem_hash(scratch) == p->mem, "step %llu: memory differs",
                      (unsigned long long)p->steps);
        compared++;
    }
    ck_assert_int_ge(compared, ps.n / 2);
    ck_assert_int_ge(compared, 10);
    cpu_free(scratch);
    sim_history_free(&hist);
}

START_TEST(test_rebuild_vm_one_cpu) {
    setup su = {.kind = _i, .cpus = 1};
    rebuild_matches_the_run(&su);
}
END_TEST

START_TEST(test_rebuild_vms_two_cpus) {
    setup su = {.kind = _i, .cpus = 2};
    rebuild_matches_the_run(&su);
}
END_TEST

START_TEST(test_rebuild_hosted_vm) {
    setup su = {.kind = _i, .cpus = 1, .hosted = 1};
    rebuild_matches_the_run(&su);
}
END_TEST

/* ---- the written-page marks ---- */

/* A program in ring 0 with paging on: its first stores set the accessed and
 * dirty bits (the walk writes the page table), then it stores words and
 * bytes, pushes and calls, over and over (later stores take the TLB's fast
 * path), printing nothing. */
static const char WRITER[] = "        .org 0x1000\n"
                             "start:  li    sp, 0x7000\n"
                             "        li    r1, 0\n"
                             "loop:   li    r2, 0x3000\n"
                             "        mov   r3, r1\n"
                             "        andi  r3, 0x3fc\n"
                             "        add   r2, r3\n"
                             "        st    [r2], r1\n"
                             "        li    r4, 0x4000\n"
                             "        add   r4, r3\n"
                             "        stb   [r4+1], r1\n"
                             "        push  r1\n"
                             "        call  sub\n"
                             "        pop   r5\n"
                             "        addi  r1, 1\n"
                             "        jmp   loop\n"
                             "sub:    li    r6, 0x5ff8\n"
                             "        st    [r6], r1\n"
                             "        ret\n";

/* A disk in host memory: sector n holds bytes n, n+1, n+2, ... */
static int mem_read(blockdev *d, uint32_t lba, uint32_t count, void *buf) {
    uint8_t *p = buf;
    if (lba + count > d->sectors) return -1;
    for (uint32_t i = 0; i < count * BLOCKDEV_SECTOR; i++)
        p[i] = (uint8_t)(lba * 7 + i);
    return 0;
}
static int mem_write(blockdev *d, uint32_t lba, uint32_t count, const void *buf) {
    return -1;
}
static void mem_close(blockdev *d) {
    free(d);
}

START_TEST(test_no_write_escapes) {
    cpu_t *c = cpu_new(64 * 1024), *d = cpu_new(64 * 1024);
    asm_image img;
    char *err = NULL;
    ck_assert_msg(asm_assemble(WRITER, strlen(WRITER), "writer.s", NULL, &img, &err) == 0, "%s",
                  err ? err : "");
    for (int i = 0; i < img.nchunks; i++)
        ck_assert_int_eq(
            cpu_phys_write(c, img.chunks[i].addr, img.chunks[i].data, img.chunks[i].len), 0);
    c->pc = img.entry;
    asm_image_free(&img);
    /* identity-map the 16 pages, writable, accessed and dirty bits clear */
    uint32_t pde = 0x9000 | PTE_P | PTE_W;
    ck_assert_int_eq(cpu_phys_write(c, 0x8000, &pde, 4), 0);
    for (uint32_t p = 0; p < 16; p++) {
        uint32_t pte = (p << 12) | PTE_P | PTE_W;
        ck_assert_int_eq(cpu_phys_write(c, 0x9000 + p * 4, &pte, 4), 0);
    }
    cpu_set_cr(c, CR_PTBR, 0x8000);
    cpu_set_cr(c, CR_STATUS, cpu_get_cr(c, CR_STATUS) | CPU_ST_PG);
    /* and a disk controller, whose DMA writes memory behind the CPU's back */
    blockdev *bd = calloc(1, sizeof *bd);
    bd->sectors = 8;
    bd->read = mem_read;
    bd->write = mem_write;
    bd->close = mem_close;
    disk_media *media = disk_media_new(bd);
    char derr[160];
    disk_ctl *disk = disk_attach_native(c, media, derr, sizeof derr);
    ck_assert_msg(disk != NULL, "%s", derr);
    disk_media_unref(media);
    int dmas = 0;
    cpu_snapshot *prev = cpu_snapshot_take(c, NULL), *first = prev;
    ck_assert(cpu_snapshot_is_full(prev));
    int deltas = 0;
    for (int k = 0; k < 300; k++) {
        ck_assert_int_eq(cpu_run(c, 1 + (uint64_t)k % 13), CPU_EXIT_BUDGET);
        if (k % 5 == 0) { /* the host writes memory too: a DMA, a hypervisor */
            uint8_t b = (uint8_t)k;
            ck_assert_int_eq(cpu_phys_write(c, 0xa000 + (uint32_t)k * 3, &b, 1), 0);
        }
        if (k % 7 == 0) {
            uint32_t w = (uint32_t)k * 0x01010101u;
            ck_assert_int_eq(cpu_virt_write(c, 0xb000 + (uint32_t)k * 4, &w, 4), 0);
        }
        if (k % 9 == 4) { /* a one-sector read into page 0xc000, completed at once */
            uint32_t lba = (uint32_t)k % 8, addr = 0xc000 + (uint32_t)(k % 8) * 512, v;
            uint32_t regs[][2] = {{DISK_PORT_LBA, lba},
                                  {DISK_PORT_COUNT, 1},
                                  {DISK_PORT_ADDR, addr},
                                  {DISK_PORT_CMD, DISK_CMD_READ}};
            for (int i = 0; i < 4; i++) {
                v = regs[i][1];
                ck_assert_int_ge(disk_ctl_port(disk, 1, regs[i][0], &v, c->pc, c->cycles), 1);
            }
            disk_ctl_complete(disk, c->pc);
            uint8_t got[4];
            ck_assert_int_eq(cpu_phys_read(c, addr + 100, got, 4), 0);
            ck_assert_uint_eq(got[3], (uint8_t)(lba * 7 + 103)); /* the DMA did write */
            v = 0;
            disk_ctl_port(disk, 1, DISK_PORT_STATUS, &v, c->pc, c->cycles); /* acknowledge */
            dmas++;
        }
        if (k % 50 == 25) { /* drop the accessed/dirty bits: the walk sets them again */
            for (uint32_t p = 0; p < 16; p++) {
                uint32_t pte = (p << 12) | PTE_P | PTE_W;
                ck_assert_int_eq(cpu_phys_write(c, 0x9000 + p * 4, &pte, 4), 0);
            }
            cpu_tlb_flush(c);
        }
        cpu_snapshot *s = cpu_snapshot_take(c, prev);
        ck_assert_ptr_nonnull(s);
        deltas += !cpu_snapshot_is_full(s);
        /* a delta holds the few pages written, not all 16 */
        if (!cpu_snapshot_is_full(s)) ck_assert_uint_le(cpu_snapshot_own_bytes(s), 7 * 4096 + 4096);
        ck_assert_int_eq(cpu_snapshot_restore(d, s), 0);
        ck_assert_msg(memcmp(c->mem, d->mem, c->mem_size) == 0,
                      "round %d: a write escaped the marks", k);
        ck_assert(memcmp(c->r, d->r, sizeof c->r) == 0);
        ck_assert_uint_eq(c->pc, d->pc);
        if (prev != first) cpu_snapshot_free(prev); /* s keeps what it follows */
        prev = s;
    }
    ck_assert_int_gt(deltas, 250);
    ck_assert_int_gt(dmas, 30);
    uint32_t pte3;
    ck_assert_int_eq(cpu_phys_read(c, 0x9000 + 3 * 4, &pte3, 4), 0);
    ck_assert_uint_eq(pte3 & (PTE_A | PTE_D), PTE_A | PTE_D); /* the walk did write the table */
    /* back to the first snapshot, then forward again along the chain */
    ck_assert_int_eq(cpu_snapshot_restore(d, first), 0);
    ck_assert_uint_eq(d->steps, 0);
    ck_assert_int_eq(cpu_snapshot_restore(d, prev), 0);
    ck_assert(memcmp(c->mem, d->mem, c->mem_size) == 0);
    cpu_snapshot_free(prev);
    cpu_snapshot_free(first);
    disk_detach_native(c, disk);
    cpu_free(c);
    cpu_free(d);
}
END_TEST

Suite *suite_history(void) {
    Suite *s = suite_create("history");
    TCase *t = tcase_create("history");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_no_write_escapes);
    tcase_add_loop_test(t, test_rebuild_vm_one_cpu, 0, T_NKINDS);
    tcase_add_loop_test(t, test_rebuild_vms_two_cpus, 0, T_NKINDS);
    tcase_add_loop_test(t, test_rebuild_hosted_vm, 0, T_NKINDS);
    suite_add_tcase(s, t);
    return s;
}
