local m = vlab.machine{}
m:load("start: jmp start")
m:run()
