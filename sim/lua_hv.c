/* sim/lua_hv.c -- `vlab.hypervisor` and its VMs for scenarios (shaped like
 * sim/lua_machine.c).  The hypervisor runs on a machine of the run (so the
 * trace, the budgets, the history and the summary cover it); each VM is a
 * guest with its own guest-physical memory and virtual CPU. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "hypervisor/cowmem.h"
#include "hypervisor/hv.h"
#include "sim/lua_host.h"
#include "viz/text.h"

#define MT_HV "vlab.hypervisor"
#define MT_VM "vlab.vm"
#define SLICE (1u << 20)

typedef struct hv_box {
    hv *h;
    sim_machine *m; /* the physical machine */
    lua_State *L;   /* the state running hv:run, for emulation routines */
    int running;    /* inside hv:run (an emulation routine is calling) */
    int ckpt_failed; /* a checkpoint of the run's history ran out of host memory */
} hv_box;

typedef struct vm_box {
    hv_vm *vm;
    hv_box *owner; /* kept alive by the user value */
} vm_box;

static hv_box *check_hv(lua_State *L, int i) {
    hv_box *b = luaL_checkudata(L, i, MT_HV);
    if (!b->h) luaL_argerror(L, i, "hypervisor was freed");
    return b;
}

static vm_box *check_vm(lua_State *L, int i) {
    vm_box *b = luaL_checkudata(L, i, MT_VM);
    if (!b->vm || !b->owner->h) luaL_argerror(L, i, "VM was freed");
    return b;
}

static void setup_hosted(lua_State *L, hv *h, const char *path);

/* vlab.hypervisor{memory=, policy=, name=, quantum=, scheduler=, costs=, cpus=, hosted=,
 * cheap_in_vmm=} */
static int l_hypervisor(lua_State *L) {
    sim_session *s = sim_lua_session(L);
    const char *policy = s->opt.policy, *name = "host", *sched = "round-robin", *costs = "nehalem2009";
    lua_Integer mem = 16 << 20, quantum = 100000, cpus = 1;
    const char *hosted = NULL;
    int cheap = 1;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "policy");
        if (!lua_isnil(L, -1)) policy = luaL_checkstring(L, -1);
        lua_getfield(L, 1, "memory");
        if (!lua_isnil(L, -1)) mem = luaL_checkinteger(L, -1);
        lua_getfield(L, 1, "name");
        if (!lua_isnil(L, -1)) name = luaL_checkstring(L, -1);
        lua_getfield(L, 1, "quantum");
        if (!lua_isnil(L, -1)) quantum = luaL_checkinteger(L, -1);
        lua_getfield(L, 1, "scheduler");
        if (!lua_isnil(L, -1)) sched = luaL_checkstring(L, -1);
        lua_getfield(L, 1, "costs");
        if (!lua_isnil(L, -1)) costs = luaL_checkstring(L, -1);
        lua_getfield(L, 1, "cpus");
        if (!lua_isnil(L, -1)) cpus = luaL_checkinteger(L, -1);
        lua_getfield(L, 1, "hosted"); /* true: the guest library's host world; or a file */
        if (lua_type(L, -1) == LUA_TSTRING)
            hosted = lua_tostring(L, -1);
        else if (lua_isboolean(L, -1))
            hosted = lua_toboolean(L, -1) ? "hosted/host.s" : NULL;
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "hypervisor: hosted must be true, false or a host image file");
        lua_getfield(L, 1, "cheap_in_vmm");
        if (!lua_isnil(L, -1)) cheap = lua_toboolean(L, -1);
        lua_pop(L, 9);
    }
    if (strcmp(sched, "round-robin") && strcmp(sched, "share"))
        return luaL_error(L, "hypervisor: scheduler must be 'round-robin' or 'share', not '%s'", sched);
    if (mem < (1 << 17) || mem > 0x10000000)
        return luaL_error(L, "hypervisor: memory must be 128 KiB .. 256 MiB");
    if (quantum < 1000) return luaL_error(L, "hypervisor: quantum must be at least 1000 cycles");
    if (cpus < 1 || cpus > HV_MAX_CPUS)
        return luaL_error(L, "hypervisor: cpus must be 1 .. %d", HV_MAX_CPUS);
    char err[160];
    hv_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, MT_HV);
    b->m = sim_machine_new(s, (uint32_t)mem, policy, name, err, sizeof err);
    if (!b->m) return luaL_error(L, "hypervisor: %s", err);
    b->h = hv_new(b->m->cpu, err, sizeof err);
    if (!b->h) return luaL_error(L, "hypervisor: %s", err);
    b->h->quantum = (uint64_t)quantum;
    b->h->sched = strcmp(sched, "share") == 0 ? HV_SCHED_SHARE : HV_SCHED_RR;
    if (hv_cost_preset(b->h, costs))
        return luaL_error(L, "hypervisor: costs must be 'nehalem2009' or 'adams2006', not '%s'", costs);
    if (hv_set_cpus(b->h, (int)cpus, err, sizeof err)) return luaL_error(L, "hypervisor: %s", err);
    if (hosted) {
        setup_hosted(L, b->h, hosted);
        b->h->cheap_in_vmm = cheap;
    }
    sim_register_hv(s, b->h, b->m);
    lua_newtable(L); /* the VMs, kept alive with the hypervisor */
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int hv_gc(lua_State *L) {
    hv_box *b = luaL_checkudata(L, 1, MT_HV);
    if (b->h) {
        sim_unregister_hv(sim_lua_session(L), b->h);
        hv_free(b->h);
    }
    b->h = NULL;
    return 0;
}

/* The Lua object of a new VM of the hypervisor at stack index hvi. */
static void push_vm(lua_State *L, int hvi, hv_box *b, hv_vm *vm) {
    hvi = lua_absindex(L, hvi);
    vm_box *vb = lua_newuserdatauv(L, sizeof *vb, 1);
    vb->vm = vm;
    vb->owner = b;
    luaL_setmetatable(L, MT_VM);
    lua_pushvalue(L, hvi);
    lua_setiuservalue(L, -2, 1); /* the VM keeps its hypervisor alive */
    lua_getiuservalue(L, hvi, 1); /* and the hypervisor knows its VMs' objects */
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, vm->id + 1);
    lua_pop(L, 1);
}

/* hv:vm{name=, memory=, technique=, kernel_ring=, weight=, paging=} */
static int hv_vm_create(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    const char *name = "vm", *tech = "trap-and-emulate", *paging = NULL;
    lua_Integer mem = 1 << 20, ring = 1, weight = 1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "name");
        if (!lua_isnil(L, -1)) name = luaL_checkstring(L, -1);
        lua_getfield(L, 2, "memory");
        if (!lua_isnil(L, -1)) mem = luaL_checkinteger(L, -1);
        lua_getfield(L, 2, "technique");
        if (!lua_isnil(L, -1)) tech = luaL_checkstring(L, -1);
        lua_getfield(L, 2, "kernel_ring");
        if (!lua_isnil(L, -1)) ring = luaL_checkinteger(L, -1);
        lua_getfield(L, 2, "weight");
        if (!lua_isnil(L, -1)) weight = luaL_checkinteger(L, -1);
        lua_getfield(L, 2, "paging");
        if (!lua_isnil(L, -1)) paging = luaL_checkstring(L, -1);
        lua_pop(L, 6);
    }
    if (paging && strcmp(paging, "nested") && strcmp(paging, "shadow"))
        return luaL_error(L, "vm: paging must be 'nested' (EPT) or 'shadow', not '%s'", paging);
    if (weight < 1 || weight > 1000) return luaL_error(L, "vm: weight must be 1..1000");
    int t = hv_technique_by_name(tech);
    if (paging && t == HV_PV)
        return luaL_error(L, "vm: a paravirtual guest's page tables are its own (validated by hypercalls): no paging option");
    if (paging && (t == HV_TRAP_EMULATE || t == HV_BT) && strcmp(paging, "nested") == 0)
        return luaL_error(L, "vm: only a vt-x VM has nested paging (EPT); %s uses shadow page tables", tech);
    if (t <= HV_NATIVE)
        return luaL_error(L,
                          "vm: technique '%s' is not available (trap-and-emulate, binary-translation, "
                          "vt-x, paravirtual)",
                          tech);
    if (ring != 1 && ring != 3) return luaL_error(L, "vm: kernel_ring must be 1 or 3");
    if (mem < 4096 || mem > 0x10000000) return luaL_error(L, "vm: memory must be 4 KiB .. 256 MiB");
    char err[160];
    hv_vm *vm = hv_vm_new(b->h, name, (uint32_t)mem, t, (int)ring, err, sizeof err);
    if (!vm) return luaL_error(L, "vm: %s", err);
    vm->weight = (uint32_t)weight;
    vm->vtx_shadow = t == HV_VTX && paging && strcmp(paging, "shadow") == 0;
    b->m->host_dirty = 1;
    push_vm(L, 1, b, vm);
    return 1;
}

static char *inc_read(void *ud, const char *from, const char *path, size_t *len, const char **err) {
    static char msg[PATH_MAX + 128];
    lua_State *L = ud;
    char *slash = strrchr(from, '/');
    char rel[PATH_MAX];
    if (slash && path[0] != '/')
        snprintf(rel, sizeof rel, "%.*s/%s", (int)(slash - from), from, path);
    else
        snprintf(rel, sizeof rel, "%s", path);
    char *buf = sim_lua_read_file(L, rel, len, NULL, 0, msg, sizeof msg);
    if (!buf && strcmp(rel, path) != 0) buf = sim_lua_read_file(L, path, len, NULL, 0, msg, sizeof msg);
    if (!buf) *err = msg;
    return buf;
}

/* Assemble the host world (a host OS and VMApp) and make h hosted. */
static void setup_hosted(lua_State *L, hv *h, const char *path) {
    size_t len;
    char err[PATH_MAX + 128];
    char *src = sim_lua_read_file(L, path, &len, NULL, 0, err, sizeof err);
    if (!src) luaL_error(L, "hypervisor: hosted: %s", err);
    asm_options ao = {.read = inc_read, .read_ud = L};
    asm_image img;
    char *errors = NULL;
    int bad = asm_assemble(src, len, path, &ao, &img, &errors);
    free(src);
    if (bad) {
        size_t n = errors ? strlen(errors) : 0;
        while (n && errors[n - 1] == '\n') n--;
        lua_pushlstring(L, errors ? errors : "assembly failed", errors ? n : 15);
        free(errors);
        lua_error(L);
    }
    int rc = hv_hosted_setup(h, &img, err, sizeof err);
    asm_image_free(&img);
    if (rc) luaL_error(L, "hypervisor: hosted: %s", err);
}

static int vm_load_text(lua_State *L, vm_box *vb, const char *src, size_t len, const char *name, int opts) {
    int set_entry = 1;
    if (lua_istable(L, opts)) {
        lua_getfield(L, opts, "entry");
        if (lua_isboolean(L, -1)) set_entry = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    asm_options ao = {.read = inc_read, .read_ud = L};
    asm_image img;
    char *errors = NULL;
    if (asm_assemble(src, len, name, &ao, &img, &errors) != 0) {
        size_t n = errors ? strlen(errors) : 0;
        while (n && errors[n - 1] == '\n') n--;
        lua_pushlstring(L, errors ? errors : "assembly failed", errors ? n : 15);
        free(errors);
        return lua_error(L);
    }
    hv_vm *vm = vb->vm;
    for (int i = 0; i < img.nchunks; i++)
        if (hv_vm_write_phys(vb->owner->h, vm, img.chunks[i].addr, img.chunks[i].data, img.chunks[i].len)) {
            uint32_t a = img.chunks[i].addr;
            asm_image_free(&img);
            return luaL_error(L, "load: bytes at 0x%08x do not fit in the VM's %d KiB", a,
                              (int)(vm->mem_size / 1024));
        }
    if (set_entry) vm->vcpu.pc = img.entry;
    vb->owner->m->host_dirty = 1;
    lua_newtable(L);
    for (int i = 0; i < img.nsyms; i++) {
        lua_pushinteger(L, img.syms[i].value);
        lua_setfield(L, -2, img.syms[i].name);
    }
    asm_image *list = realloc(vm->images, (size_t)(vm->nimages + 1) * sizeof *list);
    if (!list) {
        asm_image_free(&img);
        return luaL_error(L, "load: out of memory");
    }
    vm->images = list;
    vm->images[vm->nimages++] = img;
    return 1;
}

/* vm:load(source [, opts]) / vm:load_file(path [, opts]): into guest-physical memory */
static int vm_load(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    size_t len;
    const char *src = luaL_checklstring(L, 2, &len);
    lua_Debug ar;
    char name[PATH_MAX] = "<string>";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(name, sizeof name, "<asm from %s:%d>", ar.short_src, ar.currentline);
    return vm_load_text(L, vb, src, len, name, 3);
}

static int vm_load_file(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    const char *path = luaL_checkstring(L, 2);
    size_t len;
    char err[PATH_MAX + 128];
    char *buf = sim_lua_read_file(L, path, &len, NULL, 0, err, sizeof err);
    if (!buf) return luaL_error(L, "load_file: %s", err);
    lua_pushlstring(L, buf, len);
    free(buf);
    size_t l2;
    const char *src = lua_tolstring(L, -1, &l2);
    return vm_load_text(L, vb, src, l2, path, 3);
}

static int vm_console(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    lua_pushlstring(L, vb->vm->console ? vb->vm->console : "", vb->vm->console_len);
    return 1;
}

/* vm:read32(gpa): guest-physical memory */
static int vm_read32(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    uint32_t a = (uint32_t)luaL_checkinteger(L, 2), v = 0;
    if (hv_vm_read_phys(vb->owner->h, vb->vm, a, &v, 4)) {
        luaL_pushfail(L);
        lua_pushstring(L, "outside the VM's memory");
        return 2;
    }
    lua_pushinteger(L, v);
    return 1;
}

/* vm:bytes(gpa, n): n bytes of guest-physical memory as a string */
static int vm_bytes(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    uint32_t a = (uint32_t)luaL_checkinteger(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0 && n <= (16 << 20), 3, "at most 16 MiB");
    char *buf = malloc((size_t)n + 1);
    if (!buf) return luaL_error(L, "out of memory");
    if (hv_vm_read_phys(vb->owner->h, vb->vm, a, buf, (size_t)n)) {
        free(buf);
        luaL_pushfail(L);
        lua_pushstring(L, "outside the VM's memory");
        return 2;
    }
    lua_pushlstring(L, buf, (size_t)n);
    free(buf);
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* vm:stats() -> {exits=, emulations=, reflections=, injections=, shadow_fills=,
 *                pt_writes=, emulated={cli=3, ...}} */
static int vm_stats(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    const hv_vcpu *v = &vb->vm->vcpu;
    lua_createtable(L, 0, 8);
    set_int(L, "exits", (lua_Integer)v->exits);
    set_int(L, "emulations", (lua_Integer)v->emulations);
    set_int(L, "reflections", (lua_Integer)v->reflections);
    set_int(L, "injections", (lua_Integer)v->injections);
    set_int(L, "shadow_fills", (lua_Integer)v->shadow_fills);
    set_int(L, "pt_writes", (lua_Integer)v->pt_writes);
    set_int(L, "cpu_cycles", (lua_Integer)vb->vm->cpu_cycles);
    set_int(L, "translations", (lua_Integer)v->translations);
    set_int(L, "translated_blocks", (lua_Integer)v->translated_blocks);
    set_int(L, "retranslations", (lua_Integer)v->retranslations);
    set_int(L, "callouts", (lua_Integer)v->callouts);
    set_int(L, "hypercalls", (lua_Integer)v->hypercalls);
    set_int(L, "slices", (lua_Integer)vb->vm->slices);
    set_int(L, "migrations", (lua_Integer)vb->vm->migrations);
    set_int(L, "world_switches", (lua_Integer)vb->vm->vcpu.world_switches);
    lua_newtable(L);
    for (int op = 0; op < OP_COUNT; op++)
        if (v->emulated_by_op[op]) set_int(L, cpu_isa[op].mnem, (lua_Integer)v->emulated_by_op[op]);
    lua_setfield(L, -2, "emulated");
    return 1;
}

/* vm:attach_disk(d): the VM's device model gets a disk controller backed by d */
static int vm_attach_disk(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    struct disk_media *media = sim_lua_check_disk(L, 2);
    char err[160];
    if (hv_vm_attach_disk(vb->owner->h, vb->vm, media, err, sizeof err))
        return luaL_error(L, "attach_disk: %s", err);
    vb->owner->m->host_dirty = 1;
    return 0;
}

/* vm:disk() -> its disk controller's figures, or nil without a disk */
static int vm_disk(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    sim_lua_push_disk_stats(L, hv_vm_disk(vb->vm));
    return 1;
}

/* hv:host_disk(): a hosted VMM's host machine controller, which the host OS
 * drives for VMApp (nil: not hosted, or no VM has a disk) */
static int hv_host_disk(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    sim_lua_push_disk_stats(L, b->h->host_disk);
    return 1;
}

static void set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Is the VM on a physical CPU?  Then that CPU becomes the active one, so
 * the host cpu_t holds the VM's registers (the simulation does not change). */
static int on_cpu(vm_box *vb) {
    hv *h = vb->owner->h;
    int p = hv_vm_cpu(h, vb->vm);
    if (p < 0) return 0;
    hv_focus(h, p);
    return 1;
}

/* vm:vmcs() -> the VT-x control fields, the guest-state area and the last
 * exit, as a table (nil for a VM that is not VT-x) */
static int vm_vmcs(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    hv_vm *vm = vb->vm;
    if (vm->technique != HV_VTX) {
        luaL_pushfail(L);
        return 1;
    }
    int running = on_cpu(vb) && vb->owner->h->host->nonroot;
    const cpu_t *c = vb->owner->h->host;
    uint32_t ctl = running ? c->vmx_ctl : vm->vmx_ctl;
    lua_createtable(L, 0, 6);
    lua_createtable(L, 0, 9);
    set_bool(L, "hlt_exiting", !!(ctl & VMX_HLT_EXIT));
    set_bool(L, "rdtsc_exiting", !!(ctl & VMX_RDTSC_EXIT));
    set_bool(L, "cr3_exiting", !!(ctl & VMX_CR3_EXIT));
    set_bool(L, "invlpg_exiting", !!(ctl & VMX_INVLPG_EXIT));
    set_bool(L, "io_exiting", !!(ctl & VMX_IO_EXIT));
    set_bool(L, "descriptor_exiting", !!(ctl & VMX_DESC_EXIT));
    set_bool(L, "interrupt_window_exiting", !!(ctl & VMX_INTWIN_EXIT));
    set_bool(L, "external_interrupt_exiting", !!(ctl & VMX_EXTINT_EXIT));
    set_bool(L, "ept", !!(ctl & VMX_EPT));
    lua_setfield(L, -2, "controls");
    set_int(L, "exception_bitmap", vm->vmx_exc);
    set_bool(L, "launched", vm->launched);
    lua_createtable(L, 0, 8); /* guest-state area */
    set_int(L, "pc", running ? c->pc : vm->vcpu.pc);
    set_int(L, "sp", running ? c->r[CPU_REG_SP] : vm->vcpu.r[CPU_REG_SP]);
    set_int(L, "ring", running ? c->cpl : vm->vcpu.vcpl);
    set_bool(L, "interrupts", running ? !!(c->flags & CPU_FL_IF) : vm->vcpu.vif);
    for (int i = 0; i < CPU_NCR; i++) set_int(L, cpu_cr_names[i], running ? cpu_get_cr(c, i) : vm->vcpu.vcr[i]);
    lua_setfield(L, -2, "guest");
    if (vm->last_exit >= 0) {
        set_int(L, "exit_reason", vm->last_exit);
        set_int(L, "exit_qualification", vm->last_qual);
    }
    return 1;
}

static int vm_index(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    const char *k = luaL_checkstring(L, 2);
    hv_vm *vm = vb->vm;
    const hv_vcpu *v = &vm->vcpu;
    /* registers: from the CPU it is on (made the active one), else its vCPU */
    int reg = (k[0] == 'r' && k[1] >= '0' && k[1] <= '9') || !strcmp(k, "sp") || !strcmp(k, "pc") ||
              !strcmp(k, "real_ring");
    int running = reg && on_cpu(vb);
    const cpu_t *c = vb->owner->h->host;
    if (k[0] == 'r' && k[1] >= '0' && k[1] <= '9') {
        int r = atoi(k + 1);
        if (r >= 0 && r < 16) {
            lua_pushinteger(L, running ? c->r[r] : v->r[r]);
            return 1;
        }
    }
    if (strcmp(k, "sp") == 0) lua_pushinteger(L, running ? c->r[CPU_REG_SP] : v->r[CPU_REG_SP]);
    else if (strcmp(k, "pc") == 0) lua_pushinteger(L, running ? c->pc : v->pc);
    else if (strcmp(k, "ring") == 0) lua_pushinteger(L, v->vcpl); /* what the guest believes */
    else if (strcmp(k, "real_ring") == 0) lua_pushinteger(L, running ? c->cpl : (v->vcpl == 3 ? 3 : vm->kernel_ring));
    else if (strcmp(k, "interrupts") == 0) lua_pushboolean(L, v->vif);
    else if (strcmp(k, "done") == 0) lua_pushboolean(L, vm->done);
    else if (strcmp(k, "destroyed") == 0) lua_pushboolean(L, vm->destroyed);
    else if (strcmp(k, "name") == 0) lua_pushstring(L, vm->name);
    else if (strcmp(k, "id") == 0) lua_pushinteger(L, vm->id);
    else if (strcmp(k, "memory") == 0) lua_pushinteger(L, vm->mem_size);
    else if (strcmp(k, "technique") == 0) lua_pushstring(L, hv_technique_name(vm->technique));
    else if (strcmp(k, "weight") == 0) lua_pushinteger(L, vm->weight);
    else if (strcmp(k, "cpu") == 0) { /* the physical CPU it is on, or nil */
        int p = hv_vm_cpu(vb->owner->h, vm);
        if (p < 0) lua_pushnil(L);
        else lua_pushinteger(L, p);
    } else if (strcmp(k, "parent") == 0) { /* the VM it was cloned from */
        if (vm->parent < 0) lua_pushnil(L);
        else lua_pushinteger(L, vm->parent);
    } else if (strcmp(k, "paging") == 0) /* how its guest-physical memory is reached */
        lua_pushstring(L, vm->technique == HV_VTX && !vm->vtx_shadow ? "nested" : "shadow");
    else {
        luaL_getmetafield(L, 1, "__methods");
        lua_getfield(L, -1, k);
        if (lua_isnil(L, -1)) return luaL_error(L, "VM has no field or method '%s'", k);
    }
    return 1;
}

/* Set what the guest sees: registers, pc, its virtual interrupt flag. */
static int vm_newindex(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    const char *k = luaL_checkstring(L, 2);
    hv_vm *vm = vb->vm;
    int running = on_cpu(vb);
    cpu_t *c = vb->owner->h->host;
    vb->owner->m->host_dirty = 1;
    if (strcmp(k, "interrupts") == 0) {
        vm->vcpu.vif = (uint8_t)lua_toboolean(L, 3);
        if (vm->technique == HV_VTX && running) {
            if (vm->vcpu.vif) c->flags |= CPU_FL_IF;
            else c->flags &= ~CPU_FL_IF;
        }
        return 0;
    }
    uint32_t v = (uint32_t)luaL_checkinteger(L, 3);
    int r = -1;
    if (strcmp(k, "sp") == 0) r = CPU_REG_SP;
    else if (k[0] == 'r' && k[1] >= '0' && k[1] <= '9' && atoi(k + 1) < 16) r = atoi(k + 1);
    if (r >= 0) {
        if (running) c->r[r] = v;
        else vm->vcpu.r[r] = v;
    } else if (strcmp(k, "pc") == 0) {
        if (running) c->pc = v;
        else vm->vcpu.pc = v;
    } else {
        return luaL_error(L, "VM field '%s' cannot be set", k);
    }
    return 0;
}

/* vm:push(value) / vm:pop(): the guest's stack, through its own page tables */
static int vm_push(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    uint32_t v = (uint32_t)luaL_checkinteger(L, 2);
    hv *h = vb->owner->h;
    if (!on_cpu(vb)) return luaL_error(L, "push: the VM is not on a CPU");
    cpu_t *c = h->host;
    uint32_t sp = c->r[CPU_REG_SP] - 4;
    if (hv_vm_write_virt(h, vb->vm, sp, &v, 4)) {
        luaL_pushfail(L);
        return 1;
    }
    c->r[CPU_REG_SP] = sp;
    lua_pushboolean(L, 1);
    return 1;
}

static int vm_pop(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    hv *h = vb->owner->h;
    if (!on_cpu(vb)) return luaL_error(L, "pop: the VM is not on a CPU");
    cpu_t *c = h->host;
    uint32_t v;
    if (hv_vm_read_virt(h, vb->vm, c->r[CPU_REG_SP], &v, 4)) {
        luaL_pushfail(L);
        return 1;
    }
    c->r[CPU_REG_SP] += 4;
    lua_pushinteger(L, v);
    return 1;
}

/* vm:write32(gpa, value): guest-physical memory, as a device's DMA would
 * write it (a page shared copy-on-write is copied first) */
static int vm_write32(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    uint32_t a = (uint32_t)luaL_checkinteger(L, 2), v = (uint32_t)luaL_checkinteger(L, 3);
    if (hv_vm_write_phys(vb->owner->h, vb->vm, a, &v, 4)) {
        luaL_pushfail(L);
        lua_pushstring(L, a >= vb->vm->mem_size ? "outside the VM's memory" : "the host has no frame left for the copy");
        return 2;
    }
    vb->owner->m->host_dirty = 1;
    lua_pushboolean(L, 1);
    return 1;
}

/* vm:clone{name=}: VM fork, every guest frame shared copy-on-write */
static int vm_clone(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    char name[40];
    snprintf(name, sizeof name, "%s'", vb->vm->name);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "name");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "clone: name must be a string");
            snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    if (vb->owner->running) return luaL_error(L, "clone: not inside hv:run (an emulation routine); clone between runs");
    char err[160];
    hv_vm *vm = hv_vm_clone(vb->owner->h, vb->vm, name, err, sizeof err);
    if (!vm) return luaL_error(L, "clone: %s", err);
    vb->owner->m->host_dirty = 1;
    lua_getiuservalue(L, 1, 1); /* the hypervisor object */
    push_vm(L, -1, vb->owner, vm);
    return 1;
}

/* vm:destroy(): the VM lets go of its memory and never runs again */
static int vm_destroy(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    if (vb->owner->running) return luaL_error(L, "destroy: not inside hv:run (an emulation routine)");
    hv_vm_destroy(vb->owner->h, vb->vm);
    vb->owner->m->host_dirty = 1;
    return 0;
}

/* vm:footprint() -> {pages=, frames=, own=, shared=, copies=, restores=, merged=} */
static int vm_footprint(lua_State *L) {
    vm_box *vb = check_vm(L, 1);
    hv_footprint f;
    hv_vm_footprint(vb->owner->h, vb->vm, &f);
    lua_createtable(L, 0, 8);
    set_int(L, "pages", f.pages);
    set_int(L, "frames", f.frames);
    set_int(L, "own", f.own);
    set_int(L, "shared", f.shared);
    set_int(L, "copies", (lua_Integer)f.copies);
    set_int(L, "restores", (lua_Integer)f.restores);
    set_int(L, "merged", (lua_Integer)f.merged);
    set_int(L, "kib", (lua_Integer)f.own * 4);
    return 1;
}

static int vm_tostring(lua_State *L) {
    vm_box *vb = luaL_checkudata(L, 1, MT_VM);
    if (!vb->vm) {
        lua_pushliteral(L, "vm (freed)");
        return 1;
    }
    lua_pushfstring(L, "vm %d \"%s\" (%s)", vb->vm->id, vb->vm->name, hv_technique_name(vb->vm->technique));
    return 1;
}

static void push_trap(lua_State *L, const cpu_exit *x) {
    char dis[64];
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, x->pc);
    lua_setfield(L, -2, "pc");
    lua_pushinteger(L, x->next_pc);
    lua_setfield(L, -2, "next_pc");
    cpu_disasm(&x->insn, x->pc, dis, sizeof dis);
    lua_pushstring(L, dis);
    lua_setfield(L, -2, "insn");
    lua_pushstring(L, x->insn.op < OP_COUNT ? cpu_isa[x->insn.op].mnem : "?");
    lua_setfield(L, -2, "mnem");
    lua_pushinteger(L, x->insn.ra);
    lua_setfield(L, -2, "ra");
    lua_pushinteger(L, x->insn.rb);
    lua_setfield(L, -2, "rb");
    lua_pushinteger(L, x->insn.imm);
    lua_setfield(L, -2, "imm");
}

/* The hypervisor asks the scenario to emulate an instruction. */
static int emulate_hook(void *ud, hv *h, hv_vm *vm, const cpu_exit *x) {
    hv_box *b = ud;
    lua_State *L = b->L;
    (void)h;
    lua_getfield(L, LUA_REGISTRYINDEX, "vlab.hv.routines");
    lua_rawgetp(L, -1, b);                        /* routines of this hypervisor */
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_getfield(L, -1, cpu_isa[x->insn.op].mnem);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 3);
        return 0;
    }
    lua_rawgetp(L, -3, (char *)b + 1); /* the VM objects: registry table [b+1] */
    lua_rawgeti(L, -1, vm->id + 1);
    lua_remove(L, -2);
    push_trap(L, x);
    lua_call(L, 2, 1);
    int done = lua_toboolean(L, -1);
    lua_pop(L, 3);
    return done;
}

/* hv:emulate(mnemonic, fn): replace the interpreter routine of a privileged
 * instruction with fn(vm, trap); fn returns true when it emulated it. */
static int hv_emulate(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    const char *mn = luaL_checkstring(L, 2);
    int op = cpu_op_by_mnem(mn);
    if (op == OP_INVALID || cpu_isa[op].part != SYSTEM)
        return luaL_argerror(L, 2, lua_pushfstring(L, "'%s' is not a system instruction", mn));
    if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_getfield(L, LUA_REGISTRYINDEX, "vlab.hv.routines");
    lua_rawgetp(L, -1, b);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, -3, b);
        lua_getiuservalue(L, 1, 1); /* the VM objects, for the routines' first argument */
        lua_rawsetp(L, -3, (char *)b + 1);
    }
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, mn);
    b->h->hooked[op] = !lua_isnil(L, 3);
    b->h->emulate_hook = emulate_hook;
    b->h->emulate_ud = b;
    return 0;
}

/* hv.checkpoint_hook while hv:run runs with a history: a checkpoint before
 * every run slice of the CPU, after whatever the hypervisor did. */
static int checkpoint_hook(void *ud, cpu_t *c) {
    hv_box *b = ud;
    sim_session *s = sim_lua_session(b->L);
    if (sim_history_checkpoint(s->history, b->m->id, c, 1)) {
        b->ckpt_failed = 1;
        return 1;
    }
    b->m->host_dirty = 0;
    return 0;
}

/* hv:run{max_steps=} */
static int hv_run_l(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    sim_session *s = sim_lua_session(L);
    uint64_t max = UINT64_MAX, done = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "max_steps");
        if (!lua_isnil(L, -1)) max = (uint64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    cpu_t *c = b->h->host;
    sim_switch_to(s, b->m);
    b->L = L;
    int rc = CPU_EXIT_BUDGET;
    while (done < max) {
        if (s->limit_msg[0]) return sim_lua_limit(L);
        uint64_t left_global = s->opt.max_steps > s->steps_used ? s->opt.max_steps - s->steps_used : 0;
        if (left_global == 0) {
            snprintf(s->limit_msg, sizeof s->limit_msg,
                     "step budget of %llu steps exhausted (raise it with --max-steps)",
                     (unsigned long long)s->opt.max_steps);
            cpu_trace_flush(&s->trace);
            return sim_lua_limit(L);
        }
        uint64_t slice = max - done;
        if (slice > left_global) slice = left_global;
        if (slice > SLICE) slice = SLICE;
        if (s->history && slice > s->history->every) slice = s->history->every;
        uint64_t before = c->steps;
        b->running = 1;
        b->ckpt_failed = 0;
        b->h->checkpoint_hook = s->history ? checkpoint_hook : NULL;
        b->h->checkpoint_ud = b;
        rc = hv_run(b->h, slice);
        b->h->checkpoint_hook = NULL;
        b->running = 0;
        done += c->steps - before;
        s->steps_used += c->steps - before;
        /* and the machine as the hypervisor left it (after its last exit) */
        if (b->ckpt_failed || (s->history && sim_history_checkpoint(s->history, b->m->id, c, 1)))
            return luaL_error(L, "out of memory keeping the run's history");
        if (s->history) b->m->host_dirty = 0;
        if (rc != CPU_EXIT_BUDGET) break;
        sim_lua_check_time(L);
    }
    cpu_trace_flush(&s->trace);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, rc == CPU_EXIT_BUDGET ? "steps" : rc == CPU_EXIT_HALT ? "halt" : cpu_exit_name(rc));
    lua_setfield(L, -2, "reason");
    set_int(L, "steps", (lua_Integer)c->steps);
    set_int(L, "cycles", (lua_Integer)hv_elapsed(b->h));
    return 1;
}

/* hv:cost(name [, cycles]): "exit", "emulate", "reflect", "vmexit" */
static int hv_cost(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    static const char *const names[] = {"exit",    "emulate", "reflect", "vmexit", "translate",
                                        "callout", "world",   "copy",    NULL};
    uint32_t *slots[] = {&b->h->cost_exit,      &b->h->cost_emulate,   &b->h->cost_reflect,
                         &b->h->cost_vmexit,    &b->h->cost_translate, &b->h->cost_callout,
                         &b->h->cost_world,     &b->h->cost_copy};
    int i = luaL_checkoption(L, 2, NULL, names);
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer v = luaL_checkinteger(L, 3);
        luaL_argcheck(L, v >= 0 && v <= 100000000, 3, "cycles must be 0..1e8");
        *slots[i] = (uint32_t)v;
        return 0;
    }
    lua_pushinteger(L, *slots[i]);
    return 1;
}

/* hv:frames() -> the frame table: totals, and counts = {[frame] = guest pages mapping it} */
static int hv_frames_l(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    hv_frames_summary s;
    hv_frames_summarize(b->h, &s);
    lua_createtable(L, 0, 16);
    set_int(L, "total", s.total);
    set_int(L, "hypervisor", s.hypervisor);
    set_int(L, "guest", s.guest);
    set_int(L, "shared", s.shared);
    set_int(L, "free", s.free);
    set_int(L, "mappings", s.mappings);
    set_int(L, "saved", s.saved);
    set_int(L, "saved_kib", (lua_Integer)s.saved * 4);
    set_int(L, "copies", (lua_Integer)s.copies);
    set_int(L, "restores", (lua_Integer)s.restores);
    set_int(L, "merges", (lua_Integer)s.merges);
    set_int(L, "freed", (lua_Integer)s.freed);
    set_int(L, "clones", (lua_Integer)s.clones);
    set_int(L, "scans", (lua_Integer)s.scans);
    lua_newtable(L);
    for (uint32_t f = 0; f < s.total; f++) {
        uint32_t n = hv_frame_count(b->h, f);
        if (n) {
            lua_pushinteger(L, n);
            lua_rawseti(L, -2, f);
        }
    }
    lua_setfield(L, -2, "counts");
    return 1;
}

/* hv:share_pages{hash=} -> {scanned=, compared=, collisions=, merged=, freed=} */
static int hv_share_pages_l(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    static const char *const names[] = {"fnv1a", "first-word", NULL};
    static const hv_page_hash fns[] = {hv_hash_fnv1a, hv_hash_first_word};
    int which = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "hash");
        if (!lua_isnil(L, -1)) {
            const char *hn = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            for (which = 0; names[which] && strcmp(names[which], hn) != 0; which++) {}
            if (!names[which]) return luaL_error(L, "share_pages: hash must be 'fnv1a' or 'first-word'");
        }
        lua_pop(L, 1);
    }
    if (b->running) return luaL_error(L, "share_pages: not inside hv:run (an emulation routine); scan between runs");
    hv_share_stats st;
    if (hv_share_pages(b->h, fns[which], &st)) return luaL_error(L, "share_pages: out of memory");
    b->m->host_dirty = 1;
    lua_createtable(L, 0, 5);
    set_int(L, "scanned", st.scanned);
    set_int(L, "compared", st.compared);
    set_int(L, "collisions", st.collisions);
    set_int(L, "merged", st.merged);
    set_int(L, "freed", st.freed);
    return 1;
}

/* hv:check_frames() -> true, or nil and what is wrong with the frame table */
static int hv_check_frames(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    char err[200];
    if (hv_frames_check(b->h, err, sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int hv_index(lua_State *L) {
    hv_box *b = check_hv(L, 1);
    const char *k = luaL_checkstring(L, 2);
    const cpu_t *c = b->h->host;
    if (strcmp(k, "cycles") == 0) lua_pushinteger(L, (lua_Integer)hv_elapsed(b->h));
    else if (strcmp(k, "cpus") == 0) lua_pushinteger(L, b->h->ncpus);
    else if (strcmp(k, "hosted") == 0) lua_pushboolean(L, b->h->hosted);
    else if (strcmp(k, "world_switches") == 0) lua_pushinteger(L, (lua_Integer)b->h->world_switches);
    else if (strcmp(k, "steps") == 0) lua_pushinteger(L, (lua_Integer)c->steps);
    else if (strcmp(k, "policy") == 0) lua_pushstring(L, cpu_policy_describe(c));
    else {
        luaL_getmetafield(L, 1, "__methods");
        lua_getfield(L, -1, k);
        if (lua_isnil(L, -1)) return luaL_error(L, "hypervisor has no field or method '%s'", k);
    }
    return 1;
}

void sim_lua_open_hv(lua_State *L) {
    static const luaL_Reg hv_methods[] = {{"vm", hv_vm_create},       {"run", hv_run_l},
                                          {"cost", hv_cost},          {"emulate", hv_emulate},
                                          {"frames", hv_frames_l},    {"share_pages", hv_share_pages_l},
                                          {"check_frames", hv_check_frames}, {"host_disk", hv_host_disk},
                                          {NULL, NULL}};
    static const luaL_Reg hv_meta[] = {{"__index", hv_index}, {"__gc", hv_gc}, {NULL, NULL}};
    static const luaL_Reg vm_methods[] = {{"load", vm_load},       {"load_file", vm_load_file},
                                          {"console", vm_console}, {"read32", vm_read32},
                                          {"bytes", vm_bytes},     {"stats", vm_stats},
                                          {"push", vm_push},       {"pop", vm_pop},
                                          {"vmcs", vm_vmcs},       {"write32", vm_write32},
                                          {"clone", vm_clone},     {"footprint", vm_footprint},
                                          {"destroy", vm_destroy},
                                          {"attach_disk", vm_attach_disk}, {"disk", vm_disk},
                                          {NULL, NULL}};
    static const luaL_Reg vm_meta[] = {{"__index", vm_index}, {"__newindex", vm_newindex},
                                       {"__tostring", vm_tostring}, {NULL, NULL}};
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "vlab.hv.routines");
    luaL_newmetatable(L, MT_HV);
    luaL_setfuncs(L, hv_meta, 0);
    luaL_newlib(L, hv_methods);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    luaL_newmetatable(L, MT_VM);
    luaL_setfuncs(L, vm_meta, 0);
    luaL_newlib(L, vm_methods);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_getglobal(L, "vlab");
    lua_pushcfunction(L, l_hypervisor);
    lua_setfield(L, -2, "hypervisor");
    lua_pop(L, 1);
}
