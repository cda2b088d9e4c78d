-- bench/virt.lua -- a hot loop that never traps, on bare metal or in a VM:
--   vlab bench/virt.lua --quiet -- native|trap-and-emulate|vt-x N
local technique = vlab.args[1] or "native"
local n = math.tointeger(tonumber(vlab.args[2] or "20000000"))
local prog = [[
        .org 0x1000
start:  li    r1, 0
        li    r2, 0
loop:   add   r1, r2
        addi  r2, 1
        cmp   r2, r3
        jl    loop
        hlt
]]
if technique == "native" then
  local m = vlab.machine{}
  m:load(prog)
  m.r3 = n
  expect_eq(m:run().reason, "halt")
  print(m.steps)
else
  local hv = vlab.hypervisor{ memory = 4 * 1024 * 1024, quantum = 100000000 }
  local vm = hv:vm{ technique = technique }
  vm:load(prog)
  vm.r3 = n
  expect_eq(hv:run().reason, "halt")
  expect_eq(vm.r1, (n * (n - 1) // 2) & 0xffffffff)
  print(hv.steps)
end
