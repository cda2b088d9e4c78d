-- docs/examples/isa-programs.lua -- runs the assembly examples of docs/isa.md
-- and checks what the document says about each of them.
-- Run it:  vlab docs/examples/isa-programs.lua --show traps,io,notes
local function run(file)
  local m = vlab.machine{ name = file }
  m:load_file(file)
  local r = m:run()
  expect_eq(r.reason, "halt", file .. " ends in hlt")
  return m
end

local m = run("hello.s")
expect_eq(m:console(), "hello from ring 0\n")

m = run("divzero.s")
expect_eq(m.r3, 7, "divzero.s: the div did not change r3")
-- div 25 + trap delivery 500 + handler (ld 2, addi 1, st 2) + iret 300 + rdtsc 25
expect_eq(m.r10, 855, "divzero.s: cycles of the fault round trip")

m = run("timer.s")
expect_eq(m.r7, 3, "timer.s: three ticks")

m = run("paging.s")
expect_eq(m.r6, 0x1111, "paging.s: first read through the new mapping")
expect_eq(m.r7, 0x1111, "paging.s: the stale TLB entry, before invlpg")
expect_eq(m.r8, 0x2222, "paging.s: after invlpg")
expect_eq(m.r10, 5, "paging.s: #PF error code: protection | user, a read")
expect_eq(m.r12, 0x1000, "paging.s: faddr")
print("all four programs behave as docs/isa.md says")
