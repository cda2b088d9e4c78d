/* cpu/analyze.c -- the Popek & Goldberg analyzer: classify every instruction
 * of cpu_isa[] by executing it, then give the verdicts of Theorems 1 and 3.
 *
 * Sources: Popek & Goldberg, "Formal requirements for virtualizable third
 * generation architectures", CACM 17(7), 1974; Robin & Irvine, "Analysis of
 * the Intel Pentium's ability to support a secure virtual machine monitor",
 * USENIX Security 2000.  See ../shared/ground-truth.md and cpu/analyze.h.
 *
 * Method.  Nothing here reads the sens or x86 columns of cpu/isa.def.  For
 * each instruction we build a handful of operand/state variants (a "probe":
 * the instruction word, register contents, FLAGS, the words on the stack,
 * the timer, VMX operation) and execute the instruction exactly once
 * (cpu_run(c, 1)) on scratch machines (cpu_new, 36 or 64 KiB of memory), with
 * every vector intercepted so that a trap comes back as CPU_EXIT_TRAP instead
 * of being delivered.  Each probe is run on seven machines:
 *
 *   a0 a3   layout A, CPL 0 / CPL 3, every configurable instruction LEAK
 *   b0 b3   layout B (relocated, see below), same otherwise
 *   q0 q3   layout A, CPL 0 / CPL 3, the policy being analysed
 *   r3      layout B, CPL 3, the policy being analysed
 *
 * Sensitivity is what an instruction DOES when it executes, so it is probed
 * with the LEAK policy (every configurable instruction runs with its full
 * effect at any CPL), at CPL 0 in VMX root operation (vmx_on = 1) so that the
 * VMX instructions execute too, and at CPL 3 (the VMX instructions are also
 * tried outside VMX operation):
 *   control   a run that does not trap changes the mode or the resources:
 *             CPL, IF, a control register, the TLB, VMX operation, the halted
 *             state, the timer, the console, an I/O device -- or returns
 *             CPU_EXIT_VMX.  We count a request for a VMX transition (VM
 *             entry, VMCS access) as control-sensitive: it hands the machine
 *             to the VMM, i.e. changes who controls the resources.
 *   mode      a0 and a3 (identical but for the CPL) both run without
 *             trapping and the program sees different results.
 *   location  a0/b0 or a3/b3 (identical in everything the program sees
 *             virtually) give different results.
 *   traps     a0 and a3 trap for every probe (int, syscall, brk, vmcall).
 * Privilege is judged under the analysed policy, on states in VMX root:
 * privileged = for every probe, q3 traps and q0 does not (P&G: "for every
 * pair of states differing only in mode").  User-sensitive (P&G's Theorem 3)
 * = q3 runs without trapping and is control-sensitive there, or q3 and r3
 * differ (location-sensitive at CPL 3).  Mode-sensitivity does not make an
 * instruction user-sensitive: a hybrid VMM runs virtual user mode in real
 * user mode, where the mode seen is the right one.
 *
 * Relocation.  P&G's machine has a relocation-bounds register: a program
 * must not be able to tell where in real memory it sits.  Layout B places the
 * program's pages at other physical frames (same virtual addresses, through
 * page tables that themselves sit elsewhere), puts the vector table at
 * another physical address, gives the machine a different amount of physical
 * memory, and starts the real clock elsewhere (cycle counter and TSC offset).
 * vlab deliberately treats the memory size and the real clock as part of the
 * real resources that the relocation register stands for in P&G: an
 * instruction that reveals them (cpuid's memory leaf, rdtsc) tells a guest
 * about the real machine in the same way as one that reveals a physical
 * address (sidt).  This is a documented extension of the 1974 definitions.
 *
 * What the program sees (compared for mode and location): r0-r15, pc, FLAGS
 * as pushf would read them minus the CPL copy in bits 12-13 (that copy is a
 * view of the mode, which the program can only read through pushf -- and
 * pushf then writes it to memory, where it is compared), the contents of its
 * pages, and how the step ended (exit reason; trap vector and error code).
 *
 * An interrupt that arrives after the instruction completed (hlt waiting for
 * the timer) is not a trap of the instruction: such an exit counts as
 * "executed".
 *
 * Cost: about 800 probes x 7 one-instruction runs, a few tens of
 * milliseconds.  The seven scratch machines are made once per analysis with
 * cpu_new and brought back to their fresh state before every run
 * (scratch_clean): allocating 5,600 machines per analysis made the heap
 * churn dominate, and under AddressSanitizer left a 300 MB quarantine behind
 * that slowed every later fork of the test runner.
 */
#include "cpu/analyze.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/mmu.h" /* mmu_fill: warming the TLB of a scratch machine */

/* The case list: every row of isa.def with only the column the probes may use
 * (the operand format, which decides which operands to vary).  The sens and
 * x86 columns are deliberately dropped: the analysis must find them. */
static const uint8_t case_fmt[OP_COUNT] = {
#define ISA(name, code, mnem, fmt, part, sens, x86, cyc, doc) [OP_##name] = fmt,
#include "cpu/isa.def"
#undef ISA
};

/* ---- the scratch machines ---------------------------------------------------------------- */

/* Virtual layout, the same in every machine.  Pages 0-5 are mapped user and
 * writable; everything the program can see lives there. */
enum {
    V_PAGES = 6,
    V_CODE = 0x1000,       /* the instruction under test */
    V_TARGET = 0x1100,     /* return / iret target */
    V_HANDLER = 0x1800,    /* what the vector table points at (never reached: all intercepted) */
    V_DATA = 0x2000,       /* a page of patterned data */
    V_RETSP = 0x3e00,      /* sp restored by iret */
    V_STACK = 0x3f00,      /* sp */
    V_KSP = 0x5000,        /* CR_KSP: top of page 4 */
    TIMER_PERIOD = 100000, /* long enough that no instruction but hlt reaches the tick */
    PORT_DEVICE = 0x60,    /* the probe device (see device_port) */
    PORT_UNUSED = 0x2f8    /* nothing answers there */
};

/* Physical layout: the real resources. */
typedef struct layout {
    uint32_t mem;    /* physical memory, bytes */
    uint32_t pd, pt; /* frames of the page directory and of the page table */
    uint32_t frame0; /* frame of virtual page 0; pages 1..V_PAGES-1 follow */
    uint32_t vbr;    /* vector table, physical */
    uint64_t cycles; /* the real clock at the start */
    int64_t tsc_offset;
} layout;

static const layout LAYOUT_A = {9 * CPU_PAGE, 0, 1, 2, 8 * CPU_PAGE, 0, 0};
static const layout LAYOUT_B = {16 * CPU_PAGE,   11, 13, 3, 15 * CPU_PAGE + 0x400, 1000003,
                                (int64_t)1 << 32};

/* One operand/state variant of an instruction. */
typedef struct probe {
    cpu_insn in;
    uint32_t r[16];
    uint32_t flags;    /* initial FLAGS */
    uint32_t stack[5]; /* words at sp: popf/ret pop [0]; iret pops err, pc, flags, cpl, sp */
    uint8_t vmx_on;    /* in VMX (root) operation */
    uint8_t timer;     /* timer running */
} probe;

/* A policy: the behaviour table, plus status.TSD (which makes rdtsc trap at CPL>0). */
typedef struct policy {
    uint8_t beh[OP_COUNT];
    int tsd;
} policy;

/* A device on PORT_DEVICE with state of its own, like a keyboard controller's
 * data port: a read takes the next byte out of its buffer, a write is
 * latched.  A port read is thus an operation on a real resource, as on real
 * hardware (reading a UART's receive register pops its FIFO).  This device is
 * what shows `in` to be control-sensitive: the built-in ports alone would not
 * (a console read returns 0, a timer read has no side effect, an unused port
 * reads all ones), and `in` would come out innocuous. */
typedef struct device {
    uint32_t reads, writes, latch;
} device;

static int device_port(void *ud, cpu_t *c, int is_out, uint16_t port, uint32_t *value) {
    device *d = ud;
    (void)c;
    if (port != PORT_DEVICE) return 0;
    if (is_out) {
        d->writes++;
        d->latch = *value;
    } else {
        *value = 0x1c + d->reads++; /* the next "scancode" */
    }
    return 1;
}

/* The mode and the resources, as a vector of numbers: control-sensitivity is
 * "one of these changed". */
enum {
    S_CPL,
    S_IF,
    S_CR, /* S_CR + n: cpu_get_cr(n) */
    S_VMX = S_CR + CPU_NCR,
    S_HALTED,
    S_DEAD,
    S_TIMER_PERIOD,
    S_TIMER_DEADLINE,
    S_IRQ_PENDING,
    S_CONSOLE_LEN,
    S_DEV_READS,
    S_DEV_WRITES,
    S_DEV_LATCH,
    S_TLB, /* S_TLB + i: slot i as (vpn << 32 | ppn), 0 if empty */
    S_COUNT = S_TLB + CPU_TLB_SIZE
};

typedef struct snap {
    uint64_t v[S_COUNT];
} snap;

/* One execution of a probe. */
typedef struct run {
    cpu_t *c;
    const layout *L;
    device dev;
    snap before, after;
    int rc;
    int trapped; /* the instruction trapped (not: an interrupt arrived after it) */
} run;

static void take_snap(const run *x, snap *s) {
    const cpu_t *c = x->c;
    memset(s, 0, sizeof *s);
    s->v[S_CPL] = c->cpl;
    s->v[S_IF] = (cpu_get_flags(c) & CPU_FL_IF) != 0;
    for (int n = 0; n < CPU_NCR; n++)
        s->v[S_CR + n] = cpu_get_cr(c, n);
    s->v[S_VMX] = c->vmx_on;
    s->v[S_HALTED] = c->halted;
    s->v[S_DEAD] = c->dead;
    s->v[S_TIMER_PERIOD] = c->timer_period;
    s->v[S_TIMER_DEADLINE] = c->timer_period ? c->timer_deadline : 0;
    s->v[S_IRQ_PENDING] = c->irq_pending;
    s->v[S_CONSOLE_LEN] = c->console_len;
    s->v[S_DEV_READS] = x->dev.reads;
    s->v[S_DEV_WRITES] = x->dev.writes;
    s->v[S_DEV_LATCH] = x->dev.latch;
    /* The TLB is warmed before the run (every mapped page), so a fill caused
     * by the instruction's own accesses leaves these unchanged; a flush or an
     * invlpg does not. */
    for (int i = 0; i < CPU_TLB_SIZE; i++)
        if (c->tlb[i].vpn) s->v[S_TLB + i] = (uint64_t)c->tlb[i].vpn << 32 | c->tlb[i].ppn;
}

/* What the instruction did to the mode and the resources: after XOR before. */
static void delta(const run *x, snap *d) {
    for (int k = 0; k < S_COUNT; k++)
        d->v[k] = x->before.v[k] ^ x->after.v[k];
}

static int control_changed(const run *x) {
    if (x->trapped) return 0;
    if (x->rc == CPU_EXIT_VMX) return 1; /* handed to the VMM: see the header comment */
    return memcmp(&x->before, &x->after, sizeof x->before) != 0;
}

static uint32_t pa_of(const layout *L, uint32_t va) {
    return (L->frame0 << 12) + va;
}

static void put(cpu_t *c, uint32_t pa, const void *src, size_t n) {
    if (cpu_phys_write(c, pa, src, n)) abort(); /* the layouts above are wrong */
}

/* The seven machines of a probe (see the header comment). */
enum { M_A0, M_A3, M_B0, M_B3, M_Q0, M_Q3, M_R3, M_COUNT };

typedef struct lab {
    cpu_t *m[M_COUNT];
} lab;

static const layout *lab_layout(int i) {
    return i == M_B0 || i == M_B3 || i == M_R3 ? &LAYOUT_B : &LAYOUT_A;
}

static void lab_open(lab *l) {
    for (int i = 0; i < M_COUNT; i++) {
        cpu_t *c = cpu_new(lab_layout(i)->mem);
        if (!c) abort(); /* host out of memory */
        for (int v = 0; v < CPU_NVEC; v++)
            cpu_intercept(c, v, 1);
        l->m[i] = c;
    }
}

static void lab_close(lab *l) {
    for (int i = 0; i < M_COUNT; i++)
        cpu_free(l->m[i]);
}

/* Back to what cpu_new() returned (with every vector intercepted): what a run
 * can change is cpu_reset's state (registers, CRs, devices, TLB), memory and
 * its predecoded pages, the clocks and the exit record.  The configuration
 * (costs, intercepts) is never changed by a run; the policy is set by
 * execute() every time. */
static void scratch_clean(cpu_t *c) {
    cpu_reset(c);
    for (uint32_t p = 0; p < c->npages; p++)
        if (c->code[p] || c->code_page[p]) mmu_code_invalidate(c, p);
    memset(c->mem, 0, c->mem_size);
    c->cycles = c->steps = 0;
    c->tsc_offset = 0;
    c->fault_err = c->fault_addr = 0;
    c->port_fn = NULL;
    c->port_ud = NULL;
    memset(&c->exit, 0, sizeof c->exit);
}

/* Put machine c in the probe's state and run the instruction once. */
static void execute(run *x, lab *l, int machine, const probe *p, int cpl, const policy *pol) {
    cpu_t *c = l->m[machine];
    const layout *L = lab_layout(machine);
    memset(x, 0, sizeof *x);
    scratch_clean(c);
    x->c = c;
    x->L = L;
    /* cpu_set_behaviour itself ignores the instructions that are not configurable */
    for (int op = 0; op < OP_COUNT; op++)
        cpu_set_behaviour(c, op, pol->beh[op]);
    /* page tables: virtual page i -> frame frame0 + i */
    uint32_t pde = (L->pt << 12) | PTE_P | PTE_W | PTE_U;
    put(c, L->pd << 12, &pde, 4);
    for (uint32_t i = 0; i < V_PAGES; i++) {
        uint32_t pte = ((L->frame0 + i) << 12) | PTE_P | PTE_W | PTE_U;
        put(c, (L->pt << 12) + 4 * i, &pte, 4);
    }
    uint32_t h = V_HANDLER;
    for (uint32_t v = 0; v < CPU_NVEC; v++)
        put(c, L->vbr + 4 * v, &h, 4);
    uint8_t page[CPU_PAGE];
    for (uint32_t i = 0; i < CPU_PAGE; i++)
        page[i] = (uint8_t)(i * 7 + 1);
    put(c, pa_of(L, V_DATA), page, sizeof page);
    put(c, pa_of(L, V_STACK), p->stack, sizeof p->stack);
    uint32_t w[2] = {0, 0};
    int n = cpu_encode(&p->in, w);
    put(c, pa_of(L, V_CODE), w, (size_t)n);

    cpu_set_cr(c, CR_PTBR, L->pd << 12);
    cpu_set_cr(c, CR_VBR, L->vbr);
    cpu_set_cr(c, CR_KSP, V_KSP);
    cpu_set_cr(c, CR_STATUS, CPU_ST_PG | (pol->tsd ? CPU_ST_TSD : 0));
    memcpy(c->r, p->r, sizeof c->r);
    cpu_set_flags(c, p->flags);
    c->pc = V_CODE;
    c->vmx_on = p->vmx_on;
    c->port_fn = device_port;
    c->port_ud = &x->dev;
    cpu_set_cpl(c, cpl);
    for (uint32_t i = 0; i < V_PAGES; i++) { /* warm the TLB (see take_snap) */
        int vec;
        if (!mmu_fill(c, i << 12, ACC_READ, &vec)) abort();
    }
    c->cycles = L->cycles; /* after the warm-up walks, which cost cycles */
    c->tsc_offset = L->tsc_offset;
    if (p->timer) {
        c->timer_period = TIMER_PERIOD;
        c->timer_deadline = c->cycles + TIMER_PERIOD;
    }

    take_snap(x, &x->before);
    x->rc = cpu_run(c, 1);
    x->trapped = x->rc == CPU_EXIT_TRAP && c->exit.cause != CAUSE_IRQ;
    take_snap(x, &x->after);
}

/* Does the program see the same thing after x and after y? */
static int same_view(const run *x, const run *y) {
    const cpu_t *a = x->c, *b = y->c;
    if (x->rc != y->rc) return 0;
    if (x->rc == CPU_EXIT_TRAP && (a->exit.vector != b->exit.vector || a->exit.err != b->exit.err))
        return 0;
    if (memcmp(a->r, b->r, sizeof a->r) != 0 || a->pc != b->pc) return 0;
    uint32_t cpl_copy = 3u << CPU_FL_CPL_SHIFT;
    if ((cpu_get_flags(a) ^ cpu_get_flags(b)) & ~cpl_copy) return 0;
    return memcmp(a->mem + pa_of(x->L, 0), b->mem + pa_of(y->L, 0), V_PAGES * CPU_PAGE) == 0;
}

/* ---- the probes of one instruction ------------------------------------------------------- */

/* An operand variant: the instruction, and optionally one register forced to a value. */
typedef struct operand {
    cpu_insn in;
    int reg; /* -1: none */
    uint32_t val;
} operand;

enum { MAX_OPERANDS = 16, N_STATES = 4 };

static int operands(int op, operand *o) {
    int fmt = case_fmt[op], n = 0;
#define ADD(ra_, rb_, imm_, reg_, val_)                                                            \
    do {                                                                                           \
        if (n < MAX_OPERANDS)                                                                      \
            o[n++] = (operand){{.op = (uint8_t)op,                                                 \
                                .ra = (uint8_t)(ra_),                                              \
                                .rb = (uint8_t)(rb_),                                              \
                                .size = (uint8_t)cpu_fmt_size(fmt),                                \
                                .imm = (int32_t)(imm_)},                                           \
                               (reg_),                                                             \
                               (uint32_t)(val_)};                                                  \
    } while (0)
    static const uint16_t ports[] = {PORT_CONSOLE, PORT_TIMER, PORT_DEVICE, PORT_UNUSED};
    static const int crs[] = {CR_STATUS, CR_VBR, CR_FADDR, CR_PTBR, CR_KSP, 7 /* no such CR */};
    switch (fmt) {
    case F_NONE: ADD(0, 0, 0, -1, 0); break;
    case F_R:
        ADD(1, 0, 0, -1, 0);
        ADD(CPU_REG_SP, 0, 0, -1, 0);
        break;
    case F_RR: /* small values in rs: a zero divisor, cpuid leaves 0-2, short shifts */
        ADD(1, 2, 0, -1, 0);
        ADD(2, 2, 0, -1, 0);
        for (uint32_t v = 0; v < 3; v++)
            ADD(1, 2, 0, 2, v);
        break;
    case F_RI:
        ADD(1, 0, 0, -1, 0);
        ADD(1, 0, 1, -1, 0);
        ADD(1, 0, -1, -1, 0);
        break;
    case F_RI32: ADD(1, 0, 0x12345678, -1, 0); break;
    case F_LD:
        ADD(1, 2, 0, -1, 0);
        ADD(1, 2, -4, -1, 0);
        ADD(1, 2, 0x10, -1, 0);
        break;
    case F_ST:
        ADD(2, 1, 0, -1, 0);
        ADD(2, 1, 8, -1, 0);
        break;
    case F_J:
        ADD(0, 0, 0x40, -1, 0);
        ADD(0, 0, -8, -1, 0);
        break;
    case F_A32: ADD(0, 0, V_TARGET, -1, 0); break;
    case F_IMM:
        ADD(0, 0, VEC_BP, -1, 0);
        ADD(0, 0, VEC_GP, -1, 0);
        ADD(0, 0, VEC_IRQ0, -1, 0);
        ADD(0, 0, VEC_SYSCALL, -1, 0);
        ADD(0, 0, 0xff, -1, 0);
        break;
    case F_PIN:
        for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
            ADD(1, 0, ports[i], -1, 0);
        break;
    case F_POUT:
        for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
            ADD(0, 1, ports[i], -1, 0);
        break;
    case F_CRW: /* each control register, written with two values */
        for (size_t i = 0; i < sizeof crs / sizeof crs[0]; i++) {
            ADD(crs[i], 1, 0, 1, 0);
            ADD(crs[i], 1, 0, 1, CPU_ST_PG | CPU_ST_TSD | 0x3000);
        }
        break;
    case F_CRR:
        for (size_t i = 0; i < sizeof crs / sizeof crs[0]; i++)
            ADD(1, crs[i], 0, -1, 0);
        break;
    default: ADD(0, 0, 0, -1, 0); break;
    }
#undef ADD
    return n;
}

/* Machine state variant s (0..N_STATES-1) around an operand variant. */
static void make_probe(const operand *o, int s, int vmx_on, probe *p) {
    static const uint32_t flags[N_STATES] = {0, CPU_FL_IF | CPU_FL_CF | CPU_FL_ZF,
                                             CPU_FL_IF | CPU_FL_SF | CPU_FL_OF, CPU_FL_ZF};
    static const uint32_t popped[N_STATES] = {CPU_FL_IF, 0, CPU_FL_IF | CPU_FL_CF, CPU_FL_ZF};
    static const uint32_t frame_cpl[N_STATES] = {3, 0, 3, 0};
    memset(p, 0, sizeof *p);
    p->in = o->in;
    for (uint32_t i = 0; i < 16; i++) {
        switch (s) {
        case 0: p->r[i] = V_DATA + 16 * i; break; /* addresses in the data page */
        case 1: p->r[i] = i * 0x01010101u; break; /* r0 = 0; unmapped addresses */
        case 2: p->r[i] = 0xfffffff0u + i; break; /* near the top: wraps, faults */
        default: p->r[i] = 0x3000 + 8 * i; break; /* addresses in the stack page */
        }
    }
    p->r[CPU_REG_SP] = V_STACK;
    if (o->reg >= 0) p->r[o->reg] = o->val;
    p->flags = flags[s];
    p->stack[0] = popped[s];
    p->stack[1] = V_TARGET;
    p->stack[2] = popped[(s + 1) % N_STATES];
    p->stack[3] = frame_cpl[s];
    p->stack[4] = V_RETSP;
    p->timer = (uint8_t)(s & 1);
    p->vmx_on = (uint8_t)vmx_on;
}

typedef struct acc {
    int control, mode, location, always_traps;
    int privileged, ucontrol, ulocation, traps_at_user, silent;
    int states, policy_states;
} acc;

static void probe_once(lab *l, const probe *p, const policy *leak, const policy *pol, acc *A,
                       long *runs) {
    run a0, a3, b0, b3;
    execute(&a0, l, M_A0, p, 0, leak);
    execute(&a3, l, M_A3, p, 3, leak);
    execute(&b0, l, M_B0, p, 0, leak);
    execute(&b3, l, M_B3, p, 3, leak);
    *runs += 4;
    A->states++;
    A->control |= control_changed(&a0) || control_changed(&a3);
    A->mode |= !a0.trapped && !a3.trapped && !same_view(&a0, &a3);
    A->mode |= !b0.trapped && !b3.trapped && !same_view(&b0, &b3);
    A->location |= !same_view(&a0, &b0) || !same_view(&a3, &b3);
    A->always_traps &= a0.trapped && a3.trapped;

    /* Privilege and user-sensitivity: only on states in VMX root operation
     * (the VMX instructions are defined there; outside it they are #UD at
     * every CPL, like any unimplemented opcode). */
    if (p->vmx_on) {
        run q0, q3, r3;
        execute(&q0, l, M_Q0, p, 0, pol);
        execute(&q3, l, M_Q3, p, 3, pol);
        execute(&r3, l, M_R3, p, 3, pol);
        *runs += 3;
        A->policy_states++;
        A->privileged &= q3.trapped && !q0.trapped;
        A->ucontrol |= control_changed(&q3);
        A->ulocation |= (!q3.trapped || !r3.trapped) && !same_view(&q3, &r3);
        A->traps_at_user &= q3.trapped;
        if (!q3.trapped && !a3.trapped) { /* did the policy take part of its effect away? */
            snap dq, da;
            delta(&q3, &dq);
            delta(&a3, &da);
            A->silent |= !same_view(&q3, &a3) || memcmp(&dq, &da, sizeof dq) != 0 ||
                         (q3.rc == CPU_EXIT_VMX) != (a3.rc == CPU_EXIT_VMX);
        }
    }
}

static void analyse_op(lab *l, int op, const policy *leak, const policy *pol, cpu_pg_row *row,
                       long *runs) {
    operand o[MAX_OPERANDS];
    int no = operands(op, o);
    /* The VMX instructions are also tried outside VMX operation, where vmxon
     * is the only one that runs (the range is cpu.c's own test). */
    int vmx_variants = op >= OP_VMXON && op <= OP_VMCALL ? 2 : 1;
    /* vmcall is a hypercall: it means something only from inside a VM (a VM
     * exit, cpu/cpu.c); in VMX root it fails or faults.  On the bare machine
     * it is judged outside VMX operation, where it always traps (#UD). */
    int v0 = op == OP_VMCALL ? 1 : 0;
    acc A = {.always_traps = 1, .privileged = 1, .traps_at_user = 1};
    for (int i = 0; i < no; i++)
        for (int s = 0; s < N_STATES; s++)
            for (int v = v0; v < vmx_variants; v++) {
                probe p;
                make_probe(&o[i], s, v == 0, &p);
                probe_once(l, &p, leak, pol, &A, runs);
            }
    memset(row, 0, sizeof *row);
    row->op = op;
    row->control = A.control;
    row->mode = A.mode;
    row->location = A.location;
    row->always_traps = A.always_traps && A.states > 0;
    row->privileged = A.privileged && A.policy_states > 0;
    row->user_sensitive = A.ucontrol || A.ulocation;
    row->states = A.states;
    row->cls = row->always_traps ? TRAPS
               : row->control    ? CONTROL
               : row->location   ? LOCATION
               : row->mode       ? MODE
                                 : NONE;
    if (row->cls == NONE)
        row->at_user = NA;
    else if (A.traps_at_user)
        row->at_user = TRAP;
    else if (A.silent)
        row->at_user = SILENT;
    else
        row->at_user = LEAK;
}

static void analyse(const policy *pol, const char *name, cpu_pg_report *out) {
    policy leak = {.tsd = 0};
    memset(leak.beh, LEAK, sizeof leak.beh);
    memset(out, 0, sizeof *out);
    snprintf(out->policy, sizeof out->policy, "%s", name);
    out->tsd = pol->tsd;
    lab l;
    lab_open(&l);
    for (int op = 0; op < OP_COUNT; op++)
        analyse_op(&l, op, &leak, pol, &out->rows[op], &out->runs);
    lab_close(&l);
    for (int op = 0; op < OP_COUNT; op++) {
        const cpu_pg_row *w = &out->rows[op];
        int sensitive = w->control || w->mode || w->location;
        if (sensitive && !w->privileged) out->thm1_breakers[out->n_thm1++] = op;
        if (w->user_sensitive && !w->privileged) out->thm3_breakers[out->n_thm3++] = op;
    }
    out->thm1_holds = out->n_thm1 == 0;
    out->thm3_holds = out->n_thm3 == 0;
}

void cpu_analyze_machine(const cpu_t *c, cpu_pg_report *out) {
    policy pol;
    memcpy(pol.beh, c->behaviour, sizeof pol.beh);
    pol.tsd = (c->cr[CR_STATUS] & CPU_ST_TSD) != 0;
    analyse(&pol, cpu_policy_describe(c), out);
}

int cpu_analyze(const char *name, cpu_pg_report *out) {
    cpu_t *c = cpu_new(CPU_PAGE);
    if (!c) return -1;
    int rc = cpu_policy_preset(c, name);
    if (rc == 0) {
        policy pol = {.tsd = 0};
        memcpy(pol.beh, c->behaviour, sizeof pol.beh);
        analyse(&pol, name, out);
    }
    cpu_free(c);
    return rc;
}

/* ---- the report --------------------------------------------------------------------------- */

static const char *class_name(int cls) {
    switch (cls) {
    case CONTROL: return "control";
    case MODE: return "mode";
    case LOCATION: return "location";
    case TRAPS: return "always traps";
    default: return "innocuous";
    }
}

static const char *at_user_name(int b) {
    switch (b) {
    case TRAP: return "trap";
    case SILENT: return "runs silently";
    case LEAK: return "leaks";
    default: return "-";
    }
}

/* "  <lead>" then the mnemonics, wrapped at 100 columns under an indent. */
static void print_list(FILE *f, const char *lead, const int *ops, int n) {
    int col = fprintf(f, "%s", lead);
    /* the lead may contain one em dash: 3 bytes, 1 column */
    if (strstr(lead, "\xe2\x80\x94")) col -= 2;
    for (int i = 0; i < n; i++) {
        const char *m = cpu_isa[ops[i]].mnem;
        int len = (int)strlen(m) + 1;
        if (col + len > 100) {
            fprintf(f, "\n   ");
            col = 3;
        }
        col += fprintf(f, " %s", m);
    }
    fprintf(f, "\n");
}

static int is_in(const int *ops, int n, int op) {
    for (int i = 0; i < n; i++)
        if (ops[i] == op) return 1;
    return 0;
}

void cpu_analyze_print(const cpu_pg_report *r, FILE *f) {
    fprintf(f, "Popek & Goldberg analysis of the vlab ISA under the %s policy%s\n", r->policy,
            r->tsd ? " (status.TSD set)" : "");
    fprintf(f,
            "Found by executing every instruction once per probe state (%ld runs on scratch\n"
            "machines); the sens and x86 columns of isa.def were not consulted.\n",
            r->runs);
    static const char *const part_title[2] = {"User part of the ISA (opcodes 0x00-0x7f)",
                                              "System part of the ISA (opcodes 0x80-0xff)"};
    for (int part = USER; part <= SYSTEM; part++) {
        fprintf(f, "\n%s\n", part_title[part]);
        fprintf(f, "  %-8s  %-10s  %-7s  %-4s  %-8s  %-12s  %s\n", "mnemonic", "privileged",
                "control", "mode", "location", "class", "at CPL>0");
        fprintf(f, "  %-8s  %-10s  %-7s  %-4s  %-8s  %-12s  %s\n", "--------", "----------",
                "-------", "----", "--------", "------------", "-------------");
        for (int op = 0; op < OP_COUNT; op++) {
            const cpu_pg_row *w = &r->rows[op];
            if (cpu_isa[op].part != part) continue;
            int b1 = is_in(r->thm1_breakers, r->n_thm1, op);
            int b3 = is_in(r->thm3_breakers, r->n_thm3, op);
            const char *mark = b1 && b3 ? "<- breaks Thm 1 and 3"
                               : b1     ? "<- breaks Thm 1"
                               : b3     ? "<- breaks Thm 3"
                                        : NULL;
            fprintf(f, "  %-8s  %-10s  %-7s  %-4s  %-8s  %-12s  ", cpu_isa[op].mnem,
                    w->privileged ? "yes" : "no", w->control ? "yes" : "-", w->mode ? "yes" : "-",
                    w->location ? "yes" : "-", class_name(w->cls));
            if (mark)
                fprintf(f, "%-13s  %s\n", at_user_name(w->at_user), mark);
            else
                fprintf(f, "%s\n", at_user_name(w->at_user));
        }
    }
    fprintf(f, "\n"
               "privileged  traps at CPL 3 and not at CPL 0, in every probed state, under the "
               "policy\n"
               "control     changes the mode or the resources without trapping: CPL, IF, a "
               "control\n"
               "            register, the TLB, VMX operation, halt, timer, console or a device "
               "-- or\n"
               "            hands the machine to the VMM (a VMX exit)\n"
               "mode        its result differs between CPL 0 and CPL 3\n"
               "location    its result differs when the program sits elsewhere in real memory,\n"
               "            on a machine with another memory size or another real clock\n"
               "at CPL>0    what the policy makes it do in user mode: trap, runs silently "
               "(some of\n"
               "            its effect is dropped), leaks (runs with its real effect)\n\n");

    fprintf(f, "Theorem 1 (Popek & Goldberg 1974): a VMM can be built if every sensitive "
               "instruction is privileged.\n");
    if (r->thm1_holds) {
        fprintf(f,
                "  Verdict under %s: HOLDS \xe2\x80\x94 every sensitive instruction is "
                "privileged.\n",
                r->policy);
    } else {
        char lead[96];
        snprintf(lead, sizeof lead,
                 "  Verdict under %s: FAILS \xe2\x80\x94 sensitive but not privileged:", r->policy);
        print_list(f, lead, r->thm1_breakers, r->n_thm1);
    }
    fprintf(f, "Theorem 3 (Popek & Goldberg 1974): a hybrid VMM can be built if every "
               "user-sensitive\n"
               "instruction (control- or location-sensitive at CPL 3) is privileged.\n");
    if (r->thm3_holds) {
        fprintf(f,
                "  Verdict under %s: HOLDS \xe2\x80\x94 every user-sensitive instruction is "
                "privileged.\n",
                r->policy);
    } else {
        char lead[96];
        snprintf(
            lead, sizeof lead,
            "  Verdict under %s: FAILS \xe2\x80\x94 user-sensitive but not privileged:", r->policy);
        print_list(f, lead, r->thm3_breakers, r->n_thm3);
    }
    if (!r->thm1_holds && r->thm3_holds)
        fprintf(f, "  Theorem 1 does not apply but Theorem 3 does: a hybrid VMM, which interprets\n"
                   "  the guest's supervisor mode, can be built.\n");
    else if (!r->thm3_holds)
        fprintf(f, "  Neither theorem applies: trap-and-emulate alone cannot virtualize this\n"
                   "  machine. Rewrite the guest (binary translation, paravirtualization) or\n"
                   "  change the hardware (VT-x).\n");
}
