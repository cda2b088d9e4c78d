-- a clone's name must be a string
local hv = vlab.hypervisor{}
local vm = hv:vm{ memory = 64 * 1024 }
vm:clone{ name = 42 }
