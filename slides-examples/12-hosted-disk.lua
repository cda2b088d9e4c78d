--[[ Slides: "Native and Hosted VMs", "VMware I/O" -- the same guest disk
     read through a native (type 1) hypervisor and through a hosted one
     (Sugerman, Venkitachalam & Lim, USENIX 2001: VMware Workstation).

The slides' disk kernel (tiny/disk-kernel.s) and its user program
(tiny/disk-user.s) read sector 0 of a disk and print its first line, as in
07-reading-from-disk.lua.  Native: the hypervisor owns the disk; its device
model does the I/O on the VM's disk.  Hosted: the machine belongs to a host
OS, and vm:attach_disk makes the VM's disk the host machine's disk.  When
the guest's driver writes the controller's command register, the VMM
world-switches to the host with the request; VMApp, a process of the host
OS, issues an ordinary read() on the disk; the host OS's driver programs the
host machine's own disk controller and waits in hlt for its interrupt; the
sector lands in VMApp's buffer; VMApp's next ioctl(RUN) switches back, the
VMM copies the sector into the guest's memory and injects the guest's
completion interrupt.  The sector, count and buffer registers and the
status reads the VMM handles itself (cheap_in_vmm); without that, every one
of them is a round trip through the host too.

    vlab slides-examples/12-hosted-disk.lua --show traps,exits,io,notes
    vlab export slides-examples/12-hosted-disk.lua --view traps --machine 1 -o hosted-disk.svg

What to observe on the hosted machine, in order:
  guest app -> guest kernel:  ">> trap syscall (vector 0x80) from ring 3"
  driver out -> trap:         "out port 0x1f0 (disk command)" intercepted,
                              "hv: device model: disk: read request"
  world switch:               "hv: world switch to the host: VMApp does vm 0's disk read(), 1 sector at 0"
  VMApp read():               ring h3 "trap syscall", then the host OS at h0:
                              "out port 0x1f2 (disk sector)" ... "out port 0x1f0 (disk command)"
  physical disk:              "disk: read request, 1 sector at sector 0 into physical 0x00028000",
                              the host idles in hlt "until a device's deadline (the disk)"
  host IRQ -> host OS:        "disk: DMA ... physical memory", ">> interrupt disk (vector 0x2e)" at h0,
                              its "in port 0x1f1 (disk status)" and acknowledging out
  host OS -> VMApp -> switch: "<< iret -> ..., ring 3", VMApp's ioctl, "hv: VMDriver switches back"
  VMM -> injection:           "hv: device model: disk: DMA 512 bytes disk -> guest-physical memory",
                              "hv: injected virtual interrupt disk"
  guest handler -> app:       the guest's "in port 0x1f1", its iret to ring 3, the line on the console.
Same console and buffer on every path; different paths and cycles (the
table at the end).
]]
-- vlab-test: --show traps,exits,io,notes

local LINE = "Hello, disk!\n"

local function run(name, hosted, cheap)
  local d = vlab.disk{ sectors = 16 }             -- a scratch image, gone after the run
  d:write(0, LINE .. "(the rest of the sector is not printed)\n")
  local hv = vlab.hypervisor{ name = name, hosted = hosted, cheap_in_vmm = cheap,
                              memory = 4 * 1024 * 1024 }
  local vm = hv:vm{ name = "guest", technique = "trap-and-emulate" }
  vm:attach_disk(d)
  vm:load_file("tiny/disk-kernel.s")
  vm:load_file("tiny/disk-user.s", { entry = false })
  expect_eq(hv:run().reason, "halt")
  return { con = vm:console(), cycles = hv.cycles, st = vm:stats(), disk = vm:disk(),
           host_disk = hv:host_disk(), buf = vm:bytes(0x9000, 512) }
end

local native = run("type 1", false)
local hosted = run("hosted", true, true)
local slow = run("hosted, no optimisation", true, false)

expect_eq(native.con, LINE, "the user program printed the first line of sector 0")
for _, r in ipairs{ hosted, slow } do
  expect_eq(r.con, native.con, "the same line on every path")
  expect_eq(r.buf, native.buf, "the same bytes in the guest's DMA buffer")
  expect_eq(r.disk.sectors_read, 1, "the guest's controller read one sector")
  expect(r.st.injections >= 1, "the completion was injected")
end
expect_eq(native.st.world_switches, 0, "a native hypervisor owns the disk: no world switch")
expect_eq(native.host_disk, nil, "and the host machine has no disk of its own")
expect_eq(hosted.host_disk.requests, 1, "hosted: the host OS drove the host machine's disk")
expect_eq(hosted.host_disk.sectors_read, 1, "and read the sector for VMApp")
-- hosted: the console line's bytes and the disk command go through VMApp
expect_eq(hosted.st.world_switches, 2 * (#LINE + 1), "there and back per console byte and per disk request")
-- without the optimisation the driver's five other register accesses go too (sector,
-- count, buffer, the status read and its acknowledgement)
expect_eq(slow.st.world_switches, 2 * (#LINE + 1 + 5), "and per disk register without the optimisation")
expect(hosted.cycles > native.cycles and slow.cycles > hosted.cycles, "only time (and the path) differs")

-- the guest's request, from its command to its completion: the device
-- model's latency natively; world switches, VMApp, the host OS and the
-- host's disk when hosted
expect(hosted.disk.busy_cycles > native.disk.busy_cycles, "the request takes longer through the host")

print(string.format("%-24s %15s %10s %14s", "", "world switches", "cycles", "disk request"))
for _, r in ipairs{ { "type 1", native }, { "hosted", hosted }, { "hosted, no optimisation", slow } } do
  print(string.format("%-24s %15d %10d %14d", r[1], r[2].st.world_switches, r[2].cycles, r[2].disk.busy_cycles))
end
