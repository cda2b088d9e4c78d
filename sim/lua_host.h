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

void sim_lua_open_machine(lua_State *L); /* sim/lua_machine.c: vlab.machine and its methods */
void sim_lua_open_hv(lua_State *L);      /* sim/lua_hv.c: vlab.hypervisor and its VMs */

#endif
