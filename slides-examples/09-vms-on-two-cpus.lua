--[[ Slides: "Example: App Scheduling with VMs" (Large Systems, Week 1 L2), on two CPUs

More virtual CPUs than physical ones.  Three VMs, one vCPU each, share a
machine with two physical CPUs: the hypervisor keeps one run queue for both
CPUs, gives each CPU a VM for a slice, and when a slice ends the VM goes back
to the queue and may come back on the other CPU (migration).  Each VM runs
vlab-os, so inside every VM slice the guest kernel schedules its own
processes on its virtual timer: two levels of scheduling, on two CPUs.

The same three VMs on one CPU take about twice as long: each VM gets a
third of a CPU there, and two thirds of one here.

    vlab slides-examples/09-vms-on-two-cpus.lua --show notes,sched
    vlab export slides-examples/09-vms-on-two-cpus.lua --view schedule -o smp.svg

What to observe: "-- cpu N" lines as the CPUs take turns, "hv: vm N runs on
the CPU" on each, the per-CPU lines of the summary, and the elapsed cycles
of one CPU against two.
]]
-- vlab-test: --show notes,sched

local function machine(cpus)
    local hv = vlab.hypervisor{ cpus = cpus, memory = 4 * 1024 * 1024, policy = "strict",
                                name = cpus .. " CPU" .. (cpus > 1 and "s" or "") }
    local vms = {}
    for i = 1, 3 do
        vms[i] = hv:vm{ name = "vm" .. i, memory = 256 * 1024 }
        vms[i]:load_file("os.s")
    end
    return hv, vms
end

local one, vms1 = machine(1)
one:run()
local two, vms2 = machine(2)
two:run()
-- The guests' processes interleave differently (their timer ticks fall
-- elsewhere), but each guest's result is the same: strict policy, no race.
for i = 1, 3 do
    expect(vms1[i].done and vms2[i].done, "every VM finished")
    expect(vms2[i]:console():find("shared counter = 60 (expected 60)", 1, true), "the guest's own result")
end
for i = 1, 3 do
    local st = vms2[i]:stats()
    print(string.format("vm%d: %d slices on two CPUs, %d of them on another CPU than the slice before",
                        i, st.slices, st.migrations))
end
print(string.format("three VMs on one CPU: %d cycles; on two CPUs: %d cycles (%.2fx faster)",
                    one.cycles, two.cycles, one.cycles / two.cycles))
expect(one.cycles / two.cycles > 1.8, "two CPUs finish the same work in about half the time")
