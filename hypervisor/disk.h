/* hypervisor/disk.h -- the disk controller: a device of the simulated
 * machine reached by port I/O, that moves whole 512-byte sectors between a
 * block device (hypervisor/blockdev.h) and memory by DMA, and says it is done
 * with an interrupt on its own IRQ line after a deterministic latency.
 *
 * Its registers are a simplified ATA-style task file (the ports of the PC's
 * primary ATA channel, 0x1f0-0x1f7, and its IRQ 14), with the bus-master DMA
 * of a PCI IDE controller folded in as the buffer-address register: the
 * driver writes sector, count and buffer address, then the command; the
 * controller is busy, transfers, sets done (or error + an error code) in the
 * status register and raises the interrupt; the driver acknowledges it by
 * writing the status register.  docs/devices.md documents the registers.
 *
 * One model, two machines (Sugerman et al. 2001, "VMware I/O": the guest's
 * driver talks to a device the VMM emulates):
 *   - on the bare machine the controller is attached to the cpu_t through its
 *     port hook and a device deadline (disk_attach_native), and DMA reaches
 *     physical memory;
 *   - in a VM the hypervisor's device model (hypervisor/vdev.c) owns one,
 *     gets the guest's in/out from its traps or VM exits, reaches
 *     guest-physical memory, and injects the completion as a virtual
 *     interrupt.
 * The controller only ever sees `blockdev *`, so a raw image or a
 * copy-on-write overlay backs either. */
#ifndef VLAB_HYPERVISOR_DISK_H
#define VLAB_HYPERVISOR_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"
#include "hypervisor/blockdev.h"

/* Ports */
#define DISK_PORT_CMD 0x1f0    /* out: a command (starts a request); in: the last command */
#define DISK_PORT_STATUS 0x1f1 /* in: the status; out (any value): acknowledge, clears done/error  \
                                */
#define DISK_PORT_LBA 0x1f2    /* first sector of the request */
#define DISK_PORT_COUNT 0x1f3  /* sectors, 1..DISK_MAX_COUNT */
#define DISK_PORT_ADDR 0x1f4   /* buffer: a physical (in a VM: guest-physical) address */
#define DISK_PORT_SIZE 0x1f5   /* in: sectors on the disk */
#define DISK_PORT_FIRST DISK_PORT_CMD
#define DISK_PORT_LAST DISK_PORT_SIZE

#define DISK_IRQ 14         /* vector 32 + 14 = 46, the PC's primary ATA channel */
#define DISK_MAX_COUNT 128u /* sectors per request: 64 KiB */

/* Commands */
#define DISK_CMD_READ 1  /* disk -> memory */
#define DISK_CMD_WRITE 2 /* memory -> disk */

/* Status register */
#define DISK_ST_BUSY 0x1  /* a request is in flight */
#define DISK_ST_DONE 0x2  /* the last request completed (until acknowledged) */
#define DISK_ST_ERROR 0x4 /* ... and failed: the error code is in bits 8-15 */
#define DISK_ST_CODE_SHIFT 8

/* Error codes (status bits 8-15, EV_DISK_DONE.b) */
enum {
    DISK_OK = 0,
    DISK_E_RANGE = 1,    /* sectors outside the disk */
    DISK_E_ADDR = 2,     /* the buffer is outside memory */
    DISK_E_READONLY = 3, /* a write to a read-only disk */
    DISK_E_MEDIA = 4, /* the image could not be read or written (truncated, corrupt, host error) */
    DISK_E_CMD = 5,   /* no such command */
    DISK_E_COUNT = 6, /* count 0 or above DISK_MAX_COUNT */
    DISK_E_BUSY = 7,  /* a command while a request is in flight: refused (the request goes on) */
    DISK_E_COUNT_CODES
};
const char *disk_error_name(int code);

/* EV_DISK_*.a: the command, | this when the hypervisor's device model of a
 * VM recorded it. */
#define DISK_EV_VIRTUAL 0x10

/* A disk: a block device and its timing, shared by the Lua object that made
 * it and every controller it is attached to (reference counted: the block
 * device is closed when the last one lets go). */
typedef struct disk_media {
    blockdev *dev;
    int refs;
    /* Latency of a request, from the command to the completion interrupt:
     * cost_request + cost_sector * count cycles.  Illustrative, not a
     * measured disk: scaled so that a request spans a few of vlab-os's
     * 10,000-cycle timer ticks (a real SSD read of ~100 us would be ~300,000
     * cycles at 3 GHz, a 2001 disk's ~5 ms millions), and 1,000 cycles per
     * sector is 512 bytes at ~500 MB/s on a 1 GHz clock. */
    uint32_t cost_request, cost_sector;
} disk_media;

#define DISK_COST_REQUEST 30000u
#define DISK_COST_SECTOR 1000u

disk_media *disk_media_new(blockdev *dev); /* takes dev over; refs = 1; NULL if out of memory */
disk_media *disk_media_ref(disk_media *m);
void disk_media_unref(disk_media *m); /* closes the block device with the last reference */

/* How the controller reaches memory: copy n bytes at addr into memory
 * (to_mem) or out of it.  0, or -1 when [addr, addr+n) is not all memory. */
typedef int (*disk_dma_fn)(void *ud, int to_mem, uint32_t addr, void *buf, uint32_t n);

typedef struct disk_ctl {
    disk_media *media;
    /* registers */
    uint32_t lba, count, addr, cmd, status;
    /* the request in flight */
    int busy;
    uint32_t r_cmd, r_lba, r_count, r_addr;
    int r_err;        /* an error found when it was issued, reported at completion */
    uint64_t r_start; /* cycle it was issued */
    uint64_t done_at; /* cycle of its completion */
    /* where DMA goes, and how much memory is there */
    disk_dma_fn dma;
    void *dma_ud;
    uint32_t mem_size;
    cpu_t *events;    /* the machine whose trace records the EV_DISK_* events */
    int virt;         /* DISK_EV_VIRTUAL in the events */
    int remote;       /* the transfer is done elsewhere: a hosted VMM's VM, whose sectors VMApp
                       * reads and writes through the host OS on the host machine's own
                       * controller (hypervisor/hosted.c, Sugerman et al. 2001).  This
                       * controller checks what the VMM knows (command, count, buffer); the
                       * host's checks the sectors; disk_ctl_remote_done says how it went */
    int slot;         /* bare machine: its cpu_device slot */
    int stop_on_done; /* bare machine: end cpu_run after a completion and after an `in` from
                       * the controller (cpu_request_stop), so that a run's history can
                       * checkpoint what the device did: the TUI re-runs without it */
    /* statistics */
    uint64_t requests, sectors_read, sectors_written, failures, busy_cycles;
} disk_ctl;

/* A controller for media (a reference is taken) whose DMA goes through dma;
 * events are recorded on `events`. */
void disk_ctl_init(disk_ctl *d, disk_media *media, cpu_t *events, int virt, disk_dma_fn dma,
                   void *dma_ud, uint32_t mem_size);
void disk_ctl_fini(disk_ctl *d); /* drops the media reference */

/* A port access by the instruction at pc at cycle now.  0: not a disk port;
 * 1: done; 2: done, and a request started (it completes at d->done_at). */
int disk_ctl_port(disk_ctl *d, int is_out, uint32_t port, uint32_t *value, uint32_t pc,
                  uint64_t now);
/* Complete the request in flight (call at d->done_at): the transfer, the
 * status, the EV_DISK_DMA and EV_DISK_DONE events (pc: where the CPU is).
 * Returns 1 when the interrupt must be raised, 0 if nothing was in flight. */
int disk_ctl_complete(disk_ctl *d, uint32_t pc);

/* A remote controller's request in flight was carried out elsewhere (the
 * data, if any, already moved through d->dma): it completes at `now` with
 * error code err (DISK_OK: an EV_DISK_DMA event for the transfer, at pc). */
void disk_ctl_remote_done(disk_ctl *d, int err, uint32_t pc, uint64_t now);

/* The bare machine: attach a controller for media to c (its port hook and a
 * device deadline; the completion raises IRQ DISK_IRQ).  NULL with a message
 * if c has another port device or no free device slot. */
disk_ctl *disk_attach_native(cpu_t *c, disk_media *media, char *err, size_t errlen);
void disk_detach_native(cpu_t *c, disk_ctl *d); /* frees d */

#endif
