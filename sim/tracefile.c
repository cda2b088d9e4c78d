/* sim/tracefile.c -- writing and replaying binary trace files (see tracefile.h). */
#include "sim/tracefile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the trace file format is little-endian; add byte swapping for this host"
#endif

static const char MAGIC[8] = {'V', 'L', 'A', 'B', 'T', 'R', 'C', 1};

struct sim_tracefile {
    FILE *f;
    char *path, *tmp;
    int failed;
    int err_no;
};

sim_tracefile *sim_tracefile_create(const char *path, char *err, size_t errlen) {
    sim_tracefile *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = strlen(path);
    t->path = strdup(path);
    t->tmp = malloc(n + 5);
    if (!t->path || !t->tmp) {
        free(t->path);
        free(t->tmp);
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(t->tmp, n + 5, "%s.tmp", path);
    t->f = fopen(t->tmp, "wb");
    if (!t->f) {
        snprintf(err, errlen, "cannot write trace file '%s': %s", path, strerror(errno));
        free(t->path);
        free(t->tmp);
        free(t);
        return NULL;
    }
    uint8_t hdr[16] = {0};
    memcpy(hdr, MAGIC, 8);
    hdr[8] = (uint8_t)sizeof(cpu_event);
    if (fwrite(hdr, 1, sizeof hdr, t->f) != sizeof hdr) t->failed = 1, t->err_no = errno;
    return t;
}

void sim_tracefile_sink(void *ud, const cpu_event *ev, size_t n) {
    sim_tracefile *t = ud;
    if (t->failed) return;
    if (fwrite(ev, sizeof *ev, n, t->f) != n) {
        t->failed = 1;
        t->err_no = errno;
    }
}

int sim_tracefile_close(sim_tracefile *t, int keep, char *err, size_t errlen) {
    int rc = 0;
    if (fflush(t->f) != 0 && !t->failed) t->failed = 1, t->err_no = errno;
    if (fclose(t->f) != 0 && !t->failed) t->failed = 1, t->err_no = errno;
    if (t->failed) {
        snprintf(err, errlen, "writing trace file '%s' failed: %s; nothing was written", t->path,
                 strerror(t->err_no));
        rc = -1;
        keep = 0;
    }
    if (keep) {
        if (rename(t->tmp, t->path) != 0) {
            snprintf(err, errlen, "cannot create '%s': %s", t->path, strerror(errno));
            unlink(t->tmp);
            rc = -1;
        }
    } else {
        unlink(t->tmp);
    }
    free(t->path);
    free(t->tmp);
    free(t);
    return rc;
}

int sim_tracefile_replay(const char *path, cpu_trace_sink sink, void *ud, char *err,
                         size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    uint8_t hdr[16];
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr || memcmp(hdr, MAGIC, 7) != 0) {
        snprintf(err, errlen, "'%s' is not a vlab trace file", path);
        fclose(f);
        return -1;
    }
    if (hdr[7] != MAGIC[7] || hdr[8] != sizeof(cpu_event)) {
        snprintf(err, errlen,
                 "'%s' is a vlab trace of another version (%d); this vlab reads version %d", path,
                 hdr[7], MAGIC[7]);
        fclose(f);
        return -1;
    }
    cpu_event buf[1024];
    size_t total = 0;
    for (;;) {
        size_t got = fread(buf, 1, sizeof buf, f);
        size_t n = got / sizeof(cpu_event);
        if (n) sink(ud, buf, n);
        total += n;
        if (got % sizeof(cpu_event)) {
            snprintf(err, errlen, "'%s' is truncated after %zu events", path, total);
            fclose(f);
            return -1;
        }
        if (got < sizeof buf) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "reading '%s' failed", path);
        return -1;
    }
    return 0;
}
