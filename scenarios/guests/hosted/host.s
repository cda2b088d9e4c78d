; hosted/host.s -- the host world of a hosted VMM, as in VMware Workstation
; (Sugerman, Venkitachalam & Lim, USENIX 2001): a host OS and VMApp.
;
; The physical machine runs this host OS natively, in ring 0.  VMApp is an
; ordinary user process of it (ring 3).  To run the VM, VMApp asks the host
; OS's VMDriver (system call 2, an ioctl): VMDriver performs the *world
; switch* into the VMM (the C hypervisor takes the CPU at `world_switch`,
; hypervisor/hosted.c) and the guest runs.  When the guest touches a device
; the VMM does not handle itself, the VMM writes a request into VMDriver's
; shared block and switches back: the ioctl returns to VMApp, which does an
; ordinary write() on the host OS (system call 1) -- and the host OS drives
; the real console.  Then VMApp asks to run the VM again.
;
; Memory (physical, paging off; the hypervisor keeps 0x10000-0x2ffff for
; the host world): vector table at 0x10000, VMDriver's request block at
; 0x10400, host kernel at 0x11000 (stack below 0x18000), VMApp at 0x20000
; (stack below 0x2f000).

        .equ VECTORS,    0x10000
        .equ REQ,        0x10400    ; VMDriver's block shared with the VMM
        .equ REQ_KIND,   REQ + 0    ; 1 console byte, 2 another device register
        .equ REQ_PORT,   REQ + 4
        .equ REQ_VALUE,  REQ + 8
        .equ REQ_VM,     REQ + 12
        .equ KSTACK,     0x18000
        .equ VMAPP,      0x20000
        .equ USTACK,     0x2f000
        .equ CONSOLE,    0x3f8
        .equ SYS_WRITE,  1
        .equ SYS_RUN_VM, 2

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
        cmpi  r1, 1
        jne   run                   ; a device register the VMM's device model answered
        li    r5, REQ_VALUE         ; the guest wrote a byte to its console:
        ld    r2, [r5]
        li    r1, outbyte
        stb   [r1], r2
        li    r0, SYS_WRITE         ; an ordinary write() to the host OS
        li    r2, 1
        syscall
        jmp   run

msg_power:
        .ascii "VMApp: power on\n"
msg_power_end:
outbyte:
        .byte 0
