; disk-user.s -- a user program for disk-kernel.s: read sector 0 of the disk
; into a buffer, print its first line, exit.  Ring 3: the disk, like the
; console, is the kernel's business; the program only makes system calls.
        .org 0x10000
main:   li    r0, 5                 ; disk_read(sector 0, buf)
        li    r1, 0
        li    r2, buf
        syscall                     ; returns once the disk has delivered
        cmpi  r0, 512
        jne   failed
        li    r1, buf               ; the first line: up to its newline
        mov   r3, r1
line:   ldb   r4, [r3]
        addi  r3, 1
        cmpi  r4, 10
        je    print
        cmpi  r4, 0
        jne   line
print:  li    r0, 1                 ; write(buf, length)
        mov   r2, r3
        sub   r2, r1
        syscall
        li    r0, 2                 ; exit()
        syscall
failed: li    r0, 1
        li    r1, msg_failed
        li    r2, msg_failed_end - msg_failed
        syscall
        li    r0, 2
        syscall
msg_failed:     .ascii "the disk read failed\n"
msg_failed_end:
        .align 4
buf:    .space 512
