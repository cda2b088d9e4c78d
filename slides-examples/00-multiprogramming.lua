--[[ Slides: "Example: Windows Multiprogramming" and "Example: Normal App
     Scheduling" (Large Systems, Week 1 L2: Virtualization part 2)

One CPU, and the illusion of processes running in parallel.  vlab-os
(os.s in the guest library scenarios/guests/, the guest operating system of the later slides) boots on the
bare machine and runs four user processes round-robin: its timer interrupts
every 10,000 cycles, and its scheduler then loads the page tables of the
next process (`wrcr ptbr`, an address-space switch) and returns to it with
`iret`.  Each process believes it has the CPU to itself; the console shows
their lines interleaved.

This scenario follows the CPU from one `iret` to the next, notes which
process it returned to (by its page tables), and draws the timeline: one
column per slice of cycles, the digit of the process that held the CPU.

What to observe:
  * the timeline: 1 2 3 4 1 2 3 ... -- one CPU, taken in turns;
  * the console: "proc 2: ..." between two lines of process 1;
  * vlab slides-examples/00-multiprogramming.lua --show sched,traps
    "address space: page tables at ..." is the switch, and the
    ">> interrupt timer" before it is what forced it (preemption);
  * the same timeline drawn by Graphviz:
    vlab export slides-examples/00-multiprogramming.lua --view schedule -o procs.png
    (the process band numbers the kernel's boot page tables 0, so the
    processes are 1-4 there too).
]]
-- vlab-test: --show notes

local m = vlab.machine{ name = "one CPU", memory = 256 * 1024 }
m:load_file("os.s")

local pid_of, npids = {}, 0   -- page-table base -> process number, in order of first run
local slices = {}             -- { start cycle, process }
repeat
  local r = m:run{ ["until"] = "iret" }
  if r.reason == "iret" and m.ring == 3 then
    local ptbr = m:cr("ptbr")
    if not pid_of[ptbr] then
      npids = npids + 1
      pid_of[ptbr] = npids
    end
    local pid = pid_of[ptbr]
    if #slices == 0 or slices[#slices].pid ~= pid then
      slices[#slices + 1] = { at = m.cycles, pid = pid }
    end
  end
until r.reason ~= "iret"
expect_eq(m:console():match("counter = (%d+)"), "60", "vlab-os ran to the end")

-- the CPU time each process got: from the return to it until the next switch
local total, got, turns = m.cycles - slices[1].at, {}, {}
for i, s in ipairs(slices) do
  local to = slices[i + 1] and slices[i + 1].at or m.cycles
  got[s.pid] = (got[s.pid] or 0) + (to - s.at)
  turns[s.pid] = (turns[s.pid] or 0) + 1
end

local WIDTH = 64
local strip = {}
for col = 0, WIDTH - 1 do
  local c = slices[1].at + total * col // WIDTH
  local who = "-"
  for _, s in ipairs(slices) do
    if s.at <= c then who = tostring(s.pid) else break end
  end
  strip[#strip + 1] = who
end
print(string.format("the CPU from cycle %d to %d, one column per %d cycles:", slices[1].at, m.cycles,
                    total // WIDTH))
print("  CPU  " .. table.concat(strip))
for pid = 1, npids do
  print(string.format("  process %d: %2d turns, %4.1f%% of the CPU", pid, turns[pid], 100 * got[pid] / total))
end
print("the console, as the processes wrote it:")
io.write(m:console())

expect_eq(npids, 4, "four user processes")
for pid = 1, 3 do
  expect(turns[pid] > 1, "process " .. pid .. " got the CPU more than once: taken in turns")
end
