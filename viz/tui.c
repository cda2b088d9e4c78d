/* viz/tui.c -- `vlab --tui`: a full-screen viewer of a recorded run (see
 * viz/tui.h; the keys and the screen are described in docs/tui.md).
 *
 * Model.  The run is over when the TUI opens: its history holds every event
 * and checkpoints of every machine.  The cursor is a *position*: the number of
 * the instruction about to run, counted over the whole run and all machines
 * (one more position, "the end of the run", follows the last instruction when
 * that state can be rebuilt).  An event (trap, I/O, ...) happened between two
 * instructions; an event at position p is shown just above instruction p, so
 * "run to the next trap" stops right after the trap, before the first
 * instruction of its handler.
 *
 * Index.  The history keeps instructions compactly (EV_BLOCK, EV_REPEAT over
 * page snapshots, cpu/event.h).  The index keeps one 32-byte entry per such
 * record (its first position and step, its record and the EV_PAGE it decodes
 * from) and one 24-byte entry per other event; an instruction is decoded on
 * demand, straight from the page bytes inside the history.  So 10 million
 * steps of a loop cost a few hundred kilobytes, not 10 million entries.
 *
 * State.  The machine at a position is rebuilt with sim_history_state_at
 * into a scratch machine per recorded machine; moving forward inside the same
 * checkpoint interval only runs the scratch machine on, so stepping costs one
 * instruction, and stepping back costs one restore plus at most one
 * checkpoint interval of instructions.
 *
 * Screen.  Everything is drawn into a character canvas; the terminal front
 * end copies it to ncurses (the only ncurses calls of vlab are in this file),
 * the script front end prints it as text. */
#include "viz/tui.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/isa.h"
#include "sim/lua_host.h"
#include "viz/text.h"

#define NO_REC UINT32_MAX
#define NO_EV ((size_t)-1)
#define NO_VM 0xff
#define MIN_W 80
#define MIN_H 24
#define MAX_BPS 16
#define COLS_W 23 /* "   step ring pc        " before the text of a log line */

/* ==== the index of the history ============================================================ */

typedef struct run_ent {
    uint64_t pos0;     /* position of its first instruction */
    uint64_t step0;    /* the machine's step at that instruction */
    uint32_t rec;      /* its EV_BLOCK (or EV_INSN) record in the history */
    uint32_t page_rec; /* the EV_PAGE the block decodes from, or NO_REC */
    uint32_t reps;     /* passes through the block (an EV_REPEAT: several) */
    uint16_t per;      /* instructions in one pass */
    uint8_t machine;
    uint8_t vm; /* the hypervisor's VM on the CPU (EV_HV_VMRUN), or NO_VM */
} run_ent;
_Static_assert(sizeof(run_ent) == 32, "keep the index compact");

typedef struct ev_ref {
    uint64_t pos;  /* happened after instruction pos-1 and before instruction pos */
    uint64_t step; /* its stamp: the step of the instruction that caused it */
    uint32_t rec;
    uint8_t machine;
    uint8_t cls; /* VIZ_SHOW_* class, for --show */
} ev_ref;

/* An address-space switch (EV_ASPACE): from position pos on, the machine's
 * VM (or the machine itself) runs in guest process `proc` -- its page-table
 * base numbered in the order the machine or VM first used it. */
typedef struct as_ref {
    uint64_t pos;
    uint32_t ptbr;
    uint16_t proc;
    uint8_t machine, vm; /* vm: NO_VM on a machine of its own */
} as_ref;

/* A machine with several physical CPUs switched to CPU pcpu (EV_HV_PCPU)
 * at position pos: the instructions from there on are that CPU's. */
typedef struct cpu_ref {
    uint64_t pos;
    uint8_t machine, pcpu;
} cpu_ref;
#define TUI_CPUS 8 /* hypervisor/hv.h's HV_MAX_CPUS */

typedef struct tui_index {
    const sim_history *h;
    cpu_ref *cpus; /* the CPU switches, in order */
    size_t ncpus, capcpus;
    run_ent *run;
    size_t nrun, caprun;
    ev_ref *ev;
    size_t nev, capev;
    uint64_t ninsn;
    uint32_t **first_page; /* per machine, per physical page: its first EV_PAGE ("patched") */
    uint32_t *npages;
    int nm;
    int nvm;       /* VMs seen (EV_HV_VMRUN): 1 + the highest VM id */
    size_t *xlate; /* the EV_HV_TRANSLATE events, for the code pane */
    size_t nxlate, capxlate;
    as_ref *as; /* the address-space switches, in order */
    size_t nas, capas;
    as_ref *as_first; /* each (machine, VM, ptbr) once: its first switch */
    size_t nfirst, capfirst;
    size_t hint; /* the run entry found last (lookups are local) */
    /* the addresses of the instructions of the block decoded last */
    uint32_t blk_rec, blk_page, blk_n;
    uint32_t blk_pc[4096];
} tui_index;

static uint8_t ev_class(const cpu_event *e) {
    return (uint8_t)viz_event_class(e); /* as the trace: --show means the same */
}

/* Grow an array of n elements of size sz to hold one more; 0, or -1. */
static int ix_room(void **p, size_t n, size_t *cap, size_t sz) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = realloc(*p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Record an address-space switch of machine m (VM vm) at position pos. */
static int ix_add_aspace(tui_index *ix, uint64_t pos, int m, int vm, uint32_t ptbr) {
    uint16_t proc = 0, n = 0;
    for (size_t i = 0; i < ix->nfirst && !proc; i++) {
        const as_ref *f = &ix->as_first[i];
        if (f->machine != m || f->vm != vm) continue;
        n++;
        if (f->ptbr == ptbr) proc = f->proc;
    }
    as_ref r = {.pos = pos, .ptbr = ptbr, .machine = (uint8_t)m, .vm = (uint8_t)vm};
    if (!proc) {
        r.proc = proc = n == UINT16_MAX ? n : (uint16_t)(n + 1);
        if (ix_room((void **)&ix->as_first, ix->nfirst, &ix->capfirst, sizeof r)) return -1;
        ix->as_first[ix->nfirst++] = r;
    }
    r.proc = proc;
    if (ix_room((void **)&ix->as, ix->nas, &ix->capas, sizeof r)) return -1;
    ix->as[ix->nas++] = r;
    return 0;
}

static int ix_add_run(tui_index *ix, const run_ent *r) {
    if (ix->nrun == ix->caprun) {
        size_t cap = ix->caprun ? ix->caprun * 2 : 1024;
        run_ent *p = realloc(ix->run, cap * sizeof *p);
        if (!p) return -1;
        ix->run = p;
        ix->caprun = cap;
    }
    ix->run[ix->nrun++] = *r;
    return 0;
}

static int ix_add_ev(tui_index *ix, const ev_ref *e) {
    if (ix->nev == ix->capev) {
        size_t cap = ix->capev ? ix->capev * 2 : 1024;
        ev_ref *p = realloc(ix->ev, cap * sizeof *p);
        if (!p) return -1;
        ix->ev = p;
        ix->capev = cap;
    }
    ix->ev[ix->nev++] = *e;
    return 0;
}

static void ix_free(tui_index *ix) {
    for (int i = 0; i < ix->nm; i++)
        free(ix->first_page[i]);
    free(ix->first_page);
    free(ix->npages);
    free(ix->run);
    free(ix->ev);
    free(ix->xlate);
    free(ix->as);
    free(ix->as_first);
    free(ix->cpus);
    memset(ix, 0, sizeof *ix);
}

/* Walk the raw records once, as cpu_reader_feed does, without expanding
 * blocks.  Returns 0, or -1 (out of memory, or a history too long). */
static int ix_build(tui_index *ix, const sim_history *h) {
    memset(ix, 0, sizeof *ix);
    ix->h = h;
    ix->blk_rec = NO_REC;
    if (h->n >= NO_REC) return -1;
    ix->nm = h->nm > 0 ? h->nm : 1;
    ix->first_page = calloc((size_t)ix->nm, sizeof *ix->first_page);
    ix->npages = calloc((size_t)ix->nm, sizeof *ix->npages);
    uint32_t **cur_page = calloc((size_t)ix->nm, sizeof *cur_page);
    uint8_t *vm_of = NULL, *vm_on = NULL, *cpu_of = NULL;
    if (!ix->first_page || !ix->npages || !cur_page) goto oom;
    for (int m = 0; m < h->nm; m++) {
        uint32_t np = h->m[m].mem_size / CPU_PAGE;
        ix->npages[m] = np;
        ix->first_page[m] = malloc((np ? np : 1) * sizeof(uint32_t));
        cur_page[m] = malloc((np ? np : 1) * sizeof(uint32_t));
        if (!ix->first_page[m] || !cur_page[m]) goto oom;
        for (uint32_t i = 0; i < np; i++)
            ix->first_page[m][i] = cur_page[m][i] = NO_REC;
    }
    uint64_t step = 0, pos = 0;
    int cur = 0;
    uint32_t last_block = NO_REC, last_page = NO_REC;
    vm_of = malloc((size_t)ix->nm); /* per machine: the VM on its CPU */
    vm_on = malloc((size_t)ix->nm * TUI_CPUS); /* ... on each of its CPUs */
    cpu_of = calloc((size_t)ix->nm, 1);        /* ... and which CPU runs now */
    if (!vm_of || !vm_on || !cpu_of) goto oom;
    memset(vm_of, NO_VM, (size_t)ix->nm);
    memset(vm_on, NO_VM, (size_t)ix->nm * TUI_CPUS);
    for (size_t i = 0; i < h->n; i += 1 + cpu_event_payload_records(&h->ev[i])) {
        const cpu_event *e = &h->ev[i];
        switch (e->kind) {
        case EV_NONE:
        case EV_COST: break;
        case EV_SYNC: step = e->pc | (uint64_t)e->a << 32 | (uint64_t)e->b << 40; break;
        case EV_PAGE:
            if (cur < h->nm && e->y < ix->npages[cur]) {
                cur_page[cur][e->y] = (uint32_t)i;
                if (ix->first_page[cur][e->y] == NO_REC) ix->first_page[cur][e->y] = (uint32_t)i;
            }
            break;
        case EV_BLOCK: {
            uint32_t count = e->x & 0xfff, ppn = e->x >> 12;
            last_block = (uint32_t)i;
            last_page = cur < h->nm && ppn < ix->npages[cur] ? cur_page[cur][ppn] : NO_REC;
            if (!count) break;
            run_ent r = {.pos0 = pos,
                         .step0 = step,
                         .rec = (uint32_t)i,
                         .page_rec = last_page,
                         .reps = 1,
                         .per = (uint16_t)count,
                         .machine = (uint8_t)cur,
                         .vm = vm_of[cur]};
            if (ix_add_run(ix, &r)) goto oom;
            pos += count;
            step += count;
            break;
        }
        case EV_REPEAT: {
            if (last_block == NO_REC || !e->x) break;
            uint32_t count = h->ev[last_block].x & 0xfff;
            if (!count) break;
            run_ent r = {.pos0 = pos,
                         .step0 = step,
                         .rec = last_block,
                         .page_rec = last_page,
                         .reps = e->x,
                         .per = (uint16_t)count,
                         .machine = (uint8_t)cur,
                         .vm = vm_of[cur]};
            if (ix_add_run(ix, &r)) goto oom;
            pos += (uint64_t)count * e->x;
            step += (uint64_t)count * e->x;
            break;
        }
        case EV_INSN: {
            run_ent r = {.pos0 = pos,
                         .step0 = step,
                         .rec = (uint32_t)i,
                         .page_rec = NO_REC,
                         .reps = 1,
                         .per = 1,
                         .machine = (uint8_t)cur,
                         .vm = vm_of[cur]};
            if (ix_add_run(ix, &r)) goto oom;
            pos++;
            step++;
            break;
        }
        case EV_TEXT:
            /* the run's header and summary are not events of the machines */
            if (e->a == TEXT_HEADER || e->a == TEXT_SUMMARY) break;
            /* fall through */
        default: {
            if (e->kind == EV_CONTEXT) cur = e->a < ix->nm ? e->a : 0;
            int vm = e->kind == EV_HV_VMRUN ? e->a : e->kind == EV_VMENTRY ? (int)e->x : -1;
            if (e->kind == EV_HV_PCPU && e->a < TUI_CPUS) { /* another CPU's instructions follow */
                cpu_of[cur] = e->a;
                vm_of[cur] = vm_on[cur * TUI_CPUS + e->a];
                if (ix->ncpus == ix->capcpus) {
                    size_t cap = ix->capcpus ? ix->capcpus * 2 : 64;
                    cpu_ref *p = realloc(ix->cpus, cap * sizeof *p);
                    if (!p) goto oom;
                    ix->cpus = p;
                    ix->capcpus = cap;
                }
                ix->cpus[ix->ncpus++] = (cpu_ref){pos, (uint8_t)cur, e->a};
            }
            if (vm >= 0 && vm < NO_VM) { /* a world switch: this VM has the CPU now */
                vm_of[cur] = (uint8_t)vm;
                vm_on[cur * TUI_CPUS + cpu_of[cur]] = (uint8_t)vm;
                if (vm + 1 > ix->nvm) ix->nvm = vm + 1;
            }
            if (e->kind == EV_ASPACE && ix_add_aspace(ix, pos, cur, vm_of[cur], e->x & PTE_FRAME))
                goto oom;
            if (e->kind == EV_HV_TRANSLATE) {
                if (ix->nxlate == ix->capxlate) {
                    size_t cap = ix->capxlate ? ix->capxlate * 2 : 64;
                    size_t *p = realloc(ix->xlate, cap * sizeof *p);
                    if (!p) goto oom;
                    ix->xlate = p;
                    ix->capxlate = cap;
                }
                ix->xlate[ix->nxlate++] = ix->nev;
            }
            ev_ref r = {.pos = pos,
                        .step = step,
                        .rec = (uint32_t)i,
                        .machine = (uint8_t)cur,
                        .cls = ev_class(e)};
            if (ix_add_ev(ix, &r)) goto oom;
            break;
        }
        }
    }
    ix->ninsn = pos;
    for (int m = 0; m < h->nm; m++)
        free(cur_page[m]);
    free(cur_page);
    free(vm_of);
    free(vm_on);
    free(cpu_of);
    return 0;
oom:
    free(vm_of);
    free(vm_on);
    free(cpu_of);
    if (cur_page)
        for (int m = 0; m < h->nm; m++)
            free(cur_page[m]);
    free(cur_page);
    ix_free(ix);
    return -1;
}

static size_t ix_bytes(const tui_index *ix) {
    size_t b = ix->caprun * sizeof(run_ent) + ix->capev * sizeof(ev_ref) +
               (ix->capas + ix->capfirst) * sizeof(as_ref);
    for (int m = 0; m < ix->nm; m++)
        b += (ix->npages[m] ? ix->npages[m] : 1) * sizeof(uint32_t);
    return b;
}

/* The run entry holding position p (p < ninsn). */
static size_t ix_find(tui_index *ix, uint64_t p) {
    size_t h = ix->hint;
    if (h < ix->nrun) {
        const run_ent *r = &ix->run[h];
        if (p >= r->pos0 && p < r->pos0 + (uint64_t)r->per * r->reps) return h;
        if (h + 1 < ix->nrun && p >= ix->run[h + 1].pos0 &&
            p < ix->run[h + 1].pos0 + (uint64_t)ix->run[h + 1].per * ix->run[h + 1].reps)
            return ix->hint = h + 1;
    }
    size_t lo = 0, hi = ix->nrun;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->run[mid].pos0 <= p)
            lo = mid;
        else
            hi = mid;
    }
    return ix->hint = lo;
}

/* The guest process machine m (VM vm, or NO_VM) runs in at position p: its
 * last address-space switch, or NULL before the first. */
static const as_ref *ix_process_at(const tui_index *ix, uint64_t p, int m, int vm) {
    size_t lo = 0, hi = ix->nas; /* the first switch after p */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->as[mid].pos <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0;)
        if (ix->as[i].machine == m && ix->as[i].vm == vm) return &ix->as[i];
    return NULL;
}

/* The physical CPU machine m runs on at position p, or -1 for a machine
 * with one (no EV_HV_PCPU). */
static int ix_cpu_at(const tui_index *ix, uint64_t p, int m) {
    size_t lo = 0, hi = ix->ncpus; /* the first switch after p */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->cpus[mid].pos <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0;)
        if (ix->cpus[i].machine == m) return ix->cpus[i].pcpu;
    return -1;
}

/* The character of a process in the strip: 0-9, a-z, + beyond; - none yet.
 * (proc counts from 1, 0 meaning none; processes are shown from 0, so a
 * kernel's boot page tables are process 0 and vlab-os's pid n is process n.) */
#define PROC_BUCKETS 38
static int proc_bucket(int proc) { return proc < PROC_BUCKETS - 1 ? proc : PROC_BUCKETS - 1; }
static char proc_char(int bucket) {
    if (bucket == 0) return '-';
    if (bucket <= 10) return (char)('0' + bucket - 1);
    if (bucket < PROC_BUCKETS - 1) return (char)('a' + bucket - 11);
    return '+';
}

/* The first event at position >= p. */
static size_t ix_ev_first(const tui_index *ix, uint64_t p) {
    size_t lo = 0, hi = ix->nev;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->ev[mid].pos < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct insn_info {
    uint64_t pos, step;
    uint32_t pc, w0, w1;
    cpu_insn in;
    uint8_t mode, machine, vm;
} insn_info;

static const uint8_t *ix_page_bytes(const tui_index *ix, uint32_t page_rec) {
    return page_rec == NO_REC ? NULL : (const uint8_t *)(ix->h->ev + page_rec + 1);
}

/* Decode instruction k (k < per) of a block, as the reader does. */
static void block_insn(tui_index *ix, const run_ent *r, uint32_t k, insn_info *ii) {
    const cpu_event *e = &ix->h->ev[r->rec];
    ii->mode = e->mode;
    ii->machine = r->machine;
    ii->vm = r->vm;
    if (e->kind == EV_INSN) { /* alone: the words are in the record */
        ii->pc = e->pc;
        ii->w0 = e->x;
        ii->w1 = e->y;
        ii->in = cpu_decode(e->x, e->y);
        return;
    }
    const uint8_t *page = ix_page_bytes(ix, r->page_rec);
    if (ix->blk_rec != r->rec || ix->blk_page != r->page_rec || ix->blk_n != r->per) {
        uint32_t pc = e->pc; /* the instruction addresses of the block, decoded once */
        for (uint32_t i = 0; i < r->per; i++) {
            ix->blk_pc[i] = pc;
            uint32_t off = pc & 0xfff, w0 = 0;
            if (page) memcpy(&w0, page + off, 4);
            pc += cpu_decode(w0, 0).size;
        }
        ix->blk_rec = r->rec;
        ix->blk_page = r->page_rec;
        ix->blk_n = r->per;
    }
    uint32_t pc = ix->blk_pc[k], off = pc & 0xfff, w0 = 0, w1 = 0;
    if (page) {
        memcpy(&w0, page + off, 4);
        if (off <= 0xff8) memcpy(&w1, page + off + 4, 4);
    }
    ii->pc = pc;
    ii->in = cpu_decode(w0, w1);
    ii->w0 = w0;
    ii->w1 = ii->in.size == 8 ? w1 : 0;
}

static void ix_insn(tui_index *ix, uint64_t p, insn_info *ii) {
    const run_ent *r = &ix->run[ix_find(ix, p)];
    uint64_t k = p - r->pos0;
    block_insn(ix, r, (uint32_t)(k % r->per), ii);
    ii->pos = p;
    ii->step = r->step0 + k;
}

/* ==== the viewer's state ================================================================== */

enum { BP_ADDR, BP_MNEM, BP_EVENT, BP_VM };

typedef struct bp {
    int kind;
    uint32_t val;
} bp;

/* Event kinds for breakpoints and the run keys. */
enum {
    EK_TRAP,
    EK_SYSCALL,
    EK_INTERRUPT,
    EK_EXCEPTION,
    EK_IO,
    EK_IRET,
    EK_SENSITIVE,
    EK_HALT,
    EK_EXIT,
    EK_SWITCH,
    EK_INJECT,
    EK_SHADOW,
    EK_TRANSLATE,
    EK_SHUTDOWN,
    EK_ASPACE,
    EK_COUNT
};
static const char *const ek_names[EK_COUNT] = {
    "trap", "syscall", "interrupt", "exception", "io",     "iret",      "sensitive",
    "halt", "exit",    "switch",    "inject",    "shadow", "translate", "shutdown", "process"};

/* What the run keys look for; B repeats the last one backwards. */
enum { RUN_NONE = -1, RUN_BREAK = EK_COUNT };

typedef struct mcache {
    cpu_t *cpu;
    uint64_t step; /* the step it was rebuilt to */
    int base;      /* the checkpoint it was rebuilt from */
    int valid;
    int stuck;   /* the machine stopped (halt) before reaching step */
    int settled; /* what was due at the fetch has been delivered (settle) */
} mcache;

typedef struct regview {
    int valid, machine;
    uint32_t r[16], pc, flags, cr[CPU_NCR];
} regview;

typedef struct cv_cell {
    char ch;
    uint8_t st; /* style; bit 7: reverse video on top */
} cv_cell;

typedef struct canvas {
    int w, h;
    cv_cell *c;
} canvas;

typedef struct tui {
    const sim_history *h;
    tui_index ix;
    uint64_t npos; /* positions: instructions, and the end of the run if it can be shown */
    int end_ok;
    uint64_t cur;
    mcache *mc;
    int nm;
    unsigned show;
    bp bps[MAX_BPS];
    int nbps;
    int last_run;
    size_t stop_ev; /* the event the last run stopped at (highlighted), or NO_EV */
    char msg[512];
    int msg_err;
    const char *title;
    int help, prompt, quit;
    char *banner; /* why the scenario failed, shown over the screen until a key */
    char pbuf[128];
    int plen;
    int mem_fixed;
    uint32_t mem_addr;
    regview now, before; /* registers shown, and at the position shown before */
    uint64_t now_pos;
    canvas cv;
    int colour;
    /* the timeline strips (rings; guest processes when the run has some), for one width */
    int tl_w;
    char *tl_ch, *tp_ch;
    uint8_t *tl_st, *tp_st;
} tui;

static void set_msg(tui *t, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(tui *t, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->msg_err = err;
}

/* ==== machine state at a position ========================================================= */

/* The last checkpoint of machine m at or before step, or -1. */
static int last_checkpoint(const sim_history *h, int m, uint64_t step) {
    const sim_history_machine *hm = &h->m[m];
    int lo = 0, hi = hm->ncps - 1, best = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (hm->cps[mid].steps <= step) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

/* sim_history_state_at gives the machine as a run left it after `step`
 * instructions -- before the interrupt that may be due at that block
 * boundary.  The instruction recorded at that step is the one the CPU
 * fetches after delivering it (the first of the handler), so the TUI shows
 * the machine at that fetch: a run asked to stop at once lets the CPU's own
 * run loop deliver what is due, and executes nothing.  Inside a block
 * (mid_block) the run loop looks at no interrupt, and neither does this. */
static void settle(cpu_t *c) {
    if (c->mid_block || c->dead) return;
    cpu_request_stop(c);
    cpu_run(c, 1);
    c->stop_req = 0;
}

/* Machine m as it was when it fetched its instruction of step `step` (with
 * settled 0: as the run left it, for the end of the run), or NULL.  Moving
 * forward inside one checkpoint interval runs the cached machine on;
 * anything else (going back, crossing a checkpoint where the host may have
 * changed the machine) rebuilds it from the checkpoint. */
static cpu_t *machine_at(tui *t, int m, uint64_t step, int settled) {
    if (m < 0 || m >= t->nm || m >= t->h->nm) return NULL;
    mcache *mc = &t->mc[m];
    if (!mc->cpu && !(mc->cpu = cpu_new(t->h->m[m].mem_size))) return NULL;
    int base = last_checkpoint(t->h, m, step);
    if (base < 0) return NULL;
    if (mc->valid && mc->base == base && mc->step <= step &&
        !(mc->step == step && mc->settled && !settled)) {
        if (mc->step < step && !mc->stuck) {
            cpu_t *c = mc->cpu;
            while (c->steps < step) { /* the same loop as sim_history_state_at */
                int rc = cpu_run(c, step - c->steps);
                if (rc != CPU_EXIT_BUDGET) break;
            }
            mc->stuck = c->steps < step;
            mc->settled = 0;
        }
    } else {
        if (sim_history_state_at(t->h, m, step, mc->cpu)) {
            mc->valid = 0;
            return NULL;
        }
        mc->base = base;
        mc->stuck = mc->cpu->steps < step;
        mc->settled = 0;
    }
    if (settled && !mc->settled && !mc->stuck) {
        settle(mc->cpu);
        mc->settled = 1;
    }
    mc->step = step;
    mc->valid = 1;
    return mc->cpu;
}

/* Machine and step of a position; the instruction when it has one. */
static int pos_where(tui *t, uint64_t p, int *machine, uint64_t *step, insn_info *ii) {
    if (p < t->ix.ninsn) {
        insn_info tmp;
        if (!ii) ii = &tmp;
        ix_insn(&t->ix, p, ii);
        *machine = ii->machine;
        *step = ii->step;
        return 1;
    }
    insn_info last; /* the end of the run: after the last instruction */
    ix_insn(&t->ix, t->ix.ninsn - 1, &last);
    *machine = last.machine;
    *step = last.step + 1;
    if (ii) memset(ii, 0, sizeof *ii);
    return 0;
}

/* The machine at position p; NULL where the history cannot rebuild it: the
 * rebuilt machine must be where the run was (the host may have changed it
 * without a checkpoint after; the history checkpoints after every host
 * action it knows of, a hypervisor's exits and switches included, so this
 * is the net for the others). */
static cpu_t *state_at_pos(tui *t, uint64_t p) {
    int m;
    uint64_t step;
    insn_info ii;
    int insn = pos_where(t, p, &m, &step, &ii);
    cpu_t *c = machine_at(t, m, step, insn);
    if (c && insn && (c->pc != ii.pc || c->steps != ii.step)) return NULL;
    return c;
}

/* ==== searching the run =================================================================== */

static int ek_match(int ek, const cpu_event *e) {
    int trap = e->kind == EV_TRAP || e->kind == EV_INTERCEPT;
    int cause = e->b & 0xf;
    switch (ek) {
    case EK_TRAP: return trap;
    case EK_SYSCALL: return trap && e->a == VEC_SYSCALL;
    case EK_INTERRUPT: return trap && cause == CAUSE_IRQ;
    case EK_EXCEPTION: return trap && cause != CAUSE_IRQ && cause != CAUSE_SOFT;
    case EK_IO: /* real and virtual devices, and the disk's requests and completions */
        return e->kind == EV_IO || e->kind == EV_HV_IO || (e->kind >= EV_DISK_CMD && e->kind < EV_DISK_LAST);
    case EK_IRET: return e->kind == EV_IRET;
    case EK_SENSITIVE: return e->kind == EV_SENSITIVE;
    case EK_HALT: return e->kind == EV_HALT || e->kind == EV_HV_HALT;
    /* An exit to the host: a trap handed to it (trap-and-emulate, Lua), an
     * instruction it emulated, a VMX exit, a callout of translated code. */
    case EK_EXIT:
        return e->kind == EV_INTERCEPT || e->kind == EV_EMULATE || e->kind == EV_VMEXIT ||
               (e->kind == EV_HV_EMULATE && e->b == 2);
    /* A world switch: another VM, or another machine of the scenario, gets the CPU. */
    case EK_SWITCH: return e->kind == EV_HV_VMRUN || e->kind == EV_VMENTRY || e->kind == EV_CONTEXT;
    case EK_INJECT: return e->kind == EV_HV_INJECT;
    case EK_SHADOW: return e->kind == EV_HV_SHADOW || e->kind == EV_HV_PTWRITE;
    case EK_TRANSLATE: return e->kind == EV_HV_TRANSLATE;
    case EK_SHUTDOWN: return e->kind == EV_SHUTDOWN;
    case EK_ASPACE: return e->kind == EV_ASPACE; /* a process switch: wrcr ptbr */
    }
    return 0;
}

/* A stop found by a search: a position, and the event that made it (or NO_EV). */
typedef struct stop {
    int found;
    uint64_t pos;
    size_t ev;
} stop;

static void better(stop *best, int dir, uint64_t pos, size_t ev) {
    if (!best->found || (dir > 0 ? pos < best->pos : pos > best->pos)) {
        best->found = 1;
        best->pos = pos;
        best->ev = ev;
    }
}

/* The event position a run stops at: clamped to the last position. */
static uint64_t clamp_pos(const tui *t, uint64_t pos) {
    return pos < t->npos ? pos : t->npos - 1;
}

/* The nearest event of kind ek after position p (dir > 0: at a position > p)
 * or before it (dir < 0: at a position < p). */
static stop find_event(tui *t, int ek, uint64_t p, int dir) {
    stop s = {0};
    const tui_index *ix = &t->ix;
    if (dir > 0) {
        for (size_t i = ix_ev_first(ix, p + 1); i < ix->nev; i++)
            if (ek_match(ek, &t->h->ev[ix->ev[i].rec])) {
                uint64_t q = clamp_pos(t, ix->ev[i].pos);
                if (q > p) better(&s, dir, q, i);
                break;
            }
    } else {
        for (size_t i = ix_ev_first(ix, p); i-- > 0;)
            if (ek_match(ek, &t->h->ev[ix->ev[i].rec])) {
                better(&s, dir, ix->ev[i].pos, i);
                break;
            }
    }
    return s;
}

typedef int (*insn_pred)(const void *ud, const insn_info *ii);

/* The nearest instruction after p (dir > 0) or before it (dir < 0) that the
 * predicate accepts.  A block that ran many times in a row is decoded once. */
static stop find_insn(tui *t, insn_pred pred, const void *ud, uint64_t p, int dir) {
    stop s = {0};
    tui_index *ix = &t->ix;
    if (!ix->nrun) return s;
    if (dir > 0 && p + 1 >= ix->ninsn) return s;
    if (dir < 0 && p == 0) return s;
    size_t i = ix_find(ix, dir > 0 ? p + 1 : (p > ix->ninsn ? ix->ninsn : p) - 1);
    for (;;) {
        const run_ent *r = &ix->run[i];
        for (uint32_t k = 0; k < r->per; k++) {
            insn_info ii;
            block_insn(ix, r, k, &ii);
            ii.step = r->step0 + k;
            if (!pred(ud, &ii)) continue;
            uint64_t first = r->pos0 + k, last = first + (uint64_t)(r->reps - 1) * r->per;
            if (dir > 0) {
                uint64_t q = first;
                if (q <= p) q = first + ((p - first) / r->per + 1) * r->per;
                if (q <= last) better(&s, dir, q, NO_EV);
            } else {
                if (first >= p) continue;
                uint64_t q = last < p ? last : first + ((p - 1 - first) / r->per) * r->per;
                better(&s, dir, q, NO_EV);
            }
        }
        if (s.found) return s;
        if (dir > 0) {
            if (++i >= ix->nrun) return s;
        } else {
            if (i-- == 0) return s;
        }
    }
}

static int pred_addr(const void *ud, const insn_info *ii) {
    return ii->pc == *(const uint32_t *)ud;
}
static int pred_mnem(const void *ud, const insn_info *ii) {
    return ii->in.op == *(const uint32_t *)ud;
}

typedef struct ret_pred {
    uint32_t pc;
    int machine, ring;
} ret_pred;
static int pred_return(const void *ud, const insn_info *ii) {
    const ret_pred *r = ud;
    return ii->pc == r->pc && ii->machine == r->machine && (ii->mode & EV_MODE_CPL) == r->ring;
}

/* Where machine vm gets the CPU: the first instruction of a stretch of it. */
static stop find_vm(tui *t, int vm, uint64_t p, int dir) {
    stop s = {0};
    tui_index *ix = &t->ix;
    for (size_t i = 0; i < ix->nrun; i++) {
        const run_ent *r = &ix->run[i];
        if (r->machine != vm || (i > 0 && ix->run[i - 1].machine == vm)) continue;
        if (dir > 0 && r->pos0 > p) {
            better(&s, dir, r->pos0, NO_EV);
            break;
        }
        if (dir < 0 && r->pos0 < p) better(&s, dir, r->pos0, NO_EV);
    }
    return s;
}

static stop find_bp(tui *t, const bp *b, uint64_t p, int dir) {
    switch (b->kind) {
    case BP_ADDR: return find_insn(t, pred_addr, &b->val, p, dir);
    case BP_MNEM: return find_insn(t, pred_mnem, &b->val, p, dir);
    case BP_EVENT: return find_event(t, (int)b->val, p, dir);
    default: return find_vm(t, (int)b->val, p, dir);
    }
}

static void bp_text(const bp *b, char *buf, size_t len) {
    switch (b->kind) {
    case BP_ADDR: snprintf(buf, len, "0x%x", b->val); break;
    case BP_MNEM: snprintf(buf, len, "mnem %s", cpu_isa[b->val].mnem); break;
    case BP_EVENT: snprintf(buf, len, "event %s", ek_names[b->val]); break;
    default: snprintf(buf, len, "vm %u", b->val); break;
    }
}

/* The first position of machine m at or after its step `step`; -1 if it never got there. */
static int64_t pos_of_step(tui *t, int m, uint64_t step) {
    const tui_index *ix = &t->ix;
    for (size_t i = 0; i < ix->nrun; i++) {
        const run_ent *r = &ix->run[i];
        if (r->machine != m) continue;
        if (step < r->step0) return (int64_t)r->pos0;
        if (step < r->step0 + (uint64_t)r->per * r->reps)
            return (int64_t)(r->pos0 + (step - r->step0));
    }
    return -1;
}

/* ==== text of log lines ==================================================================== */

/* g: a VT-x guest (non-root); h: a hosted VMM's host world (as the text trace) */
static const char *ring_prefix(int mode) {
    return (mode & EV_MODE_NONROOT) ? "g" : (mode & EV_MODE_HOSTWORLD) ? "h" : "";
}

static const char *ring_text(int by_hv, int mode, int machine, int nm, char *buf, size_t len) {
    if (by_hv) /* the hypervisor acted, as the trace says */
        snprintf(buf, len, nm > 1 ? "%d:hv" : "hv", machine);
    else if (nm > 1)
        snprintf(buf, len, "%d:%s%d", machine, ring_prefix(mode), mode & EV_MODE_CPL);
    else
        snprintf(buf, len, "%s%d", ring_prefix(mode), mode & EV_MODE_CPL);
    return buf;
}

/* One event as the trace prints it (text only), and its style. */
static int event_line(tui *t, size_t i, char *text, size_t len) {
    const ev_ref *r = &t->ix.ev[i];
    const cpu_event *e = &t->h->ev[r->rec];
    switch (e->kind) {
    case EV_CONTEXT: {
        int m = e->a;
        snprintf(text, len, "-- machine %d '%s' runs now", m, m < t->h->nm ? t->h->m[m].name : "?");
        return 0;
    }
    case EV_TEXT: {
        const char *s = (const char *)(e + 1);
        size_t n = e->x, o = 0;
        const char *pre = e->a == TEXT_PRINT ? "print: " : "-- ";
        o = (size_t)snprintf(text, len, "%s", pre);
        for (size_t k = 0; k < n && o + 4 < len; k++) {
            char c = s[k];
            if (c == '\n') {
                if (k + 1 == n) break;
                text[o++] = ' ';
                text[o++] = '/';
                text[o++] = ' ';
            } else {
                text[o++] = (c >= 32 && c < 127) ? c : '?';
            }
        }
        text[o] = 0;
        return 0;
    }
    default: {
        cpu_stamped s = {.ev = *e, .step = r->step};
        viz_event_text(&s, text, len);
        return 1;
    }
    }
}

/* ==== the canvas =========================================================================== */

enum {
    ST_NORMAL,
    ST_DIM,
    ST_BAR,
    ST_CUR,
    ST_CHANGED,
    ST_FLAGON,
    ST_RING0,
    ST_RING3,
    ST_RINGX,
    ST_VMXOFF,
    ST_VMXROOT,
    ST_VMXGUEST,
    ST_MACHINE,
    ST_HALT,
    ST_TRAP,
    ST_IRET,
    ST_IO,
    ST_SENS,
    ST_NOTE,
    ST_PRINT,
    ST_EXIT,
    ST_ERR,
    ST_MARK,
    ST_STATUS,
    ST_KEY,
    ST_STOPEV,
    ST_TL, /* 12 timeline styles follow: machine % 4, then ring 0 / 1-2 / 3 */
    ST_TP = ST_TL + 12, /* 4 styles of the process strip: machine % 4 */
    ST_COUNT = ST_TP + 4
};
#define ST_REV 0x80

static int cv_resize(canvas *cv, int w, int h) {
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w != cv->w || h != cv->h) {
        cv_cell *c = realloc(cv->c, (size_t)w * (size_t)h * sizeof *c);
        if (!c) return -1;
        cv->c = c;
        cv->w = w;
        cv->h = h;
    }
    for (int i = 0; i < w * h; i++)
        cv->c[i] = (cv_cell){' ', ST_NORMAL};
    return 0;
}

/* Write s at (y, x), at most maxw characters; returns the number written. */
static int cv_put(canvas *cv, int y, int x, int maxw, int st, const char *s) {
    if (y < 0 || y >= cv->h) return 0;
    int n = 0;
    for (; s[n] && n < maxw && x + n < cv->w; n++)
        if (x + n >= 0)
            cv->c[y * cv->w + x + n] =
                (cv_cell){(s[n] >= 32 && s[n] < 127) ? s[n] : '?', (uint8_t)st};
    return n;
}

static int cv_printf(canvas *cv, int y, int x, int maxw, int st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int cv_printf(canvas *cv, int y, int x, int maxw, int st, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cv_put(cv, y, x, maxw, st, buf);
}

static void cv_fill(canvas *cv, int y, int x, int n, char ch, int st) {
    if (y < 0 || y >= cv->h) return;
    for (int i = 0; i < n && x + i < cv->w; i++)
        if (x + i >= 0) cv->c[y * cv->w + x + i] = (cv_cell){ch, (uint8_t)st};
}

/* ==== drawing ============================================================================== */

typedef struct layout {
    int w, h;
    int procs;        /* the second strip: guest processes (0 or 1 row) */
    int badge_y;      /* ring, VMX mode, machine or VM, process */
    int regs_y;       /* 4 rows of registers */
    int bar1_y;       /* titles of code and memory */
    int mid_y, mid_h; /* code | memory */
    int code_w, mem_x, mem_w;
    int bar2_y;       /* title of the event log */
    int log_y, log_h; /* the event log */
    int status_y;
} layout;

static void layout_compute(layout *L, int w, int h, int procs) {
    int extra = h - MIN_H;
    L->w = w;
    L->h = h;
    L->procs = procs ? 1 : 0; /* one row more at the top, one less for the log */
    L->badge_y = 1 + L->procs;
    L->regs_y = 2 + L->procs;
    L->bar1_y = 6 + L->procs;
    L->mid_y = 7 + L->procs;
    L->mid_h = 7 + extra / 3;
    L->bar2_y = L->mid_y + L->mid_h;
    L->log_y = L->bar2_y + 1;
    L->log_h = h - 1 - L->log_y;
    L->status_y = h - 1;
    L->code_w = 44 + (w - MIN_W) / 2;
    if (L->code_w > 72) L->code_w = 72;
    L->mem_x = L->code_w + 1;
    L->mem_w = w - L->mem_x;
}

/* ---- the timeline strip ---- */

/* The cell of each owner-and-value with the most instructions: cnt holds nk
 * counts per cell; -1 where a cell has none and nothing came before. */
static void timeline_pick(const uint64_t *cnt, int w, int nk, int *best_out) {
    int prev = -1;
    for (int c = 0; c < w; c++) {
        int best = -1;
        uint64_t bn = 0;
        for (int k = 0; cnt && k < nk; k++)
            if (cnt[(size_t)c * (size_t)nk + (size_t)k] > bn) {
                bn = cnt[(size_t)c * (size_t)nk + (size_t)k];
                best = k;
            }
        if (best < 0) best = prev; /* fewer instructions than cells */
        best_out[c] = prev = best;
    }
}

static void timeline_build(tui *t, int w) {
    if (w == t->tl_w && t->tl_ch) return;
    free(t->tl_ch);
    free(t->tl_st);
    free(t->tp_ch);
    free(t->tp_st);
    t->tl_ch = malloc((size_t)w);
    t->tl_st = malloc((size_t)w);
    t->tp_ch = malloc((size_t)w);
    t->tp_st = malloc((size_t)w);
    t->tl_w = w;
    int *best = malloc((size_t)w * sizeof *best);
    if (!t->tl_ch || !t->tl_st || !t->tp_ch || !t->tp_st || !best) {
        free(t->tl_ch);
        free(t->tl_st);
        free(t->tp_ch);
        free(t->tp_st);
        free(best);
        t->tl_ch = t->tp_ch = NULL;
        t->tl_st = t->tp_st = NULL;
        t->tl_w = 0;
        return;
    }
    /* instructions per (owner, ring) in each cell; the majority wins.  The
     * owner is the VM on the CPU (the hypervisor's EV_HV_VMRUN), else the
     * machine of the scenario (EV_CONTEXT).  The second strip counts per
     * (owner, guest process): the address space each machine or VM last
     * switched to (EV_ASPACE) when the instructions ran. */
    int no = t->nm + t->ix.nvm; /* owners: the machines, then the hypervisor's VMs */
    int nk = no * 4, np = t->ix.nas ? no * PROC_BUCKETS : 0;
    int nvm1 = t->ix.nvm + 1; /* per machine: its own, then each VM */
    uint64_t *cnt = calloc((size_t)w * (size_t)nk, sizeof *cnt);
    uint64_t *pcnt = np ? calloc((size_t)w * (size_t)np, sizeof *pcnt) : NULL;
    int *cur = np ? calloc((size_t)(t->nm * nvm1), sizeof *cur) : NULL;
    if (np && (!pcnt || !cur)) np = 0;
    uint64_t n = t->ix.ninsn;
    size_t j = 0;
    if (cnt && n) {
        for (size_t i = 0; i < t->ix.nrun; i++) {
            const run_ent *r = &t->ix.run[i];
            int owner = r->vm != NO_VM ? t->nm + r->vm : r->machine;
            int k = owner * 4 + (t->h->ev[r->rec].mode & EV_MODE_CPL), kp = 0;
            if (np) { /* the switches up to here */
                for (; j < t->ix.nas && t->ix.as[j].pos <= r->pos0; j++) {
                    const as_ref *a = &t->ix.as[j];
                    if (a->machine < t->nm)
                        cur[a->machine * nvm1 + (a->vm == NO_VM ? 0 : a->vm + 1)] = a->proc;
                }
                int proc = r->machine < t->nm ? cur[r->machine * nvm1 + (r->vm == NO_VM ? 0 : r->vm + 1)] : 0;
                kp = owner * PROC_BUCKETS + proc_bucket(proc);
            }
            uint64_t a = r->pos0, b = r->pos0 + (uint64_t)r->per * r->reps; /* [a, b) */
            uint64_t c0 = a * (uint64_t)w / n, c1 = (b - 1) * (uint64_t)w / n;
            for (uint64_t c = c0; c <= c1 && c < (uint64_t)w; c++) {
                uint64_t cs = (c * n + (uint64_t)w - 1) / (uint64_t)w;
                uint64_t ce = ((c + 1) * n + (uint64_t)w - 1) / (uint64_t)w;
                uint64_t lo = a > cs ? a : cs, hi = b < ce ? b : ce;
                if (hi <= lo) continue;
                cnt[c * (uint64_t)nk + (uint64_t)k] += hi - lo;
                if (np) pcnt[c * (uint64_t)np + (uint64_t)kp] += hi - lo;
            }
        }
    }
    timeline_pick(cnt, w, nk, best);
    for (int c = 0; c < w; c++) {
        if (best[c] < 0) {
            t->tl_ch[c] = ' ';
            t->tl_st[c] = ST_NORMAL;
            continue;
        }
        int ring = best[c] % 4, m = best[c] / 4;
        t->tl_ch[c] = (char)('0' + ring);
        t->tl_st[c] = (uint8_t)(ST_TL + (m % 4) * 3 + (ring == 0 ? 0 : ring == 3 ? 2 : 1));
    }
    timeline_pick(np ? pcnt : NULL, w, np, best);
    for (int c = 0; c < w; c++) {
        if (best[c] < 0) {
            t->tp_ch[c] = ' ';
            t->tp_st[c] = ST_NORMAL;
            continue;
        }
        t->tp_ch[c] = proc_char(best[c] % PROC_BUCKETS);
        t->tp_st[c] = (uint8_t)(ST_TP + (best[c] / PROC_BUCKETS) % 4);
    }
    free(cnt);
    free(pcnt);
    free(cur);
    free(best);
}

static void draw_timeline(tui *t, const layout *L) {
    canvas *cv = &t->cv;
    cv_put(cv, 0, 0, 5, ST_DIM, "ring ");
    int w = L->w - 5;
    timeline_build(t, w);
    if (!t->tl_ch) return;
    for (int c = 0; c < w; c++)
        cv->c[5 + c] = (cv_cell){t->tl_ch[c], t->tl_st[c]};
    uint64_t n = t->ix.ninsn ? t->ix.ninsn : 1;
    uint64_t p = t->cur < n ? t->cur : n - 1;
    int c = (int)(p * (uint64_t)w / n);
    cv->c[5 + c].st |= ST_REV;
    if (!L->procs) return;
    cv_put(cv, 1, 0, 5, ST_DIM, "proc ");
    for (int k = 0; k < w; k++)
        cv->c[cv->w + 5 + k] = (cv_cell){t->tp_ch[k], t->tp_st[k]};
    cv->c[cv->w + 5 + c].st |= ST_REV;
}

/* ---- badge and registers ---- */

/* The ring, VMX mode and VM as the run recorded them at this position (the
 * mode byte of the instruction), so they show even where the machine's
 * registers cannot be rebuilt. */
static void draw_badge(tui *t, const layout *L, const cpu_t *c, int m, int mode, int vm) {
    canvas *cv = &t->cv;
    int x = 0, cpl = mode & EV_MODE_CPL, by = L->badge_y;
    static const char *const ring_names[4] = {"  kernel", "", "", "  user"};
    char buf[96];
    snprintf(buf, sizeof buf, " RING %d%s ", cpl, ring_names[cpl]);
    x += cv_put(cv, by, x, L->w - x, cpl == 0 ? ST_RING0 : cpl == 3 ? ST_RING3 : ST_RINGX, buf);
    x++;
    if (!(mode & EV_MODE_VMX))
        x += cv_put(cv, by, x, L->w - x, ST_VMXOFF, " VMX off ");
    else if (mode & EV_MODE_NONROOT)
        x += cv_put(cv, by, x, L->w - x, ST_VMXGUEST, " VMX non-root (guest) ");
    else
        x += cv_put(cv, by, x, L->w - x, ST_VMXROOT, " VMX root ");
    x++;
    /* The VM on the CPU: the hypervisor's world switches (EV_HV_VMRUN), on
     * one machine of the scenario */
    uint64_t at = t->cur < t->ix.ninsn ? t->cur : t->ix.ninsn ? t->ix.ninsn - 1 : 0;
    int pcpu = ix_cpu_at(&t->ix, at, m);
    if (mode & EV_MODE_HOSTWORLD) /* a hosted VMM's host world: no VM on the CPU */
        snprintf(buf, sizeof buf, " host world: %s on '%s' ", cpl == 3 ? "VMApp" : "host OS", t->h->m[m].name);
    else if (vm != NO_VM && pcpu >= 0)
        snprintf(buf, sizeof buf, " VM %d on '%s' CPU %d ", vm, t->h->m[m].name, pcpu);
    else if (vm != NO_VM)
        snprintf(buf, sizeof buf, " VM %d on '%s' ", vm, t->h->m[m].name);
    else
        snprintf(buf, sizeof buf, " machine %d '%s' ", m, t->h->m[m].name);
    x += cv_put(cv, by, x, L->w - x, ST_MACHINE, buf);
    x++;
    if (t->ix.nas) { /* the guest process: the address space it last switched to */
        uint64_t p = t->cur < t->ix.ninsn ? t->cur : t->ix.ninsn ? t->ix.ninsn - 1 : 0;
        const as_ref *a = ix_process_at(&t->ix, p, m, vm);
        if (!a)
            snprintf(buf, sizeof buf, " no process yet ");
        else if (L->w - x > 52)
            snprintf(buf, sizeof buf, " process %u (ptbr %08x) ", a->proc - 1, a->ptbr);
        else
            snprintf(buf, sizeof buf, " process %u ", a->proc - 1);
        x += cv_put(cv, by, x, L->w - x, ST_MACHINE, buf);
        x++;
    }
    if (!c) {
        cv_put(cv, by, x, L->w - x, ST_ERR, " no registers here ");
        return;
    }
    if (c->dead)
        x += cv_put(cv, by, x, L->w - x, ST_HALT, " DEAD (triple fault) ");
    else if (c->halted)
        x += cv_put(cv, by, x, L->w - x, ST_HALT, " HALTED ");
    const char *pg = (c->cr[CR_STATUS] & CPU_ST_PG) ? "paging on" : "paging off";
    int pl = (int)strlen(pg);
    if (L->w - pl - 1 > x) cv_put(cv, by, L->w - pl - 1, pl, ST_DIM, pg);
}

static void regview_of(regview *v, const cpu_t *c, int m) {
    v->valid = 1;
    v->machine = m;
    memcpy(v->r, c->r, sizeof v->r);
    v->pc = c->pc;
    v->flags = cpu_get_flags(c);
    for (int i = 0; i < CPU_NCR; i++)
        v->cr[i] = cpu_get_cr(c, i);
}

static void draw_regs(tui *t, const layout *L, const cpu_t *c) {
    canvas *cv = &t->cv;
    if (!c) {
        static const char *const why[4] = {
            "The registers and memory of this machine cannot be rebuilt at this",
            "step: the run's history has no checkpoint after what the host (the",
            "hypervisor, a Lua handler) last did to it.  The code below is what",
            "ran, and the events are exact."};
        for (int i = 0; i < 4; i++)
            cv_put(cv, L->regs_y + i, 1, L->w - 2, ST_DIM, why[i]);
        return;
    }
    const regview *v = &t->now, *b = &t->before;
    int diff = b->valid && b->machine == v->machine;
    static const char *const names[18] = {"r0",  "r1",  "r2",  "r3", "r4",  "r5",
                                          "r6",  "r7",  "r8",  "r9", "r10", "r11",
                                          "r12", "r13", "r14", "sp", "pc",  NULL};
    for (int i = 0; i < 17; i++) {
        int y = L->regs_y + i / 6, x = 1 + (i % 6) * 13;
        uint32_t now = i < 16 ? v->r[i] : v->pc, was = i < 16 ? b->r[i] : b->pc;
        cv_put(cv, y, x, 4, ST_DIM, names[i]);
        cv_printf(cv, y, x + 4, 8, diff && now != was ? ST_CHANGED : ST_NORMAL, "%08x", now);
    }
    /* flags: upper case when set */
    static const struct {
        const char *on, *off;
        uint32_t bit;
    } fl[5] = {{"IF", "if", CPU_FL_IF},
               {"ZF", "zf", CPU_FL_ZF},
               {"SF", "sf", CPU_FL_SF},
               {"CF", "cf", CPU_FL_CF},
               {"OF", "of", CPU_FL_OF}};
    int x = 1 + 5 * 13, y = L->regs_y + 2;
    for (int i = 0; i < 5; i++) {
        int set = (v->flags & fl[i].bit) != 0, was = (b->flags & fl[i].bit) != 0;
        int st = diff && set != was ? ST_CHANGED : set ? ST_FLAGON : ST_DIM;
        cv_put(cv, y, x + i * 3, 2, st, set ? fl[i].on : fl[i].off);
    }
    static const char *const crn[CPU_NCR] = {"status", "vbr", "faddr", "ptbr", "ksp"};
    x = 1;
    y = L->regs_y + 3;
    for (int i = 0; i < CPU_NCR; i++) {
        x += cv_put(cv, y, x, L->w - x, ST_DIM, crn[i]) + 1;
        x += cv_printf(cv, y, x, L->w - x, diff && v->cr[i] != b->cr[i] ? ST_CHANGED : ST_NORMAL,
                       "%08x", v->cr[i]) +
             2;
    }
}

/* ---- memory through the page tables, for display ---- */

typedef struct dwalk {
    int paging, ok;
    uint32_t pde_pa, pde, pte_pa, pte, pa;
    int fail; /* 1: no PDE, 2: no PTE, 3: outside memory */
} dwalk;

/* A page walk without side effects or permission checks. */
static int display_walk(const cpu_t *c, uint32_t va, dwalk *w) {
    memset(w, 0, sizeof *w);
    w->paging = (c->cr[CR_STATUS] & CPU_ST_PG) != 0;
    if (!w->paging) {
        w->pa = va;
        w->ok = va < c->mem_size;
        w->fail = w->ok ? 0 : 3;
        return w->ok;
    }
    w->pde_pa = (c->cr[CR_PTBR] & PTE_FRAME) + (va >> 22) * 4;
    if (w->pde_pa > c->mem_size - 4) return w->fail = 3, 0;
    memcpy(&w->pde, c->mem + w->pde_pa, 4);
    if (!(w->pde & PTE_P)) return w->fail = 1, 0;
    w->pte_pa = (w->pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4;
    if (w->pte_pa > c->mem_size - 4) return w->fail = 3, 0;
    memcpy(&w->pte, c->mem + w->pte_pa, 4);
    if (!(w->pte & PTE_P)) return w->fail = 2, 0;
    w->pa = (w->pte & PTE_FRAME) | (va & 0xfff);
    if (w->pa >= c->mem_size) return w->fail = 3, 0;
    return w->ok = 1;
}

static int read_word(const cpu_t *c, uint32_t va, uint32_t *out) {
    dwalk w;
    if (!display_walk(c, va, &w) || w.pa > c->mem_size - 4) return 0;
    memcpy(out, c->mem + w.pa, 4);
    return 1;
}

/* ---- code ---- */

static int is_bp_addr(const tui *t, uint32_t a) {
    for (int i = 0; i < t->nbps; i++)
        if (t->bps[i].kind == BP_ADDR && t->bps[i].val == a) return 1;
    return 0;
}

/* Bytes of the instruction at va differ from the first snapshot the run took
 * of its page: the code was patched after it first ran. */
static int is_patched(tui *t, int m, const cpu_t *c, uint32_t va, int size) {
    dwalk w;
    if (!display_walk(c, va, &w) || (w.pa & 0xfff) + (uint32_t)size > CPU_PAGE) return 0;
    uint32_t ppn = w.pa >> 12;
    if (m >= t->ix.nm || ppn >= t->ix.npages[m] || t->ix.first_page[m][ppn] == NO_REC) return 0;
    const uint8_t *first = ix_page_bytes(&t->ix, t->ix.first_page[m][ppn]);
    return memcmp(first + (w.pa & 0xfff), c->mem + w.pa, (size_t)size) != 0;
}

static int decode_at(const cpu_t *c, uint32_t va, cpu_insn *in) {
    uint32_t w0, w1 = 0;
    if (!read_word(c, va, &w0)) return 0;
    read_word(c, va + 4, &w1);
    *in = cpu_decode(w0, w1);
    return 1;
}

/* Decode from a to pc; 1 if that lands exactly on pc, with the addresses. */
static int lands_on(const cpu_t *c, uint32_t a, uint32_t pc, uint32_t *addrs, int *n, int max,
                    int *invalid) {
    *n = 0;
    *invalid = 0;
    while (a < pc) {
        cpu_insn in;
        if (!decode_at(c, a, &in)) return 0;
        if (in.op >= OP_COUNT) (*invalid)++;
        if (*n == max) {
            memmove(addrs, addrs + 1, (size_t)(max - 1) * sizeof *addrs);
            (*n)--;
        }
        addrs[(*n)++] = a;
        a += in.size;
    }
    return a == pc;
}

/* Addresses of up to `want` instructions before pc.  Instructions are 4 or 8
 * bytes, so decoding backwards is ambiguous: start from places the run
 * actually executed, else from the furthest guess that lands on pc cleanly. */
static int code_before(tui *t, const cpu_t *c, uint32_t pc, int m, uint32_t *out, int want) {
    uint32_t known[64];
    int nk = 0;
    if (t->cur < t->ix.ninsn) {
        for (uint64_t q = t->cur, k = 0; q-- > 0 && k < 200 && nk < 64; k++) {
            insn_info ii;
            ix_insn(&t->ix, q, &ii);
            if (ii.machine == m && ii.pc < pc && pc - ii.pc <= (uint32_t)want * 8)
                known[nk++] = ii.pc;
        }
    }
    uint32_t addrs[32];
    int n, inv, best = 0;
    uint32_t best_start = pc;
    /* the earliest executed address that decodes straight to pc */
    for (int i = 0; i < nk; i++) {
        if (known[i] >= best_start) continue;
        if (lands_on(c, known[i], pc, addrs, &n, want, &inv) && !inv) best_start = known[i];
    }
    if (best_start == pc) {
        for (int k = want * 2; k >= 1; k--) {
            if ((uint32_t)k * 4 > pc) continue;
            uint32_t a = pc - (uint32_t)k * 4;
            if (lands_on(c, a, pc, addrs, &n, want, &inv) && !inv) {
                best_start = a;
                break;
            }
        }
    }
    if (best_start == pc) return 0;
    lands_on(c, best_start, pc, addrs, &n, want, &inv);
    best = n < want ? n : want;
    memcpy(out, addrs + (n - best), (size_t)best * sizeof *out);
    return best;
}

/* The page of va was translated by the hypervisor's binary translator at this
 * point of the run (its last EV_HV_TRANSLATE says translated or retranslated). */
static int is_translated(tui *t, int m, uint32_t va) {
    for (size_t k = t->ix.nxlate; k-- > 0;) {
        const ev_ref *r = &t->ix.ev[t->ix.xlate[k]];
        if (r->pos > t->cur || r->machine != m) continue;
        const cpu_event *e = &t->h->ev[r->rec];
        if ((e->x & ~0xfffu) == (va & ~0xfffu)) return e->a != 1;
    }
    return 0;
}

/* Without the machine's memory: the instructions as they ran, from the record. */
static void code_line_recorded(tui *t, const layout *L, int y, uint64_t q) {
    canvas *cv = &t->cv;
    insn_info ii;
    char text[96];
    ix_insn(&t->ix, q, &ii);
    cpu_disasm(&ii.in, ii.pc, text, sizeof text);
    int cur = q == t->cur;
    if (cur) cv_fill(cv, y, 0, L->code_w, ' ', ST_CUR);
    cv_printf(cv, y, 0, L->code_w, cur ? ST_CUR : ST_NORMAL, "%c  %08x  %s", cur ? '>' : ' ', ii.pc,
              text);
}

static void draw_code_recorded(tui *t, const layout *L, int m) {
    int above = (L->mid_h - 1) / 2, n = 0, y_end = L->mid_y + L->mid_h;
    uint64_t pos[64];
    for (uint64_t q = t->cur; q > 0 && n < above && n < 64 && t->cur - q < 10000;) {
        q--;
        insn_info ii;
        ix_insn(&t->ix, q, &ii);
        if (ii.machine == m) pos[n++] = q;
    }
    int y = L->mid_y + (above - n);
    for (int i = n - 1; i >= 0; i--)
        code_line_recorded(t, L, y++, pos[i]);
    for (uint64_t q = t->cur; y < y_end && q < t->ix.ninsn && q - t->cur < 10000; q++) {
        insn_info ii;
        ix_insn(&t->ix, q, &ii);
        if (ii.machine == m) code_line_recorded(t, L, y++, q);
    }
}

static void draw_code(tui *t, const layout *L, const cpu_t *c, int m, const insn_info *ii,
                      int has_insn) {
    canvas *cv = &t->cv;
    cv_fill(cv, L->bar1_y, 0, L->code_w, ' ', ST_BAR);
    if (!c) {
        cv_printf(cv, L->bar1_y, 0, L->code_w, ST_BAR, " code, in the order it ran");
        if (has_insn) draw_code_recorded(t, L, m);
        return;
    }
    cv_printf(cv, L->bar1_y, 0, L->code_w, ST_BAR,
              t->ix.nxlate ? " code (> next  * patched  T translated  B break)"
                           : " code (> next to run  * patched  B break)");
    uint32_t pc = has_insn ? ii->pc : c->pc;
    int above = (L->mid_h - 1) / 2;
    uint32_t addrs[64];
    int nb = code_before(t, c, pc, m, addrs, above < 32 ? above : 32);
    /* nb lines before pc, the current one, then on from there */
    int y = L->mid_y + (above - nb);
    uint32_t a = nb ? addrs[0] : pc;
    for (; y < L->mid_y + L->mid_h; y++) {
        cpu_insn in;
        int cur = a == pc;
        char text[96];
        int ok = decode_at(c, a, &in);
        if (ok)
            cpu_disasm(&in, a, text, sizeof text);
        else
            snprintf(text, sizeof text, "(not mapped)");
        int st = cur ? ST_CUR : ST_NORMAL;
        if (cur) cv_fill(cv, y, 0, L->code_w, ' ', ST_CUR);
        cv_put(cv, y, 0, 1, cur ? ST_CUR : ST_NORMAL, cur ? ">" : " ");
        if (ok && is_bp_addr(t, a))
            cv_put(cv, y, 1, 1, cur ? ST_CUR : ST_MARK, "B");
        else if (ok && is_patched(t, m, c, a, in.size))
            cv_put(cv, y, 1, 1, cur ? ST_CUR : ST_MARK, "*");
        if (ok && t->ix.nxlate && is_translated(t, m, a))
            cv_put(cv, y, 2, 1, cur ? ST_CUR : ST_MARK, "T");
        cv_printf(cv, y, 3, L->code_w - 3, st, "%08x  %s", a, text);
        if (!ok) break;
        a += in.size;
    }
}

/* ---- memory and the walk of pc ---- */

/* The address the current instruction reads or writes, or sp. */
static uint32_t mem_focus(const cpu_t *c, const insn_info *ii, int has_insn, char *why,
                          size_t len) {
    if (has_insn) {
        const cpu_insn *in = &ii->in;
        switch (in->op) {
        case OP_LD:
        case OP_LDB:
            if (in->rb == CPU_REG_SP)
                snprintf(why, len, "[sp%+d] (%s)", in->imm, cpu_isa[in->op].mnem);
            else
                snprintf(why, len, "[r%d%+d] (%s)", in->rb, in->imm, cpu_isa[in->op].mnem);
            return c->r[in->rb] + (uint32_t)in->imm;
        case OP_ST:
        case OP_STB:
            if (in->ra == CPU_REG_SP)
                snprintf(why, len, "[sp%+d] (%s)", in->imm, cpu_isa[in->op].mnem);
            else
                snprintf(why, len, "[r%d%+d] (%s)", in->ra, in->imm, cpu_isa[in->op].mnem);
            return c->r[in->ra] + (uint32_t)in->imm;
        case OP_PUSH:
        case OP_CALL:
        case OP_CALLR:
            snprintf(why, len, "sp-4 (%s)", cpu_isa[in->op].mnem);
            return c->r[CPU_REG_SP] - 4;
        default: break;
        }
    }
    snprintf(why, len, "sp (stack)");
    return c->r[CPU_REG_SP];
}

static void pte_flags(uint32_t e, char *buf) {
    buf[0] = (e & PTE_P) ? 'P' : '-';
    buf[1] = (e & PTE_W) ? 'W' : '-';
    buf[2] = (e & PTE_U) ? 'U' : '-';
    buf[3] = (e & PTE_A) ? 'A' : '-';
    buf[4] = (e & PTE_D) ? 'D' : '-';
    buf[5] = 0;
}

static void draw_memory(tui *t, const layout *L, const cpu_t *c, const insn_info *ii,
                        int has_insn) {
    canvas *cv = &t->cv;
    int x0 = L->mem_x, w = L->mem_w;
    char why[48];
    uint32_t addr = 0;
    if (c) addr = t->mem_fixed ? t->mem_addr : mem_focus(c, ii, has_insn, why, sizeof why);
    if (t->mem_fixed) snprintf(why, sizeof why, "(:m)");
    cv_fill(cv, L->bar1_y, x0 - 1, w + 1, ' ', ST_BAR);
    if (!c) {
        cv_put(cv, L->bar1_y, x0, w, ST_BAR, "memory (not rebuilt here)");
        return;
    }
    cv_printf(cv, L->bar1_y, x0, w, ST_BAR, "memory %08x %s", addr, why);
    int words = 1; /* a power of two, so rows stay aligned */
    while (words * 2 <= (w - 9) / 13)
        words *= 2;
    uint32_t rowb = (uint32_t)words * 4;
    int rows = L->mid_h - 3;
    uint32_t base = addr & ~(rowb - 1); /* the row holding addr comes second */
    uint32_t start = base >= rowb ? base - rowb : 0;
    for (int r = 0; r < rows; r++) {
        uint32_t a = start + (uint32_t)r * rowb;
        int y = L->mid_y + r;
        cv_printf(cv, y, x0, 8, ST_DIM, "%08x", a);
        char ascii[64];
        int na = 0;
        for (int k = 0; k < words; k++) {
            uint32_t wa = a + (uint32_t)k * 4, v;
            int ok = read_word(c, wa, &v);
            int st = (addr >= wa && addr < wa + 4) ? ST_CUR : ST_NORMAL;
            if (ok)
                cv_printf(cv, y, x0 + 9 + k * 9, 8, st, "%08x", v);
            else
                cv_put(cv, y, x0 + 9 + k * 9, 8, st, "--------");
            for (int b = 0; b < 4; b++) {
                unsigned ch = ok ? (v >> (8 * b)) & 0xff : ' ';
                ascii[na++] = ch >= 32 && ch < 127 ? (char)ch : '.';
            }
        }
        ascii[na] = 0;
        cv_put(cv, y, x0 + 9 + words * 9, w - 9 - words * 9, ST_DIM, ascii);
    }
    /* the page-table walk of pc */
    int y = L->mid_y + rows;
    dwalk wk;
    display_walk(c, c->pc, &wk);
    char f[8];
    if (!wk.paging) {
        cv_printf(cv, y, x0, w, ST_NORMAL, "walk pc %08x: paging off", c->pc);
        cv_printf(cv, y + 1, x0, w, ST_DIM, "physical = virtual");
        if (!wk.ok) cv_printf(cv, y + 2, x0, w, ST_ERR, "outside memory");
        return;
    }
    cv_printf(cv, y, x0, w, ST_NORMAL, "walk pc %08x ptbr %08x", c->pc, c->cr[CR_PTBR] & PTE_FRAME);
    if (wk.fail == 3 && !wk.pde) {
        cv_printf(cv, y + 1, x0, w, ST_ERR, "PDE outside memory");
        return;
    }
    pte_flags(wk.pde, f);
    cv_printf(cv, y + 1, x0, w, wk.pde & PTE_P ? ST_NORMAL : ST_ERR, "PDE[%03x] %08x %s",
              c->pc >> 22, wk.pde, (wk.pde & PTE_P) ? f : "not present");
    if (wk.fail == 1) return;
    pte_flags(wk.pte, f);
    if (wk.fail == 2)
        cv_printf(cv, y + 2, x0, w, ST_ERR, "PTE[%03x] %08x not present", (c->pc >> 12) & 0x3ff,
                  wk.pte);
    else if (wk.fail == 3)
        cv_printf(cv, y + 2, x0, w, ST_ERR, "PTE[%03x] outside memory", (c->pc >> 12) & 0x3ff);
    else
        cv_printf(cv, y + 2, x0, w, ST_NORMAL, "PTE[%03x] %08x %s pa %08x", (c->pc >> 12) & 0x3ff,
                  wk.pte, f, wk.pa);
}

/* ---- the event log ---- */

typedef struct logline {
    int is_ev;
    uint64_t pos;
    size_t ev;
} logline;

typedef struct logrows {
    logline l[256];
    int n, rows;
} logrows;

static int ev_visible(const tui *t, size_t i) {
    const ev_ref *r = &t->ix.ev[i];
    if (!(r->cls & t->show)) return 0;
    if (t->h->ev[r->rec].kind == EV_CONTEXT && t->nm < 2) return 0;
    return 1;
}

/* Break text into rows of at most tw characters, at spaces where it can;
 * starts[i] is where row i begins.  Returns the number of rows. */
static int wrap(const char *text, int tw, int *starts, int max) {
    int n = (int)strlen(text), rows = 0, off = 0;
    if (tw < 10) tw = 10;
    do {
        starts[rows++] = off;
        if (n - off <= tw) break;
        int cut = off + tw;
        while (cut > off + tw / 2 && text[cut] != ' ')
            cut--;
        if (text[cut] != ' ') cut = off + tw;
        off = cut;
        while (text[off] == ' ')
            off++;
    } while (rows < max && off < n);
    return rows;
}

static int line_rows(tui *t, const logline *l, int w) {
    if (!l->is_ev) return 1;
    char text[512];
    int starts[16];
    event_line(t, l->ev, text, sizeof text);
    return wrap(text, w - COLS_W, starts, 16);
}

/* Lines before (dir < 0) or after (dir > 0) the cursor, nearest first, until
 * they fill `rows` screen rows. */
static void log_collect(tui *t, int dir, int rows, int w, logrows *out) {
    out->n = out->rows = 0;
    uint64_t p = t->cur;
    int insns = (t->show & VIZ_SHOW_INSN) != 0;
    size_t ie = ix_ev_first(&t->ix, p + 1); /* events at positions <= p are below ie */
    int scanned = 0;
    if (dir < 0) {
        size_t i = ie;
        uint64_t q = p; /* next instruction candidate is q-1 */
        while (out->rows < rows && out->n < 256 && scanned < 100000) {
            int have_ev = 0;
            while (i > 0 && !ev_visible(t, i - 1) && scanned < 100000) {
                i--;
                scanned++;
            }
            have_ev = i > 0 && ev_visible(t, i - 1);
            int have_in = insns && q > 0;
            if (!have_ev && !have_in) break;
            logline l;
            if (have_ev && (!have_in || t->ix.ev[i - 1].pos > q - 1)) {
                l = (logline){1, t->ix.ev[i - 1].pos, i - 1};
                i--;
            } else {
                l = (logline){0, q - 1, 0};
                q--;
            }
            out->l[out->n++] = l;
            out->rows += line_rows(t, &l, w);
        }
    } else {
        size_t i = ie;
        uint64_t q = p + 1;
        while (out->rows < rows && out->n < 256 && scanned < 100000) {
            while (i < t->ix.nev && !ev_visible(t, i) && scanned < 100000) {
                i++;
                scanned++;
            }
            int have_ev = i < t->ix.nev && ev_visible(t, i);
            int have_in = insns && q < t->ix.ninsn;
            if (!have_ev && !have_in) break;
            logline l;
            if (have_ev && (!have_in || t->ix.ev[i].pos <= q)) {
                l = (logline){1, t->ix.ev[i].pos, i};
                i++;
            } else {
                l = (logline){0, q, 0};
                q++;
            }
            out->l[out->n++] = l;
            out->rows += line_rows(t, &l, w);
        }
    }
}

static int event_style(const cpu_event *e) {
    switch (e->kind) {
    case EV_TRAP: return ST_TRAP;
    case EV_INTERCEPT:
    case EV_EMULATE: return ST_EXIT;
    case EV_IRET: return ST_IRET;
    case EV_IO: return ST_IO;
    case EV_SENSITIVE: return ST_SENS;
    case EV_HALT:
    case EV_SHUTDOWN: return ST_HALT;
    case EV_TEXT: return e->a == TEXT_PRINT ? ST_PRINT : ST_NOTE;
    case EV_CONTEXT:
    case EV_POLICY: return ST_NOTE;
    case EV_ASPACE: return ST_MACHINE; /* who runs: another guest process */
    case EV_DISK_CMD:
    case EV_DISK_DMA:
    case EV_DISK_DONE: return viz_event_by_hv(e) ? ST_EXIT : ST_IO; /* the disk, or a VM's device model */
    default: return e->kind >= 32 ? ST_EXIT : ST_NORMAL;
    }
}

/* Draw one line at row y (and its continuation rows up to ymax); returns rows used. */
static int draw_line(tui *t, const logline *l, int y, int ymax, int w, int cur) {
    canvas *cv = &t->cv;
    char ring[16], text[512];
    if (!l->is_ev) {
        insn_info ii;
        if (l->pos >= t->ix.ninsn) { /* the end of the run */
            cv_fill(cv, y, 0, w, ' ', ST_CUR);
            cv_put(cv, y, 0, w, ST_CUR,
                   ">                      (the end of the run: after its last instruction)");
            return 1;
        }
        ix_insn(&t->ix, l->pos, &ii);
        cpu_disasm(&ii.in, ii.pc, text, sizeof text);
        int st = cur ? ST_CUR : ST_NORMAL;
        if (cur) cv_fill(cv, y, 0, w, ' ', ST_CUR);
        cv_printf(cv, y, 0, w, st, "%7llu %4s %08x  %s", (unsigned long long)ii.step,
                  ring_text(0, ii.mode, ii.machine, t->nm, ring, sizeof ring), ii.pc, text);
        if (cur) cv_put(cv, y, 0, 1, ST_CUR, ">");
        return 1;
    }
    const ev_ref *r = &t->ix.ev[l->ev];
    const cpu_event *e = &t->h->ev[r->rec];
    int has_pc = event_line(t, l->ev, text, sizeof text);
    int st = event_style(e);
    char cols[40];
    if (has_pc)
        snprintf(cols, sizeof cols, "%7llu %4s %08x  ", (unsigned long long)r->step,
                 ring_text(viz_event_by_hv(e), e->mode, r->machine, t->nm, ring, sizeof ring), e->pc);
    else
        snprintf(cols, sizeof cols, "%7llu %4s %8s  ", (unsigned long long)r->step, "", "");
    cv_put(cv, y, 0, COLS_W, ST_DIM, cols);
    int starts[16], tw = w - COLS_W;
    int rows = wrap(text, tw, starts, 16), used = 0;
    for (; used < rows && y + used < ymax; used++) {
        int len = (used + 1 < rows ? starts[used + 1] : (int)strlen(text)) - starts[used];
        while (len > 0 && text[starts[used] + len - 1] == ' ')
            len--;
        cv_put(cv, y + used, COLS_W, len < tw ? len : tw, st, text + starts[used]);
    }
    if (l->ev == t->stop_ev) cv_put(cv, y, 0, 1, ST_STOPEV, "*");
    return used ? used : 1;
}

static void draw_log(tui *t, const layout *L) {
    canvas *cv = &t->cv;
    int w = L->w;
    cv_fill(cv, L->bar2_y, 0, w, ' ', ST_BAR);
    int x = cv_put(cv, L->bar2_y, 0, w, ST_BAR, "   step ring pc        events");
    if (t->nbps) {
        char buf[512];
        int o = snprintf(buf, sizeof buf, "  breakpoints:");
        for (int i = 0; i < t->nbps && o < (int)sizeof buf - 40; i++) {
            char b[40];
            bp_text(&t->bps[i], b, sizeof b);
            o += snprintf(buf + o, sizeof buf - (size_t)o, " %d:%s", i + 1, b);
        }
        cv_put(cv, L->bar2_y, x, w - x, ST_BAR, buf);
    }
    logrows up, down;
    int h = L->log_h;
    int want_up = (h - 1) * 3 / 5; /* more of the past than of the future */
    log_collect(t, -1, h - 1, w, &up);
    log_collect(t, +1, h - 1, w, &down);
    /* give rows a side does not need to the other side */
    int up_rows = up.rows < want_up ? up.rows : want_up;
    int down_rows = h - 1 - up_rows;
    if (down.rows < down_rows) {
        down_rows = down.rows;
        up_rows = h - 1 - down_rows;
        if (up_rows > up.rows) up_rows = up.rows;
    }
    /* lines above, from the furthest one that fits */
    int k = 0, rows = 0;
    while (k < up.n && rows + line_rows(t, &up.l[k], w) <= up_rows) {
        rows += line_rows(t, &up.l[k], w);
        k++;
    }
    int y = L->log_y + (up_rows - rows);
    for (int i = k - 1; i >= 0; i--)
        y += draw_line(t, &up.l[i], y, L->log_y + h, w, 0);
    logline c = {0, t->cur, 0};
    y += draw_line(t, &c, y, L->log_y + h, w, 1);
    for (int i = 0; i < down.n && y < L->log_y + h; i++)
        y += draw_line(t, &down.l[i], y, L->log_y + h, w, 0);
}

/* ---- status line, help, prompt ---- */

static void draw_status(tui *t, const layout *L, const cpu_t *c, int m, uint64_t step) {
    canvas *cv = &t->cv;
    int y = L->status_y, w = L->w;
    cv_fill(cv, y, 0, w, ' ', ST_NORMAL);
    if (t->prompt) {
        cv_put(cv, y, 0, 1, ST_KEY, ":");
        cv_put(cv, y, 1, w - 1, ST_NORMAL, t->pbuf);
        return;
    }
    char left[128];
    int n = c ? snprintf(left, sizeof left, " step %llu  cycle %llu ", (unsigned long long)step,
                         (unsigned long long)c->cycles)
              : snprintf(left, sizeof left, " step %llu ", (unsigned long long)step);
    if (t->nm > 1) snprintf(left + n, sizeof left - (size_t)n, "machine %d ", m);
    int x = cv_put(cv, y, 0, w, ST_STATUS, left);
    const char *right = " ?:help ";
    int rw = (int)strlen(right);
    cv_put(cv, y, w - rw, rw, ST_STATUS, right);
    int room = w - rw - x - 2;
    if (room > 0) cv_put(cv, y, x + 1, room, t->msg_err ? ST_ERR : ST_NORMAL, t->msg);
}

static const char *const help_lines[] = {
    "keys -- the run is recorded: move through it in time",
    "",
    "s Down Right  step: run the next instruction",
    "S n           step over a call or syscall (stop when it returns)",
    "b Up Left     step back one instruction",
    "t y i o e     run to the next trap/syscall/interrupt/I/O/exit",
    "c             continue to the next breakpoint",
    "B             run back: the last run key (t y i o e c), backwards",
    "Home End      first / last step        g  go to a step",
    ":             a command (Enter runs it, Esc cancels):",
    "  b ADDR  b mnem NAME  b event KIND  b vm N   set a breakpoint",
    "  d [N]   delete all breakpoints (or number N)",
    "  g STEP  go to a step      m [ADDR]  memory at ADDR (none: auto)",
    "  KIND: trap syscall interrupt exception io iret sensitive halt",
    "        exit switch inject shadow translate shutdown process",
    "? this help   q quit",
    "",
    "top line: the whole run; the digit is the ring that ran (0 kernel,",
    "3 user), the colour the machine or VM, the highlighted cell is now.",
    "proc line, in runs that switch page tables: the guest process that",
    "ran, by page-table base in order of first use (- none yet).",
    "Press any key to close this help.",
};

/* A box in the middle of the screen with lines of text (wrapped). */
static void draw_box(tui *t, const layout *L, const char *title, const char *const *lines,
                     int nlines, int key_rows) {
    canvas *cv = &t->cv;
    int bw = 72 < L->w ? 72 : L->w, tw = bw - 4;
    static char rows[64][128];
    int isk[64] = {0}, n = 0;
    for (int i = 0; i < nlines && n < 64; i++) {
        int starts[32];
        int k = wrap(lines[i], tw, starts, 32);
        if (!*lines[i]) k = 1;
        for (int j = 0; j < k && n < 64; j++) {
            int end = j + 1 < k ? starts[j + 1] : (int)strlen(lines[i]);
            snprintf(rows[n], sizeof rows[n], "%.*s", end - starts[j], lines[i] + starts[j]);
            isk[n++] = i < key_rows;
        }
    }
    int bh = n + 2 < L->h ? n + 2 : L->h;
    int x0 = (L->w - bw) / 2, y0 = (L->h - bh) / 2;
    for (int y = 0; y < bh; y++) {
        cv_fill(cv, y0 + y, x0, bw, ' ', ST_NORMAL);
        cv_put(cv, y0 + y, x0, 1, ST_BAR, "|");
        cv_put(cv, y0 + y, x0 + bw - 1, 1, ST_BAR, "|");
    }
    cv_fill(cv, y0, x0, bw, '-', ST_BAR);
    cv_fill(cv, y0 + bh - 1, x0, bw, '-', ST_BAR);
    cv_printf(cv, y0, x0 + 2, bw - 4, ST_BAR, " %s ", title);
    for (int i = 0; i < n && i < bh - 2; i++) {
        if (isk[i] && strlen(rows[i]) > 14) { /* a key and what it does */
            cv_put(cv, y0 + 1 + i, x0 + 2, 14, ST_KEY, rows[i]);
            cv_put(cv, y0 + 1 + i, x0 + 16, tw - 14, ST_NORMAL, rows[i] + 14);
        } else {
            cv_put(cv, y0 + 1 + i, x0 + 2, tw, isk[i] ? ST_KEY : ST_NORMAL, rows[i]);
        }
    }
}

static void draw_banner(tui *t, const layout *L) {
    const char *lines[40];
    char buf[40][160];
    int n = 0;
    lines[n++] = "The scenario did not finish cleanly; vlab said:";
    lines[n++] = "";
    for (const char *p = t->banner; *p && n < 34;) {
        size_t k = strcspn(p, "\n");
        snprintf(buf[n], sizeof buf[n], "%.*s", (int)(k < 150 ? k : 150), p);
        for (char *q = buf[n]; *q; q++)
            if (*q == '\t') *q = ' ';
        lines[n] = buf[n];
        n++;
        p += k;
        if (*p) p++;
    }
    lines[n++] = "";
    lines[n++] = "What it ran up to there is shown.  Press any key.";
    draw_box(t, L, "the scenario failed", lines, n, 0);
}

static void draw_help(tui *t, const layout *L) {
    int n = (int)(sizeof help_lines / sizeof help_lines[0]);
    draw_box(t, L, help_lines[0], help_lines + 2, n - 2, 8);
}

static void render(tui *t, int w, int h) {
    canvas *cv = &t->cv;
    if (cv_resize(cv, w, h)) return;
    if (w < MIN_W || h < MIN_H) {
        char buf[128];
        snprintf(buf, sizeof buf, "terminal too small: %dx%d needed, this one is %dx%d", MIN_W,
                 MIN_H, w, h);
        cv_put(cv, 0, 0, w, ST_ERR, buf);
        cv_put(cv, 1, 0, w, ST_NORMAL, "make it larger, or press q to quit");
        return;
    }
    layout L;
    layout_compute(&L, w, h, t->ix.nas > 0);
    insn_info ii;
    int m;
    uint64_t step;
    int has_insn = pos_where(t, t->cur, &m, &step, &ii);
    cpu_t *c = state_at_pos(t, t->cur); /* NULL: show what was recorded, nothing else */
    int mode = has_insn ? ii.mode : c ? cpu_mode_byte(c) : 0, vm = NO_VM;
    if (has_insn) {
        vm = ii.vm;
    } else {
        insn_info last;
        ix_insn(&t->ix, t->ix.ninsn - 1, &last);
        vm = last.vm;
    }
    if (c && t->now_pos != t->cur + 1) { /* a new position: remember what was shown before */
        t->before = t->now;
        regview_of(&t->now, c, m);
        t->now_pos = t->cur + 1;
    }
    draw_timeline(t, &L);
    draw_badge(t, &L, c, m, mode, vm);
    draw_regs(t, &L, c);
    draw_code(t, &L, c, m, &ii, has_insn);
    draw_memory(t, &L, c, &ii, has_insn);
    draw_log(t, &L);
    draw_status(t, &L, c, m, step);
    if (t->help)
        draw_help(t, &L);
    else if (t->banner)
        draw_banner(t, &L);
}

/* ==== moving ============================================================================== */

static void go(tui *t, uint64_t p) {
    if (p >= t->npos) p = t->npos - 1;
    t->cur = p;
}

static void describe_stop(tui *t, const char *what, const stop *s) {
    if (s->ev != NO_EV) {
        set_msg(t, 0, "%s at step %llu (marked * in the log)", what,
                (unsigned long long)t->ix.ev[s->ev].step);
    } else {
        int m;
        uint64_t step;
        pos_where(t, t->cur, &m, &step, NULL);
        set_msg(t, 0, "%s: stopped before step %llu", what, (unsigned long long)step);
    }
}

static void step_over(tui *t) {
    insn_info ii;
    if (t->cur >= t->ix.ninsn) {
        set_msg(t, 0, "at the end of the run");
        return;
    }
    ix_insn(&t->ix, t->cur, &ii);
    int op = ii.in.op;
    if (op != OP_CALL && op != OP_CALLR && op != OP_SYSCALL && op != OP_INT && op != OP_BRK) {
        if (t->cur + 1 < t->npos) go(t, t->cur + 1);
        set_msg(t, 0, "step (not a call: step over is a plain step)");
        return;
    }
    /* the return: the next instruction after it, in the same machine and
     * ring, with sp back where it was (a recursive call returns to the same
     * address deeper down first).  Without registers: the first return. */
    cpu_t *c = state_at_pos(t, t->cur);
    int check_sp = c != NULL;
    uint32_t sp0 = c ? c->r[CPU_REG_SP] : 0;
    ret_pred rp = {ii.pc + ii.in.size, ii.machine, ii.mode & EV_MODE_CPL};
    uint64_t q = t->cur;
    for (int tries = 0; tries < 100000; tries++) {
        stop s = find_insn(t, pred_return, &rp, q, +1);
        if (!s.found) break;
        cpu_t *cq = check_sp ? state_at_pos(t, s.pos) : NULL;
        if (!check_sp || (cq && cq->r[CPU_REG_SP] == sp0)) {
            go(t, s.pos);
            set_msg(t, 0, "stepped over the %s", cpu_isa[op].mnem);
            return;
        }
        q = s.pos;
    }
    set_msg(t, 1, "the %s at 0x%08x never returns in this run", cpu_isa[op].mnem, ii.pc);
}

static void run_to(tui *t, int what, int dir) {
    stop s = {0};
    if (what == RUN_BREAK) {
        if (!t->nbps) {
            set_msg(t, 1, "no breakpoints: set one with :b (press ? for help)");
            return;
        }
        for (int i = 0; i < t->nbps; i++) {
            stop b = find_bp(t, &t->bps[i], t->cur, dir);
            if (b.found) better(&s, dir, b.pos, b.ev);
        }
    } else {
        s = find_event(t, what, t->cur, dir);
    }
    const char *name = what == RUN_BREAK ? "breakpoint" : ek_names[what];
    if (!s.found) {
        set_msg(t, 1, "no %s %s this point of the run", name, dir > 0 ? "after" : "before");
        return;
    }
    go(t, s.pos);
    t->stop_ev = s.ev;
    char what_txt[64];
    snprintf(what_txt, sizeof what_txt, "%s%s", dir < 0 ? "back to " : "", name);
    describe_stop(t, what_txt, &s);
}

/* ==== commands (the ':' prompt) ============================================================ */

static int parse_num(const char *s, uint64_t *v) {
    char *end;
    if (!*s) return -1;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 0);
    if (errno || *end) {
        n = strtoull(s, &end, 16); /* hex without 0x */
        if (errno || *end) return -1;
    }
    *v = n;
    return 0;
}

static void command(tui *t, const char *line) {
    char buf[128], *words[4] = {0};
    int nw = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *w = strtok(buf, " \t"); w && nw < 4; w = strtok(NULL, " \t"))
        words[nw++] = w;
    if (!nw) return;
    const char *cmd = words[0];
    if (strcmp(cmd, "b") == 0 || strcmp(cmd, "break") == 0) {
        if (nw < 2) {
            set_msg(t, 1, "b ADDR | b mnem NAME | b event KIND | b vm N");
            return;
        }
        if (t->nbps == MAX_BPS) {
            set_msg(t, 1, "at most %d breakpoints (:d deletes them)", MAX_BPS);
            return;
        }
        bp b = {0};
        if (strcmp(words[1], "mnem") == 0) {
            int op = nw > 2 ? cpu_op_by_mnem(words[2]) : OP_INVALID;
            if (op == OP_INVALID) {
                set_msg(t, 1, "unknown instruction '%s' (vlab isa lists them)",
                        nw > 2 ? words[2] : "");
                return;
            }
            b = (bp){BP_MNEM, (uint32_t)op};
        } else if (strcmp(words[1], "event") == 0) {
            int ek = -1;
            for (int i = 0; i < EK_COUNT && nw > 2; i++)
                if (strcmp(words[2], ek_names[i]) == 0) ek = i;
            if (ek < 0) {
                set_msg(t, 1,
                        "unknown event '%s' (trap syscall interrupt exception io iret sensitive "
                        "halt exit switch inject shadow translate shutdown process)",
                        nw > 2 ? words[2] : "");
                return;
            }
            b = (bp){BP_EVENT, (uint32_t)ek};
        } else if (strcmp(words[1], "vm") == 0) {
            uint64_t v;
            if (nw < 3 || parse_num(words[2], &v) || v >= (uint64_t)t->h->nm) {
                set_msg(t, 1, "b vm N: N is a machine of this run (0-%d)", t->h->nm - 1);
                return;
            }
            b = (bp){BP_VM, (uint32_t)v};
        } else {
            uint64_t v;
            if (parse_num(words[1], &v) || v > UINT32_MAX) {
                set_msg(t, 1, "b ADDR: '%s' is not an address (e.g. 0x1048)", words[1]);
                return;
            }
            b = (bp){BP_ADDR, (uint32_t)v};
        }
        t->bps[t->nbps++] = b;
        t->last_run = RUN_BREAK;
        char bt[40];
        bp_text(&b, bt, sizeof bt);
        set_msg(t, 0, "breakpoint %d: %s (c runs to it, B back to it)", t->nbps, bt);
    } else if (strcmp(cmd, "d") == 0 || strcmp(cmd, "delete") == 0) {
        if (nw == 1) {
            set_msg(t, 0, "%d breakpoint%s deleted", t->nbps, t->nbps == 1 ? "" : "s");
            t->nbps = 0;
            return;
        }
        uint64_t v;
        if (parse_num(words[1], &v) || v < 1 || v > (uint64_t)t->nbps) {
            set_msg(t, 1, "d N: no breakpoint %s", words[1]);
            return;
        }
        memmove(&t->bps[v - 1], &t->bps[v], (size_t)(t->nbps - (int)v) * sizeof(bp));
        t->nbps--;
        set_msg(t, 0, "breakpoint %llu deleted", (unsigned long long)v);
    } else if (strcmp(cmd, "g") == 0 || strcmp(cmd, "goto") == 0) {
        uint64_t v;
        if (nw < 2 || parse_num(words[1], &v)) {
            set_msg(t, 1, "g STEP: a step number");
            return;
        }
        int m;
        uint64_t step;
        pos_where(t, t->cur, &m, &step, NULL);
        int64_t p = pos_of_step(t, m, v);
        if (p < 0) {
            go(t, t->npos - 1);
            set_msg(t, 1, "machine %d never reached step %llu: at the last step", m,
                    (unsigned long long)v);
            return;
        }
        go(t, (uint64_t)p);
        t->stop_ev = NO_EV;
        set_msg(t, 0, "step %llu", (unsigned long long)v);
    } else if (strcmp(cmd, "m") == 0 || strcmp(cmd, "mem") == 0) {
        uint64_t v;
        if (nw == 1) {
            t->mem_fixed = 0;
            set_msg(t, 0, "memory follows the current instruction (or sp)");
            return;
        }
        if (parse_num(words[1], &v) || v > UINT32_MAX) {
            set_msg(t, 1, "m ADDR: '%s' is not an address", words[1]);
            return;
        }
        t->mem_fixed = 1;
        t->mem_addr = (uint32_t)v;
        set_msg(t, 0, "memory at 0x%08x (:m alone: follow the instruction again)", t->mem_addr);
    } else if (strcmp(cmd, "q") == 0 || strcmp(cmd, "quit") == 0) {
        t->quit = 1;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "h") == 0) {
        t->help = 1;
    } else {
        set_msg(t, 1, "unknown command '%s' (b, d, g, m, q; press ? for help)", cmd);
    }
}

/* ==== keys ================================================================================ */

static void on_key(tui *t, int k) {
    if (t->prompt) {
        if (k == '\n' || k == '\r' || k == KEY_ENTER) {
            t->prompt = 0;
            t->msg[0] = 0;
            command(t, t->pbuf);
        } else if (k == 27) {
            t->prompt = 0;
            set_msg(t, 0, "cancelled");
        } else if (k == KEY_BACKSPACE || k == 127 || k == 8) {
            if (t->plen)
                t->pbuf[--t->plen] = 0;
            else
                t->prompt = 0;
        } else if (k >= 32 && k < 127 && t->plen + 1 < (int)sizeof t->pbuf) {
            t->pbuf[t->plen++] = (char)k;
            t->pbuf[t->plen] = 0;
        }
        return;
    }
    if (t->help || t->banner) { /* any key closes the help or the banner */
        t->help = 0;
        free(t->banner);
        t->banner = NULL;
        return;
    }
    t->msg_err = 0;
    switch (k) {
    case 's':
    case KEY_DOWN:
    case KEY_RIGHT:
        t->stop_ev = NO_EV;
        if (t->cur + 1 < t->npos) {
            go(t, t->cur + 1);
            t->msg[0] = 0;
        } else {
            set_msg(t, 0, "this is the last step of the run (b goes back)");
        }
        break;
    case 'b':
    case KEY_UP:
    case KEY_LEFT:
        t->stop_ev = NO_EV;
        if (t->cur > 0) {
            go(t, t->cur - 1);
            t->msg[0] = 0;
        } else {
            set_msg(t, 0, "this is the first step of the run");
        }
        break;
    case 'S':
    case 'n':
        t->stop_ev = NO_EV;
        step_over(t);
        break;
    case 't':
        t->last_run = EK_TRAP;
        run_to(t, EK_TRAP, +1);
        break;
    case 'y':
        t->last_run = EK_SYSCALL;
        run_to(t, EK_SYSCALL, +1);
        break;
    case 'i':
        t->last_run = EK_INTERRUPT;
        run_to(t, EK_INTERRUPT, +1);
        break;
    case 'o':
        t->last_run = EK_IO;
        run_to(t, EK_IO, +1);
        break;
    case 'e':
        t->last_run = EK_EXIT;
        run_to(t, EK_EXIT, +1);
        break;
    case 'c':
        t->last_run = RUN_BREAK;
        run_to(t, RUN_BREAK, +1);
        break;
    case 'B': {
        int what = t->last_run;
        if (what == RUN_NONE) what = t->nbps ? RUN_BREAK : EK_TRAP;
        run_to(t, what, -1);
        break;
    }
    case KEY_HOME:
        go(t, 0);
        t->stop_ev = NO_EV;
        set_msg(t, 0, "the first step");
        break;
    case KEY_END:
        go(t, t->npos - 1);
        t->stop_ev = NO_EV;
        set_msg(t, 0, "the last step");
        break;
    case 'g':
        t->prompt = 1;
        snprintf(t->pbuf, sizeof t->pbuf, "g ");
        t->plen = 2;
        break;
    case ':':
        t->prompt = 1;
        t->pbuf[0] = 0;
        t->plen = 0;
        break;
    case '?':
    case 'h': t->help = 1; break;
    case 'q': t->quit = 1; break;
    case KEY_RESIZE:
    case 12: /* Ctrl-L */ break;
    default: set_msg(t, 1, "unknown key (press ? for the keys)"); break;
    }
}

/* ==== setting up ========================================================================== */

static int tui_init(tui *t, const sim_history *h, const viz_tui_opts *o) {
    memset(t, 0, sizeof *t);
    t->h = h;
    t->show = o->show ? o->show : VIZ_SHOW_ALL;
    t->last_run = RUN_NONE;
    t->stop_ev = NO_EV;
    t->title = o->title;
    if (ix_build(&t->ix, h)) {
        fprintf(stderr, "vlab: --tui: out of memory indexing the run\n");
        return -1;
    }
    if (!t->ix.ninsn || h->nm < 1) {
        fprintf(stderr, "vlab: --tui: the scenario ran no instructions: nothing to show\n");
        return -1;
    }
    t->nm = h->nm;
    t->mc = calloc((size_t)t->nm, sizeof *t->mc);
    if (!t->mc) return -1;
    /* The end of the run can be shown unless its last instruction was handed
     * to the host (an intercepted trap, an emulation): replaying it without
     * the host would not give what happened. */
    insn_info last;
    ix_insn(&t->ix, t->ix.ninsn - 1, &last);
    t->end_ok = 1;
    for (size_t i = ix_ev_first(&t->ix, t->ix.ninsn); i < t->ix.nev; i++) {
        const cpu_event *e = &h->ev[t->ix.ev[i].rec];
        if (t->ix.ev[i].machine == last.machine &&
            (e->kind == EV_INTERCEPT || e->kind == EV_EMULATE || e->kind >= 32))
            t->end_ok = 0;
    }
    t->npos = t->ix.ninsn + (uint64_t)t->end_ok;
    if (o->message && *o->message) {
        set_msg(t, o->message_is_error, "%s%.*s", o->message_is_error ? "failed: " : "",
                (int)strcspn(o->message, "\n"), o->message);
        if (o->message_is_error) t->banner = strdup(o->message);
    } else
        set_msg(t, 0, "%llu instructions recorded: s step, b back, ? help",
                (unsigned long long)t->ix.ninsn);
    return 0;
}

static void tui_free(tui *t) {
    if (t->mc)
        for (int i = 0; i < t->nm; i++)
            cpu_free(t->mc[i].cpu);
    free(t->mc);
    ix_free(&t->ix);
    free(t->cv.c);
    free(t->tl_ch);
    free(t->tl_st);
    free(t->tp_ch);
    free(t->tp_st);
    free(t->banner);
}

/* ==== the terminal ======================================================================== */

static attr_t style_attr[ST_COUNT];

static void styles_init(int colour) {
    /* semantic style: colour pair (fg, bg, attributes) and the attributes without colour */
    static const struct {
        short fg, bg;
        attr_t a, mono;
    } def[ST_TL] = {
        [ST_NORMAL] = {-1, -1, 0, 0},
        [ST_DIM] = {-1, -1, A_DIM, 0},
        [ST_BAR] = {COLOR_BLACK, COLOR_CYAN, 0, A_REVERSE},
        [ST_CUR] = {COLOR_BLACK, COLOR_YELLOW, 0, A_REVERSE | A_BOLD},
        [ST_CHANGED] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD | A_UNDERLINE},
        [ST_FLAGON] = {-1, -1, A_BOLD, A_BOLD},
        [ST_RING0] = {COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD},
        [ST_RING3] = {COLOR_BLACK, COLOR_GREEN, 0, A_REVERSE},
        [ST_RINGX] = {COLOR_BLACK, COLOR_YELLOW, 0, A_REVERSE},
        [ST_VMXOFF] = {-1, -1, A_DIM, 0},
        [ST_VMXROOT] = {COLOR_WHITE, COLOR_BLUE, A_BOLD, A_REVERSE},
        [ST_VMXGUEST] = {COLOR_BLACK, COLOR_MAGENTA, 0, A_REVERSE | A_UNDERLINE},
        [ST_MACHINE] = {COLOR_CYAN, -1, A_BOLD, A_BOLD},
        [ST_HALT] = {COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD},
        [ST_TRAP] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
        [ST_IRET] = {COLOR_GREEN, -1, 0, 0},
        [ST_IO] = {COLOR_CYAN, -1, 0, 0},
        [ST_SENS] = {COLOR_MAGENTA, -1, A_BOLD, A_BOLD | A_UNDERLINE},
        [ST_NOTE] = {COLOR_BLUE, -1, A_BOLD, 0},
        [ST_PRINT] = {COLOR_GREEN, -1, A_BOLD, 0},
        [ST_EXIT] = {COLOR_MAGENTA, -1, A_BOLD, A_BOLD},
        [ST_ERR] = {COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD},
        [ST_MARK] = {COLOR_RED, -1, A_BOLD, A_BOLD},
        [ST_STATUS] = {COLOR_BLACK, COLOR_WHITE, 0, A_REVERSE},
        [ST_KEY] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
        [ST_STOPEV] = {COLOR_WHITE, COLOR_MAGENTA, A_BOLD, A_REVERSE | A_BOLD},
    };
    short pair = 1;
    for (int s = 0; s < ST_TL; s++) {
        if (!colour) {
            style_attr[s] = def[s].mono;
            continue;
        }
        if (def[s].fg == -1 && def[s].bg == -1) {
            style_attr[s] = def[s].a;
            continue;
        }
        init_pair(pair, def[s].fg, def[s].bg);
        style_attr[s] = COLOR_PAIR(pair) | def[s].a;
        pair++;
    }
    /* the timeline: ring 0 red, rings 1-2 yellow, ring 3 green; machines on
     * different backgrounds (mono: machine 1 and 3 underlined) */
    static const short bgs[4] = {-1, COLOR_BLUE, COLOR_MAGENTA, COLOR_CYAN};
    static const short fgs[3] = {COLOR_RED, COLOR_YELLOW, COLOR_GREEN};
    for (int m = 0; m < 4; m++)
        for (int r = 0; r < 3; r++) {
            int s = ST_TL + m * 3 + r;
            if (!colour) {
                style_attr[s] = (r == 0 ? A_BOLD : 0) | ((m & 1) ? A_UNDERLINE : 0);
                continue;
            }
            init_pair(pair, m && r == 2 ? COLOR_WHITE : fgs[r], bgs[m]);
            style_attr[s] = COLOR_PAIR(pair) | (r == 0 ? A_BOLD : 0);
            pair++;
        }
    /* the process strip: the machine's background, the digits plain */
    for (int m = 0; m < 4; m++) {
        if (!colour) {
            style_attr[ST_TP + m] = (m & 1) ? A_UNDERLINE : 0;
            continue;
        }
        init_pair(pair, m ? COLOR_WHITE : -1, bgs[m]);
        style_attr[ST_TP + m] = COLOR_PAIR(pair) | A_BOLD;
        pair++;
    }
}

static int want_colour(void) {
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    if (nc && *nc) return 0;
    if (term && strstr(term, "mono")) return 0;
    return has_colors();
}

static void blit(tui *t) {
    canvas *cv = &t->cv;
    char buf[1024];
    for (int y = 0; y < cv->h; y++) {
        int x = 0;
        while (x < cv->w) {
            uint8_t st = cv->c[y * cv->w + x].st;
            int n = 0;
            while (x + n < cv->w && cv->c[y * cv->w + x + n].st == st && n < (int)sizeof buf - 1) {
                buf[n] = cv->c[y * cv->w + x + n].ch;
                n++;
            }
            buf[n] = 0;
            attrset(style_attr[st & 0x7f] | ((st & ST_REV) ? A_REVERSE : 0));
            mvaddnstr(y, x, buf, n);
            x += n;
        }
    }
    attrset(A_NORMAL);
    if (t->prompt && cv->w >= MIN_W && cv->h >= MIN_H) {
        curs_set(1);
        move(cv->h - 1, 1 + t->plen);
    } else {
        curs_set(0);
    }
    refresh();
}

static int run_terminal(tui *t) {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "vlab: --tui needs a terminal (or --tui-script KEYS to run without one)\n");
        return SIM_EXIT_USAGE;
    }
    setlocale(LC_CTYPE, "");
    SCREEN *scr = newterm(NULL, stdout, stdin);
    const char *term = getenv("TERM");
    if (!scr) {
        fprintf(stderr, "vlab: --tui: unknown terminal type '%s' (try TERM=xterm-256color)\n",
                term ? term : "(TERM is not set)");
        return SIM_EXIT_USAGE;
    }
    set_term(scr);
    const char *cup = tigetstr("cup");
    if (!cup || cup == (char *)-1) { /* e.g. TERM=dumb */
        endwin();
        delscreen(scr);
        fprintf(stderr,
                "vlab: --tui: the terminal type '%s' cannot move the cursor (try "
                "TERM=xterm-256color)\n",
                term ? term : "(TERM is not set)");
        return SIM_EXIT_USAGE;
    }
    raw();
    noecho();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    /* Home and End as terminals and multiplexers send them, whatever TERM says */
    static const char *const homes[] = {"\033[1~", "\033[7~", "\033[H", "\033OH"};
    static const char *const ends[] = {"\033[4~", "\033[8~", "\033[F", "\033OF"};
    for (int i = 0; i < 4; i++) {
        define_key(homes[i], KEY_HOME);
        define_key(ends[i], KEY_END);
    }
    t->colour = want_colour();
    if (t->colour) {
        start_color();
        use_default_colors();
    }
    styles_init(t->colour);
    int errs = 0;
    while (!t->quit) {
        int h, w;
        getmaxyx(stdscr, h, w);
        render(t, w, h);
        blit(t);
        int k = getch();
        if (k == ERR) {
            if (++errs > 100) break; /* the terminal went away */
            continue;
        }
        errs = 0;
        if (k == 3) break; /* Ctrl-C */
        if (k == KEY_RESIZE || k == 12) clearok(curscr, TRUE);
        if (k == KEY_RESIZE) continue;
        on_key(t, k);
    }
    endwin();
    delscreen(scr);
    return 0;
}

/* ==== key scripts ========================================================================= */

static const struct {
    const char *name;
    int key;
} key_names[] = {{"Up", KEY_UP},
                 {"Down", KEY_DOWN},
                 {"Left", KEY_LEFT},
                 {"Right", KEY_RIGHT},
                 {"Home", KEY_HOME},
                 {"End", KEY_END},
                 {"Enter", '\n'},
                 {"Esc", 27},
                 {"Space", ' '},
                 {"Tab", '\t'},
                 {"Backspace", KEY_BACKSPACE}};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_screen(tui *t) {
    canvas *cv = &t->cv;
    printf("== screen %dx%d\n", cv->w, cv->h);
    for (int y = 0; y < cv->h; y++) {
        int n = cv->w;
        while (n > 0 && cv->c[y * cv->w + n - 1].ch == ' ')
            n--;
        for (int x = 0; x < n; x++)
            putchar(cv->c[y * cv->w + x].ch);
        putchar('\n');
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Check every position: the machine rebuilt by stepping forward is where the
 * recorded run was (pc, step, ring), and agrees with a fresh rebuild. */
static int verify(tui *t) {
    int bad = 0;
    cpu_t *fresh[256] = {0};
    for (uint64_t p = 0; p < t->ix.ninsn && bad < 5; p++) {
        insn_info ii;
        ix_insn(&t->ix, p, &ii);
        cpu_t *c = machine_at(t, ii.machine, ii.step, 1);
        if (!c) {
            printf("verify: position %llu: no state\n", (unsigned long long)p);
            bad++;
            continue;
        }
        if (c->pc != ii.pc || c->steps != ii.step || c->cpl != (ii.mode & EV_MODE_CPL)) {
            printf("verify: position %llu (machine %d step %llu): recorded pc %08x ring %d, "
                   "rebuilt pc %08x ring %d step %llu\n",
                   (unsigned long long)p, ii.machine, (unsigned long long)ii.step, ii.pc,
                   ii.mode & EV_MODE_CPL, c->pc, c->cpl, (unsigned long long)c->steps);
            bad++;
        }
        if (p % 7 == 0 || p + 1 == t->ix.ninsn) {
            cpu_t **f = &fresh[ii.machine];
            if (!*f) *f = cpu_new(t->h->m[ii.machine].mem_size);
            if (*f && sim_history_state_at(t->h, ii.machine, ii.step, *f) == 0 && (settle(*f), 1) &&
                (memcmp((*f)->r, c->r, sizeof c->r) || (*f)->pc != c->pc ||
                 cpu_get_flags(*f) != cpu_get_flags(c) || (*f)->cycles != c->cycles ||
                 memcmp((*f)->mem, c->mem, c->mem_size))) {
                printf("verify: position %llu (machine %d step %llu): stepping forward and "
                       "rebuilding disagree\n",
                       (unsigned long long)p, ii.machine, (unsigned long long)ii.step);
                bad++;
            }
        }
    }
    for (int i = 0; i < 256; i++)
        cpu_free(fresh[i]);
    if (!bad) printf("verify: %llu positions: ok\n", (unsigned long long)t->ix.ninsn);
    return bad;
}

static int run_script(tui *t, const char *script, int w, int h) {
    double *times = NULL;
    size_t ntimes = 0, captimes = 0;
    int shown = 0, rc = 0; /* shown: the screen was printed after the last key */
    styles_init(0);
    render(t, w, h);
    const char *p = script;
    while (*p && !t->quit) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ';')
            p++;
        if (!*p) break;
        char item[160];
        size_t n;
        if (*p == ':') { /* a command, up to ';' */
            n = strcspn(p, ";");
            while (n > 1 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                n--;
        } else {
            n = strcspn(p, " \t\n;");
        }
        snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item ? n : sizeof item - 1), p);
        p += n;
        int keys[160], nk = 0;
        if (item[0] == ':') {
            for (size_t i = 0; item[i] && nk < 158; i++)
                keys[nk++] = (unsigned char)item[i];
            keys[nk++] = '\n';
        } else if (item[0] == '@' && item[1]) {
            if (strcmp(item, "@screen") == 0) {
                render(t, w, h);
                print_screen(t);
                shown = 1;
            } else if (strcmp(item, "@time") == 0) {
                if (ntimes) {
                    qsort(times, ntimes, sizeof *times, cmp_double);
                    printf("time: %zu keys, median %.3f ms, max %.3f ms\n", ntimes,
                           times[(ntimes - 1) / 2], times[ntimes - 1]);
                } else {
                    printf("time: no keys\n");
                }
                ntimes = 0;
            } else if (strcmp(item, "@verify") == 0) {
                if (verify(t)) rc = SIM_EXIT_FAIL;
            } else if (strncmp(item, "@size=", 6) == 0) {
                int nw, nh;
                if (sscanf(item + 6, "%dx%d", &nw, &nh) != 2 || nw < 1 || nh < 1 || nw > 1000 ||
                    nh > 1000) {
                    fprintf(stderr, "vlab: --tui-script: bad size '%s' (e.g. @size=100x30)\n",
                            item + 6);
                    free(times);
                    return SIM_EXIT_USAGE;
                }
                w = nw;
                h = nh;
                render(t, w, h);
                shown = 0;
            } else {
                fprintf(stderr,
                        "vlab: --tui-script: unknown directive '%s' (@screen @time @verify "
                        "@size=WxH)\n",
                        item);
                free(times);
                return SIM_EXIT_USAGE;
            }
            continue;
        } else if (!item[1]) {
            keys[nk++] = (unsigned char)item[0];
        } else {
            for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
                if (strcmp(item, key_names[i].name) == 0) keys[nk++] = key_names[i].key;
            if (!nk) {
                fprintf(stderr,
                        "vlab: --tui-script: unknown key '%s' (one character, :COMMAND;, or Up "
                        "Down Left Right Home End Enter Esc Space Tab Backspace)\n",
                        item);
                free(times);
                return SIM_EXIT_USAGE;
            }
        }
        shown = 0;
        for (int i = 0; i < nk && !t->quit; i++) {
            double t0 = now_ms();
            on_key(t, keys[i]);
            render(t, w, h);
            if (ntimes == captimes) {
                size_t cap = captimes ? captimes * 2 : 64;
                double *q = realloc(times, cap * sizeof *q);
                if (q) {
                    times = q;
                    captimes = cap;
                }
            }
            if (ntimes < captimes) times[ntimes++] = now_ms() - t0;
        }
    }
    if (!shown) {
        render(t, w, h);
        print_screen(t);
    }
    free(times);
    return rc;
}

/* ==== entry points ========================================================================= */

int viz_tui_view(const sim_history *h, const viz_tui_opts *o) {
    tui *t = malloc(sizeof *t);
    if (!t) return SIM_EXIT_FAIL;
    if (tui_init(t, h, o)) {
        tui_free(t);
        free(t);
        return SIM_EXIT_FAIL;
    }
    int rc = o->script ? run_script(t, o->script, o->width > 0 ? o->width : MIN_W,
                                    o->height > 0 ? o->height : MIN_H)
                       : run_terminal(t);
    if (getenv("VLAB_TUI_STATS"))
        fprintf(stderr,
                "tui: %llu instructions, %zu index entries, %zu events; index %zu KiB, "
                "history %zu KiB of events + %zu KiB of snapshots (%llu checkpoints taken, "
                "%llu full)\n",
                (unsigned long long)t->ix.ninsn, t->ix.nrun, t->ix.nev, ix_bytes(&t->ix) >> 10,
                (h->cap * sizeof(cpu_event)) >> 10, h->bytes >> 10, (unsigned long long)h->taken,
                (unsigned long long)h->full);
    tui_free(t);
    free(t);
    return rc;
}

/* Read what the scenario wrote to a captured stream. */
static char *slurp_fd(int fd) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    lseek(fd, 0, SEEK_SET);
    ssize_t got;
    while ((got = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (n + 1 == cap) {
            if (cap >= (1u << 20)) break;
            char *p = realloc(buf, cap * 2);
            if (!p) break;
            buf = p;
            cap *= 2;
        }
    }
    buf[n] = 0;
    return buf;
}

int viz_tui_main(const sim_options *opt, const char *script) {
    if (!script && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))) {
        fprintf(stderr, "vlab: --tui needs a terminal (or --tui-script KEYS to run without one)\n");
        return SIM_EXIT_USAGE;
    }
    sim_options o = *opt;
    o.quiet = 1;
    if (!script) fprintf(stderr, "vlab: running %s...\n", o.scenario);
    /* the run prints nothing on the screen: its own output is in the event
     * log, and its errors are shown in the status line, then printed */
    fflush(stdout);
    fflush(stderr);
    int out_saved = dup(STDOUT_FILENO), err_saved = dup(STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    FILE *cap = tmpfile();
    if (out_saved < 0 || err_saved < 0 || devnull < 0 || !cap) {
        fprintf(stderr, "vlab: --tui: %s\n", strerror(errno));
        if (cap) fclose(cap);
        if (devnull >= 0) close(devnull);
        if (out_saved >= 0) close(out_saved);
        if (err_saved >= 0) close(err_saved);
        return SIM_EXIT_FAIL;
    }
    dup2(devnull, STDOUT_FILENO);
    dup2(fileno(cap), STDERR_FILENO);
    sim_history *h = NULL;
    int rc = sim_run_scenario(&o, &h);
    fflush(stdout);
    fflush(stderr);
    dup2(out_saved, STDOUT_FILENO);
    dup2(err_saved, STDERR_FILENO);
    close(out_saved);
    close(err_saved);
    close(devnull);
    char *errs = slurp_fd(fileno(cap));
    fclose(cap);
    int vrc = SIM_EXIT_FAIL;
    if (h) {
        char first[256] = "";
        if (rc != SIM_EXIT_OK && !(errs && *errs))
            snprintf(first, sizeof first, "the scenario failed (exit status %d)", rc);
        viz_tui_opts vo = {.show = o.show,
                           .script = script,
                           .title = o.scenario,
                           .message = rc == SIM_EXIT_OK ? NULL
                                      : errs && *errs   ? errs
                                                        : first,
                           .message_is_error = 1};
        if (script && errs && *errs) fputs(errs, stderr);
        vrc = viz_tui_view(h, &vo);
        sim_history_free(h);
        free(h);
    }
    if (errs && *errs && (!script || !h)) fputs(errs, stderr);
    free(errs);
    if (vrc == SIM_EXIT_USAGE) return vrc;
    if (rc != SIM_EXIT_OK) return rc;
    return vrc;
}
