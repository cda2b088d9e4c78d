; nanobench.s -- the nanobenchmarks of Adams & Agesen (ASPLOS 2006, "A
; comparison of software and hardware techniques for x86 virtualization"),
; as one small kernel.  r9 chooses the test (set by the scenario before the
; run), r8 the number of rounds:
;   r9 = 0  compute  a user-mode loop that never leaves user mode
;   r9 = 1  syscall  a user-mode loop of system calls (the handler just irets)
;   r9 = 2  in       a kernel loop of port reads (in from port 0x70)
;   r9 = 3  ptemod   a kernel loop that rewrites a page-table entry (+ invlpg)
; Paging is on (identity map of the first 4 MiB, user pages from 0x400000).
        .equ PD,     0x20000
        .equ PT,     0x21000
        .equ UPT,    0x22000
        .equ KSTACK, 0x8000

        .org 0x1000
start:  li    sp, KSTACK
        li    r1, 0
        wrcr  vbr, r1
        li    r1, KSTACK
        wrcr  ksp, r1
        li    r1, sys
        st    [r0+0x200], r1        ; vector 0x80
        li    r1, PT | 7            ; PD[0] -> PT (identity, kernel)
        li    r2, PD
        st    [r2], r1
        li    r1, UPT | 7           ; PD[1] -> UPT (user, 4-8 MiB)
        st    [r2+4], r1
        li    r1, 3                 ; PT: identity 0..4 MiB, kernel only
        li    r2, PT
        li    r3, PT + 4096
fill:   st    [r2], r1
        addi  r1, 0x1000
        addi  r2, 4
        cmp   r2, r3
        jb    fill
        li    r1, user_code | 7     ; UPT[0] -> the user code page, UPT[1] -> a user stack
        li    r2, UPT
        st    [r2], r1
        li    r1, 0x30000 | 7
        st    [r2+4], r1
        li    r1, PD
        wrcr  ptbr, r1
        li    r1, 0x80000000
        wrcr  status, r1            ; paging on
        cmpi  r9, 2
        je    t_in
        cmpi  r9, 3
        je    t_ptemod
        li    r1, 0x402000          ; enter the user loop (r9 0 or 1)
        push  r1
        li    r1, 3
        push  r1
        li    r1, 0x200
        push  r1
        li    r1, 0x400000
        push  r1
        push  r1
        iret

t_in:   in    r1, 0x70
        addi  r8, -1
        cmpi  r8, 0
        jne   t_in
        hlt

t_ptemod:
        li    r2, PT + 4 * 0x100    ; the PTE of virtual page 0x100000
        li    r3, 0x100000
pte:    li    r1, 0x100003
        st    [r2], r1              ; a page-table write
        invlpg r3
        addi  r8, -1
        cmpi  r8, 0
        jne   pte
        hlt

sys:    iret                        ; the system call: nothing but the round trip
done:   hlt

        .org 0x40000                ; user code (mapped at 0x400000)
user_code:
        cmpi  r9, 1
        je    u_sys
u_loop: addi  r1, 1                 ; compute
        addi  r8, -1
        cmpi  r8, 0
        jne   u_loop
        syscall                     ; r8 = 0: the handler returns; then...
        jmp   u_end
u_sys:  syscall
        addi  r8, -1
        cmpi  r8, 0
        jne   u_sys
u_end:  li    r9, 99                ; tell the kernel we are done: a privileged instruction
        cli                         ; #GP in user mode...
