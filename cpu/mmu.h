/* cpu/mmu.h -- paging, the TLB and the predecoded code pages (internal to cpu/).
 *
 * Paging follows 32-bit x86 without PAE: a page directory at CR_PTBR, 10/10/12
 * split, PTE bits P W U A D, CR0.WP always on (supervisor writes honour W),
 * no NX.  The TLB is architectural: direct-mapped, CPU_TLB_SIZE entries, not
 * flushed on CPL changes, flushed by a ptbr/status write and per page by
 * invlpg -- so a kernel that forgets invlpg sees stale translations, as on
 * real hardware.  Each entry also caches the host address of its frame, which
 * makes it the simulator's fast path.
 *
 * A TLB entry never grants write access to a page that holds predecoded
 * instructions: every store to code goes through the slow path, which drops
 * the page's decoded slots (self-modifying code works, as in QEMU's
 * per-page invalidation).
 */
#ifndef VLAB_CPU_MMU_H
#define VLAB_CPU_MMU_H

#include <string.h>

#include "cpu/cpu.h"

#define TLB_RK 1u /* kernel (CPL 0-2) read / fetch */
#define TLB_WK 2u /* kernel write */
#define TLB_RU 4u /* user (CPL 3) read / fetch */
#define TLB_WU 8u /* user write */
/* Architectural write permission (W and D set).  TLB_WK/TLB_WU, the fast
 * path's, are these minus pages holding predecoded code; the slow path uses
 * these, so code pages cost no extra walk and see the same TLB as any page. */
#define TLB_AWK 16u
#define TLB_AWU 32u
#define TLB_XK 64u  /* kernel instruction fetch (no NX) */
#define TLB_XU 128u /* user instruction fetch */

static inline uint32_t mmu_need_exec(const cpu_t *c) { return c->cpl == 3 ? TLB_XU : TLB_XK; }

/* Not a vector: a guest-physical address the EPT does not map (a VM exit). */
#define FAULT_EPT 0x100

#define ACC_READ 0
#define ACC_WRITE 1
#define ACC_FETCH 2

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline uint32_t mmu_need(const cpu_t *c, int write) {
    return c->cpl == 3 ? (write ? TLB_WU : TLB_RU) : (write ? TLB_WK : TLB_RK);
}

/* Slow paths: return 0, or the vector of the fault (VEC_PF / VEC_MC) with
 * c->fault_err and c->fault_addr set. */
int mmu_access_slow(cpu_t *c, uint32_t va, void *buf, unsigned n, int acc);
/* Translate for an access, filling the TLB; returns the entry or NULL on a
 * fault (fault details as above, vector in *vec). */
cpu_tlb_entry *mmu_fill(cpu_t *c, uint32_t va, int acc, int *vec);

static inline int mmu_load32(cpu_t *c, uint32_t va, uint32_t need, uint32_t *out) {
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    if (likely(e->vpn == (va >> 12) + 1 && (e->perm & need) && (va & 0xfff) <= 0xffc)) {
        memcpy(out, e->host + (va & 0xfff), 4);
        return 0;
    }
    return mmu_access_slow(c, va, out, 4, ACC_READ);
}

static inline int mmu_store32(cpu_t *c, uint32_t va, uint32_t need, uint32_t v) {
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    if (likely(e->vpn == (va >> 12) + 1 && (e->perm & need) && (va & 0xfff) <= 0xffc)) {
        memcpy(e->host + (va & 0xfff), &v, 4);
        return 0;
    }
    return mmu_access_slow(c, va, &v, 4, ACC_WRITE);
}

static inline int mmu_load8(cpu_t *c, uint32_t va, uint32_t need, uint32_t *out) {
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    if (likely(e->vpn == (va >> 12) + 1 && (e->perm & need))) {
        *out = e->host[va & 0xfff];
        return 0;
    }
    uint8_t b = 0;
    int r = mmu_access_slow(c, va, &b, 1, ACC_READ);
    *out = b;
    return r;
}

static inline int mmu_store8(cpu_t *c, uint32_t va, uint32_t need, uint32_t v) {
    cpu_tlb_entry *e = &c->tlb[(va >> 12) & (CPU_TLB_SIZE - 1)];
    uint8_t b = (uint8_t)v;
    if (likely(e->vpn == (va >> 12) + 1 && (e->perm & need))) {
        e->host[va & 0xfff] = b;
        return 0;
    }
    return mmu_access_slow(c, va, &b, 1, ACC_WRITE);
}

/* The predecoded slots of physical page ppn, allocating them if needed
 * (marks the page as code and write-protects it in the TLB). NULL if out of
 * memory on the host. */
cpu_insn *mmu_code_page(cpu_t *c, uint32_t ppn);
/* Decode slot idx of page ppn into the slot and return it. */
cpu_insn mmu_decode_slot(cpu_t *c, uint32_t ppn, unsigned idx);
/* Drop the decoded slots of a physical page after a write to it. */
void mmu_code_invalidate(cpu_t *c, uint32_t ppn);

void mmu_invlpg(cpu_t *c, uint32_t va);

/* Guest-physical to host-physical in VMX non-root with EPT; identity
 * otherwise.  acc is the access (ACC_READ, ACC_WRITE, ACC_FETCH): a write
 * through an entry with CPU_EPT_RO is an EPT violation too (SDM 28.2.3,
 * how a hypervisor write-protects guest memory: copy-on-write).  0, or
 * FAULT_EPT with c->fault_addr = gpa and c->fault_err = the exit
 * qualification (EPT_QUAL_*, SDM table 28-7). */
static inline int mmu_ept(cpu_t *c, uint32_t gpa, uint32_t *hpa, int acc) {
    if (!(c->nonroot && (c->vmx_ctl & VMX_EPT))) {
        *hpa = gpa;
        return 0;
    }
    uint32_t g = gpa >> 12, e = g < c->ept_pages && c->ept ? c->ept[g] : 0;
    uint32_t qacc = acc == ACC_WRITE ? EPT_QUAL_WRITE : acc == ACC_FETCH ? EPT_QUAL_FETCH : EPT_QUAL_READ;
    if (!e || (acc == ACC_WRITE && (e & CPU_EPT_RO))) {
        c->fault_addr = gpa;
        c->fault_err = qacc | (e ? EPT_QUAL_READABLE : 0);
        return FAULT_EPT;
    }
    *hpa = ((e & ~CPU_EPT_RO) - 1) << 12 | (gpa & 0xfff);
    return 0;
}

/* The EPT entry of gpa allows reads but not writes (a read fills a TLB
 * entry without write permission, so the first write walks and exits). */
static inline int mmu_ept_readonly(const cpu_t *c, uint32_t gpa) {
    if (!(c->nonroot && (c->vmx_ctl & VMX_EPT))) return 0;
    uint32_t g = gpa >> 12;
    return g < c->ept_pages && c->ept && (c->ept[g] & CPU_EPT_RO);
}

#endif
