--[[ VM fork of a running guest OS, under every technique: vlab-os
(guests/os.s) is cloned while its processes run, parent and clone finish on
their own, and both print what vlab-os prints on bare metal (Popek &
Goldberg's equivalence holds for the clone too).

The clone shares all of the parent's frames copy-on-write (SnowFlock's VM
fork; Waldspurger 2002 for the copy-on-write model): the table shows how
many pages each side then wrote (copies, and pages whose other sharer had
already copied them, so write permission was simply restored), how many
frames the clone ended up owning, and what sharing still saves -- before
and after one run of the content-based sharing scanner.

    vlab scenarios/vm-fork.lua --show notes
    vlab scenarios/vm-fork.lua --show cow          (every copy and merge)

What to observe:
  * equivalence: both consoles hold bare metal's lines (the clone's console
    starts as a copy of the parent's);
  * the clone owns only the frames it wrote: vlab-os touches its kernel
    data, its stacks and its processes' pages, not its code or free memory;
  * VT-x pays a VM exit (an EPT violation) per copy, the shadow-paging
    techniques a page fault into the hypervisor;
  * the scanner then merges what the two wrote alike, and the zero pages.
]]
-- vlab-test: --show notes

local KIB = 1024
local MEM = 256 * KIB

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]*\n") do t[#t + 1] = l end
  table.sort(t)
  return table.concat(t)
end

-- strict: every sensitive instruction traps, so the guests are equivalent to
-- bare metal (under x86 a deprivileged guest kernel's popf silently keeps
-- interrupts on, its critical section races, and its counter can differ)
local bare = vlab.machine{ name = "bare metal", memory = MEM, policy = "strict" }
bare:load_file("guests/os.s")
expect_eq(bare:run().reason, "halt")
local want = lines(bare:console())

print(string.format("%-26s %8s %7s %7s %7s %9s %9s", "technique", "cycles", "copies", "restore",
                    "clone's", "saved KiB", "after scan"))
local runs = {
  { "trap-and-emulate" }, { "binary-translation" }, { "paravirtual" },
  { "vt-x" }, { "vt-x", "shadow" },
}
for _, r in ipairs(runs) do
  local technique, paging = r[1], r[2]
  local label = technique .. (paging and " (shadow)" or "")
  local hv = vlab.hypervisor{ name = label .. " host", memory = 4 * 1024 * KIB, policy = "strict" }
  local parent = hv:vm{ name = "vlab-os", memory = MEM, technique = technique, paging = paging }
  parent:load_file("guests/os.s")
  expect_eq(hv:run{ max_steps = 6000 }.reason, "steps")
  local child = parent:clone{ name = "fork" }
  expect_eq(hv:run().reason, "halt")
  expect(parent.done and child.done, label .. ": both finished")
  expect_eq(lines(parent:console()), want, label .. ": the parent is equivalent to bare metal")
  expect_eq(lines(child:console()), want, label .. ": the clone is equivalent to bare metal")
  expect(hv:check_frames())
  local f, pf, cf = hv:frames(), parent:footprint(), child:footprint()
  expect(cf.own < cf.pages / 2, label .. ": the clone owns only what it wrote")
  local s = hv:share_pages()
  expect(hv:check_frames())
  print(string.format("%-26s %8d %7d %7d %7d %9d %9d", label, hv.cycles, pf.copies + cf.copies,
                      pf.restores + cf.restores, cf.own, f.saved_kib, hv:frames().saved_kib))
  expect(hv:frames().saved_kib > f.saved_kib, label .. ": the scanner found more to share")
  expect(s.merged > 0 and s.collisions == 0)
end
