-- bench/idle.lua -- N idle VMs (each runs `hlt` with interrupts off):
--   vlab bench/idle.lua --quiet -- N
local n = math.tointeger(tonumber(vlab.args[1] or "100"))
local hv = vlab.hypervisor{ memory = 256 * 1024 * 1024 }
local vms, touched = {}, 0
for i = 1, n do
  local vm = hv:vm{ name = "idle" .. i, memory = 1024 * 1024 }
  vm:load("        .org 0x1000\nstart:  hlt\n")
  vms[i] = vm
end
if n > 0 then expect_eq(hv:run().reason, "halt") end
for i = 1, n do touched = touched + vms[i]:stats().shadow_fills end
print(touched)   -- guest pages the VMs touched
