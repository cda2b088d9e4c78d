-- trap handlers from Lua: emulate cli, reflect others
local m = vlab.machine{ policy = "strict" }
m:load([[
start:  li   sp, 0x8000
        li   r1, 0x8000
        wrcr ksp, r1
        li   r1, user
        push r0            ; old sp (unused)
        li   r2, 3
        push r2
        li   r2, 0x200
        push r2
        push r1
        push r0
        iret
user:   cli
        smsw r3
        li   r4, 7
        syscall
]])
local seen = {}
m:on("#GP", function(t)
  seen[#seen + 1] = t.mnem
  if t.mnem == "smsw" then m.r3 = 0 end   -- emulate: pretend to be in ring 0
  return "emulate"
end)
m:on("syscall", function(t) return "stop" end)
local r = m:run()
expect_eq(r.reason, "trap")
expect_eq(table.concat(seen, ","), "cli,smsw")
expect_eq(m.r3, 0)
expect_eq(m.r4, 7)
print("ok")
