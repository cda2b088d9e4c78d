/* sim/session.c -- a run's options, budgets, machines and trace sinks. */
#include "sim/session.h"

#include "hypervisor/disk.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/asm.h"
#include "hypervisor/cowmem.h"
#include "hypervisor/hv.h"

#define MAX_MACHINE_BYTES (256u << 20)

void sim_options_default(sim_options *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->max_steps = 100000000ull;
    o->policy = "x86";
    o->show = VIZ_SHOW_ALL;
    o->time_limit = 60.0;
    o->lua_budget = 2000000000ull;
    o->mem_limit = (size_t)1 << 30;
    o->color = -1;
}

double sim_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int sim_check_time(sim_session *s) {
    if (s->opt.time_limit > 0 && sim_now() - s->start_time > s->opt.time_limit) {
        snprintf(s->limit_msg, sizeof s->limit_msg,
                 "time budget of %g s exhausted (raise it with --time-limit)", s->opt.time_limit);
        return SIM_EXIT_LIMIT;
    }
    return 0;
}

int sim_session_init(sim_session *s, const sim_options *o) {
    memset(s, 0, sizeof *s);
    s->opt = *o;
    s->current = -1;
    s->start_time = sim_now();
    cpu_trace_init(&s->trace, 1 << 14);
    /* per-instruction records only when somebody reads them */
    s->trace.insns = (!o->quiet && ((o->show & VIZ_SHOW_INSN) || o->quiz)) || o->trace_file;
    viz_text_init(&s->text, stdout, o->show, o->quiet);
    s->text.quiz = o->quiz;
    s->text.color = o->color < 0 ? viz_text_want_color(stdout) : o->color;
    if (o->quiz) s->text.rd.blocks = READ_INSNS; /* questions show their instruction */
    sim_summary_init(&s->summary);
    cpu_trace_add_sink(&s->trace, viz_text_sink, &s->text);
    cpu_trace_add_sink(&s->trace, sim_summary_sink, &s->summary);
    if (o->keep_history) {
        s->history = malloc(sizeof *s->history);
        if (!s->history) return -1;
        sim_history_init(s->history);
        s->history->events_only = o->history_events_only;
        s->trace.insns = 1; /* every instruction is kept */
        cpu_trace_add_sink(&s->trace, sim_history_sink, s->history);
    }
    if (o->trace_file) {
        char err[256];
        s->tf = sim_tracefile_create(o->trace_file, err, sizeof err);
        if (!s->tf) {
            fprintf(stderr, "vlab: %s\n", err);
            return -1;
        }
        cpu_trace_add_sink(&s->trace, sim_tracefile_sink, s->tf);
    }
    return 0;
}

int sim_session_close(sim_session *s, int keep) {
    int rc = 0;
    cpu_trace_flush(&s->trace);
    fflush(stdout);
    for (int i = 0; i < s->nmachines; i++)
        sim_machine_free(s, s->machines[i]);
    free(s->machines);
    s->machines = NULL;
    s->nmachines = 0;
    for (int i = 0; i < s->ngone; i++) free(s->gone[i]);
    free(s->gone);
    s->gone = NULL;
    s->ngone = 0;
    if (s->tf) {
        char err[512];
        if (sim_tracefile_close(s->tf, keep, err, sizeof err)) {
            fprintf(stderr, "vlab: %s\n", err);
            rc = -1;
        }
        s->tf = NULL;
    }
    viz_text_free(&s->text);
    sim_summary_free(&s->summary);
    cpu_trace_free(&s->trace);
    if (s->history && !s->keep_history_after_close) {
        sim_history_free(s->history);
        free(s->history);
        s->history = NULL;
    }
    return rc;
}

sim_machine *sim_machine_new(sim_session *s, uint32_t mem_bytes, const char *policy,
                             const char *name, char *err, size_t errlen) {
    if (mem_bytes == 0 || mem_bytes > MAX_MACHINE_BYTES) {
        snprintf(err, errlen, "memory of a machine must be between 4 KiB and %u MiB",
                 MAX_MACHINE_BYTES >> 20);
        return NULL;
    }
    size_t bytes = ((size_t)mem_bytes + CPU_PAGE - 1) / CPU_PAGE * CPU_PAGE;
    if (s->lua_bytes + s->machine_bytes + bytes > s->opt.mem_limit) {
        snprintf(err, errlen, "memory cap of %zu MiB reached (raise it with --mem-limit)",
                 s->opt.mem_limit >> 20);
        return NULL;
    }
    sim_machine *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->cpu = cpu_new(mem_bytes);
    sim_machine **list = realloc(s->machines, (size_t)(s->nmachines + 1) * sizeof *list);
    if (!m->cpu || !list) {
        cpu_free(m->cpu);
        free(m);
        if (list) s->machines = list;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cpu_policy_preset(m->cpu, policy) < 0) {
        snprintf(err, errlen, "unknown policy '%s' (expected x86 or strict)", policy);
        cpu_free(m->cpu);
        free(m);
        s->machines = list;
        return NULL;
    }
    s->machines = list;
    m->id = s->nmachines;
    s->machines[s->nmachines++] = m;
    s->machine_bytes += bytes;
    m->lua_ref = -2; /* LUA_NOREF */
    snprintf(m->name, sizeof m->name, "%s", name && *name ? name : "machine");
    m->cpu->trace = &s->trace;
    m->host_dirty = 1;
    if (s->history) sim_history_machine_add(s->history, m->id, m->name, m->cpu->mem_size);
    sim_switch_to(s, m);
    char desc[160];
    int len = snprintf(desc, sizeof desc, "machine %d '%s': %u KiB of memory, policy %s", m->id,
                       m->name, m->cpu->mem_size / 1024, policy);
    sim_text(s, TEXT_MACHINE, desc, (size_t)len);
    return m;
}

/* Remember what a bare machine's run of a program cost, for the overhead
 * of VMs that run the same program. */
static void note_native(sim_session *s, const sim_machine *m) {
    if (!m->nimages || !m->images[0].nfiles || !m->cpu->steps) return;
    for (int k = 0; k < s->nhvs; k++)
        if (s->hvs[k]->host == m->cpu) return; /* a hypervisor's host is no bare run */
    const char *img = m->images[0].files[0];
    for (int i = 0; i < s->nnative; i++)
        if (strcmp(s->native[i].image, img) == 0) {
            if (s->native[i].machine == m->id)
                s->native[i].cycles = m->cpu->cycles;
            else if (s->native[i].cycles != m->cpu->cycles)
                s->native[i].ambiguous = 1;
            return;
        }
    if (s->nnative < (int)(sizeof s->native / sizeof s->native[0])) {
        snprintf(s->native[s->nnative].image, sizeof s->native[0].image, "%s", img);
        s->native[s->nnative].machine = m->id;
        s->native[s->nnative++].cycles = m->cpu->cycles;
    }
}

static char *summary_text(sim_session *s, sim_machine *m);

void sim_machine_free(sim_session *s, sim_machine *m) {
    if (!m || !m->cpu) return;
    note_native(s, m);
    if (m->id >= s->ngone) { /* its summary lines, kept for the end of the run */
        char **g = realloc(s->gone, (size_t)(m->id + 1) * sizeof *g);
        if (g) {
            memset(g + s->ngone, 0, (size_t)(m->id + 1 - s->ngone) * sizeof *g);
            s->gone = g;
            s->ngone = m->id + 1;
        }
    }
    if (m->id < s->ngone && !s->gone[m->id]) s->gone[m->id] = summary_text(s, m);
    if (m->id < s->nmachines && s->machines[m->id] == m) s->machines[m->id] = NULL;
    s->machine_bytes -= m->cpu->mem_size;
    for (int i = 0; i < m->nimages; i++)
        asm_image_free(&m->images[i]);
    free(m->images);
    m->images = NULL;
    m->nimages = 0;
    free(m->vm_lines);
    m->vm_lines = NULL;
    disk_detach_native(m->cpu, m->disk);
    m->disk = NULL;
    cpu_free(m->cpu);
    m->cpu = NULL;
    free(m);
}

void sim_switch_to(sim_session *s, sim_machine *m) {
    if (s->current == m->id) return;
    s->current = m->id;
    cpu_event e = {.kind = EV_CONTEXT, .a = (uint8_t)m->id};
    cpu_trace_put(&s->trace, m->cpu->steps, m->cpu->cycles, &e);
}

void sim_text(sim_session *s, int kind, const char *txt, size_t len) {
    uint64_t step = s->trace.step, cycle = s->trace.cycle;
    if (s->current >= 0 && s->current < s->nmachines && s->machines[s->current] &&
        s->machines[s->current]->cpu) {
        step = s->machines[s->current]->cpu->steps;
        cycle = s->machines[s->current]->cpu->cycles;
    }
    cpu_trace_text(&s->trace, step, cycle, 0, kind, txt, len);
}

/* ---- the end-of-run summary -------------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->n + (size_t)n + 1 > b->cap) {
        size_t cap = (b->n + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

static void sb_quoted(strbuf *b, const char *s, size_t n, size_t max) {
    sb_printf(b, "\"");
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            sb_printf(b, "\\n");
        else if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c >= 32 && c < 127)
            sb_printf(b, "%c", c);
        else
            sb_printf(b, "\\x%02x", c);
    }
    sb_printf(b, n > max ? "\"..." : "\"");
}

void sim_register_hv(sim_session *s, struct hv *h, sim_machine *host) {
    (void)host;
    if (s->nhvs < (int)(sizeof s->hvs / sizeof s->hvs[0])) s->hvs[s->nhvs++] = h;
}

/* A disk controller's figures (hypervisor/disk.h), one line. */
static void summary_disk(strbuf *b, const char *indent, const struct disk_ctl *d) {
    if (!d) return;
    sb_printf(b, "%sdisk: %llu request%s, %llu sectors read, %llu written, %llu failed, %llu cycles busy\n",
              indent, (unsigned long long)d->requests, d->requests == 1 ? "" : "s",
              (unsigned long long)d->sectors_read,
              (unsigned long long)d->sectors_written, (unsigned long long)d->failures,
              (unsigned long long)d->busy_cycles);
    if (d->media && d->media->dev->describe) { /* a copy-on-write overlay: what it holds */
        char line[240];
        d->media->dev->describe(d->media->dev, line, sizeof line);
        sb_printf(b, "%s  %s\n", indent, line);
    }
}

static void summary_vms(strbuf *b, const sim_session *s, const hv *h);

/* A hypervisor is going away (Lua collected it) before the summary: keep
 * the lines of its VMs with its host machine. */
void sim_unregister_hv(sim_session *s, struct hv *h) {
    for (int i = 0; i < s->nmachines; i++)
        if (s->machines[i]) note_native(s, s->machines[i]); /* what the lines compare with */
    for (int i = 0; i < s->nmachines; i++) {
        sim_machine *m = s->machines[i];
        if (!m || m->cpu != h->host) continue;
        strbuf b = {0};
        if (m->vm_lines) sb_printf(&b, "%s", m->vm_lines);
        summary_vms(&b, s, h);
        free(m->vm_lines);
        m->vm_lines = b.p;
    }
    for (int i = 0; i < s->nhvs; i++)
        if (s->hvs[i] == h) s->hvs[i] = s->hvs[--s->nhvs];
}

static void summary_vms(strbuf *b, const sim_session *s, const hv *h) {
    if (h->hosted)
        sb_printf(b, "  hosted VMM (host OS, VMApp, VMDriver): %llu world switches, cheap device registers "
                     "handled %s%s\n",
                  (unsigned long long)h->world_switches, h->cheap_in_vmm ? "in the VMM" : "by VMApp",
                  h->host_broken ? "; the host world STOPPED (VMDriver never switched back)" : "");
    if (h->host_disk) { /* the host machine's own controller, which the host OS drove for VMApp */
        sb_printf(b, "  host disk (vm %d's, driven by the host OS for VMApp: %llu guest request%s):\n",
                  h->host_disk_vm, (unsigned long long)h->host_disk_requests,
                  h->host_disk_requests == 1 ? "" : "s");
        summary_disk(b, "    ", h->host_disk);
    }
    if (h->ncpus > 1) {
        uint64_t all = hv_elapsed(h);
        for (int p = 0; p < h->ncpus; p++)
            sb_printf(b, "  physical CPU %d: ran VMs %llu of %llu cycles (%.0f%%) in %llu slices\n", p,
                      (unsigned long long)h->pcpu[p].busy, (unsigned long long)all,
                      all ? 100.0 * (double)h->pcpu[p].busy / (double)all : 0.0,
                      (unsigned long long)h->pcpu[p].slices);
    }
    if (h->frames->shared) { /* copy-on-write memory: what sharing saved */
        hv_frames_summary f;
        hv_frames_summarize(h, &f);
        sb_printf(b, "  memory: %u guest pages in %u frames: sharing saves %u frames (%u KiB); %llu clones, "
                     "%llu copies on write, %llu write permissions restored, %llu pages merged in %llu scans, "
                     "%llu frames freed\n",
                  f.mappings, f.guest, f.saved, f.saved * 4, (unsigned long long)f.clones,
                  (unsigned long long)f.copies, (unsigned long long)f.restores, (unsigned long long)f.merges,
                  (unsigned long long)f.scans, (unsigned long long)f.freed);
        /* over time: after each clone, before and after each scan, and now */
        const hv_frames *F = h->frames;
        sb_printf(b, "  memory over time (cycle: frames for guest pages, copies so far):");
        for (int k = 0; k < F->npoints; k++)
            sb_printf(b, " %llu: %u for %u, %llu;", (unsigned long long)F->points[k].cycle, F->points[k].guest,
                      F->points[k].mappings, (unsigned long long)F->points[k].copies);
        sb_printf(b, " end %llu: %u for %u, %llu\n", (unsigned long long)hv_elapsed(h), f.guest, f.mappings,
                  (unsigned long long)f.copies);
    }
    for (int i = 0; i < h->nvms; i++) {
        const hv_vm *vm = h->vms[i];
        const hv_vcpu *v = &vm->vcpu;
        sb_printf(b, "  vm %d '%s' (%s%s, guest kernel in ring %d, weight %u): %s, %llu cycles on the CPU in %llu slices\n",
                  vm->id, vm->name, hv_technique_name(vm->technique), vm->vtx_shadow ? " with shadow paging" : "",
                  vm->kernel_ring, vm->weight,
                  vm->destroyed ? "destroyed" : vm->done ? "finished" : "runnable", (unsigned long long)vm->cpu_cycles,
                  (unsigned long long)vm->slices);
        if (h->ncpus > 1)
            sb_printf(b, "    moved to another physical CPU %llu times\n", (unsigned long long)vm->migrations);
        if (h->hosted)
            sb_printf(b, "    world switches for its I/O: %llu\n", (unsigned long long)v->world_switches);
        const char *img = vm->nimages && vm->images[0].nfiles ? vm->images[0].files[0] : NULL;
        for (int k = 0; img && vm->done && k < s->nnative; k++)
            if (strcmp(s->native[k].image, img) == 0 && s->native[k].cycles && !s->native[k].ambiguous)
                sb_printf(b, "    %s took %.2fx the cycles of its bare-metal run (%llu against %llu)\n", img, (double)vm->cpu_cycles / (double)s->native[k].cycles,
                          (unsigned long long)vm->cpu_cycles, (unsigned long long)s->native[k].cycles);
        sb_printf(b, "    exits %llu, emulated %llu, reflected %llu, injected %llu, shadow fills %llu, "
                     "page-table writes %llu\n",
                  (unsigned long long)v->exits, (unsigned long long)v->emulations,
                  (unsigned long long)v->reflections, (unsigned long long)v->injections,
                  (unsigned long long)v->shadow_fills, (unsigned long long)v->pt_writes);
        if (h->frames->shared) { /* copy-on-write memory: its footprint */
            hv_footprint f;
            hv_vm_footprint(h, vm, &f);
            sb_printf(b, "    memory: %u pages in %u frames, %u of them its own (%u KiB); %llu copies on write, "
                         "%llu write permissions restored, %llu pages merged\n",
                      f.pages, f.frames, f.own, f.own * 4, (unsigned long long)f.copies,
                      (unsigned long long)f.restores, (unsigned long long)f.merged);
        }
        if (vm->technique == HV_PV)
            sb_printf(b, "    hypercalls %llu\n", (unsigned long long)v->hypercalls);
        if (vm->technique == HV_BT)
            sb_printf(b, "    translated %llu pages (%llu blocks), %llu callouts, %llu retranslated stores\n",
                      (unsigned long long)v->translations, (unsigned long long)v->translated_blocks,
                      (unsigned long long)v->callouts, (unsigned long long)v->retranslations);
        int any = 0;
        for (int op = 0; op < OP_COUNT; op++)
            if (v->emulated_by_op[op]) {
                sb_printf(b, "%s%s x%llu", any ? ", " : "    emulated: ", cpu_isa[op].mnem,
                          (unsigned long long)v->emulated_by_op[op]);
                any = 1;
            }
        if (any) sb_printf(b, "\n");
        summary_disk(b, "    ", hv_vm_disk(vm));
        if (vm->console_len) {
            sb_printf(b, "    console: ");
            sb_quoted(b, vm->console, vm->console_len, 400);
            sb_printf(b, "\n");
        }
    }
}

/* One machine's lines of the summary. */
static void summary_machine(strbuf *b, sim_session *s, sim_machine *m) {
    cpu_t *c = m->cpu;
    char state[64];
    if (c->dead)
        snprintf(state, sizeof state, "shut down by a triple fault");
    else if (c->halted)
        snprintf(state, sizeof state, "halted by the hlt at 0x%08x", c->pc - 4);
    else
        snprintf(state, sizeof state, "stopped at 0x%08x", c->pc);
    uint64_t cycles = c->cycles;
    const hv *mh = NULL;
    for (int hi = 0; hi < s->nhvs; hi++)
        if (s->hvs[hi]->host == c) mh = s->hvs[hi];
    if (mh && mh->ncpus > 1) cycles = hv_elapsed(mh); /* its CPUs' clocks differ: the latest */
    sb_printf(b, "machine %d '%s' (policy %s): %llu steps, %llu cycles, %s, ring %d\n", m->id,
              m->name, cpu_policy_describe(c), (unsigned long long)c->steps,
              (unsigned long long)cycles, state, c->cpl);
    const sim_counts *k = sim_summary_of(&s->summary, m->id);
    if (k) {
        int any = 0;
        for (int v = 0; v < 256; v++)
            if (k->traps[v] || k->intercepts[v]) {
                char nb[24];
                sb_printf(b, "%s%s x%llu",
                          any ? ", " : "  traps: ", viz_vector_name(v, nb, sizeof nb),
                          (unsigned long long)(k->traps[v] + k->intercepts[v]));
                if (k->intercepts[v])
                    sb_printf(b, " (%llu to the host)", (unsigned long long)k->intercepts[v]);
                any = 1;
            }
        if (any) sb_printf(b, "\n");
        if (k->sensitive)
            sb_printf(b, "  sensitive instructions that did not trap: %llu\n",
                      (unsigned long long)k->sensitive);
        if (k->emulated)
            sb_printf(b, "  instructions emulated by the host: %llu\n",
                      (unsigned long long)k->emulated);
    }
    summary_disk(b, "  ", m->disk);
    if (m->vm_lines) sb_printf(b, "%s", m->vm_lines);
    for (int hi = 0; hi < s->nhvs; hi++)
        if (s->hvs[hi]->host == c) summary_vms(b, s, s->hvs[hi]);
    size_t clen;
    const char *con = cpu_console(c, &clen);
    if (clen) {
        sb_printf(b, "  console: ");
        sb_quoted(b, con, clen, 400);
        sb_printf(b, "\n");
    }
}

/* A machine's summary lines now (Lua is collecting it). */
static char *summary_text(sim_session *s, sim_machine *m) {
    cpu_trace_flush(&s->trace); /* its trap counts come from the trace */
    strbuf b = {0};
    summary_machine(&b, s, m);
    return b.p;
}

void sim_print_summary(sim_session *s) {
    cpu_trace_flush(&s->trace);
    for (int i = 0; i < s->nmachines; i++)
        if (s->machines[i]) note_native(s, s->machines[i]);
    strbuf b = {0};
    sb_printf(&b, "== summary\n");
    for (int i = 0; i < s->nmachines; i++) {
        sim_machine *m = s->machines[i];
        if (m)
            summary_machine(&b, s, m);
        else if (i < s->ngone && s->gone[i]) /* collected by Lua before the end: as it was then */
            sb_printf(&b, "%s", s->gone[i]);
    }
    if (s->expect_passed || s->expect_failed)
        sb_printf(&b, "expectations: %d passed%s\n", s->expect_passed,
                  s->expect_failed ? ", 1 failed" : "");
    if (b.p) sim_text(s, TEXT_SUMMARY, b.p, b.n);
    free(b.p);
}
