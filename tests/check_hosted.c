/* tests/check_hosted.c -- disk I/O of a hosted VM through VMApp and the host
 * OS (hypervisor/hosted.c, scenarios/guests/hosted/host.s), as VMware
 * Workstation does it (Sugerman, Venkitachalam & Lim, USENIX 2001): the
 * guest's disk command world-switches to the host, VMApp read()s or
 * write()s the VM's disk, the host OS drives the host machine's own
 * controller and takes its interrupt, the VMM copies the data and injects
 * the guest's completion.  The guest cannot tell: vlab-os with a disk gives
 * the same console, disk and process memory on bare metal, under a native
 * hypervisor and hosted, by every technique. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "cpu/event.h"
#include "hypervisor/blockdev.h"
#include "hypervisor/disk.h"
#include "hypervisor/hv.h"
#include "runvlab.h"

Suite *suite_hosted(void);

static const struct {
    const char *name;
    int technique, shadow;
} TECH[] = {{"trap-and-emulate", HV_TRAP_EMULATE, 0},
            {"binary-translation", HV_BT, 0},
            {"vt-x", HV_VTX, 0},
            {"vt-x with shadow paging", HV_VTX, 1}};

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/vlab-hosted-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

#define SECTORS 160u

/* A fresh image of SECTORS sectors: sector 0 starts with a line, sector s
 * >= 8 holds bytes (s * 5 + i) & 0xff. */
static disk_media *image(const char *name) {
    char p[128], err[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_msg(blockdev_create_raw(p, SECTORS, err, sizeof err) == 0, "%s", err);
    blockdev *b = blockdev_open_raw(p, 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    uint8_t sec[512] = "the first sector of the disk\n";
    ck_assert_int_eq(blockdev_write(b, 0, 1, sec), 0);
    for (uint32_t s = 8; s < SECTORS; s++) {
        for (int i = 0; i < 512; i++)
            sec[i] = (uint8_t)(s * 5 + i);
        ck_assert_int_eq(blockdev_write(b, s, 1, sec), 0);
    }
    disk_media *m = disk_media_new(b);
    ck_assert_ptr_nonnull(m);
    return m;
}

static uint8_t *contents(disk_media *m) {
    uint8_t *all = malloc(SECTORS * 512);
    ck_assert_ptr_nonnull(all);
    ck_assert_int_eq(blockdev_read(m->dev, 0, SECTORS, all), 0);
    return all;
}

static char *sorted_lines(const char *text, size_t len) {
    char *copy = malloc(len + 1), **lines = malloc((len + 1) * sizeof *lines);
    char *out = malloc(len + 2);
    ck_assert(copy && lines && out);
    memcpy(copy, text, len);
    copy[len] = 0;
    size_t n = 0;
    for (char *p = copy; *p;) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    free(copy);
    free(lines);
    return out;
}

/* What the trace says about disks: the host controller's events by the
 * world they happened in, the world switches for a disk request. */
typedef struct disk_seen {
    int phys_cmd, phys_cmd_h0, phys_done, phys_done_range, phys_dma, irq_h0;
    int virt_cmd, virt_done, virt_done_range;
    int to_host_disk, pending; /* a disk world switch whose host command has not come yet */
    int in_order;              /* every host command came after a disk world switch */
} disk_seen;

static void seen_sink(void *ud, const cpu_event *ev, size_t n) {
    disk_seen *s = ud;
    for (size_t i = 0; i < n; i++) {
        const cpu_event *e = &ev[i];
        int host = (e->mode & EV_MODE_HOSTWORLD) != 0, ring = e->mode & EV_MODE_CPL;
        int virt = (e->a & DISK_EV_VIRTUAL) != 0;
        switch (e->kind) {
        case EV_HV_TO_HOST:
            if (e->a == HV_REQ_DISK) {
                s->to_host_disk++;
                s->pending = 1;
            }
            break;
        case EV_DISK_CMD:
            if (virt) {
                s->virt_cmd++;
                break;
            }
            s->phys_cmd++;
            s->phys_cmd_h0 += host && ring == 0;
            if (!s->pending) s->in_order = 0;
            s->pending = 0;
            break;
        case EV_DISK_DMA:
            if (!virt) s->phys_dma += host;
            break;
        case EV_DISK_DONE:
            if (virt) {
                s->virt_done++;
                s->virt_done_range += e->b == DISK_E_RANGE;
            } else {
                s->phys_done += host;
                s->phys_done_range += host && e->b == DISK_E_RANGE;
            }
            break;
        case EV_TRAP:
            if (host && ring == 0 && e->a == 32 + DISK_IRQ) s->irq_h0++;
            break;
        default: break;
        }
    }
}

static asm_image assemble_text(const char *src) {
    asm_image img;
    char *e = NULL;
    ck_assert_msg(asm_assemble(src, strlen(src), "test.s", NULL, &img, &e) == 0, "%s", e ? e : "");
    return img;
}

static hv *new_hv(cpu_t **hostp, int hosted) {
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    ck_assert_ptr_nonnull(host);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    if (hosted) {
        asm_image img = assemble_file("scenarios/guests/hosted/host.s");
        int rc = hv_hosted_setup(h, &img, err, sizeof err);
        asm_image_free(&img);
        ck_assert_msg(rc == 0, "%s", err);
    }
    *hostp = host;
    return h;
}

static hv_vm *new_vm(hv *h, int t, uint32_t mem, disk_media *m, const asm_image *img) {
    char err[160];
    hv_vm *vm = hv_vm_new(h, "guest", mem, TECH[t].technique, 1, err, sizeof err);
    ck_assert_msg(vm != NULL, "%s", err);
    vm->vtx_shadow = TECH[t].shadow;
    ck_assert_msg(hv_vm_attach_disk(h, vm, m, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < img->nchunks; k++)
        ck_assert_int_eq(
            hv_vm_write_phys(h, vm, img->chunks[k].addr, img->chunks[k].data, img->chunks[k].len),
            0);
    vm->vcpu.pc = img->entry;
    return vm;
}

/* vlab-os with a disk (pid 5 reads sectors 0-1 and past the end, pid 6
 * writes sector 4 and reads it back): bare metal, a native hypervisor and
 * a hosted one give the same console lines, disk and process memory. */
START_TEST(test_vlab_os_disk_hosted_equivalent) {
    const char *tech = TECH[_i].name;
    char err[160];
    asm_image os = assemble_file("scenarios/guests/os.s");
    /* bare metal */
    disk_media *nm = image("bare.img");
    cpu_t *n = cpu_new(256 * 1024);
    cpu_policy_preset(n, "strict");
    disk_ctl *nd = disk_attach_native(n, nm, err, sizeof err);
    ck_assert_msg(nd != NULL, "%s", err);
    for (int k = 0; k < os.nchunks; k++)
        cpu_phys_write(n, os.chunks[k].addr, os.chunks[k].data, os.chunks[k].len);
    n->pc = os.entry;
    ck_assert_int_eq(cpu_run(n, 50000000), CPU_EXIT_HALT);
    size_t nlen;
    const char *ncon = cpu_console(n, &nlen);
    ck_assert(strstr(ncon, "shared counter = 60 (expected 60)") != NULL);
    ck_assert(strstr(ncon, "proc 5: sector 0 of the disk says: the first sector of the disk") !=
              NULL);
    ck_assert(strstr(ncon, "proc 5: reading past the end of the disk failed, as it should") !=
              NULL);
    char *want = sorted_lines(ncon, nlen);
    uint8_t *ndisk = contents(nm);
    ck_assert(memcmp(ndisk + 4 * 512, "vlab-os process 6 was here\n", 27) == 0);

    for (int hosted = 0; hosted < 2; hosted++) {
        disk_media *m = image(hosted ? "hosted.img" : "native.img");
        cpu_t *host;
        hv *h = new_hv(&host, hosted);
        hv_vm *vm = new_vm(h, _i, 256 * 1024, m, &os);
        cpu_trace t;
        cpu_trace_init(&t, 64);
        disk_seen s = {.in_order = 1};
        cpu_trace_add_sink(&t, seen_sink, &s);
        host->trace = &t;
        ck_assert_int_eq(hv_run(h, 50000000), CPU_EXIT_HALT);
        cpu_trace_flush(&t);
        host->trace = NULL;
        cpu_trace_free(&t);
        ck_assert(vm->done && !h->host_broken);
        char *got = sorted_lines(vm->console, vm->console_len);
        ck_assert_msg(strcmp(got, want) == 0, "%s, %s: printed\n%s\nnot\n%s", tech,
                      hosted ? "hosted" : "native", got, want);
        free(got);
        uint8_t *vdisk = contents(m);
        ck_assert_msg(memcmp(vdisk, ndisk, SECTORS * 512) == 0, "%s: the disk", tech);
        free(vdisk);
        for (uint32_t p = 0; p < 6; p++) { /* the processes' data and stack pages */
            static uint8_t a[0x2000], b[0x2000];
            uint32_t base = 0x20000 + p * 0x4000 + 0x2000;
            ck_assert_int_eq(cpu_phys_read(n, base, a, sizeof a), 0);
            ck_assert_int_eq(hv_vm_read_phys(h, vm, base, b, sizeof b), 0);
            ck_assert_msg(memcmp(a, b, sizeof a) == 0, "%s: memory of process %u", tech, p + 1);
        }
        /* the guest saw the same disk: 4 requests (the read into kernel
         * memory is refused by vlab-os itself), 3 sectors read, 1 written,
         * 1 failed (past the end) */
        const disk_ctl *vd = hv_vm_disk(vm);
        ck_assert_uint_eq(vd->requests, nd->requests);
        ck_assert_uint_eq(vd->requests, 4);
        ck_assert_uint_eq(vd->sectors_read, 3);
        ck_assert_uint_eq(vd->sectors_written, 1);
        ck_assert_uint_eq(vd->failures, 1);
        ck_assert_int_eq(s.virt_cmd, 4);
        ck_assert_int_eq(s.virt_done, 4);
        ck_assert_int_eq(s.virt_done_range, 1);
        if (!hosted) { /* a native hypervisor owns the disk: no host world, no host disk */
            ck_assert_int_eq(s.phys_cmd, 0);
            ck_assert_int_eq(s.to_host_disk, 0);
            ck_assert_uint_eq(vm->vcpu.world_switches, 0);
        } else {
            /* one round trip per request; the console's bytes make theirs */
            ck_assert_uint_eq(h->host_disk_requests, 4);
            ck_assert_int_eq(s.to_host_disk, 4);
            ck_assert_uint_eq(vm->vcpu.world_switches, 2 * vm->console_len + 2 * 4);
            /* the host OS drove the host machine's controller: its commands
             * at h0, each after the world switch that asked for it, its
             * completion interrupts taken at h0, its DMA into host memory */
            ck_assert_ptr_nonnull(h->host_disk);
            ck_assert_int_eq(s.phys_cmd, 4);
            ck_assert_int_eq(s.phys_cmd_h0, 4);
            ck_assert(s.in_order);
            ck_assert_int_eq(s.phys_done, 4);
            ck_assert_int_eq(s.irq_h0, 4);
            ck_assert_int_eq(s.phys_dma, 3);
            /* the sector past the end: the host's controller said so */
            ck_assert_int_eq(s.phys_done_range, 1);
            ck_assert_uint_eq(h->host_disk->requests, 4);
            ck_assert_uint_eq(h->host_disk->sectors_read, 3);
            ck_assert_uint_eq(h->host_disk->sectors_written, 1);
            ck_assert_uint_eq(h->host_disk->failures, 1);
            /* VMApp's console writes and the host's boot lines */
            size_t hlen;
            const char *hcon = cpu_console(host, &hlen);
            ck_assert(strncmp(hcon, "host OS up\nVMApp: power on\n", 27) == 0);
            ck_assert_uint_eq(hlen, 27 + vm->console_len);
        }
        hv_free(h);
        cpu_free(host);
        disk_media_unref(m);
    }
    free(want);
    free(ndisk);
    disk_detach_native(n, nd);
    cpu_free(n);
    disk_media_unref(nm);
    asm_image_free(&os);
}
END_TEST

/* One request of a small driver: r1 sector, r2 count, r3 buffer, r4
 * command; the handler leaves the status in r5, r7 = 1. */
static const char DRIVER[] = "start:  li    sp, 0x8000\n"
                             "        li    r9, 0\n"
                             "        wrcr  vbr, r9\n"
                             "        li    r9, handler\n"
                             "        li    r8, 46 * 4\n"
                             "        st    [r8], r9\n"
                             "        out   0x1f2, r1\n"
                             "        out   0x1f3, r2\n"
                             "        out   0x1f4, r3\n"
                             "        out   0x1f0, r4\n"
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

typedef struct one {
    cpu_t *host;
    hv *h;
    hv_vm *vm;
    disk_media *m;
} one;

static one run_driver(int t, int cheap, uint32_t lba, uint32_t count, uint32_t addr, uint32_t cmd,
                      const char *img_name) {
    one o;
    o.m = image(img_name);
    o.h = new_hv(&o.host, 1);
    o.h->cheap_in_vmm = cheap;
    asm_image img = assemble_text(DRIVER);
    o.vm = new_vm(o.h, t, 256 * 1024, o.m, &img);
    asm_image_free(&img);
    if (cmd == DISK_CMD_WRITE)
        for (uint32_t i = 0; i < count * 512 && addr + i < 256 * 1024; i += 4) {
            uint32_t w = i * 2654435761u;
            ck_assert_int_eq(hv_vm_write_phys(o.h, o.vm, addr + i, &w, 4), 0);
        }
    o.vm->vcpu.r[1] = lba;
    o.vm->vcpu.r[2] = count;
    o.vm->vcpu.r[3] = addr;
    o.vm->vcpu.r[4] = cmd;
    ck_assert_int_eq(hv_run(o.h, 2000000), CPU_EXIT_HALT);
    ck_assert(o.vm->done && !o.h->host_broken);
    ck_assert_uint_eq(o.vm->vcpu.r[7], 1);
    return o;
}

static void one_free(one *o) {
    hv_free(o->h);
    cpu_free(o->host);
    disk_media_unref(o->m);
}

/* Errors: a sector past the end goes to the host, whose controller refuses
 * it, and the guest gets that error status; a buffer outside the VM's
 * memory the VMM refuses itself (it alone knows the guest's memory): no
 * world switch. */
START_TEST(test_hosted_disk_errors) {
    one o = run_driver(_i, 1, SECTORS, 1, 0x4000, DISK_CMD_READ, "e1.img");
    ck_assert_uint_eq(o.vm->vcpu.r[5],
                      DISK_ST_DONE | DISK_ST_ERROR | DISK_E_RANGE << DISK_ST_CODE_SHIFT);
    ck_assert_uint_eq(o.vm->vcpu.world_switches, 2);
    ck_assert_uint_eq(o.h->host_disk->failures, 1);
    ck_assert_uint_eq(o.h->host_disk->requests, 1);
    ck_assert_uint_eq(hv_vm_disk(o.vm)->failures, 1);
    ck_assert_uint_ge(o.vm->vcpu.injections, 1);
    one_free(&o);

    o = run_driver(_i, 1, 0, 2, 256 * 1024 - 512, DISK_CMD_READ, "e2.img");
    ck_assert_uint_eq(o.vm->vcpu.r[5],
                      DISK_ST_DONE | DISK_ST_ERROR | DISK_E_ADDR << DISK_ST_CODE_SHIFT);
    ck_assert_uint_eq(o.vm->vcpu.world_switches, 0);
    ck_assert_uint_eq(o.h->host_disk->requests, 0);
    one_free(&o);
}
END_TEST

/* A request larger than VMApp's buffer (64 sectors) takes one round trip
 * per buffer-full: a 128-sector read arrives whole in guest memory, a
 * 100-sector write whole on the disk. */
START_TEST(test_hosted_disk_large_requests) {
    one o = run_driver(_i, 1, 8, 128, 0x10000, DISK_CMD_READ, "l1.img");
    ck_assert_uint_eq(o.vm->vcpu.r[5], DISK_ST_DONE);
    ck_assert_uint_eq(o.vm->vcpu.world_switches, 4);
    ck_assert_uint_eq(o.h->host_disk->requests, 2);
    ck_assert_uint_eq(o.h->host_disk_requests, 1);
    static uint8_t want[128 * 512], got[128 * 512];
    ck_assert_int_eq(blockdev_read(o.m->dev, 8, 128, want), 0);
    ck_assert_int_eq(hv_vm_read_phys(o.h, o.vm, 0x10000, got, sizeof got), 0);
    ck_assert(memcmp(want, got, sizeof got) == 0);
    ck_assert_uint_eq(hv_vm_disk(o.vm)->sectors_read, 128);
    one_free(&o);

    o = run_driver(_i, 1, 20, 100, 0x10000, DISK_CMD_WRITE, "l2.img");
    ck_assert_uint_eq(o.vm->vcpu.r[5], DISK_ST_DONE);
    ck_assert_uint_eq(o.vm->vcpu.world_switches, 4);
    ck_assert_uint_eq(o.h->host_disk->sectors_written, 100);
    ck_assert_int_eq(blockdev_read(o.m->dev, 20, 100, want), 0);
    ck_assert_int_eq(hv_vm_read_phys(o.h, o.vm, 0x10000, got, 100 * 512), 0);
    ck_assert(memcmp(want, got, 100 * 512) == 0);
    ck_assert_uint_eq(want[0], 0);          /* the pattern's first word is 0 ... */
    ck_assert_uint_ne(want[5], 20 * 5 + 5); /* ... and it replaced the image's */
    one_free(&o);
}
END_TEST

/* The paper's optimisation on the disk: the sector, count and buffer
 * registers and the status reads stay in the VMM; without it each of the
 * driver's six other accesses makes a round trip too. */
START_TEST(test_hosted_disk_cheap_registers) {
    uint64_t cyc[2];
    for (int cheap = 0; cheap < 2; cheap++) {
        one o = run_driver(_i, cheap, 0, 1, 0x4000, DISK_CMD_READ, cheap ? "c1.img" : "c0.img");
        ck_assert_uint_eq(o.vm->vcpu.r[5], DISK_ST_DONE);
        ck_assert_uint_eq(o.vm->vcpu.world_switches, cheap ? 2 : 2 * (1 + 6));
        uint8_t got[32];
        ck_assert_int_eq(hv_vm_read_phys(o.h, o.vm, 0x4000, got, sizeof got), 0);
        ck_assert(memcmp(got, "the first sector of the disk\n", 29) == 0);
        cyc[cheap] = o.vm->cpu_cycles;
        one_free(&o);
    }
    ck_assert_uint_gt(cyc[0], cyc[1]);
}
END_TEST

/* A host world whose VMApp never does the disk request (it only runs the
 * VM again): the guest gets a media error, not a hang or a crash. */
START_TEST(test_hosted_disk_vmapp_that_does_nothing) {
    static const char host_src[] = "        .org 0x11000\n"
                                   "start:  li    sp, 0x18000\n"
                                   "        li    r1, 0x10000\n"
                                   "        wrcr  vbr, r1\n"
                                   "        li    r1, run\n"
                                   "        li    r2, 0x10000 + 4 * 0x80\n"
                                   "        st    [r2], r1\n"
                                   "again:  li    r0, 2\n"
                                   "        syscall\n"
                                   "        jmp   again\n"
                                   "run:\n"
                                   "world_switch: nop\n"
                                   "        iret\n";
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    asm_image himg = assemble_text(host_src);
    ck_assert_msg(hv_hosted_setup(h, &himg, err, sizeof err) == 0, "%s", err);
    asm_image_free(&himg);
    disk_media *m = image("idle.img");
    asm_image img = assemble_text(DRIVER);
    hv_vm *vm = new_vm(h, _i, 256 * 1024, m, &img);
    asm_image_free(&img);
    vm->vcpu.r[1] = 0;
    vm->vcpu.r[2] = 1;
    vm->vcpu.r[3] = 0x4000;
    vm->vcpu.r[4] = DISK_CMD_READ;
    ck_assert_int_eq(hv_run(h, 2000000), CPU_EXIT_HALT);
    ck_assert(vm->done && !h->host_broken);
    ck_assert_uint_eq(vm->vcpu.r[5],
                      DISK_ST_DONE | DISK_ST_ERROR | DISK_E_MEDIA << DISK_ST_CODE_SHIFT);
    ck_assert_uint_eq(vm->vcpu.world_switches, 2);
    ck_assert_uint_eq(h->host_disk->requests, 0); /* the host's controller was never touched */
    hv_free(h);
    cpu_free(host);
    disk_media_unref(m);
}
END_TEST

/* The host machine has one controller: one VM of a hosted VMM has a disk. */
START_TEST(test_hosted_one_disk) {
    char err[160];
    cpu_t *host;
    hv *h = new_hv(&host, 1);
    disk_media *a = image("a.img"), *b = image("b.img");
    hv_vm *v1 = hv_vm_new(h, "one", 64 * 1024, HV_TRAP_EMULATE, 1, err, sizeof err);
    hv_vm *v2 = hv_vm_new(h, "two", 64 * 1024, HV_TRAP_EMULATE, 1, err, sizeof err);
    ck_assert(v1 && v2);
    ck_assert_int_eq(hv_vm_attach_disk(h, v1, a, err, sizeof err), 0);
    ck_assert_int_eq(hv_vm_attach_disk(h, v2, b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "one disk controller") != NULL, "%s", err);
    ck_assert_ptr_null(hv_vm_disk(v2));
    hv_free(h);
    cpu_free(host);
    disk_media_unref(a);
    disk_media_unref(b);
}
END_TEST

/* From Lua: vm:attach_disk on a hosted hypervisor, a second VM's disk
 * refused with a clear error, and the summary's host disk line. */
START_TEST(test_hosted_disk_from_lua) {
    static const char lua[] =
        "local hv = vlab.hypervisor{ hosted = true, memory = 4 * 1024 * 1024 }\n"
        "local a = hv:vm{ name = 'a', technique = 'vt-x' }\n"
        "local b = hv:vm{ name = 'b' }\n"
        "local d = vlab.disk{ sectors = 16 }\n"
        "d:write(0, 'Hello, hosted disk!\\n')\n"
        "a:attach_disk(d)\n"
        "local ok, e = pcall(function() b:attach_disk(vlab.disk{ sectors = 4 }) end)\n"
        "expect(not ok and tostring(e):find('one disk controller', 1, true), tostring(e))\n"
        "a:load_file('tiny/disk-kernel.s')\n"
        "a:load_file('tiny/disk-user.s', { entry = false })\n"
        "b:load('cli\\nhlt\\n')\n"
        "hv:run()\n"
        "expect_eq(a:console(), 'Hello, hosted disk!\\n')\n"
        "expect_eq(a:disk().sectors_read, 1)\n"
        "expect_eq(a:stats().world_switches, 2 * (#a:console() + 1))\n"
        "expect_eq(hv:host_disk().sectors_read, 1)\n"
        "expect_eq(hv:host_disk().error, 'ok')\n";
    char p[128];
    snprintf(p, sizeof p, "%s/hosted.lua", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(lua, f);
    ck_assert_int_eq(fclose(f), 0);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    setenv("TMPDIR", tmp, 1);
    const char *argv[] = {"vlab", p, "--show", "notes", NULL}; /* the summary, no trace */
    run_result r;
    ck_assert_int_eq(run_vlab(argv, NULL, &r), 0);
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ck_assert_msg(
        strstr(r.out, "host disk (vm 0's, driven by the host OS for VMApp: 1 guest request)") !=
            NULL,
        "%s", r.out);
    ck_assert_msg(
        strstr(r.out,
               "    disk: 1 request, 1 sectors read, 0 written, 0 failed, 31000 cycles busy") !=
            NULL,
        "%s", r.out);
    run_result_free(&r);
}
END_TEST

Suite *suite_hosted(void) {
    Suite *s = suite_create("hosted");
    TCase *t = tcase_create("disk");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    int nt = (int)(sizeof TECH / sizeof TECH[0]);
    tcase_add_loop_test(t, test_vlab_os_disk_hosted_equivalent, 0, nt);
    tcase_add_loop_test(t, test_hosted_disk_errors, 0, nt);
    tcase_add_loop_test(t, test_hosted_disk_large_requests, 0, nt);
    tcase_add_loop_test(t, test_hosted_disk_cheap_registers, 0, nt);
    tcase_add_loop_test(t, test_hosted_disk_vmapp_that_does_nothing, 0, nt);
    tcase_add_test(t, test_hosted_one_disk);
    tcase_add_test(t, test_hosted_disk_from_lua);
    suite_add_tcase(s, t);
    return s;
}
