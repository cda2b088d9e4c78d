/* hypervisor/shadow.c -- shadow page tables.
 *
 * The guest's page tables map guest-virtual to guest-physical addresses; the
 * hardware needs guest-virtual to host-physical.  The hypervisor keeps a
 * shadow table per VM that composes the two (guest tables, then p2m) and
 * points the real ptbr at it.  Entries are filled lazily: a host page fault
 * on a missing entry makes the hypervisor walk the guest's tables in
 * software and install the composed entry; a fault the guest's own tables
 * would give is reflected into the guest.  Pages that hold guest page tables
 * are mapped read-only, so the guest's writes to its tables trap and the
 * shadow is dropped (Adams & Agesen 2006, "tracing"; Barham et al. 2003 for
 * the paravirtual alternative).  A change of the guest's ptbr or paging bit
 * drops the whole shadow, as a shadow-paging VMM without caching does.
 *
 * There are two shadows, one for the guest's kernel mode and one for its
 * user mode (switched with the virtual ring): a guest kernel deprivileged to
 * ring 3 must reach its supervisor pages, which its processes must not. */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rd(hv *h, uint32_t pa) {
    uint32_t v = 0;
    cpu_phys_read(h->host, pa, &v, 4);
    return v;
}

static void wr(hv *h, uint32_t pa, uint32_t v) { cpu_phys_write(h->host, pa, &v, 4); }

void hv_shadow_flush(hv *h, hv_vm *vm) {
    uint8_t zero[CPU_PAGE] = {0};
    cpu_phys_write(h->host, vm->shadow_pd, zero, CPU_PAGE);
    cpu_phys_write(h->host, vm->shadow_kpd, zero, CPU_PAGE);
    vm->shadow_used = 0; /* the page tables are reused as they are needed again */
    cpu_tlb_flush(h->host);
}

/* A shadow page table for the 4 MiB region of va (allocated or reused). */
static int shadow_pt(hv *h, hv_vm *vm, uint32_t va, uint32_t *pt) {
    uint32_t pde_pa = hv_shadow_root(vm) + (va >> 22) * 4, pde = rd(h, pde_pa);
    if (pde & PTE_P) {
        *pt = pde & PTE_FRAME;
        return 0;
    }
    uint32_t frame;
    if (vm->shadow_used < vm->nshadow) {
        frame = vm->shadow_pts[vm->shadow_used];
        uint8_t zero[CPU_PAGE] = {0};
        cpu_phys_write(h->host, frame << 12, zero, CPU_PAGE);
    } else {
        frame = hv_alloc_frame(h);
        if (!frame) return -1;
        uint32_t *p = realloc(vm->shadow_pts, (size_t)(vm->nshadow + 1) * sizeof *p);
        if (!p) return -1;
        vm->shadow_pts = p;
        vm->shadow_pts[vm->nshadow++] = frame;
    }
    vm->shadow_used++;
    *pt = frame << 12;
    wr(h, pde_pa, *pt | PTE_P | PTE_W | PTE_U); /* the PTE decides */
    return 0;
}

int hv_shadow_fault(hv *h, hv_vm *vm, uint32_t va, uint32_t host_err, uint32_t *gerr) {
    hv_vcpu *v = &vm->vcpu;
    int acc = (host_err & PF_FETCH) ? 2 : (host_err & PF_WRITE) ? 1 : 0;
    /* under VT-x the guest's own rings are real: the fault says who accessed
     * (a trap frame is written with supervisor rights from ring 3) */
    int user = vm->technique == HV_VTX ? !!(host_err & PF_USER) : v->vcpl == 3;
    uint32_t gpa, bits, hpa, pt;
    int vec = hv_guest_walk(h, vm, va, acc, user, &gpa, &bits, gerr);
    if (vec) return vec; /* the guest's own fault */
    if (hv_gpa_to_hpa(vm, gpa, &hpa)) {
        *gerr = 0;
        return VEC_MC;
    }
    /* A write-protect fault on an entry that is already right: a guest
     * page-table write, handled by the caller. */
    if (shadow_pt(h, vm, va, &pt)) return VEC_MC;
    uint32_t pte_pa = pt + ((va >> 12) & 0x3ff) * 4;
    uint32_t pte = (hpa & PTE_FRAME) | PTE_P | (bits & PTE_U);
    /* binary translation: guest kernel code runs only translated, so the
     * kernel's shadow maps a page no-execute until its first fetch translates it */
    int bt = vm->technique == HV_BT, translated = bt && hv_bt_translated(vm, gpa);
    if (bt && v->vcpl != 3 && acc == 2 && !translated) {
        hv_bt_translate(h, vm, gpa, va);
        translated = 1;
    }
    if (bt && v->vcpl != 3 && !translated) pte |= PTE_NX;
    /* writable only when the guest allows it, its dirty bit is set, and the
     * page is neither one of the guest's page tables nor translated code */
    if ((bits & PTE_W) && (bits & PTE_D) && !hv_is_pt(vm, gpa) && !translated) pte |= PTE_W | PTE_D;
    /* with guest paging off, "physical" memory is all reachable, as natively;
     * a guest kernel in ring 3 reaches its supervisor pages through its own shadow */
    if (!(v->vcr[CR_STATUS] & CPU_ST_PG) || (v->vcpl != 3 && vm->kernel_ring == 3)) pte |= PTE_U;
    pte |= PTE_A;
    wr(h, pte_pa, pte);
    cpu_invlpg(h->host, va);
    v->shadow_fills++;
    hv_emit(h, EV_HV_SHADOW, 0, 0, h->host->pc, va & PTE_FRAME, pte);
    return 0;
}

void hv_shadow_set_writable(hv *h, hv_vm *vm, uint32_t va, int writable) {
    uint32_t pde = rd(h, hv_shadow_root(vm) + (va >> 22) * 4);
    if (!(pde & PTE_P)) return;
    uint32_t pte_pa = (pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4, pte = rd(h, pte_pa);
    if (!(pte & PTE_P)) return;
    pte = writable ? pte | PTE_W | PTE_D : pte & ~PTE_W;
    wr(h, pte_pa, pte);
    cpu_invlpg(h->host, va);
}

/* Drop the shadow entries (both shadows) that map the guest-virtual page va. */
void hv_shadow_drop(hv *h, hv_vm *vm, uint32_t va) {
    uint32_t roots[2] = {vm->shadow_pd, vm->shadow_kpd};
    for (int k = 0; k < 2; k++) {
        uint32_t pde = rd(h, roots[k] + (va >> 22) * 4);
        if (pde & PTE_P) wr(h, (pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4, 0);
    }
    cpu_invlpg(h->host, va);
}

/* The guest wrote its page-table page at gpa: drop exactly the shadow
 * entries that the changed entry fed (a reverse lookup through the guest's
 * page directory), or everything when its page directory changed. */
void hv_shadow_pt_written(hv *h, hv_vm *vm, uint32_t gpa) {
    uint32_t pd = vm->vcpu.vcr[CR_PTBR] & PTE_FRAME;
    if ((gpa & PTE_FRAME) == pd || !(vm->vcpu.vcr[CR_STATUS] & CPU_ST_PG)) {
        hv_shadow_flush(h, vm);
        return;
    }
    uint32_t pti = (gpa & 0xfff) / 4;
    for (uint32_t pdi = 0; pdi < 1024; pdi++) {
        uint32_t pde;
        if (hv_vm_read_phys(h, vm, pd + pdi * 4, &pde, 4)) break;
        if ((pde & PTE_P) && (pde & PTE_FRAME) == (gpa & PTE_FRAME)) hv_shadow_drop(h, vm, pdi << 22 | pti << 12);
    }
}
