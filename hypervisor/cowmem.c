/* hypervisor/cowmem.c -- copy-on-write memory: the frame table (a reference
 * count per host frame, a free list, zeroing on reuse), VM fork (clone) and
 * the content-based page-sharing scanner.
 *
 * Follows ../shared/ground-truth.md, "Copy-on-write":
 *   - Waldspurger (OSDI 2002), content-based page sharing in VMware ESX:
 *     hash page contents, compare candidates in full, map the shared frame
 *     read-only, copy on the first write; ESX zeroes new machine pages;
 *   - Linux KSM: identical anonymous pages merged into one write-protected
 *     page, copied when written;
 *   - SnowFlock (Lagar-Cavilla et al., EuroSys 2009), VM fork: the clone
 *     starts from a small descriptor (registers, VMCS) and shares the
 *     parent's memory.  vlab shares every frame at once; there is no
 *     network to fetch pages lazily over.
 * The model: sharing marks the mappings read-only and raises the count; a
 * write to a shared page faults, copies when the count is above one (else
 * it just restores write permission), remaps the page writable and lowers
 * the count.
 *
 * Read-only means, per technique: the shadow page tables never map the page
 * writable (hypervisor/shadow.c asks hv_cow_ro), the EPT entry carries
 * CPU_EPT_RO (a write is an EPT violation, hypervisor/vmx.c), and the
 * hypervisor's own writes (hv_vm_write_phys, hence device DMA, Lua, the
 * guest page walk's accessed/dirty bits, hv_guest_copy) break the sharing
 * first (hypervisor/vm.c). */
#include "hypervisor/cowmem.h"

#include <stdlib.h>
#include <string.h>

#include "hypervisor/hv_internal.h"

/* A copy is the hypervisor copying 4 KiB: about 1,000 cycles at 4 bytes a
 * cycle (an estimate, unverified; Waldspurger 2002 gives no figure). */
#define COST_COPY 1000

int hv_frames_init(hv *h) {
    hv_frames *F = calloc(1, sizeof *F);
    uint32_t n = h->host->npages;
    if (!F) return -1;
    F->n = n;
    F->count = calloc(n, sizeof *F->count);
    F->use = calloc(n, 1);
    F->free = calloc(n, sizeof *F->free);
    if (!F->count || !F->use || !F->free) {
        free(F->count);
        free(F->use);
        free(F->free);
        free(F);
        return -1;
    }
    for (uint32_t f = 0; f < h->next_frame && f < n; f++)
        F->use[f] = HV_FRAME_HV; /* its own pages */
    h->frames = F;
    h->cost_copy = COST_COPY;
    return 0;
}

void hv_frames_free(hv *h) {
    hv_frames *F = h->frames;
    if (!F) return;
    free(F->count);
    free(F->use);
    free(F->free);
    free(F);
    h->frames = NULL;
}

uint32_t hv_frame_count(const hv *h, uint32_t frame) {
    return frame < h->frames->n ? h->frames->count[frame] : 0;
}

/* A free frame: the last freed one (zeroed now: the previous owner's bytes
 * must not leak, and the CPU forgets what it cached of it), else one never
 * used (the host's memory starts zeroed).  0 when none is left. */
static uint32_t take(hv *h) {
    hv_frames *F = h->frames;
    if (F->nfree) {
        uint32_t f = F->free[--F->nfree];
        static const uint8_t zero[CPU_PAGE];
        h->free_frames--;
        cpu_phys_write(h->host, f << 12, zero, CPU_PAGE);
        cpu_frame_forget(h->host, f);
    hv_tlb_drop_frame(h, f); /* the waiting physical CPUs' TLBs too */
        return f;
    }
    if (h->free_frames == 0 || h->next_frame >= F->n) return 0;
    h->free_frames--;
    return h->next_frame++;
}

uint32_t hv_alloc_frame(hv *h) {
    uint32_t f = take(h);
    if (f) h->frames->use[f] = HV_FRAME_HV;
    return f;
}

uint32_t hv_alloc_guest_frame(hv *h) {
    uint32_t f = take(h);
    if (f) {
        h->frames->use[f] = HV_FRAME_GUEST;
        h->frames->count[f] = 1;
    }
    return f;
}

/* One mapping of guest frame f is gone: at count 0 the frame is free. */
static void put(hv *h, uint32_t f, int why) {
    hv_frames *F = h->frames;
    if (f >= F->n || F->use[f] != HV_FRAME_GUEST || F->count[f] == 0) return;
    if (--F->count[f]) return;
    F->use[f] = HV_FRAME_FREE;
    F->free[F->nfree++] = f;
    F->freed++;
    h->free_frames++;
    cpu_frame_forget(h->host, f);
    hv_tlb_drop_frame(h, f); /* the waiting physical CPUs' TLBs too */
    hv_emit(h, EV_MEM_FREE, why, 0, h->host->pc, f, 0);
}

static void set_cow(hv_vm *vm, uint32_t g, int on) {
    if (on)
        vm->cow[g >> 5] |= 1u << (g & 31);
    else
        vm->cow[g >> 5] &= ~(1u << (g & 31));
    if (vm->ept) vm->ept[g] = (vm->p2m[g] + 1) | (on ? CPU_EPT_RO : 0);
}

static void mark(hv *h);

static int shadowed(const hv_vm *vm) {
    return vm->technique != HV_VTX || vm->vtx_shadow;
}


int hv_cow_write(hv *h, hv_vm *vm, uint32_t g) {
    hv_frames *F = h->frames;
    if (g >= vm->npages || !hv_cow_ro(vm, g)) return 0;
    uint32_t old = vm->p2m[g], nf = old;
    if (F->count[old] > 1) { /* still shared: copy it */
        nf = take(h);
        if (!nf) return -1;
        uint8_t page[CPU_PAGE];
        cpu_phys_read(h->host, old << 12, page, CPU_PAGE);
        cpu_phys_write(h->host, nf << 12, page, CPU_PAGE);
        F->use[nf] = HV_FRAME_GUEST;
        F->count[nf] = 1;
        F->count[old]--;
        vm->p2m[g] = nf;
        vm->cow_copies++;
        F->copies++;
        h->host->cycles += h->cost_copy;
    } else { /* the others wrote their copies already: it is this VM's alone */
        vm->cow_restores++;
        F->restores++;
    }
    set_cow(vm, g, 0);
    if (nf != old) {
        if (shadowed(vm)) hv_shadow_unmap_frame(h, vm, old << 12);
        hv_tlb_drop_frame(h, old); /* on every physical CPU */
        hv_vmx_remap(h, vm);
    }
    hv_emit(h, EV_MEM_COW, vm->id, nf == old, h->host->pc, g << 12, old | nf << 16);
    return 0;
}

/* Make every mapping of vm read-only for sharing: the shadows may map pages
 * writable, so they are dropped; the EPT gets the write-protect bits. */
static void protect_vm(hv *h, hv_vm *vm) {
    if (shadowed(vm)) hv_shadow_flush(h, vm);
    hv_tlb_flush_all(h);
    hv_vmx_remap(h, vm); /* its vector table may have moved (a merge) */
}

/* The parent's vCPU as it is now: on the CPU, its registers are the host's. */
static void live_vcpu(const hv *h, const hv_vm *vm, hv_vcpu *v, uint32_t *vmx_ctl) {
    const cpu_t *c = h->host;
    *v = vm->vcpu;
    *vmx_ctl = vm->vmx_ctl;
    if (h->current != vm->id) return;
    memcpy(v->r, c->r, sizeof v->r);
    v->pc = c->pc;
    uint32_t f = cpu_get_flags(c);
    v->flags = f & CPU_FL_ARITH;
    if (vm->technique != HV_VTX || !c->nonroot) return;
    /* VT-x: the guest state area is on the CPU (as hv_vmx_leave saves it) */
    v->vif = !!(f & CPU_FL_IF);
    v->vcpl = c->cpl;
    if (vm->vtx_shadow) {
        v->vcr[CR_FADDR] = c->cr[CR_FADDR];
        v->vcr[CR_KSP] = c->cr[CR_KSP];
        v->vcr[CR_STATUS] = (c->cr[CR_STATUS] & ~CPU_ST_PG) | c->status_shadow;
    } else {
        memcpy(v->vcr, c->cr, sizeof v->vcr);
        *vmx_ctl = c->vmx_ctl & ~VMX_INTWIN_EXIT;
    }
}

hv_vm *hv_vm_clone(hv *h, hv_vm *parent, const char *name, char *err, size_t errlen) {
    if (parent->destroyed) {
        snprintf(err, errlen, "vm %d was destroyed", parent->id);
        return NULL;
    }
    hv_focus(h, hv_vm_cpu(h, parent)); /* its registers are in the CPU it is on */
    hv_vm *vm =
        hv_vm_make(h, name, parent->npages, parent->technique, parent->kernel_ring, 0, err, errlen);
    if (!vm) return NULL;
    uint32_t ctl;
    live_vcpu(h, parent, &vm->vcpu, &ctl);
    hv_vcpu *v = &vm->vcpu; /* a new VM: its own counters start at 0 */
    v->exits = v->emulations = v->reflections = v->injections = v->shadow_fills = v->pt_writes = 0;
    v->translations = v->translated_blocks = v->retranslations = v->callouts = v->hypercalls = 0;
    memset(v->emulated_by_op, 0, sizeof v->emulated_by_op);
    vm->parent = parent->id;
    vm->kernel_ring = parent->kernel_ring;
    vm->weight = parent->weight;
    vm->vtx_shadow = parent->vtx_shadow;
    vm->vmx_ctl = ctl;
    vm->vmx_exc = parent->vmx_exc;
    vm->launched = 0; /* a new VMCS: its first entry is a vmlaunch */
    vm->done = parent->done;
    memcpy(vm->pt_frames, parent->pt_frames, (parent->npages + 31) / 32 * sizeof *vm->pt_frames);
    if (parent->bt_va) memcpy(vm->bt_va, parent->bt_va, parent->npages * sizeof *vm->bt_va);
    if (hv_vm_copy_callouts(h, parent, vm)) { /* its translations' callouts go with them */
        hv_vm_free(vm);
        h->nvms--;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(vm->adaptive, parent->adaptive, sizeof vm->adaptive);
    vm->nadaptive = parent->nadaptive;
    /* its shadow starts empty, for the parent's address space */
    vm->shadows[0].gptbr = v->vcr[CR_PTBR] & PTE_FRAME;
    if (parent->console_len) {
        vm->console = malloc(parent->console_len);
        if (vm->console) {
            memcpy(vm->console, parent->console, parent->console_len);
            vm->console_len = vm->console_cap = parent->console_len;
        }
    }
    for (uint32_t g = 0; g < parent->npages; g++) {
        uint32_t f = parent->p2m[g];
        vm->p2m[g] = f;
        h->frames->count[f]++;
        set_cow(vm, g, 1);
        set_cow(parent, g, 1);
    }
    protect_vm(h, parent);
    h->frames->clones++;
    h->frames->shared = 1;
    hv_emit(h, EV_MEM_CLONE, parent->id, vm->id, h->host->pc, parent->npages, 0);
    mark(h);
    return vm;
}

/* A hypervisor frame (a shadow page table) back on the free list. */
static void put_hv(hv *h, uint32_t f) {
    hv_frames *F = h->frames;
    if (f == 0 || f >= F->n || F->use[f] != HV_FRAME_HV) return;
    F->use[f] = HV_FRAME_FREE;
    F->free[F->nfree++] = f;
    h->free_frames++;
    cpu_frame_forget(h->host, f);
    hv_tlb_drop_frame(h, f); /* the waiting physical CPUs' TLBs too */
}

void hv_vm_destroy(hv *h, hv_vm *vm) {
    hv_frames *F = h->frames;
    cpu_t *c = h->host;
    if (vm->destroyed) return;
    hv_focus(h, hv_vm_cpu(h, vm)); /* on a physical CPU: make it the active one */
    if (h->current == vm->id) hv_unload(h, vm); /* take it off the CPU: nothing of it is kept */
    uint64_t before = F->freed;
    for (uint32_t g = 0; g < vm->npages; g++) put(h, vm->p2m[g], 1);
    for (int i = 0; i < HV_SHADOW_CACHE; i++) {
        hv_shadow_set *st = &vm->shadows[i];
        put_hv(h, st->pd >> 12);
        put_hv(h, st->kpd >> 12);
        for (int k = 0; k < st->npts; k++) put_hv(h, st->pts[k]);
        free(st->pts);
        memset(st, 0, sizeof *st);
    }
    cpu_tlb_flush(c);
    hv_emit(h, EV_MEM_DESTROY, vm->id, 0, c->pc, (uint32_t)(F->freed - before), vm->npages);
    vm->shadow_pd = vm->shadow_kpd = 0;
    vm->npages = 0;
    vm->mem_size = 0;
    vm->done = 1;
    vm->destroyed = 1;
    F->shared = 1;
    mark(h);
}

/* ---- content-based page sharing --------------------------------------------------------- */

uint32_t hv_hash_fnv1a(const uint8_t *page) {
    uint32_t x = 2166136261u;
    for (uint32_t i = 0; i < CPU_PAGE; i++)
        x = (x ^ page[i]) * 16777619u;
    return x;
}

uint32_t hv_hash_first_word(const uint8_t *page) {
    uint32_t x;
    memcpy(&x, page, 4);
    return x;
}

/* Each distinct frame is hashed once, at its first mapping in scan order
 * (VMs by id, pages by number); it becomes a candidate or is merged into an
 * identical candidate, and so are its later mappings. */
int hv_share_pages(hv *h, hv_page_hash hash, hv_share_stats *out) {
    hv_frames *F = h->frames;
    cpu_t *c = h->host;
    hv_share_stats st = {0};
    if (!hash) hash = hv_hash_fnv1a;
    mark(h); /* what the scan starts from */
    uint32_t nb = 1;
    while (nb < F->n)
        nb <<= 1;
    uint32_t *head = malloc(nb * sizeof *head), *next = malloc(F->n * sizeof *next);
    uint32_t *hv_of = malloc(F->n * sizeof *hv_of), *into = malloc(F->n * sizeof *into);
    uint8_t *seen = calloc(F->n, 1), *changed = calloc((size_t)h->nvms + 1, 1);
    /* a candidate's first mapping, made read-only when another joins it */
    hv_vm **first_vm = malloc(F->n * sizeof *first_vm);
    uint32_t *first_g = malloc(F->n * sizeof *first_g);
    if (!head || !next || !hv_of || !into || !seen || !changed || !first_vm || !first_g) {
        free(head), free(next), free(hv_of), free(into), free(seen), free(changed), free(first_vm),
            free(first_g);
        return -1;
    }
    for (uint32_t i = 0; i < nb; i++)
        head[i] = UINT32_MAX;
    for (int vi = 0; vi < h->nvms; vi++) {
        hv_vm *vm = h->vms[vi];
        for (uint32_t g = 0; g < vm->npages; g++) {
            uint32_t f = vm->p2m[g], k = f;
            st.scanned++;
            if (!seen[f]) {
                seen[f] = 1; /* 1: a candidate, 2: merged into into[f] */
                const uint8_t *p = c->mem + ((size_t)f << 12);
                uint32_t hx = hash(p);
                for (uint32_t e = head[hx & (nb - 1)]; e != UINT32_MAX; e = next[e]) {
                    if (hv_of[e] != hx) continue;
                    st.compared++;
                    if (memcmp(p, c->mem + ((size_t)e << 12), CPU_PAGE) == 0) { /* in full */
                        seen[f] = 2;
                        into[f] = e;
                        break;
                    }
                    st.collisions++; /* the same hash, other bytes: kept apart */
                }
                if (seen[f] == 1) {
                    hv_of[f] = hx;
                    next[f] = head[hx & (nb - 1)];
                    head[hx & (nb - 1)] = f;
                    first_vm[f] = vm;
                    first_g[f] = g;
                }
            }
            if (seen[f] != 2) continue;
            k = into[f];
            /* remap this page onto k, read-only; k's first mapping too */
            if (!hv_cow_ro(first_vm[k], first_g[k])) {
                set_cow(first_vm[k], first_g[k], 1);
                changed[first_vm[k]->id] = 1;
            }
            vm->p2m[g] = k;
            F->count[k]++;
            set_cow(vm, g, 1);
            changed[vm->id] = 1;
            vm->merged++;
            F->merges++;
            st.merged++;
            hv_emit(h, EV_MEM_MERGE, vm->id, 0, c->pc, g << 12, k | f << 16);
            uint32_t before = F->freed;
            put(h, f, 0);
            st.freed += (uint32_t)(F->freed - before);
        }
    }
    for (int vi = 0; vi < h->nvms; vi++)
        if (changed[vi]) protect_vm(h, h->vms[vi]);
    F->scans++;
    F->shared = 1;
    hv_emit(h, EV_MEM_SCAN, 0, 0, c->pc, st.scanned,
            (st.merged > 0xffff ? 0xffff : st.merged) |
                (st.collisions > 0xffff ? 0xffff : st.collisions) << 16);
    free(head), free(next), free(hv_of), free(into), free(seen), free(changed), free(first_vm),
        free(first_g);
    if (out) *out = st;
    mark(h);
    return 0;
}

/* ---- reading the table ------------------------------------------------------------------ */

/* Note the memory now (after a clone or a scan), for the summary. */
static void mark(hv *h) {
    hv_frames *F = h->frames;
    if (F->npoints == HV_FRAMES_POINTS) return;
    hv_frames_summary s;
    hv_frames_summarize(h, &s);
    hv_frames_point p = {.cycle = h->host->cycles, .mappings = s.mappings, .guest = s.guest, .copies = s.copies};
    const hv_frames_point *l = F->npoints ? &F->points[F->npoints - 1] : NULL;
    if (l && l->cycle == p.cycle && l->mappings == p.mappings && l->guest == p.guest && l->copies == p.copies)
        return; /* nothing changed */
    F->points[F->npoints++] = p;
}

void hv_frames_summarize(const hv *h, hv_frames_summary *s) {
    const hv_frames *F = h->frames;
    memset(s, 0, sizeof *s);
    s->total = F->n;
    s->free = h->free_frames;
    for (uint32_t f = 0; f < F->n; f++) {
        if (F->use[f] == HV_FRAME_HV) s->hypervisor++;
        if (F->use[f] != HV_FRAME_GUEST) continue;
        s->guest++;
        if (F->count[f] > 1) s->shared++;
        s->mappings += F->count[f];
    }
    s->saved = s->mappings - s->guest;
    s->copies = F->copies;
    s->restores = F->restores;
    s->merges = F->merges;
    s->freed = F->freed;
    s->clones = F->clones;
    s->scans = F->scans;
}

void hv_vm_footprint(const hv *h, const hv_vm *vm, hv_footprint *out) {
    const hv_frames *F = h->frames;
    memset(out, 0, sizeof *out);
    out->pages = vm->npages;
    out->copies = vm->cow_copies;
    out->restores = vm->cow_restores;
    out->merged = vm->merged;
    uint32_t *mine = calloc(F->n, sizeof *mine); /* this VM's mappings of each frame */
    if (!mine) return;
    for (uint32_t g = 0; g < vm->npages; g++) {
        if (mine[vm->p2m[g]]++ == 0) out->frames++;
        if (hv_cow_ro(vm, g)) out->shared++;
    }
    for (uint32_t f = 0; f < F->n; f++)
        if (mine[f] && mine[f] == F->count[f]) out->own++;
    free(mine);
}

int hv_frames_check(const hv *h, char *err, size_t errlen) {
    const hv_frames *F = h->frames;
    uint32_t *n = calloc(F->n, sizeof *n);
    uint8_t *onfree = calloc(F->n, 1);
    int rc = -1;
    if (!n || !onfree) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int vi = 0; vi < h->nvms; vi++) {
        const hv_vm *vm = h->vms[vi];
        for (uint32_t g = 0; g < vm->npages; g++) {
            uint32_t f = vm->p2m[g];
            if (f == 0 || f >= F->n || F->use[f] != HV_FRAME_GUEST) {
                snprintf(err, errlen, "vm %d page 0x%x maps frame 0x%x, which is %s", vm->id,
                         g << 12, f,
                         f >= F->n                    ? "outside the host"
                         : F->use[f] == HV_FRAME_FREE ? "free"
                                                      : "the hypervisor's");
                goto out;
            }
            n[f]++;
            if (vm->ept && vm->ept[g] != ((f + 1) | (hv_cow_ro(vm, g) ? CPU_EPT_RO : 0))) {
                snprintf(err, errlen, "vm %d page 0x%x: EPT entry 0x%x, p2m frame 0x%x%s", vm->id,
                         g << 12, vm->ept[g], f, hv_cow_ro(vm, g) ? " read-only" : "");
                goto out;
            }
        }
    }
    for (int vi = 0; vi < h->nvms; vi++) {
        const hv_vm *vm = h->vms[vi];
        for (uint32_t g = 0; g < vm->npages; g++)
            if (F->count[vm->p2m[g]] > 1 && !hv_cow_ro(vm, g)) {
                snprintf(err, errlen,
                         "vm %d page 0x%x is writable, but frame 0x%x is shared by %u pages",
                         vm->id, g << 12, vm->p2m[g], F->count[vm->p2m[g]]);
                goto out;
            }
    }
    for (uint32_t i = 0; i < F->nfree; i++) {
        uint32_t f = F->free[i];
        if (f >= F->n || F->use[f] != HV_FRAME_FREE || onfree[f]) {
            snprintf(err, errlen, "free list entry %u: frame 0x%x is not free, or listed twice", i,
                     f);
            goto out;
        }
        onfree[f] = 1;
    }
    uint32_t nfree = 0;
    for (uint32_t f = 0; f < F->n; f++) {
        if (F->use[f] == HV_FRAME_GUEST && F->count[f] != n[f]) {
            snprintf(err, errlen, "frame 0x%x: count %u, but %u guest pages map it", f, F->count[f],
                     n[f]);
            goto out;
        }
        if (F->use[f] != HV_FRAME_GUEST && (n[f] || F->count[f])) {
            snprintf(err, errlen,
                     "frame 0x%x is not a guest frame, but has count %u and %u mappings", f,
                     F->count[f], n[f]);
            goto out;
        }
        if (F->use[f] == HV_FRAME_FREE && f < h->next_frame && !onfree[f]) {
            snprintf(err, errlen, "frame 0x%x is free but not on the free list", f);
            goto out;
        }
        if (F->use[f] == HV_FRAME_FREE) nfree++;
    }
    if (nfree != h->free_frames) {
        snprintf(err, errlen, "%u frames are free, the allocator counts %u", nfree, h->free_frames);
        goto out;
    }
    rc = 0;
out:
    free(n);
    free(onfree);
    return rc;
}
