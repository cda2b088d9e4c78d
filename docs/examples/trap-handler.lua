-- docs/examples/trap-handler.lua -- handle traps in Lua: a tiny trap-and-emulate
-- monitor.  A "guest kernel" runs in ring 3 under the strict policy, so each of
-- its sensitive instructions traps (#GP) to the host, here a Lua function that
-- keeps a virtual interrupt flag and emulates cli, sti, pushf and popf on it --
-- Popek & Goldberg's interpreter routines.
-- Run it:  vlab docs/examples/trap-handler.lua --show traps,notes
local m = vlab.machine{ policy = "strict" }
m:load([[
start:  li    sp, 0x8000
        cli                   ; the guest thinks it turns interrupts off
        pushf
        pop   r1              ; ...and reads its flags back
        sti
        pushf
        pop   r2
        hlt                   ; ends the guest (a #GP we stop on)
]])
m.ring = 3                    -- deprivilege the guest: it runs in user mode
m.interrupts = true           -- and the real machine keeps interrupts on

local virtual_if = true
local IF = 0x200
m:on("#GP", function(trap)
  if trap.mnem == "cli" then
    virtual_if = false
  elseif trap.mnem == "sti" then
    virtual_if = true
  elseif trap.mnem == "pushf" then    -- push the flags the guest expects to see
    local flags = (m.flags & ~IF & ~0x3000) | (virtual_if and IF or 0)
    m.sp = m.sp - 4
    m:write32(m.sp, flags)
  elseif trap.mnem == "hlt" then
    return "stop"
  else
    return "deliver"                  -- not ours: let the guest's vector table have it
  end
  m:note("emulated " .. trap.mnem .. " (virtual IF = " .. tostring(virtual_if) .. ")")
  return "emulate"                    -- done: skip the instruction
end)

local r = m:run()
expect_eq(r.reason, "trap")
expect_eq(m.r1 & IF, 0, "the guest saw interrupts off after cli")
expect_eq(m.r2 & IF, IF, "and on after sti")
expect(m.interrupts, "the real interrupt flag never changed")
print("guest flags after cli: " .. vlab.hex(m.r1) .. ", after sti: " .. vlab.hex(m.r2))
