; os/user.s -- the user program.  Every process runs this same code, in
; ring 3, from virtual address USER_CODE (0x10000); what it does depends on
; the pid that getpid() returns.
;
; Its address space (built by create_process, os/boot.s):
;   0x10000  this code and its strings   read-only, shared by all processes
;   0x11000  its data page               read-write, its own frame
;   0x12000  its stack page              read-write, its own frame (sp starts at 0x13000)
; Everything else, the kernel included, is off limits: touching it is a #PF.
;
; Pids 1-3, the workers: say hello, yield, call bump() BUMPS times (keeping
; count in the data page), sleep 4 * pid ticks, say goodbye, exit(100 + pid).
; Pid 4 misbehaves: it hands write() a kernel address (refused), then reads
; the kernel's shared counter itself -- and is killed.
;
; Registers kept for the whole program: r9 = the data page, r10 = pid,
; r11 = bump() calls made.

user_main:
        li    r0, SYS_GETPID
        syscall
        mov   r10, r0                   ; r10 = my pid
        li    r9, USER_DATA             ; r9 = my data page
        st    [r9 + U_PID], r10
        li    r1, umsg_hello
        call  say
        cmpi  r10, BAD_PID
        je    misbehave

        li    r0, SYS_YIELD             ; let the others say hello too
        syscall

        li    r1, umsg_bumping
        call  say
        li    r11, 0
bump_loop:
        li    r0, SYS_BUMP              ; shared_counter += 1, in the kernel
        syscall                         ; (r0 = the counter after my bump; which
        addi  r11, 1                    ; value that is depends on timing)
        st    [r9 + U_BUMPS], r11
        cmpi  r11, BUMPS
        jb    bump_loop

        li    r1, umsg_sleeping
        call  say
        li    r0, SYS_SLEEP
        mov   r1, r10
        shli  r1, 2                     ; pid p sleeps 4p ticks: they wake up in pid order
        syscall
        li    r1, umsg_bye
        call  say
        li    r0, SYS_EXIT
        mov   r1, r10
        addi  r1, EXIT_BASE             ; exit code 100 + pid
        syscall
        brk                             ; not reached: exit does not return

; ---- pid 4 ----------------------------------------------------------------------------------
misbehave:
        li    r0, SYS_WRITE             ; 1. write() from a kernel address: the
        li    r1, msg_boot              ;    kernel must check the pointer
        li    r2, 8
        syscall
        st    [r9 + U_WRITE_RESULT], r0
        li    r1, umsg_refused
        cmpi  r0, ERR_FAULT
        je    misbehave_said
        li    r1, umsg_accepted
misbehave_said:
        call  say
        li    r1, umsg_peek             ; 2. read the kernel's counter directly
        call  say
        li    r1, shared_counter
        ld    r2, [r1]                  ; #PF: kernel pages have no U bit
        li    r1, umsg_survived         ; not reached: the kernel kills us
        call  say
        li    r0, SYS_EXIT
        li    r1, 0
        syscall
        brk

; ---- say(r1 = template) ----------------------------------------------------------------------
; Print one line with a single write().  The line is built in my data page
; from the template, each '#' replaced by my pid (one digit).  One write()
; per line keeps lines whole: the kernel prints a write() with interrupts
; off.  Clobbers r0-r4.
say:
        li    r2, USER_DATA + U_LINE
        mov   r3, r2                    ; r3 = where the next byte goes
say_copy:
        ldb   r4, [r1]
        cmpi  r4, 0
        je    say_write
        cmpi  r4, '#'
        jne   say_store
        mov   r4, r10
        addi  r4, '0'                   ; '#' -> my pid
say_store:
        stb   [r3], r4
        addi  r1, 1
        addi  r3, 1
        jmp   say_copy
say_write:
        mov   r1, r2                    ; write(line, length)
        sub   r3, r2
        mov   r2, r3
        li    r0, SYS_WRITE
        syscall
        ret

umsg_hello:    .asciz "proc #: hello, I am process #\n"
umsg_bumping:  .asciz "proc #: bumping the shared counter\n"
umsg_sleeping: .asciz "proc #: done bumping, going to sleep\n"
umsg_bye:      .asciz "proc #: awake again, goodbye\n"
umsg_refused:  .asciz "proc #: write() from a kernel address was refused\n"
umsg_accepted: .asciz "proc #: write() from a kernel address was accepted!\n"
umsg_peek:     .asciz "proc #: then I read the shared counter myself...\n"
umsg_survived: .asciz "proc #: ...and nothing happened!\n"
user_end:                               ; must stay below USER_DATA: only one code page is mapped
