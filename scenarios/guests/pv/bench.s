; pv/bench.s -- the same kernel work done the classic way (r7 = 0: port I/O
; and direct page-table stores, which a trap-and-emulate hypervisor must
; catch one by one) or the paravirtual way (r7 = 1: hypercalls, the page
; table updates batched in one call, Barham et al. 2003).
;   1. print a 64-byte line 8 times
;   2. remap 64 pages (write 64 page-table entries), paging on
        .include "pv.inc"
        .equ CONSOLE, 0x3f8
        .equ PD,  0x20000
        .equ PT,  0x21000
        .equ LIST, 0x30000           ; the mmu_update list: (PTE address, value) pairs

        .org 0x1000
start:  li    sp, 0x8000
        ; identity-map 0..4 MiB (kernel), paging on
        li    r1, PT | 3
        li    r2, PD
        st    [r2], r1
        li    r1, 3
        li    r2, PT
        li    r3, PT + 4096
fill:   st    [r2], r1
        addi  r1, 0x1000
        addi  r2, 4
        cmp   r2, r3
        jb    fill
        cmpi  r7, 1
        je    pv_paging
        li    r1, PD
        wrcr  ptbr, r1
        li    r1, 0x80000000
        wrcr  status, r1
        jmp   print
pv_paging:
        li    r0, HC_SET_PTBR
        li    r1, PD
        vmcall
        li    r0, HC_SET_STATUS
        li    r1, 0x80000000
        vmcall

print:  li    r5, 8                  ; 1. the line, 8 times
again:  cmpi  r7, 1
        je    pv_print
        li    r1, line
        li    r2, line_end
out_loop:
        ldb   r3, [r1]
        out   CONSOLE, r3            ; a trap per byte under trap-and-emulate
        addi  r1, 1
        cmp   r1, r2
        jb    out_loop
        jmp   printed
pv_print:
        li    r0, HC_CONSOLE_WRITE   ; one hypercall per line
        li    r1, line
        li    r2, line_end - line
        vmcall
printed:
        addi  r5, -1
        cmpi  r5, 0
        jne   again

        ; 2. remap 64 pages: virtual 0x100000.. -> frames 0x200000..
        li    r2, PT + 4 * 0x100     ; the PTE of virtual page 0x100000
        li    r3, 0x200003
        li    r5, 64
        cmpi  r7, 1
        je    pv_remap
remap:  st    [r2], r3               ; a guest page-table write: caught and emulated
        addi  r2, 4
        addi  r3, 0x1000
        addi  r5, -1
        cmpi  r5, 0
        jne   remap
        jmp   done
pv_remap:
        li    r4, LIST               ; build the list, then one batched hypercall
build:  st    [r4], r2
        st    [r4+4], r3
        addi  r4, 8
        addi  r2, 4
        addi  r3, 0x1000
        addi  r5, -1
        cmpi  r5, 0
        jne   build
        li    r0, HC_MMU_UPDATE
        li    r1, LIST
        li    r2, 64
        vmcall
done:   li    r1, 0x100000           ; check the new mapping: read through it
        ld    r6, [r1]
        hlt

line:   .ascii "a line of sixty-four bytes, printed by the guest kernel........\n"
line_end:
