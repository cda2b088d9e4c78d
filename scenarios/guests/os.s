; os.s -- vlab-os, a small teaching operating system for the vlab machine.
;
; It boots on the bare machine in ring 0 and
;   * checks which ring it runs in (smsw) and how much memory it has (cpuid),
;     and says what it finds -- inside a VM the answers may be surprising;
;   * fills in its vector table and builds page tables: the kernel is
;     identity-mapped for ring 0 only, and each process gets its own page
;     directory with its own data and stack pages;
;   * runs four user processes round-robin, preempted by the timer
;     (pids 1-3 do honest work, pid 4 misbehaves and gets killed);
;   * offers system calls: write, exit, yield, getpid, sleep, and bump,
;     which adds 1 to a counter shared by all processes;
;   * drives a disk controller when there is one (ports 0x1f0-0x1f5, IRQ 14):
;     disk_read and disk_write sleep the caller until the completion
;     interrupt, and two more processes (pids 5, 6) read and write the disk;
;   * protects the process table with cli/sti, and bump's read-modify-write
;     of the shared counter with pushf/popf (save the flags, load flags with
;     IF = 0, ..., restore the flags);
;   * when every process has exited, prints the shared counter and halts.
;
; The same image is meant to run natively and, unchanged, inside a VM.
; scenarios/guests/README.md has the memory map, the system call ABI and a
; walk through the code; scenarios/guest-os-native.lua boots it.
;
; The parts, in the order they are assembled:
;   os/defs.s     constants: memory map, trap frame, process table, syscalls
;   os/boot.s     start: vectors, ring and memory checks, paging, processes
;   os/trap.s     vector stubs, saving and restoring registers, faults
;   os/sched.s    timer interrupt, round-robin scheduler, context switch
;   os/syscall.s  the system calls, with the shared counter's critical section
;   os/disk.s     the disk driver: disk_read/disk_write, the completion interrupt
;   os/kprint.s   the kernel's console output: strings, decimal, hex
;   os/data.s     the kernel's variables (page 6)
;   os/user.s     the user program, one image run by every process

        .include "os/defs.s"

        .org KTEXT
        .include "os/boot.s"
        .include "os/trap.s"
        .include "os/sched.s"
        .include "os/syscall.s"
        .include "os/disk.s"
        .include "os/kprint.s"
kernel_text_end:                        ; below KDATA: if the code grew into the data page,
                                        ; the assembler would report overlapping bytes

        .org KDATA
        .include "os/data.s"

        .org USER_CODE
        .include "os/user.s"
