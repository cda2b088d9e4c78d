/* hypervisor/hv_internal.h -- what the hypervisor's files share. */
#ifndef VLAB_HYPERVISOR_HV_INTERNAL_H
#define VLAB_HYPERVISOR_HV_INTERNAL_H

#include <stdio.h>

#include "cpu/event.h"
#include "hypervisor/hv.h"

#define HV_FIRST_FRAME 16 /* host pages below this are the hypervisor's own */

/* hv.c */
void hv_tlb_drop_frame(hv *h, uint32_t f); /* on every physical CPU: a guest page left frame f */
void hv_tlb_flush_all(hv *h);               /* every physical CPU's TLB */
void hv_unload(hv *h, hv_vm *vm);           /* the VM on the active CPU leaves it (its state saved) */
int hv_vm_copy_callouts(hv *h, const hv_vm *from, hv_vm *to); /* 0, or -1 out of host memory */

/* hosted.c */
int hv_hosted_boot(hv *h);                        /* the host world starts VMApp, which starts the VMs */
int hv_hosted_cheap(const hv *h, uint32_t port);  /* handled in the VMM without a world switch */
/* the round trip for the guest instruction at pc */
int hv_hosted_io(hv *h, hv_vm *vm, int is_out, uint32_t port, uint32_t value, uint32_t pc);
/* The guest instruction at pc started a request on vm's disk controller d:
 * VMApp carries it out through the host OS on the host machine's disk (one
 * round trip per buffer-full), the VMM moves the data, and d completes now.
 * Returns the disk error code the guest will see (DISK_OK). */
struct disk_ctl;
int hv_hosted_disk(hv *h, hv_vm *vm, struct disk_ctl *d, uint32_t pc);
/* cowmem.c: the frame table */
uint32_t hv_alloc_frame(hv *h);       /* a zeroed hypervisor-owned host page number, 0 when none is left */
uint32_t hv_alloc_guest_frame(hv *h); /* a zeroed frame for a guest page (count 1), 0 when none is left */
/* Guest page g of vm is mapped read-only for copy-on-write. */
static inline int hv_cow_ro(const hv_vm *vm, uint32_t g) {
    return vm->cow && g < vm->npages && ((vm->cow[g >> 5] >> (g & 31)) & 1);
}
/* A write to guest page g of vm, which is read-only for copy-on-write:
 * copy it (count above one) or restore write permission, remap it
 * writable, drop stale shadow and TLB entries.  0, or -1 when the host has
 * no frame for the copy. */
int hv_cow_write(hv *h, hv_vm *vm, uint32_t g);

/* vm.c */
/* A VM's bookkeeping (p2m, bitmaps, shadow directories), registered with h;
 * fresh: each guest page gets a new zeroed frame, else none is mapped yet. */
hv_vm *hv_vm_make(hv *h, const char *name, uint32_t npages, int technique, int kernel_ring, int fresh,
                  char *err, size_t errlen);
void hv_vm_free(hv_vm *vm);
int hv_gpa_to_hpa(const hv_vm *vm, uint32_t gpa, uint32_t *hpa);
int hv_guest_walk(hv *h, hv_vm *vm, uint32_t va, int acc, int user, uint32_t *gpa, uint32_t *bits,
                  uint32_t *err);
int hv_guest_copy(hv *h, hv_vm *vm, uint32_t va, void *buf, size_t n, int write);
void hv_mark_pt(hv_vm *vm, uint32_t gpa);
int hv_is_pt(const hv_vm *vm, uint32_t gpa);

/* shadow.c */
void hv_shadow_flush(hv *h, hv_vm *vm); /* drop every shadow (paging bit, retranslation) */
/* The guest's instruction at pc loads gptbr: its page-table base becomes
 * gptbr (an EV_ASPACE event), and the shadow of that address space (cached,
 * or a fresh one) becomes the current one. */
void hv_shadow_switch(hv *h, hv_vm *vm, uint32_t gptbr, uint32_t pc);
void hv_shadow_drop(hv *h, hv_vm *vm, uint32_t va);
/* Drop every entry of vm's shadows that maps host frame hpa (it was remapped). */
void hv_shadow_unmap_frame(hv *h, hv_vm *vm, uint32_t hpa);
void hv_shadow_pt_written(hv *h, hv_vm *vm, uint32_t gpa);
/* A write by the guest instruction at pc faulted on a shadow entry that is
 * present and read-only: a store into a guest page table (let through once,
 * the shadow updated) or into translated code (binary translation). */
void hv_shadow_protected_write(hv *h, hv_vm *vm, uint32_t va, uint32_t pc);
/* A guest store into its page table at va: let it through once, update the shadow. */
void hv_shadow_pt_store(hv *h, hv_vm *vm, uint32_t va, uint32_t gpa);
/* The shadow page directory for the guest's current mode. */
static inline uint32_t hv_shadow_root(const hv_vm *vm) {
    /* (VT-x keeps one: the guest's own rings tell its kernel from its processes) */
    return vm->technique != HV_VTX && vm->vcpu.vcpl == 3 ? vm->shadow_pd : vm->shadow_kpd;
}
/* A host page fault at va while the guest ran: fill the shadow entry from
 * the guest's tables (0: retry the instruction), or say the guest itself
 * faults (VEC_PF / VEC_MC with *gerr its error code). */
int hv_shadow_fault(hv *h, hv_vm *vm, uint32_t va, uint32_t host_err, uint32_t *gerr);
/* Make the shadow entry of va writable for one instruction (a guest
 * page-table write being emulated), or protect it again. */
void hv_shadow_set_writable(hv *h, hv_vm *vm, uint32_t va, int writable);

/* trap.c */
int hv_exit(hv *h, hv_vm *vm); /* handle the host exit in h->host->exit; 0 or a VM-ending reason */
void hv_check_virq(hv *h, hv_vm *vm);
void hv_reflect(hv *h, hv_vm *vm, int vector, int cause, uint32_t err, uint32_t aux, uint32_t at);

/* trap.c: one interpreter routine, charged `cost`, traced with tag (0 after
 * a trap, 2 from translated code); 0 emulated, 1 faulted (reflected), -1 VM stops */
int hv_emulate_insn(hv *h, hv_vm *vm, const cpu_exit *x, uint32_t cost, int tag);

void hv_set_vcpl(hv *h, hv_vm *vm, int vcpl); /* the guest's ring: real ring and shadow follow */

/* pv.c */
int hv_pv_hypercall(hv *h, hv_vm *vm);

/* bt.c */
int hv_bt_translated(const hv_vm *vm, uint32_t gpa);
void hv_bt_translate(hv *h, hv_vm *vm, uint32_t gpa, uint32_t va);
void hv_bt_invalidate(hv *h, hv_vm *vm, uint32_t gpa);
int hv_bt_code_write(hv *h, hv_vm *vm, uint32_t gpa);
void hv_bt_store_fault(hv *h, hv_vm *vm, uint32_t pc);
int hv_bt_callout(hv *h, hv_vm *vm);

/* vdev.c */
uint32_t hv_vio(hv *h, hv_vm *vm, int is_out, uint32_t port, uint32_t val, uint32_t pc);
uint32_t hv_vcpuid(const hv_vm *vm, uint32_t leaf);
/* The virtual devices' time: the timer's tick and the disk's completion
 * set their virtual IRQ lines pending when due. */
void hv_vdev_tick(hv *h, hv_vm *vm);
uint64_t hv_vdev_deadline(const hv_vm *vm); /* the earliest of them; UINT64_MAX: none */
int hv_vdev_disk_first(const hv_vm *vm);    /* 1: the earliest is the disk's completion */
void hv_vdev_free(hv_vm *vm);

/* vmx.c */
void hv_vmx_enter(hv *h, hv_vm *vm); /* load the guest state, VM entry */
void hv_vmx_leave(hv *h, hv_vm *vm); /* save the guest state after a VM exit */
int hv_vmx_exit(hv *h, hv_vm *vm);   /* handle h->host->exit */
void hv_vmx_deliver_pending(hv *h, hv_vm *vm);
/* vm's guest pages moved to other frames (copy-on-write): the host
 * addresses the CPU holds for it (shadow paging's vector table) follow. */
void hv_vmx_remap(hv *h, hv_vm *vm);

/* hv.c */
void hv_emit(hv *h, int kind, int a, int b, uint32_t pc, uint32_t x, uint32_t y);

#endif
