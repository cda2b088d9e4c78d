; hello.s -- the smallest complete program: print a line on the console
; from ring 0 and halt.  The machine starts at `start` in ring 0 with
; interrupts off and paging off.
        .equ CONSOLE, 0x3f8

        .org 0x1000
start:  li    sp, 0x8000            ; sp is 0 after reset: set it first
        li    r1, msg
loop:   ldb   r2, [r1]              ; next byte
        cmpi  r2, 0
        je    done                  ; NUL: end of the string
        out   CONSOLE, r2           ; one byte to the console
        addi  r1, 1
        jmp   loop
done:   hlt                         ; IF = 0: the machine halts for good

msg:    .asciz "hello from ring 0\n"
