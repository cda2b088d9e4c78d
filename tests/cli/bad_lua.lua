local function f(x) return x.y.z end
local m = vlab.machine{}
f({})
