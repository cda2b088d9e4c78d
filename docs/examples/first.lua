-- docs/examples/first.lua -- the smallest scenario: one machine, one program.
-- Run it:  vlab docs/examples/first.lua
local m = vlab.machine{ name = "first" }     -- 1 MiB of memory, policy x86

m:load([[
start:  li    r1, 0          ; sum
        li    r2, 1          ; i
loop:   add   r1, r2
        addi  r2, 1
        cmpi  r2, 11
        jl    loop           ; while i < 11
        hlt
]])

local r = m:run()                            -- until something stops it
print("stopped by", r.reason, "after", r.steps, "steps")
print("1 + 2 + ... + 10 =", m.r1)
expect_eq(m.r1, 55, "the sum")
