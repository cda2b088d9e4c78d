; cow-counters.s -- a guest for tests/check_cowmem.c: it turns paging on
; (an identity map of its 128 KiB, kernel only), arms its timer (the handler
; counts ticks, so trap frames land on its stack page), and then increments
; one counter word in each of 16 data pages, over and over, forever,
; rewriting one of its page-table entries after each pass.
; After any number of steps the counters read [m+1, ..., m+1, m, ..., m]:
; a write lost or landing in another VM's copy shows as a break in that
; pattern.  Pages 24-31 are never touched by the guest (the test writes
; there from the hypervisor's side).
        .equ PD,     0x2000
        .equ PT,     0x3000
        .equ STACK,  0x7000             ; the stack page is 0x6000
        .equ STATE,  0x7000             ; [0] passes, [4] ticks
        .equ DATA,   0x8000             ; 16 pages: 0x8000 ... 0x17000
        .equ NDATA,  16
        .equ TIMER,  0x40

        .org 0x1000
start:  li    sp, STACK - 16
        li    r1, 0
        wrcr  vbr, r1                   ; the vector table at 0
        li    r1, tick
        li    r2, 4 * 32
        st    [r2], r1                  ; vector 32: the timer
        li    r1, 3                     ; identity map, present + writable
        li    r2, PT
        li    r3, PT + 32 * 4
map:    st    [r2], r1
        addi  r1, 0x1000
        addi  r2, 4
        cmp   r2, r3
        jb    map
        li    r1, PT | 3
        li    r2, PD
        st    [r2], r1
        wrcr  ptbr, r2
        li    r1, 0x80000000
        wrcr  status, r1                ; paging on
        li    r1, 3000
        out   TIMER, r1
        sti
pass:   li    r2, 0
        li    r3, DATA
inner:  ld    r4, [r3]
        addi  r4, 1
        st    [r3], r4
        addi  r2, 1
        addi  r3, 0x1000
        cmpi  r2, NDATA
        jl    inner
        li    r5, STATE
        ld    r4, [r5]
        addi  r4, 1
        st    [r5], r4
        li    r6, 0x1f003               ; rewrite a page-table entry (the same
        li    r7, PT + 31 * 4           ; mapping): a store into a page table,
        st    [r7], r6                  ; shared copy-on-write after a clone
        li    r7, 0x1f000
        invlpg r7
        jmp   pass

tick:   push  r1
        push  r2
        li    r2, STATE
        ld    r1, [r2+4]
        addi  r1, 1
        st    [r2+4], r1
        pop   r2
        pop   r1
        iret
