; kernel.s -- a very small kernel for the slides examples.
;
; It boots in ring 0 (kernel mode), fills in its vector table, and enters the
; user program in ring 3 (user mode) by building a trap frame and running
; iret -- the way real kernels start their first process.  The user program
; asks for services with `syscall` (vector 0x80):
;
;   r0 = 1  write(r1 = address, r2 = length)   print bytes on the console
;   r0 = 2  exit()                             stop the machine
;   r0 = 3  print_hex(r1)                      print r1 as 0x........ and a newline
;   r0 = 4  show_if()                          print the user's interrupt flag, as
;                                              the trap frame recorded it
;
; A #GP (vector 13) from user mode is reported on the console and the
; offending 4-byte instruction is skipped, so the program can go on.
;
; Memory: vector table at 0x0, kernel code at 0x1000, kernel stack below
; 0x8000, user program at 0x10000, user stack below 0x20000.  Paging is off.

        .equ KSTACK,     0x8000
        .equ USER_ENTRY, 0x10000
        .equ USTACK,     0x20000
        .equ CONSOLE,    0x3f8
        .equ FLAG_IF,    0x200

        .org 0x1000
start:  li    sp, KSTACK
        li    r1, 0
        wrcr  vbr, r1               ; the vector table is at physical address 0
        li    r1, KSTACK
        wrcr  ksp, r1               ; traps from ring 3 switch to this stack
        li    r1, syscall_entry
        li    r2, 4 * 0x80
        st    [r2], r1              ; vector 0x80: system calls
        li    r1, gp_entry
        li    r2, 4 * 13
        st    [r2], r1              ; vector 13: general protection fault
        ; enter ring 3: push a trap frame (old sp, old ring, flags, pc, error)
        li    r1, USTACK
        push  r1
        li    r1, 3
        push  r1
        li    r1, FLAG_IF
        push  r1
        li    r1, USER_ENTRY
        push  r1
        li    r1, 0
        push  r1
        iret                        ; "return" into the user program, ring 3

; ---- system calls -------------------------------------------------------
syscall_entry:
        cmpi  r0, 1
        je    sys_write
        cmpi  r0, 2
        je    sys_exit
        cmpi  r0, 3
        je    sys_print_hex
        cmpi  r0, 4
        je    sys_show_if
        li    r0, -1                ; unknown system call
        iret

sys_write:                          ; r1 = address, r2 = length
        mov   r3, r1
        add   r3, r2
write_loop:
        cmp   r1, r3
        jae   write_done
        ldb   r4, [r1]
        out   CONSOLE, r4
        addi  r1, 1
        jmp   write_loop
write_done:
        mov   r0, r2
        iret

sys_exit:
        li    r1, msg_exit
        call  puts
        hlt                         ; interrupts are off in a handler: the machine stops

sys_print_hex:
        call  print_hex
        iret

sys_show_if:                        ; the trap frame: [sp+8] holds the user's FLAGS
        li    r1, msg_if
        call  puts
        ld    r1, [sp+8]
        andi  r1, FLAG_IF
        li    r2, '0'
        cmpi  r1, 0
        je    show_digit
        li    r2, '1'
show_digit:
        out   CONSOLE, r2
        li    r2, 10
        out   CONSOLE, r2
        iret

; ---- #GP: report and skip the instruction --------------------------------
gp_entry:
        push  r1
        push  r2
        push  r3
        push  r4
        li    r1, msg_gp
        call  puts
        ld    r1, [sp+20]           ; the faulting pc (after the 4 saved registers and the error code)
        call  print_hex
        ld    r1, [sp+20]
        addi  r1, 4                 ; skip the 4-byte instruction
        st    [sp+20], r1
        pop   r4
        pop   r3
        pop   r2
        pop   r1
        iret

; ---- helpers (ring 0) -----------------------------------------------------
puts:                               ; r1 = NUL-terminated string
        ldb   r2, [r1]
        cmpi  r2, 0
        je    puts_done
        out   CONSOLE, r2
        addi  r1, 1
        jmp   puts
puts_done:
        ret

print_hex:                          ; r1 = value; prints 0x........ and a newline
        li    r2, '0'
        out   CONSOLE, r2
        li    r2, 'x'
        out   CONSOLE, r2
        li    r3, 28                ; shift for the top nibble
hex_loop:
        mov   r2, r1
        shr   r2, r3
        andi  r2, 15
        cmpi  r2, 10
        jl    hex_digit
        addi  r2, 'a' - 10 - '0'
hex_digit:
        addi  r2, '0'
        out   CONSOLE, r2
        addi  r3, -4
        cmpi  r3, 0
        jge   hex_loop
        li    r2, 10
        out   CONSOLE, r2
        ret

msg_exit: .asciz "[kernel] user program exited\n"
msg_gp:   .asciz "[kernel] #GP: privileged instruction in user mode at "
msg_if:   .asciz "[kernel] user's interrupt flag IF = "
