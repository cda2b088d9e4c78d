/* tests/runvlab.c -- spawn the vlab binary with pipes (see runvlab.h). */
#include "runvlab.h"

#include <check.h>

#include "cpu/asm.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *vlab_bin(void) {
    const char *b = getenv("VLAB_BIN");
    return b && *b ? b : "./vlab";
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *q = realloc(*buf, c);
        if (!q) return -1;
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

int run_vlab(const char *const *argv, const char *stdin_text, run_result *r) {
    memset(r, 0, sizeof *r);
    int po[2], pe[2], pi[2];
    if (pipe(po) || pipe(pe) || pipe(pi)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, pi[1]);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    int n = 0;
    while (argv[n])
        n++;
    char **av = calloc((size_t)n + 1, sizeof *av);
    if (!av) return -1;
    av[0] = (char *)vlab_bin();
    for (int i = 1; i < n; i++)
        av[i] = (char *)argv[i];
    pid_t pid;
    int rc = posix_spawn(&pid, av[0], &fa, NULL, av, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(av);
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(pi[1]);
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    if (stdin_text) {
        size_t left = strlen(stdin_text);
        while (left) {
            ssize_t w = write(pi[1], stdin_text, left);
            if (w <= 0) break;
            stdin_text += w;
            left -= (size_t)w;
        }
    }
    close(pi[1]);
    size_t ocap = 0, ecap = 0;
    append(&r->out, &r->out_len, &ocap, "", 0);
    append(&r->err, &r->err_len, &ecap, "", 0);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                append(&r->out, &r->out_len, &ocap, buf, (size_t)got);
            } else {
                append(&r->err, &r->err_len, &ecap, buf, (size_t)got);
            }
        }
    }
    int st;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

void run_result_free(run_result *r) {
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

char *slurp_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) {
        fclose(f);
        return NULL;
    }
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        if (len) *len = (size_t)n;
    }
    return b;
}

asm_image assemble_file(const char *path) {
    size_t len;
    char *src = slurp_file(path, &len);
    ck_assert_msg(src != NULL, "cannot read %s", path);
    asm_image img;
    char *err = NULL;
    ck_assert_msg(asm_assemble(src, len, path, NULL, &img, &err) == 0, "%s", err ? err : "");
    free(src);
    return img;
}
