; two-spaces.s -- two address spaces that map virtual 0x400000 to different
; pages; the kernel rewrites B's page table while A's is loaded, then
; switches back to B (tests/check_hv.c: a cached shadow of B must not keep
; the old mapping).  Results: r1 = 0x1111 (A), r2 = 0x2222 (B), r3 = 0x1111
; (A again), r4 = 0x3333 (B, remapped while A ran).
        .equ PD_A, 0x20000
        .equ KPT,  0x21000              ; identity 0-4 MiB, kernel only: shared
        .equ PD_B, 0x22000
        .equ PT_A, 0x23000
        .equ PT_B, 0x24000
        .equ VA,   0x400000

        .org 0x1000
start:  li    sp, 0x8000
        li    r1, 3                     ; KPT: identity, present + writable
        li    r2, KPT
        li    r3, KPT + 4096
fill:   st    [r2], r1
        addi  r1, 0x1000
        addi  r2, 4
        cmp   r2, r3
        jb    fill
        li    r1, KPT | 3
        li    r2, PD_A
        st    [r2], r1
        li    r2, PD_B
        st    [r2], r1
        li    r1, PT_A | 3
        li    r2, PD_A
        st    [r2+4], r1                ; PD_A[1] -> PT_A
        li    r1, PT_B | 3
        li    r2, PD_B
        st    [r2+4], r1                ; PD_B[1] -> PT_B
        li    r1, 0x30000 | 3
        li    r2, PT_A
        st    [r2], r1                  ; A: VA -> 0x30000
        li    r1, 0x31000 | 3
        li    r2, PT_B
        st    [r2], r1                  ; B: VA -> 0x31000
        li    r1, 0x1111
        li    r2, 0x30000
        st    [r2], r1
        li    r1, 0x2222
        li    r2, 0x31000
        st    [r2], r1
        li    r1, 0x3333
        li    r2, 0x32000
        st    [r2], r1

        li    r5, VA
        li    r1, PD_A
        wrcr  ptbr, r1
        li    r1, 0x80000000
        wrcr  status, r1                ; paging on, in A
        ld    r1, [r5]
        li    r6, PD_B
        wrcr  ptbr, r6
        ld    r2, [r5]                  ; B
        li    r6, PD_A
        wrcr  ptbr, r6
        ld    r3, [r5]                  ; A again
        li    r6, 0x32000 | 3
        li    r7, PT_B
        st    [r7], r6                  ; rewrite B's mapping while A is loaded
        li    r6, PD_B
        wrcr  ptbr, r6
        ld    r4, [r5]                  ; B: the new mapping
        hlt
