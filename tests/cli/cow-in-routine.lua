-- no clone from inside hv:run (an emulation routine)
local hv = vlab.hypervisor{}
local vm = hv:vm{ memory = 64 * 1024 }
vm:load("start: cli\n hlt\n")
hv:emulate("cli", function(v) v:clone() end)
hv:run()
