--[[ Slides: "Example: App Scheduling with VMs" (Large Systems, Week 1 L2)

Two levels of scheduling.  The hypervisor shares the physical CPU among VMs
in time slices ("hv: vm 1 runs on the CPU"); inside each slice, the guest
kernel shares its virtual CPU among its own processes on its virtual timer.
Here two VMs each run a guest that counts in a loop; with the `share`
scheduler and weights 1 and 3, the second VM gets about three quarters of
the CPU.  A VM waiting in `hlt` gives its slice away at once.

    vlab slides-examples/05-scheduling-vms.lua --show notes,sched

What to observe: the alternation of "hv: vm N runs on the CPU" lines (VM
slices of 20,000 cycles), and the cycles each VM got in the summary.
]]
local counter = [[
        .org 0x1000
start:  li    r1, 0
        li    r2, 300000
loop:   addi  r1, 1
        cmp   r1, r2
        jl    loop
        hlt
]]
-- vlab-test: --show notes,traps,exits,sched

local hv = vlab.hypervisor{ scheduler = "share", quantum = 20000, memory = 4 * 1024 * 1024 }
local a = hv:vm{ name = "light", memory = 64 * 1024, weight = 1 }
local b = hv:vm{ name = "heavy", memory = 64 * 1024, weight = 3 }
a:load(counter)
b:load(counter)
-- run until the heavy VM has finished its count: how far did the light one get?
while not b.done do hv:run{ max_steps = 1000 } end
local sa, sb = a:stats(), b:stats()
local share = sb.cpu_cycles / (sa.cpu_cycles + sb.cpu_cycles)
print(string.format("while 'heavy' counted to 300000, 'light' counted to %d", a.r1))
print(string.format("CPU share of 'heavy': %.0f%% (weight 3 of 4)", share * 100))
expect(share > 0.70 and share < 0.80, "proportional share: about 3/4")
hv:run()
expect(a.done and b.done)
