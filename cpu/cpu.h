/* cpu/cpu.h -- the simulated processor: registers, rings, traps, paging,
 * timer, console, and the configurable privileged-instruction set.
 *
 * The machine is deterministic: nothing here reads host time or host
 * randomness; the cycle counter (and rdtsc) advance from the cost table.
 *
 * A run returns an exit reason (cpu_exit): guest misbehaviour is data, never
 * a host crash.  Traps are delivered through the vector table at CR_VBR unless
 * the host intercepts their vector (cpu_intercept), in which case cpu_run
 * returns CPU_EXIT_TRAP and the host decides: deliver it (cpu_deliver),
 * emulate and skip the instruction, or anything else.
 *
 * Trap frame (x86-like; see docs/isa.md).  On a trap the CPU switches to the
 * stack in CR_KSP when coming from CPL>0, then pushes five words:
 *     [sp+16] old sp   [sp+12] old CPL   [sp+8] old FLAGS
 *     [sp+4]  return pc   [sp+0] error code
 * clears IF, enters CPL 0 and jumps to mem32[VBR + 4*vector].  iret pops all
 * five and restores sp, CPL, FLAGS (IF included) and pc.
 */
#ifndef VLAB_CPU_CPU_H
#define VLAB_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/event.h"
#include "cpu/isa.h"

/* Vectors (x86 numbering where x86 has one). */
enum {
    VEC_DE = 0,    /* divide error */
    VEC_BP = 3,    /* breakpoint (brk, int 3) */
    VEC_UD = 6,    /* invalid opcode */
    VEC_DF = 8,    /* double fault */
    VEC_GP = 13,   /* general protection */
    VEC_PF = 14,   /* page fault */
    VEC_MC = 18,   /* machine check: bus error */
    VEC_IRQ0 = 32, /* external interrupt line n arrives on vector 32+n; line 0 = timer */
    VEC_SYSCALL = 0x80,
    CPU_NVEC = 256
};

/* Page-fault error code bits (x86 layout). */
#define PF_PRESENT 0x1 /* 1: protection violation, 0: page not present */
#define PF_WRITE 0x2
#define PF_USER 0x4
#define PF_FETCH 0x10

/* Page table entry bits (two-level, 10/10/12, x86 32-bit layout). */
#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_A 0x20
#define PTE_D 0x40
#define PTE_NX 0x200 /* no execute: an instruction fetch faults (x86 XD, kept in bit 9 here) */
#define PTE_FRAME 0xfffff000u

/* Built-in ports. */
#define PORT_CONSOLE 0x3f8 /* out: write a byte to the console; in: 0 */
#define PORT_TIMER 0x40    /* out: timer period in cycles (0 = off); in: cycles to next tick */

#define CPU_PAGE 4096u
#define CPU_TLB_SIZE 64
/* An EPT entry's write-protect bit: the guest may read the page, a write
 * exits (VMX_EXIT_EPT with EPT_QUAL_WRITE) -- copy-on-write memory. */
#define CPU_EPT_RO 0x80000000u
/* An EPT violation's exit qualification (SDM 28.2.3, table 28-7) */
#define EPT_QUAL_READ 0x1u      /* the access was a data read */
#define EPT_QUAL_WRITE 0x2u     /* ... a data write */
#define EPT_QUAL_FETCH 0x4u     /* ... an instruction fetch */
#define EPT_QUAL_READABLE 0x8u  /* the entry was present (readable, executable) */
#define EPT_QUAL_WRITABLE 0x10u /* the entry allowed writes */

enum cpu_exit_reason {
    CPU_EXIT_NONE = 0,
    CPU_EXIT_BUDGET,   /* the step budget of this call ran out */
    CPU_EXIT_HALT,     /* hlt with nothing that can wake the CPU */
    CPU_EXIT_BREAK,    /* pc reached a breakpoint (the instruction has not run) */
    CPU_EXIT_TRAP,     /* an intercepted trap: see exit.vector; not delivered */
    CPU_EXIT_EVENT,    /* an event kind in stop_on was recorded */
    CPU_EXIT_SHUTDOWN, /* triple fault: the machine is dead until reset */
    CPU_EXIT_VMX,      /* a VMX instruction needs the VMM (exit.insn) */
    CPU_EXIT_STOP,     /* the host asked the run to stop (cpu_request_stop) */
    CPU_EXIT_CALLOUT,  /* pc reached a callout outside ring 3 (binary translation); not run */
    CPU_EXIT_COUNT
};

/* VMX non-root execution controls: a subset of the VMCS's (Intel SDM vol. 3C
 * ch. 24.6), the ones the lecture and Adams & Agesen (2006) talk about. */
#define VMX_HLT_EXIT (1u << 0)    /* hlt exits */
#define VMX_RDTSC_EXIT (1u << 1)  /* rdtsc exits (else TSC offsetting: cycles + tsc_offset) */
#define VMX_CR3_EXIT (1u << 2)    /* wrcr/rdcr ptbr exit (CR3-load/store exiting) */
#define VMX_INVLPG_EXIT (1u << 3) /* invlpg exits */
#define VMX_IO_EXIT (1u << 4)     /* every in/out exits (else the I/O bitmap decides) */
#define VMX_DESC_EXIT (1u << 5)   /* sidt and wrcr/rdcr vbr exit (descriptor-table exiting) */
#define VMX_INTWIN_EXIT (1u << 6) /* exit as soon as the guest's IF is 1 (interrupt window) */
#define VMX_EXTINT_EXIT (1u << 7) /* external interrupts exit, whatever the guest's IF */
#define VMX_EPT (1u << 8)         /* guest-physical addresses go through the EPT map */

/* Basic VM-exit reasons (SDM appendix C). */
enum {
    VMX_EXIT_EXCEPTION = 0, /* exit.vector: which */
    VMX_EXIT_EXTINT = 1,    /* exit.qual: IRQ line */
    VMX_EXIT_INTWIN = 7,
    VMX_EXIT_CPUID = 10,
    VMX_EXIT_HLT = 12,
    VMX_EXIT_INVLPG = 14, /* exit.qual: the address */
    VMX_EXIT_RDTSC = 16,
    VMX_EXIT_VMCALL = 18,
    VMX_EXIT_VMX_INSN = 19, /* vmxon ... vmwrite in non-root */
    VMX_EXIT_CR = 28,       /* exit.qual: cr | 0x10 for a read | reg << 8 */
    VMX_EXIT_IO = 30,       /* exit.qual: port | 0x10000 for out */
    VMX_EXIT_DESC = 46,
    VMX_EXIT_EPT = 48 /* exit.qual: the access (EPT_QUAL_*, above), exit.addr: the guest-physical address */
};

typedef struct cpu_exit {
    int reason;       /* cpu_exit_reason */
    int vmx_reason;   /* CPU_EXIT_VMX from non-root: VMX_EXIT_*; -1: a VMX instruction in root */
    uint32_t qual;    /* VM-exit qualification */
    int vector;       /* TRAP: vector; EVENT: event kind */
    int cause;        /* TRAP: cpu_cause */
    uint32_t err;     /* TRAP: error code pushed with it */
    uint32_t addr;    /* TRAP: fault address (page fault), bus address */
    uint32_t pc;      /* address of the instruction concerned */
    uint32_t next_pc; /* address after it (to skip it) */
    uint32_t word[2]; /* its raw words */
    cpu_insn insn;    /* and decoded */
    /* A VM exit that happened while delivering an event (SDM 27.2.4,
     * "IDT-vectoring information"): the VMM fixes the cause and injects
     * the event again. */
    int idt_valid;
    int idt_vector, idt_cause;
    uint32_t idt_err, idt_aux;
} cpu_exit;

typedef struct cpu cpu_t;

/* Port I/O beyond the built-in ports: return 1 if handled. */
typedef int (*cpu_port_fn)(void *ud, cpu_t *c, int is_out, uint16_t port, uint32_t *value);

/* A device outside cpu/ that needs the CPU's attention at a cycle (the disk
 * controller's completion, hypervisor/disk.c).  The run loop calls fn once,
 * at the first block boundary at or after the cycle -- where it would take
 * a timer interrupt -- so the moment is deterministic; fn typically raises
 * an IRQ line.  A hlt with interrupts on idles until the earliest deadline. */
typedef void (*cpu_dev_fn)(void *ud, cpu_t *c);
#define CPU_NDEV 4
typedef struct cpu_device {
    cpu_dev_fn fn; /* NULL: a free slot */
    void *ud;
    uint64_t at; /* cycle of the next call; UINT64_MAX: none */
} cpu_device;

typedef struct cpu_tlb_entry {
    uint32_t vpn;  /* virtual page number + 1 (0 = empty) */
    uint32_t perm; /* TLB_* bits allowed through this entry */
    uint32_t ppn;  /* physical page number */
    uint32_t pad;
    uint8_t *host; /* host address of the physical page */
} cpu_tlb_entry;

struct cpu {
    /* architectural state */
    uint32_t r[16];
    uint32_t pc;
    uint32_t flags; /* IF and, when lf_op is LF_NONE, CF ZF SF OF (use cpu_get_flags) */
    uint8_t lf_op;  /* lazy condition codes: how the last arithmetic set them */
    uint32_t lf_a, lf_b;
    uint32_t cr[CPU_NCR];
    uint8_t cpl;
    uint8_t vmx_on;    /* VMX operation (vmxon executed) */
    uint8_t nonroot;   /* VMX non-root mode: set by the VMM layer */
    uint8_t halted;    /* waiting in hlt */
    uint8_t dead;      /* shut down by a triple fault */
    uint8_t mid_block; /* the last run stopped inside a block: no interrupt check on resume */
    uint8_t world;     /* a mark the host sets, recorded in every event's mode byte
                        * (EV_MODE_HOSTWORLD): 1 while a hosted VMM's host world runs */
    uint64_t cycles;
    uint64_t steps;     /* instructions attempted (retired or faulted) */
    int64_t tsc_offset; /* rdtsc returns cycles + tsc_offset */

    /* memory */
    uint8_t *mem;
    uint32_t mem_size;
    uint32_t npages;
    cpu_tlb_entry tlb[CPU_TLB_SIZE];
    uint32_t tlb_gen;       /* bumped whenever a TLB entry changes */
    struct cpu_insn **code; /* per physical page: predecoded slots, or NULL */
    uint8_t *code_page;     /* per physical page: 1 if code[] holds decoded slots */
    uint8_t *snapped;       /* per physical page: the trace has its current bytes (EV_PAGE) */
    /* Per physical page: written since the last checkpoint (cpu_written_clear),
     * so a checkpoint copies only those pages.  Every write path sets it: a
     * slow-path store, an accessed/dirty bit update, cpu_phys_write (the host,
     * DMA); a TLB entry grants the fast path write access only to a page
     * already marked, as it does only to pages holding no decoded code. */
    uint8_t *written;
    uint32_t written_gen; /* bumped by cpu_written_clear: which checkpoint the marks count from */
    uint32_t *ept_own;    /* an EPT copy a snapshot put back (cpu/snapshot.c), owned */
    uint8_t *io_own;      /* an I/O bitmap copy a snapshot put back, owned */
    uint32_t fault_err, fault_addr; /* details of the last failed access */

    /* devices */
    uint32_t timer_period;
    uint64_t timer_deadline;
    uint64_t event_at;    /* the run loop looks at timer, interrupts and stops from this cycle on */
    uint32_t irq_pending; /* bit n: IRQ line n is pending */
    char *console;
    size_t console_len, console_cap, console_max;
    cpu_port_fn port_fn;
    void *port_ud;
    cpu_device dev[CPU_NDEV]; /* deadlines of devices outside cpu/ */

    /* configuration */
    uint8_t behaviour[OP_COUNT];      /* at CPL>0, for configurable ops */
    uint32_t cost[OP_INTERNAL_COUNT]; /* cycles per instruction ([OP_INVALID]: an invalid opcode) */
    uint32_t cost_trap;               /* delivering a trap or interrupt */
    uint32_t cost_walk;               /* a TLB miss with paging on */

    /* VMX non-root operation (the VMM sets these before entering a guest) */
    uint32_t vmx_ctl;       /* VMX_* controls */
    uint32_t vmx_exc;       /* exception bitmap: vectors 0-31 that exit */
    const uint32_t *ept;    /* EPT: guest page -> host page + 1 (0: not mapped), | CPU_EPT_RO */
    uint32_t ept_pages;
    const uint8_t *io_bitmap; /* 65536 bits, 1: that port exits; NULL: none exit */
    uint32_t status_mask;     /* status bits the VMM owns (the SDM's CR0 guest/host mask): */
    uint32_t status_shadow;   /* the guest reads these from the shadow, and writing them exits */

    /* host control */
    uint32_t intercept[CPU_NVEC / 32];
    uint64_t stop_on;     /* bit k: stop after recording an event of kind k (k < 64) */
    cpu_event stop_event; /* the event that matched stop_on */
    uint32_t *breaks;
    int nbreaks, breaks_cap;
    uint32_t *callouts;     /* open-addressed set of va + 1 (0: empty) */
    uint32_t ncallouts, callout_cap;
    volatile int stop_req;
    cpu_trace *trace; /* NULL: nothing recorded */
    cpu_exit exit;
};

/* What each processor of a multiprocessor has for itself: registers, rings,
 * control registers, its TLB, its timer and pending interrupts, its VMX
 * state and its cycle counter.  Memory (and its written-page marks), the decoded-code cache, the console,
 * ports, policy, costs, breakpoints and the trace are the machine's and
 * shared.  A hypervisor with several physical CPUs keeps one context per
 * CPU and takes turns on one cpu_t (hypervisor/hv.c), as QEMU's
 * single-threaded TCG takes turns between vCPUs; the step counter counts
 * the instructions of all of them. */
typedef struct cpu_context {
    uint32_t r[16], pc, flags, lf_a, lf_b, cr[CPU_NCR];
    uint8_t lf_op, cpl, vmx_on, nonroot, halted, dead, mid_block, world;
    uint64_t cycles;
    int64_t tsc_offset;
    cpu_tlb_entry tlb[CPU_TLB_SIZE];
    uint32_t fault_err, fault_addr;
    uint32_t timer_period;
    uint64_t timer_deadline;
    uint32_t irq_pending;
    uint32_t vmx_ctl, vmx_exc, ept_pages, status_mask, status_shadow;
    const uint32_t *ept;
    const uint8_t *io_bitmap;
    uint32_t intercept[CPU_NVEC / 32];
    uint32_t *callouts; /* the callout set in force (not owned: see hypervisor/bt.c) */
    uint32_t ncallouts, callout_cap;
    cpu_exit exit;
} cpu_context;

cpu_t *cpu_new(uint32_t mem_bytes); /* rounded up to whole pages; NULL on failure */
void cpu_free(cpu_t *c);
void cpu_reset(cpu_t *c); /* registers, CRs, devices; memory and configuration stay */
/* Save the processor's own state / make x the processor's state (with its
 * TLB, minus write access to pages that became code meanwhile). */
void cpu_context_save(const cpu_t *c, cpu_context *x);
void cpu_context_load(cpu_t *c, const cpu_context *x);

/* Run until an exit, at most max_steps instructions. */
int cpu_run(cpu_t *c, uint64_t max_steps);
const char *cpu_exit_name(int reason);

/* Deliver a trap now, with c->pc as the return address (x86 rules: faults
 * return to the faulting instruction, int/syscall to the next one; an
 * intercepted exit leaves c->pc at that return address).  Returns 0, or
 * CPU_EXIT_VMX when writing the trap frame page-faulted in VMX non-root
 * operation with #PF in the exception bitmap: c->exit holds that exit and
 * the event (exit.idt_*), for the VMM to deliver again once it fixed the
 * page (shadow paging). */
int cpu_deliver(cpu_t *c, int vector, int cause, uint32_t err, uint32_t aux);
void cpu_raise_irq(cpu_t *c, int line);
void cpu_intercept(cpu_t *c, int vector, int on);
static inline int cpu_intercepted(const cpu_t *c, int v) {
    return (c->intercept[v >> 5] >> (v & 31)) & 1;
}
void cpu_request_stop(cpu_t *c);

/* Policy: what each configurable instruction does at CPL>0. */
int cpu_policy_preset(cpu_t *c, const char *name); /* "x86" or "strict"; -1 if unknown */
void cpu_set_behaviour(cpu_t *c, int op, int behaviour);
int cpu_policy_matches(const cpu_t *c, const char *name); /* 1 if c follows that preset */
const char *cpu_policy_describe(const cpu_t *c);          /* "x86", "strict" or "custom" */

/* Costs */
void cpu_costs_default(cpu_t *c);
void cpu_set_cost(cpu_t *c, int op, uint32_t cycles); /* records EV_COST */

/* Memory, for the host.  Return 0, or -1 when out of range. */
int cpu_phys_read(cpu_t *c, uint32_t pa, void *dst, size_t n);
int cpu_phys_write(cpu_t *c, uint32_t pa, const void *src, size_t n);
/* Translate without side effects (no A/D bits, no fault delivered).
 * access: 0 read, 1 write, 2 fetch; at the current CPL.  Returns 0 and sets
 * *pa, or the page-fault error code | 0x100 on failure. */
int cpu_translate(cpu_t *c, uint32_t va, int access, uint32_t *pa);
int cpu_virt_read(cpu_t *c, uint32_t va, void *dst, size_t n);
int cpu_virt_write(cpu_t *c, uint32_t va, const void *src, size_t n);
void cpu_tlb_flush(cpu_t *c);
/* Forget which pages were written (the caller took a checkpoint of them):
 * clears every mark and takes the fast path's write access away, so the
 * next store to each page marks it again. */
void cpu_written_clear(cpu_t *c);
/* A hypervisor remapped or freed host frame ppn: drop its TLB entries, its
 * decoded instructions and the trace's copy of it (the next block run from
 * it sends the page again). */
void cpu_frame_forget(cpu_t *c, uint32_t ppn);
void cpu_invlpg(cpu_t *c, uint32_t va); /* drop one TLB entry, as the instruction does */

/* Registers seen by software */
uint32_t cpu_get_flags(const cpu_t *c);   /* with the CPL copy in bits 12-13 */
void cpu_set_flags(cpu_t *c, uint32_t v); /* all writable bits, IF included */
uint32_t cpu_get_cr(const cpu_t *c, int n);
void cpu_set_cr(cpu_t *c, int n, uint32_t v); /* host write: same effects as wrcr */
void cpu_set_cpl(cpu_t *c, int cpl);

/* Breakpoints (virtual addresses) */
int cpu_break_add(cpu_t *c, uint32_t va);
int cpu_break_del(cpu_t *c, uint32_t va);

/* Callouts: addresses where code running outside ring 3 leaves the CPU
 * before the instruction runs (CPU_EXIT_CALLOUT) -- how translated guest
 * kernel code calls the binary translator (hypervisor/bt.c).  No event is
 * recorded; the caller says what it did. */
int cpu_callout_add(cpu_t *c, uint32_t va);
void cpu_callout_del(cpu_t *c, uint32_t va);
void cpu_callout_clear(cpu_t *c);
int cpu_is_callout(const cpu_t *c, uint32_t va);

/* Devices with deadlines: a slot, or -1 when all CPU_NDEV are taken. */
int cpu_device_add(cpu_t *c, cpu_dev_fn fn, void *ud);
void cpu_device_remove(cpu_t *c, int slot);
/* Call the device's fn at `cycle` (UINT64_MAX: cancel). */
void cpu_device_at(cpu_t *c, int slot, uint64_t cycle);
/* The earliest device deadline, UINT64_MAX if none. */
uint64_t cpu_device_next(const cpu_t *c);

/* Console output so far */
const char *cpu_console(const cpu_t *c, size_t *len);

/* Record an event of any layer through the machine's trace (if any). */
void cpu_emit(cpu_t *c, int kind, int a, int b, uint32_t pc, uint32_t x, uint32_t y);
static inline uint8_t cpu_mode_byte(const cpu_t *c) {
    return (uint8_t)(c->cpl | (c->vmx_on ? EV_MODE_VMX : 0) | (c->nonroot ? EV_MODE_NONROOT : 0) |
                     (c->world ? EV_MODE_HOSTWORLD : 0));
}

#endif
