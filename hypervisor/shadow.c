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
 * switches to the shadow of that address space: up to HV_SHADOW_CACHE are
 * kept, least recently used dropped first (VMware's and KVM's shadow page
 * table caches; Adams & Agesen 2006 on the cost of rebuilding them).  A
 * cached shadow stays right because every page that holds a guest page
 * table is write-protected in all of them: a guest write to one traps and
 * drops what it fed (and the other shadows); when a page first becomes a
 * page table, the current shadow's entries for it are write-protected and
 * the other shadows dropped; a change of the paging bit drops them all.
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

/* Empty shadow i: its directories zeroed, its page tables free for reuse. */
static void set_clear(hv *h, hv_vm *vm, int i) {
    hv_shadow_set *s = &vm->shadows[i];
    uint8_t zero[CPU_PAGE] = {0};
    if (s->pd) cpu_phys_write(h->host, s->pd, zero, CPU_PAGE);
    if (s->kpd) cpu_phys_write(h->host, s->kpd, zero, CPU_PAGE);
    s->used = 0;
}

/* Drop the cached shadows of the other address spaces (an invalid one is
 * always empty). */
static void drop_others(hv *h, hv_vm *vm) {
    for (int i = 0; i < HV_SHADOW_CACHE; i++)
        if (i != vm->shadow_cur && vm->shadows[i].valid) {
            set_clear(h, vm, i);
            vm->shadows[i].valid = 0;
        }
}

void hv_shadow_flush(hv *h, hv_vm *vm) {
    drop_others(h, vm);
    set_clear(h, vm, vm->shadow_cur);
    vm->pt_new = 0;
    cpu_tlb_flush(h->host);
}

/* Pages just recognized as guest page tables: the current shadow may map
 * them writable (the guest wrote them before using them as page tables):
 * make those entries read-only, so the next write traps; the other cached
 * shadows are dropped. */
static void protect_new_pts(hv *h, hv_vm *vm) {
    if (!vm->pt_new) return;
    if (vm->pt_new > 4) {
        hv_shadow_flush(h, vm);
        return;
    }
    drop_others(h, vm);
    uint32_t hpa[4];
    int n = 0;
    for (int i = 0; i < vm->pt_new; i++)
        if (hv_gpa_to_hpa(vm, vm->pt_new_gpa[i], &hpa[n]) == 0) n++;
    vm->pt_new = 0;
    uint32_t roots[2] = {vm->shadow_pd, vm->shadow_kpd};
    for (int k = 0; k < 2; k++)
        for (uint32_t pdi = 0; pdi < 1024; pdi++) {
            uint32_t pde = rd(h, roots[k] + pdi * 4);
            if (!(pde & PTE_P)) continue;
            for (uint32_t pti = 0; pti < 1024; pti++) {
                uint32_t pa = (pde & PTE_FRAME) + pti * 4, pte = rd(h, pa);
                if (!(pte & PTE_P) || !(pte & PTE_W)) continue;
                for (int i = 0; i < n; i++)
                    if ((pte & PTE_FRAME) == hpa[i]) wr(h, pa, pte & ~PTE_W);
            }
        }
    cpu_tlb_flush(h->host);
}

void hv_shadow_switch(hv *h, hv_vm *vm, uint32_t gptbr, uint32_t pc) {
    hv_vcpu *v = &vm->vcpu;
    hv_emit(h, EV_ASPACE, 1, 0, pc, gptbr & PTE_FRAME, 0); /* the guest switched address spaces */
    hv_shadow_set *cur = &vm->shadows[vm->shadow_cur];
    cur->gptbr = v->vcr[CR_PTBR] & PTE_FRAME;
    v->vcr[CR_PTBR] = gptbr & PTE_FRAME;
    hv_mark_pt(vm, gptbr);
    protect_new_pts(h, vm);
    if (!(v->vcr[CR_STATUS] & CPU_ST_PG)) { /* paging off: the ptbr means nothing yet */
        cur->gptbr = v->vcr[CR_PTBR];
        return;
    }
    int pick = -1;
    for (int i = 0; i < HV_SHADOW_CACHE && pick < 0; i++)
        if (vm->shadows[i].valid && vm->shadows[i].gptbr == v->vcr[CR_PTBR]) pick = i;
    if (pick < 0) { /* a free one, else the least recently used */
        for (int i = 0; i < HV_SHADOW_CACHE; i++) {
            const hv_shadow_set *s = &vm->shadows[i];
            if (i == vm->shadow_cur) continue;
            if (pick < 0 || (!s->valid && vm->shadows[pick].valid) ||
                (s->valid == vm->shadows[pick].valid && s->last < vm->shadows[pick].last))
                pick = i;
        }
        hv_shadow_set *s = &vm->shadows[pick];
        if (s->valid) set_clear(h, vm, pick);
        if (!s->pd) s->pd = hv_alloc_frame(h) << 12;
        if (!s->kpd) s->kpd = hv_alloc_frame(h) << 12;
        if (!s->pd || !s->kpd) { /* the host is out of frames: reuse the current one */
            pick = vm->shadow_cur;
            set_clear(h, vm, pick);
        }
        vm->shadows[pick].valid = 1;
        vm->shadows[pick].gptbr = v->vcr[CR_PTBR];
    }
    vm->shadow_cur = pick;
    vm->shadows[pick].last = ++vm->shadow_clock;
    vm->shadow_pd = vm->shadows[pick].pd;
    vm->shadow_kpd = vm->shadows[pick].kpd;
    if (h->current == vm->id) cpu_set_cr(h->host, CR_PTBR, hv_shadow_root(vm)); /* flushes the TLB */
    else cpu_tlb_flush(h->host);
}

/* A shadow page table for the 4 MiB region of va (allocated or reused). */
static int shadow_pt(hv *h, hv_vm *vm, uint32_t va, uint32_t *pt) {
    uint32_t pde_pa = hv_shadow_root(vm) + (va >> 22) * 4, pde = rd(h, pde_pa);
    if (pde & PTE_P) {
        *pt = pde & PTE_FRAME;
        return 0;
    }
    uint32_t frame;
    hv_shadow_set *s = &vm->shadows[vm->shadow_cur];
    if (s->used < s->npts) {
        frame = s->pts[s->used];
        uint8_t zero[CPU_PAGE] = {0};
        cpu_phys_write(h->host, frame << 12, zero, CPU_PAGE);
    } else {
        frame = hv_alloc_frame(h);
        if (!frame) return -1;
        uint32_t *p = realloc(s->pts, (size_t)(s->npts + 1) * sizeof *p);
        if (!p) return -1;
        s->pts = p;
        s->pts[s->npts++] = frame;
    }
    s->used++;
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
    protect_new_pts(h, vm); /* the walk found a new page table */
    if (vec) return vec; /* the guest's own fault */
    /* a write to a page shared copy-on-write: copy it (or take it back
     * writable) before the shadow maps it; no host frame left for the copy
     * is the guest's machine check */
    if (acc == 1 && hv_cow_ro(vm, gpa >> 12) && hv_cow_write(h, vm, gpa >> 12)) {
        *gerr = 0;
        return VEC_MC;
    }
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
     * page is neither one of the guest's page tables nor translated code nor
     * shared copy-on-write */
    if ((bits & PTE_W) && (bits & PTE_D) && !hv_is_pt(vm, gpa) && !translated && !hv_cow_ro(vm, gpa >> 12))
        pte |= PTE_W | PTE_D;
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

void hv_shadow_unmap_frame(hv *h, hv_vm *vm, uint32_t hpa) {
    for (int i = 0; i < HV_SHADOW_CACHE; i++) {
        const hv_shadow_set *s = &vm->shadows[i];
        uint32_t roots[2] = {s->pd, s->kpd};
        for (int k = 0; k < 2; k++) {
            if (!roots[k]) continue;
            for (uint32_t pdi = 0; pdi < 1024; pdi++) {
                uint32_t pde = rd(h, roots[k] + pdi * 4);
                if (!(pde & PTE_P)) continue;
                for (uint32_t pti = 0; pti < 1024; pti++) {
                    uint32_t pa = (pde & PTE_FRAME) + pti * 4, pte = rd(h, pa);
                    if ((pte & PTE_P) && (pte & PTE_FRAME) == (hpa & PTE_FRAME)) {
                        wr(h, pa, 0);
                        cpu_invlpg(h->host, pdi << 22 | pti << 12);
                    }
                }
            }
        }
    }
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
    drop_others(h, vm); /* the other address spaces may map through it too */
}
