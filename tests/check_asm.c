/* tests/check_asm.c -- the assembler (cpu/asm.c): every instruction of the
 * table assembled back from its disassembly, directives, expressions,
 * includes, the listing, each diagnostic word for word, and garbage input. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/asm.h"
#include "cpu/isa.h"

Suite *suite_asm(void);

/* ---- helpers --------------------------------------------------------------------------------- */

/* In-memory files for .include, through asm_options.read. */
typedef struct memfile {
    const char *name;
    const char *text;
} memfile;

typedef struct memfs {
    const memfile *files;
    int calls;
    char from[64][64]; /* `from` of each call */
} memfs;

static char *mem_read(void *ud, const char *from, const char *path, size_t *len, const char **err) {
    memfs *fs = ud;
    if (fs->calls < 64) snprintf(fs->from[fs->calls], sizeof fs->from[0], "%s", from);
    fs->calls++;
    for (const memfile *f = fs->files; f->name; f++)
        if (strcmp(f->name, path) == 0) {
            *len = strlen(f->text);
            char *s = malloc(*len + 1);
            memcpy(s, f->text, *len + 1);
            return s;
        }
    *err = "no such file";
    return NULL;
}

/* Assembles src as "t.s"; returns the error count, *errs the text (or NULL). */
static int assemble(const char *src, const asm_options *opt, asm_image *img, char **errs) {
    return asm_assemble(src, strlen(src), "t.s", opt, img, errs);
}

/* Assembles src, which must succeed. */
static asm_image ok(const char *src) {
    asm_image img;
    char *errs = NULL;
    int n = assemble(src, NULL, &img, &errs);
    ck_assert_msg(n == 0, "unexpected errors for:\n%s\n%s", src, errs ? errs : "(none)");
    ck_assert_ptr_null(errs);
    return img;
}

/* Byte at addr of an image, -1 if no chunk holds it. */
static int byte_at(const asm_image *img, uint32_t addr) {
    for (int i = 0; i < img->nchunks; i++)
        if (addr >= img->chunks[i].addr && addr - img->chunks[i].addr < img->chunks[i].len)
            return img->chunks[i].data[addr - img->chunks[i].addr];
    return -1;
}

static uint32_t word_at(const asm_image *img, uint32_t addr) {
    uint32_t w = 0;
    for (int i = 3; i >= 0; i--) {
        int b = byte_at(img, addr + (uint32_t)i);
        ck_assert_int_ge(b, 0);
        w = w << 8 | (uint32_t)b;
    }
    return w;
}

static uint32_t sym(const asm_image *img, const char *name) {
    uint32_t v = 0xdeadbeef;
    ck_assert_msg(asm_symbol_value(img, name, &v) == 0, "no symbol %s", name);
    return v;
}

/* The single error text for src. */
static char *fails(const char *src, int want_count) {
    asm_image img;
    char *errs = NULL;
    int n = assemble(src, NULL, &img, &errs);
    ck_assert_msg(n == want_count, "%d errors (want %d) for:\n%s\n%s", n, want_count, src,
                  errs ? errs : "(none)");
    ck_assert_ptr_nonnull(errs);
    ck_assert_int_eq(img.nchunks, 0);
    ck_assert_ptr_null(img.chunks);
    return errs;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- every instruction of the table ---------------------------------------------------------- */

/* An instruction of op with the operands its format uses (variant 0: typical
 * values, 1: extremes, 2: zeros); the rest stays zero, as the assembler
 * leaves it. */
static cpu_insn sample(int op, int variant) {
    int fmt = cpu_isa[op].fmt;
    cpu_insn in = {.op = (uint8_t)op, .size = (uint8_t)cpu_fmt_size(fmt)};
    int x = variant == 1, z = variant == 2;
    switch (fmt) {
    case F_NONE: break;
    case F_R: in.ra = x ? 15 : z ? 0 : 7; break;
    case F_RR:
        in.ra = x ? 15 : z ? 0 : 3;
        in.rb = x ? 14 : z ? 0 : 15;
        break;
    case F_RI:
        in.ra = x ? 15 : 12;
        in.imm = x ? -32768 : z ? 0 : -5;
        break;
    case F_RI32:
        in.ra = 9;
        in.imm = x ? -1 : z ? 0 : 0x12345678;
        break;
    case F_LD:
        in.ra = 1;
        in.rb = x ? 0 : 15;
        in.imm = x ? 32767 : z ? 0 : -4;
        break;
    case F_ST:
        in.ra = 2;
        in.rb = x ? 15 : 10;
        in.imm = x ? -32768 : z ? 0 : 8;
        break;
    case F_J: in.imm = x ? 32764 : z ? -32768 : -12; break;
    case F_A32: in.imm = x ? (int32_t)0xfffffff0u : z ? 0 : 0x2468; break;
    case F_IMM: in.imm = x ? 255 : z ? 0 : 0x80; break;
    case F_PIN:
        in.ra = 4;
        in.imm = x ? 0xffff : z ? 0 : 0x3f8;
        break;
    case F_POUT:
        in.rb = x ? 15 : 6;
        in.imm = x ? 0xffff : z ? 0 : 0x3f8;
        break;
    case F_CRW:
        in.ra = x ? CPU_NCR - 1 : CR_PTBR;
        in.rb = 5;
        break;
    case F_CRR:
        in.ra = 11;
        in.rb = x ? CPU_NCR - 1 : CR_STATUS;
        break;
    }
    return in;
}

/* disassemble -> assemble -> the bytes cpu_encode() gives, for each row. */
START_TEST(test_every_op_roundtrip) {
    int op = _i;
    for (int variant = 0; variant < 3; variant++) {
        cpu_insn in = sample(op, variant);
        uint32_t pc = 0x4000 + 0x100 * (uint32_t)variant;
        char text[96], src[160];
        cpu_disasm(&in, pc, text, sizeof text);
        snprintf(src, sizeof src, "        .org 0x%x\n        %s\n", pc, text);
        uint32_t w[2] = {0, 0};
        int n = cpu_encode(&in, w);

        asm_image img;
        char *errs = NULL;
        int nerr = assemble(src, NULL, &img, &errs);
        ck_assert_msg(nerr == 0, "%s: '%s' does not assemble:\n%s", cpu_isa[op].mnem, text,
                      errs ? errs : "");
        ck_assert_int_eq(img.nchunks, 1);
        ck_assert_uint_eq(img.chunks[0].addr, pc);
        ck_assert_int_eq((int)img.chunks[0].len, n);
        ck_assert_msg(word_at(&img, pc) == w[0], "%s: '%s' gives %08x, cpu_encode %08x",
                      cpu_isa[op].mnem, text, word_at(&img, pc), w[0]);
        if (n == 8) ck_assert_uint_eq(word_at(&img, pc + 4), w[1]);
        cpu_insn back = cpu_decode(word_at(&img, pc), n == 8 ? word_at(&img, pc + 4) : 0);
        ck_assert_int_eq(back.op, op);
        ck_assert_int_eq(back.imm, in.imm);
        const asm_line *l = asm_line_at(&img, pc);
        ck_assert_ptr_nonnull(l);
        ck_assert_int_eq(l->line, 2);
        asm_image_free(&img);
    }
}
END_TEST

START_TEST(test_aliases_and_case) {
    asm_image img = ok("   jz 0x100\n   je 0x104\n   Jnz 0x108\n   jne 0x10c\n   ADD R1, SP\n"
                       "   add r1, r15\n   WRCR PTBR, r2\n   wrcr cr3, r2\n");
    ck_assert_uint_eq(word_at(&img, 0), word_at(&img, 4));
    ck_assert_uint_eq(word_at(&img, 0), 0x00fc0000u | cpu_isa[OP_JE].code);
    ck_assert_uint_eq(word_at(&img, 8), word_at(&img, 12));
    ck_assert_uint_eq(word_at(&img, 8), 0x00fc0000u | cpu_isa[OP_JNE].code);
    ck_assert_uint_eq(word_at(&img, 16), word_at(&img, 20));
    ck_assert_uint_eq(word_at(&img, 16), 0xf104u);
    ck_assert_uint_eq(word_at(&img, 24), word_at(&img, 28));
    asm_image_free(&img);
}
END_TEST

/* ---- directives, symbols, expressions -------------------------------------------------------- */

START_TEST(test_org_chunks) {
    asm_image img = ok("        .org 0x2000\n"
                       "        .word 0x11223344\n"
                       "        .org 0x1000\n"
                       "first:  .byte 1, 2\n"
                       "        .org 0x1002\n"
                       "        .byte 3\n"
                       "        .org 0x3000\n"
                       "        . = 0x4000\n"
                       "        .byte 7\n");
    ck_assert_int_eq(img.nchunks, 3); /* sorted; 0x1000 and 0x1002 merged; the empty one dropped */
    ck_assert_uint_eq(img.chunks[0].addr, 0x1000);
    ck_assert_uint_eq(img.chunks[0].len, 3);
    ck_assert_mem_eq(img.chunks[0].data, "\1\2\3", 3);
    ck_assert_uint_eq(img.chunks[1].addr, 0x2000);
    ck_assert_uint_eq(img.chunks[1].len, 4);
    ck_assert_mem_eq(img.chunks[1].data, "\x44\x33\x22\x11", 4);
    ck_assert_uint_eq(img.chunks[2].addr, 0x4000);
    ck_assert_int_eq(byte_at(&img, 0x4000), 7);
    ck_assert_uint_eq(img.entry, 0x1000); /* no start: the lowest address */
    ck_assert_uint_eq(sym(&img, "first"), 0x1000);
    asm_image_free(&img);
}
END_TEST

START_TEST(test_data_directives) {
    asm_image img = ok(".org 0x100\n"
                       "s:   .ascii \"a\\n\\t\\\\\\\"\\0\\x41;#\", \"z\"\n"
                       "z:   .asciz \"ok\"\n"
                       "     .space 3, 0xaa\n"
                       "     .space 2\n"
                       "     .align 8\n"
                       "al:  .word -1, ., 'A', '\\n'\n"
                       "     .byte -128, 255, 0x7f ; comment \"not a string\n"
                       "     .align 1\n"
                       "end: # other comment\n");
    static const uint8_t want[] = {
        'a',  '\n', '\t', '\\', '"',  0,    'A',  ';',  '#', 'z', /* .ascii */
        'o',  'k',  0,                                            /* .asciz */
        0xaa, 0xaa, 0xaa, 0,    0,                                /* .space */
        0,    0,    0,    0,    0,    0,                          /* .align 8 */
        0xff, 0xff, 0xff, 0xff, 0x18, 0x01, 0,    0,    'A', 0,
        0,    0,    '\n', 0,    0,    0,    0x80, 0xff, 0x7f};
    ck_assert_int_eq(img.nchunks, 1);
    ck_assert_uint_eq(img.chunks[0].len, sizeof want);
    ck_assert_mem_eq(img.chunks[0].data, want, sizeof want);
    ck_assert_uint_eq(sym(&img, "z"), 0x10a);
    ck_assert_uint_eq(sym(&img, "al"), 0x118);
    ck_assert_uint_eq(sym(&img, "end"), 0x100 + sizeof want);
    asm_image_free(&img);
}
END_TEST

START_TEST(test_equ_and_symbols) {
    asm_image img = ok("        .equ BASE, 0x1000\n"
                       "SIZE = 4 * 4\n"
                       "        .org BASE + SIZE\n"
                       "start:  li r1, SIZE\n"
                       "here = .\n"
                       "        .equ Case, 1\n"
                       "        .equ case, 2\n");
    ck_assert_uint_eq(sym(&img, "BASE"), 0x1000);
    ck_assert_uint_eq(sym(&img, "SIZE"), 16);
    ck_assert_uint_eq(sym(&img, "start"), 0x1010);
    ck_assert_uint_eq(sym(&img, "here"), 0x1018);
    ck_assert_uint_eq(sym(&img, "Case"), 1);
    ck_assert_uint_eq(sym(&img, "case"), 2);
    ck_assert_uint_eq(img.entry, 0x1010);
    ck_assert_int_eq(asm_symbol_value(&img, "nope", NULL), -1);
    for (int i = 0; i < img.nsyms; i++)
        ck_assert_int_eq(img.syms[i].is_label, strcmp(img.syms[i].name, "start") == 0);
    asm_image_free(&img);
}
END_TEST

START_TEST(test_forward_references) {
    asm_image img = ok("        .org 0x100\n"
                       "start:  li r1, data + 4\n"           /* 0x100 */
                       "        jmp done\n"                  /* 0x108 */
                       "        jl done\n"                   /* 0x110 */
                       "        ld r2, [r1 + (b - a)]\n"     /* 0x114 */
                       "        st [r1 - (b - a) * 2], r2\n" /* 0x118 */
                       "        addi r3, -(b - a)\n"         /* 0x11c */
                       "        out port, r3\n"              /* 0x120 */
                       "        int vec\n"                   /* 0x124 */
                       "        .word done, done - start\n"  /* 0x128 */
                       "        .byte b - a\n"               /* 0x130 */
                       "        .align 4\n"
                       "data:   .word 0\n" /* 0x134 */
                       "done:   hlt\n"     /* 0x138 */
                       "a:      .space 12\n"
                       "b:\n"
                       "port = 0x3f8\n"
                       "vec = 0x80\n");
    cpu_insn want[] = {
        {.op = OP_LI, .ra = 1, .imm = 0x138},        {.op = OP_JMP, .imm = 0x138},
        {.op = OP_JL, .imm = 0x138 - 0x114},         {.op = OP_LD, .ra = 2, .rb = 1, .imm = 12},
        {.op = OP_ST, .ra = 1, .rb = 2, .imm = -24}, {.op = OP_ADDI, .ra = 3, .imm = -12},
        {.op = OP_OUT, .rb = 3, .imm = 0x3f8},       {.op = OP_INT, .imm = 0x80},
    };
    uint32_t addr = 0x100;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint32_t w[2];
        int n = cpu_encode(&want[i], w);
        ck_assert_msg(word_at(&img, addr) == w[0], "insn %zu at 0x%x: %08x want %08x", i, addr,
                      word_at(&img, addr), w[0]);
        if (n == 8) ck_assert_uint_eq(word_at(&img, addr + 4), w[1]);
        addr += (uint32_t)n;
    }
    ck_assert_uint_eq(word_at(&img, 0x128), 0x138);
    ck_assert_uint_eq(word_at(&img, 0x12c), 0x38);
    ck_assert_int_eq(byte_at(&img, 0x130), 12);
    ck_assert_uint_eq(sym(&img, "data"), 0x134);
    asm_image_free(&img);
}
END_TEST

static const struct {
    const char *expr;
    uint32_t value;
} exprs[] = {
    {"1 + 2 * 3", 7},
    {"(1 + 2) * 3", 9},
    {"2 - 3 - 4", 0xfffffffbu},
    {"100 / 7", 14},
    {"100 % 7", 2},
    {"-1", 0xffffffffu},
    {"~0", 0xffffffffu},
    {"+5", 5},
    {"- - 5", 5},
    {"-(2 + 3) * 2", 0xfffffff6u},
    {"1 << 2 + 1", 8},
    {"0x80000000 >> 31", 1},
    {"1 << 32", 0},
    {"6 & 3 | 8", 10},
    {"5 ^ 1 & 3", 4},
    {"1 | 2 ^ 3", 1},
    {"0xffffffff + 1", 0},
    {"0x7fffffff * 2", 0xfffffffeu},
    {"0b1011", 11},
    {"0XfF", 255},
    {"007", 7},
    {"'A' + 1", 66},
    {"'\\x7f'", 127},
    {"'\\''", 39},
    {"4294967295", 0xffffffffu},
    {"((((1))))", 1},
    {"BASE * 2 - BASE / 2", 0x300},
    {"(BASE >> 8) % 3", 2},
    {"-BASE & 0xffff", 0xfe00},
};

START_TEST(test_expressions) {
    char src[200];
    snprintf(src, sizeof src, "BASE = 0x200\nv = %s\n", exprs[_i].expr);
    asm_image img = ok(src);
    ck_assert_msg(sym(&img, "v") == exprs[_i].value, "%s = 0x%x, want 0x%x", exprs[_i].expr,
                  sym(&img, "v"), exprs[_i].value);
    asm_image_free(&img);
}
END_TEST

START_TEST(test_origin_entry_line_map) {
    asm_options opt = {.origin = 0x400};
    asm_image img;
    char *errs = NULL;
    const char *src = "main:   nop\n"
                      "\n"
                      "        li r1, 5 ; eight bytes\n"
                      "        .org 0x800\n"
                      "        .word 1, 2\n";
    ck_assert_int_eq(assemble(src, &opt, &img, &errs), 0);
    ck_assert_int_eq(img.nchunks, 2);
    ck_assert_uint_eq(img.chunks[0].addr, 0x400);
    ck_assert_uint_eq(img.chunks[0].len, 12);
    ck_assert_uint_eq(img.entry, 0x400);
    ck_assert_int_eq(img.nlines, 3);
    const asm_line *l = asm_line_at(&img, 0x407);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(l->line, 3);
    ck_assert_uint_eq(l->addr, 0x404);
    ck_assert_uint_eq(l->len, 8);
    ck_assert_int_eq(l->file, 0);
    ck_assert_int_eq(asm_line_at(&img, 0x400)->line, 1);
    ck_assert_int_eq(asm_line_at(&img, 0x807)->line, 5);
    ck_assert_ptr_null(asm_line_at(&img, 0x40c));
    ck_assert_ptr_null(asm_line_at(&img, 0x3ff));
    ck_assert_ptr_null(asm_line_at(&img, 0x808));
    ck_assert_str_eq(img.files[0], "t.s");
    ck_assert_str_eq(img.texts[0], src);
    asm_image_free(&img);
    ck_assert_ptr_null(img.chunks);
    asm_image_free(&img); /* twice is harmless */

    img = ok("        .org 0x100\n        nop\nstart = 0x104\n        nop\n");
    ck_assert_uint_eq(img.entry, 0x104);
    asm_image_free(&img);
    img = ok("; nothing\n");
    ck_assert_int_eq(img.nchunks, 0);
    ck_assert_int_eq(img.nlines, 0);
    asm_image_free(&img);
}
END_TEST

/* ---- includes and the listing ---------------------------------------------------------------- */

static const memfile lib_files[] = {
    {"lib/io.s", "PORT = 0x3f8\n"
                 "        .include \"regs.s\"\n"
                 "putc:   out PORT, r1\n"
                 "        ret\n"},
    {"regs.s", "TMP = 7\n"},
    {"data.s", "msg:    .asciz \"hi\"\n"},
    {NULL, NULL},
};

START_TEST(test_include_callback) {
    memfs fs = {.files = lib_files};
    asm_options opt = {.read = mem_read, .read_ud = &fs};
    asm_image img;
    char *errs = NULL;
    const char *src = ".org 0x100\n"
                      "start:  call putc\n"
                      "        .include \"lib/io.s\"\n"
                      "        .include \"data.s\"\n"
                      "        li r2, TMP\n";
    int n = asm_assemble(src, strlen(src), "src/main.s", &opt, &img, &errs);
    ck_assert_msg(n == 0, "%s", errs ? errs : "");
    ck_assert_int_eq(fs.calls, 3);
    ck_assert_str_eq(fs.from[0], "src/main.s");
    ck_assert_str_eq(fs.from[1], "src/lib/io.s"); /* regs.s, relative to lib/ */
    ck_assert_str_eq(fs.from[2], "src/main.s");
    ck_assert_int_eq(img.nfiles, 4);
    ck_assert_str_eq(img.files[0], "src/main.s");
    ck_assert_str_eq(img.files[1], "src/lib/io.s");
    ck_assert_str_eq(img.files[2], "src/lib/regs.s");
    ck_assert_str_eq(img.files[3], "src/data.s");
    ck_assert_str_eq(img.texts[3], lib_files[2].text);
    ck_assert_int_eq(img.incl_from[0], -1);
    ck_assert_int_eq(img.incl_from[2], 1);
    ck_assert_int_eq(img.incl_line[2], 2);
    ck_assert_int_eq(img.incl_from[3], 0);
    ck_assert_int_eq(img.incl_line[3], 4);
    ck_assert_uint_eq(sym(&img, "putc"), 0x108);
    ck_assert_uint_eq(sym(&img, "msg"), 0x110);
    ck_assert_uint_eq(word_at(&img, 0x104), 0x108); /* call's target, a forward label */
    ck_assert_uint_eq(word_at(&img, 0x108), 0x03f81087u);
    ck_assert_mem_eq(img.chunks[0].data + 0x10, "hi", 3);
    ck_assert_uint_eq(word_at(&img, 0x117), 7); /* li r2, TMP, right after "hi" */
    const asm_line *l = asm_line_at(&img, 0x10c);
    ck_assert_int_eq(l->file, 1);
    ck_assert_int_eq(l->line, 4);
    asm_image_free(&img);
}
END_TEST

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_include_files) {
    char dir[] = "/tmp/vlab-asm-XXXXXX", p[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/sub", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/sub/a.s", dir);
    write_file(p, "A = 1\n .include \"b.s\"\n");
    snprintf(p, sizeof p, "%s/sub/b.s", dir);
    write_file(p, "B = A + 1\n");
    snprintf(p, sizeof p, "%s/main.s", dir);
    const char *src = " .include \"sub/a.s\"\n .word B\n";

    asm_image img;
    char *errs = NULL;
    int n = asm_assemble(src, strlen(src), p, NULL, &img, &errs);
    ck_assert_msg(n == 0, "%s", errs ? errs : "");
    ck_assert_int_eq(img.nfiles, 3);
    char want[256];
    snprintf(want, sizeof want, "%s/sub/b.s", dir);
    ck_assert_str_eq(img.files[2], want);
    ck_assert_uint_eq(word_at(&img, 0), 2);
    asm_image_free(&img);

    /* a missing file: the OS's reason */
    src = " .include \"sub/none.s\"\n";
    n = asm_assemble(src, strlen(src), p, NULL, &img, &errs);
    ck_assert_int_eq(n, 1);
    snprintf(want, sizeof want,
             "%s/main.s:1:11: error: cannot read '%s/sub/none.s': No such file or directory\n"
             " .include \"sub/none.s\"\n"
             "          ^\n",
             dir, dir);
    ck_assert_str_eq(errs, want);
    free(errs);

    snprintf(p, sizeof p, "%s/sub/a.s", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub/b.s", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub", dir);
    rmdir(p);
    rmdir(dir);
}
END_TEST

#define BLANK "                                    " /* 36: no address, no bytes */

START_TEST(test_listing) {
    static const memfile files[] = {{"inc.s", "N = 3\n  .byte N\n"}, {NULL, NULL}};
    memfs fs = {.files = files};
    asm_options opt = {.read = mem_read, .read_ud = &fs};
    asm_image img;
    char *errs = NULL;
    const char *src = "; demo\n"
                      "        .org 0x1000\n"
                      "start:  li r1, 42\n"
                      "\n"
                      "        .include \"inc.s\"\n"
                      "\tjmp start\n"
                      "        .ascii \"0123456789abcdefXY\"\n";
    ck_assert_int_eq(asm_assemble(src, strlen(src), "m.s", &opt, &img, &errs), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    ck_assert_int_eq(asm_listing(&img, f), 0);
    fclose(f);
    ck_assert_str_eq(out, BLANK
                     "; demo\n" BLANK "        .org 0x1000\n"
                     "00001000  03 01 00 00 2a 00 00 00   start:  li r1, 42\n"
                     "\n" BLANK "        .include \"inc.s\"\n"
                     ";; inc.s\n" BLANK "N = 3\n"
                     "00001008  03                          .byte N\n"
                     ";; m.s\n"
                     "00001009  30 00 00 00 00 10 00 00   \tjmp start\n"
                     "00001011  30 31 32 33 34 35 36 37           .ascii \"0123456789abcdefXY\"\n"
                     "00001019  38 39 61 62 63 64 65 66\n"
                     "00001021  58 59\n");
    free(out);
    asm_image_free(&img);
}
END_TEST

/* ---- diagnostics, word for word -------------------------------------------------------------- */

static const struct {
    const char *src;
    const char *err;
} errors[] = {
    {"nop\nfoo: nop\nfoo: nop\n",
     "t.s:3:1: error: label 'foo' already defined at t.s:2\nfoo: nop\n^\n"},
    {"x = 1\nx = 2\n", "t.s:2:1: error: symbol 'x' already defined at t.s:1\nx = 2\n^\n"},
    {"  jmp nowhere\n", "t.s:1:7: error: undefined symbol 'nowhere'\n  jmp nowhere\n      ^\n"},
    {"  .word 1, 2 + nowhere\n",
     "t.s:1:16: error: undefined symbol 'nowhere'\n  .word 1, 2 + nowhere\n               ^\n"},
    {".org nothere\n", "t.s:1:6: error: undefined symbol 'nothere'\n.org nothere\n     ^\n"},
    {".org later\nlater: nop\n",
     "t.s:1:6: error: value of 'later' is not known yet\n.org later\n     ^\n"},
    {" .equ a, 1 + b\nb = 1\n",
     "t.s:1:14: error: value of 'b' is not known yet\n .equ a, 1 + b\n             ^\n"},
    {"  mvo r1, r2\n",
     "t.s:1:3: error: unknown instruction 'mvo'; did you mean 'mov'?\n  mvo r1, r2\n  ^\n"},
    {"  syscal\n",
     "t.s:1:3: error: unknown instruction 'syscal'; did you mean 'syscall'?\n  syscal\n  ^\n"},
    {"  frobnicate r1\n",
     "t.s:1:3: error: unknown instruction 'frobnicate'\n  frobnicate r1\n  ^\n"},
    {"  .wrod 1\n",
     "t.s:1:3: error: unknown directive '.wrod'; did you mean '.word'?\n  .wrod 1\n  ^\n"},
    {"  add r1\n", "t.s:1:3: error: 'add' expects ra, rb\n  add r1\n  ^\n"},
    {"  add r1, r2, r3\n",
     "t.s:1:13: error: 'add' expects ra, rb\n  add r1, r2, r3\n            ^\n"},
    {"  add r1, 5\n", "t.s:1:11: error: 'add' expects ra, rb\n  add r1, 5\n          ^\n"},
    {"  add r1 r2\n", "t.s:1:10: error: 'add' expects ra, rb\n  add r1 r2\n         ^\n"},
    {"  li r1, r2\n", "t.s:1:10: error: 'li' expects ra, imm32\n  li r1, r2\n         ^\n"},
    {"  ld r1, r2\n", "t.s:1:10: error: 'ld' expects ra, [rb+simm16]\n  ld r1, r2\n         ^\n"},
    {"  ld r1, [r2+4\n", "t.s:1:3: error: 'ld' expects ra, [rb+simm16]\n  ld r1, [r2+4\n  ^\n"},
    {"  hlt r1\n", "t.s:1:7: error: 'hlt' expects no operands\n  hlt r1\n      ^\n"},
    {"  rdcr status, r1\n", "t.s:1:8: error: 'rdcr' expects ra, cr\n  rdcr status, r1\n       ^\n"},
    {"  wrcr foo, r1\n",
     "t.s:1:8: error: unknown control register 'foo' (status, vbr, faddr, ptbr, ksp)\n"
     "  wrcr foo, r1\n       ^\n"},
    {"  push r16\n", "t.s:1:8: error: bad register 'r16' (r0..r15, sp)\n  push r16\n       ^\n"},
    {"  push r01\n", "t.s:1:8: error: bad register 'r01' (r0..r15, sp)\n  push r01\n       ^\n"},
    {" .equ a, later\n li r1, a\nlater: nop\n", /* a is poisoned: no second error */
     "t.s:1:10: error: value of 'later' is not known yet\n .equ a, later\n         ^\n"},
    {"  push r1 r2\n", "t.s:1:11: error: junk after operands\n  push r1 r2\n          ^\n"},
    {"  .org 5 6\n", "t.s:1:10: error: junk after operands\n  .org 5 6\n         ^\n"},
    {"  .ascii \"abc\n", "t.s:1:10: error: unterminated string\n  .ascii \"abc\n         ^\n"},
    {"  .ascii \"a\\q\"\n",
     "t.s:1:12: error: unknown escape sequence '\\q'\n  .ascii \"a\\q\"\n           ^\n"},
    {"  li r1, 'ab'\n",
     "t.s:1:10: error: character literal has more than one character\n  li r1, 'ab'\n"
     "         ^\n"},
    {"  li r1, 'a\n", "t.s:1:10: error: unterminated character literal\n  li r1, 'a\n         ^\n"},
    {"  li r1, 1/0\n", "t.s:1:11: error: division by zero\n  li r1, 1/0\n          ^\n"},
    {"  .word 1 % (2 - 2)\n",
     "t.s:1:11: error: division by zero\n  .word 1 % (2 - 2)\n          ^\n"},
    {"  .word (1 + 2\n", "t.s:1:15: error: expected ')'\n  .word (1 + 2\n              ^\n"},
    {"  .word 1 +\n", "t.s:1:12: error: expected an expression\n  .word 1 +\n           ^\n"},
    {"  li r1, 0x100000000\n",
     "t.s:1:10: error: number '0x100000000' does not fit in 32 bits\n  li r1, 0x100000000\n"
     "         ^\n"},
    {"  li r1, 0x1g\n", "t.s:1:10: error: bad number '0x1g'\n  li r1, 0x1g\n         ^\n"},
    {"  nop @\n", "t.s:1:7: error: unexpected character '@'\n  nop @\n      ^\n"},
    {"  addi r1, 40000\n",
     "t.s:1:12: error: immediate 40000 out of range (-32768..32767)\n  addi r1, 40000\n"
     "           ^\n"},
    {"  ld r1, [r2-0x8001]\n", "t.s:1:13: error: displacement -32769 out of range (-32768..32767)\n"
                               "  ld r1, [r2-0x8001]\n            ^\n"},
    {"  int 256\n", "t.s:1:7: error: vector 256 out of range (0..255)\n  int 256\n      ^\n"},
    {"  out -1, r1\n", "t.s:1:7: error: port -1 out of range (0..65535)\n  out -1, r1\n      ^\n"},
    {"  jl far\n  .org 0x9000\nfar: nop\n",
     "t.s:1:6: error: branch target out of range (36860 bytes)\n  jl far\n     ^\n"},
    {"  .org 0x10\n  .word 1, 2\n  .org 0x14\n  .byte 9\n",
     "t.s:4:3: error: bytes at 0x00000014 already assembled at t.s:2\n  .byte 9\n  ^\n"},
    {"  .align 3\n", "t.s:1:10: error: '.align' needs a power of two, not 3\n  .align 3\n"
                     "         ^\n"},
    {"  .byte 1, 300\n",
     "t.s:1:12: error: value 300 does not fit in a byte (-128..255)\n  .byte 1, 300\n"
     "           ^\n"},
    {"  .space 0x7fffffff\n",
     "t.s:1:3: error: image larger than 16 MiB\n  .space 0x7fffffff\n  ^\n"},
    {"  .org 0xfffffffc\n  .word 1, 2\n",
     "t.s:2:3: error: bytes past the end of the address space (0xffffffff)\n  .word 1, 2\n  ^\n"},
    {"  .equ r1, 5\n", "t.s:1:8: error: 'r1' is a register name, not a symbol\n  .equ r1, 5\n"
                       "       ^\n"},
    {"  .include nofile\n",
     "t.s:1:12: error: '.include' expects \"file\"\n  .include nofile\n           ^\n"},
    {"  .include\n", "t.s:1:3: error: '.include' expects \"file\"\n  .include\n  ^\n"},
    {"  .word\n", "t.s:1:3: error: '.word' expects EXPR[, EXPR...]\n  .word\n  ^\n"},
    {"  42\n", "t.s:1:3: error: expected an instruction or directive, not '42'\n  42\n  ^\n"},
    {"\tadd r1\r\n", "t.s:1:2: error: 'add' expects ra, rb\n\tadd r1\n\t^\n"}, /* tab kept */
    {"  li r1, (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((((((((((((((((((1\n",
     NULL}, /* checked by prefix below */
};

START_TEST(test_error_messages) {
    char *errs = fails(errors[_i].src, 1);
    if (errors[_i].err)
        ck_assert_str_eq(errs, errors[_i].err);
    else
        ck_assert_msg(strstr(errs, "error: expression nested too deeply\n"), "%s", errs);
    free(errs);
}
END_TEST

START_TEST(test_errors_collected_in_order) {
    char *errs = fails("  jmp later_undefined\n"
                       "  bogus\n"
                       "ok: nop\n"
                       "  .word x, y\n"
                       "  add r1\n",
                       5);
    ck_assert_str_eq(errs, "t.s:1:7: error: undefined symbol 'later_undefined'\n"
                           "  jmp later_undefined\n"
                           "      ^\n"
                           "t.s:2:3: error: unknown instruction 'bogus'\n"
                           "  bogus\n"
                           "  ^\n"
                           "t.s:4:9: error: undefined symbol 'x'\n"
                           "  .word x, y\n"
                           "        ^\n"
                           "t.s:4:12: error: undefined symbol 'y'\n"
                           "  .word x, y\n"
                           "           ^\n"
                           "t.s:5:3: error: 'add' expects ra, rb\n"
                           "  add r1\n"
                           "  ^\n");
    free(errs);
}
END_TEST

START_TEST(test_max_errors) {
    char src[30 * 8 + 1] = "";
    for (int i = 0; i < 30; i++)
        strcat(src, "  bogus\n");
    char *errs = fails(src, 20); /* the default */
    ck_assert_int_eq(count_of(errs, ": error: "), 20);
    ck_assert_ptr_nonnull(strstr(errs, "t.s:20:3: error: unknown instruction 'bogus'\n"));
    ck_assert_ptr_null(strstr(errs, "t.s:21:"));
    free(errs);

    asm_options opt = {.max_errors = 3};
    asm_image img;
    ck_assert_int_eq(assemble(src, &opt, &img, &errs), 3);
    ck_assert_int_eq(count_of(errs, ": error: "), 3);
    free(errs);
}
END_TEST

START_TEST(test_include_errors) {
    static const memfile files[] = {
        {"a.s", "  nop\n  .include \"b.s\"\n"},
        {"b.s", "  .include \"a.s\"\n"},
        {"bad.s", "  nop\n  hlt 1\n"},
        {NULL, NULL},
    };
    memfs fs = {.files = files};
    asm_options opt = {.read = mem_read, .read_ud = &fs};
    asm_image img;
    char *errs = NULL;

    ck_assert_int_eq(assemble("  .include \"a.s\"\n", &opt, &img, &errs), 1);
    ck_assert_str_eq(errs, "b.s:1:12: error: include cycle: a.s -> b.s -> a.s\n"
                           "  .include \"a.s\"\n"
                           "           ^\n");
    free(errs);

    ck_assert_int_eq(assemble("x:\n  .include \"bad.s\"\n", &opt, &img, &errs), 1);
    ck_assert_str_eq(errs, "bad.s:2:7: error: 'hlt' expects no operands\n  hlt 1\n      ^\n");
    free(errs);

    ck_assert_int_eq(assemble("  .include \"none.s\"\n", &opt, &img, &errs), 1);
    ck_assert_str_eq(errs, "t.s:1:12: error: cannot read 'none.s': no such file\n"
                           "  .include \"none.s\"\n"
                           "           ^\n");
    free(errs);

    /* t.s includes itself */
    ck_assert_int_eq(assemble("  .include \"t.s\"\n", &opt, &img, &errs), 1);
    ck_assert_ptr_nonnull(strstr(errs, "error: include cycle: t.s -> t.s\n"));
    free(errs);

    /* d/deep.s includes "d/deep.s", which is d/d/deep.s: never a cycle by name */
    static const memfile chain[] = {{"d/deep.s", "  .include \"d/deep.s\"\n"}, {NULL, NULL}};
    fs.files = chain;
    ck_assert_int_eq(assemble("  .include \"d/deep.s\"\n", &opt, &img, &errs), 1);
    ck_assert_msg(strstr(errs, "error: includes nested too deeply (more than 16 levels)\n"), "%s",
                  errs);
    ck_assert_ptr_nonnull(strstr(errs, "d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/deep.s:1:12: error:"));
    free(errs);
}
END_TEST

/* ---- garbage in, diagnostics out ------------------------------------------------------------- */

static uint32_t rng_state;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Assembles anything; the result must be consistent either way. */
static void survive(const char *src, size_t len) {
    asm_image img;
    char *errs = NULL;
    int n = asm_assemble(src, len, "fuzz.s", NULL, &img, &errs);
    ck_assert_int_ge(n, 0);
    if (n) {
        ck_assert_int_le(n, 20);
        ck_assert_ptr_nonnull(errs);
        ck_assert_int_eq(count_of(errs, ": error: "), n);
        ck_assert_int_eq(strncmp(errs, "fuzz.s:", 7), 0);
        ck_assert_ptr_null(img.chunks);
        free(errs);
        return;
    }
    ck_assert_ptr_null(errs);
    FILE *f = fopen("/dev/null", "w");
    ck_assert_int_eq(asm_listing(&img, f), 0);
    fclose(f);
    for (int i = 0; i < img.nlines; i++) {
        const asm_line *l = asm_line_at(&img, img.lines[i].addr + img.lines[i].len - 1);
        ck_assert_ptr_eq(l, &img.lines[i]);
    }
    asm_image_free(&img);
}

START_TEST(test_random_bytes) {
    rng_state = 0x9e3779b9u + (uint32_t)_i;
    char buf[2048];
    for (int iter = 0; iter < 200; iter++) {
        size_t len = rnd() % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = rnd();
            buf[i] = (char)(r % 8 == 0 ? '\n' : r >> 8); /* some lines */
        }
        survive(buf, len);
    }
}
END_TEST

START_TEST(test_random_tokens) {
    static const char *const words[] = {
        "nop",  "add",    "li",       "ld",     "st",    "jl",         "jmp",    "int",    "in",
        "out",  "wrcr",   "rdcr",     "r1",     "sp",    "r16",        "ptbr",   ",",      ", ",
        "[",    "]",      "+",        "-",      "*",     "/",          "%",      "<<",     ">>",
        "&",    "|",      "^",        "~",      "(",     ")",          "0",      "1",      "0x10",
        "0b1",  "65536",  "'a'",      "'\\n'",  "\"s\"", "\"\\x4\"",   "lbl",    "lbl:",   "x:",
        "x",    "=",      ".",        ".org",   ".word", ".byte",      ".ascii", ".asciz", ".space",
        ".equ", ".align", ".include", "start:", "\n",    "\n",         "\n",     " ",      "\t",
        ";c",   "#c",     "'",        "\"",     "\\",    "9999999999", "\r\n",
    };
    enum { NW = sizeof words / sizeof words[0] };
    rng_state = 0x12345u + (uint32_t)_i * 7919u;
    char buf[4096];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = 0, want = rnd() % 600;
        while (len < want) {
            const char *w = words[rnd() % NW];
            size_t n = strlen(w);
            memcpy(buf + len, w, n);
            len += n;
            if (rnd() % 2) buf[len++] = ' ';
        }
        survive(buf, len);
    }
}
END_TEST

static char *repeat(const char *head, char ch, size_t n, const char *tail) {
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    memcpy(s, head, h);
    memset(s + h, ch, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

START_TEST(test_long_and_odd_lines) {
    static const struct {
        const char *head;
        char ch;
        const char *tail;
        int fails;
    } cases[] = {
        {"", 'a', "\n", 1},           /* one huge identifier */
        {"", 'a', ": nop\n", 0},      /* a huge label */
        {"  li r1, ", '(', "1\n", 1}, /* deep nesting */
        {"  li r1, ", '-', "1\n", 1}, /* a long unary chain */
        {"  li r1, ", '~', "1\n", 1},
        {"  li r1, 0x", 'f', "\n", 1}, /* a huge number */
        {"  li r1, ", '9', "\n", 1},
        {"  .ascii \"", 'x', "\"\n", 0}, /* a long string */
        {"  .ascii \"", 'x', "\n", 1},
        {"; ", '\0', "\n", 0},      /* NULs in a comment */
        {"  nop ", '\0', "\n", 1},  /* NULs as operands */
        {"", '\n', "  nop\n", 0},   /* many empty lines */
        {"", ' ', "  add r1\n", 1}, /* error far to the right */
        {"  .word 1", ',', "\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 200000;
        char *s = repeat(cases[i].head, cases[i].ch, n, cases[i].tail);
        size_t len = strlen(cases[i].head) + n + strlen(cases[i].tail);
        asm_image img;
        char *errs = NULL;
        int nerr = asm_assemble(s, len, "long.s", NULL, &img, &errs);
        ck_assert_msg((nerr > 0) == cases[i].fails, "case %zu: %d errors", i, nerr);
        if (nerr) ck_assert_int_eq(strncmp(errs, "long.s:", 7), 0);
        if (i == 7) ck_assert_uint_eq(img.chunks[0].len, n);
        if (i == 11) ck_assert_int_eq(img.lines[0].line, (int)n + 1);
        free(errs);
        asm_image_free(&img);
        free(s);
    }
    /* long names are cut in messages */
    char *s = repeat("  ", 'q', 1000, "\n");
    char *errs = fails(s, 1);
    char *want = repeat("unknown instruction '", 'q', 60, "...'\n");
    ck_assert_ptr_nonnull(strstr(errs, want));
    free(want);
    free(errs);
    free(s);
    /* NULL and empty input */
    asm_image img;
    ck_assert_int_eq(asm_assemble(NULL, 0, NULL, NULL, &img, NULL), 0);
    ck_assert_int_eq(img.nchunks, 0);
    ck_assert_str_eq(img.files[0], "<input>");
    asm_image_free(&img);
    ck_assert_int_eq(asm_assemble("bogus", 5, "x.s", NULL, NULL, NULL), 1);
}
END_TEST

Suite *suite_asm(void) {
    Suite *s = suite_create("asm");
    TCase *t = tcase_create("table");
    tcase_add_loop_test(t, test_every_op_roundtrip, 0, OP_COUNT);
    tcase_add_test(t, test_aliases_and_case);
    suite_add_tcase(s, t);

    t = tcase_create("directives");
    tcase_add_test(t, test_org_chunks);
    tcase_add_test(t, test_data_directives);
    tcase_add_test(t, test_equ_and_symbols);
    tcase_add_test(t, test_forward_references);
    tcase_add_loop_test(t, test_expressions, 0, (int)(sizeof exprs / sizeof exprs[0]));
    tcase_add_test(t, test_origin_entry_line_map);
    tcase_add_test(t, test_include_callback);
    tcase_add_test(t, test_include_files);
    tcase_add_test(t, test_listing);
    suite_add_tcase(s, t);

    t = tcase_create("errors");
    tcase_add_loop_test(t, test_error_messages, 0, (int)(sizeof errors / sizeof errors[0]));
    tcase_add_test(t, test_errors_collected_in_order);
    tcase_add_test(t, test_max_errors);
    tcase_add_test(t, test_include_errors);
    suite_add_tcase(s, t);

    t = tcase_create("robustness");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_random_bytes, 0, 4);
    tcase_add_loop_test(t, test_random_tokens, 0, 4);
    tcase_add_test(t, test_long_and_odd_lines);
    suite_add_tcase(s, t);
    return s;
}
