; os/syscall.s -- the system calls.
;
; A user process asks for a service with `syscall` (vector 0x80):
;
;   r0 = number, r1, r2 = arguments; the result comes back in r0.
;
;   1 write(buf, len)  print len bytes at buf -> len, or ERR_FAULT (-2) if the
;                      buffer is not inside the user's pages, or len > 256
;   2 exit(code)       end the process; does not return
;   3 yield()          let the next process run -> 0
;   4 getpid()         -> the process id, 1..4
;   5 sleep(ticks)     wait for that many timer interrupts -> 0
;   6 bump()           add 1 to the counter all processes share -> its new value
;   7 disk_read(sector, count, buf)   (r3 = buf)  read sectors into buf -> count
;   8 disk_write(sector, count, buf)  (r3 = buf)  write buf to sectors -> count
;                      (both in os/disk.s: -2 bad buffer or count, -4 no disk,
;                      -16 - code when the disk reports an error)
;   other              -> ERR_NOSYS (-1)
;
; All other registers come back unchanged (trap_common saved them).
;
; The kernel is preemptible: the first thing a system call does is `sti`, so
; a timer interrupt may switch to another process in the middle of it.  Code
; that must not be interrupted turns interrupts off itself, in one of two
; ways -- see sys_sleep (cli/sti) and sys_bump (pushf/popf).

syscall_entry:                          ; IF = 0 here: every trap clears it
        sti                             ; preemptible from here on
        ld    r0, [sp + F_R0]           ; the system call number (the user's r0);
                                        ; r1 and r2 still hold the arguments
        cmpi  r0, SYS_WRITE
        je    sys_write
        cmpi  r0, SYS_EXIT
        je    sys_exit
        cmpi  r0, SYS_YIELD
        je    sys_yield
        cmpi  r0, SYS_GETPID
        je    sys_getpid
        cmpi  r0, SYS_SLEEP
        je    sys_sleep
        cmpi  r0, SYS_BUMP
        je    sys_bump
        cmpi  r0, SYS_DISK_READ
        je    sys_disk                  ; os/disk.s
        cmpi  r0, SYS_DISK_WRITE
        je    sys_disk
        li    r0, ERR_NOSYS
syscall_return:                         ; r0 = the result
        st    [sp + F_R0], r0           ; trap_return pops it into the user's r0
        jmp   trap_return

; ---- write(r1 = buf, r2 = len) ------------------------------------------------------------
; Never trust a pointer from user mode: the whole buffer must lie in the user
; part of the address space, [USER_BASE, USER_END), where every process has
; its pages mapped.  A pointer into the kernel is refused -- otherwise a
; process could make the kernel print (leak) the kernel's own memory.
sys_write:
        li    r3, MAX_WRITE
        cmp   r3, r2
        jb    sys_write_bad             ; len > MAX_WRITE (or "negative")
        li    r3, USER_BASE
        cmp   r1, r3
        jb    sys_write_bad             ; buf below the user pages
        li    r3, USER_END
        cmp   r1, r3
        jae   sys_write_bad             ; buf above them
        mov   r4, r1
        add   r4, r2                    ; r4 = end of the buffer (cannot wrap here)
        cmp   r3, r4
        jb    sys_write_bad             ; the end sticks out
        cmpi  r2, 0
        je    sys_write_done
        ; The console is shared: a line must not be cut by another process's
        ; line, so the copy runs with interrupts off.
        cli
sys_write_loop:
        ldb   r5, [r1]
        out   CONSOLE, r5
        addi  r1, 1
        cmp   r1, r4
        jb    sys_write_loop
        sti
sys_write_done:
        mov   r0, r2                    ; bytes written
        jmp   syscall_return
sys_write_bad:
        li    r0, ERR_FAULT
        jmp   syscall_return

; ---- getpid() -----------------------------------------------------------------------------
sys_getpid:
        li    r2, current
        ld    r0, [r2]
        jmp   syscall_return

; ---- yield() ------------------------------------------------------------------------------
sys_yield:
        cli                             ; critical section: the scheduler
        call  schedule                  ; we stay READY: round robin puts us last
        sti
        li    r0, 0
        jmp   syscall_return

; ---- sleep(r1 = ticks) ----------------------------------------------------------------------
sys_sleep:
        cli                             ; critical section: our process table entry
        li    r2, current               ; and the scheduler
        ld    r3, [r2]
        shli  r3, PROC_SHIFT
        addi  r3, proc_table            ; r3 = &proc_table[current]
        li    r2, ticks
        ld    r4, [r2]
        add   r4, r1
        st    [r3 + P_WAKE], r4         ; wake up at tick now + ticks
        li    r4, ST_SLEEPING
        st    [r3 + P_STATE], r4
        call  schedule                  ; back here once the timer woke us up
        sti                             ; and our turn came
        li    r0, 0
        jmp   syscall_return

; ---- exit(r1 = code) ------------------------------------------------------------------------
sys_exit:
        cli                             ; critical section: the process table
        mov   r9, r1                    ; r9 = exit code
        li    r2, current
        ld    r10, [r2]                 ; r10 = pid
        mov   r3, r10
        shli  r3, PROC_SHIFT
        addi  r3, proc_table
        st    [r3 + P_EXIT], r9
        li    r4, ST_EXITED
        st    [r3 + P_STATE], r4
        li    r2, nr_alive
        ld    r4, [r2]
        addi  r4, -1
        st    [r2], r4
        li    r1, msg_proc              ; "os: process 1 exited with code 101"
        call  kputs
        mov   r1, r10
        call  kput_dec
        li    r1, msg_exited
        call  kputs
        mov   r1, r9
        call  kput_dec
        li    r1, msg_newline
        call  kputs
        call  schedule                  ; never returns: we are not READY any more
        li    r1, msg_dead_returned
        jmp   kernel_panic_msg

; ---- bump() -----------------------------------------------------------------------------------
; shared_counter = shared_counter + 1, as a read-modify-write that takes a
; while.  If a timer interrupt switched processes between the read and the
; write, and another process bumped the counter meanwhile, our write would
; wipe out its updates (a "lost update").  So the read-modify-write is a
; critical section, run with interrupts off.
;
; Here interrupts are turned off the save-and-restore way: save FLAGS with
; pushf, load a copy with IF = 0 with popf, and at the end load the saved
; FLAGS back with popf.  In ring 0 this is exactly as good as cli/sti, so on
; the bare machine no update is ever lost.
;
; Inside a VM it is the weak spot.  Under the x86 policy popf does not trap
; in ring 1-3; it silently leaves IF alone (Robin & Irvine's POPF problem).
; A kernel deprivileged by a trap-and-emulate hypervisor therefore runs this
; critical section with interrupts ON, the hypervisor never finds out, the
; timer preempts it in the middle, and the final counter comes out short.
; (With cli at the start, the hypervisor would see the cli trap and keep
; the virtual IF off: the race needs the silent popf.)
sys_bump:
        cli                             ; count the call -- a short update, done
        li    r2, bump_calls            ; the cli/sti way, which traps when
        ld    r3, [r2]                  ; deprivileged: it is always protected
        addi  r3, 1
        st    [r2], r3
        sti

        pushf                           ; save FLAGS (IF = 1: interrupts are on)
        pop   r9                        ; r9 = the saved FLAGS
        li    r3, ~FLAG_IF
        and   r3, r9
        push  r3
bump_cs_enter:
        popf                            ; FLAGS with IF = 0: the critical section begins
        li    r2, shared_counter
        ld    r1, [r2]                  ; read
        ; The update takes a while -- this loop stands for real work (think of
        ; relinking a list; here: two divisions, 25 cycles each, per round).
        ; Every round ends in a branch, a point where the CPU would take a
        ; timer interrupt if IF were 1.
        li    r3, BUMP_WORK
        li    r4, 3
sys_bump_work:
        mov   r5, r1
        div   r5, r4
        div   r5, r4
        addi  r3, -1
        jne   sys_bump_work
        addi  r1, 1                     ; modify
        st    [r2], r1                  ; write
        push  r9
bump_cs_leave:
        popf                            ; restore the saved FLAGS: interrupts on again
        mov   r0, r1                    ; the new value
        jmp   syscall_return

msg_exited:        .asciz " exited with code "
        .align 4
