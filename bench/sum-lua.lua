-- bench/sum-lua.lua -- the same sum in Lua 5.4: lua5.4 bench/sum-lua.lua N
local n = math.tointeger(tonumber(arg[1]))
local s, i = 0, 0
while i < n do
  s = s + i
  i = i + 1
end
print(s)
