-- a guest that jumps into zeroed memory with no vector table: the machine
-- shuts down (triple fault); vlab reports it as an outcome, not a crash
local m = vlab.machine{}
m:load("start: jmp 0x5000")
local r = m:run()
print(r.reason, m.dead)
