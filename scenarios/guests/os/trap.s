; os/trap.s -- how the kernel is entered and left: vector stubs, the common
; register save, trap_return, and the fault handlers.
;
; Every trap (fault, timer interrupt, system call) arrives with IF = 0 on the
; kernel stack of the current process, the CPU having pushed five words.
; The stub of the vector pushes r0 and puts the vector number in r0;
; trap_common pushes r1..r14 and dispatches.  After that the stack holds a
; complete picture of the interrupted code (offsets F_* in os/defs.s):
;
;   [sp+76] old sp      [sp+72] old CPL     [sp+68] old FLAGS
;   [sp+64] return pc   [sp+60] error code  [sp+56] r0 ... [sp+0] r14
;
; Every handler leaves through trap_return, which pops the registers back and
; irets.  A context switch happens *between* the two: the handler calls
; schedule, and the registers popped later may be those of another process,
; saved on another kernel stack.

; ---- one stub per vector -----------------------------------------------------------------
vec_de:      push  r0
             li    r0, VEC_DE
             jmp   trap_common
vec_bp:      push  r0
             li    r0, VEC_BP
             jmp   trap_common
vec_ud:      push  r0
             li    r0, VEC_UD
             jmp   trap_common
vec_df:      push  r0
             li    r0, VEC_DF
             jmp   trap_common
vec_gp:      push  r0
             li    r0, VEC_GP
             jmp   trap_common
vec_pf:      push  r0
             li    r0, VEC_PF
             jmp   trap_common
vec_mc:      push  r0
             li    r0, VEC_MC
             jmp   trap_common
vec_timer:   push  r0
             li    r0, VEC_TIMER
             jmp   trap_common
vec_disk:    push  r0
             li    r0, VEC_DISK
             jmp   trap_common
vec_syscall: push  r0
             li    r0, VEC_SYSCALL
             jmp   trap_common

; ---- save the rest, then dispatch on the vector (r0) ------------------------------------
trap_common:
        push  r1
        push  r2
        push  r3
        push  r4
        push  r5
        push  r6
        push  r7
        push  r8
        push  r9
        push  r10
        push  r11
        push  r12
        push  r13
        push  r14
        cmpi  r0, VEC_SYSCALL
        je    syscall_entry             ; os/syscall.s
        cmpi  r0, VEC_TIMER
        je    timer_interrupt           ; os/sched.s
        cmpi  r0, VEC_DISK
        je    disk_interrupt            ; os/disk.s
        jmp   fault                     ; everything else is an exception

; ---- back to the interrupted code --------------------------------------------------------
trap_return:
        pop   r14
        pop   r13
        pop   r12
        pop   r11
        pop   r10
        pop   r9
        pop   r8
        pop   r7
        pop   r6
        pop   r5
        pop   r4
        pop   r3
        pop   r2
        pop   r1
        pop   r0
        iret                            ; pops error code, pc, FLAGS, CPL, sp

; ---- exceptions ---------------------------------------------------------------------------
; A fault in a user process kills that process, never the kernel:
;   "os: process 4 killed: #PF at 0x00006008"   (a page fault: the address)
;   "os: process 2 killed: #GP at pc 0x000100a0" (others: the instruction;
;                                                for #BP, the one after brk)
; A fault in the kernel itself is a bug: the kernel panics and stops.
; The test is "did the trap come from ring 3", not "from ring 0", so the
; kernel still tells its users from itself if it runs in ring 1.
fault:                                  ; r0 = vector, IF = 0
        mov   r9, r0                    ; r9 = vector
        ld    r1, [sp + F_CPL]
        cmpi  r1, 3
        jne   kernel_fault

        li    r1, msg_proc              ; "os: process "
        call  kputs
        li    r2, current
        ld    r1, [r2]
        call  kput_dec
        li    r1, msg_killed            ; " killed: "
        call  kputs
        mov   r1, r9
        call  vector_name
        call  kputs                     ; "#PF"
        cmpi  r9, VEC_PF
        jne   fault_show_pc
        li    r1, msg_at                ; " at 0x..." the address that faulted
        call  kputs
        rdcr  r1, faddr
        jmp   fault_show
fault_show_pc:
        li    r1, msg_at_pc             ; " at pc 0x..." the instruction that faulted
        call  kputs
        ld    r1, [sp + F_PC]
fault_show:
        call  kput_hex
        li    r1, msg_newline
        call  kputs

        ; the process is gone: mark it EXITED and run somebody else
        li    r2, current
        ld    r1, [r2]
        shli  r1, PROC_SHIFT
        addi  r1, proc_table            ; r1 = &proc_table[current]
        li    r2, ST_EXITED
        st    [r1 + P_STATE], r2
        li    r2, -1
        st    [r1 + P_EXIT], r2
        mov   r2, r9
        addi  r2, 1
        st    [r1 + P_KILLED], r2       ; 1 + vector
        li    r2, nr_alive
        ld    r3, [r2]
        addi  r3, -1
        st    [r2], r3
        call  schedule                  ; never returns: this process is not READY
        li    r1, msg_dead_returned
        jmp   kernel_panic_msg

kernel_fault:                           ; "os: PANIC: #PF in the kernel at pc 0x..."
        li    r1, msg_panic
        call  kputs
        mov   r1, r9
        call  vector_name
        call  kputs
        li    r1, msg_in_kernel
        call  kputs
        ld    r1, [sp + F_PC]
        call  kput_hex
        li    r1, msg_newline
        call  kputs
        cli
        hlt                             ; IF = 0: the machine stops for good

; kernel_panic_msg: r1 = what went wrong.  "os: PANIC: <r1>", then stop.
kernel_panic_msg:
        mov   r9, r1
        li    r1, msg_panic
        call  kputs
        mov   r1, r9
        call  kputs
        li    r1, msg_newline
        call  kputs
        cli
        hlt

; vector_name(r1 = vector) -> r1 = its name, a string.  Clobbers nothing else.
vector_name:
        cmpi  r1, VEC_DE
        je    vector_name_de
        cmpi  r1, VEC_BP
        je    vector_name_bp
        cmpi  r1, VEC_UD
        je    vector_name_ud
        cmpi  r1, VEC_DF
        je    vector_name_df
        cmpi  r1, VEC_GP
        je    vector_name_gp
        cmpi  r1, VEC_PF
        je    vector_name_pf
        li    r1, name_mc
        ret
vector_name_de:
        li    r1, name_de
        ret
vector_name_bp:
        li    r1, name_bp
        ret
vector_name_ud:
        li    r1, name_ud
        ret
vector_name_df:
        li    r1, name_df
        ret
vector_name_gp:
        li    r1, name_gp
        ret
vector_name_pf:
        li    r1, name_pf
        ret

name_de:           .asciz "#DE"
name_bp:           .asciz "#BP"
name_ud:           .asciz "#UD"
name_df:           .asciz "#DF"
name_gp:           .asciz "#GP"
name_pf:           .asciz "#PF"
name_mc:           .asciz "#MC"
msg_proc:          .asciz "os: process "
msg_killed:        .asciz " killed: "
msg_at:            .asciz " at "
msg_at_pc:         .asciz " at pc "
msg_panic:         .asciz "os: PANIC: "
msg_in_kernel:     .asciz " in the kernel at pc "
msg_dead_returned: .asciz "a killed process was resumed"
        .align 4
