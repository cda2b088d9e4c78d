/* tests/check_cowmem.c -- copy-on-write memory (hypervisor/cowmem.c): the
 * frame table's invariants (no lost write, no frame freed while mapped,
 * every count equal to the guest pages mapping the frame) checked after
 * every operation of a seeded random mix of clones, guest runs, hypervisor
 * writes and sharing scans, under every technique; clone equivalence with
 * vlab-os; a clone's footprint; the scanner's full compare against a forced
 * hash collision; frames reused zeroed, with nothing of the CPU's caches
 * left; the EPT violation a write to a shared page makes (SDM 28.2.3). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "hypervisor/cowmem.h"
#include "hypervisor/hv.h"
#include "runvlab.h"

Suite *suite_cowmem(void);

/* the techniques, as a loop-test index */
static const struct {
    int tech, ring, vtx_shadow;
    const char *name;
} TECH[] = {
    {HV_TRAP_EMULATE, 1, 0, "trap-and-emulate"},
    {HV_TRAP_EMULATE, 3, 0, "trap-and-emulate, kernel in ring 3"},
    {HV_BT, 1, 0, "binary-translation"},
    {HV_PV, 1, 0, "paravirtual"},
    {HV_VTX, 1, 0, "vt-x with EPT"},
    {HV_VTX, 1, 1, "vt-x with shadow paging"},
};
#define NTECH ((int)(sizeof TECH / sizeof TECH[0]))

static uint32_t rng_state;
static uint32_t rnd(void) { /* xorshift32: the same sequence on every run */
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static void load(hv *h, hv_vm *vm, const char *path) {
    asm_image img = assemble_file(path);
    for (int k = 0; k < img.nchunks; k++)
        ck_assert_int_eq(
            hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len), 0);
    vm->vcpu.pc = img.entry;
    asm_image_free(&img);
}

static hv_vm *new_vm(hv *h, int t, uint32_t mem) {
    char err[160];
    hv_vm *vm = hv_vm_new(h, "guest", mem, TECH[t].tech, TECH[t].ring, err, sizeof err);
    ck_assert_msg(vm != NULL, "%s", err);
    vm->vtx_shadow = TECH[t].vtx_shadow;
    return vm;
}

static hv_vm *clone(hv *h, hv_vm *vm) {
    char err[160];
    hv_vm *c = hv_vm_clone(h, vm, "clone", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static void check_frames(const hv *h, const char *tech, int op) {
    char err[200];
    ck_assert_msg(hv_frames_check(h, err, sizeof err) == 0, "%s, after operation %d: %s", tech, op,
                  err);
}

/* cow-counters.s: the counters read [m+1, ..., m+1, m, ..., m] and the pass
 * count is m or m - 1.  Returns m. */
#define NDATA 16
static uint32_t check_counters(hv *h, hv_vm *vm, const char *tech, int op) {
    uint32_t c[NDATA], passes;
    for (int i = 0; i < NDATA; i++)
        ck_assert_int_eq(hv_vm_read_phys(h, vm, 0x8000 + 0x1000 * (uint32_t)i, &c[i], 4), 0);
    ck_assert_int_eq(hv_vm_read_phys(h, vm, 0x7000, &passes, 4), 0);
    uint32_t m = c[NDATA - 1];
    for (int i = 0; i < NDATA; i++) {
        ck_assert_msg(c[i] == m || c[i] == m + 1,
                      "%s, op %d, vm %d: counter %d is %u, the last %u (a lost write)", tech, op,
                      vm->id, i, c[i], m);
        ck_assert_msg(i == 0 || c[i] <= c[i - 1], "%s, op %d, vm %d: counter %d is %u after %u",
                      tech, op, vm->id, i, c[i], c[i - 1]);
    }
    ck_assert_msg(passes == m || passes + 1 == m, "%s, op %d, vm %d: %u passes, counters at %u",
                  tech, op, vm->id, passes, m);
    return m;
}

/* Many clones, guest runs, hypervisor writes, sharing scans and VM
 * destructions, in a seeded random order; after every operation: the frame
 * table's invariants, every VM's hypervisor-written pages equal to a model,
 * every VM's counters intact. */
#define MAXVM 8
#define MODEL_BASE 0x18000u /* pages 24-31: written only by the hypervisor */
#define MODEL_SIZE 0x8000u
START_TEST(test_random_clones_and_writes) {
    const char *tech = TECH[_i].name;
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    h->quantum = 4000;
    static uint8_t model[MAXVM][MODEL_SIZE];
    memset(model, 0, sizeof model);
    hv_vm *first = new_vm(h, _i, 128 * 1024);
    load(h, first, "tests/guests/cow-counters.s");
    rng_state = 0x9e3779b9u ^ (uint32_t)_i;
    uint32_t buf[16];
    int scans = 0, clones = 0, writes = 0, destroys = 0;
    for (int op = 0; op < 60; op++) {
        uint32_t r = rnd() % 10;
        if (op < 2) r = 2; /* let the guest start first */
        hv_vm *any = h->vms[rnd() % (uint32_t)h->nvms];
        while (any->destroyed) any = h->vms[(any->id + 1) % h->nvms]; /* the first is never destroyed */
        if (r <= 1 && h->nvms < MAXVM) {
            hv_vm *p = any;
            hv_vm *c = clone(h, p);
            memcpy(model[c->id], model[p->id], MODEL_SIZE);
            clones++;
        } else if (r <= 5) {
            ck_assert_int_eq(hv_run(h, 2000 + rnd() % 20000), CPU_EXIT_BUDGET);
        } else if (r <= 7) {
            hv_vm *vm = any;
            uint32_t off = rnd() % (MODEL_SIZE - sizeof buf), n = 1 + rnd() % sizeof buf;
            for (int i = 0; i < 16; i++)
                buf[i] = rnd();
            ck_assert_int_eq(hv_vm_write_phys(h, vm, MODEL_BASE + off, buf, n), 0);
            memcpy(model[vm->id] + off, buf, n);
            writes++;
        } else if (r == 8 || any == first) {
            hv_share_stats st;
            ck_assert_int_eq(hv_share_pages(h, NULL, &st), 0);
            ck_assert_uint_eq(st.collisions, 0);
            scans++;
        } else {
            hv_vm_destroy(h, any);
            destroys++;
        }
        check_frames(h, tech, op);
        for (int v = 0; v < h->nvms; v++) {
            static uint8_t mem[MODEL_SIZE];
            if (h->vms[v]->destroyed) continue;
            ck_assert_int_eq(hv_vm_read_phys(h, h->vms[v], MODEL_BASE, mem, MODEL_SIZE), 0);
            ck_assert_msg(memcmp(mem, model[v], MODEL_SIZE) == 0,
                          "%s, op %d: vm %d lost a hypervisor write", tech, op, v);
            check_counters(h, h->vms[v], tech, op);
        }
    }
    ck_assert_int_gt(clones, 2);
    ck_assert_int_gt(scans, 1);
    ck_assert_int_gt(writes, 5);
    ck_assert_int_gt(destroys, 0);
    /* the guests ran, and wrote shared pages: copies and restores happened */
    ck_assert_uint_gt(check_counters(h, first, tech, 99), 2);
    ck_assert_uint_gt(h->frames->copies, 10);
    ck_assert_uint_gt(h->frames->merges, 10);
    ck_assert_uint_gt(h->frames->freed, 0);
    /* the guests' page-table stores went through the shadow's protected-write path */
    uint64_t ptw = 0;
    for (int v = 0; v < h->nvms; v++) ptw += h->vms[v]->vcpu.pt_writes;
    if (TECH[_i].tech != HV_VTX || TECH[_i].vtx_shadow) ck_assert_uint_gt(ptw, 0);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* vlab-os cloned in the middle of its run: parent and clone both finish,
 * each with the console lines and process memory of a bare-metal run. */
static char *sorted_lines(const char *text, size_t len) {
    char *copy = malloc(len + 1), **lines = malloc((len + 1) * sizeof *lines);
    ck_assert(copy && lines);
    memcpy(copy, text, len);
    copy[len] = 0;
    size_t n = 0;
    for (char *p = copy; *p;) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of lines */
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    char *out = malloc(len + 2);
    ck_assert(out != NULL);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    free(copy);
    free(lines);
    return out;
}

START_TEST(test_clone_of_vlab_os_is_equivalent) {
    const char *tech = TECH[_i].name;
    char err[160];
    /* bare metal */
    cpu_t *n = cpu_new(256 * 1024);
    cpu_policy_preset(n, "strict");
    {
        size_t len;
        char *src = slurp_file("scenarios/guests/os.s", &len);
        asm_image img;
        char *e = NULL;
        ck_assert_msg(src && asm_assemble(src, len, "scenarios/guests/os.s", NULL, &img, &e) == 0,
                      "%s", e ? e : "");
        for (int k = 0; k < img.nchunks; k++)
            cpu_phys_write(n, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len);
        n->pc = img.entry;
        asm_image_free(&img);
        free(src);
    }
    ck_assert_int_eq(cpu_run(n, 50000000), CPU_EXIT_HALT);
    size_t nlen;
    const char *ncon = cpu_console(n, &nlen);
    ck_assert(strstr(ncon, "shared counter = 60 (expected 60)") != NULL);
    char *want = sorted_lines(ncon, nlen);

    cpu_t *host = cpu_new(4 << 20);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    hv_vm *vm = new_vm(h, _i, 256 * 1024);
    load(h, vm, "scenarios/guests/os.s");
    ck_assert_int_eq(hv_run(h, 6000), CPU_EXIT_BUDGET); /* its processes are running */
    ck_assert_uint_gt(vm->console_len, 0);
    hv_vm *c = clone(h, vm);
    check_frames(h, tech, 0);
    ck_assert_int_eq(hv_run(h, 50000000), CPU_EXIT_HALT);
    ck_assert(vm->done && c->done);
    check_frames(h, tech, 1);
    hv_vm *both[2] = {vm, c};
    for (int k = 0; k < 2; k++) {
        char *got = sorted_lines(both[k]->console, both[k]->console_len);
        ck_assert_msg(strcmp(got, want) == 0, "%s: vm %d printed\n%s\nnot\n%s", tech, k, got, want);
        free(got);
        for (uint32_t p = 0; p < 4; p++) {
            static uint8_t a[0x2000], b[0x2000];
            uint32_t base = 0x20000 + p * 0x4000 + 0x2000;
            ck_assert_int_eq(cpu_phys_read(n, base, a, sizeof a), 0);
            ck_assert_int_eq(hv_vm_read_phys(h, both[k], base, b, sizeof b), 0);
            ck_assert_msg(memcmp(a, b, sizeof a) == 0, "%s: vm %d, memory of process %u", tech, k,
                          p + 1);
        }
    }
    /* both wrote: the clone copied pages, and what it did not write is still shared */
    hv_footprint fc;
    hv_vm_footprint(h, c, &fc);
    ck_assert_uint_gt(c->cow_copies + vm->cow_copies, 0);
    ck_assert_uint_gt(fc.frames, fc.own);
    free(want);
    hv_free(h);
    cpu_free(host);
    cpu_free(n);
}
END_TEST

/* A clone's footprint grows only with the pages it writes: a guest that
 * writes k pages (paging off: no page-table bits to update) owns k frames. */
START_TEST(test_clone_footprint_grows_with_its_writes) {
    const char *tech = TECH[_i].name;
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    hv_vm *vm = new_vm(h, _i, 128 * 1024);
    /* wait in a loop for r9 to be set, then write r9 pages from 0x10000 */
    static const char src[] = "        .org 0x1000\n"
                              "start:  li    r9, 0\n"
                              "wait:   cmpi  r9, 0\n"
                              "        je    wait\n"
                              "        li    r1, 0x10000\n"
                              "        li    r2, 0\n"
                              "loop:   st    [r1], r9\n"
                              "        addi  r1, 0x1000\n"
                              "        addi  r2, 1\n"
                              "        cmp   r2, r9\n"
                              "        jl    loop\n"
                              "        hlt\n";
    asm_image img;
    char *e = NULL;
    ck_assert_msg(asm_assemble(src, sizeof src - 1, "footprint.s", NULL, &img, &e) == 0, "%s",
                  e ? e : "");
    for (int k = 0; k < img.nchunks; k++)
        hv_vm_write_phys(h, vm, img.chunks[k].addr, img.chunks[k].data, img.chunks[k].len);
    vm->vcpu.pc = img.entry;
    asm_image_free(&img);
    ck_assert_int_eq(hv_run(h, 200), CPU_EXIT_BUDGET);
    hv_footprint f;
    hv_vm_footprint(h, vm, &f);
    ck_assert_uint_eq(f.frames, 32);
    ck_assert_uint_eq(f.own, 32);
    hv_vm *c = clone(h, vm); /* the clone writes 5 pages, the parent 0 */
    hv_vm_footprint(h, c, &f);
    ck_assert_uint_eq(f.frames, 32);
    ck_assert_uint_eq(f.own, 0);
    ck_assert_uint_eq(f.shared, 32);
    hv_frames_summary s;
    hv_frames_summarize(h, &s);
    ck_assert_uint_eq(s.saved, 32);
    c->vcpu.r[9] = 5;
    vm->done = 1; /* the parent stays where it is */
    ck_assert_int_eq(hv_run(h, 100000), CPU_EXIT_HALT);
    ck_assert(c->done);
    check_frames(h, tech, 0);
    hv_vm_footprint(h, c, &f);
    ck_assert_uint_eq(f.own, 5);
    ck_assert_uint_eq(f.copies, 5);
    ck_assert_uint_eq(f.frames, 32);
    hv_vm_footprint(h, vm, &f);
    ck_assert_uint_eq(f.own, 5); /* the parent's 5 originals are its alone now, still read-only */
    ck_assert_uint_eq(f.shared, 32);
    hv_frames_summarize(h, &s);
    ck_assert_uint_eq(s.saved, 27);
    for (uint32_t p = 0; p < 5; p++) {
        uint32_t a = 1, b = 1;
        hv_vm_read_phys(h, c, 0x10000 + p * 0x1000, &a, 4);
        hv_vm_read_phys(h, vm, 0x10000 + p * 0x1000, &b, 4);
        ck_assert_uint_eq(a, 5);
        ck_assert_uint_eq(b, 0);
    }
    /* the parent's write to one of them now only restores write permission */
    uint32_t v = 7;
    ck_assert_int_eq(hv_vm_write_phys(h, vm, 0x10000, &v, 4), 0);
    ck_assert_uint_eq(vm->cow_restores, 1);
    ck_assert_uint_eq(vm->cow_copies, 0);
    check_frames(h, tech, 1);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* The scanner compares in full: with a hash that makes every page collide,
 * different pages stay apart and identical ones are still merged. */
static uint32_t same_hash(const uint8_t *page) {
    (void)page;
    return 42;
}

START_TEST(test_scanner_full_compare_catches_collisions) {
    char err[160];
    cpu_t *host = cpu_new(2 << 20);
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    hv_vm *a = hv_vm_new(h, "a", 8 * 4096, HV_TRAP_EMULATE, 1, err, sizeof err);
    hv_vm *b = hv_vm_new(h, "b", 8 * 4096, HV_VTX, 1, err, sizeof err);
    ck_assert(a && b);
    /* a: pages 0-3 hold 1, 2, 3, 4 in their last word; b: 1, 2, 9, 9 */
    uint32_t va[4] = {1, 2, 3, 4}, vb[4] = {1, 2, 9, 9};
    for (uint32_t p = 0; p < 4; p++) {
        hv_vm_write_phys(h, a, p * 4096 + 4092, &va[p], 4);
        hv_vm_write_phys(h, b, p * 4096 + 4092, &vb[p], 4);
    }
    uint8_t before[2][8 * 4096];
    hv_vm_read_phys(h, a, 0, before[0], sizeof before[0]);
    hv_vm_read_phys(h, b, 0, before[1], sizeof before[1]);
    hv_share_stats st;
    ck_assert_int_eq(hv_share_pages(h, same_hash, &st), 0);
    check_frames(h, "collision", 0);
    /* distinct contents: 1, 2, 3, 4, 9, zero -- 6 frames for 16 pages */
    hv_frames_summary s;
    hv_frames_summarize(h, &s);
    ck_assert_uint_eq(s.guest, 6);
    ck_assert_uint_eq(st.merged, 10);
    ck_assert_uint_eq(st.freed, 10);
    ck_assert_uint_gt(st.collisions, 0);
    ck_assert_uint_eq(st.scanned, 16);
    ck_assert_uint_eq(a->p2m[0], b->p2m[0]);
    ck_assert_uint_eq(b->p2m[2], b->p2m[3]);
    ck_assert_uint_ne(a->p2m[2], b->p2m[2]);
    ck_assert_uint_ne(a->p2m[2], a->p2m[3]);
    uint8_t after[8 * 4096];
    hv_vm_read_phys(h, a, 0, after, sizeof after);
    ck_assert(memcmp(after, before[0], sizeof after) == 0);
    hv_vm_read_phys(h, b, 0, after, sizeof after);
    ck_assert(memcmp(after, before[1], sizeof after) == 0);
    /* the default hash: the same merges, no collisions */
    ck_assert_int_eq(hv_share_pages(h, NULL, &st), 0);
    ck_assert_uint_eq(st.merged, 0);
    ck_assert_uint_eq(st.collisions, 0);
    /* a write to a merged page copies it, and only that VM sees it */
    uint32_t v = 0x55;
    ck_assert_int_eq(hv_vm_write_phys(h, b, 3 * 4096, &v, 4), 0);
    uint32_t r2 = 0, r3 = 0;
    hv_vm_read_phys(h, b, 2 * 4096, &r2, 4);
    hv_vm_read_phys(h, b, 3 * 4096, &r3, 4);
    ck_assert_uint_eq(r2, 0);
    ck_assert_uint_eq(r3, 0x55);
    ck_assert_uint_eq(b->ept[3] & CPU_EPT_RO, 0);
    ck_assert_uint_ne(b->ept[2] & CPU_EPT_RO, 0);
    check_frames(h, "collision", 1);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* A freed frame is zeroed when reused, and the CPU forgets its decoded
 * instructions and the trace's copy of it. */
START_TEST(test_freed_frames_are_reused_zeroed) {
    char err[160];
    cpu_t *host = cpu_new(2 << 20);
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    hv_vm *a = hv_vm_new(h, "a", 4 * 4096, HV_TRAP_EMULATE, 1, err, sizeof err);
    ck_assert(a != NULL);
    static const char prog[] = "        .org 0x1000\nstart:  li r1, 0x1234\n        hlt\n";
    asm_image img;
    char *e = NULL;
    ck_assert_int_eq(asm_assemble(prog, sizeof prog - 1, "p.s", NULL, &img, &e), 0);
    hv_vm_write_phys(h, a, img.chunks[0].addr, img.chunks[0].data, img.chunks[0].len);
    a->vcpu.pc = img.entry;
    asm_image_free(&img);
    uint32_t junk = 0xdeadbeef;
    hv_vm_write_phys(h, a, 0x2000, &junk, 4);
    ck_assert_int_eq(hv_run(h, 1000), CPU_EXIT_HALT);
    ck_assert_uint_eq(a->vcpu.r[1], 0x1234);
    uint32_t code = a->p2m[1];
    ck_assert(host->code_page[code]); /* decoded */
    host->snapped[code] = 1;          /* as if a trace had a copy */
    /* a clone; its copy of page 1 and page 2 differ, then a scan merges
     * the rest: the parent's frames of pages 0 and 3 stay, the clone's go */
    hv_vm *b = clone(h, a);
    uint32_t other = 0x1111;
    hv_vm_write_phys(h, b, 0x2000, &other, 4);
    hv_vm_write_phys(h, a, 0x1ffc, &other, 4); /* the parent's code page is copied */
    ck_assert_uint_ne(a->p2m[1], code);
    ck_assert_uint_eq(b->p2m[1], code); /* the clone has the original alone */
    uint32_t z = 0;
    hv_vm_write_phys(h, b, 0x1ffc, &other, 4); /* restores; now identical to the parent's page */
    hv_vm_write_phys(h, b, 0x0000, &z, 4);     /* page 0: copied, still zero */
    hv_share_stats st;
    ck_assert_int_eq(hv_share_pages(h, NULL, &st), 0);
    ck_assert_uint_ge(st.freed, 2);
    ck_assert_uint_eq(h->frames->use[code], HV_FRAME_FREE); /* the clone's page 1 was merged away */
    ck_assert(!host->code_page[code]);
    ck_assert(!host->snapped[code]);
    check_frames(h, "reuse", 0);
    /* the next VM gets the freed frames back, zeroed */
    uint32_t before = h->next_frame;
    hv_vm *c = hv_vm_new(h, "c", 2 * 4096, HV_TRAP_EMULATE, 1, err, sizeof err);
    ck_assert(c != NULL);
    int reused = 0;
    for (uint32_t g = 0; g < 2; g++) {
        ck_assert_uint_lt(c->p2m[g], before); /* from the free list, not a never-used frame */
        reused |= c->p2m[g] == code;
        uint8_t page[4096], zero[4096] = {0};
        hv_vm_read_phys(h, c, g * 4096, page, sizeof page);
        ck_assert(memcmp(page, zero, sizeof page) == 0);
    }
    ck_assert(reused);
    check_frames(h, "reuse", 1);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* Under VT-x with EPT a write to a shared page is an EPT violation whose
 * qualification says "write, entry readable" and whose address is the
 * guest-physical one (SDM 28.2.3); the trace shows the copy. */
static cpu_event seen[4096];
static size_t nseen;
static void sink(void *ud, const cpu_event *ev, size_t n) {
    (void)ud;
    for (size_t i = 0; i < n && nseen < 4096; i++)
        if (ev[i].kind == EV_VMEXIT || ev[i].kind == EV_MEM_COW || ev[i].kind == EV_MEM_CLONE)
            seen[nseen++] = ev[i];
}

START_TEST(test_ept_violation_on_a_shared_page) {
    char err[160];
    cpu_t *host = cpu_new(2 << 20);
    cpu_trace t;
    cpu_trace_init(&t, 256);
    ck_assert_int_eq(cpu_trace_add_sink(&t, sink, NULL), 0);
    host->trace = &t;
    nseen = 0;
    hv *h = hv_new(host, err, sizeof err);
    hv_vm *a = hv_vm_new(h, "a", 16 * 4096, HV_VTX, 1, err, sizeof err);
    ck_assert(a != NULL);
    static const char prog[] = "        .org 0x1000\nstart:  li r1, 0x5000\n        li r2, 77\n"
                               "        st [r1+8], r2\n        hlt\n";
    asm_image img;
    char *e = NULL;
    ck_assert_int_eq(asm_assemble(prog, sizeof prog - 1, "p.s", NULL, &img, &e), 0);
    hv_vm_write_phys(h, a, img.chunks[0].addr, img.chunks[0].data, img.chunks[0].len);
    a->vcpu.pc = img.entry;
    asm_image_free(&img);
    hv_vm *b = clone(h, a);
    ck_assert_uint_ne(a->ept[5] & CPU_EPT_RO, 0);
    a->done = 1;
    ck_assert_int_eq(hv_run(h, 1000), CPU_EXIT_HALT);
    cpu_trace_flush(&t);
    int ept = 0, cow = 0;
    for (size_t i = 0; i < nseen; i++) {
        if (seen[i].kind == EV_VMEXIT && seen[i].a == VMX_EXIT_EPT) {
            ck_assert_uint_eq(seen[i].x, EPT_QUAL_WRITE | EPT_QUAL_READABLE);
            ck_assert_uint_eq(seen[i].y, 0x5008);
            ept++;
        }
        if (seen[i].kind == EV_MEM_COW) {
            ck_assert_uint_eq(seen[i].a, b->id);
            ck_assert_uint_eq(seen[i].b, 0); /* copied */
            ck_assert_uint_eq(seen[i].x, 0x5000);
            ck_assert_uint_eq(seen[i].y & 0xffff, a->p2m[5]);
            ck_assert_uint_eq(seen[i].y >> 16, b->p2m[5]);
            cow++;
        }
    }
    ck_assert_int_eq(ept, 1);
    ck_assert_int_eq(cow, 1);
    uint32_t v = 0;
    hv_vm_read_phys(h, b, 0x5008, &v, 4);
    ck_assert_uint_eq(v, 77);
    hv_vm_read_phys(h, a, 0x5008, &v, 4);
    ck_assert_uint_eq(v, 0);
    ck_assert_uint_eq(b->ept[5], b->p2m[5] + 1); /* writable again */
    check_frames(h, "ept", 0);
    host->trace = NULL;
    cpu_trace_free(&t);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* A host out of frames: a clone is refused with a message, a hypervisor
 * write that needs a copy fails, and a guest store that needs one is the
 * guest's machine check -- its own outcome, the frame table intact. */
START_TEST(test_out_of_frames) {
    const char *tech = TECH[_i].name;
    char err[160];
    cpu_t *host = cpu_new(256 * 1024); /* 64 frames, 16 of them the hypervisor's */
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    hv_vm *a = new_vm(h, _i, 16 * 4096);
    static const char prog[] = "        .org 0x1000\nstart:  li r1, 0x8000\n        li r2, 5\n"
                               "        st [r1], r2\n        hlt\n";
    asm_image img;
    char *e = NULL;
    ck_assert_int_eq(asm_assemble(prog, sizeof prog - 1, "p.s", NULL, &img, &e), 0);
    hv_vm_write_phys(h, a, img.chunks[0].addr, img.chunks[0].data, img.chunks[0].len);
    a->vcpu.pc = img.entry;
    asm_image_free(&img);
    hv_vm *last = a;
    for (;;) {
        hv_vm *c = hv_vm_clone(h, a, "c", err, sizeof err);
        if (!c) break;
        last = c;
    }
    ck_assert_msg(strstr(err, "no frames left") != NULL, "%s", err);
    ck_assert_uint_lt(h->free_frames, 2);
    uint32_t v = 1;
    while (h->free_frames)
        ck_assert_int_eq(hv_vm_write_phys(h, a, (uint32_t)h->free_frames * 4096, &v, 4), 0);
    ck_assert_int_eq(hv_vm_write_phys(h, a, 0x9000, &v, 4), -1); /* no frame for the copy */
    check_frames(h, tech, 0);
    for (int i = 0; i < h->nvms; i++)
        h->vms[i]->done = h->vms[i] != last;
    hv_run(h, 100000);
    ck_assert(last->done); /* its store got #MC, it has no handler: it shut down */
    uint32_t got = 0;
    hv_vm_read_phys(h, last, 0x8000, &got, 4);
    ck_assert_uint_eq(got, 0);
    check_frames(h, tech, 1);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* Destroying a VM -- one waiting, one on the CPU -- frees the frames only it
 * mapped and its shadow tables; the others run on intact, and a new VM gets
 * the freed frames. */
START_TEST(test_destroy) {
    const char *tech = TECH[_i].name;
    char err[160];
    cpu_t *host = cpu_new(4 << 20);
    cpu_policy_preset(host, "strict");
    hv *h = hv_new(host, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    h->quantum = 4000;
    hv_vm *a = new_vm(h, _i, 128 * 1024);
    load(h, a, "tests/guests/cow-counters.s");
    ck_assert_int_eq(hv_run(h, 5000), CPU_EXIT_BUDGET);
    hv_vm *b = clone(h, a);
    ck_assert_int_eq(hv_run(h, 20000), CPU_EXIT_BUDGET);
    hv_footprint fb;
    hv_vm_footprint(h, b, &fb);
    ck_assert_uint_gt(fb.own, 0);
    uint32_t free_before = h->free_frames;
    hv_vm_destroy(h, b);
    ck_assert(b->destroyed && b->done);
    ck_assert_uint_ge(h->free_frames, free_before + fb.own); /* its own frames, and its shadow tables */
    check_frames(h, tech, 0);
    hv_vm_footprint(h, a, &fb);
    ck_assert_uint_eq(fb.own, 32); /* a has everything to itself again */
    /* one on the CPU */
    hv_vm *c = clone(h, a);
    for (int k = 0; k < 40 && h->current != c->id; k++) hv_run(h, 1000);
    ck_assert_int_eq(h->current, c->id);
    hv_vm_destroy(h, c);
    ck_assert_int_eq(h->current, -1);
    check_frames(h, tech, 1);
    uint32_t m = check_counters(h, a, tech, 1);
    ck_assert_int_eq(hv_run(h, 30000), CPU_EXIT_BUDGET);
    ck_assert_uint_gt(check_counters(h, a, tech, 2), m); /* a went on */
    ck_assert(b->cpu_cycles > 0 && c->cpu_cycles > 0);
    char e2[160];
    ck_assert_ptr_null(hv_vm_clone(h, b, "x", e2, sizeof e2));
    ck_assert(strstr(e2, "destroyed") != NULL);
    uint32_t v = 0;
    ck_assert_int_eq(hv_vm_read_phys(h, b, 0, &v, 4), -1);
    /* the freed frames go to the next VM, zeroed */
    uint32_t next = h->next_frame;
    hv_vm *d = new_vm(h, _i, 16 * 4096);
    ck_assert_uint_eq(h->next_frame, next);
    for (uint32_t g = 0; g < 16; g++) {
        uint8_t page[4096], zero[4096] = {0};
        hv_vm_read_phys(h, d, g * 4096, page, sizeof page);
        ck_assert(memcmp(page, zero, sizeof page) == 0);
    }
    check_frames(h, tech, 3);
    hv_free(h);
    cpu_free(host);
}
END_TEST

/* A clone of a VM that finished is finished too; running the hypervisor
 * again with nothing to run just says so (it used to crash). */
START_TEST(test_clone_of_a_finished_vm) {
    char err[160];
    cpu_t *host = cpu_new(1 << 20);
    hv *h = hv_new(host, err, sizeof err);
    hv_vm *a = hv_vm_new(h, "a", 4 * 4096, HV_PV, 1, err, sizeof err);
    ck_assert(h && a);
    a->vcpu.pc = 0x1000; /* zeros: an invalid instruction, no handler: it shuts down */
    ck_assert_int_eq(hv_run(h, 1000), CPU_EXIT_HALT);
    ck_assert(a->done);
    hv_vm *c = clone(h, a);
    ck_assert(c->done);
    ck_assert_int_eq(hv_run(h, 1000), CPU_EXIT_HALT);
    check_frames(h, "finished", 0);
    hv_free(h);
    cpu_free(host);
}
END_TEST

Suite *suite_cowmem(void) {
    Suite *s = suite_create("cowmem");
    TCase *tc = tcase_create("frames");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_random_clones_and_writes, 0, NTECH);
    tcase_add_loop_test(tc, test_clone_of_vlab_os_is_equivalent, 0, NTECH);
    tcase_add_loop_test(tc, test_clone_footprint_grows_with_its_writes, 0, NTECH);
    tcase_add_test(tc, test_scanner_full_compare_catches_collisions);
    tcase_add_test(tc, test_freed_frames_are_reused_zeroed);
    tcase_add_test(tc, test_ept_violation_on_a_shared_page);
    tcase_add_loop_test(tc, test_out_of_frames, 0, NTECH);
    tcase_add_test(tc, test_clone_of_a_finished_vm);
    tcase_add_loop_test(tc, test_destroy, 0, NTECH);
    suite_add_tcase(s, tc);
    return s;
}
