--[[ Slides: "Same ISA VMs (cont'd)" and "x86 Same ISA Problems (2/3)"
     (Large Systems, Week 1 L2: Virtualization part 2)

The same user program runs under two policies for sensitive instructions.
Run it twice and compare:

    vlab slides-examples/02-sensitive-instructions.lua --policy strict
    vlab slides-examples/02-sensitive-instructions.lua --policy x86

The program (tiny/sensitive-user.s) runs in ring 3 and tries:
  1. smsw -- reads the machine status word, whose low bits are the ring;
  2. cli  -- turns interrupts off;
  3. popf -- turns interrupts off the way a kernel's critical section does.

What to observe:
  * strict: every one of them TRAPS (">> trap #GP ... privileged instruction
    'smsw' at ring 3"): sensitive instructions are a subset of the privileged
    ones, Popek & Goldberg's Theorem 1 holds, a hypervisor would see them all.
  * x86: cli traps, but smsw runs and tells the program it is in ring 3
    ("!! sensitive 'smsw' ran at ring 3 without trapping ..."), and popf runs
    WITHOUT a trap while its change to IF is silently dropped -- the kernel's
    report shows IF = 1 after the popf.  A hypervisor never hears of either:
    a guest kernel deprivileged to ring 3 would learn it is not in ring 0, and
    its critical sections would run with interrupts on.
]]

-- vlab-test: --policy x86
-- vlab-test: --policy strict

local m = vlab.machine{ name = "bare metal" }      -- policy: --policy, default x86
m:load_file("tiny/kernel.s")
m:load_file("tiny/sensitive-user.s", { entry = false })

local r = m:run()
expect_eq(r.reason, "halt")

local out = m:console()
if m:policy() == "strict" then
  expect(out:find("smsw in ring 3 read: 0xffffffff", 1, true), "strict: smsw trapped, r5 kept its value")
  local gps = select(2, out:gsub("#GP", ""))
  expect_eq(gps, 3, "strict: smsw, cli and popf all trap")
else
  expect(out:find("smsw in ring 3 read: 0x00000003", 1, true), "x86: smsw reveals ring 3")
  local gps = select(2, out:gsub("#GP", ""))
  expect_eq(gps, 1, "x86: only cli traps")
end
expect(not out:find("IF = 0", 1, true), "user code never turns interrupts off")
