/* sim/lua_host.h -- running a Lua 5.4 scenario: the sandbox, the budgets,
 * errors with file:line and a traceback, and the `vlab` module. */
#ifndef VLAB_SIM_LUA_HOST_H
#define VLAB_SIM_LUA_HOST_H

#include <lua.h>

#include "sim/session.h"

/* Run opt->scenario; returns a SIM_EXIT_* code.  With history_out, the run
 * keeps its history (sim/history.h) and hands it over (free it with
 * sim_history_free and free). */
int sim_run_scenario(const sim_options *opt, sim_history **history_out);

/* For the binding files. */
sim_session *sim_lua_session(lua_State *L);
/* Raise the sticky "budget exhausted" error in s->limit_msg (does not return). */
int sim_lua_limit(lua_State *L);
/* Check the host-time budget; raises if it ran out. */
void sim_lua_check_time(lua_State *L);
/* Read a file the sandbox allows (relative paths: the scenario's folder,
 * then the guest library).  Returns a malloc'd, NUL-terminated buffer, or
 * NULL with a message in err.  `resolved` gets the path opened. */
char *sim_lua_read_file(lua_State *L, const char *path, size_t *len, char *resolved, size_t rlen,
                        char *err, size_t errlen);

/* The same rules, without reading: 0 and the real path in resolved, or -1. */
int sim_lua_resolve_read(lua_State *L, const char *path, char *resolved, size_t rlen, char *err,
                         size_t errlen);
/* Where a new file `name` goes: inside --out DIR, a plain name.  0, or -1
 * with a message (no --out, or a name with a path in it). */
int sim_lua_out_path(lua_State *L, const char *name, char *path, size_t plen, char *err,
                     size_t errlen);
/* The run's private temporary folder, made on first use and removed with
 * its contents at the end of the run; NULL with a message. */
const char *sim_lua_temp_dir(lua_State *L, char *err, size_t errlen);

struct disk_media;
/* sim/lua_disk.c: the disk behind a vlab.disk argument (raises otherwise). */
struct disk_media *sim_lua_check_disk(lua_State *L, int i);
struct disk_ctl;
/* Push a controller's figures (requests, sectors_read, ...), or nil for NULL. */
void sim_lua_push_disk_stats(lua_State *L, const struct disk_ctl *d);

void sim_lua_open_machine(lua_State *L); /* sim/lua_machine.c: vlab.machine and its methods */
void sim_lua_open_hv(lua_State *L);      /* sim/lua_hv.c: vlab.hypervisor and its VMs */
void sim_lua_open_disk(lua_State *L);    /* sim/lua_disk.c: vlab.disk */

#endif
