/* hypervisor/hv.c -- the hypervisor's run loop: put a VM's vCPU on a
 * physical CPU, run until something traps, handle the exit (trap.c), and
 * share the CPUs between VMs, round-robin or in proportion to weights, with
 * the hypervisor's own timer on each CPU.
 *
 * Several physical CPUs share the machine's memory; each has its own
 * registers, TLB, timer and cycle counter (cpu_context).  They take turns on
 * the one simulated processor: the CPU furthest behind in cycles runs next,
 * for at most `interleave` instructions, so their clocks stay within about
 * one turn of each other and every run is deterministic.  One run queue
 * serves all CPUs (a VM runs on one CPU at a time, and may run on another
 * after its next slice: migration); a CPU with nothing to run idles until a
 * waiting VM's virtual timer falls due. */
#include "hypervisor/hv_internal.h"
#include "hypervisor/disk.h"
#include "hypervisor/cowmem.h"

#include <stdlib.h>
#include <string.h>


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
    h->ncpus = 1;
    h->pcpu[0].vm = -1;
    h->rr_last = -1;
    h->host_disk_vm = -1;
    h->interleave = 1000;
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
    h->cost_world = 5000; /* hosted.c: a world switch, either way */
    return 0;
}

static void take_callouts(cpu_t *c, hv_vm *vm);

void hv_free(hv *h) {
    if (!h) return;
    if (h->current >= 0) take_callouts(h->host, h->vms[h->current]); /* the VM frees them */
    free(h->host_world.callouts); /* hosted: VMDriver's switch into the VMM */
    disk_detach_native(h->host, h->host_disk); /* hosted: the host machine's disk controller */
    for (int i = 0; i < h->nvms; i++) hv_vm_free(h->vms[i]);
    free(h->vms);
    hv_frames_free(h);
    free(h);
}

/* Binary translation's callouts are the VM's: in force while it runs. */
static void take_callouts(cpu_t *c, hv_vm *vm) {
    vm->callouts = c->callouts;
    vm->ncallouts = c->ncallouts;
    vm->callout_cap = c->callout_cap;
    c->callouts = NULL;
    c->ncallouts = c->callout_cap = 0;
}

static void give_callouts(cpu_t *c, const hv_vm *vm) {
    c->callouts = vm->callouts;
    c->ncallouts = vm->ncallouts;
    c->callout_cap = vm->callout_cap;
}

/* The TLBs of every physical CPU (and of a hosted VMM's host world): the
 * waiting ones keep theirs in their saved context. */
static void ctx_drop_frame(cpu_context *x, uint32_t f) {
    for (int i = 0; i < CPU_TLB_SIZE; i++)
        if (x->tlb[i].vpn && x->tlb[i].ppn == f) memset(&x->tlb[i], 0, sizeof x->tlb[i]);
}

void hv_tlb_drop_frame(hv *h, uint32_t f) {
    cpu_t *c = h->host;
    for (int i = 0; i < CPU_TLB_SIZE; i++)
        if (c->tlb[i].vpn && c->tlb[i].ppn == f) memset(&c->tlb[i], 0, sizeof c->tlb[i]);
    c->tlb_gen++;
    for (int p = 0; p < h->ncpus; p++)
        if (p != h->active) ctx_drop_frame(&h->pcpu[p].ctx, f);
    if (h->hosted) ctx_drop_frame(&h->host_world, f);
}

void hv_tlb_flush_all(hv *h) {
    cpu_tlb_flush(h->host);
    for (int p = 0; p < h->ncpus; p++)
        if (p != h->active) memset(h->pcpu[p].ctx.tlb, 0, sizeof h->pcpu[p].ctx.tlb);
}

/* Binary translation: a clone's translations call out where its parent's
 * do.  The parent's callouts are in the CPU it runs on, or its own. */
int hv_vm_copy_callouts(hv *h, const hv_vm *from, hv_vm *to) {
    int p = hv_vm_cpu(h, from);
    const uint32_t *set = from->callouts;
    uint32_t n = from->ncallouts, cap = from->callout_cap;
    if (p == h->active) {
        set = h->host->callouts;
        n = h->host->ncallouts;
        cap = h->host->callout_cap;
    } else if (p >= 0) {
        set = h->pcpu[p].ctx.callouts;
        n = h->pcpu[p].ctx.ncallouts;
        cap = h->pcpu[p].ctx.callout_cap;
    }
    if (!set || !cap) return 0;
    to->callouts = malloc(cap * sizeof *to->callouts);
    if (!to->callouts) return -1;
    memcpy(to->callouts, set, cap * sizeof *to->callouts);
    to->ncallouts = n;
    to->callout_cap = cap;
    return 0;
}

static void save(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    vm->last_cycle = c->cycles;
    take_callouts(c, vm);
    if (vm->technique == HV_VTX) {
        hv_vmx_leave(h, vm);
        return;
    }
    hv_vcpu *v = &vm->vcpu;
    memcpy(v->r, c->r, sizeof v->r);
    v->pc = c->pc;
    v->flags = cpu_get_flags(c) & CPU_FL_ARITH;
}

void hv_unload(hv *h, hv_vm *vm) {
    if (h->current != vm->id) return;
    vm->cpu_cycles += h->host->cycles - h->slice_start;
    h->pcpu[h->active].busy += h->host->cycles - h->slice_start;
    save(h, vm);
    h->current = -1;
    h->pcpu[h->active].vm = -1;
}

static void load(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    /* it left another CPU at last_cycle: this one waits until then, so the
     * guest never sees its time go back (migration) */
    if (c->cycles < vm->last_cycle) c->cycles = vm->last_cycle;
    h->current = vm->id;
    h->pcpu[h->active].vm = vm->id;
    if (vm->last_cpu >= 0 && vm->last_cpu != h->active) vm->migrations++;
    vm->last_cpu = h->active;
    give_callouts(c, vm);
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
    hv_emit(h, EV_HV_VMRUN, vm->id, 0, c->pc, 0, 0);
}

/* Arm the hypervisor's timer for the end of the slice or the VM's next
 * virtual device event (tick, disk completion), whichever comes first. */
static void arm_timer(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    uint64_t next = h->slice_end;
    if (hv_vdev_deadline(vm) < next) next = hv_vdev_deadline(vm); /* its virtual timer or disk */
    c->timer_period = 0xffffffffu;
    c->timer_deadline = next > c->cycles ? next : c->cycles;
    c->event_at = 0;
}

static int runnable(const hv_vm *vm) { return !vm->done && !vm->vcpu.halted; }

int hv_vm_cpu(const hv *h, const hv_vm *vm) {
    for (int p = 0; p < h->ncpus; p++)
        if ((p == h->active ? h->current : h->pcpu[p].vm) == vm->id) return p;
    return -1;
}

/* Can the active CPU take vm?  Not while another CPU runs it. */
static int free_to_run(const hv *h, const hv_vm *vm) {
    int p = hv_vm_cpu(h, vm);
    return runnable(vm) && (p < 0 || p == h->active);
}

/* The next VM for the active CPU: round-robin after the one picked last, or
 * the one with the least weighted CPU time (proportional share, as in stride
 * or weighted-fair scheduling). */
static hv_vm *pick(hv *h) {
    hv_vm *best = NULL;
    int from = h->current >= 0 ? h->current : h->rr_last;
    for (int k = 1; k <= h->nvms; k++) {
        int i = from < 0 ? k - 1 : (from + k) % h->nvms;
        hv_vm *vm = h->vms[i];
        if (!free_to_run(h, vm)) continue;
        if (h->sched == HV_SCHED_RR) return vm;
        if (!best || vm->pass < best->pass || (vm->pass == best->pass && vm->id < best->id)) best = vm;
    }
    return best;
}

/* VMs waiting in hlt wake at their virtual tick.  With one CPU, when no VM
 * can run, the CPU idles: time jumps to the earliest tick (with several,
 * hv_run idles a CPU).  0 when nothing can run now (one CPU: ever). */
static int wake(hv *h) {
    cpu_t *c = h->host;
    for (;;) {
        int any = 0;
        uint64_t next = UINT64_MAX;
        for (int i = 0; i < h->nvms; i++) {
            hv_vm *vm = h->vms[i];
            if (vm->done) continue;
            if (vm->vcpu.halted) {
                uint64_t due = hv_vdev_deadline(vm); /* its virtual timer or disk */
                if (c->cycles >= due) vm->vcpu.halted = 0;
                else if (due < next) next = due;
            }
            any |= free_to_run(h, vm);
        }
        if (any) return 1;
        if (next == UINT64_MAX || h->ncpus > 1) return 0;
        c->cycles = next; /* every VM waits: the physical CPU idles */
    }
}

/* Take the active CPU from vm (may be NULL) and give it to the next VM;
 * NULL: the CPU is idle now. */
static hv_vm *switch_vm(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_pcpu *p = &h->pcpu[h->active];
    if (vm) {
        uint64_t used = c->cycles - h->slice_start;
        vm->cpu_cycles += used;
        vm->pass += used / (vm->weight ? vm->weight : 1);
        p->busy += used;
    }
    hv_vm *next = wake(h) ? pick(h) : NULL;
    if (next != vm) {
        if (vm) save(h, vm);
        h->current = -1;
        p->vm = -1;
    }
    if (!next) return NULL;
    if (next != vm) {
        load(h, next);
        next->slices++;
        p->slices++;
    }
    h->rr_last = next->id;
    if (next->technique != HV_VTX) hv_check_virq(h, next); /* a tick that woke it */
    h->slice_start = c->cycles;
    h->slice_end = c->cycles + h->quantum;
    return next;
}

int hv_set_cpus(hv *h, int n, char *err, size_t errlen) {
    if (n < 1 || n > HV_MAX_CPUS) {
        snprintf(err, errlen, "a machine has 1 to %d physical CPUs, not %d", HV_MAX_CPUS, n);
        return -1;
    }
    if (h->ran && n != h->ncpus) {
        snprintf(err, errlen, "the machine has run already: its CPUs are fixed");
        return -1;
    }
    hv_focus(h, 0);
    for (int p = 1; p < n; p++) { /* they start as the first one is now: idle, same clock */
        cpu_context_save(h->host, &h->pcpu[p].ctx);
        h->pcpu[p].vm = -1;
    }
    h->ncpus = n;
    if (n > 1) hv_emit(h, EV_HV_PCPU, 0, 0, h->host->pc, 0, 0); /* the trace: CPU 0 goes first */
    return 0;
}

static uint64_t clock_of(const hv *h, int p) {
    return p == h->active ? h->host->cycles : h->pcpu[p].ctx.cycles;
}

uint64_t hv_elapsed(const hv *h) {
    uint64_t t = 0;
    for (int p = 0; p < h->ncpus; p++)
        if (clock_of(h, p) > t) t = clock_of(h, p);
    return t;
}

/* Make physical CPU p the one whose state is in the host cpu_t. */
void hv_focus(hv *h, int p) {
    if (p == h->active || p < 0 || p >= h->ncpus) return;
    cpu_t *c = h->host;
    hv_pcpu *a = &h->pcpu[h->active], *b = &h->pcpu[p];
    cpu_context_save(c, &a->ctx);
    a->vm = h->current;
    a->slice_start = h->slice_start;
    a->slice_end = h->slice_end;
    cpu_context_load(c, &b->ctx);
    h->current = b->vm;
    h->slice_start = b->slice_start;
    h->slice_end = b->slice_end;
    h->active = p;
    hv_emit(h, EV_HV_PCPU, p, 0, c->pc, 0, 0);
}

/* The CPU furthest behind in cycles (the lowest number on a tie). */
static int behind(const hv *h) {
    int best = 0;
    for (int p = 1; p < h->ncpus; p++)
        if (clock_of(h, p) < clock_of(h, best)) best = p;
    return best;
}

/* The earliest cycle another CPU than the active one has reached. */
static uint64_t others_min(const hv *h) {
    uint64_t t = UINT64_MAX;
    for (int p = 0; p < h->ncpus; p++)
        if (p != h->active && clock_of(h, p) < t) t = clock_of(h, p);
    return t;
}

/* The active CPU has nothing to run: it idles until the first waiting VM's
 * virtual tick, or for a turn while other CPUs run (one of them may leave
 * a VM for it).  0 when nothing will ever run again. */
static int idle(hv *h) {
    cpu_t *c = h->host;
    uint64_t next = UINT64_MAX, busy = UINT64_MAX;
    for (int i = 0; i < h->nvms; i++) {
        const hv_vm *vm = h->vms[i];
        if (!vm->done && vm->vcpu.halted && hv_vdev_deadline(vm) < next)
            next = hv_vdev_deadline(vm); /* its virtual timer or disk */
    }
    for (int p = 0; p < h->ncpus; p++)
        if (p != h->active && h->pcpu[p].vm >= 0 && clock_of(h, p) < busy) busy = clock_of(h, p);
    if (busy != UINT64_MAX) {
        uint64_t turn = (busy > c->cycles ? busy : c->cycles) + h->interleave;
        if (turn < next) next = turn;
    }
    if (next == UINT64_MAX) return 0;
    if (next > c->cycles) c->cycles = next;
    return 1;
}

int hv_run(hv *h, uint64_t max_steps) {
    cpu_t *c = h->host;
    uint64_t end = c->steps + max_steps;
    h->ran = 1;
    hv_hosted_boot(h); /* hosted: the host OS boots and VMApp powers the VMs on */
    for (;;) {
        if (h->ncpus > 1) hv_focus(h, behind(h));
        hv_vm *vm = h->current >= 0 ? h->vms[h->current] : NULL;
        if (!vm || !runnable(vm)) {
            if (!(vm = switch_vm(h, vm))) {
                if (h->ncpus == 1 || !idle(h)) return CPU_EXIT_HALT;
                continue;
            }
        }
        /* its turn: until its budget, or (several CPUs) until it is a turn
         * ahead of the others */
        uint64_t ahead = h->ncpus > 1 ? others_min(h) + h->interleave : UINT64_MAX;
        while (vm && c->steps < end && c->cycles <= ahead) {
            arm_timer(h, vm);
            uint64_t budget = end - c->steps;
            if (h->ncpus > 1 && budget > h->interleave) budget = h->interleave;
            if (h->checkpoint_hook && h->checkpoint_hook(h->checkpoint_ud, c)) return CPU_EXIT_STOP;
            int rc = cpu_run(c, budget);
            if (rc == CPU_EXIT_BUDGET) {
                if (c->steps >= end) return rc;
                break; /* the others' turn */
            }
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
                vm = switch_vm(h, vm);
                if (!vm && h->ncpus == 1) return CPU_EXIT_HALT;
            }
        }
        if (c->steps >= end) return CPU_EXIT_BUDGET;
    }
}
