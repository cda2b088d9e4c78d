/* hypervisor/vdev.c -- the virtual devices and the virtual processor
 * identity a VM sees, whatever the technique: a console (port 0x3f8) whose
 * output the VM keeps, a timer (port 0x40) that ticks in host cycles and
 * raises virtual IRQ 0, and cpuid telling the VM's own memory size. */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>

static void console_put(hv_vm *vm, char ch) {
    if (vm->console_len + 2 > vm->console_cap) {
        size_t cap = vm->console_cap ? vm->console_cap * 2 : 256;
        if (cap > (1u << 20)) return;
        char *p = realloc(vm->console, cap);
        if (!p) return;
        vm->console = p;
        vm->console_cap = cap;
    }
    vm->console[vm->console_len++] = ch;
    vm->console[vm->console_len] = 0;
}

uint32_t hv_vio(hv *h, hv_vm *vm, int is_out, uint32_t port, uint32_t val, uint32_t pc) {
    hv_vcpu *v = &vm->vcpu;
    cpu_t *c = h->host;
    /* hosted: VMApp does the I/O in the host world (hosted.c), except the
     * cheap registers the VMM handles itself */
    if (h->hosted && !hv_hosted_cheap(h, port)) hv_hosted_io(h, vm, is_out, port, val, pc);
    if (!is_out) val = 0xffffffffu; /* nothing there: an open bus */
    if (port == PORT_CONSOLE) {
        if (is_out)
            console_put(vm, (char)(val & 0xff));
        else
            val = 0;
    } else if (port == PORT_TIMER) {
        if (is_out) {
            v->vtimer_period = val;
            v->vtimer_deadline = val ? c->cycles + val : 0;
        } else {
            val = v->vtimer_period && v->vtimer_deadline > c->cycles
                      ? (uint32_t)(v->vtimer_deadline - c->cycles)
                      : 0;
        }
    }
    hv_emit(h, EV_HV_IO, is_out, 0, pc, port, val);
    return val;
}

uint32_t hv_vcpuid(const hv_vm *vm, uint32_t leaf) {
    switch (leaf) {
    case 0: return 0x42414c56u;     /* "VLAB" */
    case 1: return 1u | 2u;          /* paging, tsc; no VMX inside the VM */
    case 2: return vm->mem_size / 1024; /* the VM's memory, not the host's */
    default: return 0;
    }
}
