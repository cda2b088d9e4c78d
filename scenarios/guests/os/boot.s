; os/boot.s -- vlab-os starts here, in ring 0, with paging and interrupts off.
;
; The boot sequence:
;   1. a stack, the vector table base (vbr) and the trap stack (ksp);
;   2. one vector table entry per trap the kernel handles;
;   3. "where am I?": smsw gives the ring, cpuid leaf 2 the memory size;
;   4. page tables: the kernel's own, then one address space per process
;      (two more, pids 5 and 6, when a disk answers on its ports);
;   5. paging on, timer on, and the scheduler picks the first process.
;
; After reset every register is 0 and memory is zeroed.  The kernel relies on
; that only for the user data and stack pages, which it does not clear (its
; own variables are assembled as zeros, and it clears the stacks it builds).

start:  li    sp, BOOT_STACK_TOP        ; sp is 0 after reset: set it before any call
        li    r1, VECTORS
        wrcr  vbr, r1                   ; the vector table (a physical address)
        li    r1, BOOT_STACK_TOP
        wrcr  ksp, r1                   ; traps from ring 3 switch to ksp; switch_to
                                        ; sets it to the running process's kernel stack

        ; ---- 2. the vector table: entry n = address of the handler of vector n.
        ; An entry left 0 means "no handler": such a trap becomes a #DF.
        li    r2, VECTORS
        li    r1, vec_de
        st    [r2 + 4*VEC_DE], r1       ; #DE: division by zero
        li    r1, vec_bp
        st    [r2 + 4*VEC_BP], r1       ; #BP: brk
        li    r1, vec_ud
        st    [r2 + 4*VEC_UD], r1       ; #UD: invalid opcode
        li    r1, vec_df
        st    [r2 + 4*VEC_DF], r1       ; #DF: a trap could not be delivered
        li    r1, vec_gp
        st    [r2 + 4*VEC_GP], r1       ; #GP: privileged instruction in ring 3, ...
        li    r1, vec_pf
        st    [r2 + 4*VEC_PF], r1       ; #PF: page fault
        li    r1, vec_mc
        st    [r2 + 4*VEC_MC], r1       ; #MC: physical address outside memory
        li    r1, vec_timer
        st    [r2 + 4*VEC_TIMER], r1    ; IRQ 0: the timer
        li    r1, vec_disk
        st    [r2 + 4*VEC_DISK], r1     ; IRQ 14: the disk's completion
        li    r1, vec_syscall
        st    [r2 + 4*VEC_SYSCALL], r1  ; syscall

        li    r1, msg_boot
        call  kputs

        ; ---- 3a. which ring am I in?  smsw reads the machine status word,
        ; whose bits 0-1 are the current privilege level.  On the bare machine
        ; a kernel always finds 0.  A hypervisor that runs this kernel
        ; deprivileged (ring 1 or 3) must make smsw trap and lie -- under the
        ; x86 policy smsw does not trap, and the kernel sees the truth.
        smsw  r9
        andi  r9, 3
        li    r1, msg_ring
        call  kputs
        mov   r1, r9
        call  kput_dec
        cmpi  r9, 0
        je    boot_ring_ok
        li    r1, msg_virtualized       ; not ring 0: somebody else is in charge
        call  kputs
        jmp   boot_memory
boot_ring_ok:
        li    r1, msg_newline
        call  kputs

        ; ---- 3b. how much memory do I have?  cpuid leaf 2 = memory in KiB.
        ; (Under the x86 policy cpuid does not trap either: a guest kernel
        ; would read the real machine's memory size.)
boot_memory:
        li    r2, 2
        cpuid r9, r2
        li    r1, memory_kib
        st    [r1], r9
        li    r1, msg_memory
        call  kputs
        mov   r1, r9
        call  kput_dec
        li    r1, msg_kib
        call  kputs
        cmpi  r9, MIN_MEMORY_KIB
        jae   boot_paging
        li    r1, msg_too_small
        call  kputs
        cli
        hlt                             ; IF = 0: the machine stops for good

        ; ---- 4. page tables.  The kernel's page directory has one entry, for
        ; the first 4 MiB, pointing to KERNEL_PT, which maps the kernel's pages
        ; 1:1 without the U bit: ring 3 cannot touch them.
boot_paging:
        li    r1, KERNEL_PT
        call  map_kernel
        li    r1, KERNEL_PT | PTE_P | PTE_W
        li    r2, KERNEL_PD
        st    [r2], r1                  ; PDE 0 -> KERNEL_PT

        li    r9, 1                     ; create processes 1..NBASIC
boot_create:
        mov   r1, r9
        call  create_process
        addi  r9, 1
        cmpi  r9, NBASIC
        jle   boot_create

        ; ---- 4b. is there a disk?  Its size register says how many sectors;
        ; with no controller on the ports the bus reads all ones.  With a disk
        ; (and room for two more processes) pids 5 and 6 read and write it.
        in    r1, DISK_SIZE
        cmpi  r1, -1
        je    boot_no_disk
        cmpi  r1, 0
        je    boot_no_disk
        mov   r9, r1
        li    r1, msg_disk              ; "os: disk of 64 sectors"
        call  kputs
        mov   r1, r9
        call  kput_dec
        li    r1, msg_sectors
        call  kputs
        li    r1, memory_kib
        ld    r1, [r1]
        cmpi  r1, DISK_MEMORY_KIB
        jb    boot_disk_no_room
        li    r1, disk_sectors
        st    [r1], r9                  ; the system calls may use it now
        li    r1, READER_PID
        call  create_process
        li    r1, WRITER_PID
        call  create_process
        jmp   boot_no_disk
boot_disk_no_room:
        li    r1, msg_disk_no_room
        call  kputs
boot_no_disk:

        ; ---- 5. paging on.  The next instruction is fetched through the new
        ; mapping: this code is identity-mapped, so it simply goes on.
        li    r1, KERNEL_PD
        wrcr  ptbr, r1
        li    r1, STATUS_PG
        wrcr  status, r1

        li    r1, msg_paging
        call  kputs
        li    r1, nr_alive
        ld    r1, [r1]                  ; the processes created: 4, or 6 with a disk
        call  kput_dec
        li    r1, msg_timer
        call  kputs
        li    r1, TIMER_PERIOD
        call  kput_dec
        li    r1, msg_cycles
        call  kputs

        li    r1, TIMER_PERIOD
        out   TIMER, r1                 ; a timer interrupt every TIMER_PERIOD cycles
        call  schedule                  ; run pid 1.  The boot context (pid 0) is
                                        ; never READY, so this call never returns.
        li    r1, msg_boot_returned
        jmp   kernel_panic_msg

; ---- map_kernel(r1 = physical address of a page table) -------------------------------
; Fill in the kernel's part of a page table: its pages 1-15, identity-mapped,
; supervisor only (no U bit).  The code pages are read-only (no W): even the
; kernel cannot overwrite its own code.  Page 0 (the vector table) stays
; unmapped, so a null pointer faults.  Clobbers r2-r4.
map_kernel:
        mov   r4, r1
        addi  r4, (KTEXT >> 12) * 4     ; r4 = &PT[1]
        li    r2, KTEXT | PTE_P         ; r2 = the entry: frame | bits
        li    r3, KTEXT_END
map_kernel_text:
        st    [r4], r2
        addi  r2, 0x1000                ; next frame
        addi  r4, 4                     ; next entry
        cmp   r2, r3
        jb    map_kernel_text
        li    r2, KTEXT_END | PTE_P | PTE_W
        li    r3, KERNEL_END
map_kernel_data:
        st    [r4], r2
        addi  r2, 0x1000
        addi  r4, 4
        cmp   r2, r3
        jb    map_kernel_data
        ret

; ---- create_process(r1 = pid) -----------------------------------------------------------
; Build the address space of process `pid` and its process table entry, and
; prepare its kernel stack so that the first switch_to into it "returns" to
; trap_return, which irets into user_main in ring 3 -- the way real kernels
; start a process: with a hand-made trap frame.  Clobbers r1-r8.
create_process:
        mov   r8, r1                    ; r8 = pid
        mov   r5, r1
        addi  r5, -1
        shli  r5, 14                    ; (pid - 1) * 16 KiB
        li    r6, PROC_FRAMES
        add   r5, r6                    ; r5 = its frames; its page directory is first

        ; its page table: the kernel's pages, plus three user pages
        mov   r6, r5
        addi  r6, PF_PT                 ; r6 = its page table
        mov   r1, r6
        call  map_kernel
        li    r2, USER_CODE_FRAME | PTE_P | PTE_U
        st    [r6 + (USER_CODE >> 12) * 4], r2      ; code: shared, read-only
        mov   r2, r5
        addi  r2, PF_DATA | PTE_P | PTE_W | PTE_U
        st    [r6 + (USER_DATA >> 12) * 4], r2      ; data: its own frame
        mov   r2, r5
        addi  r2, PF_STACK | PTE_P | PTE_W | PTE_U
        st    [r6 + (USER_STACK >> 12) * 4], r2     ; stack: its own frame

        ; its page directory: entry 0 -> its page table.  The PDE has U set
        ; so that the PTEs alone decide what ring 3 may touch.
        mov   r2, r6
        ori   r2, PTE_P | PTE_W | PTE_U
        st    [r5 + PF_PD], r2

        ; its process table entry
        mov   r7, r8
        shli  r7, PROC_SHIFT
        addi  r7, proc_table            ; r7 = &proc_table[pid]
        st    [r7 + P_PD], r5
        mov   r2, r8
        shli  r2, 10                    ; pid * KSTACK_SIZE
        addi  r2, KSTACKS               ; r2 = top of its kernel stack
        st    [r7 + P_KTOP], r2

        ; its first kernel stack, from the top down: the five words iret will
        ; pop, the 15 registers trap_return will pop (all 0), and the return
        ; address of switch_to's `ret`.  Clear all 21 words first.
        mov   r4, r2
        addi  r4, -FRAME_SIZE - 4       ; r4 = the lowest of the 21 words
        li    r3, 0
create_clear_stack:
        st    [r4], r3
        addi  r4, 4
        cmp   r4, r2
        jb    create_clear_stack
        li    r3, USER_STACK_TOP
        st    [r2 - 4], r3              ; old sp: the top of its user stack
        li    r3, 3
        st    [r2 - 8], r3              ; old CPL: ring 3
        li    r3, FLAG_IF
        st    [r2 - 12], r3             ; FLAGS: interrupts on
        li    r3, user_main
        st    [r2 - 16], r3             ; return pc: the program's entry
                                        ; [r2 - 20] error code, then r0..r14: 0
        li    r3, trap_return
        st    [r2 - FRAME_SIZE - 4], r3
        addi  r2, -FRAME_SIZE - 4
        st    [r7 + P_KSP], r2          ; switch_to will load this sp

        li    r3, ST_READY
        st    [r7 + P_STATE], r3
        li    r2, nr_alive
        ld    r3, [r2]
        addi  r3, 1
        st    [r2], r3
        ret

msg_boot:          .asciz "os: vlab-os booting\n"
msg_ring:          .asciz "os: running in ring "
msg_virtualized:   .asciz " -- am I virtualized?\n"
msg_newline:       .asciz "\n"
msg_memory:        .asciz "os: cpuid says "
msg_kib:           .asciz " KiB of memory\n"
msg_too_small:     .asciz "os: too little memory: I need 192 KiB\n"
msg_paging:        .asciz "os: paging on, "
msg_timer:         .asciz " processes, timer every "
msg_cycles:        .asciz " cycles\n"
msg_boot_returned: .asciz "the boot context was resumed"
msg_disk:          .asciz "os: disk of "
msg_sectors:       .asciz " sectors\n"
msg_disk_no_room:  .asciz "os: no room for the disk's processes: they need 224 KiB\n"
        .align 4
