/* viz/dot.c -- `vlab export`: a recorded run drawn with Graphviz (see dot.h).
 *
 * Both views read the one event stream through a cpu_trace_reader, build a
 * small model of their own (lanes, stays and numbered transitions; or spans
 * and marks per CPU), then turn the model into a cgraph graph.  Nothing here
 * prints DOT by hand: the `dot` format is agwrite() of the graph before
 * layout, the other formats are gvLayout() + gvRenderFilename().
 *
 * The trap diagram is a swimlane picture in the style of the lecture's
 * slides ("Recap: what runs in user / kernel mode", "App scheduling with
 * VMs", "Reading from disk"): a lane per layer of the system, a box for each
 * stay of control in a lane, and one numbered arrow per transition.  With
 * rankdir=LR each lane is one rank (a column: rank=same inside a cluster),
 * and time runs down each column along a chain of "lifeline" edges.  The
 * columns are ordered by invisible anchor edges; the transitions are
 * constraint=false, so they never reorder the lanes.  A block of transitions
 * that repeats three times or more in a row (a loop: one system call per
 * character, one VM exit per `out`) is folded into one block marked "xN".
 *
 * The schedule timeline places its nodes itself (the nop2 layout, as
 * `neato -n2`): x is the cycle, one row per physical CPU. */
#include "viz/dot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cgraph.h>
#include <gvc.h>

#include "cpu/cpu.h"
#include "hypervisor/disk.h" /* the disk's ports and event encoding */
#include "hypervisor/hv.h"   /* a hosted VMM's requests to VMApp */
#include "cpu/isa.h"
#include "viz/text.h"

#define FONT "Helvetica,Arial,sans-serif"
#define NOT_YET UINT64_MAX

/* ---- names of views and formats -------------------------------------------------------- */

static const char *const view_names[] = {"traps", "schedule"};
static const char *const format_names[] = {"dot", "svg", "png", "pdf"};

void viz_export_opts_default(viz_export_opts *o) {
    memset(o, 0, sizeof *o);
    o->view = VIZ_VIEW_TRAPS;
    o->format = VIZ_FORMAT_DOT;
    o->to = UINT64_MAX;
    o->machine = -1;
}

static int word_index(const char *w, const char *const *names, int n) {
    for (int i = 0; w && i < n; i++)
        if (strcmp(w, names[i]) == 0) return i;
    return -1;
}

int viz_export_view_parse(const char *word, int *view) {
    int i = word_index(word, view_names, 2);
    if (i < 0) return -1;
    *view = i;
    return 0;
}

int viz_export_format_parse(const char *word, int *format) {
    int i = word_index(word, format_names, 4);
    if (i < 0) return -1;
    *format = i;
    return 0;
}

int viz_export_format_of_path(const char *file, int *format) {
    const char *dot = strrchr(file, '.');
    if (!dot || strchr(dot, '/')) return -1;
    return viz_export_format_parse(dot + 1, format);
}

const char *viz_export_view_name(int view) {
    return view >= 0 && view < 2 ? view_names[view] : "?";
}

const char *viz_export_format_name(int format) {
    return format >= 0 && format < 4 ? format_names[format] : "?";
}

/* ---- small text helpers ---------------------------------------------------------------- */

/* Append printf-style text to buf (always NUL-terminated, truncated if full). */
static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t len, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Copy a string, truncated to the buffer. */
static void copy(char *dst, size_t len, const char *src) {
    size_t n = strlen(src);
    if (n >= len) n = len - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Text for a Graphviz escString (label, tooltip): a backslash starts an escape
 * there (\n, \N, \G...), so a real one is doubled. */
static void cat_esc(char *buf, size_t len, const char *text) {
    size_t used = strlen(buf);
    for (const char *p = text; *p && used + 2 < len; p++) {
        if (*p == '\\') buf[used++] = '\\';
        buf[used++] = *p;
    }
    buf[used] = 0;
}

/* Text for an HTML-like label. */
static void cat_html(char *buf, size_t len, const char *text) {
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '&': cat(buf, len, "&amp;"); break;
        case '<': cat(buf, len, "&lt;"); break;
        case '>': cat(buf, len, "&gt;"); break;
        case '"': cat(buf, len, "&quot;"); break;
        default: cat(buf, len, "%c", *p); break;
        }
    }
}

static void cat_u64(char *buf, size_t len, uint64_t v) {
    cat(buf, len, "%llu", (unsigned long long)v);
}

/* The trace's own wording of an event, for tooltips. */
static void event_tip(const cpu_stamped *s, char *buf, size_t len) {
    char text[256];
    viz_event_text(s, text, sizeof text);
    const char *t = text;
    while (*t == ' ')
        t++;
    buf[0] = 0;
    cat(buf, len, "step %llu, cycle %llu: ", (unsigned long long)s->step,
        (unsigned long long)s->cycle);
    cat_esc(buf, len, t);
}

static const char *mnem_of(uint32_t word0) {
    cpu_insn in = cpu_decode(word0, 0);
    return in.op < OP_COUNT ? cpu_isa[in.op].mnem : "(invalid)";
}

/* A byte as it shows in a label ("h", "\n"), escaped for an escString. */
static void byte_text(unsigned b, char *buf, size_t len) {
    if (b == '\n')
        snprintf(buf, len, "\\\\n");
    else if (b == '\\')
        snprintf(buf, len, "\\\\\\\\");
    else if (b >= 32 && b < 127)
        snprintf(buf, len, "%c", (char)b);
    else
        snprintf(buf, len, "\\\\x%02x", b);
}

/* A trap in a few words: "syscall (int 0x80)", "#GP cli", "timer IRQ".  The
 * brief form leaves addresses out (folded loops, schedule marks). */
static void trap_words(int vec, int bcode, uint32_t y, int brief, char *buf, size_t len) {
    char vb[24];
    int cause = bcode & 0xf;
    const char *vname = viz_vector_name(vec, vb, sizeof vb);
    buf[0] = 0;
    switch (cause) {
    case CAUSE_SOFT:
        if (vec == VEC_SYSCALL)
            cat(buf, len, brief ? "syscall" : "syscall (int 0x80)");
        else if (vec == VEC_BP)
            cat(buf, len, "#BP breakpoint");
        else
            cat(buf, len, vec >= 32 ? "int 0x%x" : "int %d", vec);
        break;
    case CAUSE_PRIV: cat(buf, len, "%s %s", vname, mnem_of(y)); break;
    case CAUSE_INT_DENIED: cat(buf, len, "#GP int denied"); break;
    case CAUSE_UD: cat(buf, len, "#UD invalid opcode"); break;
    case CAUSE_DE: cat(buf, len, "#DE divide by zero"); break;
    case CAUSE_PF: {
        int bits = bcode >> 4;
        cat(buf, len, "#PF %s", (bits & 8) ? "fetch" : (bits & 2) ? "write" : "read");
        if (!brief) cat(buf, len, " 0x%08x", y);
        break;
    }
    case CAUSE_BUS: cat(buf, len, "#MC bus error"); break;
    case CAUSE_IRQ: cat(buf, len, vec == VEC_IRQ0 ? "timer IRQ" : "%s", vname); break;
    case CAUSE_DF: {
        char b2[24];
        cat(buf, len, "#DF");
        if (!brief)
            cat(buf, len, " (could not deliver %s)", viz_vector_name((int)y, b2, sizeof b2));
        break;
    }
    default: cat(buf, len, "%s", vname); break;
    }
}

/* A VM exit in a few words (Intel SDM vol. 3C, appendix C: basic exit reasons). */
static void vmexit_words(const cpu_event *e, int brief, char *buf, size_t len) {
    char vb[24];
    buf[0] = 0;
    cat(buf, len, "VM exit: ");
    switch (e->a) {
    case VMX_EXIT_EXCEPTION: cat(buf, len, "%s", viz_vector_name(e->b, vb, sizeof vb)); break;
    case VMX_EXIT_EXTINT: cat(buf, len, e->x == 0 ? "timer IRQ" : "IRQ %u", e->x); break;
    case VMX_EXIT_INTWIN: cat(buf, len, "interrupt window"); break;
    case VMX_EXIT_CPUID: cat(buf, len, "cpuid"); break;
    case VMX_EXIT_HLT: cat(buf, len, "hlt"); break;
    case VMX_EXIT_INVLPG: cat(buf, len, "invlpg"); break;
    case VMX_EXIT_RDTSC: cat(buf, len, "rdtsc"); break;
    case VMX_EXIT_VMCALL: cat(buf, len, "vmcall"); break;
    case VMX_EXIT_VMX_INSN: cat(buf, len, "VMX instruction"); break;
    case VMX_EXIT_CR: cat(buf, len, "control register"); break;
    case VMX_EXIT_IO:
        cat(buf, len, "%s 0x%x", (e->x & 0x10000) ? "out" : "in", e->x & 0xffff);
        break;
    case VMX_EXIT_DESC: cat(buf, len, "descriptor table"); break;
    case VMX_EXIT_EPT:
        cat(buf, len, "EPT violation");
        if (!brief) cat(buf, len, " 0x%08x", e->y); /* the guest-physical address */
        break;
    default: cat(buf, len, "reason %d", e->a); break;
    }
}

/* ==== the lanes: one table ============================================================== */

/* Every layer of the system a transition can come from or go to, in the order
 * of the columns (each machine's lanes together, its guests' lanes first,
 * one pair per VM). */
enum lane_role {
    LANE_GUEST_USER, /* a guest's applications: ring 3 in a VM */
    LANE_GUEST_OS,   /* a guest's kernel: rings 0-2 in VMX non-root, or deprivileged to ring 1 */
    LANE_USER,       /* ring 3 on bare metal */
    LANE_KERNEL,     /* rings 0-2 on bare metal */
    LANE_MONITOR,    /* the scenario's Lua trap handlers: trap-and-emulate done on the host */
    LANE_HYPERVISOR, /* hypervisor/: the VMM on the real machine */
    LANE_HOST_APP,   /* VMApp: the hosted VMM's user process on the host OS */
    LANE_HOST_OS,    /* the host OS of a hosted VMM (world switches) */
    LANE_HW,         /* devices, the timer, interrupts */
    LANE_ROLES
};

static const struct lane_role_info {
    const char *id;          /* in node and cluster names */
    const char *title;       /* the lane's heading */
    const char *note;        /* its second line, for lanes without rings */
    const char *fill, *line; /* background and border */
} lane_roles[LANE_ROLES] = {
    [LANE_GUEST_USER] = {"guest_user", "guest application", NULL, "#e3eefa", "#8fb3de"},
    [LANE_GUEST_OS] = {"guest_os", "guest OS", NULL, "#fdebd3", "#e0a860"},
    [LANE_USER] = {"user", "user application", NULL, "#e3eefa", "#8fb3de"},
    [LANE_KERNEL] = {"kernel", "kernel (OS)", NULL, "#fdebd3", "#e0a860"},
    [LANE_MONITOR] = {"monitor", "host monitor (Lua)", "the scenario's trap handlers", "#efe4f7",
                      "#a98cc4"},
    [LANE_HYPERVISOR] = {"hypervisor", "hypervisor", "the VMM", "#efe4f7", "#a98cc4"},
    [LANE_HOST_APP] = {"host_app", "VMApp", NULL, "#e3f5f0", "#7fbfae"},
    [LANE_HOST_OS] = {"host_os", "host OS", NULL, "#e4f3e4", "#8cc48c"},
    [LANE_HW] = {"hw", "hardware", "devices, timer", "#ececec", "#a0a0a0"},
};

/* Lanes without rings that hand control back to the guest (the host OS of
 * a hosted VMM is a CPU lane with rings, like a kernel). */
static int is_host_role(int role) { return role == LANE_MONITOR || role == LANE_HYPERVISOR; }

/* How arrows look, by what they mean. */
enum arrow_style { AR_ENTER, AR_IRQ, AR_RETURN, AR_HOST, AR_IO, AR_STYLES };

static const struct arrow_info {
    const char *color;
    const char *style;
    const char *legend;
} arrows[AR_STYLES] = {
    [AR_ENTER] = {"#c0392b", "solid", "syscall or trap into the kernel"},
    [AR_IRQ] = {"#d35400", "solid", "interrupt"},
    [AR_RETURN] = {"#2a6fbf", "solid", "return"},
    [AR_HOST] = {"#7d3c98", "solid", "to and from the hypervisor / host"},
    [AR_IO] = {"#555555", "dashed", "device access"},
};

/* ==== transitions: one table ============================================================ */

/* Where an arrow starts or ends. */
enum lane_sel {
    SEL_NONE,
    SEL_MODE,     /* the lane of the event's mode (its ring, root or guest) */
    SEL_TRAP_SRC, /* the hardware for an interrupt; the host lane when control is there
                   * (reflection, injection); else the mode */
    SEL_HANDLER,  /* ring 0 of the event's mode: the kernel, or the guest OS */
    SEL_RING_A,   /* the lane of ring e->a (iret's new CPL) */
    SEL_HOST,     /* the host lane: the hypervisor, or the Lua monitor */
    SEL_GUEST_OS, /* the guest OS of the VM on the CPU */
    SEL_RESUME,   /* wherever the guest runs next: drawn at its next event */
    SEL_HW,       /* the machine's hardware */
    SEL_HOST_WORLD /* a hosted VMM's host OS */
};

/* What the event draws. */
enum trans_act {
    ACT_MOVE,  /* control moves: an arrow from `from` to `to` */
    ACT_TOUCH, /* a device is used, control stays: an arrow to a hardware box */
    ACT_MARK,  /* a mark in the `from` lane (a sensitive instruction, a halt) */
    ACT_NOTE,  /* a line in the host's box (a shadow page filled, a world switch) */
    ACT_DEFER  /* control goes back to the guest: drawn when it runs again */
};

/* One row per event kind that moves control or marks a lane; what each says
 * is in describe().  Kinds of a future layer (devices, 64-95) add rows. */
static const struct trans_rule {
    uint8_t kind;
    uint8_t from, to; /* enum lane_sel */
    uint8_t act;      /* enum trans_act */
    uint8_t arrow;    /* enum arrow_style */
} rules[] = {
    /* the bare machine (cpu/) */
    {EV_TRAP, SEL_TRAP_SRC, SEL_HANDLER, ACT_MOVE, AR_ENTER},  /* syscall, exception, IRQ */
    {EV_IRET, SEL_MODE, SEL_RING_A, ACT_MOVE, AR_RETURN},      /* return */
    {EV_IO, SEL_MODE, SEL_HW, ACT_TOUCH, AR_IO},               /* port I/O */
    {EV_HALT, SEL_MODE, SEL_HW, ACT_TOUCH, AR_IO},             /* hlt until the timer */
    {EV_SENSITIVE, SEL_MODE, SEL_NONE, ACT_MARK, AR_IO},       /* ran without trapping */
    {EV_SHUTDOWN, SEL_MODE, SEL_NONE, ACT_MARK, AR_IO},        /* triple fault */
    {EV_INTERCEPT, SEL_TRAP_SRC, SEL_HOST, ACT_MOVE, AR_HOST}, /* trap to the host */
    {EV_EMULATE, SEL_HOST, SEL_RESUME, ACT_DEFER, AR_HOST},    /* emulation (Lua) */
    {EV_VMEXIT, SEL_TRAP_SRC, SEL_HOST, ACT_MOVE, AR_HOST},    /* VM exit */
    {EV_VMENTRY, SEL_HOST, SEL_RESUME, ACT_DEFER, AR_HOST},    /* VM entry */
    /* the hypervisor (hypervisor/, kinds 32-63) */
    {EV_HV_EMULATE, SEL_HOST, SEL_RESUME, ACT_DEFER, AR_HOST},  /* emulation */
    {EV_HV_REFLECT, SEL_HOST, SEL_GUEST_OS, ACT_MOVE, AR_HOST}, /* reflection */
    {EV_HV_INJECT, SEL_HOST, SEL_RESUME, ACT_DEFER, AR_IRQ},    /* interrupt injection */
    {EV_HV_SHADOW, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST},      /* shadow page table */
    {EV_HV_PTWRITE, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST},     /* guest page-table write */
    {EV_HV_TRANSLATE, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST},   /* binary translation */
    {EV_HV_VMRUN, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST},       /* VM switch */
    {EV_HV_IO, SEL_HOST, SEL_HW, ACT_TOUCH, AR_IO},             /* virtual device */
    {EV_HV_HALT, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST},        /* a VM idles or ends */
    {EV_HV_TO_HOST, SEL_HOST, SEL_HOST_WORLD, ACT_MOVE, AR_HOST}, /* world switch (hosted) */
    {EV_HV_TO_VMM, SEL_MODE, SEL_HOST, ACT_MOVE, AR_HOST},        /* and back */
};

/* The disk controller's registers (hypervisor/disk.h, docs/devices.md). */
static const char *disk_port_word(uint32_t p) {
    switch (p) {
    case DISK_PORT_CMD: return "disk command";
    case DISK_PORT_STATUS: return "disk status";
    case DISK_PORT_LBA: return "disk sector";
    case DISK_PORT_COUNT: return "disk count";
    case DISK_PORT_ADDR: return "disk buffer";
    case DISK_PORT_SIZE: return "disk size";
    default: return NULL;
    }
}

/* ==== the trap diagram: model =========================================================== */

enum node_kind { N_STAY, N_HW, N_WARN, N_END };
enum item_kind { IT_EDGE, IT_MARK, IT_NOTE };

typedef struct tlane {
    int role, machine, vm;
    unsigned rings; /* CPL bits seen */
    int last;       /* its newest node, or -1 */
} tlane;

typedef struct tnode {
    int lane, kind;
    int prev;        /* the node above it in its lane, or -1 */
    int item;        /* a mark: its item */
    uint64_t s0, s1; /* a stay: its steps */
    uint64_t c0, c1; /* and cycles */
    char words[128]; /* a mark's words, a hardware box's label */
    char tip[320];
} tnode;

typedef struct tedge {
    int tail, head, arrow, item;
    char words[96];
    char tip[320];
    char io_text[48]; /* the console bytes of an `out` (and of its folded repeats) */
} tedge;

/* One numbered thing in the picture: an arrow, a mark or a note.  Its number
 * is its index + 1; count > 1 when a loop was folded into it. */
typedef struct titem {
    int kind, ref;
    int node0, edge0; /* nodes and edges before it: undone when it is folded */
    int count;
    int tail_lane, head_lane;
    char key[64];   /* its words without the parts that change from one repeat to the next */
    char words[96]; /* a note's words */
    char tip[320];  /* a note's event */
} titem;

typedef struct tmach {
    int ctrl;        /* lane that has control, or -1 */
    int node;        /* its stay node, or -1 while not drawn yet */
    uint64_t s0, c0; /* when control arrived */
    int hlt_node;    /* the hardware box a hlt waits on, or -1 */
    int hv;          /* a hypervisor runs this machine (its events were seen) */
    int vm;          /* the VM on its CPU */
    int resume;      /* control is due back in the guest; drawn at its next event */
    int resume_arrow, resume_tip_set;
    char resume_words[80], resume_key[64], resume_tip[320];
    int inject; /* and that return delivers an interrupt */
    int hosted; /* a hosted VMM: VMApp does the device I/O in the host world */
    int vmapp_did; /* a world switch took the next virtual device access to VMApp */
    uint64_t steps;
} tmach;

typedef struct tmodel {
    const viz_export_opts *o;
    tlane *lanes;
    int nlanes, lcap;
    tnode *nodes;
    int nnodes, ncap;
    tedge *edges;
    int nedges, ecap;
    titem *it;
    int nit, itcap;
    tmach *m;
    int nm;
    int cur;  /* machine of the events (EV_CONTEXT) */
    int draw; /* the event being read is inside the window */
    int max, cut;
    uint64_t last;  /* step of the newest item */
    uint64_t total; /* steps of the run (the longest machine) */
    unsigned used_arrows;
    char header[200]; /* the run's parameters (EV_TEXT TEXT_HEADER) */
} tmodel;

static void *grow(void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (!q) abort(); /* a picture of a few hundred items at most */
    *cap = c;
    return q;
}

static tmach *tm_machine(tmodel *t, int id) {
    if (id >= t->nm) {
        tmach *p = realloc(t->m, (size_t)(id + 1) * sizeof *p);
        if (!p) abort();
        for (int i = t->nm; i <= id; i++)
            p[i] = (tmach){.ctrl = -1, .node = -1, .hlt_node = -1};
        t->m = p;
        t->nm = id + 1;
    }
    return &t->m[id];
}

static int tm_lane(tmodel *t, int role, int vm) {
    int machine = t->cur;
    if (role != LANE_GUEST_USER && role != LANE_GUEST_OS) vm = -1;
    for (int i = 0; i < t->nlanes; i++)
        if (t->lanes[i].role == role && t->lanes[i].machine == machine && t->lanes[i].vm == vm)
            return i;
    t->lanes = grow(t->lanes, &t->lcap, t->nlanes + 1, sizeof *t->lanes);
    t->lanes[t->nlanes] = (tlane){.role = role, .machine = machine, .vm = vm, .last = -1};
    return t->nlanes++;
}

/* The lane of the code running in a mode (the EV_* mode byte). */
static int lane_of_mode(tmodel *t, tmach *ms, int mode) {
    int cpl = mode & EV_MODE_CPL, role;
    if (mode & EV_MODE_HOSTWORLD) /* a hosted VMM's host world: VMApp on the host OS */
        role = cpl == 3 ? LANE_HOST_APP : LANE_HOST_OS;
    else if (mode & EV_MODE_NONROOT) /* VT-x: the guest keeps its rings */
        role = cpl == 3 ? LANE_GUEST_USER : LANE_GUEST_OS;
    else if (ms->hv) /* trap-and-emulate: the guest kernel is deprivileged to ring 1 */
        role = cpl == 3 ? LANE_GUEST_USER : cpl == 0 ? LANE_HYPERVISOR : LANE_GUEST_OS;
    else
        role = cpl == 3 ? LANE_USER : LANE_KERNEL;
    int lane = tm_lane(t, role, ms->vm);
    if (!is_host_role(role)) t->lanes[lane].rings |= 1u << cpl;
    return lane;
}

static int tm_node(tmodel *t, int lane, int kind) {
    t->nodes = grow(t->nodes, &t->ncap, t->nnodes + 1, sizeof *t->nodes);
    tnode *n = &t->nodes[t->nnodes];
    memset(n, 0, sizeof *n);
    n->lane = lane;
    n->kind = kind;
    n->prev = t->lanes[lane].last;
    n->item = -1;
    n->s1 = n->c1 = NOT_YET;
    t->lanes[lane].last = t->nnodes;
    return t->nnodes++;
}

/* Control moves to lane at (step, cycle): the stay it leaves ends there. */
static void tm_enter(tmodel *t, tmach *ms, int lane, const cpu_stamped *s) {
    if (ms->node >= 0 && t->nodes[ms->node].s1 == NOT_YET) {
        t->nodes[ms->node].s1 = s->step;
        t->nodes[ms->node].c1 = s->cycle;
    }
    ms->ctrl = lane;
    ms->node = -1;
    ms->s0 = s->step;
    ms->c0 = s->cycle;
}

/* The stay box of the lane in control, drawn on first use. */
static int tm_stay(tmodel *t, tmach *ms) {
    if (ms->node < 0) {
        ms->node = tm_node(t, ms->ctrl, N_STAY);
        t->nodes[ms->node].s0 = ms->s0;
        t->nodes[ms->node].c0 = ms->c0;
    }
    return ms->node;
}

/* Start a numbered item; -1 when the picture is full (then it is cut). */
static int tm_begin(tmodel *t, const cpu_stamped *s) {
    if (t->nit >= t->max) {
        t->cut = 1;
        return -1;
    }
    t->it = grow(t->it, &t->itcap, t->nit + 1, sizeof *t->it);
    memset(&t->it[t->nit], 0, sizeof t->it[t->nit]);
    t->it[t->nit].node0 = t->nnodes;
    t->it[t->nit].edge0 = t->nedges;
    t->it[t->nit].count = 1;
    t->last = s->step;
    return t->nit++;
}

static int tm_edge(tmodel *t, int item, int tail, int head, int arrow, const char *words,
                   const char *tip) {
    t->edges = grow(t->edges, &t->ecap, t->nedges + 1, sizeof *t->edges);
    tedge *e = &t->edges[t->nedges];
    memset(e, 0, sizeof *e);
    e->tail = tail;
    e->head = head;
    e->arrow = arrow;
    e->item = item;
    copy(e->words, sizeof e->words, words);
    copy(e->tip, sizeof e->tip, tip);
    t->used_arrows |= 1u << arrow;
    return t->nedges++;
}

/* ---- folding loops ---------------------------------------------------------------------- */

static int blocks_equal(const tmodel *t, int a, int b, int k) {
    for (int j = 0; j < k; j++) {
        const titem *x = &t->it[a + j], *y = &t->it[b + j];
        if (x->kind != y->kind || x->tail_lane != y->tail_lane || x->head_lane != y->head_lane ||
            strcmp(x->key, y->key) != 0 || x->count != t->it[a].count || y->count != 1)
            return 0;
    }
    return 1;
}

static int map_node(int *map, int base, int from, int to) {
    if (from < base) return 0; /* an older node: not undone */
    if (map[from - base] >= 0 && map[from - base] != to) return -1;
    map[from - base] = to;
    return 0;
}

/* Fold the last block b (k items) into the equal block a just before it:
 * a's counts go up, b's nodes and edges are undone, and control is put back
 * in the box of a that stands for where b left it. */
static int fold_block(tmodel *t, tmach *ms, int a, int b, int k) {
    int base = t->it[b].node0, n = t->nnodes - base, ok = 1;
    int *map = malloc((size_t)(n ? n : 1) * sizeof *map);
    if (!map) return 0;
    for (int i = 0; i < n; i++)
        map[i] = -1;
    for (int j = 0; j < k && ok; j++) {
        const titem *x = &t->it[a + j], *y = &t->it[b + j];
        if (x->kind == IT_EDGE) {
            const tedge *ex = &t->edges[x->ref], *ey = &t->edges[y->ref];
            ok = map_node(map, base, ey->tail, ex->tail) == 0 &&
                 map_node(map, base, ey->head, ex->head) == 0;
        } else {
            ok = map_node(map, base, y->ref, x->ref) == 0;
        }
    }
    for (int i = 0; i < n && ok; i++)
        ok = map[i] >= 0 && t->nodes[map[i]].lane == t->nodes[base + i].lane;
    if (!ok) {
        free(map);
        return 0;
    }
    for (int j = 0; j < k; j++) {
        titem *x = &t->it[a + j];
        const titem *y = &t->it[b + j];
        x->count += y->count;
        if (x->kind == IT_EDGE) {
            tedge *ex = &t->edges[x->ref];
            const tedge *ey = &t->edges[y->ref];
            size_t used = strlen(ex->io_text), add = strlen(ey->io_text);
            if (add && used + add < sizeof ex->io_text - 4)
                memcpy(ex->io_text + used, ey->io_text, add + 1);
            else if (add && !strstr(ex->io_text, "..."))
                strcpy(ex->io_text +
                           (used < sizeof ex->io_text - 4 ? used : sizeof ex->io_text - 4),
                       "...");
        }
    }
    for (int i = 0; i < n; i++) { /* the stays of a now cover the loop's steps */
        tnode *p = &t->nodes[base + i], *q = &t->nodes[map[i]];
        if (p->kind == N_STAY && p->s1 != NOT_YET && q->s1 != NOT_YET && p->s1 > q->s1) {
            q->s1 = p->s1;
            q->c1 = p->c1;
        }
    }
    if (ms->node >= base) {
        ms->node = map[ms->node - base];
        t->nodes[ms->node].s1 = t->nodes[ms->node].c1 = NOT_YET;
    }
    if (ms->hlt_node >= base) ms->hlt_node = map[ms->hlt_node - base];
    for (int i = t->nnodes - 1; i >= base; i--)
        t->lanes[t->nodes[i].lane].last = t->nodes[i].prev;
    t->nnodes = base;
    t->nedges = t->it[b].edge0;
    t->nit = b;
    free(map);
    return 1;
}

/* After each item: a block of up to four items seen three times in a row
 * becomes one block "x3"; a block equal to a folded one before it adds to it. */
static void tm_fold(tmodel *t, tmach *ms) {
    int n = t->nit;
    for (int k = 1; k <= 4; k++) {
        if (n >= 2 * k && t->it[n - 2 * k].count >= 3 && blocks_equal(t, n - 2 * k, n - k, k)) {
            fold_block(t, ms, n - 2 * k, n - k, k);
            return;
        }
        if (n >= 3 * k && t->it[n - 3 * k].count == 1 && blocks_equal(t, n - 3 * k, n - 2 * k, k) &&
            blocks_equal(t, n - 2 * k, n - k, k)) {
            if (fold_block(t, ms, n - 2 * k, n - k, k)) fold_block(t, ms, n - 3 * k, n - 2 * k, k);
            return;
        }
    }
}

static void tm_end(tmodel *t, tmach *ms, int item, int kind, int ref, int tail_lane, int head_lane,
                   const char *key) {
    titem *x = &t->it[item];
    x->kind = kind;
    x->ref = ref;
    x->tail_lane = tail_lane;
    x->head_lane = head_lane;
    copy(x->key, sizeof x->key, key);
    tm_fold(t, ms);
}

/* ---- what an event draws ---------------------------------------------------------------- */

/* What an event says: full words, the words of a folded loop, a hardware box. */
typedef struct tdesc {
    int act, arrow;
    char words[96], key[64], hw[64], io_text[16];
    char tip[320];
} tdesc;

/* Control moves from the lane in control to `to` (an arrow), or stays in it
 * (an arrow back to itself: a trap inside the kernel). */
static void do_move(tmodel *t, tmach *ms, const cpu_stamped *s, int to, const tdesc *d) {
    int item = t->draw ? tm_begin(t, s) : -1;
    if (item < 0) {
        tm_enter(t, ms, to, s);
        return;
    }
    int from = ms->ctrl, tail = tm_stay(t, ms), head = tail;
    if (to != from) {
        tm_enter(t, ms, to, s);
        head = tm_stay(t, ms);
    }
    int e = tm_edge(t, item, tail, head, d->arrow, d->words, d->tip);
    tm_end(t, ms, item, IT_EDGE, e, from, to, d->key);
}

/* An interrupt from the hardware (the box a hlt waits on, or a new one). */
static void do_irq(tmodel *t, tmach *ms, const cpu_stamped *s, int to, const tdesc *d) {
    int hwl = tm_lane(t, LANE_HW, -1);
    int item = t->draw ? tm_begin(t, s) : -1;
    if (item < 0) {
        tm_enter(t, ms, to, s);
        ms->hlt_node = -1;
        return;
    }
    int tail = ms->hlt_node;
    if (tail < 0) {
        tail = tm_node(t, hwl, N_HW);
        copy(t->nodes[tail].words, sizeof t->nodes[tail].words, d->hw);
        copy(t->nodes[tail].tip, sizeof t->nodes[tail].tip, d->tip);
    }
    ms->hlt_node = -1;
    tm_enter(t, ms, to, s);
    int e = tm_edge(t, item, tail, tm_stay(t, ms), d->arrow, d->words, d->tip);
    tm_end(t, ms, item, IT_EDGE, e, hwl, to, d->key);
}

/* A device is used; control stays where it is. */
static void do_touch(tmodel *t, tmach *ms, const cpu_stamped *s, int keep_for_irq, const tdesc *d) {
    int item = t->draw ? tm_begin(t, s) : -1;
    if (item < 0) return;
    int hwl = tm_lane(t, LANE_HW, -1), tail = tm_stay(t, ms);
    int hw = tm_node(t, hwl, N_HW);
    copy(t->nodes[hw].words, sizeof t->nodes[hw].words, d->hw);
    copy(t->nodes[hw].tip, sizeof t->nodes[hw].tip, d->tip);
    int e = tm_edge(t, item, tail, hw, d->arrow, d->words, d->tip);
    copy(t->edges[e].io_text, sizeof t->edges[e].io_text, d->io_text);
    if (keep_for_irq) ms->hlt_node = hw;
    tm_end(t, ms, item, IT_EDGE, e, ms->ctrl, hwl, d->key);
}

/* A mark where it happened: the stay is split around it. */
static void do_mark(tmodel *t, tmach *ms, const cpu_stamped *s, int kind, const tdesc *d) {
    int item = t->draw ? tm_begin(t, s) : -1;
    if (item < 0) return;
    int lane = ms->ctrl;
    tm_stay(t, ms);
    tm_enter(t, ms, lane, s);
    int n = tm_node(t, lane, kind);
    t->nodes[n].item = item;
    copy(t->nodes[n].words, sizeof t->nodes[n].words, d->words);
    copy(t->nodes[n].tip, sizeof t->nodes[n].tip, d->tip);
    tm_end(t, ms, item, IT_MARK, n, lane, lane, d->key);
}

/* A line in the box of the lane in control (the hypervisor's work). */
static void do_note(tmodel *t, tmach *ms, const cpu_stamped *s, const tdesc *d) {
    int item = t->draw ? tm_begin(t, s) : -1;
    if (item < 0) return;
    int n = tm_stay(t, ms);
    copy(t->it[item].words, sizeof t->it[item].words, d->words);
    copy(t->it[item].tip, sizeof t->it[item].tip, d->tip);
    tm_end(t, ms, item, IT_NOTE, n, ms->ctrl, ms->ctrl, d->key);
}

/* Control is due back in the guest: remember the words for its next event. */
static void defer_return(tmach *ms, int arrow, const char *words, const char *key,
                         const char *tip) {
    ms->resume = 1;
    ms->resume_arrow = arrow;
    copy(ms->resume_words, sizeof ms->resume_words, words);
    copy(ms->resume_key, sizeof ms->resume_key, key);
    ms->resume_tip_set = tip != NULL;
    if (tip) copy(ms->resume_tip, sizeof ms->resume_tip, tip);
}

/* Something happens in `lane` (a CPU lane): control is there.  Coming from
 * the host, that is the return the host decided on (emulation, VM entry). */
static void arrive(tmodel *t, tmach *ms, const cpu_stamped *s, int lane) {
    if (ms->ctrl == lane) return;
    if (ms->ctrl >= 0 && is_host_role(t->lanes[ms->ctrl].role) &&
        !is_host_role(t->lanes[lane].role) && ms->resume) {
        tdesc d = {.arrow = ms->resume_arrow};
        copy(d.words, sizeof d.words, ms->resume_words);
        copy(d.key, sizeof d.key, ms->resume_key);
        if (ms->resume_tip_set)
            copy(d.tip, sizeof d.tip, ms->resume_tip);
        else
            event_tip(s, d.tip, sizeof d.tip);
        ms->resume = 0;
        ms->inject = 0;
        do_move(t, ms, s, lane, &d);
        return;
    }
    tm_enter(t, ms, lane, s); /* the host set the ring, or the first step */
}

/* The words of one event covered by a rule (and exceptions to its act). */
static void describe(tmodel *t, tmach *ms, const cpu_stamped *s, const struct trans_rule *r,
                     tdesc *d) {
    const cpu_event *e = &s->ev;
    char w[80];
    memset(d, 0, sizeof *d);
    d->act = r->act;
    d->arrow = r->arrow;
    event_tip(s, d->tip, sizeof d->tip);
    int at_host = ms->ctrl >= 0 && is_host_role(t->lanes[ms->ctrl].role);
    switch (e->kind) {
    case EV_TRAP:
        trap_words(e->a, e->b, e->y, 0, d->words, sizeof d->words);
        trap_words(e->a, e->b, e->y, 1, d->key, sizeof d->key);
        if (e->x == 0) { /* no handler in the vector table: control goes nowhere */
            d->act = ACT_MARK;
            cat(d->words, sizeof d->words, ": no handler\\n(vector table entry %d is 0)", e->a);
            copy(d->key, sizeof d->key, d->words);
        } else if (at_host) { /* the host hands it to the guest's own handler */
            copy(w, sizeof w, d->words);
            snprintf(d->words, sizeof d->words, "%s %s", ms->inject ? "inject" : "reflect", w);
            copy(w, sizeof w, d->key);
            d->key[0] = 0;
            cat(d->key, sizeof d->key, "%s %s", ms->inject ? "inject" : "reflect", w);
            d->arrow = ms->inject ? AR_IRQ : AR_HOST;
        } else if ((e->b & 0xf) == CAUSE_IRQ) {
            d->arrow = AR_IRQ;
        }
        copy(d->hw, sizeof d->hw, e->a == VEC_IRQ0 ? "timer" : "device");
        if (e->a != VEC_IRQ0) snprintf(d->hw, sizeof d->hw, "IRQ %d", e->a - VEC_IRQ0);
        break;
    case EV_INTERCEPT:
        trap_words(e->a, e->b, e->y, 0, d->words, sizeof d->words);
        trap_words(e->a, e->b, e->y, 1, d->key, sizeof d->key);
        if ((e->b & 0xf) == CAUSE_IRQ) d->arrow = AR_IRQ;
        copy(d->hw, sizeof d->hw, e->a == VEC_IRQ0 ? "timer" : "device");
        break;
    case EV_VMEXIT:
        vmexit_words(e, 0, d->words, sizeof d->words);
        vmexit_words(e, 1, d->key, sizeof d->key);
        if (e->a == VMX_EXIT_EXTINT) d->arrow = AR_IRQ;
        snprintf(d->hw, sizeof d->hw, "timer");
        break;
    case EV_IRET: {
        int to_self = lane_of_mode(t, ms, (e->mode & ~EV_MODE_CPL) | (e->a & 3)) ==
                      lane_of_mode(t, ms, e->mode);
        if (to_self)
            snprintf(d->words, sizeof d->words, "return (iret) to ring %d", e->a & 3);
        else
            snprintf(d->words, sizeof d->words, "return (iret)");
        copy(d->key, sizeof d->key, d->words);
        break;
    }
    case EV_IO:
    case EV_HV_IO: {
        const char *virt = e->kind == EV_HV_IO ? "virtual " : "";
        const char *dev = e->x == PORT_CONSOLE ? "console"
                          : e->x == PORT_TIMER ? "timer"
                                               : disk_port_word(e->x);
        snprintf(d->key, sizeof d->key, "%s%s 0x%x", virt, e->a ? "out" : "in", e->x);
        if (e->a) {
            snprintf(d->words, sizeof d->words, "%s <- 0x%x", d->key, e->y);
            if (e->x == PORT_CONSOLE) byte_text(e->y & 0xff, d->io_text, sizeof d->io_text);
        } else {
            snprintf(d->words, sizeof d->words, "%s -> 0x%x", d->key, e->y);
        }
        if (dev)
            snprintf(d->hw, sizeof d->hw, "%s\\nport 0x%x", dev, e->x);
        else
            snprintf(d->hw, sizeof d->hw, "port 0x%x", e->x);
        if (e->kind == EV_HV_IO && ms->hosted) {
            /* hosted: the hardware lane is the host machine's; the VMM only
             * completes an access the host OS did for VMApp, answers a
             * cheap register itself, or hands a disk request to VMApp
             * (the world switch that follows) */
            d->act = ACT_NOTE;
            cat(d->words, sizeof d->words,
                ms->vmapp_did                        ? " (done by VMApp)"
                : e->a && e->x == DISK_PORT_CMD     ? " (a request for VMApp)"
                                                    : " (in the VMM)");
            ms->vmapp_did = 0;
        }
        break;
    }
    case EV_HALT:
        if (!(e->x | e->y)) {
            d->act = ACT_MARK;
            snprintf(d->words, sizeof d->words, "hlt: halted\\nnothing can wake the CPU");
        } else {
            if (e->a) { /* a device's deadline ends the idling: the disk */
                snprintf(d->words, sizeof d->words, "hlt: idle until the disk interrupts");
                snprintf(d->hw, sizeof d->hw, "disk\\n(wakes the CPU)");
            } else {
                snprintf(d->words, sizeof d->words, "hlt: idle until the timer");
                snprintf(d->hw, sizeof d->hw, "timer\\n(wakes the CPU)");
            }
        }
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_SENSITIVE:
        snprintf(d->words, sizeof d->words, "!! %s ran at ring %d without trapping\\n%s",
                 mnem_of(e->x), e->mode & EV_MODE_CPL,
                 e->a == SILENT ? "its privileged effect was dropped" : "it saw the real state");
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_SHUTDOWN:
        snprintf(d->words, sizeof d->words, "triple fault: shutdown\\nthe machine is dead");
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_EMULATE:
    case EV_HV_EMULATE:
        if (e->kind == EV_HV_EMULATE && e->b == 3) { /* a paravirtual guest called the hypervisor */
            snprintf(d->words, sizeof d->words, "hypercall %s", viz_hypercall_name(e->a));
            copy(d->key, sizeof d->key, d->words);
            break;
        }
        snprintf(d->words, sizeof d->words, "emulated %s", mnem_of(e->x));
        copy(d->key, sizeof d->key, d->words);
        if (e->kind == EV_EMULATE && !at_host) { /* no interception before it */
            d->act = ACT_MOVE;
            snprintf(d->words, sizeof d->words, "emulated by the host: %s", mnem_of(e->x));
            copy(d->key, sizeof d->key, d->words);
        }
        break;
    case EV_VMENTRY:
        snprintf(d->words, sizeof d->words, "VM entry (%s)", e->a ? "vmresume" : "vmlaunch");
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_HV_REFLECT: {
        char vb[24];
        const char *vn = viz_vector_name(e->a, vb, sizeof vb);
        int irq = (e->b & 0xf) == CAUSE_IRQ;
        if (e->x == 0) {
            d->act = ACT_NOTE;
            snprintf(d->words, sizeof d->words, "the guest has no handler for %s", vn);
        } else if (irq && ms->inject) {
            snprintf(d->words, sizeof d->words, "inject %s", e->a == VEC_IRQ0 ? "timer IRQ" : vn);
            d->arrow = AR_IRQ;
            ms->inject = 0;
            ms->resume = 0;
        } else {
            trap_words(e->a, e->b, e->y, 0, w, sizeof w);
            snprintf(d->words, sizeof d->words, "reflect %s", w);
            ms->resume = 0;
        }
        copy(d->key, sizeof d->key, d->words);
        if (e->x && (e->b & 0xf) == CAUSE_PF) {
            trap_words(e->a, e->b, e->y, 1, w, sizeof w);
            d->key[0] = 0;
            cat(d->key, sizeof d->key, "reflect %s", w);
        }
        break;
    }
    case EV_HV_INJECT: {
        char vb[24];
        snprintf(d->words, sizeof d->words, "inject %s",
                 e->a == VEC_IRQ0 ? "timer IRQ" : viz_vector_name(e->a, vb, sizeof vb));
        copy(d->key, sizeof d->key, d->words);
        break;
    }
    case EV_HV_SHADOW:
        snprintf(d->words, sizeof d->words, "shadow page table: page 0x%08x", e->x);
        snprintf(d->key, sizeof d->key, "shadow page table");
        break;
    case EV_HV_PTWRITE:
        snprintf(d->words, sizeof d->words, "guest page-table write at 0x%08x", e->x);
        snprintf(d->key, sizeof d->key, "guest page-table write");
        break;
    case EV_HV_TRANSLATE:
        if (e->a == 0)
            snprintf(d->words, sizeof d->words, "translated page 0x%08x: %u callouts", e->x, e->y & 0xffff);
        else
            snprintf(d->words, sizeof d->words, "%s 0x%08x", e->a == 1 ? "translation dropped:" : "retranslated store at",
                     e->a == 1 ? e->x : e->pc);
        snprintf(d->key, sizeof d->key, "binary translation");
        break;
    case EV_HV_VMRUN:
        snprintf(d->words, sizeof d->words, "VM switch: vm %d on the CPU", e->a);
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_HV_TO_HOST:
        snprintf(d->words, sizeof d->words, "world switch to the host\n(VMApp: %s)",
                 e->a == 1                   ? "console write"
                 : e->a != HV_REQ_DISK       ? "device"
                 : (e->b & 3) == DISK_CMD_WRITE ? "disk write()"
                                             : "disk read()");
        copy(d->key, sizeof d->key, "world switch to the host");
        break;
    case EV_HV_TO_VMM:
        copy(d->words, sizeof d->words, "world switch to the VMM");
        copy(d->key, sizeof d->key, d->words);
        break;
    case EV_DISK_CMD:
    case EV_DISK_DONE: {
        int cmd = e->a & 0x0f;
        const char *op = cmd == DISK_CMD_WRITE ? "write" : "read";
        if (e->kind == EV_DISK_CMD)
            snprintf(d->words, sizeof d->words, "device model: disk %s, %u sector%s at %u", op, e->b,
                     e->b == 1 ? "" : "s", e->x);
        else if (e->b)
            snprintf(d->words, sizeof d->words, "device model: disk %s failed (error %d)", op, e->b);
        else
            snprintf(d->words, sizeof d->words, "device model: disk %s done", op);
        copy(d->key, sizeof d->key, d->words);
        break;
    }
    case EV_HV_HALT:
        snprintf(d->words, sizeof d->words,
                 e->x   ? "vm %d is finished"
                 : e->b ? "vm %d idles until its disk completes"
                        : "vm %d idles until its next tick",
                 e->a);
        copy(d->key, sizeof d->key, d->words);
        break;
    default: break;
    }
}

/* One event covered by a rule. */
static void trap_rule(tmodel *t, tmach *ms, const struct trans_rule *r, const cpu_stamped *s) {
    const cpu_event *e = &s->ev;
    if (e->kind >= EV_VMEXIT && e->kind != EV_ASPACE) ms->hv = 1; /* VM exits, entries, EV_HV_* */
    if (e->kind == EV_VMENTRY) ms->vm = (int)e->x;
    if (e->kind == EV_HV_VMRUN) ms->vm = e->a;
    if (e->kind == EV_HV_TO_HOST || e->kind == EV_HV_TO_VMM) ms->hosted = 1;
    if (e->kind == EV_HV_TO_HOST) ms->vmapp_did = e->a != HV_REQ_DISK; /* the access comes after */
    tdesc d;
    describe(t, ms, s, r, &d);
    int mode_lane = lane_of_mode(t, ms, e->mode);
    int host = tm_lane(t, ms->hv ? LANE_HYPERVISOR : LANE_MONITOR, -1);
    int at_host = ms->ctrl >= 0 && is_host_role(t->lanes[ms->ctrl].role);
    int irq = (e->kind == EV_TRAP || e->kind == EV_INTERCEPT) && (e->b & 0xf) == CAUSE_IRQ;
    if (e->kind == EV_VMEXIT && e->a == VMX_EXIT_EXTINT) irq = 1;

    /* where it starts: control must be there */
    int from_hw = 0;
    switch (r->from) {
    case SEL_TRAP_SRC:
        if (e->kind == EV_TRAP && at_host && e->x)
            break; /* reflected or injected by the host: from the host lane */
        if (irq)
            from_hw = 1;
        else
            arrive(t, ms, s, mode_lane);
        break;
    case SEL_HOST:
        if (ms->ctrl != host) tm_enter(t, ms, host, s);
        break;
    default: arrive(t, ms, s, mode_lane); break;
    }

    /* where it goes */
    int to = -1;
    switch (r->to) {
    case SEL_HANDLER: to = lane_of_mode(t, ms, e->mode & ~EV_MODE_CPL); break;
    case SEL_RING_A: to = lane_of_mode(t, ms, (e->mode & ~EV_MODE_CPL) | (e->a & 3)); break;
    case SEL_HOST: to = host; break;
    case SEL_GUEST_OS: to = tm_lane(t, LANE_GUEST_OS, ms->vm); break;
    case SEL_HOST_WORLD: to = tm_lane(t, LANE_HOST_OS, -1); break;
    default: break;
    }

    switch (d.act) {
    case ACT_MOVE:
        if (from_hw)
            do_irq(t, ms, s, to < 0 ? ms->ctrl : to, &d);
        else
            do_move(t, ms, s, to < 0 ? ms->ctrl : to, &d);
        if (to == host) /* the host returns to the guest unless it says otherwise */
            defer_return(ms, AR_HOST,
                         e->kind == EV_VMEXIT ? "VM entry"
                         : ms->hv             ? "resume the guest"
                                              : "resume",
                         e->kind == EV_VMEXIT ? "VM entry"
                         : ms->hv             ? "resume the guest"
                                              : "resume",
                         NULL);
        break;
    case ACT_TOUCH: do_touch(t, ms, s, e->kind == EV_HALT, &d); break;
    case ACT_MARK: do_mark(t, ms, s, e->kind == EV_SENSITIVE ? N_WARN : N_END, &d); break;
    case ACT_NOTE: do_note(t, ms, s, &d); break;
    case ACT_DEFER:
        defer_return(ms, d.arrow, d.words, d.key, d.tip);
        if (e->kind == EV_HV_INJECT) ms->inject = 1;
        break;
    }
}

/* "vlab trace: scenario X, policy P, seed N" -> "scenario X, policy P, seed N" */
static void keep_header(const cpu_stamped *s, char *buf, size_t len) {
    if (s->ev.kind != EV_TEXT || s->ev.a != TEXT_HEADER || buf[0]) return;
    const char *p = s->text ? s->text : "";
    size_t n = s->text_len;
    if (n > 12 && strncmp(p, "vlab trace: ", 12) == 0) {
        p += 12;
        n -= 12;
    }
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
}

static void trap_event(void *ud, const cpu_stamped *s) {
    tmodel *t = ud;
    const cpu_event *e = &s->ev;
    keep_header(s, t->header, sizeof t->header);
    if (e->kind == EV_CONTEXT) {
        t->cur = e->a;
        return;
    }
    if (t->o->machine >= 0 && t->cur != t->o->machine) return;
    tmach *ms = tm_machine(t, t->cur);
    if (e->kind == EV_INSN) {
        if (s->step + 1 > ms->steps) ms->steps = s->step + 1;
        if (ms->steps > t->total) t->total = ms->steps;
    }
    if (t->cut) return;
    t->draw = s->step >= t->o->from && s->step <= t->o->to;
    if (e->kind == EV_INSN) {
        arrive(t, ms, s, lane_of_mode(t, ms, e->mode));
        return;
    }
    if (e->kind >= EV_DISK_CMD && e->kind < EV_DISK_LAST && (e->a & DISK_EV_VIRTUAL)) {
        /* a VM's disk is the hypervisor's device model: a line in its box */
        static const struct trans_rule model = {0, SEL_HOST, SEL_NONE, ACT_NOTE, AR_HOST};
        if (e->kind != EV_DISK_DMA) trap_rule(t, ms, &model, s);
        return;
    }
    if (e->kind == EV_DISK_DONE) { /* the disk is done: say so */
        if (ms->hlt_node >= 0 && t->draw) { /* on the box the waiting CPU wakes from */
            tnode *n = &t->nodes[ms->hlt_node];
            int cmd = e->a & 0x0f;
            if (e->b)
                snprintf(n->words, sizeof n->words, "disk\\n%s failed: error %d\\n(interrupts)",
                         cmd == DISK_CMD_WRITE ? "write" : "read", e->b);
            else
                snprintf(n->words, sizeof n->words, "disk\\n%s %u sector%s done\\n(interrupts)",
                         cmd == DISK_CMD_WRITE ? "wrote" : "read", e->y, e->y == 1 ? "" : "s");
        }
        return;
    }
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].kind == e->kind) {
            trap_rule(t, ms, &rules[i], s);
            return;
        }
}

static void tmodel_free(tmodel *t) {
    free(t->lanes);
    free(t->nodes);
    free(t->edges);
    free(t->it);
    free(t->m);
}

/* ==== building graphs ===================================================================== */

/* Object names -> IDs in the order the objects were made.  cgraph's own
 * discipline uses the address of a name as its ID, and agwrite() writes the
 * subgraphs in ID order: the order of the clusters in a DOT file would then
 * depend on the allocator (a plain build and an ASan build differ). */
typedef struct idnames {
    Agraph_t *g; /* the root graph: names are its refstrs (agwrite asks aghtmlstr() about them) */
    char **name;
    size_t n, cap;
    IDTYPE anon; /* odd IDs for unnamed objects, as cgraph's own */
} idnames;

static void *id_open(Agraph_t *g, Agdisc_t *disc) {
    (void)disc;
    idnames *s = calloc(1, sizeof *s);
    if (s) {
        s->g = g;
        s->anon = 1;
    }
    return s;
}

static long id_map(void *state, int objtype, char *str, IDTYPE *id, int createflag) {
    idnames *s = state;
    (void)objtype;
    if (!str) {
        *id = s->anon;
        s->anon += 2;
        return 1;
    }
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->name[i], str) == 0) {
            *id = 2 * (IDTYPE)(i + 1);
            return 1;
        }
    if (!createflag) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **p = realloc(s->name, cap * sizeof *p);
        if (!p) return 0;
        s->name = p;
        s->cap = cap;
    }
    if (!(s->name[s->n] = agstrdup(s->g, str))) return 0;
    *id = 2 * (IDTYPE)++s->n;
    return 1;
}

static long id_alloc(void *state, int objtype, IDTYPE id) {
    (void)state;
    (void)objtype;
    (void)id;
    return 0; /* no IDs chosen by the caller */
}

static void id_free(void *state, int objtype, IDTYPE id) {
    (void)state;
    (void)objtype;
    (void)id; /* names live until the graph is closed */
}

static char *id_print(void *state, int objtype, IDTYPE id) {
    idnames *s = state;
    (void)objtype;
    return id % 2 == 0 && id / 2 >= 1 && id / 2 <= s->n ? s->name[id / 2 - 1] : NULL;
}

static void id_close(void *state) {
    idnames *s = state;
    for (size_t i = 0; i < s->n; i++)
        agstrfree(s->g, s->name[i]);
    free(s->name);
    free(s);
}

static void id_register(void *state, int objtype, void *obj) {
    (void)state;
    (void)objtype;
    (void)obj;
}

static Agiddisc_t ordered_ids = {id_open,  id_map,   id_alloc,   id_free,
                                 id_print, id_close, id_register};
static Agdisc_t graph_disc = {&AgMemDisc, &ordered_ids, &AgIoDisc};

static Agraph_t *new_graph(const char *name) {
    return agopen((char *)name, Agdirected, &graph_disc);
}

/* Set an attribute, declaring it (with an empty default) on first use. */
static void set(void *obj, const char *name, const char *value) {
    agsafeset(obj, (char *)name, (char *)value, "");
}

static void declare(Agraph_t *g, int kind, const char *name, const char *value) {
    agattr(g, kind, (char *)name, (char *)value);
}

static void declare_html(Agraph_t *g, const char *name, const char *html) {
    char *h = agstrdup_html(g, (char *)html);
    agattr(g, AGRAPH, (char *)name, h);
    agstrfree(g, h);
}

/* The caption: the scenario, the view, the window, and a note when cut. */
static void caption(char *buf, size_t len, const viz_export_opts *o, const char *header,
                    const char *view, const viz_export_info *in, const char *unit,
                    const char *more) {
    buf[0] = 0;
    cat(buf, len, "<B>%s</B><BR/>", view);
    cat_html(buf, len, o->title ? o->title : header[0] ? header : "a vlab run");
    if (o->machine >= 0) {
        cat(buf, len, ", machine %d", o->machine);
        if (o->machine < o->nmachines && o->machine_names && o->machine_names[o->machine]) {
            cat(buf, len, " '");
            cat_html(buf, len, o->machine_names[o->machine]);
            cat(buf, len, "'");
        }
    }
    cat(buf, len, "<BR/>%ssteps ", in->items ? "" : "nothing to draw in ");
    cat_u64(buf, len, in->lo);
    cat(buf, len, "-");
    cat_u64(buf, len, in->hi);
    cat(buf, len, " of ");
    cat_u64(buf, len, in->total);
    cat(buf, len, "%s", more);
    if (in->cut)
        cat(buf, len, "<BR/><FONT COLOR=\"#c0392b\">cut after %d %s; use --from/--to</FONT>",
            in->max, unit);
}

/* Nodes placed by us: pos in points, for the nop2 layout. */
static Agnode_t *placed(Agraph_t *g, const char *name, double x, double y) {
    Agnode_t *n = agnode(g, (char *)name, 1);
    char pos[64];
    snprintf(pos, sizeof pos, "%.1f,%.1f!", x, y);
    set(n, "pos", pos);
    /* no words unless set later: an empty default label would not be written
     * by agwrite, and `dot` reading the file would show the node's name */
    set(n, "label", "");
    return n;
}

/* A word placed on the picture. */
static Agnode_t *words_at(Agraph_t *g, const char *name, double x, double y, const char *text,
                          const char *size) {
    Agnode_t *n = placed(g, name, x, y);
    set(n, "shape", "plaintext");
    set(n, "style", "");
    set(n, "fixedsize", "false");
    set(n, "fontsize", size);
    set(n, "height", "0.1");
    set(n, "width", "0.1");
    set(n, "margin", "0");
    set(n, "label", text);
    return n;
}

static Agnode_t *box_at(Agraph_t *g, const char *name, double x0, double x1, double y, double h,
                        const char *fill, const char *line) {
    char v[32];
    double w = x1 - x0 < 1.0 ? 1.0 : x1 - x0;
    Agnode_t *n = placed(g, name, x0 + w / 2, y);
    snprintf(v, sizeof v, "%.3f", w / 72.0);
    set(n, "width", v);
    snprintf(v, sizeof v, "%.3f", h / 72.0);
    set(n, "height", v);
    set(n, "fillcolor", fill);
    set(n, "color", line);
    return n;
}

static void fmt_cycles(uint64_t v, char *buf, size_t len) {
    if (v && v % 1000000 == 0)
        snprintf(buf, len, "%lluM", (unsigned long long)(v / 1000000));
    else if (v >= 1000000 && v % 100000 == 0)
        snprintf(buf, len, "%llu.%lluM", (unsigned long long)(v / 1000000),
                 (unsigned long long)(v % 1000000 / 100000));
    else if (v && v % 1000 == 0)
        snprintf(buf, len, "%lluk", (unsigned long long)(v / 1000));
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Width of a text in points, roughly (a proportional sans font). */
static double text_width(const char *s, double size) {
    return (double)strlen(s) * size * 0.56;
}

/* ==== the trap diagram: graph ============================================================= */

static int lane_order(const tmodel *t, int i) {
    const tlane *l = &t->lanes[i];
    int guest = l->role == LANE_GUEST_USER || l->role == LANE_GUEST_OS;
    return l->machine * 100000 + (guest ? l->vm * 10 + l->role : 50000 + l->role);
}

static void rings_text(unsigned rings, char *buf, size_t len) {
    int n = 0, k = 0;
    for (int r = 0; r < 4; r++)
        if (rings & (1u << r)) n++;
    buf[0] = 0;
    cat(buf, len, n > 1 ? "rings " : "ring ");
    for (int r = 0; r < 4; r++)
        if (rings & (1u << r)) cat(buf, len, "%s%d", k++ ? ", " : "", r);
}

/* The words of an item: folded ones say how often, without what changed. */
static void item_words(const tmodel *t, int item, const char *words, char *buf, size_t len) {
    const titem *x = &t->it[item];
    buf[0] = 0;
    if (x->count > 1)
        cat(buf, len, "%d: %s x%d", item + 1, x->key, x->count);
    else
        cat(buf, len, "%d: %s", item + 1, words);
}

static void lane_title(const tmodel *t, const tlane *l, char *buf, size_t len) {
    const viz_export_opts *o = t->o;
    const struct lane_role_info *ri = &lane_roles[l->role];
    int machines = 0;
    for (int m = 0; m < t->nm; m++) {
        for (int i = 0; i < t->nlanes; i++)
            if (t->lanes[i].machine == m && t->lanes[i].last >= 0) {
                machines++;
                break;
            }
    }
    buf[0] = 0;
    if (machines > 1) {
        cat(buf, len, "machine %d", l->machine);
        if (l->machine < o->nmachines && o->machine_names && o->machine_names[l->machine]) {
            cat(buf, len, " '");
            cat_esc(buf, len, o->machine_names[l->machine]);
            cat(buf, len, "'");
        }
        cat(buf, len, "\\n");
    }
    cat(buf, len, "%s\\n", ri->title);
    char rb[32];
    rings_text(l->rings, rb, sizeof rb);
    if (l->role == LANE_GUEST_USER || l->role == LANE_GUEST_OS)
        cat(buf, len, "vm %d, real %s", l->vm, rb);
    else if (ri->note)
        cat(buf, len, "%s", ri->note);
    else
        cat(buf, len, "%s", rb);
}

/* Where a box of the sequence diagram is: its column's x, its rows. */
typedef struct tplace {
    int row0, row1; /* first and last row that refers to it */
    int head0;      /* its first row is an arrow into it */
    double w, h, y; /* size and centre */
} tplace;

#define TR_TITLE 46.0 /* room for the lanes' titles */
#define TR_GAP 8.0    /* between two rows */
#define TR_HEAD 8.0   /* length of an arrowhead (arrowsize 0.8) */
#define TR_LINE 12.0  /* a line of text at size 9-10 */

/* Lines of an escString label and the width of the widest: "\n", "\l" and
 * "\r" end a line, "\\" is one backslash. */
static double label_size(const char *s, double size, int *lines) {
    double best = 0;
    int n = 1;
    size_t chars = 0;
    for (const char *p = s;; p++) {
        int end = !*p || (p[0] == '\\' && (p[1] == 'n' || p[1] == 'l' || p[1] == 'r'));
        if (end) {
            double w = (double)chars * size * 0.58;
            if (w > best) best = w;
            chars = 0;
            if (!*p) break;
            n++;
            p++;
            continue;
        }
        if (p[0] == '\\' && p[1]) p++;
        chars++;
    }
    if (lines) *lines = n;
    return best;
}

static int text_lines(const char *s) {
    int n;
    label_size(s, 10, &n);
    return n;
}

static double lines_width(const char *s, double size) {
    return label_size(s, size, NULL);
}

static void fmt_pos(char *buf, size_t len, double x, double y) {
    snprintf(buf, len, "%.1f,%.1f", x, y);
}

static Agraph_t *trap_graph(tmodel *t, const viz_export_info *info) {
    Agraph_t *g = new_graph("traps");
    declare(g, AGRAPH, "layout", "nop2");
    declare(g, AGRAPH, "outputorder", "nodesfirst");
    declare(g, AGRAPH, "bgcolor", "white");
    declare(g, AGRAPH, "pad", "0.25");
    declare(g, AGRAPH, "fontname", FONT);
    declare(g, AGRAPH, "labelloc", "t");
    char cap[1400];
    caption(cap, sizeof cap, t->o, t->header, "trap diagram", info, "transitions", "");
    if (t->used_arrows) { /* the legend: what the colours of the arrows mean */
        cat(cap, sizeof cap, "<BR/><FONT POINT-SIZE=\"10\">");
        for (int a = 0; a < AR_STYLES; a++)
            if (t->used_arrows & (1u << a))
                cat(cap, sizeof cap, "<FONT COLOR=\"%s\">%s %s</FONT>&#160;&#160;&#160; ",
                    arrows[a].color, a == AR_IO ? "- - -&gt;" : "&#8212;&gt;", arrows[a].legend);
        cat(cap, sizeof cap, "</FONT>");
    }
    declare_html(g, "label", cap);
    declare(g, AGNODE, "fontname", FONT);
    declare(g, AGNODE, "fontsize", "9");
    declare(g, AGNODE, "shape", "box");
    declare(g, AGNODE, "style", "rounded,filled");
    declare(g, AGNODE, "fillcolor", "white");
    declare(g, AGNODE, "fixedsize", "true");
    declare(g, AGNODE, "label", "\\N");
    declare(g, AGEDGE, "fontname", FONT);
    declare(g, AGEDGE, "fontsize", "10");
    declare(g, AGEDGE, "arrowsize", "0.8");

    int nn = t->nnodes, ni = t->nit;
    int *order = malloc((size_t)(t->nlanes + 1) * sizeof *order);
    int *column = calloc((size_t)(t->nlanes + 1), sizeof *column);
    double *left = calloc((size_t)(t->nlanes + 1), sizeof *left);
    double *right = calloc((size_t)(t->nlanes + 1), sizeof *right);
    double *x = calloc((size_t)(t->nlanes + 1), sizeof *x);
    tplace *pl = calloc((size_t)(nn + 1), sizeof *pl);
    double *ry = calloc((size_t)(ni + 1), sizeof *ry), *up = calloc((size_t)(ni + 1), sizeof *up),
           *down = calloc((size_t)(ni + 1), sizeof *down);
    char(*elabel)[300] = calloc((size_t)(ni + 1), sizeof *elabel);
    Agnode_t **gn = calloc((size_t)(nn + 1), sizeof *gn);
    if (!order || !column || !left || !right || !x || !pl || !ry || !up || !down || !elabel || !gn)
        abort();

    /* the columns: the lanes that hold something */
    int nl = 0;
    for (int i = 0; i < t->nlanes; i++)
        if (t->lanes[i].last >= 0) order[nl++] = i;
    for (int i = 1; i < nl; i++) /* insertion sort: a handful of lanes */
        for (int j = i; j > 0 && lane_order(t, order[j - 1]) > lane_order(t, order[j]); j--) {
            int v = order[j];
            order[j] = order[j - 1];
            order[j - 1] = v;
        }
    for (int k = 0; k < nl; k++)
        column[order[k]] = k;

    /* which rows refer to each box */
    for (int n = 0; n < nn; n++)
        pl[n] = (tplace){.row0 = ni, .row1 = -1};
#define REFER(node, row, is_head)                                                                  \
    do {                                                                                           \
        tplace *p_ = &pl[node];                                                                    \
        if ((row) < p_->row0) {                                                                    \
            p_->row0 = (row);                                                                      \
            p_->head0 = (is_head);                                                                 \
        }                                                                                          \
        if ((row) > p_->row1) p_->row1 = (row);                                                    \
    } while (0)
    for (int i = 0; i < ni; i++) {
        const titem *it = &t->it[i];
        if (it->kind == IT_EDGE) {
            REFER(t->edges[it->ref].tail, i, 0);
            REFER(t->edges[it->ref].head, i, 1);
        } else {
            REFER(it->ref, i, 0);
        }
    }
#undef REFER

    /* sizes: the bars of stays share one width */
    double bar = 64;
    for (int n = 0; n < nn; n++) {
        const tnode *tn = &t->nodes[n];
        if (tn->kind != N_STAY) continue;
        char lbl[64];
        snprintf(lbl, sizeof lbl, "steps %llu-%llu", (unsigned long long)tn->s0,
                 (unsigned long long)tn->s1);
        double w = text_width(lbl, 9) + 10;
        if (w > bar) bar = w;
    }
    for (int n = 0; n < nn; n++) {
        const tnode *tn = &t->nodes[n];
        int lane = tn->lane;
        char lbl[200];
        switch (tn->kind) {
        case N_STAY: pl[n].w = bar; break;
        case N_HW: pl[n].w = lines_width(tn->words, 9) + 16; break;
        default:
            item_words(t, tn->item, tn->words, lbl, sizeof lbl);
            pl[n].w = lines_width(lbl, 9) + (tn->kind == N_WARN ? 26 : 30);
            break;
        }
        if (pl[n].w / 2 > left[lane]) left[lane] = pl[n].w / 2;
        if (pl[n].w / 2 > right[lane]) right[lane] = pl[n].w / 2;
    }
    for (int k = 0; k < nl; k++) { /* the titles */
        char title[400];
        lane_title(t, &t->lanes[order[k]], title, sizeof title);
        double w = lines_width(title, 11) / 2 + 8;
        if (w > left[order[k]]) left[order[k]] = w;
        if (w > right[order[k]]) right[order[k]] = w;
    }

    /* the words of each row, and the room they need */
    for (int i = 0; i < ni; i++) {
        const titem *it = &t->it[i];
        if (it->kind == IT_EDGE) {
            const tedge *te = &t->edges[it->ref];
            item_words(t, i, te->words, elabel[i], sizeof elabel[i]);
            if (te->io_text[0]) cat(elabel[i], sizeof elabel[i], "\\n\"%s\"", te->io_text);
            double lw = lines_width(elabel[i], 10);
            int lines = text_lines(elabel[i]);
            if (te->tail == te->head) { /* a loop on the bar's right side */
                double need = bar / 2 + 34 + lw;
                if (need > right[t->nodes[te->tail].lane]) right[t->nodes[te->tail].lane] = need;
                up[i] = down[i] = lines * TR_LINE / 2 + 8;
            } else {
                up[i] = 5 + lines * TR_LINE;
                down[i] = 8;
            }
            for (int side = 0; side < 2; side++) { /* a hardware box at this row */
                int n = side ? te->head : te->tail;
                if (t->nodes[n].kind == N_HW && pl[n].row0 == pl[n].row1) {
                    double h = text_lines(t->nodes[n].words) * TR_LINE / 2 + 4;
                    if (h > up[i]) up[i] = h;
                    if (h > down[i]) down[i] = h;
                }
            }
        } else if (it->kind == IT_MARK) {
            char lbl[200];
            item_words(t, i, t->nodes[it->ref].words, lbl, sizeof lbl);
            up[i] = down[i] = text_lines(lbl) * TR_LINE / 2 + 6;
        } else { /* a note beside the host's bar */
            item_words(t, i, it->words, elabel[i], sizeof elabel[i]);
            int lane = t->nodes[it->ref].lane;
            double need = bar / 2 + 10 + lines_width(elabel[i], 9);
            if (need > right[lane]) right[lane] = need;
            up[i] = down[i] = TR_LINE / 2 + 2;
        }
    }

    /* columns left to right, far enough apart for the words on the arrows */
    for (int k = 0; k < nl; k++)
        x[order[k]] =
            k == 0 ? left[order[0]] : x[order[k - 1]] + right[order[k - 1]] + left[order[k]] + 34;
    for (int i = 0; i < ni; i++) {
        if (t->it[i].kind != IT_EDGE) continue;
        const tedge *te = &t->edges[t->it[i].ref];
        int la = t->nodes[te->tail].lane, lb = t->nodes[te->head].lane;
        if (la == lb) continue;
        int ca = column[la], cb = column[lb];
        double wa = pl[te->tail].w / 2, wb = pl[te->head].w / 2;
        if (ca > cb) {
            int c = ca;
            ca = cb;
            cb = c;
            double w = wa;
            wa = wb;
            wb = w;
        }
        double need = wa + wb + lines_width(elabel[i], 10) + 24 + TR_HEAD;
        double have = x[order[cb]] - x[order[ca]];
        if (have < need)
            for (int k = cb; k < nl; k++)
                x[order[k]] += need - have;
    }

    /* rows top to bottom */
    for (int i = 0; i < ni; i++)
        ry[i] = i == 0 ? -TR_TITLE - up[0] : ry[i - 1] - down[i - 1] - TR_GAP - up[i];
    double bottom = ni ? ry[ni - 1] - down[ni - 1] - 16 : -TR_TITLE - 20;

    /* the boxes' heights: from the first row that refers to them to the last */
    for (int n = 0; n < nn; n++) {
        const tnode *tn = &t->nodes[n];
        tplace *p = &pl[n];
        if (p->row1 < 0) { /* never referred to: cannot happen, but stay visible */
            p->row0 = p->row1 = 0;
        }
        double min_h = tn->kind == N_STAY ? 20 : text_lines(tn->words) * TR_LINE + 8;
        if (tn->kind == N_WARN || tn->kind == N_END) {
            char lbl[200];
            item_words(t, tn->item, tn->words, lbl, sizeof lbl);
            min_h = text_lines(lbl) * TR_LINE + 10;
        }
        double top = ry[p->row0] + (p->head0 || p->row0 > 0 ? 9 : up[0] + 10);
        double bot = ry[p->row1] - 9;
        if (tn->kind != N_STAY) top = ry[p->row0] + min_h / 2, bot = ry[p->row1] - min_h / 2;
        if (top - bot < min_h) {
            double mid = (top + bot) / 2;
            top = mid + min_h / 2;
            bot = mid - min_h / 2;
        }
        p->y = (top + bot) / 2;
        p->h = top - bot;
    }

    char name[64], pos[200], v[32];
    /* the lanes: a coloured column with its title, and a lifeline */
    for (int k = 0; k < nl; k++) {
        const tlane *l = &t->lanes[order[k]];
        const struct lane_role_info *ri = &lane_roles[l->role];
        char id[48], title[400];
        if (l->vm >= 0)
            snprintf(id, sizeof id, "%s_m%d_vm%d", ri->id, l->machine, l->vm);
        else
            snprintf(id, sizeof id, "%s_m%d", ri->id, l->machine);
        double lx = x[order[k]], l0 = lx - left[order[k]] - 8, l1 = lx + right[order[k]] + 8;
        snprintf(name, sizeof name, "lane_%s", id);
        Agnode_t *n = placed(g, name, (l0 + l1) / 2, bottom / 2);
        lane_title(t, l, title, sizeof title);
        set(n, "label", title);
        set(n, "labelloc", "t");
        set(n, "fontsize", "11");
        set(n, "style", "filled");
        set(n, "fillcolor", ri->fill);
        set(n, "color", ri->line);
        snprintf(v, sizeof v, "%.3f", (l1 - l0) / 72.0);
        set(n, "width", v);
        snprintf(v, sizeof v, "%.3f", -bottom / 72.0);
        set(n, "height", v);
    }

    /* the boxes */
    for (int nidx = 0; nidx < nn; nidx++) {
        const tnode *tn = &t->nodes[nidx];
        const tplace *p = &pl[nidx];
        static const char *const prefix[] = {"stay", "hw", "mark", "mark"};
        snprintf(name, sizeof name, "%s%d", prefix[tn->kind], nidx + 1);
        Agnode_t *n = placed(g, name, x[tn->lane], p->y);
        gn[nidx] = n;
        snprintf(v, sizeof v, "%.3f", p->w / 72.0);
        set(n, "width", v);
        snprintf(v, sizeof v, "%.3f", p->h / 72.0);
        set(n, "height", v);
        char lbl[300] = "", tip[400] = "";
        switch (tn->kind) {
        case N_STAY:
            if (tn->s0 == tn->s1)
                cat(lbl, sizeof lbl, "step %llu", (unsigned long long)tn->s0);
            else
                cat(lbl, sizeof lbl, "steps %llu-%llu", (unsigned long long)tn->s0,
                    (unsigned long long)tn->s1);
            set(n, "label", lbl);
            cat(tip, sizeof tip, "%s: steps %llu-%llu, cycles %llu-%llu",
                lane_roles[t->lanes[tn->lane].role].title, (unsigned long long)tn->s0,
                (unsigned long long)tn->s1, (unsigned long long)tn->c0, (unsigned long long)tn->c1);
            set(n, "tooltip", tip);
            break;
        case N_HW:
            set(n, "label", tn->words);
            set(n, "tooltip", tn->tip);
            set(n, "fillcolor", "#f7f7f7");
            break;
        default:
            item_words(t, tn->item, tn->words, lbl, sizeof lbl);
            set(n, "label", lbl);
            set(n, "tooltip", tn->tip);
            set(n, "shape", tn->kind == N_WARN ? "note" : "octagon");
            set(n, "style", "filled");
            set(n, "fillcolor", tn->kind == N_WARN ? "#fff3cd" : "#f5d5d5");
            if (tn->kind == N_WARN) {
                set(n, "color", "#c0392b");
                set(n, "fontcolor", "#8b1a10");
            }
            break;
        }
    }

    /* each lane's lifeline, between its boxes */
    for (int nidx = 0; nidx < nn; nidx++) {
        int up_n = t->nodes[nidx].prev;
        if (up_n < 0) continue;
        double lx = x[t->nodes[nidx].lane];
        double y0 = pl[up_n].y - pl[up_n].h / 2, y1 = pl[nidx].y + pl[nidx].h / 2;
        if (y0 - y1 < 4) continue;
        Agedge_t *e = agedge(g, gn[up_n], gn[nidx], NULL, 1);
        snprintf(pos, sizeof pos, "%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f", lx, y0, lx,
                 y0 + (y1 - y0) / 3, lx, y0 + 2 * (y1 - y0) / 3, lx, y1);
        set(e, "pos", pos);
        set(e, "style", "dotted");
        set(e, "arrowhead", "none");
        set(e, "color", "gray55");
    }

    /* the rows: arrows, and notes beside the host's bar */
    for (int i = 0; i < ni; i++) {
        const titem *it = &t->it[i];
        double y = ry[i];
        if (it->kind == IT_NOTE) {
            int lane = t->nodes[it->ref].lane;
            double w = lines_width(elabel[i], 9) + 4;
            snprintf(name, sizeof name, "note%d", i + 1);
            Agnode_t *n = words_at(g, name, x[lane] + bar / 2 + 6 + w / 2, y, elabel[i], "9");
            set(n, "fontcolor", arrows[AR_HOST].color);
            set(n, "tooltip", it->tip);
            continue;
        }
        if (it->kind != IT_EDGE) continue;
        const tedge *te = &t->edges[it->ref];
        Agedge_t *e = agedge(g, gn[te->tail], gn[te->head], NULL, 1);
        int lines = text_lines(elabel[i]);
        double lw = lines_width(elabel[i], 10);
        char lp[64];
        if (te->tail == te->head) {
            double xr = x[t->nodes[te->tail].lane] + bar / 2;
            snprintf(pos, sizeof pos, "e,%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f", xr,
                     y - 5, xr, y + 5, xr + 30, y + 14, xr + 30, y - 14, xr + 7, y - 6);
            fmt_pos(lp, sizeof lp, xr + 34 + lw / 2, y);
        } else {
            double xa = x[t->nodes[te->tail].lane], xb = x[t->nodes[te->head].lane];
            double dir = xb > xa ? 1 : -1;
            double x0 = xa + dir * pl[te->tail].w / 2, tip = xb - dir * pl[te->head].w / 2;
            double base = tip - dir * TR_HEAD;
            snprintf(pos, sizeof pos, "e,%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f", tip, y,
                     x0, y, x0 + (base - x0) / 3, y, x0 + 2 * (base - x0) / 3, y, base, y);
            fmt_pos(lp, sizeof lp, (x0 + tip) / 2, y + 3 + lines * TR_LINE / 2);
        }
        set(e, "pos", pos);
        set(e, "label", elabel[i]);
        set(e, "lp", lp);
        set(e, "color", arrows[te->arrow].color);
        set(e, "fontcolor", arrows[te->arrow].color);
        if (strcmp(arrows[te->arrow].style, "solid")) set(e, "style", arrows[te->arrow].style);
        set(e, "tooltip", te->tip);
    }
    free(order);
    free(column);
    free(left);
    free(right);
    free(x);
    free(pl);
    free(ry);
    free(up);
    free(down);
    free(elabel);
    free(gn);
    return g;
}

/* ==== the schedule timeline ================================================================ */

/* What a CPU spends its cycles on.  A hypervisor's VM slices are drawn as a
 * band above these (from one world switch to the next), and the guest
 * processes as a band between the two: a process is an address space, one
 * page-table base (EV_ASPACE, a `wrcr ptbr`) of the machine or of one VM,
 * numbered in the order it was first loaded; "-" before the first one. */
enum span_role { SP_USER, SP_KERNEL, SP_GUEST_USER, SP_GUEST_OS, SP_HYPERVISOR, SP_IDLE, SP_ROLES };

static const struct span_role_info {
    const char *id, *name, *legend, *fill, *line;
} span_roles[SP_ROLES] = {
    [SP_USER] = {"user", "user", "user application (ring 3)", "#9cc3ec", "#4f86c6"},
    [SP_KERNEL] = {"kernel", "kernel", "kernel (OS)", "#f5c98b", "#c98a35"},
    [SP_GUEST_USER] = {"guest_user", "guest app", "guest application", "#b9d9f7", "#4f86c6"},
    [SP_GUEST_OS] = {"guest_os", "guest OS", "guest OS", "#f9ddb4", "#c98a35"},
    [SP_HYPERVISOR] = {"hypervisor", "hv", "hypervisor", "#cdb4e0", "#7d3c98"},
    [SP_IDLE] = {"idle", "idle", "idle (hlt: waiting for an interrupt)", "#e4e4e4", "#9a9a9a"},
};

typedef struct span {
    int role; /* enum span_role, or a VM id in the VM band */
    uint64_t c0, c1, s0, s1;
} span;

/* A span of the process band: address space `proc` of VM `vm` (-1: the
 * machine's own), or none yet (proc 0). */
typedef struct pspan {
    int vm, proc;
    uint32_t ptbr;
    uint64_t c0, c1, s0, s1;
} pspan;

typedef struct aspace {
    int vm;        /* -1: the machine's own */
    uint32_t ptbr; /* page-table base, frame bits */
} aspace;

typedef struct vproc {
    int vm, proc; /* the address space each VM (or the machine) runs in now, 0: none */
} vproc;

typedef struct smark {
    uint64_t cycle, step;
    int arrow;
    char label[40];
    char tip[320];
} smark;

typedef struct srow {
    span *sp, *vms;
    int nsp, spcap, nvms, vmcap;
    smark *mk;
    int nmk, mkcap;
    int role;        /* the open span's role, or -1 */
    uint64_t c0, s0; /* its start */
    int vm;          /* the VM on this CPU, or -1 */
    uint64_t vm_c0, vm_s0;
    int hv;           /* a hypervisor runs this machine */
    pspan *ps;        /* the process band */
    int nps, pscap;
    int p_open, p_vm, p_proc; /* its open span */
    uint64_t p_c0, p_s0;
    aspace *as; /* address spaces in order of first use */
    int nas, ascap;
    vproc *vp;
    int nvp, vpcap;
    int any_as;       /* the page tables were switched: draw the process band */
    int machine;      /* the machine whose CPU this is; its first CPU's row (row `machine`)
                       * keeps the address spaces of all its CPUs (VMs move between them) */
    int pcpu;         /* which of its physical CPUs (EV_HV_PCPU) */
    uint64_t pending; /* cycle of the last transition: where the next span starts */
    uint64_t last_cycle, last_step;
    uint64_t lo_cycle, hi_cycle; /* the window, in this CPU's cycles */
    int in_window;
} srow;

/* Rows: row k is CPU k / SCHED_MACHINES of machine k % SCHED_MACHINES (one
 * row per machine when machines have one CPU each). */
#define SCHED_MACHINES 64
#define HV_CPUS_DRAWN 8 /* hypervisor/hv.h's HV_MAX_CPUS */
typedef struct smodel {
    const viz_export_opts *o;
    srow *rows;
    int nrows;
    int cur;
    uint8_t pcpu[SCHED_MACHINES];  /* per machine: the CPU its events happen on */
    uint8_t multi[SCHED_MACHINES]; /* it has several (an EV_HV_PCPU was seen) */
    uint64_t total;
    char header[200];
} smodel;

static srow *sm_row(smodel *m, int id) {
    if (id >= m->nrows) {
        srow *p = realloc(m->rows, (size_t)(id + 1) * sizeof *p);
        if (!p) abort();
        for (int i = m->nrows; i <= id; i++)
            p[i] = (srow){.role = -1, .vm = -1, .pending = NOT_YET, .lo_cycle = NOT_YET,
                          .machine = i % SCHED_MACHINES, .pcpu = i / SCHED_MACHINES};
        m->rows = p;
        m->nrows = id + 1;
    }
    return &m->rows[id];
}

static void sm_close(srow *r, uint64_t cycle, uint64_t step) {
    if (r->role < 0) return;
    if (cycle > r->c0) {
        r->sp = grow(r->sp, &r->spcap, r->nsp + 1, sizeof *r->sp);
        r->sp[r->nsp++] = (span){r->role, r->c0, cycle, r->s0, step};
    }
    r->role = -1;
}

static void sm_open(srow *r, int role, uint64_t cycle, uint64_t step) {
    r->role = role;
    r->c0 = cycle;
    r->s0 = step;
}

static void sm_vm(srow *r, int vm, uint64_t cycle, uint64_t step) {
    if (r->vm >= 0 && cycle > r->vm_c0) {
        r->vms = grow(r->vms, &r->vmcap, r->nvms + 1, sizeof *r->vms);
        r->vms[r->nvms++] = (span){r->vm, r->vm_c0, cycle, r->vm_s0, step};
    }
    r->vm = vm;
    r->vm_c0 = cycle;
    r->vm_s0 = step;
}

/* The number of address space ptbr of VM vm (1, 2, ... in order of first use). */
static int sm_aspace(srow *r, int vm, uint32_t ptbr) { /* r: the machine's first row */
    int n = 0;
    for (int i = 0; i < r->nas; i++)
        if (r->as[i].vm == vm) {
            n++;
            if (r->as[i].ptbr == ptbr) return n;
        }
    r->as = grow(r->as, &r->ascap, r->nas + 1, sizeof *r->as);
    r->as[r->nas++] = (aspace){vm, ptbr};
    return n + 1;
}

static uint32_t sm_aspace_ptbr(const srow *r, int vm, int proc) {
    for (int i = 0, n = 0; i < r->nas; i++)
        if (r->as[i].vm == vm && ++n == proc) return r->as[i].ptbr;
    return 0;
}

/* Where VM vm's current address space is kept. */
static int *sm_vm_proc(srow *r, int vm) {
    for (int i = 0; i < r->nvp; i++)
        if (r->vp[i].vm == vm) return &r->vp[i].proc;
    r->vp = grow(r->vp, &r->vpcap, r->nvp + 1, sizeof *r->vp);
    r->vp[r->nvp] = (vproc){vm, 0};
    return &r->vp[r->nvp++].proc;
}

static void sm_proc_close(srow *r, srow *home, uint64_t cycle, uint64_t step) {
    if (!r->p_open) return;
    if (cycle > r->p_c0) {
        r->ps = grow(r->ps, &r->pscap, r->nps + 1, sizeof *r->ps);
        r->ps[r->nps++] = (pspan){r->p_vm, r->p_proc, sm_aspace_ptbr(home, r->p_vm, r->p_proc),
                                  r->p_c0, cycle, r->p_s0, step};
    }
    r->p_open = 0;
}

/* The process band follows the VM on the CPU and its address space: a new
 * span when either changes.  Under a hypervisor, no VM: no guest process. */
static void sm_proc_sync(srow *r, srow *home, uint64_t cycle, uint64_t step) {
    int vm = r->hv ? r->vm : -1, want = !(r->hv && r->vm < 0);
    int proc = want ? *sm_vm_proc(home, vm) : 0;
    if (r->p_open == want && (!want || (r->p_vm == vm && r->p_proc == proc))) return;
    sm_proc_close(r, home, cycle, step);
    if (!want) return;
    r->p_open = 1;
    r->p_vm = vm;
    r->p_proc = proc;
    r->p_c0 = cycle;
    r->p_s0 = step;
}

static int sm_role_of_mode(const srow *r, int mode) {
    int cpl = mode & EV_MODE_CPL;
    if (mode & EV_MODE_NONROOT) return cpl == 3 ? SP_GUEST_USER : SP_GUEST_OS;
    if (r->hv) return cpl == 3 ? SP_GUEST_USER : cpl == 0 ? SP_HYPERVISOR : SP_GUEST_OS;
    return cpl == 3 ? SP_USER : SP_KERNEL;
}

static void sm_mark(srow *r, const cpu_stamped *s, int arrow, const char *label) {
    smark k = {.cycle = s->cycle, .step = s->step, .arrow = arrow};
    copy(k.label, sizeof k.label, label);
    event_tip(s, k.tip, sizeof k.tip);
    r->mk = grow(r->mk, &r->mkcap, r->nmk + 1, sizeof *r->mk);
    r->mk[r->nmk++] = k;
}

static void sched_event(void *ud, const cpu_stamped *s) {
    smodel *m = ud;
    const cpu_event *e = &s->ev;
    keep_header(s, m->header, sizeof m->header);
    if (e->kind == EV_CONTEXT) {
        m->cur = e->a;
        return;
    }
    if (m->o->machine >= 0 && m->cur != m->o->machine) return;
    int mi = m->cur & (SCHED_MACHINES - 1);
    if (e->kind == EV_HV_PCPU) {
        m->pcpu[mi] = e->a < HV_CPUS_DRAWN ? e->a : 0;
        m->multi[mi] = 1;
        return;
    }
    sm_row(m, mi);
    srow *r = sm_row(m, mi + SCHED_MACHINES * m->pcpu[mi]), *home = &m->rows[mi];
    if (s->step >= m->o->from && s->step <= m->o->to) {
        if (r->lo_cycle == NOT_YET) r->lo_cycle = s->cycle;
        uint64_t end = s->cycle + (e->kind == EV_INSN ? e->b : 0);
        if (end > r->hi_cycle) r->hi_cycle = end;
        r->in_window = 1;
    }
    if (e->kind >= EV_VMEXIT && e->kind != EV_ASPACE) r->hv = 1; /* VM exits, entries, EV_HV_* */
    char w[64];
    switch (e->kind) {
    case EV_INSN: {
        sm_proc_sync(r, home, s->cycle, s->step);
        int role = sm_role_of_mode(r, e->mode);
        if (role != r->role) {
            uint64_t at = s->cycle;
            if (r->pending != NOT_YET && r->pending >= r->c0 && r->role != SP_IDLE &&
                r->role != SP_HYPERVISOR)
                at = r->pending;
            sm_close(r, at, s->step);
            sm_open(r, role, at, s->step);
        }
        r->pending = NOT_YET;
        r->last_cycle = s->cycle + e->b;
        r->last_step = s->step + 1;
        if (r->last_step > m->total) m->total = r->last_step;
        break;
    }
    case EV_TRAP:
    case EV_INTERCEPT:
    case EV_VMEXIT: {
        if (r->role == SP_IDLE) sm_close(r, s->cycle, s->step); /* the interrupt ends a hlt */
        int arrow = AR_ENTER;
        if (e->kind == EV_VMEXIT) {
            vmexit_words(e, 1, w, sizeof w);
            arrow = AR_HOST;
        } else {
            trap_words(e->a, e->b, e->y, 1, w, sizeof w);
            if ((e->b & 0xf) == CAUSE_IRQ) arrow = AR_IRQ;
            if (e->kind == EV_INTERCEPT) arrow = AR_HOST;
        }
        sm_mark(r, s, arrow, w);
        if (r->hv && e->kind != EV_TRAP) { /* the hypervisor runs from here */
            sm_close(r, s->cycle, s->step);
            sm_open(r, SP_HYPERVISOR, s->cycle, s->step);
        }
        r->pending = s->cycle;
        break;
    }
    case EV_SHUTDOWN:
        sm_mark(r, s, AR_ENTER, "shutdown");
        sm_close(r, s->cycle, s->step);
        break;
    case EV_IRET: r->pending = s->cycle; break;
    case EV_HALT: {
        uint64_t idle = e->x | (uint64_t)e->y << 32;
        sm_close(r, s->cycle, s->step);
        if (idle) {
            sm_open(r, SP_IDLE, s->cycle, s->step);
            r->last_cycle = s->cycle + idle;
            if (s->step >= m->o->from && s->step <= m->o->to && r->last_cycle > r->hi_cycle)
                r->hi_cycle = r->last_cycle;
        }
        r->pending = NOT_YET;
        break;
    }
    case EV_VMENTRY:
        sm_vm(r, (int)e->x, s->cycle, s->step);
        sm_proc_sync(r, home, s->cycle, s->step);
        break;
    case EV_HV_VMRUN:
        sm_vm(r, e->a, s->cycle, s->step);
        sm_proc_sync(r, home, s->cycle, s->step);
        break;
    case EV_HV_HALT:
        if (e->x) sm_vm(r, -1, s->cycle, s->step);
        sm_proc_sync(r, home, s->cycle, s->step);
        break;
    case EV_ASPACE: { /* a process switch: the page tables of another address space */
        int vm = r->hv ? r->vm : -1;
        *sm_vm_proc(home, vm) = sm_aspace(home, vm, e->x & PTE_FRAME);
        home->any_as = 1;
        sm_proc_sync(r, home, s->cycle, s->step);
        break;
    }
    default: break;
    }
}

static void smodel_free(smodel *m) {
    for (int i = 0; i < m->nrows; i++) {
        free(m->rows[i].sp);
        free(m->rows[i].vms);
        free(m->rows[i].mk);
        free(m->rows[i].ps);
        free(m->rows[i].as);
        free(m->rows[i].vp);
    }
    free(m->rows);
}

#define SCHED_W 900.0   /* width of the cycle axis, points */
#define SCHED_ROW 110.0 /* distance between two CPU rows */
#define SCHED_H 26.0    /* height of a span */
#define SCHED_VM 12.0   /* height of a VM slice */
#define SCHED_PROC 12.0 /* height of a process span */

/* The process band's colours, by process number (cycling); none yet: grey. */
static const char *const proc_fill[8] = {"#f6c8c8", "#c8daf6", "#d4efc4", "#f6e3b4",
                                         "#e0cdf2", "#c4ece8", "#f2d0e4", "#dcdcb8"};
#define PROC_LINE "#7a7a7a"
#define PROC_NONE_FILL "#f4f4f4"
#define PROC_NONE_LINE "#b0b0b0"

/* An HTML-like label (cgraph keeps one string per text: the HTML one made
 * first is the one the attribute gets). */
static void set_html_label(Agnode_t *n, const char *html) {
    Agraph_t *root = agroot(agraphof(n));
    char *h = agstrdup_html(root, (char *)html);
    set(n, "label", h);
    agstrfree(root, h);
}
#define SCHED_LEVELS 3  /* rows of mark labels above a CPU */

static void sched_legend(Agraph_t *g, double *lx, double ly, const char *id, const char *shape,
                         const char *fill, const char *line, const char *text) {
    char name[64];
    snprintf(name, sizeof name, "legend_%s", id);
    Agnode_t *sw = placed(g, name, *lx + 9, ly);
    if (shape) {
        set(sw, "shape", shape);
        set(sw, "width", "0.12");
        set(sw, "height", "0.1");
    } else {
        set(sw, "width", "0.25");
        set(sw, "height", "0.18");
    }
    set(sw, "fillcolor", fill);
    set(sw, "color", line);
    double tw = text_width(text, 9);
    char lbl[128], v[32];
    snprintf(name, sizeof name, "legend_%s_words", id);
    snprintf(lbl, sizeof lbl, "%s\\l", text);
    Agnode_t *n = words_at(g, name, *lx + 20 + tw / 2, ly, lbl, "9");
    set(n, "fixedsize", "shape"); /* the words may be wider than guessed */
    snprintf(v, sizeof v, "%.3f", tw / 72.0);
    set(n, "width", v);
    *lx += 20 + tw + 16;
}

static Agraph_t *sched_graph(smodel *m, viz_export_info *info, int max) {
    const viz_export_opts *o = m->o;
    Agraph_t *g = new_graph("schedule");

    /* the window in cycles, and the cut */
    uint64_t x0 = NOT_YET, x1 = 0;
    info->items = 0;
    info->cut = 0;
    info->max = max;
    info->hi = 0;
    for (int i = 0; i < m->nrows; i++) {
        srow *r = &m->rows[i];
        if (!r->in_window) continue;
        int kept = 0;
        for (int k = 0; k < r->nsp; k++) {
            const span *sp = &r->sp[k];
            if (sp->c1 <= r->lo_cycle || sp->c0 >= r->hi_cycle) continue;
            if (kept == max) {
                info->cut = 1;
                r->hi_cycle = sp->c0;
                break;
            }
            kept++;
            uint64_t s1 = sp->s1 > o->to ? o->to : sp->s1;
            if (s1 > info->hi) info->hi = s1;
        }
        info->items += kept;
        if (r->lo_cycle < x0) x0 = r->lo_cycle;
        if (r->hi_cycle > x1) x1 = r->hi_cycle;
    }
    if (!info->cut) {
        uint64_t end = info->total ? info->total - 1 : 0;
        info->hi = o->to < end ? o->to : end;
    }
    if (x0 == NOT_YET) x0 = x1 = 0;
    if (x1 <= x0) x1 = x0 + 1;
    double scale = SCHED_W / (double)(x1 - x0);

    declare(g, AGRAPH, "layout", "nop2");
    declare(g, AGRAPH, "bgcolor", "white");
    declare(g, AGRAPH, "pad", "0.3");
    declare(g, AGRAPH, "fontname", FONT);
    declare(g, AGRAPH, "labelloc", "t");
    char cap[1024], cyc[64];
    snprintf(cyc, sizeof cyc, ", cycles %llu-%llu", (unsigned long long)x0, (unsigned long long)x1);
    caption(cap, sizeof cap, o, m->header, "schedule", info, "spans of a CPU", cyc);
    declare_html(g, "label", cap);
    declare(g, AGNODE, "fontname", FONT);
    declare(g, AGNODE, "fontsize", "10");
    declare(g, AGNODE, "shape", "box");
    declare(g, AGNODE, "style", "filled");
    declare(g, AGNODE, "fixedsize", "true");
    declare(g, AGNODE, "penwidth", "0.6");
    declare(g, AGNODE, "label", "\\N");
    declare(g, AGEDGE, "arrowhead", "none");

    unsigned used = 0, used_marks = 0;
    int row = 0, any_vm = 0, any_proc = 0;
    char name[64], text[400];
    for (int oi = 0; oi < SCHED_MACHINES * HV_CPUS_DRAWN; oi++) { /* by machine, then by CPU */
        int i = (oi % HV_CPUS_DRAWN) * SCHED_MACHINES + oi / HV_CPUS_DRAWN;
        if (i >= m->nrows) continue;
        srow *r = &m->rows[i];
        if (!r->in_window) continue;
        double y = -row * SCHED_ROW;
        uint64_t per[SP_ROLES] = {0}, all = 0;

        /* the CPU on the left */
        text[0] = 0;
        int mi = r->machine;
        cat(text, sizeof text, "CPU %d", m->multi[mi] ? r->pcpu : i);
        if (mi < o->nmachines && o->machine_names && o->machine_names[mi]) {
            cat(text, sizeof text, "\\nmachine '");
            cat_esc(text, sizeof text, o->machine_names[mi]);
            cat(text, sizeof text, "'");
        }
        snprintf(name, sizeof name, "cpu%d", i);
        words_at(g, name, -70, y, text, "10");

        /* what it ran */
        for (int k = 0; k < r->nsp; k++) {
            const span *sp = &r->sp[k];
            uint64_t c0 = sp->c0 < r->lo_cycle ? r->lo_cycle : sp->c0;
            uint64_t c1 = sp->c1 > r->hi_cycle ? r->hi_cycle : sp->c1;
            if (c1 <= c0) continue;
            const struct span_role_info *ri = &span_roles[sp->role];
            used |= 1u << sp->role;
            per[sp->role] += c1 - c0;
            all += c1 - c0;
            double a = (double)(c0 - x0) * scale, b = (double)(c1 - x0) * scale;
            snprintf(name, sizeof name, "cpu%d_span%d", i, k + 1);
            Agnode_t *n = box_at(g, name, a, b, y, SCHED_H, ri->fill, ri->line);
            if (b - a > text_width(ri->name, 10) + 8) set(n, "label", ri->name);
            snprintf(text, sizeof text, "%s: cycles %llu-%llu (%llu), steps %llu-%llu", ri->legend,
                     (unsigned long long)c0, (unsigned long long)c1, (unsigned long long)(c1 - c0),
                     (unsigned long long)sp->s0, (unsigned long long)sp->s1);
            set(n, "tooltip", text);
        }

        /* the guest processes above it: whose page tables the CPU used */
        double top = y + SCHED_H / 2;
        int any_as = m->rows[r->machine].any_as; /* its machine switched page tables */
        for (int k = 0; any_as && k < r->nps; k++) {
            const pspan *sp = &r->ps[k];
            uint64_t c0 = sp->c0 < r->lo_cycle ? r->lo_cycle : sp->c0;
            uint64_t c1 = sp->c1 > r->hi_cycle ? r->hi_cycle : sp->c1;
            if (c1 <= c0) continue;
            any_proc = 1;
            double a = (double)(c0 - x0) * scale, b = (double)(c1 - x0) * scale;
            snprintf(name, sizeof name, "cpu%d_proc%d", i, k + 1);
            Agnode_t *n =
                box_at(g, name, a, b, top + 3 + SCHED_PROC / 2, SCHED_PROC,
                       sp->proc ? proc_fill[(sp->proc - 1) % 8] : PROC_NONE_FILL,
                       sp->proc ? PROC_LINE : PROC_NONE_LINE);
            set(n, "fontsize", "8");
            char word[32], ptbr[16];
            snprintf(word, sizeof word, "process %d", sp->proc - 1); /* shown from 0: the boot page tables */
            snprintf(ptbr, sizeof ptbr, "0x%08x", sp->ptbr);
            if (!sp->proc) {
                if (b - a > text_width("-", 8) + 4) set(n, "label", "-");
            } else if (b - a > text_width(word, 8) + text_width(ptbr, 6) + 10) {
                snprintf(text, sizeof text, "%s <FONT POINT-SIZE=\"6\">%s</FONT>", word, ptbr);
                set_html_label(n, text);
            } else if (b - a > text_width(word, 8) + 6) {
                set(n, "label", word);
            } else {
                snprintf(word, sizeof word, "%d", sp->proc - 1);
                if (b - a > text_width(word, 8) + 4) set(n, "label", word);
            }
            text[0] = 0;
            if (sp->proc)
                cat(text, sizeof text, "process %d: page tables at 0x%08x", sp->proc - 1, sp->ptbr);
            else
                cat(text, sizeof text, "no process yet: the page tables were not switched");
            if (sp->vm >= 0) cat(text, sizeof text, " (vm %d)", sp->vm);
            cat(text, sizeof text, ", cycles %llu-%llu, steps %llu-%llu", (unsigned long long)c0,
                (unsigned long long)c1, (unsigned long long)sp->s0, (unsigned long long)sp->s1);
            set(n, "tooltip", text);
        }
        if (any_as) top += SCHED_PROC + 3;

        /* the VM slices above them */
        if (r->vm >= 0) sm_vm(r, -1, r->last_cycle, r->last_step);
        for (int k = 0; k < r->nvms; k++) {
            const span *sp = &r->vms[k];
            uint64_t c0 = sp->c0 < r->lo_cycle ? r->lo_cycle : sp->c0;
            uint64_t c1 = sp->c1 > r->hi_cycle ? r->hi_cycle : sp->c1;
            if (c1 <= c0) continue;
            any_vm = 1;
            double a = (double)(c0 - x0) * scale, b = (double)(c1 - x0) * scale;
            snprintf(name, sizeof name, "cpu%d_vm%d", i, k + 1);
            Agnode_t *n = box_at(g, name, a, b, top + 3 + SCHED_VM / 2, SCHED_VM,
                                 sp->role % 2 ? "#c9e7c9" : "#a9d8a9", "#4f9a4f");
            snprintf(text, sizeof text, "vm %d", sp->role);
            if (b - a > text_width(text, 8) + 6) {
                set(n, "label", text);
                set(n, "fontsize", "8");
            }
            snprintf(text, sizeof text, "vm %d on the CPU: cycles %llu-%llu, steps %llu-%llu",
                     sp->role, (unsigned long long)c0, (unsigned long long)c1,
                     (unsigned long long)sp->s0, (unsigned long long)sp->s1);
            set(n, "tooltip", text);
        }
        if (r->nvms) top += SCHED_VM + 3;

        /* the marks, with their words where there is room */
        double room[SCHED_LEVELS], said_at = -1e9;
        const char *said = "";
        for (int l = 0; l < SCHED_LEVELS; l++)
            room[l] = -1e9;
        for (int k = 0; k < r->nmk; k++) {
            const smark *mk = &r->mk[k];
            if (mk->cycle < r->lo_cycle || mk->cycle > r->hi_cycle || mk->step < o->from ||
                mk->step > o->to)
                continue;
            used_marks |= 1u << mk->arrow;
            double x = (double)(mk->cycle - x0) * scale;
            snprintf(name, sizeof name, "cpu%d_mark%d", i, k + 1);
            Agnode_t *n = placed(g, name, x, top + 5);
            set(n, "shape", "invtriangle");
            set(n, "width", "0.12");
            set(n, "height", "0.1");
            set(n, "fillcolor", arrows[mk->arrow].color);
            set(n, "color", arrows[mk->arrow].color);
            set(n, "tooltip", mk->tip);
            double tw = text_width(mk->label, 8);
            if (strcmp(said, mk->label) == 0 && x - said_at < 150) continue; /* said already */
            for (int l = 0; l < SCHED_LEVELS; l++) {
                if (x - tw / 2 < room[l] + 4) continue;
                room[l] = x + tw / 2;
                said = mk->label;
                said_at = x;
                snprintf(name, sizeof name, "cpu%d_mark%d_words", i, k + 1);
                n = words_at(g, name, x, top + 16 + 11 * l, mk->label, "8");
                set(n, "fontcolor", arrows[mk->arrow].color);
                set(n, "tooltip", mk->tip);
                break;
            }
        }

        /* the share of each on the right */
        text[0] = 0;
        for (int sr = 0; sr < SP_ROLES; sr++)
            if (per[sr])
                cat(text, sizeof text, "%s%s %.1f%%", text[0] ? "\\n" : "", span_roles[sr].name,
                    100.0 * (double)per[sr] / (double)(all ? all : 1));
        snprintf(name, sizeof name, "cpu%d_share", i);
        words_at(g, name, SCHED_W + 50, y, text[0] ? text : "(nothing ran)", "9");
        row++;
    }

    /* the cycle axis */
    double ya = -(row - 1) * SCHED_ROW - SCHED_H / 2 - 12;
    Agnode_t *a0 = placed(g, "axis_start", 0, ya), *a1 = placed(g, "axis_end", SCHED_W, ya);
    set(a0, "shape", "point");
    set(a0, "width", "0.02");
    set(a1, "shape", "point");
    set(a1, "width", "0.02");
    Agedge_t *ax = agedge(g, a0, a1, NULL, 1);
    set(ax, "color", "gray40");
    uint64_t span_c = x1 - x0, raw = span_c / 8 ? span_c / 8 : 1, mag = 1, step;
    while (mag <= raw / 10)
        mag *= 10;
    step = raw <= mag ? mag : raw <= 2 * mag ? 2 * mag : raw <= 5 * mag ? 5 * mag : 10 * mag;
    int nt = 0;
    for (uint64_t v = (x0 + step - 1) / step * step; v <= x1 && nt < 40; v += step, nt++) {
        double x = (double)(v - x0) * scale;
        char lbl[32];
        snprintf(name, sizeof name, "tick%d", nt + 1);
        Agnode_t *tk = box_at(g, name, x - 0.3, x + 0.3, ya, 6, "gray40", "gray40");
        (void)tk;
        fmt_cycles(v, lbl, sizeof lbl);
        snprintf(name, sizeof name, "tick%d_words", nt + 1);
        words_at(g, name, x, ya - 11, lbl, "9");
    }
    words_at(g, "axis_unit", SCHED_W + 40, ya - 11, "cycles", "9");

    /* the legend */
    double lx = 0, ly = ya - 36;
    for (int sr = 0; sr < SP_ROLES; sr++)
        if (used & (1u << sr))
            sched_legend(g, &lx, ly, span_roles[sr].id, NULL, span_roles[sr].fill,
                         span_roles[sr].line, span_roles[sr].legend);
    if (any_vm) sched_legend(g, &lx, ly, "vm", NULL, "#a9d8a9", "#4f9a4f", "VM on the CPU");
    if (any_proc)
        sched_legend(g, &lx, ly, "process", NULL, proc_fill[0], PROC_LINE,
                     "guest process: its page tables");
    static const char *const mark_legend[AR_STYLES] = {[AR_ENTER] = "trap or syscall",
                                                       [AR_IRQ] = "interrupt",
                                                       [AR_HOST] = "exit to the hypervisor / host"};
    for (int a = 0; a < AR_STYLES; a++) {
        if (!(used_marks & (1u << a)) || !mark_legend[a]) continue;
        char id[16];
        snprintf(id, sizeof id, "mark%d", a);
        sched_legend(g, &lx, ly, id, "invtriangle", arrows[a].color, arrows[a].color,
                     mark_legend[a]);
    }
    return g;
}

/* ==== writing ============================================================================== */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Write g to file through file.tmp: DOT with agwrite, the rest rendered. */
static int write_graph(Agraph_t *g, const char *engine, int format, const char *file, char *err,
                       size_t errlen) {
    size_t plen = strlen(file);
    char *tmp = malloc(plen + 5);
    if (!tmp) return fail(err, errlen, "out of memory");
    memcpy(tmp, file, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fail(err, errlen, "cannot write '%s': %s", file, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = 0;
    if (format == VIZ_FORMAT_DOT) {
        if (agwrite(g, f) != 0) rc = fail(err, errlen, "cannot write '%s'", file);
        if (fclose(f) != 0 && !rc)
            rc = fail(err, errlen, "cannot write '%s': %s", file, strerror(errno));
    } else {
        fclose(f);
        GVC_t *gvc = gvContext();
        if (!gvc) {
            rc = fail(err, errlen, "cannot start Graphviz");
        } else if (gvLayout(gvc, g, engine) != 0) {
            rc = fail(err, errlen, "Graphviz could not lay out the %s diagram", agnameof(g));
        } else {
            if (gvRenderFilename(gvc, g, viz_export_format_name(format), tmp) != 0)
                rc = fail(err, errlen, "Graphviz could not render '%s' as %s", file,
                          viz_export_format_name(format));
            gvFreeLayout(gvc, g);
        }
        if (gvc) gvFreeContext(gvc);
        if (!rc) { /* some Graphviz failures show only as an empty file */
            FILE *chk = fopen(tmp, "rb");
            long size = -1;
            if (chk && fseek(chk, 0, SEEK_END) == 0) size = ftell(chk);
            if (chk) fclose(chk);
            if (size <= 0)
                rc = fail(err, errlen, "Graphviz wrote nothing for '%s' (format %s)", file,
                          viz_export_format_name(format));
        }
    }
    if (!rc && rename(tmp, file) != 0)
        rc = fail(err, errlen, "cannot write '%s': %s", file, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

int viz_export(const cpu_event *ev, size_t n, const viz_export_opts *o, const char *file,
               viz_export_info *info_out, char *err, size_t errlen) {
    viz_export_info info = {0};
    cpu_trace_reader rd;
    Agraph_t *g = NULL;
    const char *engine = "dot";
    info.lo = o->from;
    if (o->view == VIZ_VIEW_TRAPS) {
        tmodel t = {.o = o, .max = o->max_items > 0 ? o->max_items : 60};
        cpu_reader_init(&rd);
        cpu_reader_feed(&rd, ev, n, trap_event, &t);
        cpu_reader_free(&rd);
        info.items = t.nit;
        info.cut = t.cut;
        info.max = t.max;
        info.total = t.total;
        uint64_t end = t.total ? t.total - 1 : 0;
        info.hi = t.cut ? t.last : (o->to < end ? o->to : end);
        for (int i = 0; i < t.nnodes; i++) { /* stays still open end with the picture */
            tnode *p = &t.nodes[i];
            if (p->kind == N_STAY && p->s1 != NOT_YET && p->s1 > info.hi && p->s0 <= info.hi)
                p->s1 = info.hi;
            if (p->kind != N_STAY || p->s1 != NOT_YET) continue;
            int mid = t.lanes[p->lane].machine;
            uint64_t last = info.hi;
            if (mid < t.nm && t.m[mid].steps && t.m[mid].steps - 1 < last)
                last = t.m[mid].steps - 1;
            p->s1 = last < p->s0 ? p->s0 : last;
            p->c1 = p->c0;
        }
        g = trap_graph(&t, &info);
        tmodel_free(&t);
    } else {
        smodel m = {.o = o};
        cpu_reader_init(&rd);
        cpu_reader_feed(&rd, ev, n, sched_event, &m);
        cpu_reader_free(&rd);
        for (int i = 0; i < m.nrows; i++) { /* close the spans still open */
            srow *r = &m.rows[i];
            sm_close(r, r->last_cycle, r->last_step);
            sm_proc_close(r, &m.rows[r->machine], r->last_cycle, r->last_step);
        }
        info.total = m.total;
        g = sched_graph(&m, &info, o->max_items > 0 ? o->max_items : 300);
        engine = "nop2";
        smodel_free(&m);
    }
    if (!g) return fail(err, errlen, "cannot build the graph");
    int rc = write_graph(g, engine, o->format, file, err, errlen);
    agclose(g);
    if (info_out) *info_out = info;
    return rc;
}
