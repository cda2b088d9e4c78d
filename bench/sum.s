; bench/sum.s -- the benchmark's guest: a kernel that maps the first 4 MiB
; (when r8 != 0) and runs a user-mode loop summing 0..r3-1 into r1, written
; the natural way.  Lua sets r3 (N) and r8 (paging on/off) before the run.
        .equ PD,      0x100000      ; page directory
        .equ PT,      0x101000      ; one page table: virtual 0..4 MiB
        .equ KSTACK,  0x8000
        .equ USTACK,  0x20000
        .equ USER,    0x10000

        .org 0x1000
start:  li    sp, KSTACK
        li    r4, 0
        wrcr  vbr, r4
        li    r4, KSTACK
        wrcr  ksp, r4
        li    r4, done
        li    r5, 4 * 0x80
        st    [r5], r4              ; syscall: stop
        cmpi  r8, 0
        je    enter_user
        li    r4, PT | 7            ; present, writable, user
        li    r5, PD
        st    [r5], r4
        li    r4, 7                 ; frame 0, present, writable, user
        li    r5, PT
        li    r6, PT + 4096
fill:   st    [r5], r4
        addi  r5, 4
        addi  r4, 4096
        cmp   r5, r6
        jb    fill
        li    r4, PD
        wrcr  ptbr, r4
        li    r4, 0x80000000
        wrcr  status, r4            ; paging on
enter_user:
        li    r4, USTACK
        push  r4
        li    r4, 3
        push  r4
        li    r4, 0
        push  r4
        li    r4, USER
        push  r4
        push  r4
        iret
done:   hlt

        .org USER
user:   li    r1, 0
        li    r2, 0
loop:   add   r1, r2
        addi  r2, 1
        cmp   r2, r3
        jl    loop
        syscall
