/* hypervisor/bt.c -- binary translation, VMware style (Adams & Agesen,
 * ASPLOS 2006).
 *
 * The guest kernel runs deprivileged in ring 1, as with trap-and-emulate,
 * but its code never runs untranslated: the first time it fetches from a
 * page (the kernel's shadow maps every page no-execute until then), the
 * translator scans the page, counts its blocks (a block ends at a control
 * transfer, as QEMU's translation blocks do, Bellard 2005) and rewrites
 * every critical instruction -- each system-part instruction, sensitive or
 * privileged -- into a callout to the translator.  Innocuous instructions
 * run as they are ("IDENT").  A callout does on the virtual CPU what the
 * instruction would do, without a trap: `cli` becomes an AND on the virtual
 * flags.  So the x86 holes close even though popf, pushf and smsw never
 * trap: the translator sees them before they run.
 *
 * A translated page is write-protected; a write to it drops the translation
 * (self-modifying code), and the page is translated again when it runs.
 * Adaptive translation: a kernel store that keeps faulting on a guest page
 * table is retranslated into a callout that does the store in software, so
 * it stops trapping.
 *
 * vlab models the translation at page granularity on the real instructions
 * (the callouts are CPU breakpoints that exit before the instruction, see
 * cpu_callout_add) rather than emitting new code; the costs model what a
 * translator costs: translating (startup S), and each callout (T). */
#include "hypervisor/hv_internal.h"

#include <stdlib.h>
#include <string.h>

#define RETRANSLATE_AFTER 3 /* page-table write faults at one pc before it becomes a callout */

static int critical(int op) { return op < OP_COUNT && cpu_isa[op].part == SYSTEM; }

static int ends_block(int op) {
    switch (op) {
    case OP_JMP: case OP_JMPR: case OP_CALL: case OP_CALLR: case OP_RET:
    case OP_JE: case OP_JNE: case OP_JL: case OP_JGE: case OP_JLE: case OP_JG: case OP_JB: case OP_JAE:
    case OP_INT: case OP_SYSCALL: case OP_BRK: return 1;
    default: return critical(op);
    }
}

int hv_bt_translated(const hv_vm *vm, uint32_t gpa) {
    uint32_t g = gpa >> 12;
    return vm->bt_va && g < vm->npages && vm->bt_va[g] != 0;
}

/* Translate the guest page at gpa, running at virtual address va. */
void hv_bt_translate(hv *h, hv_vm *vm, uint32_t gpa, uint32_t va) {
    uint32_t g = gpa >> 12, hpa, page = va & PTE_FRAME;
    if (g >= vm->npages || hv_gpa_to_hpa(vm, gpa & PTE_FRAME, &hpa)) return;
    uint32_t words[CPU_PAGE / 4];
    cpu_phys_read(h->host, hpa, words, sizeof words);
    uint32_t ncrit = 0, nblocks = 0, ninsn = 0;
    for (uint32_t i = 0; i < CPU_PAGE / 4; i++) { /* a linear sweep over every word */
        cpu_insn in = cpu_decode(words[i], i + 1 < CPU_PAGE / 4 ? words[i + 1] : 0);
        if (in.op >= OP_COUNT) continue;
        ninsn++;
        if (ends_block(in.op)) nblocks++;
        if (critical(in.op)) {
            cpu_callout_add(h->host, page + i * 4);
            ncrit++;
        }
    }
    vm->bt_va[g] = page | 1; /* translated, at this virtual page */
    vm->vcpu.translations++;
    vm->vcpu.translated_blocks += nblocks;
    h->host->cycles += h->cost_translate;
    hv_emit(h, EV_HV_TRANSLATE, 0, 0, h->host->pc, page, ncrit | nblocks << 16);
}

/* Scan the page again where it was translated (its code changed). */
static void retranslate(hv *h, hv_vm *vm, uint32_t gpa) {
    uint32_t g = gpa >> 12, page = vm->bt_va[g] & PTE_FRAME;
    for (uint32_t i = 0; i < CPU_PAGE / 4; i++) cpu_callout_del(h->host, page + i * 4);
    vm->bt_va[g] = 0;
    hv_bt_translate(h, vm, gpa, page);
}

/* A store done in software on the guest's memory: 0 done, 1 not a store,
 * -1 the guest faults (reflected). */
static int soft_store(hv *h, hv_vm *vm, const cpu_exit *x) {
    cpu_t *c = h->host;
    const cpu_insn *in = &x->insn;
    uint32_t addr, val = c->r[in->rb];
    int n = 4;
    if (in->op == OP_ST || in->op == OP_STB) {
        addr = c->r[in->ra] + (uint32_t)in->imm;
        if (in->op == OP_STB) n = 1;
    } else if (in->op == OP_PUSH) {
        addr = c->r[CPU_REG_SP] - 4;
        val = c->r[in->ra];
    } else {
        return 1;
    }
    if (hv_guest_copy(h, vm, addr, &val, (size_t)n, 1)) {
        hv_reflect(h, vm, VEC_PF, CAUSE_PF, PF_WRITE, addr, x->pc);
        return -1;
    }
    if (in->op == OP_PUSH) c->r[CPU_REG_SP] = addr;
    c->pc = x->next_pc;
    hv_emit(h, EV_HV_EMULATE, in->op, 2, x->pc, x->word[0], addr);
    return 0;
}

/* The guest kernel stores into translated code (self-modifying code): do
 * the store in software, then translate the page again. */
int hv_bt_code_write(hv *h, hv_vm *vm, uint32_t gpa) {
    const cpu_exit *x = &h->host->exit;
    if (x->insn.op < OP_COUNT && soft_store(h, vm, x) == 0) {
        retranslate(h, vm, gpa);
        hv_emit(h, EV_HV_TRANSLATE, 1, 0, x->pc, vm->bt_va[gpa >> 12] & PTE_FRAME, 0);
        return 0;
    }
    hv_bt_invalidate(h, vm, gpa);
    return 1;
}

/* The guest wrote a translated page: forget the translation. */
void hv_bt_invalidate(hv *h, hv_vm *vm, uint32_t gpa) {
    uint32_t g = gpa >> 12;
    if (!hv_bt_translated(vm, gpa)) return;
    uint32_t page = vm->bt_va[g] & PTE_FRAME;
    for (uint32_t i = 0; i < CPU_PAGE / 4; i++) cpu_callout_del(h->host, page + i * 4);
    vm->bt_va[g] = 0;
    hv_shadow_flush(h, vm); /* its fetches must fault again */
    hv_emit(h, EV_HV_TRANSLATE, 1, 0, h->host->pc, page, 0);
}

/* A kernel store that keeps faulting on a guest page table: make it a
 * callout (adaptive binary translation). */
void hv_bt_store_fault(hv *h, hv_vm *vm, uint32_t pc) {
    for (int i = 0; i < vm->nadaptive; i++)
        if (vm->adaptive[i].pc == pc) {
            if (++vm->adaptive[i].faults == RETRANSLATE_AFTER) {
                cpu_callout_add(h->host, pc);
                vm->vcpu.retranslations++;
                hv_emit(h, EV_HV_TRANSLATE, 2, 0, pc, pc & PTE_FRAME, 1);
            }
            return;
        }
    if (vm->nadaptive < (int)(sizeof vm->adaptive / sizeof vm->adaptive[0]))
        vm->adaptive[vm->nadaptive++] = (hv_adaptive){.pc = pc, .faults = 1};
}

/* A callout: the translated code calls the translator for an instruction. */
int hv_bt_callout(hv *h, hv_vm *vm) {
    cpu_t *c = h->host;
    const cpu_exit *x = &c->exit;
    const cpu_insn *in = &x->insn;
    hv_vcpu *v = &vm->vcpu;
    v->callouts++;
    if (!critical(in->op)) { /* a retranslated store: do it in software */
        if (soft_store(h, vm, x) == 1) cpu_callout_del(c, x->pc); /* not a store: run it as it is */
        c->cycles += h->cost_callout;
        return 0;
    }
    /* the flag operations are a few instructions on the virtual CPU in memory */
    int cheap = in->op == OP_CLI || in->op == OP_STI || in->op == OP_PUSHF || in->op == OP_POPF;
    c->cycles += cheap ? h->cost_callout / 4 : h->cost_callout;
    return hv_emulate_insn(h, vm, x, cheap ? 0 : h->cost_emulate, 2);
}
