/* sim/lua_disk.c -- the `vlab.disk` object for scenarios (shaped like
 * sim/lua_machine.c and Lua's liolib.c): a disk image on the host, wrapped
 * as a `blockdev *` (hypervisor/blockdev.h), that m:attach_disk and
 * vm:attach_disk give a machine or a VM.
 *
 * Where an image may live (the sandbox, docs/lua-api.md):
 *   vlab.disk{sectors = N}                 a scratch image in the run's private
 *                                          temporary folder, gone at the end
 *   vlab.disk{file = "x.img", sectors = N} a new image inside --out DIR (created
 *                                          whole or not at all; never replaces a file)
 *   vlab.disk{file = "x.img"}              an existing image inside --out DIR
 *   vlab.disk{image = "x.img"}             an existing image from the scenario's
 *                                          folder or the guest library, read-only
 *   d:overlay{file = "x.cow"}              a copy-on-write overlay over d
 *                                          (hypervisor/cowdisk.c): a linked clone
 *                                          or a snapshot; in --out, or scratch
 *                                          without file=
 * Names must end in ".img" (overlays: ".img" or ".cow").  Nothing is ever
 * written outside --out or the temporary folder. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "hypervisor/cowdisk.h"
#include "hypervisor/disk.h"
#include "sim/lua_host.h"

#define MT "vlab.disk"
#define MAX_SECTORS (1u << 21) /* 1 GiB: a scenario's disk, not a real one */

typedef struct disk_box {
    disk_media *m;
    char kind[8];  /* "scratch", "file", "image", "overlay" */
    char name[64]; /* as the scenario named it */
    blockdev *cow; /* an overlay: its cowdisk (inside m->dev) */
} disk_box;

/* An overlay as the disk's block device: the cowdisk, and a reference to
 * its base's media so the base stays open as long as the overlay does
 * (the Lua object may go before the controllers using it). */
typedef struct owned_overlay {
    blockdev dev;
    blockdev *cow;
    disk_media *base;
} owned_overlay;

static int ov_read(blockdev *d, uint32_t lba, uint32_t count, void *buf) {
    owned_overlay *o = (owned_overlay *)d;
    int rc = blockdev_read(o->cow, lba, count, buf);
    if (rc) snprintf(d->error, sizeof d->error, "%s", o->cow->error);
    return rc;
}

static int ov_write(blockdev *d, uint32_t lba, uint32_t count, const void *buf) {
    owned_overlay *o = (owned_overlay *)d;
    int rc = blockdev_write(o->cow, lba, count, buf);
    if (rc) snprintf(d->error, sizeof d->error, "%s", o->cow->error);
    return rc;
}

static void ov_close(blockdev *d) {
    owned_overlay *o = (owned_overlay *)d;
    blockdev_close(o->cow); /* the overlay first, then its base */
    disk_media_unref(o->base);
    free(o);
}

static void ov_describe(blockdev *d, char *buf, size_t len) {
    owned_overlay *o = (owned_overlay *)d;
    cowdisk_stats st;
    if (cowdisk_get_stats(o->cow, &st)) {
        snprintf(buf, len, "overlay: ?");
        return;
    }
    snprintf(buf, len,
             "copy-on-write overlay: %u of %u clusters (%u KiB each) its own, %llu copied from the "
             "base (%llu KiB), sectors read %llu from it and %llu from the base",
             st.clusters_allocated, st.clusters, st.cluster_sectors / 2,
             (unsigned long long)st.copies, (unsigned long long)(st.bytes_copied / 1024),
             (unsigned long long)st.sectors_read_overlay, (unsigned long long)st.sectors_read_base);
}

static disk_box *check_box(lua_State *L, int i) {
    disk_box *b = luaL_checkudata(L, i, MT);
    if (!b->m) luaL_argerror(L, i, "disk was closed");
    return b;
}

disk_media *sim_lua_check_disk(lua_State *L, int i) {
    return check_box(L, i)->m;
}

static int ends_img(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".img") == 0;
}

static int ends_cow(const char *name) {
    size_t n = strlen(name);
    return ends_img(name) || (n > 4 && strcmp(name + n - 4, ".cow") == 0);
}

static int get_cost(lua_State *L, int t, const char *key, uint32_t *slot) {
    lua_getfield(L, t, key);
    if (!lua_isnil(L, -1)) {
        lua_Integer v = luaL_checkinteger(L, -1);
        if (v < 0 || v > 100000000) return luaL_error(L, "disk: %s must be 0..1e8 cycles", key);
        *slot = (uint32_t)v;
    }
    lua_pop(L, 1);
    return 0;
}

/* vlab.disk{sectors=, file=, image=, latency=, per_sector=} */
static int l_disk(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "sectors");
    int has_sectors = !lua_isnil(L, -1);
    lua_Integer sectors = has_sectors ? luaL_checkinteger(L, -1) : 0;
    lua_getfield(L, 1, "file");
    const char *file = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_getfield(L, 1, "image");
    const char *image = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 3); /* the strings stay alive in the table */
    if (file && image)
        return luaL_error(
            L, "disk: give file= (read-write, in --out) or image= (read-only), not both");
    if (image && has_sectors)
        return luaL_error(L, "disk: an image= is opened as it is: its size comes from the file");
    if ((file || image) && !ends_img(file ? file : image))
        return luaL_error(L, "disk: '%s': a disk image's name must end in .img",
                          file ? file : image);
    if (!file && !image && !has_sectors)
        return luaL_error(L, "disk: give sectors= for a scratch disk");
    if (has_sectors && (sectors < 1 || sectors > (lua_Integer)MAX_SECTORS))
        return luaL_error(L, "disk: sectors must be 1..%d", (int)MAX_SECTORS);

    disk_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, MT);
    char path[PATH_MAX], err[PATH_MAX + 128];
    blockdev *dev = NULL;
    if (image) { /* read-only, from where the scenario may read */
        snprintf(b->kind, sizeof b->kind, "image");
        if (sim_lua_resolve_read(L, image, path, sizeof path, err, sizeof err))
            return luaL_error(L, "disk: %s", err);
        dev = blockdev_open_raw(path, 0, err, sizeof err);
    } else if (file) { /* read-write, inside --out */
        snprintf(b->kind, sizeof b->kind, "file");
        if (sim_lua_out_path(L, file, path, sizeof path, err, sizeof err))
            return luaL_error(L, "disk: %s", err);
        if (has_sectors && blockdev_create_raw(path, (uint32_t)sectors, err, sizeof err))
            return luaL_error(L, "disk: %s", err);
        dev = blockdev_open_raw(path, 1, err, sizeof err);
    } else { /* scratch: created in the private folder, unlinked once open */
        snprintf(b->kind, sizeof b->kind, "scratch");
        const char *dir = sim_lua_temp_dir(L, err, sizeof err);
        if (!dir) return luaL_error(L, "disk: %s", err);
        static unsigned serial; /* names within the private folder only */
        snprintf(path, sizeof path, "%s/scratch-%u.img", dir, ++serial);
        if (blockdev_create_raw(path, (uint32_t)sectors, err, sizeof err))
            return luaL_error(L, "disk: %s", err);
        dev = blockdev_open_raw(path, 1, err, sizeof err);
        unlink(path);
    }
    if (!dev) return luaL_error(L, "disk: %s", err);
    b->m = disk_media_new(dev);
    if (!b->m) {
        blockdev_close(dev);
        return luaL_error(L, "disk: out of memory");
    }
    snprintf(b->name, sizeof b->name, "%s", file ? file : image ? image : "scratch");
    get_cost(L, 1, "latency", &b->m->cost_request);
    get_cost(L, 1, "per_sector", &b->m->cost_sector);
    return 1;
}

static int d_gc(lua_State *L) {
    disk_box *b = luaL_checkudata(L, 1, MT);
    disk_media_unref(b->m); /* attached controllers keep their own reference */
    b->m = NULL;
    return 0;
}

static int d_tostring(lua_State *L) {
    disk_box *b = luaL_checkudata(L, 1, MT);
    if (!b->m) {
        lua_pushliteral(L, "disk (closed)");
        return 1;
    }
    const blockdev *d = b->m->dev;
    lua_pushfstring(L, "disk \"%s\" (%s, %d sectors, %d KiB, %s)", b->name, b->kind,
                    (int)d->sectors, (int)(d->sectors / 2),
                    d->readonly ? "read-only" : "read-write");
    return 1;
}

static uint32_t check_lba(lua_State *L, int i) {
    lua_Integer v = luaL_checkinteger(L, i);
    luaL_argcheck(L, v >= 0 && v <= UINT32_MAX, i, "sector must be 0..2^32-1");
    return (uint32_t)v;
}

/* d:read(lba [, count = 1]) -> string of count * 512 bytes */
static int d_read(lua_State *L) {
    disk_box *b = check_box(L, 1);
    uint32_t lba = check_lba(L, 2);
    lua_Integer n = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, n >= 1 && n <= 2048, 3, "count must be 1..2048 sectors");
    luaL_Buffer buf;
    char *p = luaL_buffinitsize(L, &buf, (size_t)n * BLOCKDEV_SECTOR);
    if (blockdev_read(b->m->dev, lba, (uint32_t)n, p))
        return luaL_error(L, "disk:read: %s", b->m->dev->error);
    luaL_pushresultsize(&buf, (size_t)n * BLOCKDEV_SECTOR);
    return 1;
}

/* d:write(lba, data): data fills whole sectors from lba, the last one
 * padded with zeros.  Returns the sectors written. */
static int d_write(lua_State *L) {
    disk_box *b = check_box(L, 1);
    uint32_t lba = check_lba(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, len > 0 && len <= 2048u * BLOCKDEV_SECTOR, 3, "data must be 1 byte .. 1 MiB");
    uint32_t n = (uint32_t)((len + BLOCKDEV_SECTOR - 1) / BLOCKDEV_SECTOR);
    char *p = calloc(n, BLOCKDEV_SECTOR);
    if (!p) return luaL_error(L, "disk:write: out of memory");
    memcpy(p, data, len);
    int rc = blockdev_write(b->m->dev, lba, n, p);
    free(p);
    if (rc) return luaL_error(L, "disk:write: %s", b->m->dev->error);
    lua_pushinteger(L, n);
    return 1;
}

/* d:overlay{file=, cluster=} -> a copy-on-write overlay over d: reads of
 * clusters it does not hold fall through to d, the first write to a
 * cluster copies it from d first; d is never written (except by commit). */
static int d_overlay(lua_State *L) {
    disk_box *base = check_box(L, 1);
    const char *file = NULL;
    lua_Integer cluster = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "file");
        if (!lua_isnil(L, -1)) file = luaL_checkstring(L, -1);
        lua_getfield(L, 2, "cluster");
        if (!lua_isnil(L, -1)) cluster = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    if (file && !ends_cow(file))
        return luaL_error(L, "disk:overlay: '%s': an overlay's name must end in .cow or .img", file);
    if (cluster < 0 || cluster > (lua_Integer)COWDISK_MAX_CLUSTER)
        return luaL_error(L, "disk:overlay: cluster must be 1..%d sectors (a power of two)",
                          (int)COWDISK_MAX_CLUSTER);
    char path[PATH_MAX], err[PATH_MAX + 128];
    if (file) {
        if (sim_lua_out_path(L, file, path, sizeof path, err, sizeof err))
            return luaL_error(L, "disk:overlay: %s", err);
    } else {
        const char *dir = sim_lua_temp_dir(L, err, sizeof err);
        if (!dir) return luaL_error(L, "disk:overlay: %s", err);
        static unsigned serial;
        snprintf(path, sizeof path, "%s/overlay-%u.cow", dir, ++serial);
    }
    blockdev *b = base->m->dev;
    if (cowdisk_create(path, b, (uint32_t)cluster, err, sizeof err))
        return luaL_error(L, "disk:overlay: %s", err);
    blockdev *cow = cowdisk_open(path, b, 1, err, sizeof err);
    if (!file) unlink(path); /* scratch: gone with the run */
    if (!cow) return luaL_error(L, "disk:overlay: %s", err);
    owned_overlay *o = calloc(1, sizeof *o);
    if (!o) {
        blockdev_close(cow);
        return luaL_error(L, "disk:overlay: out of memory");
    }
    o->cow = cow;
    o->base = disk_media_ref(base->m);
    o->dev.sectors = cow->sectors;
    o->dev.read = ov_read;
    o->dev.write = ov_write;
    o->dev.close = ov_close;
    o->dev.describe = ov_describe;
    disk_box *nb = lua_newuserdatauv(L, sizeof *nb, 1);
    memset(nb, 0, sizeof *nb);
    luaL_setmetatable(L, MT);
    nb->m = disk_media_new(&o->dev);
    if (!nb->m) {
        ov_close(&o->dev);
        return luaL_error(L, "disk:overlay: out of memory");
    }
    nb->cow = cow;
    nb->m->cost_request = base->m->cost_request; /* the same disk underneath */
    nb->m->cost_sector = base->m->cost_sector;
    snprintf(nb->kind, sizeof nb->kind, "overlay");
    snprintf(nb->name, sizeof nb->name, "%s", file ? file : "scratch overlay");
    lua_pushvalue(L, 1); /* o.base */
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static disk_box *check_overlay(lua_State *L, const char *what) {
    disk_box *b = check_box(L, 1);
    if (!b->cow) luaL_error(L, "disk:%s: '%s' is not an overlay (make one with d:overlay())", what, b->name);
    return b;
}

/* o:commit(): copy the overlay's clusters into its base (which must be
 * writable), then empty the overlay.  Every other overlay of that base sees
 * the change. */
static int d_commit(lua_State *L) {
    disk_box *b = check_overlay(L, "commit");
    if (cowdisk_commit(b->cow)) return luaL_error(L, "disk:commit: %s", b->cow->error);
    return 0;
}

/* o:discard(): empty the overlay: the disk reads as its base again. */
static int d_discard(lua_State *L) {
    disk_box *b = check_overlay(L, "discard");
    if (cowdisk_discard(b->cow)) return luaL_error(L, "disk:discard: %s", b->cow->error);
    return 0;
}

static void set_num(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* o:overlay_stats() -> {cluster_sectors, clusters, clusters_allocated, copies,
 * bytes_copied, sectors_read_overlay, sectors_read_base, sectors_written,
 * commits, discards} */
static int d_overlay_stats(lua_State *L) {
    disk_box *b = check_overlay(L, "overlay_stats");
    cowdisk_stats st;
    cowdisk_get_stats(b->cow, &st);
    lua_createtable(L, 0, 10);
    set_num(L, "cluster_sectors", st.cluster_sectors);
    set_num(L, "clusters", st.clusters);
    set_num(L, "clusters_allocated", st.clusters_allocated);
    set_num(L, "copies", (lua_Integer)st.copies);
    set_num(L, "bytes_copied", (lua_Integer)st.bytes_copied);
    set_num(L, "sectors_read_overlay", (lua_Integer)st.sectors_read_overlay);
    set_num(L, "sectors_read_base", (lua_Integer)st.sectors_read_base);
    set_num(L, "sectors_written", (lua_Integer)st.sectors_written);
    set_num(L, "commits", (lua_Integer)st.commits);
    set_num(L, "discards", (lua_Integer)st.discards);
    return 1;
}

static int d_index(lua_State *L) {
    disk_box *b = check_box(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "sectors") == 0)
        lua_pushinteger(L, b->m->dev->sectors);
    else if (strcmp(k, "readonly") == 0)
        lua_pushboolean(L, b->m->dev->readonly);
    else if (strcmp(k, "kind") == 0)
        lua_pushstring(L, b->kind);
    else if (strcmp(k, "name") == 0)
        lua_pushstring(L, b->name);
    else if (strcmp(k, "latency") == 0)
        lua_pushinteger(L, b->m->cost_request);
    else if (strcmp(k, "per_sector") == 0)
        lua_pushinteger(L, b->m->cost_sector);
    else if (strcmp(k, "base") == 0) { /* an overlay's base disk, or nil */
        if (b->cow)
            lua_getiuservalue(L, 1, 1);
        else
            lua_pushnil(L);
    } else {
        luaL_getmetafield(L, 1, "__methods");
        lua_getfield(L, -1, k);
        if (lua_isnil(L, -1)) return luaL_error(L, "disk has no field or method '%s'", k);
    }
    return 1;
}

static int d_newindex(lua_State *L) {
    disk_box *b = check_box(L, 1);
    const char *k = luaL_checkstring(L, 2);
    uint32_t *slot = strcmp(k, "latency") == 0      ? &b->m->cost_request
                     : strcmp(k, "per_sector") == 0 ? &b->m->cost_sector
                                                    : NULL;
    if (!slot) return luaL_error(L, "disk field '%s' cannot be set (latency, per_sector can)", k);
    lua_Integer v = luaL_checkinteger(L, 3);
    luaL_argcheck(L, v >= 0 && v <= 100000000, 3, "cycles must be 0..1e8");
    *slot = (uint32_t)v;
    return 0;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void sim_lua_push_disk_stats(lua_State *L, const struct disk_ctl *d) {
    if (!d) {
        luaL_pushfail(L);
        return;
    }
    lua_createtable(L, 0, 8);
    set_int(L, "requests", (lua_Integer)d->requests);
    set_int(L, "sectors_read", (lua_Integer)d->sectors_read);
    set_int(L, "sectors_written", (lua_Integer)d->sectors_written);
    set_int(L, "failures", (lua_Integer)d->failures);
    set_int(L, "busy_cycles", (lua_Integer)d->busy_cycles);
    set_int(L, "status", (lua_Integer)d->status);
    lua_pushboolean(L, d->busy);
    lua_setfield(L, -2, "busy");
    int code = (int)(d->status >> DISK_ST_CODE_SHIFT) & 0xff;
    lua_pushstring(L, (d->status & DISK_ST_ERROR) ? disk_error_name(code) : "ok");
    lua_setfield(L, -2, "error");
}

void sim_lua_open_disk(lua_State *L) {
    static const luaL_Reg methods[] = {{"read", d_read},
                                       {"write", d_write},
                                       {"overlay", d_overlay},
                                       {"commit", d_commit},
                                       {"discard", d_discard},
                                       {"overlay_stats", d_overlay_stats},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__index", d_index}, {"__newindex", d_newindex}, {"__gc", d_gc},
        {"__close", d_gc},    {"__tostring", d_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_getglobal(L, "vlab");
    lua_pushcfunction(L, l_disk);
    lua_setfield(L, -2, "disk");
    lua_pop(L, 1);
}
