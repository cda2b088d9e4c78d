-- bench/stepback.lua -- a long run for the TUI's step-back figure in `make bench`:
--   vlab --tui bench/stepback.lua --tui-script "End b b b ... @time"
-- A small kernel with a timer runs a user program in ring 3 that sums in a
-- loop and makes a system call every 100 iterations, for about 10.5 million
-- steps (vlab.args[1] outer iterations, default 34000): loops, traps,
-- interrupts and ring changes, so the history holds every kind of record.
local outer = math.tointeger(tonumber(vlab.args[1] or "34000"))
local m = vlab.machine{ name = "stepback" }
m:load(string.format([[
        .org 0x1000
start:  li    sp, 0x8000
        li    r1, 0
        wrcr  vbr, r1               ; vector table at 0
        li    r1, sys
        li    r2, 0x200
        st    [r2], r1              ; vector 0x80: system calls
        li    r1, tick
        li    r2, 0x80
        st    [r2], r1              ; vector 32: the timer
        li    r1, 0x8000
        wrcr  ksp, r1
        li    r1, 5000
        out   0x40, r1              ; a tick every 5000 cycles
        li    r1, 0x20000           ; enter the user program: sp, ring 3, IF, pc, error
        push  r1
        li    r1, 3
        push  r1
        li    r1, 0x200
        push  r1
        li    r1, user
        push  r1
        li    r1, 0
        push  r1
        iret
sys:    cmpi  r0, 2
        je    exit
        addi  r9, 1                 ; count the calls
        iret
exit:   hlt                         ; IF is 0 in a handler: the machine stops
tick:   addi  r10, 1                ; count the ticks
        iret

        .org 0x10000
user:   li    r3, %d
outer:  li    r4, 100
inner:  add   r1, r4
        addi  r4, -1
        jne   inner
        li    r0, 1
        syscall
        addi  r3, -1
        jne   outer
        li    r0, 2
        syscall
]], outer))
local r = m:run()
expect_eq(r.reason, "halt")
expect_eq(m.r9, outer, "one system call per outer iteration")
expect(m.steps >= 10000000 or outer < 34000, "at least 10 million steps")
print(m.steps)
