--[[ Paravirtualization (Barham et al., "Xen and the Art of Virtualization",
SOSP 2003): the guest kernel knows it runs on a hypervisor and asks it with
hypercalls instead of executing privileged instructions one trap at a time.

The same kernel work (guests/pv/bench.s) -- print a 64-byte line 8 times,
remap 64 pages -- runs unmodified (r7 = 0: `out` a byte at a time, direct
page-table stores) under trap-and-emulate, and paravirtualized (r7 = 1: one
console_write hypercall a line, the 64 page-table updates validated and
applied in ONE batched mmu_update hypercall) on the paravirtual hypervisor.

    vlab scenarios/xen2003.lua --show notes,traps,exits

What to observe: the exits -- about 512 + 64 for the unmodified kernel, 10
or so for the paravirtual one -- and the cycles; both print the same.
]]
-- vlab-test: --show notes

local function run(technique, pv)
  local hv = vlab.hypervisor{ name = technique, memory = 8 * 1024 * 1024 }
  local vm = hv:vm{ name = pv and "paravirtual kernel" or "unmodified kernel", memory = 4 * 1024 * 1024,
                    technique = technique }
  vm:load_file("guests/pv/bench.s")
  vm.r7 = pv and 1 or 0
  expect_eq(hv:run().reason, "halt")
  return vm, hv.cycles
end

local classic, cc = run("trap-and-emulate", false)
local para, pc = run("paravirtual", true)
local sc, sp = classic:stats(), para:stats()
print(string.format("%-34s %9s %7s %11s", "", "cycles", "exits", "hypercalls"))
print(string.format("%-34s %9d %7d %11s", "unmodified kernel, trap-and-emulate", cc, sc.exits, "-"))
print(string.format("%-34s %9d %7d %11d", "paravirtual kernel, hypercalls", pc, sp.exits, sp.hypercalls))
expect_eq(para:console(), classic:console(), "the same output")
expect_eq(classic.r6, 0, "the remapped page reads as zeros")
expect(sp.exits * 10 < sc.exits, "hypercalls: an order of magnitude fewer exits")
expect(pc < cc, "and fewer cycles")
