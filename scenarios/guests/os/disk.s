; os/disk.s -- the disk driver: the disk_read and disk_write system calls,
; and the disk's completion interrupt.  The controller (docs/devices.md) has
; an ATA-like register file on ports 0x1f0-0x1f5 and moves whole 512-byte
; sectors by DMA between the disk and a physical buffer, then raises IRQ 14.
;
; The lecture's "Reading from disk", as this kernel does it:
;   1. a process calls disk_read(sector, count, buf)            (syscall)
;   2. the kernel checks the user's buffer, takes the disk, and programs
;      the controller with `out`: sector, count, the bounce buffer's
;      physical address, and the command                       (driver out)
;   3. the process sleeps (ST_DISKWAIT); the scheduler runs the others
;   4. the controller reads the disk, DMAs into the bounce buffer and
;      raises its interrupt                                     (disk, interrupt)
;   5. disk_interrupt acknowledges it, keeps the status and makes the
;      sleeper READY                                            (guest handler)
;   6. at its next turn the process wakes up inside disk_read, which copies
;      the sectors to the user's buffer and returns             (app resumes)
; In a VM every `in`/`out` of steps 2 and 5 traps or exits to the
; hypervisor, whose device model does step 4 on the VM's disk and injects
; the interrupt.
;
; The DMA goes to a kernel page (DISK_BUF), never to the user's buffer
; directly: the controller works with physical addresses and the user gives
; virtual ones, which may not even be contiguous in physical memory.  The
; kernel copies between the two through the process's own mapping.  One
; request at a time (the bounce buffer is shared): disk_owner is the pid
; whose request is being set up or in flight; a second caller yields until
; it is free.

; ---- disk_read(r1 = sector, r2 = count, r3 = buf) / disk_write(...) -------------------
; r0 = SYS_DISK_READ or SYS_DISK_WRITE.  -> count, ERR_FAULT (-2) if count is
; not 1..DISK_MAX or [buf, buf + count * 512) is not inside the process's data
; and stack pages [USER_DATA, USER_END), ERR_NODEV (-4) without a disk, or
; ERR_DISK - code (-17 .. -23) if the controller reports error `code`.
; Interrupts are on (syscall_entry did sti).  r1-r3 are reloaded from the
; trap frame: the call may come back here after waiting for the disk.
sys_disk:
        ld    r1, [sp + F_R1]           ; sector
        ld    r2, [sp + F_R2]           ; count
        ld    r3, [sp + F_R3]           ; user buffer
        li    r4, disk_sectors
        ld    r4, [r4]
        li    r0, ERR_NODEV
        cmpi  r4, 0
        je    syscall_return
        li    r0, ERR_FAULT
        cmpi  r2, 1
        jb    syscall_return            ; count 0
        li    r4, DISK_MAX
        cmp   r4, r2
        jb    syscall_return            ; count > DISK_MAX
        li    r4, USER_DATA
        cmp   r3, r4
        jb    syscall_return            ; below the data page (code is read-only)
        li    r4, USER_END
        cmp   r3, r4
        jae   syscall_return            ; above the stack page
        mov   r5, r2
        shli  r5, SECTOR_SHIFT          ; r5 = bytes (at most 4 KiB: cannot wrap)
        mov   r6, r3
        add   r6, r5                    ; r6 = end of the buffer
        cmp   r4, r6
        jb    syscall_return            ; the end sticks out

        ; take the disk, or let the others run until it is free
        cli
        li    r4, disk_owner
        ld    r7, [r4]
        cmpi  r7, 0
        je    sys_disk_take
        li    r4, disk_waits
        ld    r7, [r4]
        addi  r7, 1
        st    [r4], r7
        call  schedule                  ; we stay READY: back after the others
        sti
        jmp   sys_disk                  ; and try again
sys_disk_take:
        li    r7, current
        ld    r7, [r7]
        st    [r4], r7                  ; disk_owner = us
        sti

        ld    r0, [sp + F_R0]
        cmpi  r0, SYS_DISK_WRITE
        jne   sys_disk_issue
        ; a write: the user's bytes into the bounce buffer first
        li    r7, DISK_BUF
sys_disk_copy_in:
        ld    r8, [r3]
        st    [r7], r8
        addi  r3, 4
        addi  r7, 4
        addi  r5, -4
        jne   sys_disk_copy_in

sys_disk_issue:
        ; program the controller and sleep until its interrupt.  Interrupts
        ; off from the state change to the sleep, so the completion (which
        ; cannot come before the command anyway) finds us ST_DISKWAIT.
        cli
        li    r4, current
        ld    r4, [r4]
        shli  r4, PROC_SHIFT
        addi  r4, proc_table
        li    r7, ST_DISKWAIT
        st    [r4 + P_STATE], r7
        out   DISK_LBA, r1              ; sector
        out   DISK_COUNT, r2            ; count
        li    r7, DISK_BUF
        out   DISK_ADDR, r7             ; where the DMA goes: the bounce buffer
        li    r7, DISK_READ
        cmpi  r0, SYS_DISK_READ
        je    sys_disk_go
        li    r7, DISK_WRITE
sys_disk_go:
        out   DISK_CMD, r7              ; go: the controller is busy now
        call  schedule                  ; sleep; disk_interrupt wakes us
        sti

        li    r4, disk_status
        ld    r5, [r4]
        mov   r6, r5
        andi  r6, DISK_ST_ERROR
        cmpi  r6, 0
        jne   sys_disk_failed
        ld    r0, [sp + F_R0]
        ld    r2, [sp + F_R2]
        cmpi  r0, SYS_DISK_READ
        jne   sys_disk_done
        ; a read: the sectors from the bounce buffer to the user's buffer
        ld    r3, [sp + F_R3]
        mov   r5, r2
        shli  r5, SECTOR_SHIFT
        li    r7, DISK_BUF
sys_disk_copy_out:
        ld    r8, [r7]
        st    [r3], r8
        addi  r3, 4
        addi  r7, 4
        addi  r5, -4
        jne   sys_disk_copy_out
sys_disk_done:
        mov   r0, r2                    ; sectors transferred
        jmp   sys_disk_release
sys_disk_failed:
        shri  r5, 8
        andi  r5, 0xff                  ; the controller's error code
        li    r0, ERR_DISK
        sub   r0, r5                    ; -16 - code
sys_disk_release:
        li    r4, disk_owner
        li    r5, 0
        st    [r4], r5                  ; the disk is free again
        jmp   syscall_return

; ---- the completion interrupt (IRQ 14, vector 46) -----------------------------------------
; Acknowledge the controller (writing its status register clears done and
; error), keep the status for the sleeper, and make it READY.  It runs at
; its next turn: the interrupt does not preempt whoever is running.
disk_interrupt:                         ; IF = 0
        in    r1, DISK_STATUS
        out   DISK_STATUS, r1           ; acknowledge
        li    r2, disk_status
        st    [r2], r1
        li    r2, disk_interrupts
        ld    r3, [r2]
        addi  r3, 1
        st    [r2], r3
        li    r2, disk_owner
        ld    r3, [r2]
        cmpi  r3, 0
        je    trap_return               ; nobody waits: a stray interrupt
        shli  r3, PROC_SHIFT
        addi  r3, proc_table
        ld    r4, [r3 + P_STATE]
        cmpi  r4, ST_DISKWAIT
        jne   trap_return
        li    r4, ST_READY
        st    [r3 + P_STATE], r4        ; the sleeper can run again
        jmp   trap_return
        .align 4
