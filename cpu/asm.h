/* cpu/asm.h -- vlab's assembler: source text to a loadable image.
 *
 * Syntax (docs/isa.md has the full reference):
 *   label:  mnem operands      ; comment   (also # comment)
 *   .org EXPR  .word EXPR,...  .byte EXPR,...  .ascii "s"  .asciz "s"
 *   .space EXPR[, FILL]  .equ NAME, EXPR  .align EXPR  .include "file.s"
 * Expressions: integers (decimal, 0x.., 0b.., 'c'), symbols, '.', unary
 * - ~, binary * / % + - << >> & ^ |, parentheses.  Registers r0-r15, sp.
 * Control registers by name: status vbr faddr ptbr ksp.
 *   NAME = EXPR is .equ; jz/jnz are je/jne.  Arithmetic is 32-bit unsigned
 * with wraparound, shifts by 32 or more give 0, '.' is the address of the
 * current statement.  Operands may name labels defined later; .org, .space,
 * .align and .equ need values known where they stand.  An included file is
 * named (in diagnostics, asm_image.files) by its path relative to the
 * including file's directory; asm_options.read gets the path as written and
 * that name of the includer.  Nesting is limited to 16 levels.  Mnemonics,
 * registers, control register names and directives are case-insensitive,
 * symbols are not.
 *
 * Errors come out as "file:line:col: error: message", then the source line
 * and a caret under the column.
 */
#ifndef VLAB_CPU_ASM_H
#define VLAB_CPU_ASM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A contiguous run of assembled bytes. */
typedef struct asm_chunk {
    uint32_t addr;
    uint32_t len;
    uint8_t *data;
} asm_chunk;

typedef struct asm_symbol {
    char *name;
    uint32_t value;
    int is_label; /* 1: an address label, 0: .equ */
} asm_symbol;

/* Where each instruction or datum came from (for listings, traces, the TUI). */
typedef struct asm_line {
    uint32_t addr;
    uint32_t len; /* bytes emitted by this source line */
    int file;     /* index into asm_image.files */
    int line;     /* 1-based */
} asm_line;

typedef struct asm_image {
    asm_chunk *chunks;
    int nchunks;
    asm_symbol *syms;
    int nsyms;
    asm_line *lines; /* sorted by address (they never overlap) */
    int nlines;
    char **files; /* file names, [0] is the main file; one entry per .include */
    char **texts; /* the text of each file, as assembled (for listings) */
    int nfiles;
    int *incl_from; /* per file: index of the file whose .include read it (-1 for [0]) */
    int *incl_line; /* per file: line of that .include (0 for [0]) */
    uint32_t entry; /* value of the symbol "start" if defined, else the lowest address */
} asm_image;

/* Reads an included file; returns a malloc'd buffer (and its length) or NULL
 * with *err set to a static message.  `from` is the including file's name. */
typedef char *(*asm_read_fn)(void *ud, const char *from, const char *path, size_t *len,
                             const char **err);

typedef struct asm_options {
    asm_read_fn read; /* NULL: .include reads files relative to the includer */
    void *read_ud;
    uint32_t origin; /* initial location counter (default 0) */
    int max_errors;  /* stop after this many errors (0: 20) */
} asm_options;

/* Assemble src (len bytes) named `file`.  Returns 0 on success; otherwise
 * the number of errors, with *errors set to a malloc'd, newline-terminated
 * text of all the diagnostics (caller frees).  On success *errors is NULL. */
int asm_assemble(const char *src, size_t len, const char *file, const asm_options *opt,
                 asm_image *out, char **errors);
void asm_image_free(asm_image *img);

/* Look up a symbol: 0 and *value, or -1. */
int asm_symbol_value(const asm_image *img, const char *name, uint32_t *value);

/* Source line that produced the byte at addr, or NULL. */
const asm_line *asm_line_at(const asm_image *img, uint32_t addr);

/* Write a listing of the main file (and included files, in place): address,
 * bytes, source text; one row per source line.  Returns 0 or -1. */
int asm_listing(const asm_image *img, FILE *out);

#endif
