-- docs/examples/stepping.lua -- step, run to an event, breakpoints, memory.
-- Run it:  vlab docs/examples/stepping.lua --show traps,notes
local m = vlab.machine{}
local sym = m:load([[
        .org 0x1000
start:  li    sp, 0x8000
        li    r1, 0
        wrcr  vbr, r1            ; vector table at 0
        li    r1, handler
        st    [r0+0x200], r1     ; vector 0x80 (4 * 0x80 = 0x200)
        li    r5, 3
again:  syscall                  ; ring 0 may use syscall too
        addi  r5, -1
        cmpi  r5, 0
        jne   again
done:   hlt
handler:
        addi  r6, 1              ; count the calls
        iret
        .org 0x2000
counter: .word 0
]])

m:step(3)                                        -- three instructions
expect_eq(m.pc, sym.start + 8 + 8 + 4)           -- li is 8 bytes long, wrcr 4
m:note("the vector table is set up next")

local r = m:run{ ["until"] = "syscall" }         -- up to the first system call
expect_eq(r.reason, "trap")
expect_eq(m.pc, sym.handler)                     -- stopped at the handler, before it runs
print("first syscall: handler at " .. vlab.hex(m.pc) .. ", ring " .. m.ring)

m:break_at("done")                               -- a breakpoint on a label
r = m:run()
expect_eq(r.reason, "breakpoint")
expect_eq(m.r6, 3)                               -- the handler ran three times

m:write32(0x2000, 1234)                          -- memory, through the page tables
expect_eq(m:read32(0x2000), 1234)
print(m:disasm(sym.handler, 2))
r = m:run()
expect_eq(r.reason, "halt")
