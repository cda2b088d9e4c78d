--[[ Slide: "Example: Reading from disk" -- an application asks the OS to
     read a file; the OS's driver programs the disk controller; the disk
     transfers the data and interrupts; the OS hands the data to the
     application.  In a VM every step the guest cannot do itself goes
     through the hypervisor.   (Large Systems, Week 1 L2: Virtualization part 2;
     Sugerman et al., USENIX 2001, "VMware I/O")

A tiny kernel (tiny/disk-kernel.s) and its user program (tiny/disk-user.s)
read sector 0 of a disk and print its first line.  The same two programs run
on bare metal and, unchanged, in a VM by trap-and-emulate, by binary
translation and with VT-x; the disk is a scratch image the scenario fills
first (vlab.disk{sectors = 16}).

    vlab slides-examples/07-reading-from-disk.lua --show traps,exits,io,notes

What to observe, in order (bare metal, then the VMs):
  app -> syscall:     ">> trap syscall (vector 0x80) from ring 3"
  kernel -> driver:   "out port 0x1f2 (disk sector)", 0x1f3, 0x1f4, and
                      "out port 0x1f0 (disk command) <- 0x1"
  the disk:           "disk: read request, 1 sector at sector 0 ..."; the CPU
                      idles in hlt ("until a device's deadline (the disk)")
  DMA, interrupt:     "disk: DMA 512 bytes disk -> physical memory",
                      "... done; completion interrupt",
                      ">> interrupt disk (vector 0x2e)"
  guest handler:      "in port 0x1f1 (disk status)" and the acknowledging out
  app resumes:        "<< iret -> ..., ring 3", then the line on the console.
In the VM, each `out`/`in` of the driver is a trap (trap-and-emulate:
"intercepted by the host", "hv: emulated 'out'"), a callout of the
translated kernel code (binary translation: "callout from translated code:
'out' done on the virtual CPU, no trap") or a VM exit (VT-x: "VM exit: I/O
instruction"), the disk is the hypervisor's device model ("hv:
device model: disk: ... guest-physical"), and the interrupt is injected
("hv: injected virtual interrupt disk") through the guest's own vector table.
Same console, same buffer: only the cycles differ.
]]
-- vlab-test: --show traps,exits,io,notes

local LINE = "Hello, disk!\n"

local function disk()
  local d = vlab.disk{ sectors = 16 }             -- a scratch image, gone after the run
  d:write(0, LINE .. "(the rest of the sector is not printed)\n")
  return d
end

local function run(technique)
  local d = disk()
  if technique == "native" then
    local m = vlab.machine{ name = "bare metal" }
    m:attach_disk(d)
    m:note("bare metal: the kernel's driver programs the disk controller itself")
    m:load_file("tiny/disk-kernel.s")
    m:load_file("tiny/disk-user.s", { entry = false })
    expect_eq(m:run().reason, "halt")
    return m:console(), m.cycles, m:disk(), nil, m:bytes(0x9000, 512)
  end
  local hv = vlab.hypervisor{ name = technique .. " host", memory = 4 * 1024 * 1024 }
  local vm = hv:vm{ name = "guest", technique = technique }
  vm:attach_disk(d)
  vm:load_file("tiny/disk-kernel.s")
  vm:load_file("tiny/disk-user.s", { entry = false })
  expect_eq(hv:run().reason, "halt")
  return vm:console(), hv.cycles, vm:disk(), vm:stats(), vm:bytes(0x9000, 512)
end

local nat, nc, nd, _, nbuf = run("native")
expect_eq(nat, LINE, "the user program printed the first line of sector 0")
expect_eq(nd.requests, 1, "one request")
expect_eq(nd.sectors_read, 1, "one sector read")
expect_eq(nbuf:sub(1, #LINE), LINE, "the DMA buffer holds the sector")

print(string.format("%-17s %8s %6s %10s", "", "cycles", "exits", "injections"))
print(string.format("%-17s %8d %6s %10s", "bare metal", nc, "-", "-"))
for _, t in ipairs{ "trap-and-emulate", "binary-translation", "vt-x" } do
  local con, cycles, dk, st, buf = run(t)
  expect_eq(con, nat, t .. ": the same line as on bare metal")
  expect_eq(buf, nbuf, t .. ": the same bytes in the guest's DMA buffer")
  expect_eq(dk.sectors_read, 1, t .. ": the device model read one sector")
  expect(st.injections >= 1, t .. ": the completion was injected")
  expect(cycles ~= nc, t .. ": only time differs")
  print(string.format("%-17s %8d %6d %10d", t, cycles, st.exits, st.injections))
end
