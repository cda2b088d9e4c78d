-- an expectation that fails names this file and line
local m = vlab.machine{}
m:load("start: li r1, 41\n hlt")
m:run()
expect_eq(m.r1, 42, "r1 after the program")
