--[[ Slide: "x86 Same ISA Problems (2/3)" -- "Old solution: patch all binary
     code! Replace these critical instructions with explicit traps to Kernel
     Mode"   (Large Systems, Week 1 L2: Virtualization part 2)

A guest kernel (tiny/critical.s) turns interrupts off with cli, on with sti,
and off again with popf, and prints what pushf shows each time.  On the
classic x86 it runs in a VM twice:

  * trap-and-emulate: cli and sti trap and are emulated, but popf in ring 1
    runs WITHOUT a trap and silently keeps the interrupt flag, and pushf
    shows the real flags: the guest prints "popf -> IF=1" -- wrong;
  * binary translation (VMware): before any kernel code runs, the translator
    scans its page and rewrites every critical instruction -- popf and pushf
    included -- into a callout ("hv: translated kernel code page ...",
    "hv: callout from translated code ..."), so nothing sensitive ever runs
    unseen, without a single trap: the guest prints what it prints on bare
    metal.

    vlab slides-examples/06-binary-translation.lua --show traps,exits,notes
]]
-- vlab-test: --show traps,exits,sched,sens,notes

local function run(technique)
  if technique == "native" then
    local m = vlab.machine{ name = "bare metal" }
    m:load_file("tiny/critical.s")
    m:run()
    return m:console()
  end
  local hv = vlab.hypervisor{ name = technique .. " host", memory = 4 * 1024 * 1024 }
  local vm = hv:vm{ name = "guest", technique = technique }
  vm:load_file("tiny/critical.s")
  expect_eq(hv:run().reason, "halt")
  return vm:console(), vm:stats()
end

local native = run("native")
local te, ts = run("trap-and-emulate")
local bt, bs = run("binary-translation")
print("bare metal:\n" .. native)
print("trap-and-emulate (" .. ts.exits .. " exits):\n" .. te)
print("binary translation (" .. bs.exits .. " exits, " .. bs.callouts .. " callouts, "
      .. bs.translations .. " page translated):\n" .. bt)
expect_eq(bt, native, "binary translation: the guest cannot tell")
if vlab.policy == "x86" then
  expect(te:find("popf -> IF=1", 1, true), "trap-and-emulate on x86: popf silently failed")
end
