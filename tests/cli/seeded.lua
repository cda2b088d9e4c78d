-- math.random is seeded from --seed only
print(math.random(1, 1000000), math.random(1, 1000000))
local t = {b = 1, a = 2, [3] = "x", c = 3}
local keys = {}
for k in pairs(t) do keys[#keys + 1] = tostring(k) end
print(table.concat(keys, " "))
