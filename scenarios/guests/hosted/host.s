; hosted/host.s -- the host world of a hosted VMM, as in VMware Workstation
; (Sugerman, Venkitachalam & Lim, USENIX 2001): a host OS and VMApp.
;
; The physical machine runs this host OS natively, in ring 0.  VMApp is an
; ordinary user process of it (ring 3).  To run the VM, VMApp asks the host
; OS's VMDriver (system call 2, an ioctl): VMDriver performs the *world
; switch* into the VMM (the C hypervisor takes the CPU at `world_switch`,
; hypervisor/hosted.c) and the guest runs.  When the guest touches a device
; the VMM does not handle itself, the VMM writes a request into VMDriver's
; shared block and switches back: the ioctl returns to VMApp, which does
; ordinary system calls on the host OS -- and the host OS drives the real
; devices.  Then VMApp asks to run the VM again.
;   - a console byte: write() (system call 1), the host's console;
;   - a disk request: read() or write() on the VM's disk (system calls 3
;     and 4).  The host OS's driver programs the host machine's own disk
;     controller (ports 0x1f0-0x1f5, docs/devices.md) with VMApp's buffer
;     and waits in hlt, interrupts on, for its completion interrupt (IRQ 14,
;     vector 46); the handler acknowledges it and keeps the status.  The
;     data stays in VMApp's buffer, where the VMM takes it (a read) or put
;     it (a write); VMApp leaves the controller's error code (0: done) in
;     the shared block.
;
; Memory (physical, paging off; the hypervisor keeps 0x10000-0x2ffff for
; the host world): vector table at 0x10000, VMDriver's request block at
; 0x10400, host kernel at 0x11000 (stack below 0x18000), VMApp at 0x20000
; (stack below 0x28000), VMApp's disk buffer 0x28000-0x2ffff (64 sectors).

        .equ VECTORS,    0x10000
        .equ REQ,        0x10400    ; VMDriver's block shared with the VMM
        .equ REQ_KIND,   REQ + 0    ; 1 console byte, 2 another device register, 3 disk
        .equ REQ_PORT,   REQ + 4
        .equ REQ_VALUE,  REQ + 8
        .equ REQ_VM,     REQ + 12
        .equ REQ_CMD,    REQ + 16   ; disk: 1 read, 2 write
        .equ REQ_LBA,    REQ + 20   ;       first sector
        .equ REQ_COUNT,  REQ + 24   ;       sectors (at most 64: the buffer)
        .equ REQ_RESULT, REQ + 28   ;       VMApp's answer: the error code, 0 done
        .equ KIND_CONSOLE, 1
        .equ KIND_DISK,  3
        .equ KSTACK,     0x18000
        .equ VMAPP,      0x20000
        .equ USTACK,     0x28000
        .equ DISKBUF,    0x28000    ; VMApp's disk buffer (hosted.c: HOSTED_BUF)
        .equ CONSOLE,    0x3f8
        .equ DISK_CMD,   0x1f0      ; the host machine's disk controller
        .equ DISK_STATUS, 0x1f1
        .equ DISK_LBA,   0x1f2
        .equ DISK_COUNT, 0x1f3
        .equ DISK_ADDR,  0x1f4
        .equ DISK_VECTOR, 46        ; IRQ 14
        .equ SYS_WRITE,  1
        .equ SYS_RUN_VM, 2
        .equ SYS_READ_DISK,  3
        .equ SYS_WRITE_DISK, 4

; ---- the host OS kernel (ring 0) -------------------------------------------
        .org 0x11000
start:  li    sp, KSTACK
        li    r1, VECTORS
        wrcr  vbr, r1
        li    r1, KSTACK
        wrcr  ksp, r1
        li    r1, syscall_entry
        li    r2, VECTORS + 4 * 0x80
        st    [r2], r1              ; vector 0x80: system calls
        li    r1, disk_interrupt
        li    r2, VECTORS + 4 * DISK_VECTOR
        st    [r2], r1              ; vector 46: the disk's completion
        li    r1, msg_boot
        li    r2, msg_boot_end - msg_boot
        call  kwrite
        ; start VMApp in ring 3: a trap frame (old sp, ring, flags, pc, error)
        li    r1, USTACK
        push  r1
        li    r1, 3
        push  r1
        li    r1, 0
        push  r1
        li    r1, VMAPP
        push  r1
        li    r1, 0
        push  r1
        iret

syscall_entry:
        cmpi  r0, SYS_WRITE
        je    sys_write
        cmpi  r0, SYS_RUN_VM
        je    vmdriver_run
        cmpi  r0, SYS_READ_DISK
        je    sys_read_disk
        cmpi  r0, SYS_WRITE_DISK
        je    sys_write_disk
        li    r0, -1
        iret

sys_write:                          ; write(r1 = address, r2 = length): the host's console
        call  kwrite
        mov   r0, r2
        iret

kwrite: mov   r3, r1                ; out bytes [r1, r1 + r2) to the console
        add   r3, r2
kw_loop:
        cmp   r1, r3
        jae   kw_done
        ldb   r4, [r1]
        out   CONSOLE, r4
        addi  r1, 1
        jmp   kw_loop
kw_done:
        ret

; read(r1 = buffer, r2 = sectors, r3 = first sector) / write(...) on the
; disk: the driver.  -> r0 = 0, or the controller's error code.
sys_read_disk:
        li    r4, 1                 ; the controller's read command
        jmp   disk_rw
sys_write_disk:
        li    r4, 2                 ; write
disk_rw:
        li    r5, disk_done
        li    r6, 0
        st    [r5], r6
        out   DISK_LBA, r3
        out   DISK_COUNT, r2
        out   DISK_ADDR, r1         ; DMA to or from VMApp's buffer (paging off: physical)
        out   DISK_CMD, r4          ; the physical disk starts
        sti                         ; the host takes interrupts while it waits
disk_wait:
        ld    r6, [r5]
        cmpi  r6, 0
        jne   disk_woke
disk_idle:
        hlt                         ; idle until the disk's interrupt
        jmp   disk_wait
disk_woke:
        cli
        li    r5, disk_status
        ld    r0, [r5]
        iret

; IRQ 14: acknowledge, keep the error code, wake the waiter.  An interrupt
; taken just before the waiter's hlt moves it past the hlt: no lost
; wake-up (the CPU looks for interrupts right after sti, before hlt).
disk_interrupt:
        push  r1
        push  r2
        in    r1, DISK_STATUS
        out   DISK_STATUS, r1       ; acknowledge
        shri  r1, 8                 ; the error code: status bits 8-15
        andi  r1, 0xff
        li    r2, disk_status
        st    [r2], r1
        li    r2, disk_done
        li    r1, 1
        st    [r2], r1
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

; VMDriver: ioctl(RUN_VM).  The world switch into the VMM happens at
; world_switch (the hypervisor takes the CPU before this instruction runs);
; when the VMM switches back, execution goes on after it with a request in
; the shared block, and the ioctl returns to VMApp.
vmdriver_run:
world_switch:
        nop
        iret

msg_boot:
        .ascii "host OS up\n"
msg_boot_end:
        .align 4
disk_done:
        .word 0
disk_status:
        .word 0

; ---- VMApp: a user process of the host OS (ring 3) -------------------------
        .org VMAPP
vmapp:  li    r0, SYS_WRITE
        li    r1, msg_power
        li    r2, msg_power_end - msg_power
        syscall
run:    li    r0, SYS_RUN_VM        ; ioctl(VMDriver, RUN): the guest runs until it needs us
        syscall
        li    r5, REQ_KIND
        ld    r1, [r5]
        cmpi  r1, KIND_DISK
        je    disk
        cmpi  r1, KIND_CONSOLE
        jne   run                   ; a device register the VMM's device model answered
        li    r5, REQ_VALUE         ; the guest wrote a byte to its console:
        ld    r2, [r5]
        li    r1, outbyte
        stb   [r1], r2
        li    r0, SYS_WRITE         ; an ordinary write() to the host OS
        li    r2, 1
        syscall
        jmp   run
disk:   li    r5, REQ_CMD           ; the guest's disk request:
        ld    r4, [r5]
        li    r5, REQ_LBA
        ld    r3, [r5]
        li    r5, REQ_COUNT
        ld    r2, [r5]
        li    r1, DISKBUF
        li    r0, SYS_READ_DISK
        cmpi  r4, 1
        je    disk_call
        li    r0, SYS_WRITE_DISK
disk_call:
        syscall                     ; an ordinary read() / write() on the VM's disk
        li    r5, REQ_RESULT
        st    [r5], r0              ; the outcome, for the VMM
        jmp   run

msg_power:
        .ascii "VMApp: power on\n"
msg_power_end:
outbyte:
        .byte 0
