/* cpu/mmu.c -- page walks, the TLB, physical and virtual access for the host,
 * and the predecoded code pages.  Models 32-bit x86 paging (Intel SDM vol. 3A
 * ch. 4, "32-bit paging"); deviations are listed in cpu/mmu.h. */
#include "cpu/mmu.h"

#include <stdlib.h>

static int phys_ok(const cpu_t *c, uint32_t pa, uint32_t n) {
    return pa < c->mem_size && n <= c->mem_size - pa;
}

static uint32_t rd32(const cpu_t *c, uint32_t pa) {
    uint32_t v;
    memcpy(&v, c->mem + pa, 4);
    return v;
}

static void wr32(cpu_t *c, uint32_t pa, uint32_t v) {
    uint32_t ppn = pa >> 12;
    if (c->code_page[ppn]) mmu_code_invalidate(c, ppn);
    c->written[ppn] = 1;
    memcpy(c->mem + pa, &v, 4);
}

void cpu_tlb_flush(cpu_t *c) {
    memset(c->tlb, 0, sizeof c->tlb);
    c->tlb_gen++;
}

void cpu_invlpg(cpu_t *c, uint32_t va) { mmu_invlpg(c, va); }

void cpu_written_clear(cpu_t *c) {
    memset(c->written, 0, c->npages);
    for (int i = 0; i < CPU_TLB_SIZE; i++) c->tlb[i].perm &= ~(TLB_WK | TLB_WU);
    c->tlb_gen++;
    c->written_gen++;
}

void cpu_frame_forget(cpu_t *c, uint32_t ppn) {
    if (ppn >= c->npages) return;
    for (int i = 0; i < CPU_TLB_SIZE; i++)
        if (c->tlb[i].vpn && c->tlb[i].ppn == ppn) memset(&c->tlb[i], 0, sizeof c->tlb[i]);
    c->tlb_gen++;
    mmu_code_invalidate(c, ppn);
}

void mmu_invlpg(cpu_t *c, uint32_t va) {
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    if (e->vpn == (va >> 12) + 1) memset(e, 0, sizeof *e);
    c->tlb_gen++;
}

static int fault(cpu_t *c, int vec, uint32_t err, uint32_t addr) {
    c->fault_err = err;
    c->fault_addr = addr;
    return vec;
}

/* Walk the page tables for va.  Returns 0 and the PTE-derived permissions
 * and frame, or a fault vector.  set_ad: update accessed/dirty bits. */
static int walk(cpu_t *c, uint32_t va, int acc, int set_ad, uint32_t *ppn, uint32_t *pbits) {
    int user = c->cpl == 3, write = acc == ACC_WRITE, v;
    uint32_t err = (write ? PF_WRITE : 0) | (user ? PF_USER : 0) | (acc == ACC_FETCH ? PF_FETCH : 0);
    uint32_t hpa;
    if (!(c->cr[CR_STATUS] & CPU_ST_PG)) {
        if ((v = mmu_ept(c, va, &hpa, acc))) return v; /* in a VM: guest-physical is not host-physical */
        if ((hpa >> 12) >= c->npages) return fault(c, VEC_MC, 0, va);
        *ppn = hpa >> 12;
        *pbits = PTE_P | (mmu_ept_readonly(c, va) ? 0 : PTE_W) | PTE_U | PTE_D;
        return 0;
    }
    uint32_t pde_gpa = (c->cr[CR_PTBR] & PTE_FRAME) + (va >> 22) * 4, pde_pa;
    if ((v = mmu_ept(c, pde_gpa, &pde_pa, ACC_READ))) return v;
    if (!phys_ok(c, pde_pa, 4)) return fault(c, VEC_MC, 0, pde_pa);
    uint32_t pde = rd32(c, pde_pa);
    if (!(pde & PTE_P)) return fault(c, VEC_PF, err, va);
    uint32_t pte_gpa = (pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4, pte_pa;
    if ((v = mmu_ept(c, pte_gpa, &pte_pa, ACC_READ))) return v;
    if (!phys_ok(c, pte_pa, 4)) return fault(c, VEC_MC, 0, pte_pa);
    uint32_t pte = rd32(c, pte_pa);
    if (!(pte & PTE_P)) return fault(c, VEC_PF, err, va);
    uint32_t bits = PTE_P | (pde & pte & (PTE_W | PTE_U)) | (pte & PTE_D) | ((pde | pte) & PTE_NX);
    if ((user && !(bits & PTE_U)) || (write && !(bits & PTE_W)) || (acc == ACC_FETCH && (bits & PTE_NX)))
        return fault(c, VEC_PF, err | PF_PRESENT, va);
    if ((v = mmu_ept(c, pte & PTE_FRAME, &hpa, acc))) return v;
    if ((hpa >> 12) >= c->npages) return fault(c, VEC_MC, 0, pte & PTE_FRAME);
    if (mmu_ept_readonly(c, pte & PTE_FRAME)) bits &= ~PTE_W; /* no write access cached */
    if (set_ad) {
        uint32_t npte = pte | PTE_A | (write ? PTE_D : 0);
        /* setting accessed/dirty bits writes the guest's page tables: an
         * EPT write access (SDM 28.2.3.2) */
        if (!(pde & PTE_A) && (v = mmu_ept(c, pde_gpa, &pde_pa, ACC_WRITE))) return v;
        if (npte != pte && (v = mmu_ept(c, pte_gpa, &pte_pa, ACC_WRITE))) return v;
        c->cycles += c->cost_walk;
        if (!(pde & PTE_A)) wr32(c, pde_pa, pde | PTE_A);
        if (npte != pte) wr32(c, pte_pa, npte);
        if (write) bits |= PTE_D;
    }
    *ppn = hpa >> 12;
    *pbits = bits;
    return 0;
}

cpu_tlb_entry *mmu_fill(cpu_t *c, uint32_t va, int acc, int *vec) {
    uint32_t ppn, bits;
    int v = walk(c, va, acc, 1, &ppn, &bits);
    if (v) {
        *vec = v;
        return NULL;
    }
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    uint32_t perm = TLB_RK;
    if (bits & PTE_U) perm |= TLB_RU;
    if (!(bits & PTE_NX)) perm |= TLB_XK | ((bits & PTE_U) ? TLB_XU : 0);
    /* write access is cached only once the dirty bit is set; the fast path
     * never writes code, nor a page not yet marked written since the last
     * checkpoint (the slow path marks it, then grants the fast path) */
    if ((bits & PTE_W) && (bits & PTE_D)) {
        perm |= TLB_AWK | ((bits & PTE_U) ? TLB_AWU : 0);
        if (!c->code_page[ppn] && c->written[ppn]) perm |= TLB_WK | ((bits & PTE_U) ? TLB_WU : 0);
    }
    c->tlb_gen++;
    e->vpn = (va >> 12) + 1;
    e->perm = perm;
    e->ppn = ppn;
    e->host = c->mem + ((size_t)ppn << 12);
    return e;
}

int mmu_access_slow(cpu_t *c, uint32_t va, void *buf, unsigned n, int acc) {
    uint8_t *p = buf;
    int write = acc == ACC_WRITE;
    while (n) {
        uint32_t off = va & 0xfff, k = CPU_PAGE - off;
        if (k > n) k = n;
        cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
        uint32_t need = write ? (c->cpl == 3 ? TLB_AWU : TLB_AWK)
                        : acc == ACC_FETCH ? mmu_need_exec(c) : mmu_need(c, 0);
        if (!(e->vpn == (va >> 12) + 1 && (e->perm & need))) {
            int vec;
            e = mmu_fill(c, va, acc, &vec);
            if (!e) return vec;
        }
        if (write) {
            if (c->code_page[e->ppn]) mmu_code_invalidate(c, e->ppn);
            /* mark the page written (the next checkpoint copies it), and let
             * later stores through this entry take the fast path */
            c->written[e->ppn] = 1;
            if (!c->code_page[e->ppn])
                e->perm |= ((e->perm & TLB_AWK) ? TLB_WK : 0) | ((e->perm & TLB_AWU) ? TLB_WU : 0);
            memcpy(e->host + off, p, k);
        } else {
            memcpy(p, e->host + off, k);
        }
        p += k;
        va += k;
        n -= k;
    }
    return 0;
}

int cpu_translate(cpu_t *c, uint32_t va, int access, uint32_t *pa) {
    uint32_t ppn, bits;
    int v = walk(c, va, access, 0, &ppn, &bits);
    if (v) return (int)(c->fault_err | 0x100);
    *pa = (ppn << 12) | (va & 0xfff);
    return 0;
}

static int virt_copy(cpu_t *c, uint32_t va, void *buf, size_t n, int write) {
    uint8_t *p = buf;
    while (n) {
        uint32_t pa, k = CPU_PAGE - (va & 0xfff);
        if (k > n) k = (uint32_t)n;
        if (cpu_translate(c, va, write ? ACC_WRITE : ACC_READ, &pa)) return -1;
        int r = write ? cpu_phys_write(c, pa, p, k) : cpu_phys_read(c, pa, p, k);
        if (r) return -1;
        p += k;
        va += k;
        n -= k;
    }
    return 0;
}

int cpu_virt_read(cpu_t *c, uint32_t va, void *dst, size_t n) {
    return virt_copy(c, va, dst, n, 0);
}

int cpu_virt_write(cpu_t *c, uint32_t va, const void *src, size_t n) {
    return virt_copy(c, va, (void *)src, n, 1);
}

int cpu_phys_read(cpu_t *c, uint32_t pa, void *dst, size_t n) {
    if (n > UINT32_MAX || !phys_ok(c, pa, (uint32_t)n)) return -1;
    memcpy(dst, c->mem + pa, n);
    return 0;
}

int cpu_phys_write(cpu_t *c, uint32_t pa, const void *src, size_t n) {
    if (n > UINT32_MAX || !phys_ok(c, pa, (uint32_t)n)) return -1;
    for (uint32_t p = pa >> 12; n && p <= (uint32_t)((pa + n - 1) >> 12); p++) {
        if (c->code_page[p]) mmu_code_invalidate(c, p);
        c->written[p] = 1;
    }
    memcpy(c->mem + pa, src, n);
    return 0;
}

cpu_insn *mmu_code_page(cpu_t *c, uint32_t ppn) {
    if (!c->code[ppn]) {
        /* one slot per word, plus a sentinel that sends the executor to the next page */
        cpu_insn *s = malloc(sizeof(cpu_insn) * (CPU_PAGE / 4 + 1));
        if (!s) return NULL;
        c->code[ppn] = s;
        for (unsigned i = 0; i < CPU_PAGE / 4; i++)
            s[i].op = OP_UNDECODED;
        s[CPU_PAGE / 4] = (cpu_insn){.op = OP_PAGEEND};
    }
    if (!c->code_page[ppn]) {
        c->code_page[ppn] = 1;
        for (int i = 0; i < CPU_TLB_SIZE; i++)
            if (c->tlb[i].vpn && c->tlb[i].ppn == ppn) c->tlb[i].perm &= ~(TLB_WK | TLB_WU);
    }
    return c->code[ppn];
}

cpu_insn mmu_decode_slot(cpu_t *c, uint32_t ppn, unsigned idx) {
    const uint8_t *page = c->mem + ((size_t)ppn << 12);
    uint32_t w0, w1 = 0;
    memcpy(&w0, page + idx * 4, 4);
    cpu_insn in = cpu_decode(w0, 0);
    if (in.size == 8) {
        if (idx == CPU_PAGE / 4 - 1) {
            in.op = OP_XPAGE; /* second word is on the next page: slow fetch each time */
        } else {
            memcpy(&w1, page + idx * 4 + 4, 4);
            in = cpu_decode(w0, w1);
        }
    }
    mmu_code_page(c, ppn)[idx] = in;
    return in;
}

void mmu_code_invalidate(cpu_t *c, uint32_t ppn) {
    cpu_insn *s = c->code[ppn];
    if (s)
        for (unsigned i = 0; i < CPU_PAGE / 4; i++)
            s[i].op = OP_UNDECODED;
    c->code_page[ppn] = 0;
    c->snapped[ppn] = 0; /* the trace's copy of the page is out of date */
}
