/* hypervisor/trap.c -- the dispatcher and the interpreter routines.
 *
 * Every trap of a running guest comes here (the host CPU intercepts all
 * vectors).  hv_exit() is a switch on what happened, one handler each:
 *   #GP from a privileged instruction of the guest kernel -> emulate it on
 *      the vCPU's virtual state (one routine per instruction, below);
 *   #PF -> fill the shadow page table, emulate a guest page-table write, or
 *      reflect the guest's own page fault;
 *   anything else (syscalls, exceptions of guest code) -> reflect it into the
 *      guest kernel through the guest's own vector table;
 *   the host timer -> the virtual timer ticks, a virtual interrupt is
 *      injected when the virtual IF allows, held pending otherwise.
 * Popek & Goldberg (1974): dispatcher, interpreter routines; Adams & Agesen
 * (2006) for what each costs. */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

/* FLAGS as the guest believes them: its virtual IF and virtual ring. */
static uint32_t guest_flags(hv *h, hv_vm *vm) {
    uint32_t f = cpu_get_flags(h->host) & CPU_FL_ARITH;
    if (vm->vcpu.vif) f |= CPU_FL_IF;
    return f | (uint32_t)vm->vcpu.vcpl << CPU_FL_CPL_SHIFT;
}

/* The real ring for a virtual one: the kernel is compressed into kernel_ring. */
static int real_ring(const hv_vm *vm, int vcpl) { return vcpl == 3 ? 3 : vm->kernel_ring; }

static void set_vcpl(hv *h, hv_vm *vm, int vcpl);
void hv_set_vcpl(hv *h, hv_vm *vm, int vcpl) { set_vcpl(h, vm, vcpl); }

static void set_vcpl(hv *h, hv_vm *vm, int vcpl) {
    int was = vm->vcpu.vcpl == 3;
    vm->vcpu.vcpl = (uint8_t)vcpl;
    cpu_set_cpl(h->host, real_ring(vm, vcpl));
    if (was != (vcpl == 3)) cpu_set_cr(h->host, CR_PTBR, hv_shadow_root(vm)); /* the other shadow */
}

/* Deliver vector into the guest, as its hardware would: through the guest's
 * vector table, onto its kernel stack, into its ring 0.  `at` is the guest
 * pc the trap came from; the host pc holds the return address. */
void hv_reflect(hv *h, hv_vm *vm, int vector, int cause, uint32_t err, uint32_t aux, uint32_t at) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    for (int depth = 0;; depth++) {
        uint32_t handler = 0;
        if (hv_vm_read_phys(h, vm, v->vcr[CR_VBR] + 4u * (uint32_t)vector, &handler, 4)) handler = 0;
        uint32_t sp = v->vcpl > 0 ? v->vcr[CR_KSP] : c->r[CPU_REG_SP];
        uint32_t frame[5] = {err, c->pc, guest_flags(h, vm), v->vcpl, c->r[CPU_REG_SP]};
        if (handler && hv_guest_copy(h, vm, sp - sizeof frame, frame, sizeof frame, 1) == 0) {
            if (vector == VEC_PF) v->vcr[CR_FADDR] = aux;
            c->r[CPU_REG_SP] = sp - sizeof frame;
            c->pc = handler;
            set_vcpl(h, vm, 0);
            v->vif = 0;
            v->halted = 0;
            v->reflections++;
            c->cycles += h->cost_reflect;
            hv_emit(h, EV_HV_REFLECT, vector, cause, at, handler, aux);
            return;
        }
        /* the guest could not take it: its double fault, then its shutdown */
        if (depth == 0 && vector != VEC_DF) {
            hv_emit(h, EV_HV_REFLECT, vector, cause, at, 0, aux);
            aux = (uint32_t)vector;
            vector = VEC_DF;
            cause = CAUSE_DF;
            err = 0;
            continue;
        }
        hv_emit(h, EV_HV_HALT, vm->id, 0, at, 1, 0);
        vm->done = 1;
        return;
    }
}

/* The virtual devices, and injection of a pending virtual interrupt. */
void hv_check_virq(hv *h, hv_vm *vm) {
    hv_vcpu *v = &vm->vcpu;
    cpu_t *c = h->host;
    hv_vdev_tick(h, vm); /* the virtual timer's tick, the virtual disk's completion */
    if (v->virq_pending && v->vif) {
        int line = __builtin_ctz(v->virq_pending);
        v->virq_pending &= ~(1u << line);
        v->injections++;
        uint32_t at = c->pc;
        hv_emit(h, EV_HV_INJECT, VEC_IRQ0 + line, 0, at, 0, 0);
        hv_reflect(h, vm, VEC_IRQ0 + line, CAUSE_IRQ, 0, (uint32_t)line, at);
    }
}

static int guest_push(hv *h, hv_vm *vm, uint32_t value) {
    cpu_t *c = h->host;
    if (hv_guest_copy(h, vm, c->r[CPU_REG_SP] - 4, &value, 4, 1)) return -1;
    c->r[CPU_REG_SP] -= 4;
    return 0;
}

static int guest_pop(hv *h, hv_vm *vm, uint32_t *value) {
    cpu_t *c = h->host;
    if (hv_guest_copy(h, vm, c->r[CPU_REG_SP], value, 4, 0)) return -1;
    c->r[CPU_REG_SP] += 4;
    return 0;
}

static uint32_t vcr_read(hv_vm *vm, int n) {
    if (n == CR_STATUS) return (vm->vcpu.vcr[CR_STATUS] & ~CPU_ST_CPL) | vm->vcpu.vcpl;
    return n < CPU_NCR ? vm->vcpu.vcr[n] : 0;
}

/* One interpreter routine per privileged instruction, on the virtual state.
 * Returns 0 when emulated (pc moves on), 1 when the instruction faulted in
 * the guest (already reflected), -1 for "the VM stops". */
static int emulate(hv *h, hv_vm *vm, const cpu_exit *x, uint32_t cost, int tag) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    const cpu_insn *in = &x->insn;
    uint32_t *R = c->r, result = 0;
    if (h->emulate_hook && in->op < OP_COUNT && h->hooked[in->op]) {
        c->pc = x->pc;
        if (h->emulate_hook(h->emulate_ud, h, vm, x)) { /* a routine written in the scenario */
            if (c->pc == x->pc) c->pc = x->next_pc;
            v->emulations++;
            v->emulated_by_op[in->op]++;
            c->cycles += h->cost_emulate;
            hv_emit(h, EV_HV_EMULATE, in->op, 1, x->pc, x->word[0], 0);
            return vm->done ? -1 : 0;
        }
    }
    c->pc = x->next_pc;
    switch (in->op) {
    case OP_CLI: v->vif = 0; break;
    case OP_STI: v->vif = 1; break;
    case OP_PUSHF:
        if (guest_push(h, vm, guest_flags(h, vm))) goto fault;
        break;
    case OP_POPF: {
        uint32_t f;
        if (guest_pop(h, vm, &f)) goto fault;
        cpu_set_flags(c, (f & CPU_FL_ARITH) | CPU_FL_IF); /* the real IF stays on */
        v->vif = !!(f & CPU_FL_IF);
        result = v->vif;
        break;
    }
    case OP_HLT:
        if (v->vif && hv_vdev_deadline(vm) != UINT64_MAX) { /* wait for the virtual timer or disk:
                                                              * the CPU goes to another VM */
            v->halted = 1;
            hv_emit(h, EV_HV_HALT, vm->id, hv_vdev_disk_first(vm), x->pc, 0, 0);
        } else {
            hv_emit(h, EV_HV_HALT, vm->id, 0, x->pc, 1, 0);
            vm->done = 1;
            return -1;
        }
        break;
    case OP_IRET: {
        uint32_t f[5];
        if (hv_guest_copy(h, vm, R[CPU_REG_SP], f, sizeof f, 0)) goto fault;
        c->pc = f[1];
        cpu_set_flags(c, (f[2] & CPU_FL_ARITH) | CPU_FL_IF);
        v->vif = !!(f[2] & CPU_FL_IF);
        R[CPU_REG_SP] = f[4];
        set_vcpl(h, vm, (int)(f[3] & 3));
        result = c->pc;
        break;
    }
    case OP_IN:
    case OP_OUT: {
        uint32_t port = (uint32_t)in->imm & 0xffff, val = in->op == OP_OUT ? R[in->rb] : 0;
        val = hv_vio(h, vm, in->op == OP_OUT, port, val, x->pc);
        if (in->op == OP_IN) R[in->ra] = val;
        result = val;
        break;
    }
    case OP_WRCR: {
        uint32_t val = R[in->rb];
        int n = in->ra;
        if (n == CR_STATUS) {
            uint32_t old = v->vcr[CR_STATUS];
            v->vcr[CR_STATUS] = val & CPU_ST_WRITABLE;
            if ((old ^ val) & CPU_ST_PG) hv_shadow_flush(h, vm);
        } else if (n == CR_PTBR) {
            hv_shadow_switch(h, vm, val & PTE_FRAME, x->pc);
        } else if (n < CPU_NCR) {
            v->vcr[n] = val;
        }
        result = val;
        break;
    }
    case OP_RDCR: R[in->ra] = result = vcr_read(vm, in->rb); break;
    case OP_INVLPG:
        hv_shadow_drop(h, vm, R[in->ra]); /* the one page */
        break;
    case OP_SIDT: R[in->ra] = result = v->vcr[CR_VBR]; break;
    case OP_SMSW: R[in->ra] = result = vcr_read(vm, CR_STATUS); break;
    case OP_RDTSC:
        R[in->ra] = (uint32_t)c->cycles;
        R[in->rb] = (uint32_t)(c->cycles >> 32);
        result = R[in->ra];
        break;
    case OP_CPUID: R[in->ra] = result = hv_vcpuid(vm, R[in->rb]); break;
    default: /* VMX instructions: no nested virtualization */
        c->pc = x->pc;
        hv_reflect(h, vm, VEC_UD, CAUSE_UD, 0, x->word[0], x->pc);
        return 1;
    }
    v->emulations++;
    v->emulated_by_op[in->op]++;
    c->cycles += cost;
    hv_emit(h, EV_HV_EMULATE, in->op, tag, x->pc, x->word[0], result);
    return 0;
fault: /* the guest's stack is not there: its page fault */
    c->pc = x->pc;
    hv_reflect(h, vm, VEC_PF, CAUSE_PF, PF_WRITE, c->r[CPU_REG_SP], x->pc);
    return 1;
}

int hv_emulate_insn(hv *h, hv_vm *vm, const cpu_exit *x, uint32_t cost, int tag) {
    int r = emulate(h, vm, x, cost, tag);
    if (!vm->done) hv_check_virq(h, vm);
    return r;
}

/* A guest store into one of its own page tables: let the one instruction
 * through on a writable shadow entry, then drop the shadow. */
void hv_shadow_pt_store(hv *h, hv_vm *vm, uint32_t va, uint32_t gpa) {
    cpu_t *c = h->host;
    uint32_t pc = c->pc;
    hv_shadow_set_writable(h, vm, va, 1);
    cpu_trace *t = c->trace;
    c->trace = NULL; /* the instruction is in the trace already, as the one that faulted */
    /* the one step is the store alone: an interrupt that falls due now
     * stays pending until the guest runs again (it would otherwise be taken
     * before the store, and the store lost) */
    uint32_t if_was = c->flags & CPU_FL_IF, ctl_was = c->vmx_ctl;
    cpu_exit exit_was = c->exit; /* the exit being handled: the caller reads it on */
    c->flags &= ~CPU_FL_IF;
    c->vmx_ctl &= ~(VMX_EXTINT_EXIT | VMX_INTWIN_EXIT);
    cpu_run(c, 1);
    c->flags |= if_was;
    c->vmx_ctl = ctl_was;
    c->exit = exit_was;
    c->trace = t;
    hv_shadow_set_writable(h, vm, va, 0);
    hv_shadow_pt_written(h, vm, gpa);
    vm->vcpu.pt_writes++;
    hv_emit(h, EV_HV_PTWRITE, 0, 0, pc, va, 0);
}

void hv_shadow_protected_write(hv *h, hv_vm *vm, uint32_t va, uint32_t pc) {
    hv_vcpu *v = &vm->vcpu;
    uint32_t gpa, bits, e;
    if (hv_guest_walk(h, vm, va, 1, v->vcpl == 3, &gpa, &bits, &e)) return;
    if (vm->technique == HV_BT && hv_bt_translated(vm, gpa)) {
        hv_bt_code_write(h, vm, gpa); /* self-modifying code */
    } else if (hv_is_pt(vm, gpa)) {
        hv_shadow_pt_store(h, vm, va, gpa);
        if (vm->technique == HV_BT && v->vcpl == 0) hv_bt_store_fault(h, vm, pc);
    }
}

int hv_exit(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    const cpu_exit *x = &c->exit;
    hv_vcpu *v = &vm->vcpu;
    v->exits++;
    c->cycles += h->cost_exit;
    if (vm->technique == HV_PV && x->vector == VEC_UD && x->insn.op == OP_VMCALL) {
        hv_pv_hypercall(h, vm); /* an explicit call into the hypervisor (pv.c) */
        return vm->done ? CPU_EXIT_SHUTDOWN : 0;
    }
    switch (x->vector) {
    case VEC_IRQ0: /* the hypervisor's timer: the virtual timer may be due */
        break;
    case VEC_GP:
        if (x->cause == CAUSE_PRIV && v->vcpl == 0) {
            if (emulate(h, vm, x, h->cost_emulate, 0) < 0) return CPU_EXIT_HALT;
        } else if (x->cause == CAUSE_INT_DENIED && v->vcpl == 0) {
            /* the guest kernel's `int n` (it is not really in ring 0) */
            c->pc = x->next_pc;
            hv_reflect(h, vm, (int)(x->err & 0xff), CAUSE_SOFT, 0, x->word[0], x->pc);
        } else {
            hv_reflect(h, vm, VEC_GP, x->cause, x->err, x->addr, x->pc);
        }
        break;
    case VEC_PF: {
        uint32_t gerr = 0;
        int vec = hv_shadow_fault(h, vm, x->addr, x->err, &gerr);
        if (vec) {
            hv_reflect(h, vm, vec, vec == VEC_PF ? CAUSE_PF : CAUSE_BUS, gerr, x->addr, x->pc);
        } else if ((x->err & PF_PRESENT) && (x->err & PF_WRITE)) {
            hv_shadow_protected_write(h, vm, x->addr, x->pc);
        }
        break;
    }
    default: /* syscalls and the guest's own exceptions */
        hv_reflect(h, vm, x->vector, x->cause, x->err, x->addr, x->pc);
        break;
    }
    if (vm->done) return CPU_EXIT_SHUTDOWN;
    hv_check_virq(h, vm);
    return vm->done ? CPU_EXIT_SHUTDOWN : 0;
}
