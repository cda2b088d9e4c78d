; os/defs.s -- the constants of vlab-os: memory map, page-table bits, trap
; frame layout, process table layout, system call numbers.
;
; Everything that two parts of the kernel (or the kernel and the user
; program) must agree on is defined here, once.  Nothing in this file emits
; bytes.  scenarios/guests/README.md draws the same memory map as a picture.

; ---- physical memory map (the kernel sees it 1:1 once paging is on) --------
        .equ VECTORS,        0x00000    ; vector table: 256 entries of 4 bytes (vbr = 0)
        .equ KTEXT,          0x01000    ; kernel code and read-only data (pages 1-5)
        .equ KTEXT_END,      0x06000
        .equ KDATA,          0x06000    ; kernel data: process table, counters (page 6)
        .equ KSTACKS,        0x07000    ; kernel stacks, 1 KiB per process (page 7; pids 5-6 in page 8)
        .equ KSTACK_SIZE,    0x400      ; the stack of pid p is [KSTACKS + (p-1)*0x400, + 0x400)
        .equ BOOT_STACK_TOP, 0x09000    ; boot stack: page 8 above 0x8800, grows down from here
        .equ KERNEL_PD,      0x09000    ; the kernel's own page directory (boot, then unused)
        .equ KERNEL_PT,      0x0a000    ; ... and its page table
        .equ DISK_BUF,       0x0b000    ; the disk driver's bounce buffer: DMA goes here (page 11)
        .equ KERNEL_END,     0x10000    ; pages 1-15 are the kernel's; page 0 stays unmapped
        .equ USER_CODE_FRAME, 0x10000   ; the user program, one frame shared read-only by all
        .equ PROC_FRAMES,    0x20000    ; pid p owns the 16 KiB at PROC_FRAMES + (p-1)*0x4000:
        .equ PROC_FRAMES_SIZE, 0x4000   ;   +0x0000 page directory, +0x1000 page table,
        .equ PF_PD,          0x0000     ;   +0x2000 data page, +0x3000 stack page
        .equ PF_PT,          0x1000
        .equ PF_DATA,        0x2000
        .equ PF_STACK,       0x3000
        .equ MIN_MEMORY_KIB, 192        ; PROC_FRAMES + 4 * 16 KiB = 0x30000 = 192 KiB
        .equ DISK_MEMORY_KIB, 224       ; ... + 2 more processes (the disk's) = 224 KiB

; ---- the user part of every address space (virtual) ---------------------------
        .equ USER_BASE,      0x10000    ; lowest user address
        .equ USER_CODE,      0x10000    ; code + read-only strings (P U: no W)
        .equ USER_DATA,      0x11000    ; this process's data page (P W U)
        .equ USER_STACK,     0x12000    ; this process's stack page (P W U)
        .equ USER_STACK_TOP, 0x13000
        .equ USER_END,       0x13000    ; first address above the user part

; ---- page-table entry bits (docs/isa.md section 5) -----------------------------
        .equ PTE_P,          0x1        ; present
        .equ PTE_W,          0x2        ; writable
        .equ PTE_U,          0x4        ; user: ring 3 may use it
        .equ STATUS_PG,      0x80000000 ; status bit 31: paging on

; ---- devices and flags ----------------------------------------------------------
        .equ CONSOLE,        0x3f8
        .equ TIMER,          0x40
        .equ TIMER_PERIOD,   10000       ; cycles between two timer interrupts
        .equ FLAG_IF,        0x200      ; FLAGS bit 9: interrupts enabled

; ---- the disk controller (docs/devices.md; hypervisor/disk.h) ---------------------
        .equ DISK_CMD,       0x1f0      ; out: 1 read, 2 write -- starts the request
        .equ DISK_STATUS,    0x1f1      ; in: status; out: acknowledge the interrupt
        .equ DISK_LBA,       0x1f2      ; first sector
        .equ DISK_COUNT,     0x1f3      ; sectors
        .equ DISK_ADDR,      0x1f4      ; buffer (physical address): DMA
        .equ DISK_SIZE,      0x1f5      ; in: sectors on the disk (all ones: no disk)
        .equ DISK_READ,      1
        .equ DISK_WRITE,     2
        .equ DISK_ST_ERROR,  4          ; status: the request failed, the code in bits 8-15
        .equ SECTOR_SHIFT,   9          ; 512-byte sectors
        .equ DISK_MAX,       8          ; sectors per call: the bounce buffer is one page

; ---- vectors -------------------------------------------------------------------
        .equ VEC_DE,         0
        .equ VEC_BP,         3
        .equ VEC_UD,         6
        .equ VEC_DF,         8
        .equ VEC_GP,         13
        .equ VEC_PF,         14
        .equ VEC_MC,         18
        .equ VEC_TIMER,      32
        .equ VEC_DISK,       46         ; IRQ 14: the disk's completion
        .equ VEC_SYSCALL,    0x80

; ---- the trap frame, as the kernel sees it on its stack ---------------------------
; The CPU pushes five words (old sp, old CPL, old FLAGS, return pc, error
; code); the vector stub pushes r0 and trap_common pushes r1..r14.  So in
; every handler, [sp + F_Rn] is the interrupted code's register rn.
        .equ F_R0,           56         ; rn is at F_R0 - 4*n; r14 at 0
        .equ F_R1,           52
        .equ F_R2,           48
        .equ F_R3,           44
        .equ F_ERR,          60         ; error code
        .equ F_PC,           64         ; return pc
        .equ F_FLAGS,        68         ; the interrupted code's FLAGS (IF, CPL copy)
        .equ F_CPL,          72         ; the ring the trap came from
        .equ F_SP,           76         ; the interrupted code's sp
        .equ FRAME_SIZE,     80

; ---- the process table ------------------------------------------------------------
; proc_table has one 32-byte entry per pid, 0..NPROC.  Entry 0 is the boot
; context: it is never READY, so once the first process runs it is never
; resumed.
        .equ NPROC,          6          ; pids 1..6 (5 and 6 only when there is a disk)
        .equ NBASIC,         4          ; pids 1..4 always run
        .equ NWORKERS,       3          ; pids 1..3 count; pid 4 misbehaves
        .equ BAD_PID,        4
        .equ READER_PID,     5          ; reads the disk
        .equ WRITER_PID,     6          ; writes the disk
        .equ PROC_SHIFT,     5          ; entry = proc_table + (pid << 5)
        .equ PROC_SIZE,      1 << PROC_SHIFT
        .equ P_STATE,        0          ; one of the states below
        .equ P_KSP,          4          ; saved kernel sp while switched out
        .equ P_PD,           8          ; physical address of its page directory
        .equ P_KTOP,         12         ; top of its kernel stack (loaded into ksp)
        .equ P_WAKE,         16         ; SLEEPING: the tick at which to wake up
        .equ P_EXIT,         20         ; EXITED: the exit code (-1 if killed)
        .equ P_SWITCHES,     24         ; how many times it was switched in
        .equ P_KILLED,       28         ; 0, or 1 + the vector that killed it

        .equ ST_UNUSED,      0
        .equ ST_READY,       1          ; running or waiting for the CPU
        .equ ST_SLEEPING,    2          ; waiting for a tick (sys_sleep)
        .equ ST_EXITED,      3          ; finished (exit or killed)
        .equ ST_DISKWAIT,    4          ; waiting for the disk's completion interrupt

; ---- system calls: r0 = number, r1, r2 = arguments, result in r0 -------------------
        .equ SYS_WRITE,      1          ; write(buf, len) -> len, or ERR_FAULT
        .equ SYS_EXIT,       2          ; exit(code): does not return
        .equ SYS_YIELD,      3          ; yield() -> 0
        .equ SYS_GETPID,     4          ; getpid() -> pid
        .equ SYS_SLEEP,      5          ; sleep(ticks) -> 0
        .equ SYS_BUMP,       6          ; bump() -> the shared counter after adding 1
        .equ SYS_DISK_READ,  7          ; disk_read(sector, count, buf) -> count, or < 0
        .equ SYS_DISK_WRITE, 8          ; disk_write(sector, count, buf) -> count, or < 0

        .equ ERR_NOSYS,      -1         ; no such system call
        .equ ERR_FAULT,      -2         ; a bad user pointer (or a bad sector count)
        .equ ERR_NODEV,      -4         ; there is no disk
        .equ ERR_DISK,       -16        ; the disk failed: -16 - its error code (-17 .. -23)
        .equ MAX_WRITE,      256        ; longest write() the kernel accepts

; ---- the user program's work ----------------------------------------------------------
        .equ BUMPS,          20         ; bump() calls per worker process
        .equ BUMP_WORK,      12         ; loop rounds inside bump()'s critical section
        .equ EXIT_BASE,      100        ; worker pid p exits with code 100 + p

; ---- the user data page (virtual USER_DATA, one per process) --------------------------
; Only values that do not depend on timing go here, so that the page ends
; up the same natively and inside any VM.
        .equ U_PID,          0          ; what getpid() returned
        .equ U_BUMPS,        4          ; how many bump() calls it made
        .equ U_WRITE_RESULT, 8          ; pid 4: what the bad write() returned
        .equ U_DISK1,        12         ; pids 5, 6: what their disk calls returned
        .equ U_DISK2,        16
        .equ U_DISK3,        20
        .equ U_LINE,         64         ; the line buffer of say()
        .equ U_DISKBUF,      0x400      ; pids 5, 6: disk data (2 sectors)
        .equ U_DISKBUF2,     0x800      ; pid 6: a sector read back
