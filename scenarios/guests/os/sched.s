; os/sched.s -- time sharing: the timer interrupt, the round-robin scheduler,
; the context switch, the idle loop, and the end of the world.
;
; Every process has its own kernel stack.  A process that is not running is
; always stopped inside a call of `schedule`, with the return address on top
; of its kernel stack and that stack pointer saved in proc_table[pid].P_KSP.
; Switching processes is therefore just: save sp, load the other sp, `ret`.
; (A new process gets a fake one: create_process, os/boot.s.)
;
; The process table is shared by the timer interrupt and every system call,
; so it is only touched with interrupts off: inside a trap handler before any
; sti, or between cli and sti.  These are real cli/sti instructions, so a
; trap-and-emulate hypervisor sees every one of them.

; ---- the timer interrupt (IRQ 0, vector 32) ------------------------------------------------
; One tick: count it, wake the sleepers whose time has come, and preempt the
; running process (round robin) -- even if it was inside a system call.
timer_interrupt:                        ; IF = 0: the CPU cleared it
        li    r2, ticks
        ld    r3, [r2]
        addi  r3, 1
        st    [r2], r3                  ; r3 = ticks

        li    r4, proc_table + PROC_SIZE               ; pid 1
        li    r5, proc_table + (NPROC + 1) * PROC_SIZE ; past the last pid
timer_wake:
        ld    r6, [r4 + P_STATE]
        cmpi  r6, ST_SLEEPING
        jne   timer_wake_next
        ld    r6, [r4 + P_WAKE]
        cmp   r3, r6
        jb    timer_wake_next           ; ticks < wake-up tick: sleep on
        li    r6, ST_READY
        st    [r4 + P_STATE], r6
timer_wake_next:
        addi  r4, PROC_SIZE
        cmp   r4, r5
        jb    timer_wake

        li    r2, idle_flag             ; did we interrupt the idle loop?  Then it
        ld    r3, [r2]                  ; looks for work itself when we return
        cmpi  r3, 0
        jne   trap_return
        call  schedule                  ; time slice over: next process, please
        jmp   trap_return

; ---- schedule: pick the next READY process and switch to it --------------------------------
; Call with interrupts OFF.  Round robin: look at pid current+1, current+2,
; ... wrapping around, and at the current process itself last.  Returns when
; the caller's process is switched back in: soon, much later, or -- for an
; exited process -- never.  If nobody is READY but somebody sleeps, idle
; until a timer interrupt wakes them; if everybody exited, shut down.
; Clobbers r1-r8.
schedule:
        li    r2, current
        ld    r1, [r2]                  ; r1 = candidate pid
        li    r3, NPROC                 ; r3 = candidates left to look at
schedule_next:
        addi  r1, 1
        cmpi  r1, NPROC
        jle   schedule_check
        li    r1, 1                     ; after the last pid comes pid 1
schedule_check:
        mov   r4, r1
        shli  r4, PROC_SHIFT
        addi  r4, proc_table            ; r4 = &proc_table[candidate]
        ld    r5, [r4 + P_STATE]
        cmpi  r5, ST_READY
        je    schedule_found
        addi  r3, -1
        jne   schedule_next

        ; nobody is READY.  Is anybody left at all?
        li    r2, nr_alive
        ld    r5, [r2]
        cmpi  r5, 0
        je    os_shutdown

        ; somebody sleeps: idle until the timer wakes them.  The timer
        ; interrupt sees idle_flag and returns here instead of scheduling.
        li    r2, idle_flag
        li    r5, 1
        st    [r2], r5
        li    r2, idle_waits
        ld    r5, [r2]
        addi  r5, 1
        st    [r2], r5
        sti                             ; let the timer in ...
        hlt                             ; ... and wait for it (the CPU idles)
        cli                             ; the process table is ours again
        li    r2, idle_flag
        li    r5, 0
        st    [r2], r5
        jmp   schedule                  ; somebody may be READY now

schedule_found:                         ; r1 = next pid, r4 = its entry
        li    r2, current
        ld    r5, [r2]
        cmp   r1, r5
        jne   switch_to
        ret                             ; it is us: just keep running

; ---- switch_to: the context switch (jumped to by schedule) -----------------------------------
; r1 = next pid, r4 = &proc_table[next].  On top of our kernel stack is the
; return address of our `call schedule`: save sp, become the next process,
; load its sp, and `ret` -- into *its* call of schedule.
switch_to:
        li    r2, current
        ld    r5, [r2]
        shli  r5, PROC_SHIFT
        addi  r5, proc_table            ; r5 = our entry (entry 0 at boot)
        st    [r5 + P_KSP], sp          ; where to resume us
        st    [r2], r1                  ; current = next
        ld    r6, [r4 + P_PD]
        wrcr  ptbr, r6                  ; its address space (flushes the TLB; the
                                        ; kernel is mapped the same in all of them)
        ld    r6, [r4 + P_KTOP]
        wrcr  ksp, r6                   ; its traps from ring 3 land on its stack
        ld    r6, [r4 + P_SWITCHES]
        addi  r6, 1
        st    [r4 + P_SWITCHES], r6
        li    r2, context_switches
        ld    r6, [r2]
        addi  r6, 1
        st    [r2], r6
        ld    sp, [r4 + P_KSP]          ; its kernel stack
        ret                             ; back into its call of schedule

; ---- every process has exited ------------------------------------------------------------
; Print the shared counter next to the number of bump() calls that were
; made: they are equal unless a critical section was interrupted.
os_shutdown:                            ; interrupts are off
        li    r1, 0
        out   TIMER, r1                 ; timer off
        li    r1, msg_all_exited
        call  kputs
        li    r1, msg_counter
        call  kputs
        li    r2, shared_counter
        ld    r9, [r2]                  ; r9 = the counter
        mov   r1, r9
        call  kput_dec
        li    r1, msg_expected
        call  kputs
        li    r2, bump_calls
        ld    r10, [r2]                 ; r10 = bump() calls
        mov   r1, r10
        call  kput_dec
        li    r1, msg_close_paren
        call  kputs
        cmp   r9, r10
        je    os_halt
        li    r1, msg_os                ; only if updates were lost:
        call  kputs                     ; "os: 7 updates were lost ..."
        mov   r1, r10
        sub   r1, r9
        call  kput_dec
        li    r1, msg_lost
        call  kputs
os_halt:
        cli
        hlt                             ; IF = 0: the machine halts for good

msg_all_exited:    .asciz "os: all processes exited\n"
msg_counter:       .asciz "os: shared counter = "
msg_expected:      .asciz " (expected "
msg_close_paren:   .asciz ")\n"
msg_os:            .asciz "os: "
msg_lost:          .asciz " updates were lost: a critical section was interrupted!\n"
        .align 4
