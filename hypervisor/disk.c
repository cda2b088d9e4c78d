/* hypervisor/disk.c -- the disk controller (see disk.h): its registers, the
 * checks of a request, the DMA transfer at completion, the status and the
 * trace events; and its attachment to a bare machine through the CPU's port
 * hook and a device deadline (cpu_device_at), so cpu/ knows nothing of
 * disks.  The register protocol is a simplified ATA task file with PCI IDE
 * bus-master DMA (docs/devices.md); the latency is a cost (disk.h). */
#include "hypervisor/disk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *disk_error_name(int code) {
    static const char *const n[DISK_E_COUNT_CODES] = {
        [DISK_OK] = "ok",
        [DISK_E_RANGE] = "sectors outside the disk",
        [DISK_E_ADDR] = "buffer outside memory",
        [DISK_E_READONLY] = "the disk is read-only",
        [DISK_E_MEDIA] = "the image could not be read or written",
        [DISK_E_CMD] = "no such command",
        [DISK_E_COUNT] = "bad sector count",
        [DISK_E_BUSY] = "busy: a request is in flight"};
    return code >= 0 && code < DISK_E_COUNT_CODES ? n[code] : "?";
}

disk_media *disk_media_new(blockdev *dev) {
    disk_media *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->dev = dev;
    m->refs = 1;
    m->cost_request = DISK_COST_REQUEST;
    m->cost_sector = DISK_COST_SECTOR;
    return m;
}

disk_media *disk_media_ref(disk_media *m) {
    if (m) m->refs++;
    return m;
}

void disk_media_unref(disk_media *m) {
    if (!m || --m->refs > 0) return;
    blockdev_close(m->dev);
    free(m);
}

void disk_ctl_init(disk_ctl *d, disk_media *media, cpu_t *events, int virt, disk_dma_fn dma,
                   void *dma_ud, uint32_t mem_size) {
    memset(d, 0, sizeof *d);
    d->media = disk_media_ref(media);
    d->events = events;
    d->virt = virt ? DISK_EV_VIRTUAL : 0;
    d->dma = dma;
    d->dma_ud = dma_ud;
    d->mem_size = mem_size;
    d->slot = -1;
}

void disk_ctl_fini(disk_ctl *d) {
    disk_media_unref(d->media);
    d->media = NULL;
}

static void emit(disk_ctl *d, int kind, int a, int b, uint32_t pc, uint32_t x, uint32_t y) {
    if (d->events) cpu_emit(d->events, kind, a | d->virt, b, pc, x, y);
}

/* What is wrong with the request in the registers, found when it is issued
 * (a real controller checks the task file before it starts). */
static int check_request(const disk_ctl *d) {
    const blockdev *b = d->media->dev;
    if (d->cmd != DISK_CMD_READ && d->cmd != DISK_CMD_WRITE) return DISK_E_CMD;
    if (d->count == 0 || d->count > DISK_MAX_COUNT) return DISK_E_COUNT;
    /* remote: the sectors are the host's to check (its controller reports them) */
    if (!d->remote && (d->lba >= b->sectors || d->count > b->sectors - d->lba)) return DISK_E_RANGE;
    uint64_t end = (uint64_t)d->addr + (uint64_t)d->count * BLOCKDEV_SECTOR;
    if (end > d->mem_size) return DISK_E_ADDR;
    if (!d->remote && d->cmd == DISK_CMD_WRITE && b->readonly) return DISK_E_READONLY;
    return DISK_OK;
}

/* The command register was written: latch the request.  1 if it started. */
static int start(disk_ctl *d, uint32_t pc, uint64_t now) {
    if (d->busy) { /* refused; the request in flight goes on */
        emit(d, EV_DISK_DONE, (int)(d->cmd & 0x0f), DISK_E_BUSY, pc, d->lba, d->count);
        return 0;
    }
    d->busy = 1;
    d->status = DISK_ST_BUSY;
    d->r_cmd = d->cmd;
    d->r_lba = d->lba;
    d->r_count = d->count;
    d->r_addr = d->addr;
    d->r_err = check_request(d);
    d->requests++;
    /* a refused request costs the command's overhead only */
    uint64_t lat =
        d->media->cost_request + (d->r_err ? 0 : (uint64_t)d->media->cost_sector * d->r_count);
    d->r_start = now;
    d->done_at = now + lat; /* remote: until disk_ctl_remote_done says when */
    if (!d->remote || d->r_err) d->busy_cycles += lat;
    emit(d, EV_DISK_CMD, (int)(d->r_cmd & 0x0f), (int)(d->r_count > 255 ? 255 : d->r_count), pc,
         d->r_lba, d->r_addr);
    return 1;
}

int disk_ctl_port(disk_ctl *d, int is_out, uint32_t port, uint32_t *value, uint32_t pc,
                  uint64_t now) {
    if (!d || !d->media || port < DISK_PORT_FIRST || port > DISK_PORT_LAST) return 0;
    uint32_t *reg = NULL;
    switch (port) {
    case DISK_PORT_LBA: reg = &d->lba; break;
    case DISK_PORT_COUNT: reg = &d->count; break;
    case DISK_PORT_ADDR: reg = &d->addr; break;
    case DISK_PORT_CMD:
        if (!is_out) {
            *value = d->cmd;
            return 1;
        }
        d->cmd = *value;
        return start(d, pc, now) ? 2 : 1;
    case DISK_PORT_STATUS:
        if (is_out) /* acknowledge: done and error go, busy stays while busy */
            d->status &= DISK_ST_BUSY;
        else
            *value = d->status;
        return 1;
    case DISK_PORT_SIZE:
        if (!is_out) *value = d->media->dev->sectors;
        return 1; /* read-only: a write is ignored */
    default:      /* 0x1f6, 0x1f7 are not decoded: they read all ones */
        if (!is_out) *value = 0xffffffffu;
        return 1;
    }
    if (is_out)
        *reg = *value; /* registers may be rewritten while busy: the request was latched */
    else
        *value = *reg;
    return 1;
}

int disk_ctl_complete(disk_ctl *d, uint32_t pc) {
    if (!d->busy) return 0;
    int err = d->r_err;
    uint32_t bytes = d->r_count * BLOCKDEV_SECTOR;
    if (!err && !d->remote) {
        blockdev *b = d->media->dev;
        uint8_t *buf = malloc(bytes);
        if (!buf) {
            err = DISK_E_MEDIA; /* the host is out of memory: the guest sees a failed transfer */
        } else if (d->r_cmd == DISK_CMD_READ) {
            if (blockdev_read(b, d->r_lba, d->r_count, buf) != 0)
                err = DISK_E_MEDIA;
            else if (d->dma(d->dma_ud, 1, d->r_addr, buf, bytes) != 0)
                err = DISK_E_ADDR;
        } else {
            if (d->dma(d->dma_ud, 0, d->r_addr, buf, bytes) != 0)
                err = DISK_E_ADDR;
            else if (blockdev_write(b, d->r_lba, d->r_count, buf) != 0)
                err = b->readonly ? DISK_E_READONLY : DISK_E_MEDIA;
        }
        free(buf);
        if (!err)
            emit(d, EV_DISK_DMA, (int)d->r_cmd, (int)(d->r_count > 255 ? 255 : d->r_count), pc,
                 d->r_addr, bytes);
    }
    if (!err) {
        if (d->r_cmd == DISK_CMD_READ)
            d->sectors_read += d->r_count;
        else
            d->sectors_written += d->r_count;
    }
    if (err) d->failures++;
    d->busy = 0;
    d->status = DISK_ST_DONE | (err ? DISK_ST_ERROR | (uint32_t)err << DISK_ST_CODE_SHIFT : 0);
    emit(d, EV_DISK_DONE, (int)(d->r_cmd & 0x0f), err, pc, d->r_lba, d->r_count);
    return 1;
}

void disk_ctl_remote_done(disk_ctl *d, int err, uint32_t pc, uint64_t now) {
    if (!d->busy || d->r_err) return; /* refused here: it completes on its own */
    d->r_err = err;
    d->done_at = now;
    d->busy_cycles += now - d->r_start;
    if (!err)
        emit(d, EV_DISK_DMA, (int)d->r_cmd, (int)(d->r_count > 255 ? 255 : d->r_count), pc,
             d->r_addr, d->r_count * BLOCKDEV_SECTOR);
}

/* ---- the bare machine -------------------------------------------------------------------- */

/* DMA into physical memory: cpu_phys_write drops the decoded copies of the
 * pages it writes and marks them for a new snapshot in the trace, as a
 * store would. */
static int native_dma(void *ud, int to_mem, uint32_t addr, void *buf, uint32_t n) {
    cpu_t *c = ud;
    return to_mem ? cpu_phys_write(c, addr, buf, n) : cpu_phys_read(c, addr, buf, n);
}

static int native_port(void *ud, cpu_t *c, int is_out, uint16_t port, uint32_t *value) {
    disk_ctl *d = ud;
    int r = disk_ctl_port(d, is_out, port, value, c->pc, c->cycles);
    if (r == 2) cpu_device_at(c, d->slot, d->done_at);
    if (r && !is_out && d->stop_on_done) cpu_request_stop(c);
    return r != 0;
}

static void native_due(void *ud, cpu_t *c) {
    disk_ctl *d = ud;
    if (!disk_ctl_complete(d, c->pc)) return;
    cpu_raise_irq(c, DISK_IRQ);
    if (d->stop_on_done) cpu_request_stop(c);
}

disk_ctl *disk_attach_native(cpu_t *c, disk_media *media, char *err, size_t errlen) {
    if (c->port_fn) {
        snprintf(err, errlen, "the machine has a port device already (one disk per machine)");
        return NULL;
    }
    disk_ctl *d = malloc(sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    disk_ctl_init(d, media, c, 0, native_dma, c, c->mem_size);
    d->slot = cpu_device_add(c, native_due, d);
    if (d->slot < 0) {
        snprintf(err, errlen, "the machine has no free device slot");
        disk_ctl_fini(d);
        free(d);
        return NULL;
    }
    c->port_fn = native_port;
    c->port_ud = d;
    return d;
}

void disk_detach_native(cpu_t *c, disk_ctl *d) {
    if (!d) return;
    if (c) {
        cpu_device_remove(c, d->slot);
        if (c->port_ud == d) {
            c->port_fn = NULL;
            c->port_ud = NULL;
        }
    }
    disk_ctl_fini(d);
    free(d);
}
