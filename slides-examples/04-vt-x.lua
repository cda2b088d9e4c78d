--[[ Slide: "x86 Same ISA Problems (3/3)" -- "New solution: Intel VT-x. Allows
     Guest OS to run in Kernel Mode (Ring 0) ... Using extra mode: VMX Root for
     Hypervisor, VMX Non-root for Guest OS ... Also hardware support for VM
     context switch"   (Large Systems, Week 1 L2: Virtualization part 2)

The kernel and user program of examples 02 and 03 run three ways on the
classic x86 policy: on bare metal, in a VM by trap-and-emulate, and in a VM
with VT-x.  With VT-x the guest kernel keeps ring 0 -- in VMX non-root mode --
so smsw, pushf and popf behave exactly as on bare metal: the holes close,
without changing the guest.  Only what the hypervisor must see leaves the
VM: a VM exit (">> VM exit: I/O instruction ...") for every access to a
device, and for hlt.  The guest's system calls and faults go to its own
vector table without any exit ("g0"/"g3" in the ring column: guest mode).

    vlab slides-examples/04-vt-x.lua --show traps,exits,notes

What to observe:
  * trap-and-emulate under x86: the guest reads the real status (the holes);
  * VT-x: the guest's output equals bare metal again (equivalence);
  * the VT-x summary: exits only for `out` (the console) and `hlt`; the
    system calls ran at native speed inside the VM.
]]

local function run(technique)
  if technique == "native" then
    local m = vlab.machine{ name = "bare metal" }
    m:load_file("tiny/kernel.s")
    m:load_file("tiny/sensitive-user.s", { entry = false })
    expect_eq(m:run().reason, "halt")
    return m:console(), m.cycles, nil
  end
  local hv = vlab.hypervisor{ name = technique .. " host", memory = 4 * 1024 * 1024 }
  local vm = hv:vm{ name = "guest", technique = technique }
  vm:load_file("tiny/kernel.s")
  vm:load_file("tiny/sensitive-user.s", { entry = false })
  expect_eq(hv:run().reason, "halt")
  return vm:console(), hv.cycles, vm:stats()
end

local native, nc = run("native")
local te, tc, ts = run("trap-and-emulate")
local vt, vc, vs = run("vt-x")
print(string.format("%-17s %9s %7s", "", "cycles", "exits"))
print(string.format("%-17s %9d %7s", "native", nc, "-"))
print(string.format("%-17s %9d %7d", "trap-and-emulate", tc, ts.exits))
print(string.format("%-17s %9d %7d", "vt-x", vc, vs.exits))
expect_eq(vt, native, "VT-x: the guest sees what it sees on bare metal")
if vlab.policy == "x86" then
  expect(te ~= native, "trap-and-emulate on x86: the guest can tell")
end
expect_eq(vs.emulated.out, select(2, native:gsub(".", "")), "one exit per console byte")

-- the VT-x VM's VMCS, as the hypervisor left it
local hv = vlab.hypervisor{ name = "vmcs host", memory = 4 * 1024 * 1024 }
local vm = hv:vm{ name = "guest", technique = "vt-x" }
vm:load_file("tiny/kernel.s")
vm:load_file("tiny/hello-user.s", { entry = false })
hv:run()
local vmcs = vm:vmcs()
expect(vmcs.controls.io_exiting and vmcs.controls.ept, "I/O exits; memory through the EPT")
expect_eq(vmcs.exit_reason, 12, "the last exit: hlt (SDM basic exit reason 12)")
print(string.format("VMCS: launched %s, last exit reason %d, guest ring %d, guest ptbr 0x%x",
  tostring(vmcs.launched), vmcs.exit_reason, vmcs.guest.ring, vmcs.guest.ptbr))
