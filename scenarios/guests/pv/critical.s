; pv/critical.s -- tiny/critical.s, paravirtualized: the kernel does not
; execute cli, sti, popf or pushf; it asks the hypervisor with hypercalls
; (pv.inc).  In a `paravirtual` VM it prints what tiny/critical.s prints on
; bare metal.  (On bare metal vmcall is an invalid instruction: a
; paravirtual kernel only runs on its hypervisor.)
        .include "pv.inc"
        .equ IF, 0x200

        .org 0x1000
start:  li    sp, 0x8000
        li    r0, HC_SET_IF         ; "cli"
        li    r1, 0
        vmcall
        li    r1, msg_cli
        call  show_if
        li    r0, HC_SET_IF         ; "sti"
        li    r1, 1
        vmcall
        li    r1, msg_sti
        call  show_if
        li    r0, HC_SET_IF         ; what the popf did
        li    r1, 0
        vmcall
        li    r1, msg_popf
        call  show_if
        hlt                         ; a privileged instruction: trapped and emulated

show_if:                            ; print the string at r1, then the IF digit
        mov   r2, r1
len:    ldb   r3, [r2]
        cmpi  r3, 0
        je    len_done
        addi  r2, 1
        jmp   len
len_done:
        sub   r2, r1
        li    r0, HC_CONSOLE_WRITE  ; one call for the whole string
        vmcall
        li    r0, HC_GET_FLAGS
        vmcall
        andi  r0, IF
        li    r4, '0'
        cmpi  r0, 0
        je    put
        li    r4, '1'
put:    li    r1, digit
        stb   [r1], r4
        li    r0, HC_CONSOLE_WRITE
        li    r2, 2
        vmcall
        ret

msg_cli:  .asciz "cli  -> IF="
msg_sti:  .asciz "sti  -> IF="
msg_popf: .asciz "popf -> IF="
        .org 0x2000
digit:  .ascii "0\n"
