-- a wrong interpreter routine: sti that forgets the virtual IF; the guest notices
local hv = vlab.hypervisor{ policy = "strict" }
local vm = hv:vm{}
vm:load_file("tiny/critical.s")
hv:emulate("sti", function(vm, trap) return true end)
hv:run()
io.write(vm:console())
