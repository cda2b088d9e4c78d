--[[ Slide: "Copy-on-Write"   (Large Systems, Week 1 L2: Virtualization part 2)

Copy-on-write memory in a hypervisor, as the model of ../shared/ground-truth.md
puts it: a frame table with a reference count per host frame; sharing maps a
frame read-only in every VM and raises its count; the first write to a
shared page faults, and the hypervisor copies the page when the count is
above one (else it just restores write permission), remaps it writable and
lowers the count.

  1. VM fork (SnowFlock, 2009): a running VM is cloned.  The clone gets a
     copy of the parent's vCPU and shares every one of its frames: it costs
     no memory at all ("cow: vm 0 cloned into vm 1").
  2. Both go on.  The parent writes 1 page, the clone 3: each write to a
     shared page copies it ("cow: vm 0 wrote shared guest page ...: copied
     frame ... to frame ..."); the clone's first page is no longer shared
     when it writes it -- the parent took its own copy -- so it only gets
     write permission back ("write permission restored").  A footprint
     grows only with the pages the VM writes.
  3. Content-based page sharing (Waldspurger, OSDI 2002; Linux KSM): a
     scanner hashes every guest frame, compares candidates in full and
     merges identical ones copy-on-write, freeing the duplicates -- the
     zero pages, and the page both VMs wrote with the same bytes.
  4. A weak hash (the first word of the page) makes different pages collide;
     the full compare keeps them apart.

The same runs under trap-and-emulate (the shadow page tables map a shared
page read-only) and VT-x (the EPT entry is read-only: a write is an EPT
violation) give the same figures.

    vlab slides-examples/08-copy-on-write.lua --show notes,cow
    vlab slides-examples/08-copy-on-write.lua --show exits,cow     (the faults behind each copy)
]]
-- vlab-test: --show notes,cow

local worker = [[
        .org 0x1000
start:  li    r1, 0x10000       ; 8 pages with a pattern: word 0 is 1 in each,
        li    r2, 0             ; word 1 the page's number
fill:   li    r3, 1
        st    [r1], r3
        st    [r1+4], r2
        addi  r1, 0x1000
        addi  r2, 1
        cmpi  r2, 8
        jl    fill
        li    r9, 0
wait:   cmpi  r9, 0             ; spin until the scenario sets r9 ...
        je    wait
        li    r1, 0x20000       ; ... then write r9 pages from 0x20000
        li    r2, 100
        addi  r9, 100
more:   st    [r1], r2
        addi  r1, 0x1000
        addi  r2, 1
        cmp   r2, r9
        jl    more
        hlt
]]

local KIB = 1024

local function show(hv, what, vms)
  local f = hv:frames()
  print(string.format("%-34s %6s %6s %6s %6s", what, "pages", "frames", "own", "copies"))
  for _, vm in ipairs(vms) do
    local fp = vm:footprint()
    print(string.format("  %-32s %6d %6d %6d %6d", vm.name, fp.pages, fp.frames, fp.own, fp.copies))
  end
  print(string.format("  host: %d guest pages in %d frames, sharing saves %d KiB",
                      f.mappings, f.guest, f.saved_kib))
  return f
end

local function run(technique)
  print("---- " .. technique)
  local hv = vlab.hypervisor{ name = technique .. " host", memory = 4 * 1024 * KIB }
  local parent = hv:vm{ name = "parent", memory = 256 * KIB, technique = technique }
  parent:load(worker)
  expect_eq(hv:run{ max_steps = 400 }.reason, "steps") -- it is spinning, on the CPU
  show(hv, "running:", { parent })

  local child = parent:clone{ name = "child" }
  expect_eq(child.parent, parent.id)
  expect_eq(child.pc, parent.pc, "the clone goes on where the parent is")
  local f = show(hv, "cloned:", { parent, child })
  expect_eq(child:footprint().own, 0, "a clone costs no frames")
  expect_eq(f.saved, 64, "every page shared")
  expect(hv:check_frames())

  parent.r9 = 1
  child.r9 = 3
  local before = hv.cycles
  expect_eq(hv:run().reason, "halt")
  f = show(hv, "both wrote:", { parent, child })
  local pf, cf = parent:footprint(), child:footprint()
  expect_eq(pf.copies, 1, "the parent copied the one page it wrote")
  expect_eq(pf.own, 3, "... and is alone on the two originals the clone copied away from")
  expect_eq(cf.own, 3, "the clone owns the three pages it wrote")
  expect_eq(cf.copies, 2, "two of them copied ...")
  expect_eq(cf.restores, 1, "... and one only got write permission back")
  expect_eq(f.saved, 61)
  expect_eq(parent:read32(0x20000), 100)
  expect_eq(child:read32(0x22000), 102)
  expect_eq(parent:read32(0x22000), 0, "the clone's writes are its own")
  print(string.format("  cycles of the run: %d, of it %d for %d page copies (cost 'copy' = %d)",
                      hv.cycles - before, hv:cost("copy") * f.copies, f.copies, hv:cost("copy")))
  expect(hv:check_frames())

  local s = hv:share_pages()
  print(string.format("scan: %d pages, %d compared in full, %d merged, %d frames freed",
                      s.scanned, s.compared, s.merged, s.freed))
  f = show(hv, "after the sharing scan:", { parent, child })
  expect_eq(f.guest, 13, "zero page, code, 8 pattern pages, 3 written (both wrote 100 at 0x20000: one frame)")
  expect(hv:check_frames())

  local weak = hv:share_pages{ hash = "first-word" }
  print(string.format("weak hash: %d hash matches compared in full, %d were collisions, %d merged",
                      weak.compared, weak.collisions, weak.merged))
  expect(weak.collisions >= 7, "the 8 pattern pages share their first word ...")
  expect_eq(weak.merged, 0, "... and the full compare keeps them apart")
  return f
end

local a = run("trap-and-emulate")
local b = run("vt-x")
expect_eq(a.guest, b.guest)
expect_eq(a.saved, b.saved)
