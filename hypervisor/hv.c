/* hypervisor/hv.c -- the hypervisor's run loop: put a VM's vCPU on the
 * physical CPU, run until something traps, handle the exit (trap.c), and
 * share the CPU between VMs round-robin with the hypervisor's own timer. */
#include "hypervisor/hv_internal.h"
#include "hypervisor/cowmem.h"

#include <stdlib.h>
#include <string.h>

#define HV_FIRST_FRAME 16 /* host pages below this are the hypervisor's own */

void hv_emit(hv *h, int kind, int a, int b, uint32_t pc, uint32_t x, uint32_t y) {
    cpu_emit(h->host, kind, a, b, pc, x, y);
}

hv *hv_new(cpu_t *host, char *err, size_t errlen) {
    if (host->npages <= HV_FIRST_FRAME + 2) {
        snprintf(err, errlen, "the host needs more than %u KiB of memory", (HV_FIRST_FRAME + 2) * 4);
        return NULL;
    }
    hv *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->host = host;
    h->next_frame = HV_FIRST_FRAME;
    h->free_frames = host->npages - HV_FIRST_FRAME;
    h->current = -1;
    if (hv_frames_init(h)) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    hv_cost_preset(h, "nehalem2009");
    h->quantum = 100000;
    for (int v = 0; v < CPU_NVEC; v++) cpu_intercept(host, v, 1);
    return h;
}

int hv_cost_preset(hv *h, const char *name) {
    int adams = strcmp(name, "adams2006") == 0;
    if (!adams && strcmp(name, "nehalem2009") != 0) return -1;
    /* the software VMM, in the range of Adams & Agesen (2006): a trap into
     * the VMM and back is about as dear as a native fault */
    h->cost_exit = 500;
    h->cost_emulate = 200;
    h->cost_reflect = 400;
    h->cost_translate = 4000; /* translating a page of kernel code: startup S is high ... */
    h->cost_callout = adams ? 35 : 40; /* ... a callout T is cheap (their cr8wr: 35 cycles) */
    /* a VM exit and the entry back: Pentium 4 VT-x (pgfault 11,242, ptemod
     * 12,733 cycles) against Nehalem with KVM (about 2,000, SplitX) */
    h->cost_vmexit = adams ? 11000 : 2000;
    return 0;
}

void hv_free(hv *h) {
    if (!h) return;
    for (int i = 0; i < h->nvms; i++) hv_vm_free(h->vms[i]);
    free(h->vms);
    hv_frames_free(h);
    free(h);
}

static void save(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    if (vm->technique == HV_VTX) {
        hv_vmx_leave(h, vm);
        return;
    }
    hv_vcpu *v = &vm->vcpu;
    memcpy(v->r, c->r, sizeof v->r);
    v->pc = c->pc;
    v->flags = cpu_get_flags(c) & CPU_FL_ARITH;
}

static void load(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    h->current = vm->id;
    if (vm->technique == HV_VTX) {
        hv_vmx_enter(h, vm);
        return;
    }
    for (int i = 0; i < CPU_NVEC; i++) cpu_intercept(c, i, 1); /* every trap comes to us */
    memcpy(c->r, v->r, sizeof c->r);
    c->pc = v->pc;
    cpu_set_flags(c, v->flags | CPU_FL_IF); /* the real IF is on: the hypervisor's timer must get through */
    cpu_set_cpl(c, v->vcpl == 3 ? 3 : vm->kernel_ring);
    cpu_set_cr(c, CR_PTBR, hv_shadow_root(vm));
    cpu_set_cr(c, CR_STATUS, CPU_ST_PG);
    c->halted = 0;
    h->current = vm->id;
    hv_emit(h, EV_HV_VMRUN, vm->id, 0, c->pc, 0, 0);
}

/* Arm the hypervisor's timer for the end of the slice or the VM's next
 * virtual tick, whichever comes first. */
static void arm_timer(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    uint64_t next = h->slice_end;
    if (vm->vcpu.vtimer_period && vm->vcpu.vtimer_deadline < next) next = vm->vcpu.vtimer_deadline;
    c->timer_period = 0xffffffffu;
    c->timer_deadline = next > c->cycles ? next : c->cycles;
    c->event_at = 0;
}

static int runnable(const hv_vm *vm) { return !vm->done && !vm->vcpu.halted; }

/* The next VM to run: round-robin after the current one, or the one with
 * the least weighted CPU time (proportional share, as in stride or
 * weighted-fair scheduling). */
static hv_vm *pick(hv *h) {
    hv_vm *best = NULL;
    for (int k = 1; k <= h->nvms; k++) {
        int i = h->current < 0 ? k - 1 : (h->current + k) % h->nvms;
        hv_vm *vm = h->vms[i];
        if (!runnable(vm)) continue;
        if (h->sched == HV_SCHED_RR) return vm;
        if (!best || vm->pass < best->pass || (vm->pass == best->pass && vm->id < best->id)) best = vm;
    }
    return best;
}

/* VMs waiting in hlt wake at their virtual tick.  When no VM can run, the
 * CPU idles: time jumps to the earliest tick.  0 when nothing will ever run. */
static int wake(hv *h) {
    cpu_t *c = h->host;
    for (;;) {
        int any = 0;
        uint64_t next = UINT64_MAX;
        for (int i = 0; i < h->nvms; i++) {
            hv_vm *vm = h->vms[i];
            if (vm->done) continue;
            if (vm->vcpu.halted) {
                if (c->cycles >= vm->vcpu.vtimer_deadline) vm->vcpu.halted = 0;
                else if (vm->vcpu.vtimer_deadline < next) next = vm->vcpu.vtimer_deadline;
            }
            any |= runnable(vm);
        }
        if (any) return 1;
        if (next == UINT64_MAX) return 0;
        c->cycles = next; /* every VM waits: the physical CPU idles */
    }
}

/* Take the CPU from vm (may be NULL) and give it to the next one. */
static hv_vm *switch_vm(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    if (vm) {
        uint64_t used = c->cycles - h->slice_start;
        vm->cpu_cycles += used;
        vm->pass += used / (vm->weight ? vm->weight : 1);
    }
    hv_vm *next = wake(h) ? pick(h) : NULL;
    if (next != vm) {
        if (vm) save(h, vm);
        h->current = -1;
        if (!next) return NULL;
        load(h, next);
        next->slices++;
    }
    if (!next) return NULL; /* nothing was running, and nothing can */
    if (next->technique != HV_VTX) hv_check_virq(h, next); /* a tick that woke it */
    h->slice_start = c->cycles;
    h->slice_end = c->cycles + h->quantum;
    return next;
}

int hv_run(hv *h, uint64_t max_steps) {
    cpu_t *c = h->host;
    uint64_t end = c->steps + max_steps;
    hv_vm *vm = h->current >= 0 ? h->vms[h->current] : NULL;
    if (!vm || !runnable(vm)) {
        if (!(vm = switch_vm(h, vm))) return CPU_EXIT_HALT;
    }
    while (c->steps < end) {
        arm_timer(h, vm);
        int rc = cpu_run(c, end - c->steps);
        if (rc == CPU_EXIT_BUDGET) return rc;
        if (rc == CPU_EXIT_TRAP && vm->technique != HV_VTX) {
            hv_exit(h, vm);
        } else if (rc == CPU_EXIT_CALLOUT && vm->technique == HV_BT) {
            hv_bt_callout(h, vm);
        } else if (rc == CPU_EXIT_VMX && vm->technique == HV_VTX) {
            hv_vmx_exit(h, vm);
        } else if (rc == CPU_EXIT_SHUTDOWN || rc == CPU_EXIT_HALT) {
            vm->done = 1; /* the guest shut down (VT-x: its own triple fault) */
        } else {
            return rc; /* a breakpoint or a stop asked by the host */
        }
        if (!runnable(vm) || c->cycles >= h->slice_end) { /* the next VM's turn */
            if (!(vm = switch_vm(h, vm))) return CPU_EXIT_HALT;
        }
    }
    return CPU_EXIT_BUDGET;
}
