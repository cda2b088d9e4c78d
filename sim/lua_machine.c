/* sim/lua_machine.c -- the `vlab.machine` object for scenarios (shaped like
 * Lua's liolib.c: a metatable name, a check function, methods and
 * metamethods).  Misuse raises a Lua error; simulation outcomes are return
 * values.  docs/lua-api.md documents every method. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cpu/asm.h"
#include "cpu/cpu.h"
#include "hypervisor/disk.h"
#include "sim/lua_host.h"
#include "viz/text.h"

#define MT "vlab.machine"
#define SLICE (1u << 20) /* steps between two looks at the host-time budget */

typedef struct box {
    sim_machine *m;
} box;

static sim_machine *checkm(lua_State *L, int i) {
    box *b = luaL_checkudata(L, i, MT);
    if (!b->m) luaL_argerror(L, i, "machine was freed");
    return b->m;
}

/* A method that changes the machine: the run's history must snapshot it
 * before it runs again (sim/history.h). */
static sim_machine *checkm_w(lua_State *L, int i) {
    sim_machine *m = checkm(L, i);
    m->host_dirty = 1;
    return m;
}

/* ---- names ------------------------------------------------------------------------------- */

static int reg_index(const char *name) {
    if (strcmp(name, "sp") == 0) return CPU_REG_SP;
    if (name[0] == 'r' && name[1] >= '0' && name[1] <= '9') {
        char *end;
        long n = strtol(name + 1, &end, 10);
        if (*end == 0 && n >= 0 && n < 16) return (int)n;
    }
    return -1;
}

static int cr_index(const char *name) {
    for (int i = 0; i < CPU_NCR; i++)
        if (strcmp(name, cpu_cr_names[i]) == 0) return i;
    return -1;
}

static int check_op(lua_State *L, int i) {
    const char *mn = luaL_checkstring(L, i);
    int op = cpu_op_by_mnem(mn);
    if (op == OP_INVALID) luaL_argerror(L, i, lua_pushfstring(L, "unknown instruction '%s'", mn));
    return op;
}

/* a vector from a number or a name: "#GP", "gp", "syscall", "timer", ... */
static int vector_of(lua_State *L, int i) {
    if (lua_type(L, i) == LUA_TNUMBER) {
        lua_Integer v = luaL_checkinteger(L, i);
        luaL_argcheck(L, v >= 0 && v < 256, i, "vector must be 0..255");
        return (int)v;
    }
    const char *n = luaL_checkstring(L, i);
    if (n[0] == '#') n++;
    static const struct {
        const char *name;
        int v;
    } t[] = {{"DE", VEC_DE}, {"de", VEC_DE}, {"BP", VEC_BP},      {"bp", VEC_BP},
             {"UD", VEC_UD}, {"ud", VEC_UD}, {"DF", VEC_DF},      {"df", VEC_DF},
             {"GP", VEC_GP}, {"gp", VEC_GP}, {"PF", VEC_PF},      {"pf", VEC_PF},
             {"MC", VEC_MC}, {"mc", VEC_MC}, {"timer", VEC_IRQ0}, {"syscall", VEC_SYSCALL}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strcmp(n, t[k].name) == 0) return t[k].v;
    return luaL_argerror(L, i, lua_pushfstring(L, "unknown trap '%s'", lua_tostring(L, i)));
}

/* an address from a number or a symbol of a loaded image */
static int lookup_symbol(sim_machine *m, const char *name, uint32_t *v) {
    for (int i = m->nimages - 1; i >= 0; i--)
        if (asm_symbol_value(&m->images[i], name, v) == 0) return 0;
    return -1;
}

static uint32_t check_addr(lua_State *L, sim_machine *m, int i) {
    if (lua_type(L, i) == LUA_TSTRING) {
        uint32_t v;
        if (lookup_symbol(m, lua_tostring(L, i), &v) == 0) return v;
        luaL_argerror(
            L, i, lua_pushfstring(L, "no symbol '%s' in the loaded programs", lua_tostring(L, i)));
    }
    return (uint32_t)luaL_checkinteger(L, i);
}

/* ---- creation ---------------------------------------------------------------------------- */

/* vlab.machine{policy=, memory=, name=} */
static int l_machine(lua_State *L) {
    sim_session *s = sim_lua_session(L);
    const char *policy = s->opt.policy, *name = "machine";
    lua_Integer mem = 1 << 20;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "policy");
        if (!lua_isnil(L, -1)) policy = luaL_checkstring(L, -1);
        lua_getfield(L, 1, "memory");
        if (!lua_isnil(L, -1)) mem = luaL_checkinteger(L, -1);
        lua_getfield(L, 1, "name");
        if (!lua_isnil(L, -1)) name = luaL_checkstring(L, -1);
        lua_pop(L, 3);
    }
    if (mem < 4096 || mem > 0x10000000)
        return luaL_error(L, "machine: memory must be 4 KiB .. 256 MiB");
    char err[160];
    box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->m = NULL;
    luaL_setmetatable(L, MT);
    b->m = sim_machine_new(s, (uint32_t)mem, policy, name, err, sizeof err);
    if (!b->m) {
        if (s->limit_msg[0] || strstr(err, "memory cap")) {
            if (!s->limit_msg[0]) snprintf(s->limit_msg, sizeof s->limit_msg, "%s", err);
            return sim_lua_limit(L);
        }
        return luaL_error(L, "machine: %s", err);
    }
    lua_newtable(L); /* handlers, kept in the user value */
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int m_gc(lua_State *L) {
    box *b = luaL_checkudata(L, 1, MT);
    if (b->m) sim_machine_free(sim_lua_session(L), b->m);
    b->m = NULL;
    return 0;
}

static int m_tostring(lua_State *L) {
    box *b = luaL_checkudata(L, 1, MT);
    if (!b->m) {
        lua_pushliteral(L, "machine (freed)");
        return 1;
    }
    cpu_t *c = b->m->cpu;
    char buf[160];
    snprintf(buf, sizeof buf, "machine %d \"%s\" (%s, pc 0x%08x, ring %d)", b->m->id, b->m->name,
             c->dead     ? "shut down"
             : c->halted ? "halted"
                         : "ready",
             c->pc, c->cpl);
    lua_pushstring(L, buf);
    return 1;
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct inc_ctx {
    lua_State *L;
} inc_ctx;

static char *inc_read(void *ud, const char *from, const char *path, size_t *len, const char **err) {
    static char msg[PATH_MAX + 128];
    inc_ctx *x = ud;
    char *slash = strrchr(from, '/');
    char rel[PATH_MAX];
    if (slash && path[0] != '/')
        snprintf(rel, sizeof rel, "%.*s/%s", (int)(slash - from), from, path);
    else
        snprintf(rel, sizeof rel, "%s", path);
    char *buf = sim_lua_read_file(x->L, rel, len, NULL, 0, msg, sizeof msg);
    if (!buf && strcmp(rel, path) != 0)
        buf = sim_lua_read_file(x->L, path, len, NULL, 0, msg, sizeof msg);
    if (!buf) *err = msg;
    return buf;
}

static int load_text(lua_State *L, sim_machine *m, const char *src, size_t len, const char *name,
                     int opts) {
    int set_entry = 1;
    uint32_t origin = 0;
    if (lua_istable(L, opts)) {
        lua_getfield(L, opts, "entry");
        if (lua_isboolean(L, -1)) set_entry = lua_toboolean(L, -1);
        lua_getfield(L, opts, "org");
        if (!lua_isnil(L, -1)) origin = (uint32_t)luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    inc_ctx ctx = {L};
    asm_options ao = {.read = inc_read, .read_ud = &ctx, .origin = origin};
    asm_image img;
    char *errors = NULL;
    if (asm_assemble(src, len, name, &ao, &img, &errors) != 0) {
        size_t n = errors ? strlen(errors) : 0;
        while (n && errors[n - 1] == '\n')
            n--; /* the traceback adds its own newline */
        lua_pushlstring(L, errors ? errors : "assembly failed", errors ? n : 15);
        free(errors);
        /* assembly errors already carry file:line:col; no Lua position in front */
        return lua_error(L);
    }
    for (int i = 0; i < img.nchunks; i++)
        if (cpu_phys_write(m->cpu, img.chunks[i].addr, img.chunks[i].data, img.chunks[i].len)) {
            uint32_t a = img.chunks[i].addr;
            asm_image_free(&img);
            return luaL_error(L, "load: program bytes at 0x%08x do not fit in the machine's %d KiB",
                              a, (int)(m->cpu->mem_size / 1024));
        }
    asm_image *list = realloc(m->images, (size_t)(m->nimages + 1) * sizeof *list);
    if (!list) {
        asm_image_free(&img);
        return luaL_error(L, "load: out of memory");
    }
    m->images = list;
    m->images[m->nimages++] = img;
    if (set_entry) m->cpu->pc = img.entry;
    lua_newtable(L); /* symbols */
    for (int i = 0; i < img.nsyms; i++) {
        lua_pushinteger(L, img.syms[i].value);
        lua_setfield(L, -2, img.syms[i].name);
    }
    return 1;
}

/* m:load(source [, {entry=true, org=0}]) -> symbols */
static int m_load(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    size_t len;
    const char *src = luaL_checklstring(L, 2, &len);
    lua_Debug ar;
    char name[PATH_MAX];
    snprintf(name, sizeof name, "<string>");
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(name, sizeof name, "<asm from %s:%d>", ar.short_src, ar.currentline);
    return load_text(L, m, src, len, name, 3);
}

/* m:load_file(path [, opts]) -> symbols */
static int m_load_file(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    const char *path = luaL_checkstring(L, 2);
    size_t len;
    char err[PATH_MAX + 128];
    char *buf = sim_lua_read_file(L, path, &len, NULL, 0, err, sizeof err);
    if (!buf) return luaL_error(L, "load_file: %s", err);
    lua_pushlstring(L, buf, len); /* a Lua string: nothing leaks if assembling raises */
    free(buf);
    size_t l2;
    const char *src = lua_tolstring(L, -1, &l2);
    return load_text(L, m, src, l2, path, 3);
}

/* ---- running ----------------------------------------------------------------------------- */

enum {
    U_TRAP = 1,
    U_SYSCALL = 2,
    U_INTERRUPT = 4,
    U_IO = 8,
    U_IRET = 16,
    U_SENSITIVE = 32,
    U_EXCEPTION = 64
};

static unsigned parse_until(lua_State *L, int idx) {
    static const char *const names[] = {"trap",      "syscall",   "interrupt", "io",         "iret",
                                        "sensitive", "exception", "halt",      "breakpoint", NULL};
    static const unsigned bits[] = {U_TRAP,      U_SYSCALL,   U_INTERRUPT, U_IO, U_IRET,
                                    U_SENSITIVE, U_EXCEPTION, 0,           0};
    unsigned u = 0;
    if (lua_isnil(L, idx)) return 0;
    if (lua_isstring(L, idx)) return bits[luaL_checkoption(L, idx, NULL, names)];
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        u |= bits[luaL_checkoption(L, -1, NULL, names)];
        lua_pop(L, 1);
    }
    return u;
}

static uint64_t stop_mask(unsigned u) {
    uint64_t k = 0;
    if (u & (U_TRAP | U_SYSCALL | U_INTERRUPT | U_EXCEPTION)) k |= 1ull << EV_TRAP;
    if (u & U_IO) k |= 1ull << EV_IO;
    if (u & U_IRET) k |= 1ull << EV_IRET;
    if (u & U_SENSITIVE) k |= 1ull << EV_SENSITIVE;
    return k;
}

static int until_matches(unsigned u, const cpu_event *e) {
    switch (e->kind) {
    case EV_TRAP: {
        int cause = e->b & 0xf;
        if (u & U_TRAP) return 1;
        if ((u & U_SYSCALL) && e->a == VEC_SYSCALL && cause == CAUSE_SOFT) return 1;
        if ((u & U_INTERRUPT) && cause == CAUSE_IRQ) return 1;
        if ((u & U_EXCEPTION) && cause != CAUSE_IRQ && cause != CAUSE_SOFT) return 1;
        return 0;
    }
    case EV_IO: return !!(u & U_IO);
    case EV_IRET: return !!(u & U_IRET);
    case EV_SENSITIVE: return !!(u & U_SENSITIVE);
    }
    return 0;
}

static void push_trap_table(lua_State *L, cpu_t *c) {
    const cpu_exit *x = &c->exit;
    char nb[24], dis[64];
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, x->vector);
    lua_setfield(L, -2, "vector");
    lua_pushstring(L, viz_vector_name(x->vector, nb, sizeof nb));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, cpu_cause_name(x->cause));
    lua_setfield(L, -2, "cause");
    lua_pushinteger(L, x->pc);
    lua_setfield(L, -2, "pc");
    lua_pushinteger(L, x->next_pc);
    lua_setfield(L, -2, "next_pc");
    lua_pushinteger(L, x->err);
    lua_setfield(L, -2, "error_code");
    lua_pushinteger(L, x->addr);
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, c->cpl);
    lua_setfield(L, -2, "ring");
    if (x->insn.size) {
        cpu_disasm(&x->insn, x->pc, dis, sizeof dis);
        lua_pushstring(L, dis);
        lua_setfield(L, -2, "insn");
        if (x->insn.op < OP_COUNT) {
            lua_pushstring(L, cpu_isa[x->insn.op].mnem);
            lua_setfield(L, -2, "mnem");
        }
        lua_pushinteger(L, x->insn.ra);
        lua_setfield(L, -2, "ra");
        lua_pushinteger(L, x->insn.rb);
        lua_setfield(L, -2, "rb");
        lua_pushinteger(L, x->insn.imm);
        lua_setfield(L, -2, "imm");
    }
}

static void push_result(lua_State *L, cpu_t *c, const char *reason) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, c->pc);
    lua_setfield(L, -2, "pc");
    lua_pushinteger(L, (lua_Integer)c->steps);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, (lua_Integer)c->cycles);
    lua_setfield(L, -2, "cycles");
    lua_pushinteger(L, c->cpl);
    lua_setfield(L, -2, "ring");
}

/* Call the Lua handler for an intercepted trap; returns what to do. */
enum { ACT_DELIVER, ACT_EMULATE, ACT_RETRY, ACT_STOP };

static int call_handler(lua_State *L, int ud, const char *key, int vector, cpu_t *c) {
    lua_getiuservalue(L, ud, 1);
    if (key)
        lua_getfield(L, -1, key);
    else
        lua_geti(L, -1, vector);
    if (lua_isnil(L, -1) && !key) {
        lua_pop(L, 1);
        lua_getfield(L, -1, "trap");
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);
        return -1;
    }
    lua_remove(L, -2);
    push_trap_table(L, c);
    lua_call(L, 1, 1);
    static const char *const acts[] = {"deliver", "emulate", "retry", "stop", NULL};
    int act = ACT_DELIVER;
    if (!lua_isnil(L, -1)) {
        if (!lua_isstring(L, -1))
            return luaL_error(
                L, "trap handler must return nil, 'deliver', 'emulate', 'retry' or 'stop'");
        const char *a = lua_tostring(L, -1);
        act = -1;
        for (int i = 0; acts[i]; i++)
            if (strcmp(a, acts[i]) == 0) act = i;
        if (act < 0)
            return luaL_error(
                L, "trap handler returned '%s'; expected 'deliver', 'emulate', 'retry' or 'stop'",
                a);
    }
    lua_pop(L, 1);
    return act;
}

/* The one run loop behind step() and run(). */
static int run_machine(lua_State *L, int ud, sim_machine *m, uint64_t max, unsigned until) {
    sim_session *s = sim_lua_session(L);
    cpu_t *c = m->cpu;
    uint64_t done = 0;
    c->stop_on = stop_mask(until);
    sim_switch_to(s, m);
    for (;;) {
        if (s->limit_msg[0]) return sim_lua_limit(L);
        if (done >= max) {
            push_result(L, c, "steps");
            break;
        }
        uint64_t left_global =
            s->opt.max_steps > s->steps_used ? s->opt.max_steps - s->steps_used : 0;
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
        if (s->history) {
            if (slice > s->history->every) slice = s->history->every;
            if (sim_history_checkpoint(s->history, m->id, c, m->host_dirty))
                return luaL_error(L, "out of memory keeping the run's history");
            m->host_dirty = 0;
        }
        uint64_t before = c->steps;
        int rc = cpu_run(c, slice);
        uint64_t ran = c->steps - before;
        done += ran;
        s->steps_used += ran;
        if (rc == CPU_EXIT_BUDGET) {
            sim_lua_check_time(L);
            continue;
        }
        if (rc == CPU_EXIT_TRAP) {
            int act = call_handler(L, ud, NULL, c->exit.vector, c);
            m->host_dirty = 1; /* the host decided what happened next */
            sim_switch_to(s, m);
            if (act < 0 || act == ACT_DELIVER) {
                cpu_deliver(c, c->exit.vector, c->exit.cause, c->exit.err, c->exit.addr);
                if (c->dead) {
                    push_result(L, c, "shutdown");
                    break;
                }
                if (c->stop_req == 2 && until_matches(until, &c->stop_event)) {
                    c->stop_req = 0;
                    push_result(L, c, "trap");
                    break;
                }
                c->stop_req = 0;
            } else if (act == ACT_EMULATE) {
                cpu_emit(c, EV_EMULATE, c->exit.insn.op, 0, c->exit.pc, c->exit.word[0], 0);
                c->pc = c->exit.next_pc;
            } else if (act == ACT_STOP) {
                push_result(L, c, "trap");
                push_trap_table(L, c);
                lua_setfield(L, -2, "trap");
                break;
            } /* ACT_RETRY: pc stays on the instruction */
            continue;
        }
        if (rc == CPU_EXIT_VMX) {
            int act = call_handler(L, ud, "vmx", -1, c);
            m->host_dirty = 1;
            sim_switch_to(s, m);
            if (act < 0) { /* no VMM: VMfailInvalid (CF=1), as with no current VMCS */
                cpu_set_flags(c, (cpu_get_flags(c) & CPU_FL_IF) | CPU_FL_CF); /* others cleared */
                cpu_emit(c, EV_EMULATE, c->exit.insn.op, 0, c->exit.pc, c->exit.word[0], 0);
                c->pc = c->exit.next_pc;
            } else if (act == ACT_EMULATE || act == ACT_DELIVER) {
                cpu_emit(c, EV_EMULATE, c->exit.insn.op, 0, c->exit.pc, c->exit.word[0], 0);
                c->pc = c->exit.next_pc;
            } else if (act == ACT_STOP) {
                push_result(L, c, "vmx");
                break;
            }
            continue;
        }
        if (rc == CPU_EXIT_STOP && m->disk && m->disk->stop_on_done) {
            m->host_dirty = 1; /* the disk wrote memory: checkpoint here (see m_attach_disk) */
            continue;
        }
        if (rc == CPU_EXIT_EVENT) {
            if (until_matches(until, &c->stop_event)) {
                const char *why = c->stop_event.kind == EV_TRAP
                                      ? "trap"
                                      : cpu_event_kind_name(c->stop_event.kind);
                push_result(L, c, why);
                break;
            }
            continue;
        }
        const char *reason = rc == CPU_EXIT_HALT       ? "halt"
                             : rc == CPU_EXIT_BREAK    ? "breakpoint"
                             : rc == CPU_EXIT_SHUTDOWN ? "shutdown"
                                                       : "stop";
        push_result(L, c, reason);
        break;
    }
    c->stop_on = 0;
    c->stop_req = 0;
    cpu_trace_flush(&s->trace);
    return 1;
}

/* m:step([n]) */
static int m_step(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, n >= 1, 2, "step count must be positive");
    return run_machine(L, 1, m, (uint64_t)n, 0);
}

/* m:run([{until=..., max_steps=N}]) */
static int m_run(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint64_t max = UINT64_MAX;
    unsigned until = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "max_steps");
        if (!lua_isnil(L, -1)) {
            lua_Integer n = luaL_checkinteger(L, -1);
            luaL_argcheck(L, n >= 1, 2, "max_steps must be positive");
            max = (uint64_t)n;
        }
        lua_getfield(L, 2, "until");
        until = parse_until(L, lua_gettop(L));
        lua_pop(L, 2);
    }
    return run_machine(L, 1, m, max, until);
}

/* m:on(what, fn): what = "trap" (every vector), a vector number or name, or "vmx" */
static int m_on(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 3);
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "trap") == 0) {
        lua_setfield(L, -2, "trap");
        for (int v = 0; v < CPU_NVEC; v++)
            cpu_intercept(m->cpu, v, !lua_isnil(L, 3));
    } else if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "vmx") == 0) {
        lua_setfield(L, -2, "vmx");
    } else {
        int v = vector_of(L, 2);
        lua_seti(L, -2, v);
        cpu_intercept(m->cpu, v, !lua_isnil(L, 3));
    }
    return 0;
}

static int m_break_at(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    if (cpu_break_add(m->cpu, check_addr(L, m, 2))) return luaL_error(L, "break_at: out of memory");
    return 0;
}

static int m_clear_break(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    lua_pushboolean(L, cpu_break_del(m->cpu, check_addr(L, m, 2)) == 0);
    return 1;
}

/* ---- state ------------------------------------------------------------------------------- */

static int m_index(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    const char *k = luaL_checkstring(L, 2);
    cpu_t *c = m->cpu;
    int r = reg_index(k);
    if (r >= 0)
        lua_pushinteger(L, c->r[r]);
    else if (strcmp(k, "pc") == 0)
        lua_pushinteger(L, c->pc);
    else if (strcmp(k, "flags") == 0)
        lua_pushinteger(L, cpu_get_flags(c));
    else if (strcmp(k, "ring") == 0 || strcmp(k, "cpl") == 0)
        lua_pushinteger(L, c->cpl);
    else if (strcmp(k, "cycles") == 0)
        lua_pushinteger(L, (lua_Integer)c->cycles);
    else if (strcmp(k, "steps") == 0)
        lua_pushinteger(L, (lua_Integer)c->steps);
    else if (strcmp(k, "interrupts") == 0)
        lua_pushboolean(L, !!(c->flags & CPU_FL_IF));
    else if (strcmp(k, "halted") == 0)
        lua_pushboolean(L, c->halted);
    else if (strcmp(k, "dead") == 0)
        lua_pushboolean(L, c->dead);
    else if (strcmp(k, "memory") == 0)
        lua_pushinteger(L, c->mem_size);
    else if (strcmp(k, "name") == 0)
        lua_pushstring(L, m->name);
    else if (strcmp(k, "id") == 0)
        lua_pushinteger(L, m->id);
    else if (strcmp(k, "vmx") == 0)
        lua_pushboolean(L, c->vmx_on);
    else {
        luaL_getmetafield(L, 1, "__methods");
        lua_getfield(L, -1, k);
        if (lua_isnil(L, -1)) return luaL_error(L, "machine has no field or method '%s'", k);
    }
    return 1;
}

static int m_newindex(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    const char *k = luaL_checkstring(L, 2);
    cpu_t *c = m->cpu;
    int r = reg_index(k);
    if (r >= 0)
        c->r[r] = (uint32_t)luaL_checkinteger(L, 3);
    else if (strcmp(k, "pc") == 0)
        c->pc = (uint32_t)luaL_checkinteger(L, 3);
    else if (strcmp(k, "flags") == 0)
        cpu_set_flags(c, (uint32_t)luaL_checkinteger(L, 3));
    else if (strcmp(k, "ring") == 0 || strcmp(k, "cpl") == 0) {
        lua_Integer v = luaL_checkinteger(L, 3);
        luaL_argcheck(L, v >= 0 && v <= 3, 3, "ring must be 0..3");
        cpu_set_cpl(c, (int)v);
    } else if (strcmp(k, "interrupts") == 0) {
        if (lua_toboolean(L, 3))
            c->flags |= CPU_FL_IF;
        else
            c->flags &= ~CPU_FL_IF;
    } else
        return luaL_error(L, "machine field '%s' cannot be set", k);
    return 0;
}

static int mem_result(lua_State *L, int rc, uint32_t addr) {
    if (rc) {
        luaL_pushfail(L);
        char buf[64];
        snprintf(buf, sizeof buf, "address 0x%08x is not mapped or outside memory", addr);
        lua_pushstring(L, buf);
        return 2;
    }
    return 0;
}

/* m:read32(va) / m:read8(va): through the current page tables, no fault */
static int m_read32(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = check_addr(L, m, 2), v = 0;
    int rc = cpu_virt_read(m->cpu, a, &v, 4);
    if (rc) return mem_result(L, rc, a);
    lua_pushinteger(L, v);
    return 1;
}

static int m_read8(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = check_addr(L, m, 2);
    uint8_t v = 0;
    int rc = cpu_virt_read(m->cpu, a, &v, 1);
    if (rc) return mem_result(L, rc, a);
    lua_pushinteger(L, v);
    return 1;
}

static int m_write32(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    uint32_t a = check_addr(L, m, 2), v = (uint32_t)luaL_checkinteger(L, 3);
    int rc = cpu_virt_write(m->cpu, a, &v, 4);
    if (rc) return mem_result(L, rc, a);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_write8(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    uint32_t a = check_addr(L, m, 2);
    uint8_t v = (uint8_t)luaL_checkinteger(L, 3);
    int rc = cpu_virt_write(m->cpu, a, &v, 1);
    if (rc) return mem_result(L, rc, a);
    lua_pushboolean(L, 1);
    return 1;
}

/* m:phys32(pa [, value]) */
static int m_phys32(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = (uint32_t)luaL_checkinteger(L, 2), v = 0;
    if (!lua_isnoneornil(L, 3)) {
        v = (uint32_t)luaL_checkinteger(L, 3);
        m->host_dirty = 1;
        if (cpu_phys_write(m->cpu, a, &v, 4)) return mem_result(L, -1, a);
        return 0;
    }
    if (cpu_phys_read(m->cpu, a, &v, 4)) return mem_result(L, -1, a);
    lua_pushinteger(L, v);
    return 1;
}

/* m:bytes(pa, n): n bytes of physical memory as a string */
static int m_bytes(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = (uint32_t)luaL_checkinteger(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0 && n <= (16 << 20), 3, "at most 16 MiB");
    char *buf = malloc((size_t)n + 1);
    if (!buf) return luaL_error(L, "out of memory");
    if (cpu_phys_read(m->cpu, a, buf, (size_t)n)) {
        free(buf);
        return mem_result(L, -1, a);
    }
    lua_pushlstring(L, buf, (size_t)n);
    free(buf);
    return 1;
}

/* m:read_string(va [, max=256]): bytes up to a NUL */
static int m_read_string(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = check_addr(L, m, 2);
    lua_Integer max = luaL_optinteger(L, 3, 256);
    luaL_argcheck(L, max >= 0 && max <= (1 << 20), 3, "max must be 0..1 MiB");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 0; i < max; i++) {
        uint8_t ch;
        if (cpu_virt_read(m->cpu, a + (uint32_t)i, &ch, 1) || ch == 0) break;
        luaL_addchar(&b, (char)ch);
    }
    luaL_pushresult(&b);
    return 1;
}

/* m:cr(name [, value]) */
static int m_cr(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    const char *n = luaL_checkstring(L, 2);
    int i = cr_index(n);
    if (i < 0)
        return luaL_argerror(
            L, 2,
            lua_pushfstring(L, "unknown control register '%s' (status vbr faddr ptbr ksp)", n));
    if (!lua_isnoneornil(L, 3)) {
        m->host_dirty = 1;
        cpu_set_cr(m->cpu, i, (uint32_t)luaL_checkinteger(L, 3));
        return 0;
    }
    lua_pushinteger(L, cpu_get_cr(m->cpu, i));
    return 1;
}

/* m:policy() -> name; m:policy("strict"); m:policy("popf", "trap"); m:policy("popf") -> behaviour
 */
static int m_policy(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_pushstring(L, cpu_policy_describe(m->cpu));
        return 1;
    }
    const char *a = luaL_checkstring(L, 2);
    if (lua_isnoneornil(L, 3)) {
        if (cpu_policy_preset(m->cpu, a) == 0) {
            m->host_dirty = 1;
            sim_session *s = sim_lua_session(L);
            char note[64];
            int n = snprintf(note, sizeof note, "policy of machine %d is now %s", m->id, a);
            sim_switch_to(s, m);
            sim_text(s, TEXT_NOTE, note, (size_t)n);
            return 0;
        }
        int op = check_op(L, 2);
        if (!cpu_op_configurable(op))
            return luaL_argerror(
                L, 2, lua_pushfstring(L, "'%s' is not a configurable sensitive instruction", a));
        lua_pushstring(L, cpu_behaviour_name(m->cpu->behaviour[op]));
        return 1;
    }
    int op = check_op(L, 2);
    if (!cpu_op_configurable(op))
        return luaL_argerror(
            L, 2, lua_pushfstring(L, "'%s' is not a configurable sensitive instruction", a));
    const char *bn = luaL_checkstring(L, 3);
    int b = cpu_behaviour_by_name(bn);
    if (b < 0)
        return luaL_argerror(L, 3,
                             lua_pushfstring(L, "unknown behaviour '%s' (trap, silent, leak)", bn));
    sim_switch_to(sim_lua_session(L), m);
    m->host_dirty = 1;
    cpu_set_behaviour(m->cpu, op, b);
    return 0;
}

/* m:cost(name [, cycles]): an instruction's mnemonic, "trap" or "walk" */
static int m_cost(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    const char *n = luaL_checkstring(L, 2);
    uint32_t *slot;
    int op = -1;
    if (strcmp(n, "trap") == 0)
        slot = &m->cpu->cost_trap;
    else if (strcmp(n, "walk") == 0)
        slot = &m->cpu->cost_walk;
    else
        slot = &m->cpu->cost[op = check_op(L, 2)];
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer v = luaL_checkinteger(L, 3);
        luaL_argcheck(L, v >= 0 && v <= 100000000, 3, "cycles must be 0..1e8");
        sim_switch_to(sim_lua_session(L), m);
        m->host_dirty = 1;
        if (op >= 0)
            cpu_set_cost(m->cpu, op, (uint32_t)v); /* the trace learns it: EV_COST */
        else
            *slot = (uint32_t)v;
        return 0;
    }
    lua_pushinteger(L, *slot);
    return 1;
}

static int m_console(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    size_t n;
    const char *s = cpu_console(m->cpu, &n);
    lua_pushlstring(L, s, n);
    return 1;
}

static int m_irq(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    lua_Integer line = luaL_checkinteger(L, 2);
    luaL_argcheck(L, line >= 0 && line < 32, 2, "IRQ line must be 0..31");
    cpu_raise_irq(m->cpu, (int)line);
    return 0;
}

/* m:disasm(addr [, n=1]) -> text, one instruction a line */
static int m_disasm(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t a = check_addr(L, m, 2);
    lua_Integer n = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, n >= 1 && n <= 10000, 3, "count must be 1..10000");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 0; i < n; i++) {
        uint32_t w[2] = {0, 0};
        char line[96], dis[64];
        if (cpu_virt_read(m->cpu, a, w, 4)) break;
        cpu_insn in = cpu_decode(w[0], 0);
        if (in.size == 8 && cpu_virt_read(m->cpu, a + 4, &w[1], 4) == 0)
            in = cpu_decode(w[0], w[1]);
        cpu_disasm(&in, a, dis, sizeof dis);
        snprintf(line, sizeof line, "%s%08x  %s", i ? "\n" : "", a, dis);
        luaL_addstring(&b, line);
        a += in.size;
    }
    luaL_pushresult(&b);
    return 1;
}

static int m_symbol(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t v;
    if (lookup_symbol(m, luaL_checkstring(L, 2), &v)) {
        luaL_pushfail(L);
        return 1;
    }
    lua_pushinteger(L, v);
    return 1;
}

static int m_translate(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    uint32_t va = check_addr(L, m, 2), pa;
    int rc = cpu_translate(m->cpu, va, 0, &pa);
    if (rc) {
        luaL_pushfail(L);
        lua_pushstring(L, (rc & 0xff & PF_PRESENT) ? "protection" : "not present");
        return 2;
    }
    lua_pushinteger(L, pa);
    return 1;
}

/* m:attach_disk(d): the machine gets a disk controller on ports 0x1f0-0x1f5
 * and IRQ 14, backed by d (docs/devices.md). */
static int m_attach_disk(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    disk_media *media = sim_lua_check_disk(L, 2);
    char err[160];
    if (m->disk) return luaL_error(L, "attach_disk: machine %d has a disk already", m->id);
    m->disk = disk_attach_native(m->cpu, media, err, sizeof err);
    if (!m->disk) return luaL_error(L, "attach_disk: %s", err);
    /* the TUI rebuilds a machine by running it again without its devices:
     * a checkpoint right after each completion keeps that exact */
    m->disk->stop_on_done = sim_lua_session(L)->history != NULL;
    return 0;
}

/* m:disk() -> the controller's figures, or nil without a disk */
static int m_disk(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    sim_lua_push_disk_stats(L, m->disk);
    return 1;
}

static int m_note(lua_State *L) {
    sim_machine *m = checkm(L, 1);
    size_t n;
    const char *t = luaL_checklstring(L, 2, &n);
    sim_session *s = sim_lua_session(L);
    sim_switch_to(s, m);
    sim_text(s, TEXT_NOTE, t, n);
    return 0;
}

static int m_reset(lua_State *L) {
    sim_machine *m = checkm_w(L, 1);
    cpu_reset(m->cpu);
    return 0;
}

static const luaL_Reg methods[] = {{"load", m_load},
                                   {"load_file", m_load_file},
                                   {"step", m_step},
                                   {"run", m_run},
                                   {"on", m_on},
                                   {"break_at", m_break_at},
                                   {"clear_break", m_clear_break},
                                   {"read32", m_read32},
                                   {"read8", m_read8},
                                   {"write32", m_write32},
                                   {"write8", m_write8},
                                   {"phys32", m_phys32}, {"bytes", m_bytes},
                                   {"read_string", m_read_string},
                                   {"cr", m_cr},
                                   {"policy", m_policy},
                                   {"cost", m_cost},
                                   {"console", m_console},
                                   {"irq", m_irq},
                                   {"disasm", m_disasm},
                                   {"symbol", m_symbol},
                                   {"translate", m_translate},
                                   {"note", m_note},
                                   {"reset", m_reset},
                                   {"attach_disk", m_attach_disk},
                                   {"disk", m_disk},
                                   {NULL, NULL}};

static const luaL_Reg metamethods[] = {
    {"__index", m_index}, {"__newindex", m_newindex}, {"__gc", m_gc},
    {"__close", m_gc},    {"__tostring", m_tostring}, {NULL, NULL}};

void sim_lua_open_machine(lua_State *L) {
    luaL_newmetatable(L, MT);
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_getglobal(L, "vlab");
    lua_pushcfunction(L, l_machine);
    lua_setfield(L, -2, "machine");
    lua_pop(L, 1);
}
