/* hypervisor/vm.c -- the allocator: VMs, their guest-physical memory as host
 * frames (the p2m map), and reading and writing guest memory the way the
 * guest's own page tables say (a software walk of the guest's tables, as a
 * shadow-paging VMM does). */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

const char *hv_technique_name(int t) {
    static const char *const n[HV_TECHNIQUE_COUNT] = {"native", "trap-and-emulate", "vt-x",
                                                      "binary-translation", "paravirtual"};
    return t >= 0 && t < HV_TECHNIQUE_COUNT ? n[t] : "?";
}

int hv_technique_by_name(const char *name) {
    for (int t = 0; t < HV_TECHNIQUE_COUNT; t++)
        if (strcmp(hv_technique_name(t), name) == 0) return t;
    return -1;
}

hv_vm *hv_vm_make(hv *h, const char *name, uint32_t npages, int technique, int kernel_ring, int fresh,
                  char *err, size_t errlen) {
    hv_vm *vm = calloc(1, sizeof *vm);
    hv_vm **list = realloc(h->vms, (size_t)(h->nvms + 1) * sizeof *list);
    if (list) h->vms = list;
    if (!vm || !list) {
        free(vm);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    vm->p2m = calloc(npages, sizeof *vm->p2m);
    vm->pt_frames = calloc((npages + 31) / 32, sizeof *vm->pt_frames);
    vm->cow = calloc((npages + 31) / 32, sizeof *vm->cow);
    if (technique == HV_BT) vm->bt_va = calloc(npages, sizeof *vm->bt_va);
    if (technique == HV_VTX) vm->ept = calloc(npages, sizeof *vm->ept);
    if (!vm->p2m || !vm->pt_frames || !vm->cow || (technique == HV_BT && !vm->bt_va) ||
        (technique == HV_VTX && !vm->ept)) {
        hv_vm_free(vm);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (h->free_frames < 2 + (fresh ? npages : 0)) {
        hv_vm_free(vm);
        snprintf(err, errlen, "the host has no frames left for the VM's shadow page tables");
        return NULL;
    }
    vm->id = h->nvms;
    snprintf(vm->name, sizeof vm->name, "%s", name && *name ? name : "vm");
    vm->technique = technique;
    vm->kernel_ring = technique == HV_VTX ? 0 : kernel_ring;
    vm->weight = 1;
    vm->last_exit = -1;
    vm->last_cpu = -1;
    vm->parent = -1;
    vm->npages = npages;
    vm->mem_size = npages * CPU_PAGE;
    /* each guest page gets a frame of its own (zeroed: ESX zeroes new
     * machine pages, Waldspurger 2002) */
    for (uint32_t g = 0; fresh && g < npages; g++) vm->p2m[g] = hv_alloc_guest_frame(h);
    vm->shadows[0].pd = vm->shadow_pd = hv_alloc_frame(h) << 12;
    vm->shadows[0].kpd = vm->shadow_kpd = hv_alloc_frame(h) << 12;
    vm->shadows[0].valid = 1; /* empty, and right for any guest ptbr until the first switch */
    h->vms[h->nvms++] = vm;
    return vm;
}

hv_vm *hv_vm_new(hv *h, const char *name, uint32_t mem_bytes, int technique, int kernel_ring,
                 char *err, size_t errlen) {
    uint32_t npages = (mem_bytes + CPU_PAGE - 1) / CPU_PAGE;
    if (npages == 0 || technique <= HV_NATIVE || technique >= HV_TECHNIQUE_COUNT ||
        (kernel_ring != 1 && kernel_ring != 3)) {
        snprintf(err, errlen,
                 "a VM needs memory, a technique (trap-and-emulate, vt-x, binary-translation, "
                 "paravirtual) and kernel ring 1 or 3");
        return NULL;
    }
    if (npages + 2 > h->free_frames) {
        snprintf(err, errlen, "the host has %u KiB left, the VM wants %u KiB", h->free_frames * 4,
                 npages * 4);
        return NULL;
    }
    hv_vm *vm = hv_vm_make(h, name, npages, technique, kernel_ring, 1, err, errlen);
    if (!vm) return NULL;
    if (technique == HV_VTX) {
        /* the guest kernel keeps ring 0 in non-root mode; its guest-physical
         * memory is reached through the EPT (SDM 28.2), built from the p2m */
        for (uint32_t g = 0; g < npages; g++) vm->ept[g] = vm->p2m[g] + 1;
        vm->vmx_ctl = VMX_HLT_EXIT | VMX_IO_EXIT | VMX_EXTINT_EXIT | VMX_EPT;
        vm->vmx_exc = 0; /* the guest handles its own exceptions */
    }
    return vm;
}

void hv_vm_free(hv_vm *vm) {
    if (!vm) return;
    hv_vdev_free(vm);
    free(vm->p2m);
    free(vm->pt_frames);
    free(vm->cow);
    for (int i = 0; i < HV_SHADOW_CACHE; i++) free(vm->shadows[i].pts);
    free(vm->ept);
    free(vm->bt_va);
    free(vm->callouts);
    free(vm->console);
    for (int i = 0; i < vm->nimages; i++) asm_image_free(&vm->images[i]);
    free(vm->images);
    free(vm);
}

int hv_gpa_to_hpa(const hv_vm *vm, uint32_t gpa, uint32_t *hpa) {
    if ((gpa >> 12) >= vm->npages) return -1;
    *hpa = vm->p2m[gpa >> 12] << 12 | (gpa & 0xfff);
    return 0;
}

/* Guest-physical memory from the hypervisor's side.  A write to a page
 * shared copy-on-write breaks the sharing first, as the guest's own write
 * would: device DMA, loads, the page walk's A/D bits all come through here. */
static int phys_copy(hv *h, hv_vm *vm, uint32_t gpa, void *buf, size_t n, int write) {
    uint8_t *p = buf;
    while (n) {
        uint32_t hpa, k = CPU_PAGE - (gpa & 0xfff);
        if (k > n) k = (uint32_t)n;
        if ((gpa >> 12) >= vm->npages) return -1;
        if (write && hv_cow_ro(vm, gpa >> 12) && hv_cow_write(h, vm, gpa >> 12)) return -1;
        if (hv_gpa_to_hpa(vm, gpa, &hpa)) return -1;
        if (write ? cpu_phys_write(h->host, hpa, p, k) : cpu_phys_read(h->host, hpa, p, k)) return -1;
        p += k;
        gpa += k;
        n -= k;
    }
    return 0;
}

int hv_vm_write_phys(hv *h, hv_vm *vm, uint32_t gpa, const void *src, size_t n) {
    return phys_copy(h, vm, gpa, (void *)src, n, 1);
}

int hv_vm_read_phys(hv *h, hv_vm *vm, uint32_t gpa, void *dst, size_t n) {
    return phys_copy(h, vm, gpa, dst, n, 0);
}

void hv_mark_pt(hv_vm *vm, uint32_t gpa) {
    uint32_t g = gpa >> 12;
    if (g >= vm->npages || ((vm->pt_frames[g >> 5] >> (g & 31)) & 1)) return;
    vm->pt_frames[g >> 5] |= 1u << (g & 31);
    if (vm->pt_new < 4) vm->pt_new_gpa[vm->pt_new] = gpa & PTE_FRAME;
    vm->pt_new++; /* shadows may map it writable: shadow.c write-protects it */
}

int hv_is_pt(const hv_vm *vm, uint32_t gpa) {
    uint32_t g = gpa >> 12;
    return g < vm->npages && ((vm->pt_frames[g >> 5] >> (g & 31)) & 1);
}

/* The guest's own page walk (its page tables live in guest-physical memory).
 * Sets the accessed and dirty bits the hardware would.  Returns 0 and the
 * guest-physical address and the PTE's W/U bits, or a vector (VEC_PF with
 * *err the x86 error code, or VEC_MC). */
int hv_guest_walk(hv *h, hv_vm *vm, uint32_t va, int acc, int user, uint32_t *gpa, uint32_t *bits,
                  uint32_t *err) {
    const hv_vcpu *v = &vm->vcpu;
    int write = acc == 1;
    *err = (write ? PF_WRITE : 0) | (user ? PF_USER : 0) | (acc == 2 ? PF_FETCH : 0);
    if (!(v->vcr[CR_STATUS] & CPU_ST_PG)) {
        if ((va >> 12) >= vm->npages) return VEC_MC;
        *gpa = va;
        *bits = PTE_W | PTE_U | PTE_D;
        return 0;
    }
    uint32_t pd = (v->vcr[CR_PTBR] & PTE_FRAME) + (va >> 22) * 4, pde, pte;
    if (hv_vm_read_phys(h, vm, pd, &pde, 4)) return VEC_MC;
    if (!(pde & PTE_P)) return VEC_PF;
    uint32_t pt = (pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4;
    hv_mark_pt(vm, pde & PTE_FRAME); /* writes to it must be seen: write-protect it */
    if (hv_vm_read_phys(h, vm, pt, &pte, 4)) return VEC_MC;
    if (!(pte & PTE_P)) return VEC_PF;
    uint32_t b = pde & pte & (PTE_W | PTE_U);
    if ((user && !(b & PTE_U)) || (write && !(b & PTE_W))) {
        *err |= PF_PRESENT;
        return VEC_PF;
    }
    if ((pte >> 12) >= vm->npages) return VEC_MC;
    uint32_t npde = pde | PTE_A, npte = pte | PTE_A | (write ? PTE_D : 0);
    if (npde != pde) hv_vm_write_phys(h, vm, pd, &npde, 4);
    if (npte != pte) hv_vm_write_phys(h, vm, pt, &npte, 4);
    *gpa = (pte & PTE_FRAME) | (va & 0xfff);
    *bits = b | (npte & PTE_D);
    return 0;
}

/* Guest-virtual memory with the guest kernel's rights (user = 0). */
int hv_guest_copy(hv *h, hv_vm *vm, uint32_t va, void *buf, size_t n, int write) {
    uint8_t *p = buf;
    while (n) {
        uint32_t gpa, bits, err, k = CPU_PAGE - (va & 0xfff);
        if (k > n) k = (uint32_t)n;
        if (hv_guest_walk(h, vm, va, write, 0, &gpa, &bits, &err)) return -1;
        if (phys_copy(h, vm, gpa, p, k, write)) return -1;
        if (write && hv_is_pt(vm, gpa)) hv_shadow_pt_written(h, vm, gpa); /* its tables changed */
        p += k;
        va += k;
        n -= k;
    }
    return 0;
}

/* A VT-x guest on the CPU has its own control registers there: the CPU's
 * walk (through the EPT) is the guest's; otherwise walk its virtual ones. */
static int on_cpu_vtx(hv *h, const hv_vm *vm) {
    if (vm->technique != HV_VTX) return 0;
    hv_focus(h, hv_vm_cpu(h, vm)); /* the CPU it is on holds its registers */
    return h->current == vm->id && h->host->nonroot;
}

int hv_vm_read_virt(hv *h, hv_vm *vm, uint32_t va, void *dst, size_t n) {
    if (on_cpu_vtx(h, vm)) return cpu_virt_read(h->host, va, dst, n);
    return hv_guest_copy(h, vm, va, dst, n, 0);
}

int hv_vm_write_virt(hv *h, hv_vm *vm, uint32_t va, const void *src, size_t n) {
    if (on_cpu_vtx(h, vm)) {
        /* the CPU's walk gives host frames: break the sharing of the guest
         * pages behind them first (the EPT would refuse the write) */
        for (uint32_t a = va & PTE_FRAME; n && a - (va & PTE_FRAME) < n + (va & 0xfff); a += CPU_PAGE) {
            uint32_t hpa;
            if (cpu_translate(h->host, a, 0, &hpa)) break;
            for (uint32_t g = 0; g < vm->npages; g++)
                if (vm->p2m[g] == hpa >> 12 && hv_cow_ro(vm, g)) hv_cow_write(h, vm, g);
        }
        return cpu_virt_write(h->host, va, src, n);
    }
    return hv_guest_copy(h, vm, va, (void *)src, n, 1);
}
