--[[ Slides: "Same ISA VMs (cont'd)" -- "Guest OS runs in CPU User Mode ... the
     Hypervisor in Kernel Mode then emulates the privileged instruction" --
     and "x86 Same ISA Problems (1/3)": "VM: OS no longer in kernel mode!"
     (Large Systems, Week 1 L2: Virtualization part 2)

The kernel and the user program of example 02 -- unchanged -- now run inside
a virtual machine.  A hypervisor deprivileges the guest kernel to ring 1
(ring compression) and keeps a virtual CPU for it: a virtual ring, a virtual
interrupt flag, virtual control registers, a virtual console and timer.
Every privileged instruction of the guest kernel traps into the hypervisor,
which emulates it on that virtual state ("hv: emulated ..."); every system
call and fault of the guest is reflected into the guest kernel's own vector
table ("hv: reflected ...").  Guest memory is a set of host frames, reached
through shadow page tables ("hv: shadow page table ...").

Run it under both policies and compare with example 02:

    vlab slides-examples/03-trap-and-emulate.lua --policy strict --show traps,exits,sens,notes
    vlab slides-examples/03-trap-and-emulate.lua --policy x86 --show traps,exits,sens,notes

What to observe:
  * strict: the guest's console output is the same as on bare metal
    (equivalence), only the cycle count grows: every `out`, `iret` and
    `wrcr` of the guest kernel is now an exit to the hypervisor;
  * x86: smsw does not trap, so the hypervisor cannot give the guest its
    virtual status word: the program reads the REAL one, 0x80000003 -- ring 3,
    and paging on (bit 31), which the guest never turned on: the hypervisor
    runs it on shadow page tables.  The guest can tell it is in a VM, and its
    output is no longer what it prints on bare metal: equivalence is lost.
    (In ring 1, the guest kernel's own pushf/smsw would show ring 1, and its
    popf would silently keep interrupts on -- see scenarios/ for that race.)
]]
-- vlab-test: --policy strict
-- vlab-test: --policy x86

local function console_of(technique)
  if technique == "native" then
    local m = vlab.machine{ name = "bare metal" }
    m:load_file("tiny/kernel.s")
    m:load_file("tiny/sensitive-user.s", { entry = false })
    local r = m:run()
    expect_eq(r.reason, "halt")
    return m:console(), m.cycles
  end
  local hv = vlab.hypervisor{ name = "host", memory = 4 * 1024 * 1024 }
  local vm = hv:vm{ name = "guest", memory = 1024 * 1024, technique = technique, kernel_ring = 1 }
  vm:load_file("tiny/kernel.s")
  vm:load_file("tiny/sensitive-user.s", { entry = false })
  local r = hv:run()
  expect_eq(r.reason, "halt")
  expect(vm.done, "the guest kernel halted")
  return vm:console(), hv.cycles, vm:stats()
end

local native, native_cycles = console_of("native")
local virt, virt_cycles, stats = console_of("trap-and-emulate")
print("native:           " .. native_cycles .. " cycles")
print("trap-and-emulate: " .. virt_cycles .. " cycles, " .. stats.exits .. " exits, "
      .. stats.emulations .. " emulated, " .. stats.reflections .. " reflected")
expect(virt_cycles > native_cycles, "the VM is slower: every privileged instruction is an exit")
if vlab.policy == "strict" then
  expect_eq(virt, native, "equivalence: the guest prints what it prints on bare metal")
else
  expect(native:find("smsw in ring 3 read: 0x00000003", 1, true), "bare metal: ring 3, paging off")
  expect(virt:find("smsw in ring 3 read: 0x80000003", 1, true), "in the VM: the real status leaks")
  print("x86: the guest saw the real machine status -- equivalence is lost")
end
