--[[ scenarios/guest-os-native.lua -- vlab-os on the bare machine.

vlab-os (scenarios/guests/os.s, described in scenarios/guests/README.md) is
the guest operating system of the hypervisor lessons: the same image will
run, unchanged, inside VMs.  Here it runs natively, as the reference.

It boots in ring 0, checks its ring with smsw and its memory with cpuid,
builds one address space per process, turns paging on, and runs four user
processes round-robin on timer interrupts.  Processes 1-3 each call the
bump() system call 20 times, which adds 1 to a counter in kernel memory
inside a critical section guarded by pushf/popf.  Process 4 misbehaves: the
kernel refuses its write() of a kernel address, and kills it when it reads
kernel memory.  The machine has a disk (a scratch image, vlab.disk), so two
more processes run: process 5 reads sectors 0-1 and prints the line it finds
there, and asks for a sector past the end of the disk (the controller says
no); process 6 writes a line into sector 4, reads it back, and offers the
kernel a buffer in kernel memory (refused).  While they wait for the disk
(their state is ST_DISKWAIT), the others run.  When everybody has exited the
kernel prints the counter and halts.

What to observe (the whole trace is long; pick event classes):
  vlab scenarios/guest-os-native.lua --show traps
      ">> interrupt timer (vector 0x20) at ring 3": preemption; at ring 0:
      a system call preempted inside the kernel (never inside bump()'s
      critical section, whose popf really turns interrupts off in ring 0);
      ">> trap syscall" / "<< iret": every system call;
      ">> trap #PF ... at 0x000060a8 from ring 3": process 4 touching the
      kernel, the only fault of the run.
  vlab scenarios/guest-os-native.lua --show io
      every byte on the console, the timer being programmed (port 0x40), and
      the disk: the driver's outs to ports 0x1f2-0x1f0, "disk: read request",
      "disk: DMA ...", "... done; completion interrupt", and the handler's
      in/out on the status port 0x1f1.
  vlab scenarios/guest-os-native.lua --quiet
      just what this scenario prints.
On the bare machine the shared counter is exactly 3 x 20 = 60.  Inside a VM
that runs the kernel deprivileged under the x86 policy, popf cannot turn
interrupts off, and the counter comes out short.
]]

-- vlab-test: --show traps,sens,notes

local KIB = 1024
local DISK_TEXT = "vlab-os reads its disk: hello from sector 0\n"
local disk = vlab.disk{ sectors = 64 }             -- a scratch image, gone after the run
disk:write(0, DISK_TEXT)
local m = vlab.machine{ name = "bare metal", memory = 256 * KIB }
m:attach_disk(disk)                                -- ports 0x1f0-0x1f5, IRQ 14
local os_sym = m:load_file("guests/os.s")        -- the guest library; pc = start

m:note("vlab-os boots on the bare machine")
local r = m:run()
expect_eq(r.reason, "halt", "the kernel halts the machine when every process has exited")
expect_eq(m.ring, 0, "it halts in ring 0")
expect_eq(m.interrupts, false, "with interrupts off (cli; hlt)")
expect(m:cr("status") & 0x80000000 ~= 0, "paging is on")

-- The console, exactly.  Lines from different processes interleave as the
-- timer preempts them; the machine is deterministic, so the order is fixed.
expect_eq(m:console(), [[
os: vlab-os booting
os: running in ring 0
os: cpuid says 256 KiB of memory
os: disk of 64 sectors
os: paging on, 6 processes, timer every 10000 cycles
proc 1: hello, I am process 1
proc 2: hello, I am process 2
proc 3: hello, I am process 3
proc 4: hello, I am process 4
proc 5: hello, I am process 5
proc 4: write() from a kernel address was refused
proc 6: hello, I am process 6
proc 2: bumping the shared counter
proc 3: bumping the shared counter
proc 1: bumping the shared counter
proc 4: then I read the shared counter myself...
proc 5: sector 0 of the disk says: vlab-os reads its disk: hello from sector 0
os: process 4 killed: #PF at 0x000060a8
proc 3: done bumping, going to sleep
proc 1: done bumping, going to sleep
proc 5: reading past the end of the disk failed, as it should
proc 2: done bumping, going to sleep
os: process 5 exited with code 105
proc 6: wrote sector 4, read it back: vlab-os process 6 was here
proc 6: a disk read into kernel memory was refused
proc 3: awake again, goodbye
os: process 6 exited with code 106
os: process 3 exited with code 103
proc 1: awake again, goodbye
os: process 1 exited with code 101
proc 2: awake again, goodbye
os: process 2 exited with code 102
os: all processes exited
os: shared counter = 60 (expected 60)
]], "the console output")

-- The shared counter and the number of bump() calls, in kernel memory.
local WORKERS, BUMPS = 3, 20
expect_eq(m:read32("shared_counter"), WORKERS * BUMPS, "no update of the shared counter was lost")
expect_eq(m:read32("bump_calls"), WORKERS * BUMPS, "every worker called bump() 20 times")
expect_eq(m:translate(os_sym.shared_counter), os_sym.shared_counter, "the kernel is identity-mapped")

-- The process table (os/defs.s: 32-byte entries, one per pid).
local P_STATE, P_EXIT, P_SWITCHES, P_KILLED = 0, 20, 24, 28
local EXITED, VEC_PF = 3, 14
local function proc(pid, field) return m:read32(os_sym.proc_table + 32 * pid + field) end
for pid = 1, 3 do
  expect_eq(proc(pid, P_STATE), EXITED, "process " .. pid .. " exited")
  expect_eq(proc(pid, P_EXIT), 100 + pid, "process " .. pid .. "'s exit code")
  expect_eq(proc(pid, P_KILLED), 0, "process " .. pid .. " was not killed")
  expect(proc(pid, P_SWITCHES) >= 3, "process " .. pid .. " was switched in several times")
end
for pid = 5, 6 do
  expect_eq(proc(pid, P_STATE), EXITED, "disk process " .. pid .. " exited")
  expect_eq(proc(pid, P_EXIT), 100 + pid, "disk process " .. pid .. "'s exit code")
end
expect_eq(proc(4, P_STATE), EXITED, "process 4 is gone")
expect_eq(proc(4, P_KILLED), 1 + VEC_PF, "killed by its page fault")
expect_eq(proc(4, P_EXIT), 0xffffffff, "exit code -1")
expect_eq(m:read32("nr_alive"), 0, "nobody is left")

-- Each process's own memory: pid p's frames are at 0x20000 + (p-1) * 0x4000
-- (page directory, page table, data page, stack page).  Its virtual data
-- page 0x11000 maps to its own frame, with P W U.
local function frames(pid) return 0x20000 + (pid - 1) * 0x4000 end
for pid = 1, 6 do
  local pt, data = frames(pid) + 0x1000, frames(pid) + 0x2000
  local pte = m:phys32(pt + 4 * 0x11)
  expect_eq(pte & ~0xfff, data, "process " .. pid .. ": 0x11000 -> its own data frame")
  expect_eq(pte & 7, 7, "process " .. pid .. ": its data page is present, writable, user")
  expect_eq(m:phys32(pt + 4 * 0x06) & 7, 3, "process " .. pid .. ": the kernel data page is not user")
  expect_eq(m:phys32(data + 0), pid, "process " .. pid .. " stored getpid() in its data page")
  if pid <= 3 then
    expect_eq(m:phys32(data + 4), BUMPS, "process " .. pid .. " counted its bump() calls")
  elseif pid >= 5 then -- what its disk calls returned (os/defs.s: U_DISK1 +12, U_DISK2 +16, U_DISK3 +20)
    local results = pid == 5 and { 2, 0xffffffef } or { 1, 1, 0xfffffffe }
    for i, want in ipairs(results) do
      expect_eq(m:phys32(data + 8 + 4 * i), want, "process " .. pid .. "'s disk call " .. i)
    end
  else
    expect_eq(m:phys32(data + 4), 0, "process 4 never bumped")
    expect_eq(m:phys32(data + 8), 0xfffffffe, "process 4's bad write() returned -2")
  end
end

-- The disk: process 5's buffer holds sectors 0-1 (its data page + 0x400),
-- process 6's line is in sector 4 of the image, and every request ended in
-- the completion interrupt, the refused one included.
expect_eq(m:bytes(frames(5) + 0x2400, #DISK_TEXT), DISK_TEXT, "process 5 got sector 0 through DMA and a copy")
expect_eq(disk:read(4):sub(1, 27), "vlab-os process 6 was here\n", "process 6's sector reached the image")
local ds = m:disk()
expect_eq(ds.requests, 4, "four requests: pid 5 reads twice (once past the end), pid 6 writes and reads back")
expect_eq(ds.sectors_read, 3, "sectors 0-1, then sector 4 again")
expect_eq(ds.sectors_written, 1, "sector 4")
expect_eq(ds.failures, 1, "the read past the end")
expect_eq(m:read32("disk_interrupts"), ds.requests, "one completion interrupt per request")

-- Time: ticks, context switches, and the idle loop (sti; hlt) was used.
local ticks, switches, idles = m:read32("ticks"), m:read32("context_switches"), m:read32("idle_waits")
expect(ticks > 0 and switches > 0 and idles > 0, "timer ticks, context switches and idling")

-- A fingerprint of each process's data and stack page, to compare with the
-- same processes run inside a VM.
local function signed(v) return v >= 0x80000000 and v - 0x100000000 or v end
local function page_sum(pa)
  local h = 0
  for a = pa, pa + 0xffc, 4 do h = (h * 31 + m:phys32(a)) & 0xffffffff end
  return vlab.hex(h)
end
print(string.format("%d steps, %d cycles, %d timer ticks, %d context switches, %d idle waits",
                    m.steps, m.cycles, ticks, switches, idles))
print(string.format("disk: %d requests, %d sectors read, %d written, %d failed, %d cycles busy",
                    ds.requests, ds.sectors_read, ds.sectors_written, ds.failures, ds.busy_cycles))
for pid = 1, 6 do
  print(string.format("process %d: state %d, exit code %d, switched in %d times, data %s, stack %s",
                      pid, proc(pid, P_STATE), signed(proc(pid, P_EXIT)), proc(pid, P_SWITCHES),
                      page_sum(frames(pid) + 0x2000), page_sum(frames(pid) + 0x3000)))
end
