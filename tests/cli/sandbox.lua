print(os, io.open, package, require ~= nil, load)
print(pcall(vlab.read_file, "/etc/passwd"))
print(pcall(vlab.write_file, "x.txt", "hi"))
print(pcall(load, "\27Lua"))
