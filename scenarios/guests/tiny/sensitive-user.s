; sensitive-user.s -- a user program for kernel.s that tries three system
; instructions from ring 3.  What happens depends on the machine's policy
; for sensitive instructions (vlab --policy x86 | strict).
        .org 0x10000
main:   mov   r9, sp                ; remember the stack: experiments may leave it uneven

        ; 1. "Which ring am I in?"  smsw reads the machine status word,
        ;    whose low two bits are the current ring.
        li    r5, -1                ; 0xffffffff stays if smsw does not run
        smsw  r5                    ; x86: runs and reveals ring 3; strict: #GP
        li    r1, msg_smsw
        call  print
        li    r0, 3
        mov   r1, r5
        syscall                     ; print_hex(r5)

        ; 2. Turn interrupts off with cli: privileged under both policies.
        li    r1, msg_cli
        call  print
        cli                         ; #GP: the kernel reports it and skips it
        li    r0, 4
        syscall                     ; show_if: still 1

        ; 3. Turn interrupts off with popf, as a kernel's critical section does.
        li    r1, msg_popf
        call  print
        li    r6, 0                 ; a FLAGS image with IF = 0
        push  r6
        popf                        ; x86: no trap, IF silently stays 1; strict: #GP
        mov   sp, r9
        li    r0, 4
        syscall                     ; show_if

        li    r0, 2
        syscall                     ; exit

print:                              ; r1 = NUL-terminated string
        mov   r2, r1
len:    ldb   r3, [r2]
        cmpi  r3, 0
        je    len_done
        addi  r2, 1
        jmp   len
len_done:
        sub   r2, r1
        li    r0, 1
        syscall                     ; write(r1, r2)
        ret

msg_smsw: .asciz "1. smsw in ring 3 read: "
msg_cli:  .asciz "2. cli in ring 3\n"
msg_popf: .asciz "3. popf with IF=0 in ring 3\n"
