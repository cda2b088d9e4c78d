-- the Lua fields of several physical CPUs and of a hosted VMM
local hv = vlab.hypervisor{ cpus = 2, memory = 1024 * 1024 }
local a = hv:vm{ memory = 64 * 1024 }
local b = hv:vm{ memory = 64 * 1024 }
a:load(".org 0x1000\nstart: li r1, 0\nl: addi r1, 1\n cmpi r1, 3000\n jl l\n cli\n hlt\n")
b:load(".org 0x1000\nstart: li r1, 0\nl: addi r1, 1\n cmpi r1, 3000\n jl l\n cli\n hlt\n")
hv:run{ max_steps = 2500 }
print("cpus", hv.cpus, "on", a.cpu, b.cpu)
hv:run()
print("after", a.cpu, b.cpu, a.r1, b.r1)
local h = vlab.hypervisor{ hosted = true, memory = 1024 * 1024 }
print("hosted", h.hosted, h.world_switches, h:cost("world"))
