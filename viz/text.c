/* viz/text.c -- prints the event stream as a trace a student can read.
 *
 *    step     cycle ring pc        what
 *      12        41    3 00400008  syscall
 *      13        43    3 00400008  >> trap syscall (vector 0x80) from ring 3 -> 0x00001100, ring 0
 */
#include "viz/text.h"

#include "hypervisor/hv.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/isa.h"
#include "hypervisor/disk.h"

void viz_text_init(viz_text *t, FILE *out, unsigned show, int quiet) {
    memset(t, 0, sizeof *t);
    t->out = out;
    t->show = show;
    t->quiet = quiet;
    memset(t->shown, -1, sizeof t->shown);
    cpu_reader_init(&t->rd);
    /* blocks are expanded into instructions only when they are printed */
    t->rd.blocks = quiet ? READ_SKIP : (show & VIZ_SHOW_INSN) ? READ_INSNS : READ_CLOCK;
}

void viz_text_free(viz_text *t) {
    cpu_reader_free(&t->rd);
}

int viz_text_want_color(FILE *out) {
    const char *term = getenv("TERM");
    return isatty(fileno(out)) && !getenv("NO_COLOR") && term && strcmp(term, "dumb") != 0;
}

int viz_show_parse(const char *list, unsigned *mask, char *bad, size_t badlen) {
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"insn", VIZ_SHOW_INSN},   {"traps", VIZ_SHOW_TRAPS}, {"exits", VIZ_SHOW_EXITS},
                 {"io", VIZ_SHOW_IO},       {"sched", VIZ_SHOW_SCHED}, {"cow", VIZ_SHOW_COW},
                 {"notes", VIZ_SHOW_NOTES}, {"sens", VIZ_SHOW_SENS},   {"all", VIZ_SHOW_ALL}};
    unsigned m = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && strncmp(names[i].name, p, n) == 0) {
                m |= names[i].bit;
                found = 1;
            }
        if (!found) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return -1;
        }
        p += n;
        if (*p == ',') p++;
    }
    *mask = m;
    return 0;
}

/* The disk controller's events (hypervisor/disk.h); "hv: device model"
 * when the hypervisor emulated the disk of a VM. */
static void disk_text(const cpu_event *e, char *buf, size_t len) {
    int cmd = e->a & 0x0f, virt = !!(e->a & DISK_EV_VIRTUAL);
    const char *who = virt ? "   hv: device model: disk" : "   disk";
    const char *op = cmd == DISK_CMD_READ ? "read" : cmd == DISK_CMD_WRITE ? "write" : "command";
    switch (e->kind) {
    case EV_DISK_CMD:
        if (cmd == DISK_CMD_READ || cmd == DISK_CMD_WRITE)
            snprintf(buf, len, "%s: %s request, %u sector%s at sector %u %s %s 0x%08x", who, op, e->b,
                     e->b == 1 ? "" : "s", e->x, cmd == DISK_CMD_READ ? "into" : "from",
                     virt ? "guest-physical" : "physical", e->y);
        else
            snprintf(buf, len, "%s: command %d", who, cmd);
        break;
    case EV_DISK_DMA:
        if (cmd == DISK_CMD_READ)
            snprintf(buf, len, "%s: DMA %u bytes disk -> %s memory at 0x%08x", who, e->y,
                     virt ? "guest-physical" : "physical", e->x);
        else
            snprintf(buf, len, "%s: DMA %u bytes %s memory at 0x%08x -> disk", who, e->y,
                     virt ? "guest-physical" : "physical", e->x);
        break;
    default:
        if (e->b == DISK_E_BUSY)
            snprintf(buf, len, "%s: %s refused: %s", who, op, disk_error_name(e->b));
        else if (e->b)
            snprintf(buf, len, "%s: %s of sector %u failed: error %d, %s; completion interrupt", who,
                     op, e->x, e->b, disk_error_name(e->b));
        else
            snprintf(buf, len, "%s: %s of %u sector%s at sector %u done; completion interrupt", who,
                     op, e->y, e->y == 1 ? "" : "s", e->x);
        break;
    }
}

const char *viz_vector_name(int v, char *buf, size_t len) {
    switch (v) {
    case VEC_DE: return "#DE";
    case VEC_BP: return "#BP";
    case VEC_UD: return "#UD";
    case VEC_DF: return "#DF";
    case VEC_GP: return "#GP";
    case VEC_PF: return "#PF";
    case VEC_MC: return "#MC";
    case VEC_IRQ0: return "timer";
    case VEC_IRQ0 + DISK_IRQ: return "disk";
    case VEC_SYSCALL: return "syscall";
    }
    if (v > VEC_IRQ0 && v < VEC_IRQ0 + 32)
        snprintf(buf, len, "IRQ %d", v - VEC_IRQ0);
    else
        snprintf(buf, len, "vector %d", v);
    return buf;
}

static void mnem_of_word(uint32_t w0, char *buf, size_t len) {
    cpu_insn in = cpu_decode(w0, 0);
    snprintf(buf, len, "%s", in.op < OP_COUNT ? cpu_isa[in.op].mnem : "(invalid)");
}

static void pf_text(int bits, uint32_t addr, int from_ring, char *buf, size_t len) {
    const char *acc = (bits & 8) ? "fetch from" : (bits & 2) ? "write to" : "read of";
    const char *why = (bits & 1) ? "protected" : "not-present";
    snprintf(buf, len, "%s %s page at 0x%08x from ring %d", acc, why, addr, from_ring);
}

static void trap_text(const cpu_event *e, char *buf, size_t len, int intercepted) {
    char vb[24], mn[16], why[96] = "";
    int vec = e->a, cause = e->b & 0xf, ring = e->mode & EV_MODE_CPL;
    const char *vname = viz_vector_name(vec, vb, sizeof vb);
    switch (cause) {
    case CAUSE_PRIV:
        mnem_of_word(e->y, mn, sizeof mn);
        snprintf(why, sizeof why, ": privileged instruction '%s' at ring %d", mn, ring);
        break;
    case CAUSE_INT_DENIED:
        snprintf(why, sizeof why, ": 'int' to a kernel-only vector from ring %d", ring);
        break;
    case CAUSE_UD: snprintf(why, sizeof why, ": invalid opcode 0x%08x", e->y); break;
    case CAUSE_DE: snprintf(why, sizeof why, ": division by zero"); break;
    case CAUSE_PF:
        strcpy(why, ": ");
        pf_text(e->b >> 4, e->y, ring, why + 2, sizeof why - 2);
        break;
    case CAUSE_BUS:
        snprintf(why, sizeof why, ": physical address 0x%08x outside memory", e->y);
        break;
    case CAUSE_DF: {
        char b2[24];
        snprintf(why, sizeof why, ": could not deliver %s",
                 viz_vector_name((int)e->y, b2, sizeof b2));
        break;
    }
    case CAUSE_SOFT: snprintf(why, sizeof why, " from ring %d", ring); break;
    case CAUSE_IRQ: snprintf(why, sizeof why, " at ring %d", ring); break;
    default: break;
    }
    const char *what = cause == CAUSE_IRQ ? "interrupt" : "trap";
    char vnum[16];
    snprintf(vnum, sizeof vnum, vec >= 32 ? "0x%x" : "%d", vec);
    if (intercepted)
        snprintf(buf, len, ">> %s %s (vector %s)%s -> intercepted by the host", what, vname, vnum,
                 why);
    else if (e->x == 0)
        snprintf(buf, len, ">> %s %s (vector %s)%s -> no handler: vector table entry %d is 0", what,
                 vname, vnum, why, vec);
    else
        snprintf(buf, len, ">> %s %s (vector %s)%s -> handler 0x%08x, ring 0", what, vname, vnum,
                 why, e->x);
}

/* The paravirtual hypercalls (EV_HV_EMULATE with b == 3: a = the number;
 * hypervisor/pv.c). */
const char *viz_hypercall_name(int n) {
    static const char *const names[] = {
        NULL,           "console_write",    "set_if",     "set_timer", "iret",
        "set_trap_table", "set_kernel_stack", "mmu_update", "set_ptbr",  "block",
        "set_status",   "get_flags"};
    return n > 0 && n < (int)(sizeof names / sizeof names[0]) ? names[n] : "?";
}

static const char *port_name(uint32_t port) {
    switch (port) {
    case PORT_CONSOLE: return " (console)";
    case PORT_TIMER: return " (timer)";
    case DISK_PORT_CMD: return " (disk command)";
    case DISK_PORT_STATUS: return " (disk status)";
    case DISK_PORT_LBA: return " (disk sector)";
    case DISK_PORT_COUNT: return " (disk count)";
    case DISK_PORT_ADDR: return " (disk buffer)";
    case DISK_PORT_SIZE: return " (disk size)";
    default: return "";
    }
}

void viz_event_text(const cpu_stamped *s, char *buf, size_t len) {
    const cpu_event *e = &s->ev;
    char mn[16];
    switch (e->kind) {
    case EV_INSN: {
        cpu_insn in = cpu_decode(e->x, e->y);
        cpu_disasm(&in, e->pc, buf, len);
        break;
    }
    case EV_TRAP: trap_text(e, buf, len, 0); break;
    case EV_INTERCEPT: trap_text(e, buf, len, 1); break;
    case EV_IRET: snprintf(buf, len, "<< iret -> 0x%08x, ring %d", e->x, e->a); break;
    case EV_SENSITIVE:
        mnem_of_word(e->x, mn, sizeof mn);
        if (e->a == SILENT)
            snprintf(buf, len,
                     "!! sensitive '%s' ran at ring %d without trapping: its privileged effect was "
                     "silently dropped",
                     mn, e->mode & EV_MODE_CPL);
        else
            snprintf(
                buf, len,
                "!! sensitive '%s' ran at ring %d without trapping: it saw the real machine state",
                mn, e->mode & EV_MODE_CPL);
        break;
    case EV_IO: {
        uint32_t v = e->y;
        char ch[8] = "";
        if (e->x == PORT_CONSOLE && e->a) {
            unsigned c = v & 0xff;
            if (c >= 32 && c < 127)
                snprintf(ch, sizeof ch, " '%c'", (char)c);
            else if (c == '\n')
                snprintf(ch, sizeof ch, " '\\n'");
        }
        if (e->a)
            snprintf(buf, len, "   out port 0x%x%s <- 0x%x%s", e->x, port_name(e->x), v, ch);
        else
            snprintf(buf, len, "   in  port 0x%x%s -> 0x%x", e->x, port_name(e->x), v);
        break;
    }
    case EV_HALT: {
        uint64_t idle = e->x | (uint64_t)e->y << 32;
        if (idle)
            snprintf(buf, len, "   hlt: idle for %llu cycles until %s", (unsigned long long)idle,
                     e->a ? "a device's deadline (the disk)" : "the timer");
        else
            snprintf(buf, len, "   hlt: halted (nothing can wake the CPU)");
        break;
    }
    case EV_SHUTDOWN: snprintf(buf, len, "!! shutdown: triple fault, the machine is dead"); break;
    case EV_BREAK: snprintf(buf, len, "   breakpoint at 0x%08x", e->pc); break;
    case EV_POLICY:
        snprintf(buf, len, "   policy: '%s' at ring > 0 now does: %s",
                 e->a < OP_COUNT ? cpu_isa[e->a].mnem : "?", cpu_behaviour_name(e->b));
        break;
    case EV_EMULATE:
        mnem_of_word(e->x, mn, sizeof mn);
        snprintf(buf, len, "   emulated by the host: '%s' skipped", mn);
        break;
    case EV_TEXT: snprintf(buf, len, "%.*s", (int)s->text_len, s->text ? s->text : ""); break;
    case EV_VMEXIT: {
        static const struct {
            int r;
            const char *name;
        } reasons[] = {{VMX_EXIT_EXCEPTION, "exception"}, {VMX_EXIT_EXTINT, "external interrupt"},
                       {VMX_EXIT_INTWIN, "interrupt window"}, {VMX_EXIT_CPUID, "cpuid"},
                       {VMX_EXIT_HLT, "hlt"},                {VMX_EXIT_INVLPG, "invlpg"},
                       {VMX_EXIT_RDTSC, "rdtsc"},            {VMX_EXIT_VMCALL, "vmcall"},
                       {VMX_EXIT_VMX_INSN, "VMX instruction"}, {VMX_EXIT_CR, "control register"},
                       {VMX_EXIT_IO, "I/O instruction"},     {VMX_EXIT_DESC, "descriptor table"},
                       {VMX_EXIT_EPT, "EPT violation"}};
        const char *rn = "?";
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
            if (reasons[i].r == e->a) rn = reasons[i].name;
        if (e->a == VMX_EXIT_IO)
            snprintf(buf, len, ">> VM exit: %s (reason %d), port 0x%x%s", rn, e->a, e->x & 0xffff,
                     (e->x & 0x10000) ? " out" : " in");
        else if (e->a == VMX_EXIT_EPT)
            snprintf(buf, len, ">> VM exit: %s (reason %d), %s guest-physical 0x%08x%s (qualification 0x%x)",
                     rn, e->a, (e->x & EPT_QUAL_WRITE) ? "write to" : (e->x & EPT_QUAL_FETCH) ? "fetch from" : "read of",
                     e->y, (e->x & EPT_QUAL_READABLE) ? ", mapped read-only" : ", not mapped", e->x);
        else
            snprintf(buf, len, ">> VM exit: %s (reason %d), qualification 0x%x", rn, e->a, e->x);
        break;
    }
    case EV_VMENTRY:
        snprintf(buf, len, "<< VM entry (%s) of vm %u at 0x%08x, non-root mode", e->a ? "vmresume" : "vmlaunch",
                 e->x, e->pc);
        break;
    case EV_ASPACE: snprintf(buf, len, "   address space: page tables at 0x%08x", e->x); break;
    case EV_HV_EMULATE:
        mnem_of_word(e->x, mn, sizeof mn);
        if (e->b == 3)
            snprintf(buf, len, "   hv: hypercall %d (%s) -> 0x%x", e->a, viz_hypercall_name(e->a), e->y);
        else if (e->b == 1)
            snprintf(buf, len, "   hv: emulated '%s' with the scenario's own routine", mn);
        else if (e->b == 2)
            snprintf(buf, len, "   hv: callout from translated code: '%s' done on the virtual CPU, no trap", mn);
        else
            snprintf(buf, len, "   hv: emulated '%s' on the virtual CPU (result 0x%x)", mn, e->y);
        break;
    case EV_HV_REFLECT: {
        char vb[24];
        const char *vn = viz_vector_name(e->a, vb, sizeof vb);
        if (e->x)
            snprintf(buf, len, "   hv: reflected %s into the guest kernel -> guest handler 0x%08x", vn, e->x);
        else
            snprintf(buf, len, "   hv: the guest has no handler for %s", vn);
        break;
    }
    case EV_HV_INJECT: {
        char vb[24];
        snprintf(buf, len, "   hv: injected virtual interrupt %s", viz_vector_name(e->a, vb, sizeof vb));
        break;
    }
    case EV_HV_SHADOW:
        snprintf(buf, len, "   hv: shadow page table: guest page 0x%08x -> host frame 0x%08x", e->x,
                 e->y & PTE_FRAME);
        break;
    case EV_HV_PTWRITE:
        snprintf(buf, len, "   hv: the guest wrote its page table at 0x%08x: shadow dropped", e->x);
        break;
    case EV_HV_VMRUN: snprintf(buf, len, "   hv: vm %d runs on the CPU", e->a); break;
    case EV_HV_TRANSLATE:
        if (e->a == 0)
            snprintf(buf, len,
                     "   hv: translated kernel code page 0x%08x: %u blocks, %u critical instructions "
                     "rewritten into callouts",
                     e->x, e->y >> 16, e->y & 0xffff);
        else if (e->a == 1)
            snprintf(buf, len, "   hv: the guest wrote translated page 0x%08x: translation dropped", e->x);
        else
            snprintf(buf, len, "   hv: retranslated the store at 0x%08x into a callout (it kept trapping)",
                     e->pc);
        break;
    case EV_HV_IO: {
        char ch[8] = "";
        unsigned cv = e->y & 0xff;
        if (e->x == PORT_CONSOLE && e->a && cv >= 32 && cv < 127) snprintf(ch, sizeof ch, " '%c'", (char)cv);
        else if (e->x == PORT_CONSOLE && e->a && cv == '\n') snprintf(ch, sizeof ch, " '\\n'");
        snprintf(buf, len, "   hv: virtual %s port 0x%x%s %s 0x%x%s", e->a ? "out" : "in", e->x,
                 port_name(e->x), e->a ? "<-" : "->", e->y, ch);
        break;
    }
    case EV_HV_HALT:
        snprintf(buf, len,
                 e->x   ? "   hv: vm %d is finished"
                 : e->b ? "   hv: vm %d idles until its disk completes"
                        : "   hv: vm %d idles until its next tick",
                 e->a);
        break;
    case EV_HV_PCPU: snprintf(buf, len, "   hv: physical CPU %d takes its turn", e->a); break;
    case EV_HV_TO_HOST:
        if (e->a == HV_REQ_DISK)
            snprintf(buf, len, "   hv: world switch to the host: VMApp does vm %d's disk %s, %d sector%s at %u",
                     (int)e->x, (e->b & 3) == DISK_CMD_WRITE ? "write()" : "read()", (e->b >> 2) + 1,
                     e->b >> 2 ? "s" : "", e->y);
        else
            snprintf(buf, len, "   hv: world switch to the host: VMApp does vm %d's %s (port 0x%x)", (int)e->x,
                     e->a == 1 ? "console write" : "device access", e->y);
        break;
    case EV_HV_TO_VMM:
        if (e->x == 0xffffffffu)
            snprintf(buf, len, e->a ? "   hv: the host world stopped (VMDriver never switched)"
                                    : "   hv: VMApp powers the VMs on: world switch to the VMM");
        else
            snprintf(buf, len, e->a ? "   hv: the host world stopped (VMDriver never switched)"
                                    : "   hv: VMDriver switches back: world switch to the VMM, vm %d goes on",
                     (int)e->x);
        break;
    case EV_DISK_CMD:
    case EV_DISK_DMA:
    case EV_DISK_DONE: disk_text(e, buf, len); break;
    case EV_MEM_COW:
        if (e->b)
            snprintf(buf, len,
                     "   cow: vm %d wrote guest page 0x%08x: no one else maps frame 0x%x any more, write "
                     "permission restored",
                     e->a, e->x, e->y & 0xffff);
        else
            snprintf(buf, len,
                     "   cow: vm %d wrote shared guest page 0x%08x: copied frame 0x%x to frame 0x%x, "
                     "remapped writable",
                     e->a, e->x, e->y & 0xffff, e->y >> 16);
        break;
    case EV_MEM_CLONE:
        snprintf(buf, len, "   cow: vm %d cloned into vm %d: %u guest pages shared read-only", e->a, e->b, e->x);
        break;
    case EV_MEM_MERGE:
        snprintf(buf, len, "   cow: vm %d guest page 0x%08x (frame 0x%x) has the bytes of frame 0x%x: merged onto it, read-only",
                 e->a, e->x, e->y >> 16, e->y & 0xffff);
        break;
    case EV_MEM_FREE: snprintf(buf, len, "   cow: frame 0x%x is free", e->x); break;
    case EV_MEM_DESTROY:
        snprintf(buf, len, "   cow: vm %d destroyed: %u of the frames of its %u pages freed, the rest still shared",
                 e->a, e->x, e->y);
        break;
    case EV_MEM_SCAN:
        snprintf(buf, len, "   cow: sharing scan: %u guest pages, %u merged, %u hash collisions caught by the full compare",
                 e->x, e->y & 0xffff, e->y >> 16);
        break;
    default: snprintf(buf, len, "   event %s", cpu_event_kind_name(e->kind)); break;
    }
}

unsigned viz_event_class(const cpu_event *e) {
    switch (e->kind) {
    case EV_INSN: return VIZ_SHOW_INSN;
    case EV_IO: return VIZ_SHOW_IO;
    case EV_SENSITIVE: return VIZ_SHOW_SENS;
    case EV_POLICY:
    case EV_TEXT: return VIZ_SHOW_NOTES;
    case EV_CONTEXT:
    case EV_ASPACE:
    case EV_HV_VMRUN:
    case EV_HV_PCPU:
    case EV_HV_HALT: return VIZ_SHOW_SCHED;
    case EV_HV_TO_HOST:
    case EV_HV_TO_VMM: return VIZ_SHOW_EXITS | VIZ_SHOW_IO | VIZ_SHOW_SCHED; /* a world switch */
    case EV_INTERCEPT:
    case EV_EMULATE:
    case EV_VMEXIT:
    case EV_VMENTRY: return VIZ_SHOW_EXITS;
    case EV_HV_IO: return VIZ_SHOW_EXITS | VIZ_SHOW_IO; /* a virtual device */
    case EV_DISK_CMD:
    case EV_DISK_DMA:
    case EV_DISK_DONE: /* the device model of a VM is the hypervisor's work too */
        return (e->a & DISK_EV_VIRTUAL) ? VIZ_SHOW_EXITS | VIZ_SHOW_IO : VIZ_SHOW_IO;
    default:
        if (e->kind >= EV_MEM_COW && e->kind < EV_MEM_LAST) return VIZ_SHOW_COW;
        if (e->kind >= EV_HV_EMULATE && e->kind < EV_HV_LAST) return VIZ_SHOW_EXITS;
        return VIZ_SHOW_TRAPS;
    }
}

int viz_event_by_hv(const cpu_event *e) {
    return (e->kind >= EV_HV_EMULATE && e->kind < EV_HV_LAST) || (e->kind >= EV_MEM_COW && e->kind < EV_MEM_LAST) ||
           (e->kind == EV_ASPACE && e->a) ||
           (e->kind >= EV_DISK_CMD && e->kind < EV_DISK_LAST && (e->a & DISK_EV_VIRTUAL));
}

static void columns(viz_text *t) {
    if (t->columns_done) return;
    t->columns_done = 1;
    fprintf(t->out, "%7s %9s %4s %-8s  %s\n", "step", "cycle", "ring", "pc", "what");
}

/* ANSI colours, only when t->color */
#define C_RESET "\033[0m"
static const char *color_of(const cpu_event *e) {
    switch (e->kind) {
    case EV_TRAP: return (e->b & 0xf) == CAUSE_IRQ ? "\033[1;35m" : "\033[1;33m";
    case EV_INTERCEPT:
    case EV_EMULATE:
    case EV_VMEXIT:
    case EV_VMENTRY: return "\033[1;36m";
    case EV_IRET: return "\033[36m";
    case EV_SENSITIVE:
    case EV_SHUTDOWN: return "\033[1;31m";
    case EV_IO:
    case EV_DISK_CMD:
    case EV_DISK_DMA:
    case EV_DISK_DONE: return "\033[32m";
    case EV_ASPACE: return "\033[1;34m";
    case EV_TEXT:
    case EV_POLICY:
    case EV_HALT:
    case EV_BREAK: return "\033[2m";
    default: return NULL;
    }
}

static void line(viz_text *t, const cpu_stamped *s, const char *text) {
    const cpu_event *e = &s->ev;
    columns(t);
    int m = t->machine & 63;
    if (t->multi[m] && t->pcpu[m] != t->shown[m]) {
        /* a machine with several physical CPUs: say which one the next lines are on */
        fprintf(t->out, t->color ? "\033[2m-- on physical CPU %d" C_RESET "\n" : "-- on physical CPU %d\n",
                t->pcpu[m]);
        t->shown[m] = t->pcpu[m];
    }
    if (viz_event_by_hv(e)) { /* the hypervisor acted */
        const char *col = t->color ? "\033[1;36m" : "";
        fprintf(t->out, "%7llu %9llu %4s %08x  %s%s%s\n", (unsigned long long)s->step,
                (unsigned long long)s->cycle, "hv", e->pc, col, text, t->color ? C_RESET : "");
        return;
    }
    int cpl = e->mode & EV_MODE_CPL;
    /* g: a VT-x guest (non-root); h: the host world of a hosted VMM */
    const char *g = (e->mode & EV_MODE_NONROOT) ? "g" : (e->mode & EV_MODE_HOSTWORLD) ? "h" : "";
    const char *col = t->color ? color_of(e) : NULL;
    if (t->color)
        fprintf(t->out, "%7llu %9llu %3s%s%d" C_RESET " %08x  %s%s%s\n", (unsigned long long)s->step,
                (unsigned long long)s->cycle, g, cpl == 0 ? "\033[31m" : cpl == 3 ? "\033[32m" : "", cpl,
                e->pc, col ? col : "", text, col ? C_RESET : "");
    else
        fprintf(t->out, "%7llu %9llu %3s%d %08x  %s\n", (unsigned long long)s->step,
                (unsigned long long)s->cycle, g, cpl, e->pc, text);
}

static int is_question(const cpu_event *e) {
    return e->kind == EV_TRAP || e->kind == EV_INTERCEPT || e->kind == EV_IRET ||
           e->kind == EV_SENSITIVE || e->kind == EV_VMEXIT;
}

static const char *question_of(const cpu_event *e) {
    switch (e->kind) {
    case EV_IRET: return "where does iret return, and in which ring does the program go on?";
    case EV_SENSITIVE: return "what happens when this runs here: a trap, or not? what does it do?";
    case EV_VMEXIT:
        return "the guest runs in VMX non-root mode: does this leave the VM? with which exit "
               "reason, and what does the hypervisor do?";
    default:
        if ((e->b & 0xf) == CAUSE_IRQ)
            return "an interrupt is pending here: what happens? (vector, handler, ring)";
        return "what happens next: a trap? which vector and handler, and which ring?";
    }
}

/* --quiz: only questions, each under the instruction it is about */
static void quiz_one(viz_text *t, const cpu_stamped *s) {
    const cpu_event *e = &s->ev;
    if (e->kind == EV_INSN) {
        t->last_insn = *s;
        t->have_last = 1;
        t->follow = 0; /* the program goes on: the answer is complete */
        return;
    }
    if (e->kind == EV_TEXT && e->a == TEXT_HEADER) {
        fprintf(t->out, "# %.*s\n# quiz: %s\n", (int)s->text_len, s->text,
                t->quiz == VIZ_QUIZ_ANSWER ? "questions and answers"
                                           : "questions only; run again with --answers to check yours");
        return;
    }
    if (e->kind == EV_TEXT && (e->a == TEXT_NOTE || e->a == TEXT_MACHINE)) {
        fprintf(t->out, "-- %.*s\n", (int)s->text_len, s->text);
        return;
    }
    if (e->kind == EV_TEXT && e->a == TEXT_SUMMARY && t->quiz == VIZ_QUIZ_ANSWER) {
        fwrite(s->text, 1, s->text_len, t->out);
        return;
    }
    char text[256];
    if (!is_question(e)) {
        /* --answers: what the hypervisor did about it belongs to the answer */
        if (t->follow && t->quiz == VIZ_QUIZ_ANSWER && viz_event_by_hv(e) && e->kind != EV_HV_PCPU) {
            viz_event_text(s, text, sizeof text);
            fprintf(t->out, "%31sA%d: %s\n", "", t->follow, text);
        }
        return;
    }
    if (t->have_last && t->last_insn.step == s->step) { /* the instruction the question is about */
        viz_event_text(&t->last_insn, text, sizeof text);
        line(t, &t->last_insn, text);
    }
    t->have_last = 0;
    t->questions++;
    fprintf(t->out, "%31s?? Q%d: %s\n", "", t->questions, question_of(e));
    if (t->quiz == VIZ_QUIZ_ANSWER) {
        viz_event_text(s, text, sizeof text);
        fprintf(t->out, "%31sA%d: %s\n", "", t->questions, text);
    }
    t->follow = t->questions;
}

static void print_one(void *ud, const cpu_stamped *s) {
    viz_text *t = ud;
    const cpu_event *e = &s->ev;
    if (e->kind == EV_TEXT && e->a == TEXT_PRINT) { /* the scenario's own output, verbatim */
        fwrite(s->text, 1, s->text_len, t->out);
        return;
    }
    if (t->quiet) return;
    if (t->quiz) {
        quiz_one(t, s);
        return;
    }
    if (e->kind == EV_TEXT && e->a == TEXT_SUMMARY) {
        fwrite(s->text, 1, s->text_len, t->out);
        return;
    }
    if (e->kind == EV_TEXT && e->a == TEXT_HEADER) {
        fprintf(t->out, "# %.*s\n", (int)s->text_len, s->text);
        return;
    }
    if (e->kind == EV_HV_PCPU) { /* not a line: lines after it say "-- on physical CPU n" */
        t->multi[t->machine & 63] = 1;
        t->pcpu[t->machine & 63] = (int8_t)e->a;
        return;
    }
    unsigned cls = viz_event_class(e);
    if (!(cls & t->show)) return;
    if (e->kind == EV_CONTEXT) {
        t->machine = e->a;
        return;
    }
    char text[256];
    viz_event_text(s, text, sizeof text);
    if (e->kind == EV_TEXT) {
        if (t->color)
            fprintf(t->out, "\033[2m-- %s" C_RESET "\n", text);
        else
            fprintf(t->out, "-- %s\n", text);
        return;
    }
    line(t, s, text);
}

static void print_cb(void *ud, const cpu_stamped *s) {
    print_one(ud, s);
}

void viz_text_sink(void *ud, const cpu_event *ev, size_t n) {
    viz_text *t = ud;
    cpu_reader_feed(&t->rd, ev, n, print_cb, t);
}
