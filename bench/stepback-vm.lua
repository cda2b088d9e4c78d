-- bench/stepback-vm.lua -- a long VM run for the TUI's step-back figure inside
-- a VM in `make bench` (stepback_vm_ms):
--   vlab --tui bench/stepback-vm.lua --tui-script "End b b b ... @time"
-- bench/stepback.lua's kernel and user program, run as a guest under
-- trap-and-emulate: every system call, iret, timer tick and privileged
-- instruction of the guest kernel is an exit the hypervisor handles, and the
-- history checkpoints after each (sim/history.h) -- tens of thousands of
-- checkpoints over about 10 million steps (vlab.args[1] outer iterations,
-- default 30000).
local outer = math.tointeger(tonumber(vlab.args[1] or "30000"))
local hv = vlab.hypervisor{ name = "stepback-vm" }
local vm = hv:vm{ technique = "trap-and-emulate" }
vm:load(string.format([[
        .org 0x1000
start:  li    sp, 0x8000
        li    r1, 0
        wrcr  vbr, r1               ; vector table at 0
        li    r1, sys
        li    r2, 0x200
        st    [r2], r1              ; vector 0x80: system calls
        li    r1, tick
        li    r2, 0x80
        st    [r2], r1              ; vector 32: the timer
        li    r1, 0x8000
        wrcr  ksp, r1
        li    r1, 20000
        out   0x40, r1              ; a tick every 20000 cycles
        li    r1, 0x20000           ; enter the user program: sp, ring 3, IF, pc, error
        push  r1
        li    r1, 3
        push  r1
        li    r1, 0x200
        push  r1
        li    r1, user
        push  r1
        li    r1, 0
        push  r1
        iret
sys:    cmpi  r0, 2
        je    exit
        addi  r9, 1                 ; count the calls
        iret
exit:   hlt                         ; IF is 0 in a handler: the VM stops
tick:   addi  r10, 1                ; count the ticks
        iret

        .org 0x10000
user:   li    r3, %d
outer:  li    r4, 100
inner:  add   r1, r4
        addi  r4, -1
        jne   inner
        li    r0, 1
        syscall
        addi  r3, -1
        jne   outer
        li    r0, 2
        syscall
]], outer))
hv:run()
expect_eq(vm.r9, outer, "one system call per outer iteration")
expect(hv.steps >= 9000000 or outer < 30000, "about 10 million steps")
print(hv.steps)
