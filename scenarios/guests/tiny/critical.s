; critical.s -- a kernel that turns interrupts off and on three ways (cli,
; sti, popf) and prints what pushf says each time.  On bare metal it prints
;   cli  -> IF=0
;   sti  -> IF=1
;   popf -> IF=0
; A hypervisor must make the guest see the same (docs/examples/hv-routines.lua, slides-examples/06-binary-translation.lua).
        .equ CONSOLE, 0x3f8
        .equ IF, 0x200

        .org 0x1000
start:  li    sp, 0x8000
        cli
        li    r1, msg_cli
        call  show_if
        sti
        li    r1, msg_sti
        call  show_if
        li    r2, 0                 ; a FLAGS image with IF = 0
        push  r2
        popf
        li    r1, msg_popf
        call  show_if
        hlt                         ; IF = 0: the machine stops

show_if:                            ; print the string at r1, then IF=0 or IF=1
        pushf
        pop   r3
        andi  r3, IF
puts:   ldb   r2, [r1]
        cmpi  r2, 0
        je    digit
        out   CONSOLE, r2
        addi  r1, 1
        jmp   puts
digit:  li    r2, '0'
        cmpi  r3, 0
        je    put
        li    r2, '1'
put:    out   CONSOLE, r2
        li    r2, 10
        out   CONSOLE, r2
        ret

msg_cli:  .asciz "cli  -> IF="
msg_sti:  .asciz "sti  -> IF="
msg_popf: .asciz "popf -> IF="
