/* hypervisor/pv.c -- paravirtualization, Xen style (Barham et al., SOSP 2003).
 *
 * The guest kernel knows it runs on a hypervisor.  It runs in ring 1 (ring
 * compression, as in Xen) and, instead of privileged instructions that would
 * trap one by one, it asks the hypervisor explicitly with hypercalls:
 * `vmcall` with the hypercall number in r0 and its arguments in r1-r2, the
 * result back in r0.  Outside VMX operation vmcall raises #UD, which brings
 * the guest into the hypervisor like any trap; the hypervisor recognizes it
 * and serves the call.  A guest that still executes a privileged
 * instruction gets trap-and-emulate as a fallback.
 *
 * Hypercalls (the guest library's guests/pv/pv.inc defines the numbers):
 *   1 console_write(va, len)    one call for a whole buffer, not a trap a byte
 *   2 set_if(on)                the virtual interrupt flag (for cli/sti/popf)
 *   3 set_timer(period)         the virtual timer
 *   4 iret()                    return from the trap frame on the kernel stack
 *   5 set_trap_table(vbr)       where the guest's handlers are (registered with Xen)
 *   6 set_kernel_stack(ksp)     the stack for traps from its processes
 *   7 mmu_update(list, n)       n page-table updates in one call: a list of
 *                               (guest-physical PTE address, new value) pairs,
 *                               each validated (its frame must be the VM's)
 *   8 set_ptbr(pd)              switch address space
 *   9 block()                   wait for the next virtual interrupt (like sti; hlt)
 *  10 set_status(value)         paging on or off
 *  11 get_flags()               the virtual FLAGS (IF included)
 * Errors return -22 (invalid argument) or -38 (no such hypercall). */
#include "hypervisor/hv_internal.h"

#include <string.h>

#define E_INVAL 0xffffffeau /* -22 */
#define E_NOSYS 0xffffffdau /* -38 */

enum {
    HC_CONSOLE_WRITE = 1, HC_SET_IF, HC_SET_TIMER, HC_IRET, HC_SET_TRAP_TABLE, HC_SET_KERNEL_STACK,
    HC_MMU_UPDATE, HC_SET_PTBR, HC_BLOCK, HC_SET_STATUS, HC_GET_FLAGS
};

static uint32_t mmu_update(hv *h, hv_vm *vm, uint32_t list, uint32_t n) {
    uint32_t done = 0;
    for (; done < n; done++) {
        uint32_t e[2];
        if (hv_vm_read_virt(h, vm, list + done * 8, e, sizeof e)) return done ? done : E_INVAL;
        uint32_t pte_gpa = e[0], val = e[1];
        /* validation: the entry is in the VM's memory and maps one of its frames */
        if ((pte_gpa & 3) || (pte_gpa >> 12) >= vm->npages) return done ? done : E_INVAL;
        if ((val & PTE_P) && (val >> 12) >= vm->npages) return done ? done : E_INVAL;
        hv_vm_write_phys(h, vm, pte_gpa, &val, 4);
        hv_mark_pt(vm, pte_gpa);
        hv_shadow_pt_written(h, vm, pte_gpa);
        h->host->cycles += 20; /* a validated update in a batch */
    }
    return done;
}

int hv_pv_hypercall(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    const cpu_exit *x = &c->exit;
    hv_vcpu *v = &vm->vcpu;
    uint32_t *R = c->r, nr = R[0], a1 = R[1], a2 = R[2], ret = 0;
    c->pc = x->next_pc;
    c->cycles += h->cost_emulate / 2; /* the dispatch */
    v->hypercalls++;
    switch (nr) {
    case HC_CONSOLE_WRITE: {
        if (a2 > 4096) {
            ret = E_INVAL;
            break;
        }
        char buf[4096];
        if (hv_vm_read_virt(h, vm, a1, buf, a2)) {
            ret = E_INVAL;
            break;
        }
        for (uint32_t i = 0; i < a2; i++) hv_vio(h, vm, 1, PORT_CONSOLE, (uint8_t)buf[i], x->pc);
        ret = a2;
        break;
    }
    case HC_SET_IF: v->vif = a1 != 0; break;
    case HC_SET_TIMER: hv_vio(h, vm, 1, PORT_TIMER, a1, x->pc); break;
    case HC_IRET: {
        uint32_t f[5];
        if (hv_vm_read_virt(h, vm, R[CPU_REG_SP], f, sizeof f)) {
            ret = E_INVAL;
            break;
        }
        c->pc = f[1];
        cpu_set_flags(c, (f[2] & CPU_FL_ARITH) | CPU_FL_IF);
        v->vif = !!(f[2] & CPU_FL_IF);
        R[CPU_REG_SP] = f[4];
        hv_set_vcpl(h, vm, (int)(f[3] & 3));
        hv_emit(h, EV_HV_EMULATE, (int)nr, 3, x->pc, x->word[0], c->pc);
        hv_check_virq(h, vm);
        return 0; /* r0 is the guest's, restored as it was */
    }
    case HC_SET_TRAP_TABLE: v->vcr[CR_VBR] = a1; break;
    case HC_SET_KERNEL_STACK: v->vcr[CR_KSP] = a1; break;
    case HC_MMU_UPDATE: ret = mmu_update(h, vm, a1, a2); break;
    case HC_SET_PTBR:
        if ((a1 >> 12) >= vm->npages) {
            ret = E_INVAL;
            break;
        }
        hv_shadow_switch(h, vm, a1 & PTE_FRAME, x->pc);
        break;
    case HC_BLOCK:
        v->vif = 1;
        if (v->virq_pending || hv_vdev_deadline(vm) == UINT64_MAX) break; /* nothing to wait for, or due */
        v->halted = 1;
        hv_emit(h, EV_HV_HALT, vm->id, hv_vdev_disk_first(vm), x->pc, 0, 0);
        break;
    case HC_SET_STATUS: {
        uint32_t old = v->vcr[CR_STATUS];
        v->vcr[CR_STATUS] = a1 & CPU_ST_WRITABLE;
        if ((old ^ a1) & CPU_ST_PG) hv_shadow_flush(h, vm);
        break;
    }
    case HC_GET_FLAGS:
        ret = (cpu_get_flags(c) & CPU_FL_ARITH) | (v->vif ? CPU_FL_IF : 0) | (uint32_t)v->vcpl << CPU_FL_CPL_SHIFT;
        break;
    default: ret = E_NOSYS; break;
    }
    R[0] = ret;
    hv_emit(h, EV_HV_EMULATE, (int)nr, 3, x->pc, x->word[0], ret);
    hv_check_virq(h, vm);
    return 0;
}
