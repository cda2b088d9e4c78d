/* tests/runvlab.h -- run the vlab binary from a test and capture what it
 * prints.  The binary is $VLAB_BIN (./vlab by default; the sanitized test
 * run sets build/vlab-asan). */
#ifndef VLAB_TESTS_RUNVLAB_H
#define VLAB_TESTS_RUNVLAB_H

#include <stddef.h>

typedef struct run_result {
    int status; /* exit status, or 128+signal */
    char *out;  /* stdout, NUL-terminated */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
    size_t err_len;
} run_result;

/* argv[0] is replaced by the vlab binary; argv ends with NULL.  Returns 0,
 * or -1 if the program could not be run. */
int run_vlab(const char *const *argv, const char *stdin_text, run_result *r);
void run_result_free(run_result *r);
const char *vlab_bin(void);

/* Read a whole file; NULL if missing. */
char *slurp_file(const char *path, size_t *len);

/* Assemble a source file of the tree (a failing test on any error). */
struct asm_image;
struct asm_image assemble_file(const char *path);

#endif
