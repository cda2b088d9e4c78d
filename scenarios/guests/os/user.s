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
; Pids 5 and 6 exist only when the machine has a disk.  Pid 5 reads sectors
; 0-1 and prints the first line it finds there, then asks for a sector past
; the end of the disk (the controller refuses: error 1).  Pid 6 writes a line
; into sector 4, reads it back and prints it, and offers the kernel a buffer
; in kernel memory (refused).  Both wait for the disk while the others run.
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
        cmpi  r10, READER_PID
        je    disk_reader
        cmpi  r10, WRITER_PID
        je    disk_writer

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

; ---- pid 5: read the disk ----------------------------------------------------------------------
disk_reader:
        li    r0, SYS_DISK_READ         ; 1. sectors 0-1 into my data page
        li    r1, 0
        li    r2, 2
        li    r3, USER_DATA + U_DISKBUF
        syscall                         ; sleeps until the disk's interrupt
        st    [r9 + U_DISK1], r0
        li    r1, umsg_read_failed
        cmpi  r0, 2
        jne   disk_reader_said
        li    r1, umsg_read             ; "proc 5: sector 0 says: <its first line>"
        li    r5, USER_DATA + U_DISKBUF
        call  say_tail
        jmp   disk_reader_past
disk_reader_said:
        call  say
disk_reader_past:
        li    r0, SYS_DISK_READ         ; 2. a sector past the end of the disk
        li    r1, 0x7ffffff0
        li    r2, 1
        li    r3, USER_DATA + U_DISKBUF2
        syscall
        st    [r9 + U_DISK2], r0
        li    r1, umsg_past_refused
        cmpi  r0, ERR_DISK - 1          ; the controller's error 1: outside the disk
        je    disk_reader_said2
        li    r1, umsg_past_accepted
disk_reader_said2:
        call  say
        li    r0, SYS_EXIT
        mov   r1, r10
        addi  r1, EXIT_BASE
        syscall
        brk

; ---- pid 6: write the disk, read it back -------------------------------------------------------
disk_writer:
        li    r1, umsg_disk_line        ; my line, into my disk buffer (the rest of
        li    r3, USER_DATA + U_DISKBUF ; the sector stays zero)
disk_writer_copy:
        ldb   r4, [r1]
        stb   [r3], r4
        addi  r1, 1
        addi  r3, 1
        cmpi  r4, 0
        jne   disk_writer_copy
        li    r0, SYS_DISK_WRITE        ; 1. write it to sector 4
        li    r1, 4
        li    r2, 1
        li    r3, USER_DATA + U_DISKBUF
        syscall
        st    [r9 + U_DISK1], r0
        li    r0, SYS_DISK_READ         ; 2. read sector 4 back elsewhere
        li    r1, 4
        li    r2, 1
        li    r3, USER_DATA + U_DISKBUF2
        syscall
        st    [r9 + U_DISK2], r0
        li    r1, umsg_readback         ; "proc 6: sector 4 now says: ..."
        li    r5, USER_DATA + U_DISKBUF2
        call  say_tail
        li    r0, SYS_DISK_READ         ; 3. a read into kernel memory
        li    r1, 0
        li    r2, 1
        li    r3, shared_counter
        syscall
        st    [r9 + U_DISK3], r0
        li    r1, umsg_kbuf_refused
        cmpi  r0, ERR_FAULT
        je    disk_writer_said
        li    r1, umsg_kbuf_accepted
disk_writer_said:
        call  say
        li    r0, SYS_EXIT
        mov   r1, r10
        addi  r1, EXIT_BASE
        syscall
        brk

; ---- say(r1 = template) ----------------------------------------------------------------------
; Print one line with a single write().  The line is built in my data page
; from the template, each '#' replaced by my pid (one digit).  One write()
; per line keeps lines whole: the kernel prints a write() with interrupts
; off.  say_tail(r1 = template, r5 = text) appends text up to its first
; control byte (at most 60 bytes) and a newline.  Clobbers r0-r5.
say:
        li    r5, 0                     ; no tail
say_tail:                               ; r5 = text to append up to its first
        li    r2, USER_DATA + U_LINE    ; newline (at most 60 bytes), or 0
        mov   r3, r2                    ; r3 = where the next byte goes
say_copy:
        ldb   r4, [r1]
        cmpi  r4, 0
        je    say_append
        cmpi  r4, '#'
        jne   say_store
        mov   r4, r10
        addi  r4, '0'                   ; '#' -> my pid
say_store:
        stb   [r3], r4
        addi  r1, 1
        addi  r3, 1
        jmp   say_copy
say_append:
        cmpi  r5, 0
        je    say_write
        li    r1, 60                    ; r1 = bytes of the tail left
say_append_byte:
        ldb   r4, [r5]
        cmpi  r4, 32
        jb    say_append_end            ; newline, NUL or another control byte
        stb   [r3], r4
        addi  r3, 1
        addi  r5, 1
        addi  r1, -1
        jne   say_append_byte
say_append_end:
        li    r4, 10
        stb   [r3], r4                  ; the line ends here
        addi  r3, 1
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
umsg_read:     .asciz "proc #: sector 0 of the disk says: "
umsg_read_failed: .asciz "proc #: reading the disk failed\n"
umsg_past_refused: .asciz "proc #: reading past the end of the disk failed, as it should\n"
umsg_past_accepted: .asciz "proc #: reading past the end of the disk worked?!\n"
umsg_disk_line: .asciz "vlab-os process 6 was here\n"
umsg_readback: .asciz "proc #: wrote sector 4, read it back: "
umsg_kbuf_refused: .asciz "proc #: a disk read into kernel memory was refused\n"
umsg_kbuf_accepted: .asciz "proc #: a disk read into kernel memory was accepted!\n"
user_end:                               ; must stay below USER_DATA: only one code page is mapped
