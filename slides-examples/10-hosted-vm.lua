--[[ Slides: "Native and Hosted VMs", "VMware Workstation", "VMware Architecture", "VMware I/O"

A hosted (type 2) VMM, as VMware Workstation (Sugerman, Venkitachalam & Lim,
USENIX 2001).  The machine belongs to a host OS; VMApp, an ordinary process
of it, asks the host OS's VMDriver to run the VM, and VMDriver performs a
*world switch* into the VMM, which runs the guest.  When the guest writes to
its console, the VMM world-switches back to the host: VMApp does an ordinary
write() on the host OS, and the host OS drives the real console.  Cheap
device registers (here: the timer) the VMM handles itself, without the
round trip -- the paper's optimisation; turn it off and every timer read
goes through VMApp too.

The same guest runs three times: under a native (type 1) hypervisor, hosted,
and hosted without the optimisation.  Same guest output every time; different
paths and cycles.  The host world is real code: scenarios/guests/hosted/host.s.

    vlab slides-examples/10-hosted-vm.lua --show notes,exits
    vlab export slides-examples/10-hosted-vm.lua --view traps --machine 1 --from 60 --to 140 -o vmware-io.svg

What to observe: "world switch to the host: VMApp does vm 0's console write",
the host OS's and VMApp's own instructions (ring column h0 / h3), "VMDriver
switches back", and the three summaries' world switches and cycles.
]]
-- vlab-test: --show notes,exits

local guest = [[
        .org 0x1000
start:  li    r5, 0
poll:   in    r1, 0x40          ; read the timer: a cheap device register
        addi  r5, 1
        cmpi  r5, 20
        jl    poll
        li    r1, msg
        li    r2, msg_end - msg
put:    ldb   r3, [r1]          ; write a line to the console, byte by byte
        out   0x3f8, r3
        addi  r1, 1
        addi  r2, -1
        cmpi  r2, 0
        jg    put
        cli
        hlt
msg:    .ascii "hi from the guest\n"
msg_end:
]]

local function run(name, hosted, cheap)
    local hv = vlab.hypervisor{ name = name, hosted = hosted, cheap_in_vmm = cheap,
                                memory = 1024 * 1024, policy = "strict" }
    local vm = hv:vm{ name = "guest", memory = 64 * 1024 }
    vm:load(guest)
    hv:run()
    return hv, vm
end

local native, vm1 = run("type 1", false)
local hosted, vm2 = run("hosted", true, true)
local slow, vm3 = run("hosted, no optimisation", true, false)

expect(vm1:console() == "hi from the guest\n", "the guest's output")
expect(vm2:console() == vm1:console() and vm3:console() == vm1:console(), "the same output on every path")
local bytes = #vm1:console()
expect(vm1:stats().world_switches == 0, "a native hypervisor owns the devices: no world switch")
expect(vm2:stats().world_switches == 2 * bytes, "hosted: there and back for every console byte")
expect(vm3:stats().world_switches == 2 * (bytes + 20), "and for every timer read without the optimisation")
for _, r in ipairs{ { "type 1", vm1 }, { "hosted", vm2 }, { "hosted, no optimisation", vm3 } } do
    local st = r[2]:stats()
    print(string.format("%-24s %5d world switches, %8d cycles in the VM", r[1], st.world_switches, st.cpu_cycles))
end
