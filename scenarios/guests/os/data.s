; os/data.s -- the kernel's variables, in the kernel data page (KDATA).
;
; Mapped read-write for ring 0 only: no user process can read or write them
; (pid 4 tries, and is killed).  A scenario reads them with m:read32("ticks")
; or m:phys32(sym.shared_counter): they are labels.

; The disk driver's variables come first, and the process table last, so
; that the counters keep the addresses pid 4's fault message and the README
; show (shared_counter at 0x60a8).
disk_sectors:     .word 0       ; sectors on the disk; 0: no disk
disk_owner:       .word 0       ; pid whose request is in flight (or being set up), 0: free
disk_status:      .word 0       ; the status register at the last completion interrupt
disk_interrupts:  .word 0       ; completion interrupts taken
disk_waits:       .word 0       ; times a process found the disk taken and yielded
memory_kib:       .word 0       ; what cpuid said

        .org KDATA + 0xa0
current:          .word 0       ; pid of the running process (0 while booting)
ticks:            .word 0       ; timer interrupts taken
shared_counter:   .word 0       ; what bump() adds 1 to -- the shared data
bump_calls:       .word 0       ; how many bump() calls were made
nr_alive:         .word 0       ; processes not yet EXITED
idle_flag:        .word 0       ; 1 while the scheduler waits in hlt
context_switches: .word 0       ; how many times switch_to ran
idle_waits:       .word 0       ; how many times the scheduler had to idle
dec_buffer:       .space 12     ; kput_dec builds its digits here

        .org KDATA + 0x100
proc_table:       .space (NPROC + 1) * PROC_SIZE   ; entry 0: the boot context
