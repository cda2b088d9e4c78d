; disk-kernel.s -- the smallest kernel that reads a disk, for the slides
; example "Reading from disk" (slides-examples/07-reading-from-disk.lua).
;
; Like kernel.s it boots in ring 0, fills in its vector table and enters the
; user program in ring 3 with iret.  Its system calls (syscall, vector 0x80):
;
;   r0 = 1  write(r1 = address, r2 = length)      print bytes on the console
;   r0 = 2  exit()                                stop the machine
;   r0 = 5  disk_read(r1 = sector, r2 = buffer)   read one 512-byte sector into
;                                                 the user's buffer -> 512, or -1
;
; disk_read is the whole path of the slide: the driver programs the disk
; controller with `out` (sector, count, the DMA buffer's physical address,
; the command), waits with interrupts on in `hlt`, the controller DMAs the
; sector into the kernel's buffer and raises IRQ 14 (vector 46), the
; interrupt handler acknowledges it and notes that the disk is done, and the
; system call copies the sector to the user and returns.  vlab-os
; (os/disk.s) does the same with processes: there the caller sleeps and the
; others run.  docs/devices.md describes the controller.
;
; Memory: vector table at 0x0, kernel code at 0x1000, kernel stack below
; 0x8000, the DMA buffer at 0x9000, kernel variables at 0xa000, user
; program at 0x10000 (its buffers must lie in [0x10000, 0x20000)), user
; stack below 0x20000.  Paging is off.

        .equ KSTACK,     0x8000
        .equ DMA_BUF,    0x9000
        .equ USER_ENTRY, 0x10000
        .equ USER_END,   0x20000
        .equ USTACK,     0x20000
        .equ CONSOLE,    0x3f8
        .equ FLAG_IF,    0x200
        .equ DISK_CMD,   0x1f0       ; the controller's registers
        .equ DISK_STATUS, 0x1f1
        .equ DISK_LBA,   0x1f2
        .equ DISK_COUNT, 0x1f3
        .equ DISK_ADDR,  0x1f4
        .equ DISK_READ,  1
        .equ DISK_ST_ERROR, 4
        .equ VEC_DISK,   46          ; IRQ 14
        .equ SECTOR,     512

        .org 0x1000
start:  li    sp, KSTACK
        li    r1, 0
        wrcr  vbr, r1               ; the vector table is at physical address 0
        li    r1, KSTACK
        wrcr  ksp, r1               ; traps from ring 3 switch to this stack
        li    r1, syscall_entry
        li    r2, 4 * 0x80
        st    [r2], r1              ; vector 0x80: system calls
        li    r1, disk_interrupt
        li    r2, 4 * VEC_DISK
        st    [r2], r1              ; vector 46: the disk's completion
        li    r1, USTACK            ; enter ring 3 through a hand-made trap frame
        push  r1
        li    r1, 3
        push  r1
        li    r1, FLAG_IF
        push  r1
        li    r1, USER_ENTRY
        push  r1
        li    r1, 0
        push  r1
        iret

; ---- system calls -------------------------------------------------------
syscall_entry:
        cmpi  r0, 1
        je    sys_write
        cmpi  r0, 2
        je    sys_exit
        cmpi  r0, 5
        je    sys_disk_read
        li    r0, -1
        iret

sys_write:                          ; r1 = address, r2 = length
        mov   r3, r1
        add   r3, r2
write_loop:
        cmp   r1, r3
        jae   write_done
        ldb   r4, [r1]
        out   CONSOLE, r4
        addi  r1, 1
        jmp   write_loop
write_done:
        mov   r0, r2
        iret

sys_exit:
        hlt                         ; interrupts are off in a handler: the machine stops

sys_disk_read:                      ; r1 = sector, r2 = the user's buffer
        li    r0, -1
        li    r3, USER_ENTRY        ; never trust a user pointer: the whole
        cmp   r2, r3                ; sector must land in the user's memory
        jb    disk_read_done
        li    r3, USER_END - SECTOR
        cmp   r3, r2
        jb    disk_read_done
        li    r3, disk_done
        li    r4, 0
        st    [r3], r4              ; not done yet
        ; ---- the driver: program the controller ----
        out   DISK_LBA, r1          ; which sector
        li    r3, 1
        out   DISK_COUNT, r3        ; how many
        li    r3, DMA_BUF
        out   DISK_ADDR, r3         ; where the DMA goes (a physical address)
        li    r3, DISK_READ
        out   DISK_CMD, r3          ; go: the controller is busy
        ; ---- wait for its interrupt (nothing else to run here) ----
disk_wait:
        sti
disk_idle:
        hlt                         ; the CPU idles until the disk's interrupt
disk_woke:
        cli
        li    r3, disk_done
        ld    r3, [r3]
        cmpi  r3, 0
        je    disk_wait
        ; ---- the sector is in DMA_BUF: check the status, copy it ----
        li    r3, disk_status
        ld    r3, [r3]
        andi  r3, DISK_ST_ERROR
        cmpi  r3, 0
        jne   disk_read_done        ; r0 = -1: the disk failed
        li    r3, DMA_BUF
        li    r4, DMA_BUF + SECTOR
disk_copy:
        ld    r5, [r3]
        st    [r2], r5
        addi  r3, 4
        addi  r2, 4
        cmp   r3, r4
        jb    disk_copy
        li    r0, SECTOR
disk_read_done:
        iret                        ; the user program goes on

; ---- the disk's completion interrupt (vector 46) ---------------------------
disk_interrupt:
        push  r1
        push  r2
        in    r1, DISK_STATUS       ; done, or error + code
        out   DISK_STATUS, r1       ; acknowledge: the controller drops done/error
        li    r2, disk_status
        st    [r2], r1
        li    r2, disk_done
        li    r1, 1
        st    [r2], r1              ; the waiting system call may go on
        ; The interrupt may come before the hlt, right after the sti: the
        ; CPU looks for interrupts after every system instruction and has
        ; no sti;hlt "shadow" (docs/isa.md), and a disk that completes at
        ; once -- a hosted VMM's, whose host did the I/O during the guest's
        ; `out` (12-hosted-disk.lua) -- does that.  Returning to the hlt
        ; would sleep for good: go on after it instead (no lost wake-up).
        ld    r1, [sp + 12]         ; the interrupted pc (trap frame: error, pc, ...)
        li    r2, disk_idle
        cmp   r1, r2
        jne   disk_irq_out
        li    r1, disk_woke
        st    [sp + 12], r1
disk_irq_out:
        pop   r2
        pop   r1
        iret

; the kernel's variables, in a page of their own: a store into the code's
; page would be self-modifying code to a binary translator
        .org 0xa000
disk_done:   .word 0
disk_status: .word 0
