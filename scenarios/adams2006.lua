--[[ Adams & Agesen (ASPLOS 2006), "A comparison of software and hardware
techniques for x86 virtualization" -- their nanobenchmarks, with their
first-generation VT-x costs (vlab.hypervisor{costs = "adams2006"}).

One small kernel (guests/nano/nanobench.s) runs four tests natively, under
binary translation and under VT-x; the table gives the cycles per round.
The paper's direction of results, which this run reproduces:
  * compute-bound work runs near native under both;
  * a system-call loop is cheaper under VT-x: the guest's own vector table
    handles it without leaving the VM, while binary translation reflects
    every one;
  * port I/O is cheaper under binary translation: the translator emulates
    `in` in place, with no trap, while VT-x pays a VM exit each time;
  * page-table writes: under binary translation they are caught and, once a
    store keeps faulting, retranslated into a cheap callout.  First-
    generation VT-x had no EPT: the VMM kept shadow page tables and paid a
    VM exit for each guest page-table write (12,733 cycles in the paper) --
    the "VT-x (shadow)" column, hv:vm{paging = "shadow"}.  With EPT ("VT-x"),
    the guest writes its page tables natively: the advantage nested paging
    brought two years later.

    vlab scenarios/adams2006.lua --quiet
]]
-- vlab-test: --show notes

local tests = { "compute", "syscall", "in", "ptemod" }
local ROUNDS = { compute = 50000, syscall = 200, ["in"] = 200, ptemod = 200 }

local function run(technique, test, paging)
  if technique == "native" then
    local m = vlab.machine{ name = "native " .. tests[test + 1], memory = 1024 * 1024 }
    m:load_file("guests/nano/nanobench.s")
    m.r9, m.r8 = test, ROUNDS[tests[test + 1]]
    local r = m:run()
    return m.cycles
  end
  local hv = vlab.hypervisor{ name = technique, memory = 4 * 1024 * 1024, costs = "adams2006" }
  local vm = hv:vm{ name = tests[test + 1], memory = 1024 * 1024, technique = technique, paging = paging }
  vm:load_file("guests/nano/nanobench.s")
  vm.r9, vm.r8 = test, ROUNDS[tests[test + 1]]
  hv:run()
  expect(vm.done, technique .. " " .. tests[test + 1] .. " finished")
  if paging == "shadow" and tests[test + 1] == "ptemod" then -- each write trapped and emulated once
    expect_eq(vm:stats().pt_writes, ROUNDS.ptemod, "VT-x (shadow): one emulated page-table write per round")
  end
  if technique == "binary-translation" and tests[test + 1] == "ptemod" then
    expect(vm:stats().pt_writes < 10, "BT: the store that keeps faulting is retranslated into a callout")
  end
  return hv.cycles
end

local base = {}
for t = 0, 3 do base[t] = run("native", t) end
print(string.format("%-9s %12s %12s %12s %15s   (cycles per round, boot included)",
                    "test", "native", "BT", "VT-x", "VT-x (shadow)"))
local res = {}
for t = 0, 3 do
  local n, bt, vt = base[t], run("binary-translation", t), run("vt-x", t)
  local vs = run("vt-x", t, "shadow")
  res[tests[t + 1]] = { n = n, bt = bt, vt = vt, vs = vs }
  local k = ROUNDS[tests[t + 1]]
  print(string.format("%-9s %12.1f %12.1f %12.1f %15.1f", tests[t + 1], n / k, bt / k, vt / k, vs / k))
end
local c = res.compute
expect(c.bt < c.n * 1.3 and c.vt < c.n * 1.3, "compute-bound: near native under both")
expect(res.syscall.vt < res.syscall.bt, "system calls: cheaper under VT-x")
expect(res["in"].bt < res["in"].vt, "port I/O: cheaper under binary translation")
expect(res.ptemod.vs > res.ptemod.bt, "page-table writes: dearer under first-generation VT-x than under BT")
expect(res.ptemod.vt < res.ptemod.vs, "page-table writes: EPT removes the exits shadow paging pays")
