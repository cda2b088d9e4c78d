-- docs/examples/policy.lua -- the configurable privileged-instruction set and
-- the cost table.  Run it:  vlab docs/examples/policy.lua --show sens,traps,notes
local m = vlab.machine{ policy = "x86" }
local sym = m:load([[
        .org 0x1000
start:  smsw  r3                ; read the machine status word: ring in bits 0-1
        li    r4, 1             ; smsw did not trap
        hlt                     ; privileged: traps in ring 3
gp:     hlt                     ; the #GP handler, in ring 0: the machine stops
]])
m:phys32(4 * 13, sym.gp)        -- vector 13 (#GP) -> gp; the vector table is at 0
m:cr("ksp", 0x8000)             -- the stack a trap from ring 3 switches to

print("policy: " .. m:policy() .. "; smsw at ring > 0 does: " .. m:policy("smsw"))
m.ring = 3
m:run()
expect_eq(m.r3 & 3, 3, "x86: smsw runs in ring 3 and shows ring 3")
expect_eq(m.r4, 1)
local x86_cycles = m.cycles

m:reset()                       -- registers, ring and devices; memory stays
m:policy("smsw", "trap")        -- change one instruction...
expect_eq(m:policy(), "custom")
m:cost("trap", 1000)            -- ...and what delivering a trap costs
m:cr("ksp", 0x8000)
m.pc = sym.start
m.ring = 3
m:run()
expect_eq(m.r4, 0, "now smsw traps to the #GP handler")
print("cycles: " .. x86_cycles .. " under x86, " .. m.cycles .. " with smsw trapping at 1000 cycles a trap")
