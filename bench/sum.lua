-- bench/sum.lua -- the benchmark scenario: vlab bench/sum.lua --quiet -- N paging|flat
local n = math.tointeger(tonumber(vlab.args[1] or "50000000"))
local paging = (vlab.args[2] or "paging") == "paging"
local m = vlab.machine{ name = "bench", memory = 8 * 1024 * 1024 }
m:load_file("sum.s")
m.r3 = n
m.r8 = paging and 1 or 0
local r = m:run()
expect_eq(r.reason, "halt")
expect_eq(m.r1, (n * (n - 1) // 2) & 0xffffffff, "the guest's sum")
print(m.steps)
