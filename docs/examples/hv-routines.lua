-- docs/examples/hv-routines.lua -- write the hypervisor's interpreter
-- routines yourself (Popek & Goldberg: one routine per privileged
-- instruction).  The guest kernel of slides-examples/ runs in a VM by
-- trap-and-emulate on a strict machine; the routines for cli, sti and popf
-- here replace the built-in ones.  If they are right, the guest prints
-- exactly what it prints on bare metal.
-- Run it:  vlab docs/examples/hv-routines.lua --show traps,exits,notes
local IF = 0x200
local hv = vlab.hypervisor{ policy = "strict", memory = 4 * 1024 * 1024 }
local vm = hv:vm{ name = "guest", technique = "trap-and-emulate" }
vm:load_file("tiny/critical.s")

local calls = {}
local function count(m) calls[m] = (calls[m] or 0) + 1 end

hv:emulate("cli", function(vm, trap)
  count(trap.mnem)
  vm.interrupts = false          -- the VIRTUAL interrupt flag: the real one stays on
  return true                    -- emulated: the guest goes on after the cli
end)
hv:emulate("sti", function(vm, trap)
  count(trap.mnem)
  vm.interrupts = true
  return true
end)
hv:emulate("popf", function(vm, trap)
  count(trap.mnem)
  local flags = vm:pop()         -- from the guest's stack, through its page tables
  vm.interrupts = flags & IF ~= 0
  return true
end)

local r = hv:run()
expect_eq(r.reason, "halt")
local native = vlab.machine{ policy = "strict" }
native:load_file("tiny/critical.s")
native:run()
expect_eq(vm:console(), native:console(), "the guest cannot tell")
expect_eq(native:console(), "cli  -> IF=0\nsti  -> IF=1\npopf -> IF=0\n")
expect_eq(calls.cli, 1)
expect_eq(calls.popf, 1)
print("routines called: cli " .. (calls.cli or 0) .. ", sti " .. (calls.sti or 0) .. ", popf " .. (calls.popf or 0))
