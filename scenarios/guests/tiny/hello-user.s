; hello-user.s -- a user program for kernel.s: print a line, exit.
; It runs in ring 3; everything it needs from the machine, it asks the
; kernel for with `syscall`.
        .org 0x10000
main:   li    r0, 1                 ; write(msg, len)
        li    r1, msg
        li    r2, msg_end - msg
        syscall                     ; trap into the kernel (vector 0x80, ring 0)
        li    r0, 2                 ; exit()
        syscall
msg:    .ascii "hello from ring 3\n"
msg_end:
