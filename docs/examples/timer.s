; timer.s -- the interval timer: three timer interrupts (IRQ 0, vector 32)
; while the CPU idles in hlt, then stop.
        .equ TIMER, 0x40
        .equ PERIOD, 10000          ; cycles between two ticks

        .org 0x1000
start:  li    sp, 0x8000
        li    r1, 0
        wrcr  vbr, r1
        li    r1, tick
        li    r2, 4 * 32
        st    [r2], r1              ; vector 32: timer
        li    r1, PERIOD
        out   TIMER, r1             ; arm the timer
        sti                         ; IF = 1
wait:   hlt                         ; idle until the next tick
        cmpi  r7, 3
        jb    wait
        li    r1, 0
        out   TIMER, r1             ; timer off
        cli
        hlt                         ; IF = 0: halts for good

tick:   addi  r7, 1                 ; count the ticks (IF is 0 in here)
        iret
