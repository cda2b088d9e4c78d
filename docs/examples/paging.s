; paging.s -- build a page table, turn paging on, see a stale TLB entry,
; then take a page fault from ring 3.
;
; Physical memory (1 MiB machine): vector table at 0x0, kernel at 0x1000,
; kernel stack below 0x8000, user code at 0x10000, user stack page at
; 0x1f000, page directory at 0x20000, one page table at 0x21000 (it maps
; virtual 0x00000000-0x003fffff), two data pages at 0x50000 and 0x51000.

        .equ PTE_P, 0x1             ; present
        .equ PTE_W, 0x2             ; writable
        .equ PTE_U, 0x4             ; user (ring 3) may access
        .equ PD,    0x20000
        .equ PT,    0x21000
        .equ PG,    0x80000000      ; status.PG: paging on
        .equ KSTACK, 0x8000

        .org 0x1000
start:  li    sp, KSTACK
        li    r1, 0
        wrcr  vbr, r1               ; vector table at physical 0
        li    r1, KSTACK
        wrcr  ksp, r1               ; stack for traps from ring 3
        li    r1, pf_handler
        li    r2, 4 * 14
        st    [r2], r1              ; vector 14: #PF

        ; page directory entry 0 -> the page table (P W U: the PTEs decide)
        li    r1, PT | PTE_P | PTE_W | PTE_U
        li    r2, PD
        st    [r2], r1

        ; page table: identity-map the first 1 MiB, kernel only (U = 0)
        li    r1, PTE_P | PTE_W     ; frame 0
        li    r2, PT                ; &PT[0]
        li    r3, PT + 4 * 256      ; end: 256 entries = 1 MiB
fill:   st    [r2], r1
        addi  r1, 0x1000            ; next frame
        addi  r2, 4
        cmp   r2, r3
        jb    fill

        ; let ring 3 use its code page and its stack page
        li    r1, 0x10000 | PTE_P | PTE_U           ; code: read-only for the user
        li    r2, PT + 4 * 0x10
        st    [r2], r1
        li    r1, 0x1f000 | PTE_P | PTE_W | PTE_U   ; stack: read-write
        li    r2, PT + 4 * 0x1f
        st    [r2], r1

        ; paging on: ptbr first, then status.PG
        li    r1, PD
        wrcr  ptbr, r1
        li    r1, PG
        wrcr  status, r1

        ; ---- the TLB is not coherent with the page tables -------------------
        li    r5, 0x50000
        ld    r6, [r5]              ; 0x1111: this fills the TLB entry
        li    r1, 0x51000 | PTE_P | PTE_W
        li    r2, PT + 4 * 0x50
        st    [r2], r1              ; remap virtual 0x50000 -> frame 0x51000
        ld    r7, [r5]              ; still 0x1111: a stale translation
        invlpg r5                   ; drop it
        ld    r8, [r5]              ; 0x2222: the new mapping

        ; ---- enter ring 3 through a hand-made trap frame --------------------
        li    r1, 0x20000           ; old sp (top of the user stack page)
        push  r1
        li    r1, 3                 ; old CPL
        push  r1
        li    r1, 0                 ; FLAGS (IF = 0)
        push  r1
        li    r1, user
        push  r1                    ; return pc
        push  r0                    ; error code slot
        iret

pf_handler:                         ; [sp] error code, [sp+4] faulting pc
        ld    r10, [sp]             ; 5 = protection (1) | user (4), a read
        ld    r11, [sp+4]
        rdcr  r12, faddr            ; the virtual address that faulted
        hlt

        .org 0x10000
user:   li    r1, 0x1000
        ld    r2, [r1]              ; kernel page: #PF
        hlt                         ; not reached

        .org 0x50000
        .word 0x1111
        .org 0x51000
        .word 0x2222
