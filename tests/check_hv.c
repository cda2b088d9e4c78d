/* tests/check_hv.c -- the trap-and-emulate hypervisor: the same guest image
 * run natively and in a VM gives the same guest-visible results under the
 * strict policy (Popek & Goldberg's equivalence), for system calls and
 * faults reflected into the guest kernel, its own paging through shadow page
 * tables, and its virtual timer; under x86 the holes show. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "hypervisor/hv.h"
#include "runvlab.h"

Suite *suite_hv(void);

static asm_image assemble(const char *path) { return assemble_file(path); }

/* Run files natively on a bare machine of mem bytes; return it. */
static cpu_t *native(const char *const *files, uint32_t mem, const char *policy) {
    cpu_t *c = cpu_new(mem);
    cpu_policy_preset(c, policy);
    for (int i = 0; files[i]; i++) {
        asm_image img = assemble(files[i]);
        for (int k = 0; k < img.nchunks; k++)
            ck_assert_int_eq(cpu_phys_write(c, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
        if (i == 0) c->pc = img.entry;
        asm_image_free(&img);
    }
    ck_assert_int_eq(cpu_run(c, 10000000), CPU_EXIT_HALT);
    return c;
}

typedef struct virt {
    cpu_t *host;
    hv *h;
    hv_vm *vm;
} virt;

static virt in_vm_t(const char *const *files, uint32_t mem, const char *policy, int ring, int tech);
static virt in_vm(const char *const *files, uint32_t mem, const char *policy, int ring) {
    return in_vm_t(files, mem, policy, ring, HV_TRAP_EMULATE);
}

static int vtx_shadow; /* in_vm_t: VT-x without EPT */

static virt in_vm_t(const char *const *files, uint32_t mem, const char *policy, int ring, int tech) {
    virt v;
    char err[160];
    v.host = cpu_new(8 << 20);
    cpu_policy_preset(v.host, policy);
    v.h = hv_new(v.host, err, sizeof err);
    ck_assert_msg(v.h != NULL, "%s", err);
    v.vm = hv_vm_new(v.h, "guest", mem, tech, ring, err, sizeof err);
    ck_assert_msg(v.vm != NULL, "%s", err);
    v.vm->vtx_shadow = vtx_shadow;
    for (int i = 0; files[i]; i++) {
        asm_image img = assemble(files[i]);
        for (int k = 0; k < img.nchunks; k++)
            ck_assert_int_eq(hv_vm_write_phys(v.h, v.vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
        if (i == 0) v.vm->vcpu.pc = img.entry;
        asm_image_free(&img);
    }
    ck_assert_int_eq(hv_run(v.h, 10000000), CPU_EXIT_HALT);
    ck_assert(v.vm->done);
    return v;
}

static void virt_free(virt *v) {
    hv_free(v->h);
    cpu_free(v->host);
}

/* the guest's registers when it halted: kept in the vCPU */
static uint32_t greg(const virt *v, int r) { return v->vm->vcpu.r[r]; }

static const char *const KERNEL_SENSITIVE[] = {"scenarios/guests/tiny/kernel.s",
                                               "scenarios/guests/tiny/sensitive-user.s", NULL};

START_TEST(test_equivalence_strict_console) {
    for (int ring = 1; ring <= 3; ring += 2) {
        cpu_t *n = native(KERNEL_SENSITIVE, 1 << 20, "strict");
        virt v = in_vm(KERNEL_SENSITIVE, 1 << 20, "strict", ring);
        size_t len;
        const char *con = cpu_console(n, &len);
        ck_assert_uint_eq(v.vm->console_len, len);
        ck_assert(memcmp(v.vm->console, con, len) == 0);
        /* the user program's memory is the same too */
        uint8_t a[4096], b[4096];
        ck_assert_int_eq(cpu_phys_read(n, 0x10000, a, sizeof a), 0);
        ck_assert_int_eq(hv_vm_read_phys(v.h, v.vm, 0x10000, b, sizeof b), 0);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        ck_assert_uint_gt(v.vm->vcpu.emulations, 0);
        ck_assert_uint_gt(v.vm->vcpu.reflections, 0);
        ck_assert_uint_gt(v.host->cycles, n->cycles); /* only time differs */
        virt_free(&v);
        cpu_free(n);
    }
}
END_TEST

START_TEST(test_x86_smsw_leaks_the_real_status) {
    virt v = in_vm(KERNEL_SENSITIVE, 1 << 20, "x86", 1);
    ck_assert(strstr(v.vm->console, "smsw in ring 3 read: 0x80000003"));
    ck_assert_uint_eq(v.vm->vcpu.emulated_by_op[OP_SMSW], 0); /* the hypervisor never saw it */
    virt_free(&v);
}
END_TEST

START_TEST(test_guest_paging_through_shadow_tables) {
    static const char *const files[] = {"docs/examples/paging.s", NULL};
    cpu_t *n = native(files, 1 << 20, "strict");
    virt v = in_vm(files, 1 << 20, "strict", 1);
    ck_assert_uint_eq(greg(&v, 6), n->r[6]);   /* read through the guest's new mapping */
    ck_assert_uint_eq(greg(&v, 8), n->r[8]);   /* after its invlpg */
    ck_assert_uint_eq(greg(&v, 10), n->r[10]); /* its #PF error code: reflected */
    ck_assert_uint_eq(greg(&v, 12), n->r[12]); /* its faddr: virtual, still right */
    ck_assert_uint_eq(greg(&v, 10), 5);
    ck_assert_uint_gt(v.vm->vcpu.shadow_fills, 0);
    ck_assert_uint_gt(v.vm->vcpu.pt_writes, 0); /* it remapped a page: caught */
    virt_free(&v);
    cpu_free(n);
}
END_TEST

START_TEST(test_virtual_timer_and_hlt) {
    static const char *const files[] = {"docs/examples/timer.s", NULL};
    cpu_t *n = native(files, 1 << 20, "strict");
    virt v = in_vm(files, 1 << 20, "strict", 1);
    ck_assert_uint_eq(n->r[7], 3);
    ck_assert_uint_eq(greg(&v, 7), 3); /* three virtual ticks reached the guest */
    ck_assert_uint_ge(v.vm->vcpu.injections, 3);
    virt_free(&v);
    cpu_free(n);
}
END_TEST

START_TEST(test_fault_reflected) {
    static const char *const files[] = {"docs/examples/divzero.s", NULL};
    virt v = in_vm(files, 1 << 20, "strict", 1);
    ck_assert_uint_eq(greg(&v, 3), 7); /* the guest's #DE handler skipped the div */
    virt_free(&v);
}
END_TEST

START_TEST(test_vm_memory_is_elsewhere_on_the_host) {
    static const char *const files[] = {"docs/examples/hello.s", NULL};
    virt v = in_vm(files, 1 << 20, "strict", 1);
    ck_assert_str_eq(v.vm->console, "hello from ring 0\n");
    uint32_t hpa = v.vm->p2m[0x1000 >> 12] << 12;
    ck_assert_uint_ne(hpa, 0x1000); /* guest-physical is not host-physical */
    uint32_t a, b;
    ck_assert_int_eq(cpu_phys_read(v.host, hpa, &a, 4), 0);
    ck_assert_int_eq(hv_vm_read_phys(v.h, v.vm, 0x1000, &b, 4), 0);
    ck_assert_uint_eq(a, b);
    virt_free(&v);
}
END_TEST

/* VT-x: the guest kernel keeps ring 0 in non-root mode, so even on the x86
 * policy it is equivalent to bare metal; only I/O and hlt exit */
START_TEST(test_vtx_equivalence_on_x86) {
    cpu_t *n = native(KERNEL_SENSITIVE, 1 << 20, "x86");
    virt v = in_vm_t(KERNEL_SENSITIVE, 1 << 20, "x86", 1, HV_VTX);
    size_t len;
    const char *con = cpu_console(n, &len);
    ck_assert_uint_eq(v.vm->console_len, len);
    ck_assert(memcmp(v.vm->console, con, len) == 0);
    ck_assert_uint_eq(v.vm->vcpu.reflections, 0); /* its traps never left the VM */
    ck_assert_uint_eq(v.vm->vcpu.emulated_by_op[OP_OUT], len);
    ck_assert_uint_eq(v.vm->vcpu.exits, len + 1); /* every byte, and the final hlt */
    virt_free(&v);
    cpu_free(n);
}
END_TEST

START_TEST(test_vtx_guest_paging_with_ept) {
    static const char *const files[] = {"docs/examples/paging.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    virt v = in_vm_t(files, 1 << 20, "x86", 1, HV_VTX);
    for (int r = 6; r <= 12; r++) ck_assert_uint_eq(greg(&v, r), n->r[r]); /* stale TLB included */
    ck_assert_uint_eq(v.vm->vcpu.vcr[CR_FADDR], 0x1000);
    virt_free(&v);
    cpu_free(n);
}
END_TEST

/* First-generation VT-x: the same guest on shadow page tables, with its
 * ptbr, paging bit and vbr kept virtual and every page fault exiting. */
START_TEST(test_vtx_guest_paging_with_shadow_tables) {
    static const char *const files[] = {"docs/examples/paging.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    vtx_shadow = 1;
    virt v = in_vm_t(files, 1 << 20, "x86", 1, HV_VTX);
    vtx_shadow = 0;
    for (int r = 6; r <= 12; r++)
        if (r != 7) ck_assert_uint_eq(greg(&v, r), n->r[r]);
    /* the one difference: the hypervisor catches the page-table write and
     * updates the shadow at once, so the guest never sees the stale entry
     * bare metal (and the EPT) keep until its invlpg -- allowed, since the
     * architecture never promises a stale translation */
    ck_assert_uint_eq(n->r[7], 0x1111);
    ck_assert_uint_eq(greg(&v, 7), 0x2222);
    ck_assert_uint_eq(v.vm->vcpu.vcr[CR_FADDR], 0x1000); /* the guest's own fault, virtual address */
    ck_assert_uint_gt(v.vm->vcpu.shadow_fills, 0);
    ck_assert_uint_gt(v.vm->vcpu.emulated_by_op[OP_WRCR], 0); /* ptbr, paging bit, vbr */
    ck_assert_uint_gt(v.vm->vcpu.emulated_by_op[OP_INVLPG], 0);
    virt_free(&v);
    cpu_free(n);
}
END_TEST

/* An interrupt injected from ring 3 whose trap frame lands on a page the
 * shadow does not map yet: the delivery exits, the hypervisor fills the
 * page and delivers the interrupt again (SDM 27.2.4). */
START_TEST(test_vtx_shadow_redelivers_after_frame_fault) {
    static const char *const files[] = {"tests/guests/ksp-fresh-page.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    vtx_shadow = 1;
    virt v = in_vm_t(files, 1 << 20, "x86", 1, HV_VTX);
    vtx_shadow = 0;
    size_t len;
    const char *con = cpu_console(n, &len);
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(v.vm->console_len, len);
    ck_assert(memcmp(v.vm->console, con, len) == 0);
    ck_assert(memcmp(con, "3K\n", 3) == 0); /* the syscall's frame, delivered from ring 3 */
    ck_assert(!v.host->dead);
    virt_free(&v);
    cpu_free(n);
}
END_TEST

/* The shadow cache: switching back to an address space reuses its shadow,
 * and a page-table write made while another one is loaded still reaches it. */
START_TEST(test_shadow_cache_stays_coherent) {
    static const char *const files[] = {"tests/guests/two-spaces.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    ck_assert_uint_eq(n->r[4], 0x3333);
    static const int tech[] = {HV_TRAP_EMULATE, HV_BT, HV_VTX};
    for (int i = 0; i < 4; i++) {
        vtx_shadow = i == 3;
        virt v = in_vm_t(files, 1 << 20, "x86", 1, tech[i < 3 ? i : 2]);
        vtx_shadow = 0;
        for (int r = 1; r <= 4; r++) ck_assert_uint_eq(greg(&v, r), n->r[r]);
        virt_free(&v);
    }
    cpu_free(n);
}
END_TEST

START_TEST(test_vtx_timer_injection) {
    static const char *const files[] = {"docs/examples/timer.s", NULL};
    virt v = in_vm_t(files, 1 << 20, "x86", 1, HV_VTX);
    ck_assert_uint_eq(greg(&v, 7), 3);
    ck_assert_uint_ge(v.vm->vcpu.injections, 3);
    virt_free(&v);
}
END_TEST

START_TEST(test_vtx_fault_stays_in_guest) {
    static const char *const files[] = {"docs/examples/divzero.s", NULL};
    virt v = in_vm_t(files, 1 << 20, "x86", 1, HV_VTX);
    ck_assert_uint_eq(greg(&v, 3), 7);
    ck_assert_uint_eq(greg(&v, 10), 855); /* the #DE round trip costs what it costs natively */
    virt_free(&v);
}
END_TEST

/* binary translation: the kernel's critical instructions become callouts
 * before they run, so even pushf and popf are virtualized on x86 */
START_TEST(test_bt_closes_the_holes) {
    static const char *const files[] = {"scenarios/guests/tiny/critical.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    virt te = in_vm_t(files, 1 << 20, "x86", 1, HV_TRAP_EMULATE);
    virt bt = in_vm_t(files, 1 << 20, "x86", 1, HV_BT);
    size_t len;
    const char *con = cpu_console(n, &len);
    ck_assert_str_eq(con, "cli  -> IF=0\nsti  -> IF=1\npopf -> IF=0\n");
    ck_assert_str_eq(bt.vm->console, con);
    ck_assert_str_ne(te.vm->console, con); /* pushf and popf do not trap on x86 */
    ck_assert_uint_eq(bt.vm->vcpu.translations, 1);
    ck_assert_uint_gt(bt.vm->vcpu.callouts, 0);
    ck_assert_uint_lt(bt.vm->vcpu.exits, te.vm->vcpu.exits); /* callouts, not traps */
    virt_free(&te);
    virt_free(&bt);
    cpu_free(n);
}
END_TEST

/* a translated page that the guest writes is translated again */
START_TEST(test_bt_self_modifying_code) {
    static const char *const files[] = {"tests/guests/ksp-fresh-page.s", NULL};
    cpu_t *n = native(files, 1 << 20, "x86");
    virt bt = in_vm_t(files, 1 << 20, "x86", 1, HV_BT);
    size_t len;
    const char *con = cpu_console(n, &len);
    ck_assert_str_eq(bt.vm->console, con);
    virt_free(&bt);
    cpu_free(n);
    /* rewrite an instruction of translated kernel code from the kernel itself */
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    hv *h = hv_new(host, err, sizeof err);
    hv_vm *vm = hv_vm_new(h, "smc", 1 << 20, HV_BT, 1, err, sizeof err);
    static const char src[] = "        .org 0x1000\n"
                              "start:  li    r1, patch\n"
                              "        li    r2, 0x84\n"   /* hlt */
                              "        li    r3, 0x700\n"  /* two bytes: out 0x... becomes... */
                              "        st    [r1], r2\n"  /* patch: nop -> hlt */
                              "        cli\n"             /* a callout in the same page */
                              "patch:  nop\n"
                              "        li    r4, 1\n"     /* not reached: the patched hlt stops it */
                              "        hlt\n";
    asm_image img;
    char *e = NULL;
    ck_assert_int_eq(asm_assemble(src, strlen(src), "smc.s", NULL, &img, &e), 0);
    for (int k = 0; k < img.nchunks; k++) hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len);
    vm->vcpu.pc = img.entry;
    asm_image_free(&img);
    ck_assert_int_eq(hv_run(h, 100000), CPU_EXIT_HALT);
    ck_assert_uint_eq(vm->vcpu.r[4], 0);           /* the new instruction ran */
    ck_assert_uint_ge(vm->vcpu.translations, 2);   /* translated, dropped, translated again */
    ck_assert_uint_ge(vm->vcpu.emulated_by_op[OP_CLI], 1);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* paravirtualization: the same guest-visible result with hypercalls, and
 * mmu_update refuses a frame the VM does not own */
START_TEST(test_pv_hypercalls) {
    static const char *const native_files[] = {"scenarios/guests/tiny/critical.s", NULL};
    static const char *const pv_files[] = {"scenarios/guests/pv/critical.s", NULL};
    cpu_t *n = native(native_files, 1 << 20, "x86");
    virt pv = in_vm_t(pv_files, 1 << 20, "x86", 1, HV_PV);
    size_t len;
    ck_assert_str_eq(pv.vm->console, cpu_console(n, &len));
    ck_assert_uint_ge(pv.vm->vcpu.hypercalls, 9);
    virt_free(&pv);
    cpu_free(n);
}
END_TEST

START_TEST(test_pv_mmu_update_validates) {
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    hv *h = hv_new(host, err, sizeof err);
    hv_vm *vm = hv_vm_new(h, "pv", 64 << 10, HV_PV, 1, err, sizeof err);
    static const char src[] = "        .org 0x1000\n"
                              "start:  li    sp, 0x8000\n"
                              "        li    r1, list\n"
                              "        li    r0, 7\n" /* mmu_update */
                              "        li    r2, 2\n"
                              "        vmcall\n"
                              "        mov   r5, r0\n"
                              "        hlt\n"
                              "list:   .word 0x3000, 0x4003\n"     /* fine: a frame of the VM */
                              "        .word 0x3004, 0x800003\n";  /* 8 MiB: not the VM's */
    asm_image img;
    char *e = NULL;
    ck_assert_int_eq(asm_assemble(src, strlen(src), "pv.s", NULL, &img, &e), 0);
    for (int k = 0; k < img.nchunks; k++) hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len);
    vm->vcpu.pc = img.entry;
    asm_image_free(&img);
    ck_assert_int_eq(hv_run(h, 100000), CPU_EXIT_HALT);
    ck_assert_uint_eq(vm->vcpu.r[5], 1); /* one update done, the second refused */
    uint32_t a, b;
    hv_vm_read_phys(h, vm, 0x3000, &a, 4);
    hv_vm_read_phys(h, vm, 0x3004, &b, 4);
    ck_assert_uint_eq(a, 0x4003);
    ck_assert_uint_eq(b, 0);
    hv_free(h);
    cpu_free(host);
}
END_TEST

START_TEST(test_vm_too_big) {
    char err[160];
    cpu_t *host = cpu_new(1 << 20);
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_null(hv_vm_new(h, "big", 2 << 20, HV_TRAP_EMULATE, 1, err, sizeof err));
    ck_assert(strstr(err, "the host has"));
    hv_free(h);
    cpu_free(host);
}
END_TEST


/* ---- several physical CPUs ---- */

/* vlab-os under every technique, as many VMs as techniques, on `cpus`
 * physical CPUs; returns the host (caller frees h and host). */
static const int SMP_TECH[] = {HV_TRAP_EMULATE, HV_BT, HV_VTX, HV_VTX};
#define SMP_NVM 4
static hv *smp_run(int cpus, cpu_t **host_out, cpu_trace *trace) {
    char err[160];
    cpu_t *host = cpu_new(8 << 20);
    cpu_policy_preset(host, "strict");
    host->trace = trace;
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    h->quantum = 30000;
    ck_assert_int_eq(hv_set_cpus(h, cpus, err, sizeof err), 0);
    asm_image img = assemble("scenarios/guests/os.s");
    for (int i = 0; i < SMP_NVM; i++) {
        hv_vm *vm = hv_vm_new(h, "os", 256 << 10, SMP_TECH[i], 1, err, sizeof err);
        ck_assert_msg(vm != NULL, "%s", err);
        vm->vtx_shadow = i == 3; /* the last one: VT-x with shadow paging */
        for (int k = 0; k < img.nchunks; k++)
            ck_assert_int_eq(hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
        vm->vcpu.pc = img.entry;
    }
    asm_image_free(&img);
    ck_assert_int_eq(hv_run(h, 50000000), CPU_EXIT_HALT);
    *host_out = host;
    return h;
}

static int ends_well(const hv_vm *vm) {
    static const char want[] = "os: shared counter = 60 (expected 60)\n";
    size_t n = strlen(want);
    return vm->done && vm->console_len >= n && memcmp(vm->console + vm->console_len - n, want, n) == 0;
}

START_TEST(test_smp_more_vms_than_cpus) {
    cpu_t *h1c, *h2c;
    hv *h1 = smp_run(1, &h1c, NULL), *h2 = smp_run(2, &h2c, NULL);
    uint64_t busy = 0, vmcyc = 0, moved = 0;
    for (int i = 0; i < SMP_NVM; i++) {
        ck_assert_msg(ends_well(h1->vms[i]), "vm %d on one CPU: %.*s", i, (int)h1->vms[i]->console_len, h1->vms[i]->console);
        ck_assert_msg(ends_well(h2->vms[i]), "vm %d on two CPUs: %.*s", i, (int)h2->vms[i]->console_len, h2->vms[i]->console);
        vmcyc += h2->vms[i]->cpu_cycles;
        moved += h2->vms[i]->migrations;
        ck_assert_uint_eq(h1->vms[i]->migrations, 0);
    }
    for (int p = 0; p < 2; p++) {
        ck_assert_uint_gt(h2->pcpu[p].slices, 10); /* both CPUs ran VMs */
        busy += h2->pcpu[p].busy;
    }
    ck_assert_uint_eq(busy, vmcyc); /* every VM cycle was on one of the CPUs */
    ck_assert_uint_gt(moved, 0);    /* one run queue: VMs change CPU */
    /* the same work in about half the time */
    double speedup = (double)hv_elapsed(h1) / (double)hv_elapsed(h2);
    ck_assert_msg(speedup > 1.7 && speedup < 2.2, "speedup %.2f", speedup);
    /* no CPU ran far ahead of the other */
    uint64_t a = h2->pcpu[0].ctx.cycles, b = h2c->cycles;
    if (h2->active == 0) a = h2->pcpu[1].ctx.cycles;
    ck_assert_uint_lt(a > b ? a - b : b - a, 200000);
    hv_free(h1);
    cpu_free(h1c);
    hv_free(h2);
    cpu_free(h2c);
}
END_TEST

static void collect(void *ud, const cpu_event *ev, size_t n) {
    cpu_trace *all = ud;
    for (size_t i = 0; i < n; i++) {
        if (all->n == all->cap) {
            all->cap = all->cap ? all->cap * 2 : 4096;
            all->buf = realloc(all->buf, all->cap * sizeof *all->buf);
            ck_assert_ptr_nonnull(all->buf);
        }
        all->buf[all->n++] = ev[i];
    }
}

START_TEST(test_smp_deterministic_and_traced) {
    cpu_trace t[2], got[2];
    for (int r = 0; r < 2; r++) {
        cpu_trace_init(&t[r], 4096);
        memset(&got[r], 0, sizeof got[r]);
        cpu_trace_add_sink(&t[r], collect, &got[r]);
        cpu_t *host;
        hv *h = smp_run(3, &host, &t[r]);
        cpu_trace_flush(&t[r]);
        hv_free(h);
        cpu_free(host);
    }
    ck_assert_uint_eq(got[0].n, got[1].n); /* same run, same records */
    ck_assert(memcmp(got[0].buf, got[1].buf, got[0].n * sizeof *got[0].buf) == 0);
    int seen[3] = {0};
    for (size_t i = 0; i < got[0].n; i++)
        if (got[0].buf[i].kind == EV_HV_PCPU && got[0].buf[i].a < 3) seen[got[0].buf[i].a] = 1;
    ck_assert(seen[0] && seen[1] && seen[2]); /* the trace says which CPU ran */
    for (int r = 0; r < 2; r++) {
        free(got[r].buf);
        cpu_trace_free(&t[r]);
    }
}
END_TEST

/* A processor's context: running a program in pieces, with another
 * processor's state swapped in and out between the pieces, gives the same
 * machine as running it in one go (registers, cycles, TLB-dependent costs). */
START_TEST(test_cpu_context_swap_is_invisible) {
    asm_image img = assemble("scenarios/guests/os.s");
    cpu_t *a = cpu_new(256 << 10), *b = cpu_new(256 << 10);
    cpu_policy_preset(a, "strict");
    cpu_policy_preset(b, "strict");
    for (int k = 0; k < img.nchunks; k++) {
        ck_assert_int_eq(cpu_phys_write(a, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
        ck_assert_int_eq(cpu_phys_write(b, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
    }
    a->pc = b->pc = img.entry;
    asm_image_free(&img);
    ck_assert_int_eq(cpu_run(a, 10000000), CPU_EXIT_HALT);
    cpu_context mine, other;
    cpu_context_save(b, &other);
    other.pc = 0x1234; /* another processor: elsewhere, at another time */
    other.cycles = 7;
    memset(other.tlb, 0, sizeof other.tlb);
    int rc;
    while ((rc = cpu_run(b, 777)) == CPU_EXIT_BUDGET) {
        cpu_context_save(b, &mine);
        cpu_context_load(b, &other);
        cpu_context_save(b, &other);
        cpu_context_load(b, &mine);
    }
    ck_assert_int_eq(rc, CPU_EXIT_HALT);
    ck_assert_uint_eq(a->cycles, b->cycles);
    ck_assert_uint_eq(a->steps, b->steps);
    ck_assert(memcmp(a->r, b->r, sizeof a->r) == 0);
    size_t la, lb;
    const char *ca = cpu_console(a, &la), *cb = cpu_console(b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(ca, cb, la) == 0);
    ck_assert(memcmp(a->mem, b->mem, a->mem_size) == 0);
    cpu_free(a);
    cpu_free(b);
}
END_TEST

START_TEST(test_smp_cpus_bounds) {
    char err[160];
    cpu_t *host = cpu_new(1 << 20);
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_int_eq(hv_set_cpus(h, 0, err, sizeof err), -1);
    ck_assert(strstr(err, "1 to 8 physical CPUs"));
    ck_assert_int_eq(hv_set_cpus(h, HV_MAX_CPUS + 1, err, sizeof err), -1);
    ck_assert_int_eq(hv_set_cpus(h, 2, err, sizeof err), 0);
    ck_assert_int_eq(hv_run(h, 100), CPU_EXIT_HALT); /* no VM: nothing to run */
    ck_assert_int_eq(hv_set_cpus(h, 3, err, sizeof err), -1);
    ck_assert(strstr(err, "has run already"));
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* ---- hosted (VMware Workstation) ---- */

static hv *hosted_new(cpu_t **host_out, const char *host_src) {
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    asm_image img;
    if (host_src) {
        char *e = NULL;
        ck_assert_msg(asm_assemble(host_src, strlen(host_src), "host", NULL, &img, &e) == 0, "%s", e ? e : "");
    } else {
        img = assemble("scenarios/guests/hosted/host.s");
    }
    int rc = hv_hosted_setup(h, &img, err, sizeof err);
    asm_image_free(&img);
    ck_assert_msg(rc == 0, "%s", err);
    *host_out = host;
    return h;
}

static hv_vm *load_vm(hv *h, const char *path, int tech, int shadow) {
    char err[160];
    hv_vm *vm = hv_vm_new(h, "guest", 256 << 10, tech, 1, err, sizeof err);
    ck_assert_msg(vm != NULL, "%s", err);
    vm->vtx_shadow = shadow;
    asm_image img = assemble(path);
    for (int k = 0; k < img.nchunks; k++)
        ck_assert_int_eq(hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
    vm->vcpu.pc = img.entry;
    asm_image_free(&img);
    return vm;
}

/* vlab-os in a hosted VM, under every technique: it finishes as it would
 * under a native hypervisor; every byte it wrote went through VMApp's
 * write() to the host's console; two world switches per byte. */
START_TEST(test_hosted_console_goes_through_vmapp) {
    static const int tech[] = {HV_TRAP_EMULATE, HV_BT, HV_VTX, HV_VTX};
    for (int i = 0; i < 4; i++) {
        cpu_t *host;
        hv *h = hosted_new(&host, NULL);
        hv_vm *vm = load_vm(h, "scenarios/guests/os.s", tech[i], i == 3);
        ck_assert_int_eq(hv_run(h, 50000000), CPU_EXIT_HALT);
        ck_assert_msg(ends_well(vm), "technique %d: %.*s", i, (int)vm->console_len, vm->console);
        ck_assert(!h->host_broken);
        static const char boot[] = "host OS up\nVMApp: power on\n";
        size_t len, nb = strlen(boot);
        const char *con = cpu_console(host, &len);
        ck_assert_uint_eq(len, nb + vm->console_len);
        ck_assert(memcmp(con, boot, nb) == 0);
        ck_assert(memcmp(con + nb, vm->console, vm->console_len) == 0);
        /* the timer and the boot's read of the disk-size port (no disk
         * here) stay in the VMM; the console bytes go to VMApp */
        ck_assert_uint_eq(vm->vcpu.world_switches, 2 * vm->console_len);
        ck_assert_uint_eq(h->world_switches, 1 + 2 * vm->console_len); /* and VMApp's power-on */
        hv_free(h);
        cpu_free(host);
    }
}
END_TEST

/* The paper's optimisation: cheap registers (the timer, the disk's
 * registers but its command) handled in the VMM.  Without it, every timer
 * access and the disk-size read make the round trip through the host. */
START_TEST(test_hosted_cheap_registers_in_the_vmm) {
    uint64_t sw[2], cyc[2];
    for (int cheap = 0; cheap < 2; cheap++) {
        cpu_t *host;
        hv *h = hosted_new(&host, NULL);
        h->cheap_in_vmm = cheap;
        hv_vm *vm = load_vm(h, "scenarios/guests/os.s", HV_TRAP_EMULATE, 0);
        ck_assert_int_eq(hv_run(h, 50000000), CPU_EXIT_HALT);
        ck_assert(ends_well(vm));
        /* port accesses: console bytes, one read of the disk-size port, the rest the timer's */
        uint64_t timer = vm->vcpu.emulated_by_op[OP_OUT] + vm->vcpu.emulated_by_op[OP_IN] - vm->console_len - 1;
        ck_assert_uint_gt(timer, 0); /* vlab-os programs its timer */
        ck_assert_uint_eq(vm->vcpu.world_switches, 2 * (vm->console_len + (cheap ? 0 : timer + 1)));
        sw[cheap] = vm->vcpu.world_switches;
        cyc[cheap] = vm->cpu_cycles;
        hv_free(h);
        cpu_free(host);
    }
    ck_assert_uint_gt(sw[0], sw[1]);
    ck_assert_uint_gt(cyc[0], cyc[1]);
}
END_TEST

/* A host world that never switches back, or a host image that does not
 * fit: a clear error or a stopped host world, never a host crash. */
START_TEST(test_hosted_bad_host_world) {
    cpu_t *host;
    hv *h = hosted_new(&host, "        .org 0x11000\nstart: cli\n        hlt\nworld_switch: nop\n");
    hv_vm *vm = load_vm(h, "scenarios/guests/tiny/kernel.s", HV_TRAP_EMULATE, 0);
    (void)vm;
    hv_run(h, 1000000);
    ck_assert(h->host_broken);
    hv_free(h);
    cpu_free(host);

    char err[160];
    host = cpu_new(4 << 20);
    h = hv_new(host, err, sizeof err);
    asm_image img;
    char *e = NULL;
    const char *outside = "        .org 0x40000\nstart: nop\nworld_switch: nop\n";
    ck_assert_int_eq(asm_assemble(outside, strlen(outside), "host", NULL, &img, &e), 0);
    ck_assert_int_eq(hv_hosted_setup(h, &img, err, sizeof err), -1);
    ck_assert(strstr(err, "must lie in 0x10000-0x2ffff"));
    asm_image_free(&img);
    const char *noswitch = "        .org 0x11000\nstart: nop\n";
    ck_assert_int_eq(asm_assemble(noswitch, strlen(noswitch), "host", NULL, &img, &e), 0);
    ck_assert_int_eq(hv_hosted_setup(h, &img, err, sizeof err), -1);
    ck_assert(strstr(err, "world_switch"));
    asm_image_free(&img);
    hv_free(h);
    cpu_free(host);
}
END_TEST

Suite *suite_hv(void) {
    Suite *s = suite_create("hv");
    TCase *t = tcase_create("trap-and-emulate");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_equivalence_strict_console);
    tcase_add_test(t, test_x86_smsw_leaks_the_real_status);
    tcase_add_test(t, test_guest_paging_through_shadow_tables);
    tcase_add_test(t, test_virtual_timer_and_hlt);
    tcase_add_test(t, test_fault_reflected);
    tcase_add_test(t, test_vm_memory_is_elsewhere_on_the_host);
    tcase_add_test(t, test_vm_too_big);
    tcase_add_test(t, test_vtx_equivalence_on_x86);
    tcase_add_test(t, test_vtx_guest_paging_with_ept);
    tcase_add_test(t, test_vtx_guest_paging_with_shadow_tables);
    tcase_add_test(t, test_vtx_shadow_redelivers_after_frame_fault);
    tcase_add_test(t, test_shadow_cache_stays_coherent);
    tcase_add_test(t, test_vtx_timer_injection);
    tcase_add_test(t, test_vtx_fault_stays_in_guest);
    tcase_add_test(t, test_bt_closes_the_holes);
    tcase_add_test(t, test_bt_self_modifying_code);
    tcase_add_test(t, test_pv_hypercalls);
    tcase_add_test(t, test_pv_mmu_update_validates);
    tcase_add_test(t, test_smp_more_vms_than_cpus);
    tcase_add_test(t, test_smp_deterministic_and_traced);
    tcase_add_test(t, test_cpu_context_swap_is_invisible);
    tcase_add_test(t, test_smp_cpus_bounds);
    tcase_add_test(t, test_hosted_console_goes_through_vmapp);
    tcase_add_test(t, test_hosted_cheap_registers_in_the_vmm);
    tcase_add_test(t, test_hosted_bad_host_world);
    suite_add_tcase(s, t);
    return s;
}
