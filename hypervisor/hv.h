/* hypervisor/hv.h -- a small hypervisor that runs unmodified guest kernels
 * on vlab's CPU by trap-and-emulate.
 *
 * Popek & Goldberg (CACM 1974) name its three parts, and so does the code:
 *   dispatcher   hv_exit() in hypervisor/trap.c: every trap of the guest
 *                enters the hypervisor, one handler per kind of exit;
 *   allocator    hypervisor/vm.c: guest-physical memory is host frames
 *                through a per-VM map (p2m), and the guest's own paging is
 *                honoured through shadow page tables (hypervisor/shadow.c);
 *   interpreter  one routine per privileged instruction (trap.c), acting on
 *                the vCPU's *virtual* state: virtual CPL, virtual IF, virtual
 *                control registers, virtual timer and console.
 *
 * The guest kernel is deprivileged (ring compression, as in Xen, SOSP 2003):
 * it runs at real ring 1 (or 3) while it believes it is in ring 0; its user
 * processes run at real ring 3.  Under the `strict` policy every sensitive
 * instruction traps, so the hypervisor sees them all and the guest cannot
 * tell (equivalence).  Under `x86` the holes of Robin & Irvine (2000) show:
 * popf silently keeps the real IF, pushf and smsw reveal ring 1.
 *
 * The physical machine is one cpu_t (the host); VMs live in its memory.
 * Everything the hypervisor does is recorded as events (cpu/event.h,
 * kinds EV_HV_*), so the trace, the TUI and the diagrams show it. */
#ifndef VLAB_HYPERVISOR_HV_H
#define VLAB_HYPERVISOR_HV_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"

enum hv_technique { HV_NATIVE = 0, HV_TRAP_EMULATE = 1, HV_VTX = 2, HV_BT = 3, HV_PV = 4, HV_TECHNIQUE_COUNT };

/* Virtual interrupt lines of a vCPU (vector 32 + line). */
#define HV_VIRQ_TIMER 0
#define HV_VIRQ_DISK 14 /* the virtual disk's completion (DISK_IRQ, hypervisor/disk.h) */

struct disk_media;
struct disk_ctl;
struct hv_vdisk;

typedef struct hv_adaptive hv_adaptive;

typedef struct hv_vcpu {
    /* the guest's registers while it is not on the physical CPU */
    uint32_t r[16], pc, flags;
    /* virtual privileged state: what the guest believes */
    uint8_t vcpl;          /* the guest's idea of its ring: 0 kernel, 3 user */
    uint8_t vif;           /* virtual interrupt flag */
    uint8_t halted;        /* waiting in hlt for a virtual interrupt */
    uint32_t vcr[CPU_NCR]; /* virtual status, vbr, faddr, ptbr, ksp */
    uint32_t vtimer_period;
    uint64_t vtimer_deadline; /* host cycle of the next virtual tick (0: off) */
    uint32_t virq_pending;
    /* statistics for the summary */
    uint64_t exits, emulations, reflections, injections, shadow_fills, pt_writes;
    uint64_t translations, translated_blocks, retranslations, callouts; /* binary translation */
    uint64_t hypercalls; /* paravirtualization */
    uint64_t world_switches; /* hosted: world switches its I/O caused */
    uint64_t emulated_by_op[OP_COUNT];
} hv_vcpu;

/* The shadow page tables of one guest address space (shadow.c): kept
 * across address-space switches, as VMware's and KVM's shadow caches do, so
 * switching back to a process does not start from an empty shadow. */
#define HV_SHADOW_CACHE 8
typedef struct hv_shadow_set {
    uint32_t gptbr;   /* the guest page directory it shadows */
    uint32_t pd, kpd; /* host-physical shadow directories (user, kernel mode); 0: not allocated */
    uint32_t *pts;    /* host frames used as its shadow page tables (reused after a flush) */
    int npts, used;
    int valid;        /* its entries agree with the guest's tables */
    uint64_t last;    /* when it was last in use (the least recently used one goes) */
} hv_shadow_set;

typedef struct hv_vm {
    int id;
    char name[32];
    int technique;
    int kernel_ring;      /* the real ring the guest kernel runs in: 1 or 3 */
    uint32_t mem_size;    /* guest-physical bytes */
    uint32_t npages;
    uint32_t *p2m;        /* guest page -> host page number */
    uint32_t shadow_pd;   /* the current shadow: host-physical page directory for the guest's user mode */
    uint32_t shadow_kpd;  /* ... and for its kernel mode (kernel_ring 3 needs U on kernel pages) */
    hv_shadow_set shadows[HV_SHADOW_CACHE]; /* one per guest address space, most recently used kept */
    int shadow_cur;       /* the one in use (shadow_pd, shadow_kpd are its directories) */
    uint64_t shadow_clock;
    int pt_new;           /* pages hv_mark_pt marked that were not page tables before ... */
    uint32_t pt_new_gpa[4]; /* ... (the first 4 of them): shadow.c write-protects them */
    uint32_t *pt_frames;  /* guest pages that hold guest page tables (bitmap) */
    hv_vcpu vcpu;
    char *console;
    size_t console_len, console_cap;
    asm_image *images;
    int nimages;
    int done;             /* shut down or halted for good */
    /* VT-x: the VMCS's control fields (guest state is in vcpu) */
    uint32_t vmx_ctl, vmx_exc;
    uint32_t *ept;        /* guest page -> host page + 1, for the EPT */
    int launched;         /* vmlaunch done: later entries are vmresume */
    int vtx_shadow;       /* VT-x without EPT: shadow page tables, as first-generation VT-x */
    int exit_again;       /* VT-x: delivering an event caused another VM exit */
    int last_exit;        /* VT-x: the last VM exit's reason (-1: none yet) and qualification */
    uint32_t last_qual;
    /* binary translation: per guest page, the virtual page it was translated at | 1 */
    uint32_t *bt_va;
    struct hv_adaptive {
        uint32_t pc, faults;
    } adaptive[32]; /* kernel stores that fault on page tables (adaptive BT) */
    int nadaptive;
    /* its callouts (cpu_callout_add): in the host CPU while it runs there */
    uint32_t *callouts;
    uint32_t ncallouts, callout_cap;
    /* scheduling */
    uint32_t weight;      /* proportional share: CPU time in proportion to this (default 1) */
    uint64_t cpu_cycles;  /* cycles this VM held the physical CPU */
    uint64_t pass;        /* weighted CPU time: the share scheduler runs the lowest */
    uint64_t slices;      /* times it got the CPU */
    uint64_t last_cycle;  /* the cycle it left a physical CPU: it never runs earlier again */
    int last_cpu;         /* the physical CPU it ran on last (-1: none yet) */
    uint64_t migrations;  /* slices it ran on another CPU than the one before */
    struct hv_vdisk *vdisk; /* its disk controller (the device model, vdev.c), or NULL */
    /* copy-on-write memory (hypervisor/cowmem.c) */
    uint32_t *cow;        /* guest pages mapped read-only for copy-on-write (bitmap) */
    int parent;           /* the VM it was cloned from, or -1 */
    uint64_t cow_copies;  /* writes to a shared page that copied it */
    uint64_t cow_restores; /* writes that found the page no longer shared: write permission restored */
    uint64_t merged;      /* its pages the sharing scanner merged into another frame */
    int destroyed;        /* hv_vm_destroy: its frames are back with the hypervisor */
} hv_vm;

/* A physical CPU of the machine.  The one running now (hv.active) has its
 * state in the host cpu_t; the others wait in ctx.  They take turns of
 * `interleave` instructions at most, the one furthest behind in cycles
 * first, so all of them move forward together (deterministically). */
typedef struct hv_pcpu {
    cpu_context ctx;      /* its registers, TLB, timer, cycle counter while it waits */
    int vm;               /* the VM on it, or -1: idle */
    uint64_t slice_start, slice_end;
    uint64_t busy;        /* cycles it ran VMs */
    uint64_t slices;      /* VM slices it ran */
} hv_pcpu;
#define HV_MAX_CPUS 8

enum hv_sched { HV_SCHED_RR = 0, HV_SCHED_SHARE = 1 };

/* Hosted VMM: what the VMM asks VMApp to do (VMDriver's request block). */
enum { HV_REQ_NONE = 0, HV_REQ_CONSOLE = 1, HV_REQ_DEVICE = 2, HV_REQ_DISK = 3 };

struct hv;
struct hv_frames;
typedef struct hv {
    cpu_t *host;          /* the physical machine (not owned) */
    uint32_t next_frame;  /* frame allocator: next never-used host page */
    uint32_t free_frames; /* frames left (never used, and freed) */
    struct hv_frames *frames; /* the frame table: reference counts, free list (cowmem.c) */
    uint32_t cost_copy;   /* copy-on-write: copying a page */
    hv_vm **vms;
    int nvms;
    int current;          /* VM on the CPU, or -1 */
    uint32_t cost_exit;   /* cycles for one trip into the hypervisor and back */
    uint32_t cost_emulate;
    uint32_t cost_reflect;
    uint32_t cost_vmexit; /* VT-x: a VM exit and the VM entry back */
    uint32_t cost_translate; /* binary translation: translating a page of guest kernel code */
    uint32_t cost_callout;   /* binary translation: translated code calling the translator */
    /* A routine that replaces the built-in interpreter routine of an
     * instruction (a lab writes its own cli/sti/popf): return 1 when it
     * emulated the instruction (pc then moves past it), 0 to fall back to
     * the built-in one.  The host CPU holds the guest's registers. */
    int (*emulate_hook)(void *ud, struct hv *h, hv_vm *vm, const cpu_exit *x);
    void *emulate_ud;
    uint8_t hooked[OP_COUNT]; /* which instructions the hook wants */
    /* Called right before every run slice of the CPU, after the hypervisor
     * has acted (an exit handled, a world or VM switch, another physical
     * CPU's turn, the timer armed): a run that keeps a history checkpoints
     * the machine there, so between two checkpoints only the CPU acts and
     * replaying from one is exact (sim/history.h).  Nonzero: stop hv_run
     * (CPU_EXIT_STOP; the host is out of memory). */
    int (*checkpoint_hook)(void *ud, cpu_t *c);
    void *checkpoint_ud;
    uint64_t quantum;     /* cycles a VM runs before the next one gets the CPU */
    int sched;            /* hv_sched */
    uint64_t slice_start; /* host cycle when the current VM got the CPU */
    uint64_t slice_end;   /* host cycle at which the current VM's slice ends */
    /* physical CPUs: current, slice_start and slice_end above are the active one's */
    hv_pcpu pcpu[HV_MAX_CPUS];
    int ncpus;            /* 1 unless hv_set_cpus */
    int active;           /* the physical CPU whose state is in host */
    int rr_last;          /* round robin: the VM picked last */
    uint32_t interleave;  /* instructions a physical CPU runs before the others catch up */
    int ran;              /* hv_run was called: the CPUs are fixed */
    /* hosted (type 2, VMware Workstation: hypervisor/hosted.c) */
    int hosted;           /* a host OS owns the machine; device I/O goes through VMApp */
    int cheap_in_vmm;     /* cheap device registers (the timer) are handled in the VMM */
    int host_booted, host_broken;
    cpu_context host_world; /* the host world's CPU state while the VMM world runs */
    uint32_t world_switch_pc; /* VMDriver's switch into the VMM */
    uint32_t cost_world;  /* one world switch, either way */
    uint64_t world_switches;
    struct disk_ctl *host_disk; /* the host machine's own disk controller, which the host OS
                                 * drives for VMApp: the disk of VM host_disk_vm (or NULL) */
    int host_disk_vm;
    uint64_t host_disk_requests; /* guest disk requests VMApp carried out */
} hv;

/* A hypervisor on the physical machine `host` (whose policy decides what
 * the deprivileged guest kernels' sensitive instructions do).  It takes the
 * host over: all vectors intercepted, paging on, its own timer.  NULL on
 * failure with a message in err. */
hv *hv_new(cpu_t *host, char *err, size_t errlen);
void hv_free(hv *h); /* the VMs too, not the host */

/* Make the hypervisor a hosted one (VMware Workstation): img is the host
 * world (a host OS and VMApp, scenarios/guests/hosted/host.s), loaded into
 * host memory 0x10000-0x2ffff.  Before any VM.  0, or -1 with a message. */
int hv_hosted_setup(hv *h, const asm_image *img, char *err, size_t errlen);

/* Give the machine n physical CPUs (1..HV_MAX_CPUS), before it first
 * runs.  0, or -1 with a message. */
int hv_set_cpus(hv *h, int n, char *err, size_t errlen);
/* The physical CPU vm is on, or -1.  hv_focus makes that CPU the active one
 * (its state in the host cpu_t), so the VM's registers can be read there;
 * the simulation does not change. */
int hv_vm_cpu(const hv *h, const hv_vm *vm);
void hv_focus(hv *h, int cpu);
/* The cycle the machine has reached: the latest of its CPUs' clocks. */
uint64_t hv_elapsed(const hv *h);

/* Cost presets: "nehalem2009" (the default: a VM exit round trip of about
 * 2,000 cycles, Landau et al. 2011) and "adams2006" (first-generation VT-x:
 * about 11,000, Adams & Agesen 2006).  -1 if unknown. */
int hv_cost_preset(hv *h, const char *name);

/* A VM with mem_bytes of guest-physical memory; kernel_ring 1 or 3. */
hv_vm *hv_vm_new(hv *h, const char *name, uint32_t mem_bytes, int technique, int kernel_ring,
                 char *err, size_t errlen);
/* Copy bytes into guest-physical memory; -1 if out of range. */
int hv_vm_write_phys(hv *h, hv_vm *vm, uint32_t gpa, const void *src, size_t n);
int hv_vm_read_phys(hv *h, hv_vm *vm, uint32_t gpa, void *dst, size_t n);
/* Guest-virtual memory, through the guest's own page tables, with its
 * kernel's rights; -1 where the guest would fault. */
int hv_vm_read_virt(hv *h, hv_vm *vm, uint32_t va, void *dst, size_t n);
int hv_vm_write_virt(hv *h, hv_vm *vm, uint32_t va, const void *src, size_t n);

/* Give the VM a disk controller on media (a reference is taken): its
 * guest reaches it on ports 0x1f0-0x1f5 and gets virtual IRQ 14 (docs/
 * devices.md).  -1 with a message if it has one already.  Hosted: media
 * becomes the host machine's disk too, on its own controller, which the
 * host OS drives when VMApp reads or writes it for the VM (one per host:
 * -1 for a second VM's disk). */
int hv_vm_attach_disk(hv *h, hv_vm *vm, struct disk_media *media, char *err, size_t errlen);
const struct disk_ctl *hv_vm_disk(const hv_vm *vm); /* NULL: no disk */

/* Run the VMs until every one has halted or shut down, or max_steps ran.
 * Returns a cpu exit reason of the last run slice (CPU_EXIT_BUDGET when
 * steps ran out; CPU_EXIT_STOP when checkpoint_hook failed). */
int hv_run(hv *h, uint64_t max_steps);

const char *hv_technique_name(int t);
int hv_technique_by_name(const char *name); /* -1 if unknown */

#endif
