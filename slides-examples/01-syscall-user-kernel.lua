--[[ Slide: "Recap -- Arrows? What runs in User / Kernel Mode?"
     (Large Systems, Week 1 L2: Virtualization part 2)

A tiny kernel (tiny/kernel.s, in the guest library scenarios/guests/) boots
in ring 0, kernel mode: it fills in its vector table and enters the user program in ring 3, user mode, with iret.
The user program (tiny/hello-user.s) cannot touch the console itself; it asks
the kernel with `syscall`, which TRAPS into ring 0 through vector 0x80.  The
kernel's handler writes the bytes to the console port with `out` -- a
privileged instruction -- and `iret` returns to ring 3.

What to observe in the trace:
  * the ring column: 0 while the kernel boots, 3 in the user program, 0 in
    the system-call handler, 3 again after iret;
  * ">> trap syscall (vector 128) ('syscall' from ring 3) -> handler ..., ring 0":
    the arrow from user mode into kernel mode;
  * "<< iret -> ..., ring 3": the arrow back;
  * every "out port 0x3f8 (console)" happens in ring 0.

Try:  vlab slides-examples/01-syscall-user-kernel.lua --show traps,io
]]

local m = vlab.machine{ name = "bare metal" }
m:load_file("tiny/kernel.s")                       -- pc = its `start` label
m:load_file("tiny/hello-user.s", { entry = false }) -- just the bytes, at 0x10000

local r = m:run()
expect_eq(r.reason, "halt", "the kernel stops the machine when the program exits")
expect_eq(m:console(), "hello from ring 3\n[kernel] user program exited\n")
