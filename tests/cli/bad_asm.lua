local m = vlab.machine{}
m:load([[
start:  li r1, 5
        add r1, r99
]])
