--[[ The same guest OS (vlab-os, guests/os.s), unchanged, natively and in
virtual machines -- equivalence as a test (Popek & Goldberg 1974), and the
x86 hole that breaks it (Robin & Irvine 2000).

Every run has a disk (a scratch image with the same line in sector 0), so
vlab-os runs its two disk processes too: one reads, one writes.  For each
run the scenario compares what the guest can see with the native run: the
lines on its console, the final contents of every process's data and stack
pages, and the final contents of its disk.  Only time may differ -- and with it the order in
which the processes' lines come out, since the guest's scheduler runs on its
timer and a VM spends cycles in the hypervisor (Popek & Goldberg's
equivalence excludes timing), so the lines are compared as a set.

    vlab scenarios/guest-os-vm.lua --policy strict
    vlab scenarios/guest-os-vm.lua --policy x86

What to observe:
  * strict: trap-and-emulate (guest kernel in ring 1 or ring 3), binary
    translation and VT-x are all equivalent to bare metal;
  * x86: trap-and-emulate is not -- the kernel finds itself in ring 1, cpuid
    shows the host's memory, and its popf-protected critical section gets
    interrupted, so the shared counter comes out short ("updates were lost");
    binary translation (the kernel's critical instructions become callouts
    before they run) and VT-x (the kernel keeps ring 0) are equivalent again;
  * the cycles: binary translation emulates the console's `out` in software
    and beats bare metal's slow device, as in Adams & Agesen (2006); VT-x
    pays a VM exit for every byte;
  * the disk: in a VM the driver's in/out trap (trap-and-emulate, binary
    translation: a callout) or exit (VT-x), the hypervisor's device model
    does the request on the VM's disk, and the completion is injected; the
    disk ends up the same as on bare metal;
  * VT-x with shadow paging (first-generation VT-x, no EPT) is equivalent
    too, and pays more exits: every page fault, every `wrcr ptbr` of a
    process switch.  The hypervisor keeps one shadow per process (a shadow
    cache), so a switch back to a process finds its shadow still filled.
]]
-- vlab-test: --policy strict --show notes
-- vlab-test: --policy x86 --show notes

local KIB = 1024
local MEM = 256 * KIB
local SECTORS = 64

-- every run gets a disk of its own, the same to start with
local function new_disk()
  local d = vlab.disk{ sectors = SECTORS }
  d:write(0, "the same disk for every run\n")
  return d
end

-- what the guest can see: the console, each process's pages, its disk
local function visible(console, read, disk)
  local pages = {}
  for p = 1, 6 do
    local base = 0x20000 + (p - 1) * 0x4000
    pages[p] = read(base + 0x2000, 0x2000)
  end
  return { console = console, pages = pages, disk = disk:read(0, SECTORS) }
end

local function native()
  local m = vlab.machine{ name = "bare metal", memory = MEM }
  local d = new_disk()
  m:attach_disk(d)
  m:load_file("guests/os.s")
  expect_eq(m:run().reason, "halt")
  return visible(m:console(), function(a, n) return m:bytes(a, n) end, d), m.cycles
end

local function in_vm(technique, ring, paging)
  local hv = vlab.hypervisor{ name = technique .. " host", memory = 4 * 1024 * KIB }
  local vm = hv:vm{ name = "vlab-os", memory = MEM, technique = technique, kernel_ring = ring, paging = paging }
  expect_eq(vm.paging, paging or (technique == "vt-x" and "nested" or "shadow"))
  local d = new_disk()
  vm:attach_disk(d)
  vm:load_file("guests/os.s")
  expect_eq(hv:run().reason, "halt")
  local dk = vm:disk()
  expect_eq(dk.requests, 4, technique .. ": the device model had the guest's four requests")
  return visible(vm:console(), function(a, n) return vm:bytes(a, n) end, d), hv.cycles, vm:stats()
end

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]*\n") do t[#t + 1] = l end
  table.sort(t)
  return table.concat(t)
end

local function same(a, b)
  if lines(a.console) ~= lines(b.console) then return false, "console" end
  for p = 1, 6 do
    if a.pages[p] ~= b.pages[p] then return false, "memory of process " .. p end
  end
  if a.disk ~= b.disk then return false, "disk" end
  return true
end

local base, base_cycles = native()
expect(base.console:find("shared counter = 60 (expected 60)", 1, true), "natively nothing is lost")
expect(base.console:find("proc 5: sector 0 of the disk says: the same disk for every run", 1, true),
       "natively process 5 read the disk")
expect_eq(base.disk:sub(4 * 512 + 1, 4 * 512 + 27), "vlab-os process 6 was here\n", "and process 6 wrote it")
print(string.format("%-36s %10s %7s  %s", "run", "cycles", "exits", "equivalent to bare metal?"))
print(string.format("%-36s %10d %7s  %s", "bare metal", base_cycles, "-", "-"))

local runs = {
  { "trap-and-emulate", 1 }, { "trap-and-emulate", 3 }, { "binary-translation", 1 }, { "vt-x", 0 },
  { "vt-x", 0, "shadow" },
}
for _, r in ipairs(runs) do
  local technique, ring, paging = r[1], r[2], r[3]
  local v, cycles, stats = in_vm(technique, ring == 0 and 1 or ring, paging)
  local ok, why = same(v, base)
  local name = technique .. (technique == "trap-and-emulate" and (" (kernel in ring " .. ring .. ")") or "")
    .. (paging and (" (" .. paging .. " paging)") or "")
  print(string.format("%-36s %10d %7d  %s", name, cycles, stats.exits, ok and "yes" or ("no: " .. why)))
  if vlab.policy == "strict" or technique ~= "trap-and-emulate" then
    expect(ok, name .. " is equivalent to bare metal")
  else
    expect(not ok, name .. " under x86 is not")
    expect(v.console:find("am I virtualized?", 1, true), "the guest notices ring " .. ring)
    expect(v.console:find("updates were lost", 1, true), "the popf race bites")
  end
end
