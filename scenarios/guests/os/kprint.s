; os/kprint.s -- the kernel's own console output: strings, decimal and hex
; numbers, one `out` to the console port per character.
;
; Call these with interrupts off (in a trap handler before sti, or after
; cli), so that the kernel's lines do not mix with a process's write().
; They clobber r1-r5 and keep r6-r14.

; kputs(r1 = NUL-terminated string)
kputs:
        ldb   r2, [r1]
        cmpi  r2, 0
        je    kputs_done
        out   CONSOLE, r2
        addi  r1, 1
        jmp   kputs
kputs_done:
        ret

; kput_dec(r1 = unsigned number): the digits are made from the right, by
; dividing by 10, into dec_buffer (os/data.s), then printed with kputs.
kput_dec:
        li    r3, dec_buffer + 11       ; the last byte: the NUL
        li    r4, 0
        stb   [r3], r4
        li    r4, 10
kput_dec_digit:
        addi  r3, -1
        mov   r2, r1
        rem   r2, r4                    ; the last digit ...
        addi  r2, '0'
        stb   [r3], r2
        div   r1, r4                    ; ... and the rest
        cmpi  r1, 0
        jne   kput_dec_digit
        mov   r1, r3
        jmp   kputs                     ; (tail call: kputs returns for us)

; kput_hex(r1 = number): "0x" and eight hex digits.
kput_hex:
        mov   r3, r1
        li    r2, '0'
        out   CONSOLE, r2
        li    r2, 'x'
        out   CONSOLE, r2
        li    r4, 28                    ; shift of the top digit
kput_hex_digit:
        mov   r2, r3
        shr   r2, r4
        andi  r2, 15
        cmpi  r2, 10
        jb    kput_hex_09
        addi  r2, 'a' - 10 - '0'
kput_hex_09:
        addi  r2, '0'
        out   CONSOLE, r2
        addi  r4, -4
        jge   kput_hex_digit            ; until the shift went below 0
        ret
