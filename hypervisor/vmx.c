/* hypervisor/vmx.c -- VMs run with hardware support, as on Intel VT-x (SDM
 * vol. 3C ch. 23-28).  The guest kernel keeps ring 0: it runs in VMX
 * non-root operation, so its sensitive instructions behave as on bare metal
 * and the x86 holes close.  The VMCS of a VM is its vCPU (guest state) plus
 * its control fields: HLT exiting, unconditional I/O exiting, external-
 * interrupt exiting, interrupt-window exiting when an interrupt waits, and
 * EPT for its guest-physical memory.  The guest's own system calls and
 * faults never leave the VM; what does leave (a VM exit) comes here with a
 * reason, and the hypervisor enters the guest again, injecting a virtual
 * interrupt on the way in when one is due. */
#include "hypervisor/hv_internal.h"

#include <string.h>

/* Without EPT (first-generation VT-x), the CPU walks the hypervisor's
 * shadow page tables: paging is always on, the guest's ptbr and vbr are
 * virtual (loads and reads exit), its paging bit is in the status read
 * shadow, and its page faults exit first (exception bitmap). */
/* The host address of the guest's vector table (guest-physical), for the
 * CPU's vbr.  A new VM's frames are handed out in order, so a table that
 * crosses a page stays contiguous (after a copy-on-write copy or a merge
 * its pages may not be: vlab's guests keep the table in one page).  Outside
 * the VM's memory: an address outside the host's too, so delivery fails as
 * it would natively.  hv_vmx_remap follows a copy-on-write move. */
static uint32_t host_vbr(const hv_vm *vm) {
    uint32_t hpa;
    return hv_gpa_to_hpa(vm, vm->vcpu.vcr[CR_VBR], &hpa) ? 0xfffffc00u : hpa;
}

void hv_vmx_remap(hv *h, hv_vm *vm) {
    if (vm->technique != HV_VTX || !vm->vtx_shadow) return;
    int p = hv_vm_cpu(h, vm); /* the CPU it is on holds its vbr: the active one, or a waiting one */
    if (p == h->active && h->host->nonroot)
        h->host->cr[CR_VBR] = host_vbr(vm);
    else if (p >= 0 && h->pcpu[p].ctx.nonroot)
        h->pcpu[p].ctx.cr[CR_VBR] = host_vbr(vm);
}

static void enter_shadow(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    c->cr[CR_VBR] = host_vbr(vm);
    c->cr[CR_PTBR] = vm->shadow_kpd;
    c->status_mask = CPU_ST_PG;
    c->status_shadow = v->vcr[CR_STATUS] & CPU_ST_PG;
    c->cr[CR_STATUS] = (v->vcr[CR_STATUS] & CPU_ST_WRITABLE) | CPU_ST_PG;
    c->vmx_ctl = vm->vmx_ctl | VMX_CR3_EXIT | VMX_INVLPG_EXIT | VMX_DESC_EXIT;
    c->vmx_ctl &= ~VMX_EPT;
    c->vmx_exc = vm->vmx_exc | 1u << VEC_PF;
    c->ept = NULL;
    c->ept_pages = 0;
}

/* Deliver an event to the guest through its own table.  Under shadow
 * paging the trap frame may land on a page the shadow does not map yet:
 * the CPU exits again (exit.idt_*), and hv_vmx_exit handles that exit. */
static void deliver(hv *h, hv_vm *vm, int vector, int cause, uint32_t err, uint32_t aux) {
    if (cpu_deliver(h->host, vector, cause, err, aux) == CPU_EXIT_VMX) vm->exit_again = 1;
}

void hv_vmx_enter(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    memcpy(c->r, v->r, sizeof c->r);
    c->pc = v->pc;
    cpu_set_flags(c, v->flags | (v->vif ? CPU_FL_IF : 0));
    c->cpl = v->vcpl;
    memcpy(c->cr, v->vcr, sizeof c->cr); /* the guest's own control registers */
    c->vmx_on = 1;
    c->nonroot = 1;
    c->vmx_ctl = vm->vmx_ctl;
    c->vmx_exc = vm->vmx_exc;
    c->ept = vm->ept;
    c->ept_pages = vm->npages;
    c->status_mask = 0;
    if (vm->vtx_shadow) enter_shadow(h, vm);
    c->io_bitmap = NULL;
    for (int i = 0; i < CPU_NVEC; i++) cpu_intercept(c, i, 0); /* exits come from the controls */
    c->halted = 0;
    cpu_tlb_flush(c); /* no VPID: a VM entry starts with an empty TLB */
    cpu_emit(c, EV_VMENTRY, vm->launched, 0, c->pc, (uint32_t)vm->id, 0);
    vm->launched = 1;
    vm->exit_again = 0;
    hv_vmx_deliver_pending(h, vm);
    if (vm->exit_again) hv_vmx_exit(h, vm);
}

void hv_vmx_leave(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    memcpy(v->r, c->r, sizeof v->r);
    v->pc = c->pc;
    uint32_t f = cpu_get_flags(c);
    v->flags = f & CPU_FL_ARITH;
    v->vif = !!(f & CPU_FL_IF);
    v->vcpl = c->cpl;
    if (vm->vtx_shadow) { /* ptbr, vbr and the paging bit are kept virtual */
        v->vcr[CR_FADDR] = c->cr[CR_FADDR];
        v->vcr[CR_KSP] = c->cr[CR_KSP];
        v->vcr[CR_STATUS] = (c->cr[CR_STATUS] & ~CPU_ST_PG) | c->status_shadow;
        c->status_mask = 0;
    } else {
        memcpy(v->vcr, c->cr, sizeof v->vcr);
        vm->vmx_ctl = c->vmx_ctl & ~VMX_INTWIN_EXIT;
    }
    c->nonroot = 0;
    c->ept = NULL;
    c->ept_pages = 0;
    c->vmx_ctl = 0;
    cpu_tlb_flush(c);
}

/* The virtual devices, then event injection (on VM entry, SDM 26.6) when the
 * guest's IF allows, or interrupt-window exiting to wait until it does. */
void hv_vmx_deliver_pending(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    hv_vcpu *v = &vm->vcpu;
    hv_vdev_tick(h, vm); /* the virtual timer's tick, the virtual disk's completion */
    if (!v->virq_pending) {
        c->vmx_ctl &= ~VMX_INTWIN_EXIT;
        return;
    }
    if (!(c->flags & CPU_FL_IF)) {
        c->vmx_ctl |= VMX_INTWIN_EXIT; /* exit again as soon as the guest enables interrupts */
        return;
    }
    int line = __builtin_ctz(v->virq_pending);
    v->virq_pending &= ~(1u << line);
    v->injections++;
    c->vmx_ctl &= ~VMX_INTWIN_EXIT;
    hv_emit(h, EV_HV_INJECT, VEC_IRQ0 + line, 0, c->pc, 0, 0);
    c->exit.reason = CPU_EXIT_NONE;
    deliver(h, vm, VEC_IRQ0 + line, CAUSE_IRQ, 0, (uint32_t)line); /* through the guest's own table */
    /* another one waits (the disk behind the timer): exit as soon as the
     * guest's handler enables interrupts again, or the next tick would
     * always come first and starve it */
    if (v->virq_pending) c->vmx_ctl |= VMX_INTWIN_EXIT;
}

static int handle_exit(hv *h, hv_vm *vm);

/* The exiting instruction was emulated on the virtual CPU: go past it,
 * count it, and say so in the trace with its result. */
static void emulated(hv *h, hv_vm *vm, uint32_t result) {
    cpu_t *c = h->host;
    const cpu_exit *x = &c->exit;
    c->pc = x->next_pc;
    vm->vcpu.emulations++;
    vm->vcpu.emulated_by_op[x->insn.op]++;
    hv_emit(h, EV_HV_EMULATE, x->insn.op, 0, x->pc, x->word[0], result);
}

int hv_vmx_exit(hv *h, hv_vm *vm) {
    do { /* a delivery that exits again (a trap frame on an unfilled shadow page) is handled now */
        vm->exit_again = 0;
        int rc = handle_exit(h, vm);
        if (rc) return rc;
    } while (vm->exit_again);
    return 0;
}

static int handle_exit(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    const cpu_exit *x = &c->exit;
    hv_vcpu *v = &vm->vcpu;
    uint32_t *R = c->r;
    v->exits++;
    c->cycles += h->cost_vmexit;
    vm->last_exit = x->vmx_reason;
    vm->last_qual = x->qual;
    switch (x->vmx_reason) {
    case VMX_EXIT_EXTINT: /* the hypervisor's timer: acknowledge it */
        c->irq_pending &= ~(1u << x->qual);
        break;
    case VMX_EXIT_INTWIN: break; /* the guest enabled interrupts: inject below */
    case VMX_EXIT_HLT:
        c->pc = x->next_pc;
        if ((c->flags & CPU_FL_IF) && hv_vdev_deadline(vm) != UINT64_MAX) { /* wait for its next
                                                                           * tick or disk: hlt yields */
            v->halted = 1;
            hv_emit(h, EV_HV_HALT, vm->id, hv_vdev_disk_first(vm), x->pc, 0, 0);
            return 0;
        } else {
            hv_emit(h, EV_HV_HALT, vm->id, 0, x->pc, 1, 0);
            vm->done = 1;
            return CPU_EXIT_HALT;
        }
        break;
    case VMX_EXIT_IO: {
        int out = !!(x->qual & 0x10000);
        uint32_t val = hv_vio(h, vm, out, x->qual & 0xffff, out ? R[x->insn.rb] : 0, x->pc);
        if (!out) R[x->insn.ra] = val;
        c->pc = x->next_pc;
        v->emulations++;
        v->emulated_by_op[x->insn.op]++;
        break;
    }
    case VMX_EXIT_CPUID:
        R[x->insn.ra] = hv_vcpuid(vm, R[x->insn.rb]);
        emulated(h, vm, R[x->insn.ra]);
        break;
    case VMX_EXIT_CR: { /* shadow paging: the guest's ptbr and paging bit are virtual */
        int cr = (int)(x->qual & 0xf), reg = (int)(x->qual >> 8) & 0xf, rd = !!(x->qual & 0x10);
        if (cr == CR_PTBR && rd) {
            R[reg] = v->vcr[CR_PTBR];
        } else if (cr == CR_PTBR) {
            hv_shadow_switch(h, vm, R[reg] & PTE_FRAME, x->pc);
        } else if (cr == CR_STATUS) { /* the paging bit changed */
            uint32_t val = R[reg] & CPU_ST_WRITABLE;
            c->status_shadow = val & CPU_ST_PG;
            c->cr[CR_STATUS] = val | CPU_ST_PG;
            v->vcr[CR_STATUS] = val;
            hv_shadow_flush(h, vm);
        }
        emulated(h, vm, R[reg]);
        break;
    }
    case VMX_EXIT_DESC: { /* the guest's vbr is guest-physical: the CPU gets the host's address */
        if (x->insn.op == OP_WRCR) {
            v->vcr[CR_VBR] = R[x->insn.rb];
            c->cr[CR_VBR] = host_vbr(vm);
        } else {
            R[x->insn.ra] = v->vcr[CR_VBR]; /* rdcr vbr, sidt */
        }
        emulated(h, vm, v->vcr[CR_VBR]);
        break;
    }
    case VMX_EXIT_INVLPG:
        hv_shadow_drop(h, vm, x->qual);
        emulated(h, vm, x->qual);
        break;
    case VMX_EXIT_EXCEPTION:
        if (x->vector == VEC_PF && vm->vtx_shadow) { /* a shadow miss, or the guest's own fault */
            uint32_t gerr = 0;
            v->vcpl = c->cpl;
            v->vcr[CR_STATUS] = (c->cr[CR_STATUS] & ~CPU_ST_PG) | c->status_shadow;
            c->pc = x->pc;
            int vec = hv_shadow_fault(h, vm, x->addr, x->err, &gerr);
            if (vec == 0 && (x->err & PF_PRESENT) && (x->err & PF_WRITE)) {
                hv_shadow_protected_write(h, vm, x->addr, x->pc);
            } else if (vec && x->idt_valid) { /* the guest's own fault while delivering: as natively, #DF */
                deliver(h, vm, VEC_DF, CAUSE_DF, 0, (uint32_t)x->idt_vector);
                break;
            } else if (vec) {
                deliver(h, vm, vec, vec == VEC_PF ? CAUSE_PF : CAUSE_BUS, gerr, x->addr);
                break;
            }
            if (x->idt_valid) /* the shadow now maps the frame: deliver the event again */
                deliver(h, vm, x->idt_vector, x->idt_cause, x->idt_err, x->idt_aux);
            break;
        }
        c->pc = x->pc;
        deliver(h, vm, x->vector, x->cause, x->err, x->addr);
        break;
    case VMX_EXIT_VMCALL: /* no hypercalls are defined for a VT-x guest: it gets -1 */
        R[0] = 0xffffffffu;
        c->pc = x->next_pc;
        break;
    case VMX_EXIT_VMX_INSN: /* no nested virtualization: #UD in the guest */
        c->pc = x->pc;
        deliver(h, vm, VEC_UD, CAUSE_UD, 0, x->word[0]);
        break;
    case VMX_EXIT_EPT: {
        uint32_t g = x->addr >> 12;
        c->pc = x->pc;
        if ((x->qual & EPT_QUAL_WRITE) && hv_cow_ro(vm, g)) {
            /* a write to a page shared copy-on-write (the EPT entry is
             * read-only): copy it or restore write permission, then run
             * the instruction again -- or deliver the event whose trap
             * frame it was (IDT-vectoring information, SDM 27.2.4) */
            if (hv_cow_write(h, vm, g)) {
                deliver(h, vm, VEC_MC, CAUSE_BUS, 0, x->addr); /* no host frame for the copy */
                break;
            }
            if (x->idt_valid) deliver(h, vm, x->idt_vector, x->idt_cause, x->idt_err, x->idt_aux);
            break;
        }
        /* guest-physical memory it does not have: a machine check */
        deliver(h, vm, VEC_MC, CAUSE_BUS, 0, x->addr);
        break;
    }
    default: { /* an exit this hypervisor does not expect: say so, stop the VM */
        char note[160];
        int n = snprintf(note, sizeof note,
                         "hv: vm %d: unexpected VM exit reason %d at pc 0x%08x (r0=0x%x sp=0x%x); VM stopped",
                         vm->id, x->vmx_reason, x->pc, R[0], R[CPU_REG_SP]);
        if (c->trace) cpu_trace_text(c->trace, c->steps, c->cycles, 0, TEXT_NOTE, note, (size_t)n);
        vm->done = 1;
        return CPU_EXIT_SHUTDOWN;
    }
    }
    if (c->dead) {
        vm->done = 1;
        return CPU_EXIT_SHUTDOWN;
    }
    /* an event whose delivery exited again is still on its way: another
     * one waits until it is in (else it would overwrite that exit) */
    if (!vm->exit_again) hv_vmx_deliver_pending(h, vm);
    return 0;
}
