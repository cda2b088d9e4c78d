; divzero.s -- a fault and its trap frame: divide by zero, let the #DE
; handler skip the faulting instruction, and return with iret.
        .equ KSTACK, 0x8000

        .org 0x1000
start:  li    sp, KSTACK
        li    r1, 0
        wrcr  vbr, r1               ; vector table at physical 0
        li    r1, de_handler
        li    r2, 4 * 0
        st    [r2], r1              ; vector 0: #DE
        li    r3, 7
        li    r4, 0
        rdtsc r8, r9                ; cycles before
        div   r3, r4                ; #DE: r3 unchanged
        rdtsc r10, r9               ; cycles after the round trip
        sub   r10, r8               ; r10 = div + trap + handler + iret + rdtsc
        hlt

de_handler:                         ; the frame: [sp] error code 0, [sp+4] pc of
        ld    r1, [sp+4]            ; the div, [sp+8] FLAGS, [sp+12] old CPL,
        addi  r1, 4                 ; [sp+16] old sp
        st    [sp+4], r1            ; return after the div (it is 4 bytes long)
        iret
