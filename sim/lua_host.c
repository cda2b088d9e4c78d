/* sim/lua_host.c -- the Lua 5.4 host: state with a memory cap, a count hook
 * for the instruction and time budgets, the sandbox, `print` into the event
 * stream, expectations, and errors reported as file:line plus a traceback
 * (shaped like lua.c's msghandler/docall). */
#include "sim/lua_host.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#define HOOK_PERIOD 1000 /* Lua instructions between two looks at the budgets */

static sim_session *S_of(lua_State *L) {
    return *(sim_session **)lua_getextraspace(L);
}
sim_session *sim_lua_session(lua_State *L) {
    return S_of(L);
}

/* ---- memory cap ------------------------------------------------------------------------ */

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sim_session *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->lua_bytes -= old;
        return NULL;
    }
    if (nsize > old && s->lua_bytes - old + nsize + s->machine_bytes > s->opt.mem_limit) {
        if (!s->limit_msg[0])
            snprintf(s->limit_msg, sizeof s->limit_msg,
                     "memory cap of %zu MiB exhausted (raise it with --mem-limit)",
                     s->opt.mem_limit >> 20);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) s->lua_bytes = s->lua_bytes - old + nsize;
    return p;
}

/* ---- budgets --------------------------------------------------------------------------- */

int sim_lua_limit(lua_State *L) {
    sim_session *s = S_of(L);
    lua_newtable(L);
    lua_pushstring(L, s->limit_msg);
    lua_setfield(L, -2, "vlab_limit");
    return lua_error(L);
}

void sim_lua_check_time(lua_State *L) {
    sim_session *s = S_of(L);
    if (s->limit_msg[0] || sim_check_time(s)) sim_lua_limit(L);
}

static void hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sim_session *s = S_of(L);
    s->lua_count++;
    if (!s->limit_msg[0] && s->lua_count * HOOK_PERIOD > s->opt.lua_budget)
        snprintf(s->limit_msg, sizeof s->limit_msg,
                 "Lua instruction budget of %llu exhausted (raise it with --lua-budget)",
                 (unsigned long long)s->opt.lua_budget);
    if (!s->limit_msg[0] && (s->lua_count & 63) == 0) sim_check_time(s);
    if (s->limit_msg[0]) {
        lua_sethook(L, hook, LUA_MASKCOUNT, 1); /* sticky: a pcall cannot swallow it */
        sim_lua_limit(L);
    }
}

/* ---- files ----------------------------------------------------------------------------- */

static char *dir_of(const char *path) {
    char *rp = realpath(path, NULL);
    if (!rp) return NULL;
    char *slash = strrchr(rp, '/');
    if (slash && slash != rp)
        *slash = 0;
    else if (slash)
        slash[1] = 0;
    return rp;
}

static int under(const char *path, const char *root) {
    if (!root) return 0;
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 &&
           (path[n] == '/' || path[n] == 0 || strcmp(root, "/") == 0);
}

typedef struct host {
    sim_session *s;
    char *scenario_dir; /* realpath */
    char *guest_dir;    /* realpath, or NULL */
    char *out_dir;      /* realpath, or NULL */
    char *temp_dir;     /* the run's private temporary folder (scratch disks), or NULL */
} host;

static host *H_of(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, "vlab.host");
    host *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

static char *slurp(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap > (64u << 20)) {
                snprintf(err, errlen, "'%s' is larger than 64 MiB", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *p = realloc(buf, cap * 2 + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "cannot read '%s'", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int sim_lua_resolve_read(lua_State *L, const char *path, char *resolved, size_t rlen, char *err,
                         size_t errlen) {
    host *h = H_of(L);
    char cand[PATH_MAX];
    const char *roots[2] = {h->scenario_dir, h->guest_dir};
    for (int i = 0; i < 2; i++) {
        if (path[0] == '/') {
            if (i) break;
            snprintf(cand, sizeof cand, "%s", path);
        } else {
            if (!roots[i]) continue;
            snprintf(cand, sizeof cand, "%s/%s", roots[i], path);
        }
        char *rp = realpath(cand, NULL);
        if (!rp) continue;
        if (!h->s->opt.unsafe && !under(rp, h->scenario_dir) && !under(rp, h->guest_dir)) {
            snprintf(err, errlen,
                     "'%s' is outside the scenario's folder and the guest library (sandbox; "
                     "--unsafe lifts this)",
                     path);
            free(rp);
            return -1;
        }
        snprintf(resolved, rlen, "%s", rp);
        free(rp);
        return 0;
    }
    snprintf(err, errlen, "cannot find '%s' in the scenario's folder%s", path,
             h->guest_dir ? " or the guest library" : "");
    return -1;
}

char *sim_lua_read_file(lua_State *L, const char *path, size_t *len, char *resolved, size_t rlen,
                        char *err, size_t errlen) {
    char rp[PATH_MAX];
    if (sim_lua_resolve_read(L, path, rp, sizeof rp, err, errlen)) return NULL;
    if (resolved) snprintf(resolved, rlen, "%s", rp);
    return slurp(rp, len, err, errlen);
}

int sim_lua_out_path(lua_State *L, const char *name, char *path, size_t plen, char *err,
                     size_t errlen) {
    host *h = H_of(L);
    if (!h->out_dir && !h->s->opt.unsafe) {
        snprintf(err, errlen, "writing files needs an output folder: run with --out DIR");
        return -1;
    }
    if (!h->s->opt.unsafe && (name[0] == '/' || strstr(name, "..") || !*name)) {
        snprintf(err, errlen, "'%s' must be a plain name inside the output folder", name);
        return -1;
    }
    if (name[0] == '/' || !h->out_dir)
        snprintf(path, plen, "%s", name);
    else
        snprintf(path, plen, "%s/%s", h->out_dir, name);
    return 0;
}

const char *sim_lua_temp_dir(lua_State *L, char *err, size_t errlen) {
    host *h = H_of(L);
    if (h->temp_dir) return h->temp_dir;
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/vlab-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        snprintf(err, errlen, "cannot create a temporary folder in %s: %s",
                 base && *base ? base : "/tmp", strerror(errno));
        return NULL;
    }
    h->temp_dir = strdup(tmpl);
    if (!h->temp_dir) {
        rmdir(tmpl);
        snprintf(err, errlen, "out of memory");
    }
    return h->temp_dir;
}

/* The private temporary folder goes at the end of the run, with whatever
 * is left in it (only vlab's own files: the folder was made by mkdtemp). */
static void remove_temp_dir(host *h) {
    if (!h->temp_dir) return;
    DIR *d = opendir(h->temp_dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", h->temp_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(h->temp_dir);
    free(h->temp_dir);
    h->temp_dir = NULL;
}

/* vlab.read_file(path) -> string */
static int l_read_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    char err[PATH_MAX + 128];
    char *buf = sim_lua_read_file(L, path, &len, NULL, 0, err, sizeof err);
    if (!buf) return luaL_error(L, "%s", err);
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

/* vlab.write_file(name, data): whole or not at all, inside --out DIR. */
static int l_write_file(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    char path[PATH_MAX], tmp[PATH_MAX + 8], err[PATH_MAX + 64];
    if (sim_lua_out_path(L, name, path, sizeof path, err, sizeof err))
        return luaL_error(L, "write_file: %s", err);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return luaL_error(L, "write_file: cannot create '%s': %s", path, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return luaL_error(L, "write_file: writing '%s' failed", path);
    }
    return 0;
}

/* ---- print, expectations ----------------------------------------------------------------- */

static void append_tostring(lua_State *L, luaL_Buffer *b, int idx) {
    size_t n;
    const char *s = luaL_tolstring(L, idx, &n);
    luaL_addvalue(b);
    (void)s;
    (void)n;
}

static int l_print(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        append_tostring(L, &b, i);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    sim_text(S_of(L), TEXT_PRINT, s, len);
    return 0;
}

static int l_io_write(lua_State *L) {
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        sim_text(S_of(L), TEXT_PRINT, s, len);
    }
    return 0;
}

static int expect_fail(lua_State *L, const char *msg) {
    sim_session *s = S_of(L);
    s->expect_failed++;
    luaL_where(L, 1);
    lua_pushfstring(L, "%sexpectation failed: %s", lua_tostring(L, -1), msg);
    lua_newtable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, "vlab_expect");
    return lua_error(L);
}

/* expect(cond [, message]) */
static int l_expect(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_toboolean(L, 1)) {
        S_of(L)->expect_passed++;
        return 0;
    }
    return expect_fail(L, luaL_optstring(L, 2, "condition is false"));
}

/* expect_eq(got, want [, message]) */
static int l_expect_eq(lua_State *L) {
    luaL_checkany(L, 1);
    luaL_checkany(L, 2);
    if (lua_rawequal(L, 1, 2) ||
        (lua_type(L, 1) == lua_type(L, 2) && lua_compare(L, 1, 2, LUA_OPEQ))) {
        S_of(L)->expect_passed++;
        return 0;
    }
    const char *what = luaL_optstring(L, 3, "values differ");
    const char *got = luaL_tolstring(L, 1, NULL);
    const char *want = luaL_tolstring(L, 2, NULL);
    const char *msg = lua_pushfstring(L, "%s (got %s, expected %s)", what, got, want);
    return expect_fail(L, msg);
}

/* ---- sandboxed loading ------------------------------------------------------------------- */

static int load_chunk(lua_State *L, const char *buf, size_t len, const char *name) {
    int r = luaL_loadbufferx(L, buf, len, name, "t");
    if (r == LUA_OK) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return r;
}

/* load(chunk [, name [, mode [, env]]]): text only */
static int l_load(lua_State *L) {
    size_t len;
    const char *chunk = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strchr(mode, 'b')) return luaL_error(L, "load: binary chunks are not allowed (sandbox)");
    int r = luaL_loadbufferx(L, chunk, len, name, "t");
    if (r != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4)) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

static int l_dofile(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    char err[PATH_MAX + 128], res[PATH_MAX];
    char *buf = sim_lua_read_file(L, path, &len, res, sizeof res, err, sizeof err);
    if (!buf) return luaL_error(L, "%s", err);
    lua_pushfstring(L, "@%s", path);
    int r = load_chunk(L, buf, len, lua_tostring(L, -1));
    free(buf);
    if (r != LUA_OK) return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 2;
}

/* require(name): Lua modules (name.lua, dots as folders) from the scenario's
 * folder or the guest library; cached in the registry. */
static int l_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "vlab.loaded");
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    char path[PATH_MAX], err[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s.lua", name);
    for (char *p = path; *p && p < path + strlen(path) - 4; p++)
        if (*p == '.') *p = '/';
    size_t len;
    char *buf = sim_lua_read_file(L, path, &len, NULL, 0, err, sizeof err);
    if (!buf) return luaL_error(L, "require '%s': %s", name, err);
    lua_pushfstring(L, "@%s", path);
    int r = load_chunk(L, buf, len, lua_tostring(L, -1));
    free(buf);
    if (r != LUA_OK) return lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, name);
    return 1;
}

/* pairs in a deterministic order: Lua seeds its string hashes from the host
 * clock and addresses, so raw next() order can differ between two runs. */
static const char *const PRELUDE =
    "local next, type, sort, tostring = next, type, table.sort, tostring\n"
    "local rank = {number = 1, string = 2, boolean = 3}\n"
    "local function before(a, b)\n"
    "  local ta, tb = rank[type(a)] or 4, rank[type(b)] or 4\n"
    "  if ta ~= tb then return ta < tb end\n"
    "  if ta == 3 then return (not a) and b end\n"
    "  if ta == 4 then return false end\n"
    "  return a < b\n"
    "end\n"
    "function pairs(t)\n"
    "  local mt = getmetatable(t)\n"
    "  if type(mt) == 'table' and mt.__pairs then return mt.__pairs(t) end\n"
    "  local keys, n = {}, 0\n"
    "  for k in next, t do n = n + 1; keys[n] = k end\n"
    "  sort(keys, before)\n"
    "  local i = 0\n"
    "  return function()\n"
    "    i = i + 1\n"
    "    local k = keys[i]\n"
    "    if k ~= nil then return k, t[k] end\n"
    "  end, t, nil\n"
    "end\n";

static void build_env(lua_State *L, const sim_options *o) {
    if (o->unsafe) {
        luaL_openlibs(L);
    } else {
        static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                        {LUA_COLIBNAME, luaopen_coroutine},
                                        {LUA_TABLIBNAME, luaopen_table},
                                        {LUA_STRLIBNAME, luaopen_string},
                                        {LUA_MATHLIBNAME, luaopen_math},
                                        {LUA_UTF8LIBNAME, luaopen_utf8},
                                        {NULL, NULL}};
        for (const luaL_Reg *l = libs; l->func; l++) {
            luaL_requiref(L, l->name, l->func, 1);
            lua_pop(L, 1);
        }
        static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", NULL};
        for (int i = 0; removed[i]; i++) {
            lua_pushnil(L);
            lua_setglobal(L, removed[i]);
        }
        lua_getglobal(L, "string");
        lua_pushnil(L);
        lua_setfield(L, -2, "dump");
        lua_pop(L, 1);
        lua_pushcfunction(L, l_load);
        lua_setglobal(L, "load");
        lua_pushcfunction(L, l_dofile);
        lua_setglobal(L, "dofile");
        lua_pushcfunction(L, l_require);
        lua_setglobal(L, "require");
        /* io: only writing to the trace's output */
        lua_newtable(L);
        lua_pushcfunction(L, l_io_write);
        lua_setfield(L, -2, "write");
        lua_setglobal(L, "io");
    }
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "vlab.loaded");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    /* the only random number generator, seeded from --seed */
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)o->seed);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, PRELUDE, strlen(PRELUDE), "=prelude", "t") == LUA_OK)
        lua_call(L, 0, 0);
    else
        lua_pop(L, 1);
}

static int l_hex(lua_State *L) {
    lua_Integer v = luaL_checkinteger(L, 1);
    char buf[16];
    snprintf(buf, sizeof buf, "0x%08x", (unsigned)(uint32_t)v);
    lua_pushstring(L, buf);
    return 1;
}

static void open_vlab(lua_State *L, const sim_options *o) {
    lua_newtable(L);
    static const luaL_Reg fns[] = {{"read_file", l_read_file},
                                   {"write_file", l_write_file},
                                   {"expect", l_expect},
                                   {"expect_eq", l_expect_eq},
                                   {"hex", l_hex},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    lua_pushinteger(L, (lua_Integer)o->seed);
    lua_setfield(L, -2, "seed");
    lua_pushstring(L, o->policy);
    lua_setfield(L, -2, "policy");
    lua_pushstring(L, o->scenario);
    lua_setfield(L, -2, "scenario");
    lua_createtable(L, o->nargs, 0);
    for (int i = 0; i < o->nargs; i++) {
        lua_pushstring(L, o->args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "args");
    lua_setglobal(L, "vlab");
    sim_lua_open_machine(L); /* adds vlab.machine */
    sim_lua_open_hv(L);      /* adds vlab.hypervisor */
    sim_lua_open_disk(L);    /* adds vlab.disk */
    lua_pushcfunction(L, l_expect);
    lua_setglobal(L, "expect");
    lua_pushcfunction(L, l_expect_eq);
    lua_setglobal(L, "expect_eq");
}

/* ---- running ----------------------------------------------------------------------------- */

static int msghandler(lua_State *L) {
    if (lua_istable(L, 1)) return 1; /* expectations and budgets: reported as they are */
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int sim_run_scenario(const sim_options *opt_in, sim_history **history_out) {
    sim_options o = *opt_in;
    const sim_options *opt = &o;
    if (history_out) {
        o.keep_history = 1;
        *history_out = NULL;
    }
    sim_session *s = malloc(sizeof *s);
    host h = {0};
    if (!s) return SIM_EXIT_FAIL;
    if (sim_session_init(s, opt) < 0) {
        sim_session_close(s, 0);
        free(s);
        return SIM_EXIT_FAIL;
    }
    h.s = s;
    h.scenario_dir = dir_of(opt->scenario);
    h.guest_dir = opt->guest_dir ? realpath(opt->guest_dir, NULL) : NULL;
    if (opt->out_dir) {
        h.out_dir = realpath(opt->out_dir, NULL);
        if (!h.out_dir) {
            fprintf(stderr, "vlab: output folder '%s': %s\n", opt->out_dir, strerror(errno));
            sim_session_close(s, 0);
            free(s);
            return SIM_EXIT_USAGE;
        }
    }
    int rc = SIM_EXIT_OK;
    char err[PATH_MAX + 128];
    size_t len = 0;
    char *src = slurp(opt->scenario, &len, err, sizeof err);
    lua_State *L = src ? lua_newstate(lua_alloc, s) : NULL;
    if (!src || !L) {
        fprintf(stderr, "vlab: %s\n", src ? "cannot create the Lua state" : err);
        free(src);
        free(h.scenario_dir);
        free(h.guest_dir);
        free(h.out_dir);
        sim_session_close(s, 0);
        free(s);
        return SIM_EXIT_FAIL;
    }
    *(sim_session **)lua_getextraspace(L) = s;
    lua_pushlightuserdata(L, &h);
    lua_setfield(L, LUA_REGISTRYINDEX, "vlab.host");

    char header[512];
    int hl = snprintf(header, sizeof header, "vlab trace: scenario %s, policy %s, seed %llu",
                      opt->scenario, opt->policy, (unsigned long long)opt->seed);
    sim_text(s, TEXT_HEADER, header,
             (size_t)(hl < (int)sizeof header ? hl : (int)sizeof header - 1));

    build_env(L, opt);
    open_vlab(L, opt);
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_PERIOD);

    lua_pushcfunction(L, msghandler);
    char chunkname[PATH_MAX + 2];
    snprintf(chunkname, sizeof chunkname, "@%s", opt->scenario);
    int r = luaL_loadbufferx(L, src, len, chunkname, "t");
    free(src);
    if (r == LUA_OK) r = lua_pcall(L, 0, 0, -2);
    if (r == LUA_OK || !s->limit_msg[0]) sim_print_summary(s);
    cpu_trace_flush(&s->trace);
    fflush(stdout);
    if (r != LUA_OK) {
        if (s->limit_msg[0]) {
            fprintf(stderr, "vlab: %s: %s\n", opt->scenario, s->limit_msg);
            rc = SIM_EXIT_LIMIT;
        } else if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "vlab_expect");
            fprintf(stderr, "%s\n",
                    lua_tostring(L, -1) ? lua_tostring(L, -1) : "expectation failed");
            lua_pop(L, 1);
            rc = SIM_EXIT_FAIL;
        } else {
            const char *m = lua_tostring(L, -1);
            fprintf(stderr, "vlab: %s\n", m ? m : "error");
            rc = SIM_EXIT_FAIL;
        }
    }
    lua_close(L); /* closes the disks */
    remove_temp_dir(&h);
    cpu_trace_flush(&s->trace);
    if (history_out) {
        s->keep_history_after_close = 1;
        *history_out = s->history;
    }
    if (sim_session_close(s, 1) < 0 && rc == SIM_EXIT_OK) rc = SIM_EXIT_FAIL;
    free(h.scenario_dir);
    free(h.guest_dir);
    free(h.out_dir);
    free(s);
    return rc;
}
