; ksp-fresh-page.s -- a guest whose first trap from ring 3 pushes its frame on
; a page it never touched before (tests/check_hv.c).  Under VT-x with shadow
; paging that write misses the shadow: the delivery exits, and the
; hypervisor must deliver the syscall again once the page is mapped
; (Intel SDM vol. 3C 27.2.4, IDT-vectoring information).  It prints the ring
; the frame recorded and the user's r1, then halts.
        .equ CONSOLE, 0x3f8

        .org 0x1000
start:  li    sp, 0x8000            ; the boot stack: page 0x7000
        li    r1, 0
        wrcr  vbr, r1
        li    r1, 0x6000            ; traps from ring 3: page 0x5000, untouched
        wrcr  ksp, r1
        li    r1, on_syscall
        li    r2, 4 * 0x80
        st    [r2], r1
        li    r1, 0x20000           ; enter ring 3 through a frame on the boot stack
        push  r1
        li    r1, 3
        push  r1
        li    r1, 0
        push  r1
        li    r1, user
        push  r1
        li    r1, 0
        push  r1
        iret

on_syscall:
        ld    r2, [sp+12]           ; the frame's ring
        addi  r2, 48                ; as a digit
        out   CONSOLE, r2
        mov   r2, r1
        out   CONSOLE, r2
        li    r2, 10
        out   CONSOLE, r2
        hlt

        .org 0x10000
user:   li    r1, 75                ; 'K'
        syscall
