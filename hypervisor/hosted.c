/* hypervisor/hosted.c -- a hosted (type 2) VMM, as VMware Workstation
 * (Sugerman, Venkitachalam & Lim, USENIX 2001).
 *
 * The physical machine belongs to a host OS.  Three components make the VM
 * run: VMApp, a user process of the host OS; VMDriver, a driver in the host
 * OS; and the VMM (this hypervisor), which runs on the bare hardware in a
 * world of its own.  The CPU is in one world at a time, and a *world
 * switch* saves and restores all of its state, user and system (heavier
 * than a process switch).  The host world is real code on the simulated
 * CPU (scenarios/guests/hosted/host.s): the host OS in ring 0 and VMApp in
 * ring 3, in host memory 0x10000-0x2ffff, paging off.
 *
 *   - VMApp's ioctl(RUN) enters VMDriver, which world-switches into the
 *     VMM (here: the host world reaches `world_switch`, a callout, and the
 *     hypervisor takes the CPU).
 *   - A guest I/O access the VMM does not handle itself (a console byte)
 *     traps or exits to the VMM, which writes a request into VMDriver's
 *     shared block and world-switches to the host: the ioctl returns, and
 *     VMApp issues an ordinary write() to the host OS, which drives the
 *     console.  VMApp's next ioctl(RUN) switches back.
 *   - A guest disk request (its write to the controller's command register)
 *     goes the same way with the request (command, sectors): VMApp issues
 *     an ordinary read() or write() on the VM's disk, the host OS's driver
 *     programs the host machine's own disk controller (hypervisor/disk.c,
 *     the same model as a bare machine's, on the same image) and waits in
 *     hlt for its completion interrupt, a host interrupt the host OS takes
 *     (IRQ 14); the data moves through VMApp's buffer in host-world memory,
 *     which the VMM copies to or from guest-physical memory (through the
 *     VM's controller's DMA routine: hv_vm_write_phys, copy-on-write safe).
 *     Back in the VMM, the guest's request completes at once and its
 *     completion interrupt is injected: the guest waited while the host did
 *     the I/O (VMApp's read() blocks; the paper's VMM runs the guest only
 *     inside ioctl(RUN)).  A request larger than VMApp's buffer (64 sectors)
 *     takes one round trip per buffer-full.
 *   - Cheap device registers (the timer; the disk's status, sector, count,
 *     buffer and size registers) are handled inside the VMM without a world
 *     switch -- the paper's optimisation; with `cheap_in_vmm` off they make
 *     the round trip too (VMApp then only acknowledges: the device model
 *     that answers is the VMM's, vdev.c, standing in for VMApp's).
 *
 * Costs: a world switch each way (cost_world, 5,000 cycles by default) plus
 * the host world's own instructions (and, for the disk, the host disk's
 * latency).  The paper measures on a 733 MHz Pentium III a VMNet send at
 * 22.7 us (about 16,600 cycles, world switches and host work) against
 * 0.78 us (about 570 cycles) for a PIC IN/OUT handled in the VMM; the
 * defaults put one console byte through the host in the same order.  Not
 * modelled: host interrupts that make the VMM yield to the host while the
 * guest runs (the host world takes interrupts only while it waits for its
 * disk). */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

#include "hypervisor/disk.h"

#define HOSTED_PAGES 32          /* host world memory: 0x10000-0x2ffff */
#define HOSTED_BASE (HV_FIRST_FRAME * CPU_PAGE)
#define HOSTED_REQ (HOSTED_BASE + 0x400) /* VMDriver's shared request block: */
enum { REQ_KIND, REQ_PORT, REQ_VALUE, REQ_VM, REQ_CMD, REQ_LBA, REQ_COUNT, REQ_RESULT, REQ_WORDS };
#define HOSTED_BUF 0x28000u      /* VMApp's disk buffer (host.s), to the end of host-world memory */
#define HOSTED_BUF_SECTORS 64u   /* 32 KiB */
#define HOSTED_STEPS 1000000     /* a host world that does not switch back within this is broken */

int hv_hosted_setup(hv *h, const asm_image *img, char *err, size_t errlen) {
    cpu_t *c = h->host;
    uint32_t sw;
    if (h->nvms || h->next_frame != HV_FIRST_FRAME || h->ran) {
        snprintf(err, errlen, "a hosted hypervisor is set up before its VMs");
        return -1;
    }
    if (asm_symbol_value(img, "world_switch", &sw)) {
        snprintf(err, errlen, "the host image has no 'world_switch' (VMDriver's switch into the VMM)");
        return -1;
    }
    for (int k = 0; k < img->nchunks; k++) {
        const asm_chunk *ch = &img->chunks[k];
        if (ch->addr < HOSTED_BASE || ch->addr + ch->len > HOSTED_BASE + HOSTED_PAGES * CPU_PAGE) {
            snprintf(err, errlen, "the host image must lie in 0x%x-0x%x (it has bytes at 0x%x)",
                     HOSTED_BASE, HOSTED_BASE + HOSTED_PAGES * CPU_PAGE - 1, ch->addr);
            return -1;
        }
    }
    if (h->free_frames < HOSTED_PAGES + 8) {
        snprintf(err, errlen, "the host has too little memory for a host world");
        return -1;
    }
    for (int i = 0; i < HOSTED_PAGES; i++) hv_alloc_frame(h); /* frames 16..47: the host world's */
    for (int k = 0; k < img->nchunks; k++)
        cpu_phys_write(c, img->chunks[k].addr, img->chunks[k].data, img->chunks[k].len);
    /* The host world's CPU state: the host OS starts at its entry in ring 0,
     * paging off, every trap its own (no interception), VMX off. */
    cpu_context vmm;
    cpu_context_save(c, &vmm);
    cpu_context *x = &h->host_world;
    memset(x, 0, sizeof *x);
    x->pc = img->entry;
    x->cycles = c->cycles;
    x->world = 1;
    x->exit = vmm.exit;
    cpu_context_load(c, x);
    cpu_callout_add(c, sw); /* VMDriver's world switch: the VMM takes the CPU there */
    cpu_context_save(c, x);
    cpu_context_load(c, &vmm);
    h->world_switch_pc = sw;
    h->hosted = 1;
    h->cheap_in_vmm = 1;
    return 0;
}

/* The CPU is in the host world: run it until VMDriver switches back (0),
 * or -1 when the host world stops some other way.  In a run that keeps a
 * history (checkpoint_hook), a checkpoint after the world switch; and the
 * host machine's disk controller stops the run after each completion and
 * each read of its registers (stop_on_done, as on a bare machine) for a
 * checkpoint after what it did -- a replay runs without the device.  A
 * failed checkpoint is reported by whoever installed the hook. */
static int run_host_world(hv *h) {
    cpu_t *c = h->host;
    uint64_t end = c->steps + HOSTED_STEPS;
    if (h->host_disk) h->host_disk->stop_on_done = h->checkpoint_hook != NULL;
    int rc;
    for (;;) {
        if (h->checkpoint_hook) h->checkpoint_hook(h->checkpoint_ud, c);
        rc = cpu_run(c, end - c->steps);
        if (!(rc == CPU_EXIT_STOP && h->host_disk && h->host_disk->stop_on_done && c->steps < end)) break;
    }
    if (h->host_disk) h->host_disk->stop_on_done = 0;
    if (rc == CPU_EXIT_CALLOUT && c->exit.pc == h->world_switch_pc) {
        c->pc = c->exit.next_pc; /* back in the host world, the ioctl goes on from here */
        return 0;
    }
    return -1;
}

/* One round trip into the host world and back.  kind: HV_REQ_*; a
 * request of HV_REQ_NONE is the host world's boot (VMApp starting the VM). */
static int round_trip(hv *h, hv_vm *vm, uint32_t req[REQ_WORDS], uint32_t pc) {
    cpu_t *c = h->host;
    int kind = (int)req[REQ_KIND];
    req[REQ_VM] = vm ? (uint32_t)vm->id : 0xffffffffu;
    req[REQ_RESULT] = 0xffffffffu; /* VMApp's answer (a disk request): none yet */
    cpu_phys_write(c, HOSTED_REQ, req, REQ_WORDS * sizeof *req);
    int id = vm ? vm->id : -1;
    cpu_context vmm;
    if (kind == HV_REQ_DISK) { /* b = command | (sectors - 1) << 2, y = first sector */
        hv_emit(h, EV_HV_TO_HOST, kind, (int)(req[REQ_CMD] | (req[REQ_COUNT] - 1) << 2), pc, (uint32_t)id,
                req[REQ_LBA]);
        c->cycles += h->cost_world;
    } else if (kind != HV_REQ_NONE) {
        hv_emit(h, EV_HV_TO_HOST, kind, 0, pc, (uint32_t)id, req[REQ_PORT]);
        c->cycles += h->cost_world;
    }
    cpu_context_save(c, &vmm);
    h->host_world.cycles = c->cycles; /* the host world goes on at this CPU's time */
    cpu_context_load(c, &h->host_world);
    int rc = run_host_world(h);
    uint32_t at = rc ? c->pc : h->world_switch_pc;
    hv_emit(h, EV_HV_TO_VMM, rc ? 1 : 0, 0, at, (uint32_t)id, 0);
    cpu_context_save(c, &h->host_world);
    uint64_t now = c->cycles + h->cost_world;
    cpu_context_load(c, &vmm);
    c->cycles = now;
    h->world_switches += kind != HV_REQ_NONE ? 2 : 1;
    if (vm) vm->vcpu.world_switches += 2;
    if (rc) h->host_broken = 1;
    return rc;
}

int hv_hosted_boot(hv *h) {
    if (!h->hosted || h->host_booted) return 0;
    h->host_booted = 1;
    uint32_t req[REQ_WORDS] = {HV_REQ_NONE};
    return round_trip(h, NULL, req, 0);
}

/* The timer, and every disk register but the command: reading or latching
 * them needs no I/O, so the VMM answers them itself (the paper's "handle
 * the cheap registers in the VMM"). */
int hv_hosted_cheap(const hv *h, uint32_t port) {
    return h->cheap_in_vmm &&
           (port == PORT_TIMER || (port > DISK_PORT_CMD && port <= DISK_PORT_LAST));
}

int hv_hosted_io(hv *h, hv_vm *vm, int is_out, uint32_t port, uint32_t value, uint32_t pc) {
    if (h->host_broken) return -1;
    uint32_t req[REQ_WORDS] = {PORT_CONSOLE == port && is_out ? HV_REQ_CONSOLE : HV_REQ_DEVICE, port, value};
    return round_trip(h, vm, req, pc);
}

int hv_hosted_disk(hv *h, hv_vm *vm, disk_ctl *d, uint32_t pc) {
    cpu_t *c = h->host;
    if (!d->busy || d->r_err) return 0; /* the VMM refused it itself: nothing for the host */
    int err = h->host_broken ? DISK_E_MEDIA : DISK_OK;
    uint8_t *buf = malloc(HOSTED_BUF_SECTORS * BLOCKDEV_SECTOR);
    if (!buf) err = DISK_E_MEDIA; /* the real host is out of memory: a failed transfer */
    for (uint32_t done = 0; !err && done < d->r_count;) {
        uint32_t n = d->r_count - done < HOSTED_BUF_SECTORS ? d->r_count - done : HOSTED_BUF_SECTORS;
        uint32_t bytes = n * BLOCKDEV_SECTOR, gpa = d->r_addr + done * BLOCKDEV_SECTOR;
        /* a write: the VMM hands the guest's data to VMApp's buffer */
        if (d->r_cmd == DISK_CMD_WRITE &&
            (d->dma(d->dma_ud, 0, gpa, buf, bytes) || cpu_phys_write(c, HOSTED_BUF, buf, bytes))) {
            err = DISK_E_ADDR;
            break;
        }
        uint32_t req[REQ_WORDS] = {HV_REQ_DISK, DISK_PORT_CMD, d->r_cmd, 0, d->r_cmd, d->r_lba + done, n};
        if (round_trip(h, vm, req, pc)) {
            err = DISK_E_MEDIA; /* the host world broke down */
            break;
        }
        uint32_t res = 0xffffffffu;
        cpu_phys_read(c, HOSTED_REQ + REQ_RESULT * 4, &res, sizeof res);
        if (res != DISK_OK) { /* the host's controller's error code; no answer: a media error */
            err = res < DISK_E_COUNT_CODES ? (int)res : DISK_E_MEDIA;
            break;
        }
        /* a read: VMApp's buffer holds the sectors, the VMM copies them into guest memory */
        if (d->r_cmd == DISK_CMD_READ &&
            (cpu_phys_read(c, HOSTED_BUF, buf, bytes) || d->dma(d->dma_ud, 1, gpa, buf, bytes)))
            err = DISK_E_ADDR;
        done += n;
    }
    free(buf);
    h->host_disk_requests++;
    disk_ctl_remote_done(d, err, pc, c->cycles);
    return err;
}
