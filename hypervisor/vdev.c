/* hypervisor/vdev.c -- the virtual devices and the virtual processor
 * identity a VM sees, whatever the technique: a console (port 0x3f8) whose
 * output the VM keeps, a timer (port 0x40) that ticks in host cycles and
 * raises virtual IRQ 0, a disk controller (ports 0x1f0-0x1f5, the model of
 * hypervisor/disk.c on the VM's own block device) whose completion raises
 * virtual IRQ 14, and cpuid telling the VM's own memory size.
 *
 * The disk is the device model of the lecture's "Reading from disk" and of
 * Sugerman et al. (USENIX 2001) "VMware I/O": the guest's driver programs
 * what it believes is a disk controller; each in/out traps or exits to the
 * hypervisor, which does the I/O on the VM's disk, DMAs into guest-physical
 * memory and injects the completion interrupt at a deterministic cycle.
 * Under a hosted VMM the VM's controller is a front end: the transfer is
 * VMApp's, through the host OS on the host machine's controller
 * (hosted.c); the VMM copies the data and injects the completion. */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

#include "hypervisor/disk.h"

struct hv_vdisk {
    disk_ctl ctl;
    hv *h;
    hv_vm *vm;
};

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
     * cheap registers the VMM handles itself; a disk command goes there
     * with its request, below */
    int disk_cmd = vm->vdisk && is_out && port == DISK_PORT_CMD;
    if (h->hosted && !hv_hosted_cheap(h, port) && !disk_cmd) hv_hosted_io(h, vm, is_out, port, val, pc);
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
    } else if (vm->vdisk && port >= DISK_PORT_FIRST && port <= DISK_PORT_LAST) {
        /* the access first, then what the device model does about it */
        if (is_out) hv_emit(h, EV_HV_IO, is_out, 0, pc, port, val);
        int started = disk_ctl_port(&vm->vdisk->ctl, is_out, port, &val, pc, c->cycles) == 2;
        if (started && h->hosted) hv_hosted_disk(h, vm, &vm->vdisk->ctl, pc);
        if (!is_out) hv_emit(h, EV_HV_IO, is_out, 0, pc, port, val);
        return val;
    }
    hv_emit(h, EV_HV_IO, is_out, 0, pc, port, val);
    return val;
}

/* DMA of the virtual disk: guest-physical memory through the p2m map
 * (hv_vm_write_phys / hv_vm_read_phys, where copy-on-write hooks in), and
 * what a write into guest memory means for the hypervisor's caches: a page
 * holding a guest page table drops the shadows it fed, a translated code page
 * its translation (binary translation). */
static int vdisk_dma(void *ud, int to_mem, uint32_t gpa, void *buf, uint32_t n) {
    struct hv_vdisk *vd = ud;
    if (!to_mem) return hv_vm_read_phys(vd->h, vd->vm, gpa, buf, n);
    if (hv_vm_write_phys(vd->h, vd->vm, gpa, buf, n)) return -1;
    for (uint32_t p = gpa & PTE_FRAME; n && p <= ((gpa + n - 1) & PTE_FRAME); p += CPU_PAGE) {
        if (hv_is_pt(vd->vm, p)) hv_shadow_pt_written(vd->h, vd->vm, p);
        if (vd->vm->technique == HV_BT && hv_bt_translated(vd->vm, p)) hv_bt_invalidate(vd->h, vd->vm, p);
    }
    return 0;
}

int hv_vm_attach_disk(hv *h, hv_vm *vm, struct disk_media *media, char *err, size_t errlen) {
    if (vm->vdisk) {
        snprintf(err, errlen, "vm %d has a disk already (one disk per VM)", vm->id);
        return -1;
    }
    if (h->hosted && h->host_disk) {
        snprintf(err, errlen,
                 "the host machine has one disk controller, and vm %d's disk is on it (hosted: one VM "
                 "with a disk)",
                 h->host_disk_vm);
        return -1;
    }
    struct hv_vdisk *vd = calloc(1, sizeof *vd);
    if (!vd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (h->hosted) { /* the VM's disk is the host's: its own controller, driven by the host OS */
        h->host_disk = disk_attach_native(h->host, media, err, errlen);
        if (!h->host_disk) {
            free(vd);
            return -1;
        }
        h->host_disk_vm = vm->id;
    }
    vd->h = h;
    vd->vm = vm;
    disk_ctl_init(&vd->ctl, media, h->host, 1, vdisk_dma, vd, vm->mem_size);
    vd->ctl.remote = h->hosted;
    vm->vdisk = vd;
    return 0;
}

const struct disk_ctl *hv_vm_disk(const hv_vm *vm) { return vm->vdisk ? &vm->vdisk->ctl : NULL; }

void hv_vdev_free(hv_vm *vm) {
    if (!vm->vdisk) return;
    disk_ctl_fini(&vm->vdisk->ctl);
    free(vm->vdisk);
    vm->vdisk = NULL;
}

uint64_t hv_vdev_deadline(const hv_vm *vm) {
    const hv_vcpu *v = &vm->vcpu;
    uint64_t next = v->vtimer_period ? v->vtimer_deadline : UINT64_MAX;
    if (vm->vdisk && vm->vdisk->ctl.busy && vm->vdisk->ctl.done_at < next) next = vm->vdisk->ctl.done_at;
    return next;
}

int hv_vdev_disk_first(const hv_vm *vm) {
    const hv_vcpu *v = &vm->vcpu;
    return vm->vdisk && vm->vdisk->ctl.busy &&
           (!v->vtimer_period || vm->vdisk->ctl.done_at < v->vtimer_deadline);
}

void hv_vdev_tick(hv *h, hv_vm *vm) {
    hv_vcpu *v = &vm->vcpu;
    cpu_t *c = h->host;
    if (v->vtimer_period && c->cycles >= v->vtimer_deadline) {
        v->virq_pending |= 1u << HV_VIRQ_TIMER;
        uint64_t late = c->cycles - v->vtimer_deadline;
        v->vtimer_deadline += (uint64_t)v->vtimer_period * (late / v->vtimer_period + 1);
    }
    disk_ctl *d = vm->vdisk ? &vm->vdisk->ctl : NULL;
    if (d && d->busy && c->cycles >= d->done_at && disk_ctl_complete(d, c->pc))
        v->virq_pending |= 1u << HV_VIRQ_DISK;
}

uint32_t hv_vcpuid(const hv_vm *vm, uint32_t leaf) {
    switch (leaf) {
    case 0: return 0x42414c56u;     /* "VLAB" */
    case 1: return 1u | 2u;          /* paging, tsc; no VMX inside the VM */
    case 2: return vm->mem_size / 1024; /* the VM's memory, not the host's */
    default: return 0;
    }
}
