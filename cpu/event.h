/* cpu/event.h -- the one event model of vlab.
 *
 * Everything that happens in a run (an instruction, a trap, an I/O access,
 * and later a VM exit, an emulation, a world switch, a COW copy) is recorded
 * once, as a fixed-size 16-byte cpu_event, into a cpu_trace.  The text
 * printer (viz/text.c), the binary trace file and `vlab replay` (sim/trace.c),
 * and later the TUI and the Graphviz export all read the same records.
 *
 * Records carry no clock: a reader reconstructs the step and cycle of every
 * record (cpu_trace_reader).  EV_INSN advances the step by one and the cycle
 * by its b field; an EV_SYNC sets both absolutely.  The recorder emits an
 * EV_SYNC whenever the reader's reconstruction would be wrong, so each record
 * stays 16 bytes.
 *
 * Instructions are recorded compactly: an EV_BLOCK says "count instructions
 * ran straight through from pc, in physical page ppn", and the reader decodes
 * them from a snapshot of that page (an EV_PAGE, sent once per page and again
 * after the page is written).  A loop of four instructions costs one record a
 * pass, and a block that runs again right away only bumps an EV_REPEAT
 * after it, so a hot loop costs almost nothing.  The reader hands every
 * instruction out as its own EV_INSN, so a consumer never sees blocks.  Instructions outside a page
 * (an 8-byte instruction straddling two pages, an unaligned pc) come as single EV_INSN.
 *
 * A record's fields by kind (mode = CPL | VMX bits at the time of the event):
 *   EV_INSN      pc, x = word 0, y = word 1 (8-byte formats), b = cycles (<=255)
 *   EV_SYNC      pc = step bits 0-31, a|b<<8 = step bits 32-47, x|y<<32 = cycle
 *   EV_TRAP      a = vector, b = cause (cpu_cause), pc = where it was raised,
 *                x = handler, y = error code / fault address (see cause)
 *   EV_INTERCEPT like EV_TRAP, but the trap was handed to the host (Lua, VMM)
 *   EV_IRET      pc = iret's address, x = return pc, a = new CPL
 *   EV_SENSITIVE a = behaviour (SILENT/LEAK), pc, x = word 0: a sensitive
 *                instruction ran at CPL>0 without trapping
 *   EV_IO        a = 1 out / 0 in, pc, x = port, y = value
 *   EV_HALT      pc, x|y<<32 = idle cycles until the wake-up (0: halted for good),
 *                a = 1 when a device's deadline (cpu_device_at) ends the idling
 *   EV_SHUTDOWN  pc, a = vector that could not be delivered (triple fault)
 *   EV_BREAK     pc: a breakpoint stopped the run
 *   EV_TEXT      a = text kind, x = byte length; followed by ceil(x/16)
 *                payload records holding the bytes
 *   EV_POLICY    a = op, b = behaviour: the policy of one instruction changed
 *   EV_BLOCK     pc, x = count (bits 0-11) | ppn << 12: count instructions from pc
 *   EV_PAGE      y = ppn, x = 4096; followed by 256 payload records: the page's bytes
 *   EV_COST      a = op, x = cycles: the cost of one instruction changed
 *   EV_REPEAT    x = n: the EV_BLOCK just before ran n more times (a loop)
 *   EV_VMEXIT    a = reason (VMX_EXIT_*), b = vector, pc, x = qualification, y = word 0
 *                (an EPT violation: y = the guest-physical address)
 *   EV_VMENTRY   a = 0 launch / 1 resume, pc = guest pc, x = VM id
 *   EV_ASPACE    pc = where, x = the new page-table base as the program wrote it,
 *                a = 1 written by the hypervisor on behalf of a guest (emulated), else 0:
 *                a `wrcr ptbr` switched address spaces (a guest process switch)
 */
#ifndef VLAB_CPU_EVENT_H
#define VLAB_CPU_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum cpu_event_kind {
    EV_NONE = 0,
    EV_INSN,
    EV_SYNC,
    EV_TRAP,
    EV_INTERCEPT,
    EV_IRET,
    EV_SENSITIVE,
    EV_IO,
    EV_HALT,
    EV_SHUTDOWN,
    EV_BREAK,
    EV_TEXT,
    EV_POLICY,
    EV_EMULATE, /* a = op, pc, x = word 0: the host emulated and skipped an instruction */
    EV_CONTEXT, /* a = machine index: the following events are that machine's */
    EV_BLOCK,
    EV_PAGE,
    EV_COST,
    EV_REPEAT,
    EV_VMEXIT,  /* a = VMX_EXIT_* reason, b = exception vector, pc, x = qualification, y = word 0 */
    EV_VMENTRY, /* a = 0 vmlaunch / 1 vmresume, pc = where the guest goes on, x = VM id */
    EV_ASPACE,  /* pc, x = new page-table base as written, a = 1 emulated by the hypervisor */
    EV_CPU_LAST,
    /* 32-63: the hypervisor (hypervisor/hv.h).  The ring column of these is
     * the hypervisor's own; pc is where the guest was. */
    EV_HV_EMULATE = 32, /* a = op, pc, x = word 0, y = the result it gave the guest */
    EV_HV_REFLECT,      /* a = vector, b = cause|pf<<4, pc, x = guest handler, y = aux */
    EV_HV_INJECT,       /* a = vector, pc, x = guest handler: a virtual interrupt */
    EV_HV_SHADOW,       /* pc, x = guest-virtual page, y = host PTE installed */
    EV_HV_PTWRITE,      /* pc, x = guest-virtual address of a guest page-table write */
    EV_HV_VMRUN,        /* a = VM id: this VM is on the physical CPU now */
    EV_HV_IO,           /* a = 1 out / 0 in, pc, x = port, y = value: a virtual device */
    EV_HV_HALT,         /* a = VM id, x = 1 for good / 0 idle until a virtual interrupt,
                         * b = 1 when the disk's completion comes first */
    EV_HV_TRANSLATE,    /* a = 0 translated / 1 dropped / 2 retranslated, pc, x = virtual page,
                         * y = critical instructions | blocks << 16 */
    EV_HV_PCPU,         /* a = physical CPU: the events that follow happen on it (machines
                         * with several; each CPU has its own cycle counter) */
    EV_HV_TO_HOST,      /* a = request (1 console byte, 2 another device), pc, x = VM id, y = port: a hosted VMM's
                         * world switch into the host world, for VMApp to do the I/O; a = 3 a disk
                         * request: b = command | (sectors - 1) << 2, y = first sector */
    EV_HV_TO_VMM,       /* pc = where the host world stopped, x = VM id (~0: VMApp powering on),
                         * a = 1 the host world failed: the world switch back */
    EV_HV_LAST,
    /* 64-95: devices and memory.  64-71: the disk (hypervisor/disk.h); a =
     * the command (1 read, 2 write) | DISK_EV_VIRTUAL (0x10) when the
     * hypervisor's device model of a VM did it (pc is then the guest's). */
    EV_DISK_CMD = 64, /* a = cmd, b = sector count, pc, x = first sector (LBA), y = buffer address:
                       * a request was issued (the controller's command register was written) */
    EV_DISK_DMA,      /* a = cmd, b = sector count, pc, x = buffer address, y = bytes moved */
    EV_DISK_DONE,     /* a = cmd, b = status error code (0: success), pc, x = LBA, y = count:
                       * the request completed or failed; the completion interrupt follows */
    EV_DISK_LAST,
    /* 72-79: copy-on-write memory (hypervisor/cowmem.c); 96-127: sim (reserved) */
    EV_MEM_COW = 72, /* a = VM id, b = 0 copied / 1 write permission restored (no other sharer),
                      * pc, x = guest-physical page, y = old frame | new frame << 16 */
    EV_MEM_CLONE,    /* a = parent VM id, b = the clone's id, x = guest pages shared */
    EV_MEM_MERGE,    /* a = VM id, x = guest-physical page, y = the identical frame it now maps |
                      * the frame it left << 16: the sharing scanner merged it */
    EV_MEM_FREE,     /* a = why (0: merged away, 1: its VM was destroyed), x = frame: back on
                      * the free list */
    EV_MEM_SCAN,     /* x = guest pages scanned, y = pages merged | hash collisions << 16 (each
                      * at most 0xffff), a = 0: one run of the sharing scanner */
    EV_MEM_DESTROY,  /* a = VM id, x = guest frames freed, y = guest pages it had */
    EV_MEM_LAST,
    EV_KIND_COUNT = 128
};

/* Why a trap happened (EV_TRAP.b). */
enum cpu_cause {
    CAUSE_NONE = 0,
    CAUSE_PRIV,       /* #GP: privileged instruction at CPL>0; y = word 0 */
    CAUSE_INT_DENIED, /* #GP: int to a kernel-only vector from CPL>0; y = word 0 */
    CAUSE_UD,         /* #UD: invalid opcode; y = word 0 */
    CAUSE_DE,         /* #DE: division by zero; y = word 0 */
    CAUSE_PF,         /* #PF; y = fault address, error code in the trap frame */
    CAUSE_BUS,        /* #MC: physical address outside memory; y = physical address */
    CAUSE_SOFT,       /* int / syscall / brk; y = word 0 */
    CAUSE_IRQ,        /* external interrupt; y = IRQ line */
    CAUSE_DF,         /* #DF: a fault while delivering another (no handler, frame not
                       * writable); y = first vector.  x86 would raise #NP or #GP first. */
    CAUSE_COUNT
};

/* EV_TEXT kinds */
enum {
    TEXT_NOTE = 0,    /* an annotation from the scenario (machine:note) */
    TEXT_PRINT = 1,   /* the scenario's own print() output */
    TEXT_HEADER = 2,  /* the run's parameters, first in a trace */
    TEXT_MACHINE = 3, /* a machine was created: its description */
    TEXT_SUMMARY = 4  /* the end-of-run summary, printed verbatim unless --quiet */
};

/* mode byte */
#define EV_MODE_CPL 0x3
#define EV_MODE_VMX 0x4     /* in VMX operation */
#define EV_MODE_NONROOT 0x8 /* VMX non-root (guest) */
#define EV_MODE_HOSTWORLD 0x10 /* the host world of a hosted VMM (its host OS, VMApp) */

typedef struct cpu_event {
    uint8_t kind;
    uint8_t mode;
    uint8_t a;
    uint8_t b;
    uint32_t pc;
    uint32_t x;
    uint32_t y;
} cpu_event;
_Static_assert(sizeof(cpu_event) == 16, "cpu_event must stay 16 bytes");

typedef struct cpu_trace cpu_trace;

/* A sink receives recorded events in order, in batches. */
typedef void (*cpu_trace_sink)(void *ud, const cpu_event *ev, size_t n);

struct cpu_trace {
    cpu_event *buf;
    size_t n, cap;
    uint64_t step, cycle; /* what a reader has reconstructed after buf[n-1] */
    uint64_t rep_cost;    /* cycles of the last EV_BLOCK (an EV_REPEAT must match them) */
    int insns;            /* record EV_INSN (per-instruction tracing) */
    cpu_trace_sink sinks[4];
    void *sink_ud[4];
    int nsinks;
};

void cpu_trace_init(cpu_trace *t, size_t cap);
void cpu_trace_free(cpu_trace *t);
int cpu_trace_add_sink(cpu_trace *t, cpu_trace_sink fn, void *ud); /* -1 if full */
void cpu_trace_flush(cpu_trace *t);

/* Append one record stamped (step, cycle); emits EV_SYNC first if needed. */
void cpu_trace_put(cpu_trace *t, uint64_t step, uint64_t cycle, const cpu_event *ev);
/* Append a record with a payload of head->x bytes (EV_TEXT, EV_PAGE). */
void cpu_trace_payload(cpu_trace *t, uint64_t step, uint64_t cycle, const cpu_event *head,
                       const void *data);
/* Append an EV_TEXT record with its payload. */
void cpu_trace_text(cpu_trace *t, uint64_t step, uint64_t cycle, uint8_t mode, int kind,
                    const char *s, size_t len);

/* Bytes of payload that follow a record (EV_TEXT, EV_PAGE), in records. */
static inline size_t cpu_event_payload_records(const cpu_event *e) {
    return (e->kind == EV_TEXT || e->kind == EV_PAGE) ? (e->x + sizeof *e - 1) / sizeof *e : 0;
}

/* Reading: feed records in order; complete events come out stamped, one
 * EV_INSN per instruction of a block. */
typedef struct cpu_reader_ctx {
    uint8_t **pages; /* snapshots by physical page number */
    uint32_t npages;
    uint32_t *cost; /* per op; NULL until a cost changes (then isa.def defaults) */
} cpu_reader_ctx;

typedef struct cpu_trace_reader {
    uint64_t step, cycle;
    /* payload assembly (EV_TEXT, EV_PAGE) */
    char *text;
    size_t text_len, text_need, text_cap;
    cpu_event text_ev;
    /* per machine */
    cpu_reader_ctx *ctx;
    int nctx, cur;
    int blocks; /* what to do with EV_BLOCK: READ_INSNS (default), READ_CLOCK, READ_SKIP */
    cpu_event last_block; /* for EV_REPEAT */
    uint64_t last_block_cost;
} cpu_trace_reader;

/* cpu_trace_reader.blocks: hand out every instruction; only keep the clock
 * exact (no instructions handed out); or pass blocks by (step count only). */
enum { READ_INSNS = 0, READ_CLOCK = 1, READ_SKIP = 2 };

typedef struct cpu_stamped {
    cpu_event ev;
    uint64_t step, cycle;
    const char *text; /* EV_TEXT: the bytes (valid during the callback) */
    size_t text_len;
} cpu_stamped;

typedef void (*cpu_reader_fn)(void *ud, const cpu_stamped *s);

void cpu_reader_init(cpu_trace_reader *r);
void cpu_reader_free(cpu_trace_reader *r);
/* Feed n records; fn is called for each event to show (not for EV_SYNC,
 * EV_PAGE, EV_COST or payload records; an EV_BLOCK gives one EV_INSN per
 * instruction).  With fn NULL the reader only keeps its clock. */
void cpu_reader_feed(cpu_trace_reader *r, const cpu_event *ev, size_t n, cpu_reader_fn fn,
                     void *ud);

const char *cpu_event_kind_name(int kind);
const char *cpu_cause_name(int cause);

#endif
