/* cpu/asm.c -- vlab's assembler: source text to a loadable asm_image.
 *
 * One pass with fixups.  Every instruction's size is fixed by its format, so
 * a label gets its final value where it is defined; an operand naming a
 * label defined further down is assembled as zero and re-evaluated at the
 * end from its saved place in the source.  .org, .space, .align and .equ
 * shape the layout, so their values must be known where they stand.
 *
 * Mnemonics and operand formats come only from cpu/isa.def (cpu_isa[],
 * cpu_op_by_mnem(), cpu_encode()); the operand syntax is exactly what
 * cpu_disasm() prints, so disassembly can always be assembled again.  The
 * only instruction names kept here are the aliases jz and jnz.
 *
 * Diagnostics follow the compilers': "file:line:col: error: message", the
 * source line, a caret under the column.  At most one error per line (the
 * first one; later ones are usually its echo), at most max_errors in all.
 */
#include "cpu/asm.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/isa.h"

enum {
    MAX_INCLUDE_DEPTH = 16,
    MAX_EXPR_DEPTH = 256,
    DEFAULT_MAX_ERRORS = 20,
    SHOW_MAX = 64, /* longest token quoted whole in a message */
    LIST_BYTES = 8 /* bytes per listing row */
};
#define MAX_IMAGE_BYTES (16u << 20)
#define MAX_FILE_BYTES ((size_t)16 << 20)

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* ---- growable strings and arrays ------------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s) {
    sb_putn(b, s, strlen(s));
}
static void sb_putc(strbuf *b, char ch) {
    sb_putn(b, &ch, 1);
}

PRINTF_LIKE(1, 0) static char *vfmt(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

PRINTF_LIKE(2, 3) static void sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    if (!s) {
        b->oom = 1;
        return;
    }
    sb_puts(b, s);
    free(s);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- the assembler's state ------------------------------------------------------------------- */

/* A place in the source: the line (for the caret display) and the order of
 * assembly (diagnostics come out sorted by it). */
typedef struct where {
    int file, line, col;
    long seq;
    const char *ls, *le;
} where;

typedef struct src_file {
    char *name;
    char *text; /* NUL-terminated copy */
    size_t len;
    int parent, parent_line;
} src_file;

typedef struct sym {
    char *name;
    size_t n;
    uint32_t value;
    int is_label;
    int bad; /* its definition failed: uses are quietly 0 */
    int file, line;
} sym;

typedef struct diag {
    where w;
    int idx;
    char *msg;
    char *pending; /* a value needed early: "not known yet" or "undefined", decided at the end */
} diag;

typedef struct chunk {
    uint32_t addr, len, cap;
    uint8_t *data;
} chunk;

/* The bytes one source line emitted. */
typedef struct lrec {
    uint32_t addr, len;
    where w; /* col: the statement */
} lrec;

enum { FX_OPERAND, FX_WORD, FX_BYTE };

typedef struct fixup {
    int kind;
    char opkind; /* FX_OPERAND: the operand letter (see fmt_shape) */
    cpu_insn insn;
    int chunk;
    uint32_t off;
    uint32_t dot;     /* '.' of the statement */
    const char *expr; /* where the expression starts */
    where w;          /* col: the expression */
} fixup;

typedef struct asmctx {
    const asm_options *opt;
    int max_errors;
    src_file *files;
    int nfiles, capfiles;
    sym *syms;
    int nsyms, capsyms;
    int *htab; /* symbol index + 1, open addressing */
    size_t hcap;
    diag *diags;
    int ndiags, capdiags;
    chunk *chunks;
    int nchunks, capchunks;
    int cur;      /* chunk being appended to, -1 after .org */
    uint64_t dot; /* location counter (2^32 when the last byte was at 0xffffffff) */
    uint64_t total;
    lrec *lrecs;
    int nlrecs, caplrecs;
    fixup *fix;
    int nfix, capfix;
    int stack[MAX_INCLUDE_DEPTH + 1];
    int depth;
    long seq;
    int stop, oom;
    int line_err;       /* this line (or fixup) already has its error */
    uint32_t line_addr; /* first byte this line emitted */
    uint32_t line_bytes;
} asmctx;

static void *reserve(asmctx *c, void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    int ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > INT_MAX / 2) {
            c->oom = 1;
            return p;
        }
        ncap *= 2;
    }
    void *q = realloc(p, (size_t)ncap * size);
    if (!q) {
        c->oom = 1;
        return p;
    }
    *cap = ncap;
    return q;
}
#define RESERVE(c, arr, cap, need)                                                                 \
    ((arr) = reserve((c), (arr), &(cap), (need), sizeof *(arr)), !(c)->oom)

static int32_t s32(uint32_t v) {
    return v < 0x80000000u ? (int32_t)v : (int32_t)(v - 0x80000000u) - INT32_MAX - 1;
}

/* ---- diagnostics ----------------------------------------------------------------------------- */

static void add_diag(asmctx *c, const where *w, int col, char *msg, char *pending) {
    if (!RESERVE(c, c->diags, c->capdiags, c->ndiags + 1)) {
        free(msg);
        free(pending);
        return;
    }
    diag *d = &c->diags[c->ndiags];
    d->w = *w;
    d->w.col = col;
    d->idx = c->ndiags++;
    d->msg = msg;
    d->pending = pending;
    if (!msg && !pending) c->oom = 1;
    if (c->ndiags >= c->max_errors) c->stop = 1;
}

PRINTF_LIKE(4, 5) static void error_at(asmctx *c, const where *w, int col, const char *fmt, ...) {
    if (c->line_err) return;
    c->line_err = 1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    add_diag(c, w, col, msg, NULL);
}

/* Quoting a token: long ones are cut, with "..." after. */
static int shown(size_t n) {
    return n > SHOW_MAX ? SHOW_MAX - 4 : (int)n;
}
static const char *ell(size_t n) {
    return n > SHOW_MAX ? "..." : "";
}

static void put_clean(strbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        sb_putc(b, (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch);
    }
}

static int sym_find(const asmctx *c, const char *s, size_t n);

static void render(asmctx *c, strbuf *out, const diag *d) {
    const char *fname = c->files[d->w.file].name;
    put_clean(out, fname, strlen(fname));
    sb_printf(out, ":%d:%d: error: ", d->w.line, d->w.col);
    if (d->pending) {
        const char *p = d->pending;
        size_t n = strlen(p);
        if (sym_find(c, p, n) >= 0)
            sb_printf(out, "value of '%.*s%s' is not known yet", shown(n), p, ell(n));
        else
            sb_printf(out, "undefined symbol '%.*s%s'", shown(n), p, ell(n));
    } else {
        put_clean(out, d->msg, strlen(d->msg));
    }
    sb_putc(out, '\n');
    size_t ll = (size_t)(d->w.le - d->w.ls);
    put_clean(out, d->w.ls, ll);
    sb_putc(out, '\n');
    for (size_t i = 0; i + 1 < (size_t)d->w.col && i < ll; i++)
        sb_putc(out, d->w.ls[i] == '\t' ? '\t' : ' ');
    sb_puts(out, "^\n");
}

static int cmp_diag(const void *a, const void *b) {
    const diag *x = a, *y = b;
    if (x->w.seq != y->w.seq) return x->w.seq < y->w.seq ? -1 : 1;
    if (x->w.col != y->w.col) return x->w.col < y->w.col ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* ---- symbols --------------------------------------------------------------------------------- */

static size_t hash_name(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int sym_find(const asmctx *c, const char *s, size_t n) {
    if (!c->hcap) return -1;
    for (size_t i = hash_name(s, n) & (c->hcap - 1);; i = (i + 1) & (c->hcap - 1)) {
        int k = c->htab[i];
        if (!k) return -1;
        const sym *y = &c->syms[k - 1];
        if (y->n == n && memcmp(y->name, s, n) == 0) return k - 1;
    }
}

static int sym_add(asmctx *c, const char *s, size_t n) {
    if ((size_t)(c->nsyms + 1) * 2 > c->hcap) {
        size_t ncap = c->hcap ? c->hcap * 2 : 64;
        int *t = calloc(ncap, sizeof *t);
        if (!t) {
            c->oom = 1;
            return -1;
        }
        for (int i = 0; i < c->nsyms; i++) {
            size_t j = hash_name(c->syms[i].name, c->syms[i].n) & (ncap - 1);
            while (t[j])
                j = (j + 1) & (ncap - 1);
            t[j] = i + 1;
        }
        free(c->htab);
        c->htab = t;
        c->hcap = ncap;
    }
    if (!RESERVE(c, c->syms, c->capsyms, c->nsyms + 1)) return -1;
    char *name = dupn(s, n);
    if (!name) {
        c->oom = 1;
        return -1;
    }
    sym *y = &c->syms[c->nsyms];
    memset(y, 0, sizeof *y);
    y->name = name;
    y->n = n;
    size_t j = hash_name(s, n) & (c->hcap - 1);
    while (c->htab[j])
        j = (j + 1) & (c->hcap - 1);
    c->htab[j] = ++c->nsyms;
    return c->nsyms - 1;
}

/* ---- names: registers, control registers, mnemonics ------------------------------------------ */

static int lower(int ch) {
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}
static int is_digit(int ch) {
    return ch >= '0' && ch <= '9';
}
static int is_alpha(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '.';
}
static int is_idch(int ch) {
    return is_alpha(ch) || is_digit(ch);
}

static int name_eq(const char *s, size_t n, const char *lit) {
    size_t i = 0;
    for (; i < n && lit[i]; i++)
        if (lower((unsigned char)s[i]) != lit[i]) return 0;
    return i == n && !lit[i];
}

/* "r" or "cr" then a number 0..15 without leading zeros; -1 if not. */
static int numbered(const char *s, size_t n, size_t plen) {
    if (n <= plen || n > plen + 2) return -1;
    if (n == plen + 2 && s[plen] == '0') return -1;
    int v = 0;
    for (size_t i = plen; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 15 ? v : -1;
}

static int reg_of(const char *s, size_t n) {
    if (name_eq(s, n, "sp")) return CPU_REG_SP;
    if (n < 2 || lower((unsigned char)s[0]) != 'r') return -1;
    return numbered(s, n, 1);
}

/* Looks like a register but is not one: r16, r01, r99999. */
static int reg_shaped(const char *s, size_t n) {
    if (n < 2 || lower((unsigned char)s[0]) != 'r') return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_digit(s[i])) return 0;
    return 1;
}

static int cr_of(const char *s, size_t n) {
    for (int i = 0; i < CPU_NCR; i++)
        if (name_eq(s, n, cpu_cr_names[i])) return i;
    if (n > 2 && lower((unsigned char)s[0]) == 'c' && lower((unsigned char)s[1]) == 'r')
        return numbered(s, n, 2);
    return -1;
}

static const struct {
    const char *name;
    int op;
} aliases[] = {{"jz", OP_JE}, {"jnz", OP_JNE}};

static int op_of(const char *s, size_t n) {
    char buf[16];
    if (n >= sizeof buf) return OP_INVALID;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)lower((unsigned char)s[i]);
    buf[n] = 0;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].name, buf) == 0) return aliases[i].op;
    return cpu_op_by_mnem(buf);
}

/* Optimal string alignment distance, case-insensitive; both short. */
static int distance(const char *a, size_t n, const char *b) {
    size_t m = strlen(b);
    int d[17][17];
    if (n > 16 || m > 16) return 99;
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int ai = lower((unsigned char)a[i - 1]), bj = lower((unsigned char)b[j - 1]);
            int v = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == lower((unsigned char)b[j - 2]) &&
                lower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* Keeps the closer of *best and cand; a suggestion must be within 1 edit of
 * a short word and 2 of a longer one. */
static void consider(const char *s, size_t n, const char *cand, const char **best, int *bestd) {
    int d = distance(s, n, cand);
    if (d > (n <= 3 ? 1 : 2) || d >= *bestd) return;
    *best = cand;
    *bestd = d;
}

/* ---- the lexer ------------------------------------------------------------------------------- */

enum { T_EOL, T_IDENT, T_NUM, T_STR, T_PUNCT, T_BAD };
enum { P_SHL = 'L', P_SHR = 'R' };

typedef struct tok {
    int kind;
    const char *s;
    size_t n;
    uint32_t val; /* T_NUM, also character literals */
    int op;       /* T_PUNCT: the character, or P_SHL / P_SHR */
} tok;

typedef struct parser {
    asmctx *c;
    where w;       /* the line; w.col unused */
    const char *p; /* lexer position */
    tok t;         /* current token */
    int final;     /* resolving fixups: every symbol must be defined */
    uint32_t dot;  /* '.' */
    int depth;
    int stmt_col;
    const char *unknown; /* first symbol without a value yet (pass 1) */
    size_t unknown_n;
    int unknown_col;
} parser;

static int col_of(const parser *ps, const char *at) {
    return (int)(at - ps->w.ls) + 1;
}

#define perr(ps, col, ...) error_at((ps)->c, &(ps)->w, (col), __VA_ARGS__)

static int parse_number(parser *ps, const char *s, const char *e, uint32_t *out) {
    int base = 10;
    const char *q = s;
    size_t n = (size_t)(e - s);
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, q += 2;
    else if (n >= 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
        base = 2, q += 2;
    uint64_t v = 0;
    int big = 0;
    if (q == e) goto bad;
    for (; q < e; q++) {
        int ch = lower((unsigned char)*q), d = 99;
        if (is_digit(ch))
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        if (d >= base) goto bad;
        if (!big) v = v * (uint64_t)base + (uint64_t)d;
        if (v > 0xffffffffu) big = 1;
    }
    if (big) {
        perr(ps, col_of(ps, s), "number '%.*s%s' does not fit in 32 bits", shown(n), s, ell(n));
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
bad:
    perr(ps, col_of(ps, s), "bad number '%.*s%s'", shown(n), s, ell(n));
    return -1;
}

/* One character of a string or character literal at *pp, which is not the
 * closing quote: the byte, -1 after an error, -2 at a backslash ending the line. */
static int lex_char(parser *ps, const char **pp) {
    const char *p = *pp, *le = ps->w.le;
    if (*p != '\\') {
        *pp = p + 1;
        return (unsigned char)*p;
    }
    if (p + 1 >= le) return -2;
    int v;
    switch (p[1]) {
    case 'n': v = '\n'; break;
    case 't': v = '\t'; break;
    case 'r': v = '\r'; break;
    case '0': v = 0; break;
    case '\\':
    case '\'':
    case '"': v = (unsigned char)p[1]; break;
    case 'x': {
        const char *q = p + 2;
        v = 0;
        int k = 0;
        for (; k < 2 && q < le; k++, q++) {
            int ch = lower((unsigned char)*q);
            if (is_digit(ch))
                v = v * 16 + ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                v = v * 16 + ch - 'a' + 10;
            else
                break;
        }
        if (!k) {
            perr(ps, col_of(ps, p), "'\\x' needs hex digits");
            return -1;
        }
        *pp = q;
        return v;
    }
    default: perr(ps, col_of(ps, p), "unknown escape sequence '\\%c'", p[1]); return -1;
    }
    *pp = p + 2;
    return v;
}

static void lex(parser *ps) {
    const char *p = ps->p, *le = ps->w.le;
    while (p < le && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f'))
        p++;
    tok t = {.kind = T_EOL, .s = p};
    if (p >= le || *p == ';' || *p == '#') {
        ps->t = t;
        ps->p = p;
        return;
    }
    unsigned char ch = (unsigned char)*p;
    if (is_alpha(ch)) {
        while (p < le && is_idch((unsigned char)*p))
            p++;
        t.kind = T_IDENT;
    } else if (is_digit(ch)) {
        while (p < le && is_idch((unsigned char)*p))
            p++;
        t.kind = parse_number(ps, t.s, p, &t.val) ? T_BAD : T_NUM;
    } else if (ch == '\'') {
        p++;
        t.kind = T_BAD;
        if (p < le && *p == '\'') {
            perr(ps, col_of(ps, t.s), "empty character literal");
        } else if (p < le) {
            int v = lex_char(ps, &p);
            if (v >= 0 && p < le && *p == '\'') {
                p++;
                t.kind = T_NUM;
                t.val = (uint32_t)v;
            } else if (v != -1) {
                const char *q = p;
                while (q < le && *q != '\'')
                    q++;
                perr(ps, col_of(ps, t.s),
                     q < le && v >= 0 ? "character literal has more than one character"
                                      : "unterminated character literal");
                p = q < le ? q + 1 : le;
            }
        } else {
            perr(ps, col_of(ps, t.s), "unterminated character literal");
        }
    } else if (ch == '"') {
        p++;
        t.kind = T_STR;
        for (;;) {
            if (p >= le) {
                perr(ps, col_of(ps, t.s), "unterminated string");
                t.kind = T_BAD;
                break;
            }
            if (*p == '"') {
                p++;
                break;
            }
            int v = lex_char(ps, &p);
            if (v == -2) {
                perr(ps, col_of(ps, t.s), "unterminated string");
                p = le;
            }
            if (v < 0) {
                t.kind = T_BAD;
                break;
            }
        }
    } else if ((ch == '<' || ch == '>') && p + 1 < le && p[1] == (char)ch) {
        t.kind = T_PUNCT;
        t.op = ch == '<' ? P_SHL : P_SHR;
        p += 2;
    } else if (ch && strchr("+-*/%~&^|()[],:=", ch)) {
        t.kind = T_PUNCT;
        t.op = ch;
        p++;
    } else {
        if (ch >= 0x21 && ch < 0x7f)
            perr(ps, col_of(ps, p), "unexpected character '%c'", ch);
        else
            perr(ps, col_of(ps, p), "unexpected character '\\x%02x'", ch);
        t.kind = T_BAD;
        p++;
    }
    t.n = (size_t)(p - t.s);
    ps->t = t;
    ps->p = p;
}

static void next(parser *ps) {
    lex(ps);
}
static int is_punct(const tok *t, int op) {
    return t->kind == T_PUNCT && t->op == op;
}
static int tcol(const parser *ps) {
    return col_of(ps, ps->t.s);
}

/* The next non-blank character after the current token (labels, '='). */
static int peek_char(const parser *ps) {
    const char *p = ps->p;
    while (p < ps->w.le && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f'))
        p++;
    return p < ps->w.le ? (unsigned char)*p : 0;
}

/* The bytes of a string token (already checked by the lexer). */
static void decode_string(parser *ps, const tok *t, strbuf *out) {
    const char *p = t->s + 1, *end = t->s + t->n - 1;
    while (p < end) {
        int v = lex_char(ps, &p);
        if (v < 0) break;
        sb_putc(out, (char)v);
    }
}

/* ---- expressions ----------------------------------------------------------------------------- */

typedef struct val {
    uint32_t v;
    int known;
} val;

static int expr(parser *ps, int minprec, val *out);

static int binprec(const tok *t) {
    if (t->kind != T_PUNCT) return 0;
    switch (t->op) {
    case '|': return 1;
    case '^': return 2;
    case '&': return 3;
    case P_SHL:
    case P_SHR: return 4;
    case '+':
    case '-': return 5;
    case '*':
    case '/':
    case '%': return 6;
    }
    return 0;
}

static int symbol(parser *ps, val *out) {
    tok t = ps->t;
    next(ps);
    out->known = 1;
    out->v = 0;
    if (t.n == 1 && t.s[0] == '.') {
        out->v = ps->dot;
        return 0;
    }
    if (reg_of(t.s, t.n) >= 0) {
        perr(ps, col_of(ps, t.s), "register '%.*s' in an expression", (int)t.n, t.s);
        return -1;
    }
    int i = sym_find(ps->c, t.s, t.n);
    if (i >= 0) {
        if (!ps->c->syms[i].bad) out->v = ps->c->syms[i].value;
        return 0;
    }
    if (ps->final) {
        perr(ps, col_of(ps, t.s), "undefined symbol '%.*s%s'", shown(t.n), t.s, ell(t.n));
        return -1;
    }
    out->known = 0;
    if (!ps->unknown) {
        ps->unknown = t.s;
        ps->unknown_n = t.n;
        ps->unknown_col = col_of(ps, t.s);
    }
    return 0;
}

static int unary_inner(parser *ps, val *out) {
    tok t = ps->t;
    switch (t.kind) {
    case T_BAD: return -1;
    case T_NUM:
        out->v = t.val;
        out->known = 1;
        next(ps);
        return 0;
    case T_IDENT: return symbol(ps, out);
    case T_PUNCT:
        if (t.op == '-' || t.op == '~' || t.op == '+') {
            next(ps);
            if (expr(ps, 7, out)) return -1; /* 7: above every binary operator */
            if (t.op == '-') out->v = 0u - out->v;
            if (t.op == '~') out->v = ~out->v;
            return 0;
        }
        if (t.op == '(') {
            next(ps);
            if (expr(ps, 1, out)) return -1;
            if (!is_punct(&ps->t, ')')) {
                if (ps->t.kind != T_BAD) perr(ps, tcol(ps), "expected ')'");
                return -1;
            }
            next(ps);
            return 0;
        }
        break;
    }
    if (t.kind == T_EOL)
        perr(ps, tcol(ps), "expected an expression");
    else
        perr(ps, tcol(ps), "expected an expression, not '%.*s%s'", shown(t.n), t.s, ell(t.n));
    return -1;
}

static int binop(parser *ps, const tok *op, val *l, const val *r) {
    uint32_t a = l->v, b = r->v;
    l->known = l->known && r->known;
    switch (op->op) {
    case '|': l->v = a | b; break;
    case '^': l->v = a ^ b; break;
    case '&': l->v = a & b; break;
    case P_SHL: l->v = b >= 32 ? 0 : a << b; break;
    case P_SHR: l->v = b >= 32 ? 0 : a >> b; break;
    case '+': l->v = a + b; break;
    case '-': l->v = a - b; break;
    case '*': l->v = a * b; break;
    case '/':
    case '%':
        if (r->known && b == 0) {
            perr(ps, col_of(ps, op->s), "division by zero");
            return -1;
        }
        l->v = b == 0 ? 0 : op->op == '/' ? a / b : a % b;
        break;
    }
    return 0;
}

/* Precedence climbing; minprec 7 parses one unary operand. */
static int expr(parser *ps, int minprec, val *out) {
    if (++ps->depth > MAX_EXPR_DEPTH) {
        perr(ps, tcol(ps), "expression nested too deeply");
        return -1;
    }
    int rc = minprec > 6 ? unary_inner(ps, out) : expr(ps, 7, out);
    while (!rc) {
        int prec = binprec(&ps->t);
        if (!prec || prec < minprec) break;
        tok op = ps->t;
        next(ps);
        val rhs;
        rc = expr(ps, prec + 1, &rhs);
        if (!rc) rc = binop(ps, &op, out, &rhs);
    }
    ps->depth--;
    return rc;
}

/* A value the layout depends on: it must be known here. */
static int const_expr(parser *ps, uint32_t *v) {
    val x;
    ps->unknown = NULL;
    if (expr(ps, 1, &x)) return -1;
    if (!x.known) {
        if (!ps->c->line_err) {
            ps->c->line_err = 1;
            char *name = dupn(ps->unknown, ps->unknown_n);
            if (!name)
                ps->c->oom = 1;
            else
                add_diag(ps->c, &ps->w, ps->unknown_col, NULL, name);
        }
        return -1;
    }
    *v = x.v;
    return 0;
}

/* ---- emitting bytes -------------------------------------------------------------------------- */

static int emit(parser *ps, const uint8_t *src, uint8_t fill, uint32_t n) {
    asmctx *c = ps->c;
    if (n == 0) return 0;
    if (c->dot + n > ((uint64_t)1 << 32)) {
        perr(ps, ps->stmt_col, "bytes past the end of the address space (0xffffffff)");
        return -1;
    }
    if (c->total + n > MAX_IMAGE_BYTES) {
        perr(ps, ps->stmt_col, "image larger than %u MiB", MAX_IMAGE_BYTES >> 20);
        return -1;
    }
    if (c->cur < 0) {
        if (!RESERVE(c, c->chunks, c->capchunks, c->nchunks + 1)) return -1;
        c->chunks[c->nchunks] = (chunk){.addr = (uint32_t)c->dot};
        c->cur = c->nchunks++;
    }
    chunk *k = &c->chunks[c->cur];
    if (k->len + n > k->cap) {
        uint32_t cap = k->cap ? k->cap : 64;
        while (cap < k->len + n)
            cap *= 2;
        uint8_t *d = realloc(k->data, cap);
        if (!d) {
            c->oom = 1;
            return -1;
        }
        k->data = d;
        k->cap = cap;
    }
    if (src)
        memcpy(k->data + k->len, src, n);
    else
        memset(k->data + k->len, fill, n);
    if (!c->line_bytes) c->line_addr = (uint32_t)c->dot;
    k->len += n;
    c->dot += n;
    c->total += n;
    c->line_bytes += n;
    return 0;
}

static void put32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* Emits n bytes, to be completed by a fixup for the expression at expr. */
static int emit_fixup(parser *ps, const uint8_t *b, uint32_t n, const fixup *f) {
    asmctx *c = ps->c;
    if (emit(ps, b, 0, n)) return -1;
    if (!RESERVE(c, c->fix, c->capfix, c->nfix + 1)) return -1;
    fixup *x = &c->fix[c->nfix++];
    *x = *f;
    x->chunk = c->cur;
    x->off = c->chunks[c->cur].len - n;
    x->dot = ps->dot;
    x->w = ps->w;
    return 0;
}

/* ---- instructions ---------------------------------------------------------------------------- */

/* Operands of each format, in source order, one letter each:
 *   a b  register into ra / rb        c C  control register into ra / rb
 *   s    simm16                       i    imm32 (also a jmp/call target)
 *   m M  [reg+simm16], reg into rb / ra
 *   j    branch target, simm16 from the next instruction
 *   u    imm8 (int vector)            p    port16 */
static const char *const fmt_shape[F_COUNT] = {
    [F_NONE] = "",  [F_R] = "a",     [F_RR] = "ab",  [F_RI] = "as",  [F_RI32] = "ai",
    [F_LD] = "am",  [F_ST] = "Mb",   [F_J] = "j",    [F_A32] = "i",  [F_IMM] = "u",
    [F_PIN] = "ap", [F_POUT] = "pb", [F_CRW] = "cb", [F_CRR] = "aC",
};

/* "'add' expects ra, rb": at the offending token, or at the mnemonic when
 * an operand is missing. */
static int expects(parser *ps, int op, const tok *m) {
    if (ps->t.kind == T_BAD) return -1;
    int col = ps->t.kind == T_EOL ? col_of(ps, m->s) : tcol(ps);
    const char *shape = cpu_fmt_operands(cpu_isa[op].fmt);
    perr(ps, col, "'%.*s' expects %s", (int)m->n, m->s, *shape ? shape : "no operands");
    return -1;
}

static int want_reg(parser *ps, int op, const tok *m, uint8_t *r) {
    if (ps->t.kind == T_IDENT) {
        int x = reg_of(ps->t.s, ps->t.n);
        if (x >= 0) {
            *r = (uint8_t)x;
            next(ps);
            return 0;
        }
        if (reg_shaped(ps->t.s, ps->t.n)) {
            perr(ps, tcol(ps), "bad register '%.*s%s' (r0..r15, sp)", shown(ps->t.n), ps->t.s,
                 ell(ps->t.n));
            return -1;
        }
    }
    return expects(ps, op, m);
}

static int want_cr(parser *ps, int op, const tok *m, uint8_t *r) {
    if (ps->t.kind == T_IDENT && reg_of(ps->t.s, ps->t.n) < 0) {
        int x = cr_of(ps->t.s, ps->t.n);
        if (x >= 0) {
            *r = (uint8_t)x;
            next(ps);
            return 0;
        }
        char names[64] = "";
        for (int i = 0; i < CPU_NCR; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     cpu_cr_names[i]);
        perr(ps, tcol(ps), "unknown control register '%.*s%s' (%s)", shown(ps->t.n), ps->t.s,
             ell(ps->t.n), names);
        return -1;
    }
    return expects(ps, op, m);
}

/* Range-checks an operand value and puts it into in->imm; pc is the
 * instruction's address. */
static int set_operand(asmctx *c, const where *w, char kind, cpu_insn *in, uint32_t v,
                       uint32_t pc) {
    int32_t s = s32(v);
    switch (kind) {
    case 's':
    case 'm':
    case 'M':
        if (s < -32768 || s > 32767) {
            error_at(c, w, w->col, "%s %d out of range (-32768..32767)",
                     kind == 's' ? "immediate" : "displacement", s);
            return -1;
        }
        in->imm = s;
        return 0;
    case 'j':
        s = s32(v - (pc + 4u));
        if (s < -32768 || s > 32767) {
            error_at(c, w, w->col, "branch target out of range (%d bytes)", s);
            return -1;
        }
        in->imm = s;
        return 0;
    case 'u':
        if (v > 255) {
            error_at(c, w, w->col, "vector %d out of range (0..255)", s);
            return -1;
        }
        in->imm = s;
        return 0;
    case 'p':
        if (v > 0xffff) {
            error_at(c, w, w->col, "port %d out of range (0..65535)", s);
            return -1;
        }
        in->imm = s;
        return 0;
    default: in->imm = s; return 0;
    }
}

static uint32_t encode(const cpu_insn *in, uint8_t b[8]) {
    uint32_t wd[2] = {0, 0};
    int n = cpu_encode(in, wd);
    put32(b, wd[0]);
    put32(b + 4, wd[1]);
    return (uint32_t)n;
}

static int check_end(parser *ps) {
    if (ps->t.kind == T_EOL) return 0;
    if (ps->t.kind != T_BAD) perr(ps, tcol(ps), "junk after operands");
    return -1;
}

static void instruction(parser *ps, int op) {
    tok m = ps->t;
    int fmt = cpu_isa[op].fmt;
    const char *shape = fmt_shape[fmt];
    cpu_insn in = {.op = (uint8_t)op, .size = (uint8_t)cpu_fmt_size(fmt)};
    val v = {0, 1};
    char vkind = 0;
    const char *vexpr = NULL;
    int vcol = 0;
    next(ps);
    for (int i = 0; shape[i]; i++) {
        char k = shape[i];
        if (i > 0) {
            if (!is_punct(&ps->t, ',')) {
                expects(ps, op, &m);
                return;
            }
            next(ps);
        }
        switch (k) {
        case 'a':
            if (want_reg(ps, op, &m, &in.ra)) return;
            break;
        case 'b':
            if (want_reg(ps, op, &m, &in.rb)) return;
            break;
        case 'c':
            if (want_cr(ps, op, &m, &in.ra)) return;
            break;
        case 'C':
            if (want_cr(ps, op, &m, &in.rb)) return;
            break;
        case 'm':
        case 'M':
            if (!is_punct(&ps->t, '[')) {
                expects(ps, op, &m);
                return;
            }
            next(ps);
            if (want_reg(ps, op, &m, k == 'm' ? &in.rb : &in.ra)) return;
            vkind = k;
            if (is_punct(&ps->t, '+') || is_punct(&ps->t, '-')) {
                vexpr = ps->t.s;
                vcol = tcol(ps);
                ps->unknown = NULL;
                if (expr(ps, 1, &v)) return;
            }
            if (!is_punct(&ps->t, ']')) {
                expects(ps, op, &m);
                return;
            }
            next(ps);
            break;
        default:
            if (ps->t.kind == T_EOL || (ps->t.kind == T_IDENT && reg_of(ps->t.s, ps->t.n) >= 0)) {
                expects(ps, op, &m);
                return;
            }
            vkind = k;
            vexpr = ps->t.s;
            vcol = tcol(ps);
            ps->unknown = NULL;
            if (expr(ps, 1, &v)) return;
            break;
        }
    }
    if (ps->t.kind != T_EOL) {
        if (!*shape || is_punct(&ps->t, ','))
            expects(ps, op, &m);
        else
            check_end(ps);
        return;
    }
    uint8_t b[8];
    if (vkind && !v.known) {
        fixup f = {.kind = FX_OPERAND, .opkind = vkind, .insn = in, .expr = vexpr};
        uint32_t n = encode(&in, b);
        if (emit_fixup(ps, b, n, &f)) return;
        ps->c->fix[ps->c->nfix - 1].w.col = vcol;
        return;
    }
    if (vkind) {
        where w = ps->w;
        w.col = vcol;
        if (set_operand(ps->c, &w, vkind, &in, v.v, ps->dot)) return;
    }
    emit(ps, b, 0, encode(&in, b));
}

/* ---- symbols defined by the source ----------------------------------------------------------- */

static int define(parser *ps, const tok *name, uint32_t value, int is_label, int bad) {
    asmctx *c = ps->c;
    int col = col_of(ps, name->s);
    if (reg_of(name->s, name->n) >= 0) {
        perr(ps, col, "'%.*s' is a register name, not a %s", (int)name->n, name->s,
             is_label ? "label" : "symbol");
        return -1;
    }
    if (name->n == 1 && name->s[0] == '.') {
        perr(ps, col, "'.' is the location counter, not a label");
        return -1;
    }
    int i = sym_find(c, name->s, name->n);
    if (i >= 0) {
        const sym *y = &c->syms[i];
        perr(ps, col, "%s '%.*s%s' already defined at %s:%d", is_label ? "label" : "symbol",
             shown(name->n), name->s, ell(name->n), c->files[y->file].name, y->line);
        return -1;
    }
    i = sym_add(c, name->s, name->n);
    if (i < 0) return -1;
    sym *y = &c->syms[i];
    y->value = value;
    y->is_label = is_label;
    y->bad = bad;
    y->file = ps->w.file;
    y->line = ps->w.line;
    return 0;
}

static void set_org(parser *ps, uint32_t v) {
    ps->c->dot = v;
    ps->c->cur = -1;
}

/* NAME, EXPR after .equ or NAME = EXPR; the current token is EXPR. */
static void equ(parser *ps, const tok *name) {
    uint32_t v;
    if (const_expr(ps, &v)) {
        if (!(name->n == 1 && name->s[0] == '.')) define(ps, name, 0, 0, 1);
        return;
    }
    if (check_end(ps)) return;
    if (name->n == 1 && name->s[0] == '.')
        set_org(ps, v);
    else
        define(ps, name, v, 0, 0);
}

/* ---- directives ------------------------------------------------------------------------------ */

static void assemble_file(asmctx *c, int fi);

static int dir_usage(parser *ps, const tok *d, const char *usage) {
    if (ps->t.kind == T_BAD) return -1;
    perr(ps, ps->t.kind == T_EOL ? col_of(ps, d->s) : tcol(ps), "'%.*s' expects %s", (int)d->n,
         d->s, usage);
    return -1;
}

static void d_org(parser *ps, const tok *d) {
    uint32_t v;
    if (ps->t.kind == T_EOL) {
        dir_usage(ps, d, "EXPR");
        return;
    }
    if (const_expr(ps, &v) || check_end(ps)) return;
    set_org(ps, v);
}

static int byte_value(parser *ps, uint32_t v, int col) {
    if (s32(v) < -128 || (s32(v) >= 0 && v > 255)) {
        perr(ps, col, "value %d does not fit in a byte (-128..255)", s32(v));
        return -1;
    }
    return 0;
}

static void data(parser *ps, const tok *d, int width) {
    if (ps->t.kind == T_EOL) {
        dir_usage(ps, d, "EXPR[, EXPR...]");
        return;
    }
    for (;;) {
        const char *e = ps->t.s;
        int col = tcol(ps);
        val v;
        ps->unknown = NULL;
        if (expr(ps, 1, &v)) return;
        uint8_t b[4];
        if (!v.known) {
            fixup f = {.kind = width == 4 ? FX_WORD : FX_BYTE, .expr = e};
            memset(b, 0, sizeof b);
            if (emit_fixup(ps, b, (uint32_t)width, &f)) return;
            ps->c->fix[ps->c->nfix - 1].w.col = col;
        } else {
            if (width == 1 && byte_value(ps, v.v, col)) return;
            put32(b, v.v);
            if (emit(ps, b, 0, (uint32_t)width)) return;
        }
        if (!is_punct(&ps->t, ',')) break;
        next(ps);
    }
    check_end(ps);
}

static void d_word(parser *ps, const tok *d) {
    data(ps, d, 4);
}
static void d_byte(parser *ps, const tok *d) {
    data(ps, d, 1);
}

static void strings(parser *ps, const tok *d, int zero) {
    for (;;) {
        if (ps->t.kind != T_STR) {
            dir_usage(ps, d, "\"string\"[, \"string\"...]");
            return;
        }
        strbuf s = {0};
        decode_string(ps, &ps->t, &s);
        if (zero) sb_putc(&s, 0);
        if (s.oom) {
            ps->c->oom = 1;
            free(s.p);
            return;
        }
        int rc = emit(ps, (const uint8_t *)s.p, 0, (uint32_t)s.len);
        free(s.p);
        if (rc) return;
        next(ps);
        if (!is_punct(&ps->t, ',')) break;
        next(ps);
    }
    check_end(ps);
}

static void d_ascii(parser *ps, const tok *d) {
    strings(ps, d, 0);
}
static void d_asciz(parser *ps, const tok *d) {
    strings(ps, d, 1);
}

static void d_space(parser *ps, const tok *d) {
    uint32_t n, fill = 0;
    if (ps->t.kind == T_EOL) {
        dir_usage(ps, d, "N[, FILL]");
        return;
    }
    int ncol = tcol(ps);
    if (const_expr(ps, &n)) return;
    if (is_punct(&ps->t, ',')) {
        next(ps);
        int fcol = tcol(ps);
        if (const_expr(ps, &fill) || byte_value(ps, fill, fcol)) return;
    }
    if (check_end(ps)) return;
    if (s32(n) < 0) {
        perr(ps, ncol, "'%.*s' size %d is negative", (int)d->n, d->s, s32(n));
        return;
    }
    emit(ps, NULL, (uint8_t)fill, n);
}

static void d_align(parser *ps, const tok *d) {
    uint32_t n;
    if (ps->t.kind == T_EOL) {
        dir_usage(ps, d, "N (a power of two)");
        return;
    }
    int col = tcol(ps);
    if (const_expr(ps, &n) || check_end(ps)) return;
    if (n == 0 || (n & (n - 1))) {
        perr(ps, col, "'%.*s' needs a power of two, not %u", (int)d->n, d->s, n);
        return;
    }
    uint64_t pad = (n - ps->c->dot % n) % n;
    emit(ps, NULL, 0, (uint32_t)pad);
}

static void d_equ(parser *ps, const tok *d) {
    if (ps->t.kind != T_IDENT) {
        dir_usage(ps, d, "NAME, EXPR");
        return;
    }
    tok name = ps->t;
    next(ps);
    if (!is_punct(&ps->t, ',')) {
        dir_usage(ps, d, "NAME, EXPR");
        return;
    }
    next(ps);
    equ(ps, &name);
}

static char *read_path(const char *path, size_t *len, const char **err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = strerror(errno);
        return NULL;
    }
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap >= MAX_FILE_BYTES ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                *err = cap >= MAX_FILE_BYTES ? "file too large" : "out of memory";
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                *err = strerror(errno);
                break;
            }
            fclose(f);
            *len = n;
            return buf;
        }
    }
    if (!buf) *err = "out of memory";
    free(buf);
    fclose(f);
    return NULL;
}

static int add_file(asmctx *c, char *name, const char *text, size_t len, int parent, int pline) {
    char *t = name ? dupn(text ? text : "", len) : NULL;
    if (!t || !RESERVE(c, c->files, c->capfiles, c->nfiles + 1)) {
        c->oom = 1;
        free(name);
        free(t);
        return -1;
    }
    c->files[c->nfiles] = (src_file){name, t, len, parent, pline};
    return c->nfiles++;
}

static void include(parser *ps, const char *path, size_t plen, int col) {
    asmctx *c = ps->c;
    if (!plen || memchr(path, 0, plen)) {
        perr(ps, col, "bad file name");
        return;
    }
    if (c->depth >= MAX_INCLUDE_DEPTH) {
        perr(ps, col, "includes nested too deeply (more than %d levels)", MAX_INCLUDE_DEPTH);
        return;
    }
    const char *from = c->files[ps->w.file].name;
    strbuf name = {0};
    const char *slash = strrchr(from, '/');
    if (path[0] != '/' && slash) sb_putn(&name, from, (size_t)(slash - from) + 1);
    sb_putn(&name, path, plen);
    if (name.oom) {
        c->oom = 1;
        free(name.p);
        return;
    }
    for (int i = 0; i <= c->depth; i++) {
        if (strcmp(c->files[c->stack[i]].name, name.p) != 0) continue;
        strbuf chain = {0};
        for (int j = i; j <= c->depth; j++) {
            sb_puts(&chain, c->files[c->stack[j]].name);
            sb_puts(&chain, " -> ");
        }
        sb_puts(&chain, name.p);
        perr(ps, col, "include cycle: %s", chain.p ? chain.p : "");
        free(chain.p);
        free(name.p);
        return;
    }
    size_t len = 0;
    const char *err = NULL;
    char *text = c->opt->read ? c->opt->read(c->opt->read_ud, from, path, &len, &err)
                              : read_path(name.p, &len, &err);
    if (!text) {
        perr(ps, col, "cannot read '%s': %s", name.p, err ? err : "unknown error");
        free(name.p);
        return;
    }
    int fi = add_file(c, name.p, text, len, ps->w.file, ps->w.line);
    free(text);
    if (fi < 0) return;
    c->stack[++c->depth] = fi;
    assemble_file(c, fi);
    c->depth--;
    c->line_bytes = 0;
}

static void d_include(parser *ps, const tok *d) {
    if (ps->t.kind != T_STR) {
        dir_usage(ps, d, "\"file\"");
        return;
    }
    tok s = ps->t;
    next(ps);
    if (check_end(ps)) return;
    strbuf path = {0};
    decode_string(ps, &s, &path);
    if (path.oom)
        ps->c->oom = 1;
    else
        include(ps, path.p ? path.p : "", path.len, col_of(ps, s.s));
    free(path.p);
}

static const struct {
    const char *name;
    void (*fn)(parser *ps, const tok *d);
} directives[] = {
    {".org", d_org},     {".word", d_word},   {".byte", d_byte},
    {".ascii", d_ascii}, {".asciz", d_asciz}, {".space", d_space},
    {".equ", d_equ},     {".align", d_align}, {".include", d_include},
};
enum { NDIRECTIVES = sizeof directives / sizeof directives[0] };

/* ---- statements and files -------------------------------------------------------------------- */

static void statement(parser *ps) {
    tok t = ps->t;
    ps->stmt_col = tcol(ps);
    if (peek_char(ps) == '=') {
        next(ps);
        next(ps);
        equ(ps, &t);
        return;
    }
    if (t.s[0] == '.' && t.n > 1) {
        for (int i = 0; i < NDIRECTIVES; i++)
            if (name_eq(t.s, t.n, directives[i].name)) {
                next(ps);
                directives[i].fn(ps, &t);
                return;
            }
        const char *best = NULL;
        int bestd = 99;
        for (int i = 0; i < NDIRECTIVES; i++)
            consider(t.s, t.n, directives[i].name, &best, &bestd);
        if (best)
            perr(ps, ps->stmt_col, "unknown directive '%.*s%s'; did you mean '%s'?", shown(t.n),
                 t.s, ell(t.n), best);
        else
            perr(ps, ps->stmt_col, "unknown directive '%.*s%s'", shown(t.n), t.s, ell(t.n));
        return;
    }
    int op = op_of(t.s, t.n);
    if (op != OP_INVALID) {
        instruction(ps, op);
        return;
    }
    const char *best = NULL;
    int bestd = 99;
    for (int i = 0; i < OP_COUNT; i++)
        consider(t.s, t.n, cpu_isa[i].mnem, &best, &bestd);
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        consider(t.s, t.n, aliases[i].name, &best, &bestd);
    if (best)
        perr(ps, ps->stmt_col, "unknown instruction '%.*s%s'; did you mean '%s'?", shown(t.n), t.s,
             ell(t.n), best);
    else
        perr(ps, ps->stmt_col, "unknown instruction '%.*s%s'", shown(t.n), t.s, ell(t.n));
}

static void assemble_line(asmctx *c, int fi, int lineno, const char *ls, const char *le) {
    parser ps = {.c = c, .w = {fi, lineno, 0, ++c->seq, ls, le}, .p = ls};
    c->line_err = 0;
    c->line_bytes = 0;
    next(&ps);
    while (ps.t.kind == T_IDENT && peek_char(&ps) == ':') {
        define(&ps, &ps.t, (uint32_t)c->dot, 1, 0);
        next(&ps);
        next(&ps);
    }
    ps.dot = (uint32_t)c->dot;
    if (ps.t.kind == T_IDENT)
        statement(&ps);
    else if (ps.t.kind != T_EOL && ps.t.kind != T_BAD)
        perr(&ps, tcol(&ps), "expected an instruction or directive, not '%.*s%s'", shown(ps.t.n),
             ps.t.s, ell(ps.t.n));
    if (c->line_bytes && RESERVE(c, c->lrecs, c->caplrecs, c->nlrecs + 1)) {
        lrec *r = &c->lrecs[c->nlrecs++];
        r->addr = c->line_addr;
        r->len = c->line_bytes;
        r->w = ps.w;
        r->w.col = ps.stmt_col;
    }
}

static void assemble_file(asmctx *c, int fi) {
    const char *p = c->files[fi].text, *end = p + c->files[fi].len;
    int lineno = 0;
    while (p < end && !c->stop && !c->oom) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *te = le;
        if (te > p && te[-1] == '\r') te--;
        if (lineno == INT_MAX) break;
        assemble_line(c, fi, ++lineno, p, te);
        p = le + 1;
    }
}

/* ---- the end: fixups, overlaps, the image ---------------------------------------------------- */

static void resolve_fixups(asmctx *c) {
    for (int i = 0; i < c->nfix && !c->oom; i++) {
        fixup *f = &c->fix[i];
        parser ps = {.c = c, .w = f->w, .p = f->expr, .final = 1, .dot = f->dot};
        c->line_err = 0;
        next(&ps);
        val v;
        if (expr(&ps, 1, &v)) continue;
        uint8_t b[8], *dst = c->chunks[f->chunk].data + f->off;
        switch (f->kind) {
        case FX_OPERAND: {
            cpu_insn in = f->insn;
            if (set_operand(c, &f->w, f->opkind, &in, v.v, f->dot)) continue;
            memcpy(dst, b, encode(&in, b));
            break;
        }
        case FX_WORD: put32(dst, v.v); break;
        case FX_BYTE:
            if (byte_value(&ps, v.v, f->w.col)) continue;
            dst[0] = (uint8_t)v.v;
            break;
        }
    }
}

static int cmp_lrec(const void *a, const void *b) {
    const lrec *x = a, *y = b;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    return (x->w.seq > y->w.seq) - (x->w.seq < y->w.seq);
}

static void check_overlaps(asmctx *c) {
    if (c->nlrecs > 1) qsort(c->lrecs, (size_t)c->nlrecs, sizeof *c->lrecs, cmp_lrec);
    uint64_t end = 0;
    int owner = -1;
    for (int i = 0; i < c->nlrecs; i++) {
        const lrec *r = &c->lrecs[i];
        if (owner >= 0 && r->addr < end) {
            const lrec *o = &c->lrecs[owner];
            const lrec *later = r->w.seq > o->w.seq ? r : o, *earlier = later == r ? o : r;
            c->line_err = 0;
            error_at(c, &later->w, later->w.col, "bytes at 0x%08x already assembled at %s:%d",
                     r->addr, c->files[earlier->w.file].name, earlier->w.line);
        }
        if ((uint64_t)r->addr + r->len > end) {
            end = (uint64_t)r->addr + r->len;
            owner = i;
        }
    }
}

static int cmp_chunk(const void *a, const void *b) {
    const chunk *x = a, *y = b;
    return (x->addr > y->addr) - (x->addr < y->addr);
}

static int build_image(asmctx *c, asm_image *img) {
    /* chunks: sorted, contiguous ones merged */
    int n = 0;
    for (int i = 0; i < c->nchunks; i++) {
        if (c->chunks[i].len)
            c->chunks[n++] = c->chunks[i];
        else
            free(c->chunks[i].data);
    }
    c->nchunks = n;
    if (n > 1) qsort(c->chunks, (size_t)n, sizeof *c->chunks, cmp_chunk);
    n = 0;
    for (int i = 0; i < c->nchunks; i++) {
        chunk k = c->chunks[i];
        c->chunks[i].data = NULL;
        chunk *last = n ? &c->chunks[n - 1] : NULL;
        if (last && (uint64_t)last->addr + last->len == k.addr) {
            uint8_t *d = realloc(last->data, (size_t)last->len + k.len);
            if (!d) {
                c->chunks[i].data = k.data;
                c->oom = 1;
                return -1;
            }
            memcpy(d + last->len, k.data, k.len);
            free(k.data);
            last->data = d;
            last->len += k.len;
        } else {
            c->chunks[n++] = k;
        }
    }
    c->nchunks = n;

    int start = sym_find(c, "start", 5);
    img->entry = start >= 0 ? c->syms[start].value : n ? c->chunks[0].addr : c->opt->origin;
    img->chunks = calloc((size_t)n + 1, sizeof *img->chunks);
    img->syms = calloc((size_t)c->nsyms + 1, sizeof *img->syms);
    img->lines = calloc((size_t)c->nlrecs + 1, sizeof *img->lines);
    img->files = calloc((size_t)c->nfiles + 1, sizeof *img->files);
    img->texts = calloc((size_t)c->nfiles + 1, sizeof *img->texts);
    img->incl_from = calloc((size_t)c->nfiles + 1, sizeof *img->incl_from);
    img->incl_line = calloc((size_t)c->nfiles + 1, sizeof *img->incl_line);
    if (!img->chunks || !img->syms || !img->lines || !img->files || !img->texts ||
        !img->incl_from || !img->incl_line) {
        c->oom = 1;
        asm_image_free(img);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        img->chunks[i] = (asm_chunk){c->chunks[i].addr, c->chunks[i].len, c->chunks[i].data};
        c->chunks[i].data = NULL;
    }
    img->nchunks = n;
    for (int i = 0; i < c->nsyms; i++) {
        img->syms[i] = (asm_symbol){c->syms[i].name, c->syms[i].value, c->syms[i].is_label};
        c->syms[i].name = NULL;
    }
    img->nsyms = c->nsyms;
    for (int i = 0; i < c->nlrecs; i++) {
        const lrec *r = &c->lrecs[i];
        img->lines[i] = (asm_line){r->addr, r->len, r->w.file, r->w.line};
    }
    img->nlines = c->nlrecs;
    for (int i = 0; i < c->nfiles; i++) {
        img->files[i] = c->files[i].name;
        img->texts[i] = c->files[i].text;
        img->incl_from[i] = c->files[i].parent;
        img->incl_line[i] = c->files[i].parent_line;
        c->files[i].name = c->files[i].text = NULL;
    }
    img->nfiles = c->nfiles;
    return 0;
}

static void ctx_free(asmctx *c) {
    for (int i = 0; i < c->nfiles; i++) {
        free(c->files[i].name);
        free(c->files[i].text);
    }
    free(c->files);
    for (int i = 0; i < c->nsyms; i++)
        free(c->syms[i].name);
    free(c->syms);
    free(c->htab);
    for (int i = 0; i < c->ndiags; i++) {
        free(c->diags[i].msg);
        free(c->diags[i].pending);
    }
    free(c->diags);
    for (int i = 0; i < c->nchunks; i++)
        free(c->chunks[i].data);
    free(c->chunks);
    free(c->lrecs);
    free(c->fix);
}

int asm_assemble(const char *src, size_t len, const char *file, const asm_options *opt,
                 asm_image *out, char **errors) {
    static const asm_options defaults;
    asmctx c;
    memset(&c, 0, sizeof c);
    c.opt = opt ? opt : &defaults;
    c.max_errors = c.opt->max_errors > 0 ? c.opt->max_errors : DEFAULT_MAX_ERRORS;
    c.cur = -1;
    c.dot = c.opt->origin;
    if (errors) *errors = NULL;
    if (out) memset(out, 0, sizeof *out);
    if (!src) len = 0;
    if (!file) file = "<input>";

    int nerr = 0;
    if (add_file(&c, dupn(file, strlen(file)), src, len, -1, 0) == 0) {
        c.stack[0] = 0;
        assemble_file(&c, 0);
        if (!c.stop && !c.oom) {
            resolve_fixups(&c);
            check_overlaps(&c);
        }
    }
    if (!c.oom && c.ndiags) {
        qsort(c.diags, (size_t)c.ndiags, sizeof *c.diags, cmp_diag);
        nerr = c.ndiags < c.max_errors ? c.ndiags : c.max_errors;
        strbuf text = {0};
        for (int i = 0; i < nerr; i++)
            render(&c, &text, &c.diags[i]);
        if (text.oom)
            c.oom = 1;
        else if (errors)
            *errors = text.p, text.p = NULL;
        free(text.p);
    } else if (!c.oom) {
        asm_image img;
        memset(&img, 0, sizeof img);
        if (build_image(&c, &img) == 0) {
            if (out)
                *out = img;
            else
                asm_image_free(&img);
        }
    }
    if (c.oom) {
        if (errors) {
            free(*errors);
            *errors = dupn("error: out of memory\n", 21);
        }
        nerr = nerr ? nerr : 1;
        if (out) asm_image_free(out);
    }
    ctx_free(&c);
    return nerr;
}

void asm_image_free(asm_image *img) {
    if (!img) return;
    if (img->chunks)
        for (int i = 0; i < img->nchunks; i++)
            free(img->chunks[i].data);
    free(img->chunks);
    if (img->syms)
        for (int i = 0; i < img->nsyms; i++)
            free(img->syms[i].name);
    free(img->syms);
    free(img->lines);
    for (int i = 0; i < img->nfiles; i++) {
        if (img->files) free(img->files[i]);
        if (img->texts) free(img->texts[i]);
    }
    free(img->files);
    free(img->texts);
    free(img->incl_from);
    free(img->incl_line);
    memset(img, 0, sizeof *img);
}

int asm_symbol_value(const asm_image *img, const char *name, uint32_t *value) {
    if (!img || !name) return -1;
    for (int i = 0; i < img->nsyms; i++)
        if (img->syms[i].name && strcmp(img->syms[i].name, name) == 0) {
            if (value) *value = img->syms[i].value;
            return 0;
        }
    return -1;
}

const asm_line *asm_line_at(const asm_image *img, uint32_t addr) {
    if (!img) return NULL;
    int lo = 0, hi = img->nlines - 1, found = -1;
    while (lo <= hi) { /* the last line starting at or below addr */
        int mid = lo + (hi - lo) / 2;
        if (img->lines[mid].addr <= addr) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (found < 0) return NULL;
    const asm_line *l = &img->lines[found];
    return (uint64_t)addr < (uint64_t)l->addr + l->len ? l : NULL;
}

/* ---- the listing ----------------------------------------------------------------------------- */

static const uint8_t *bytes_at(const asm_image *img, uint32_t addr, uint32_t len) {
    for (int i = 0; i < img->nchunks; i++) {
        const asm_chunk *k = &img->chunks[i];
        if (addr >= k->addr && (uint64_t)addr + len <= (uint64_t)k->addr + k->len)
            return k->data + (addr - k->addr);
    }
    return NULL;
}

static void list_line(const asm_image *img, FILE *out, const asm_line *r, const char *src,
                      size_t n) {
    const uint8_t *b = r ? bytes_at(img, r->addr, r->len) : NULL;
    char pre[8 + 2 + 3 * LIST_BYTES + 2 + 1];
    size_t k = 0;
    if (r)
        k += (size_t)snprintf(pre, sizeof pre, "%08x  ", r->addr);
    else
        k += (size_t)snprintf(pre, sizeof pre, "%10s", "");
    for (uint32_t i = 0; i < LIST_BYTES; i++) {
        if (b && i < r->len)
            snprintf(pre + k, sizeof pre - k, "%02x ", b[i]);
        else
            snprintf(pre + k, sizeof pre - k, "   ");
        k += 3;
    }
    snprintf(pre + k, sizeof pre - k, "  ");
    k += 2;
    if (!n)
        while (k && pre[k - 1] == ' ')
            k--;
    fwrite(pre, 1, k, out);
    fwrite(src, 1, n, out);
    fputc('\n', out);
    for (uint32_t off = LIST_BYTES; b && off < r->len; off += LIST_BYTES) {
        fprintf(out, "%08x ", r->addr + off);
        for (uint32_t i = off; i < r->len && i < off + LIST_BYTES; i++)
            fprintf(out, " %02x", b[i]);
        fputc('\n', out);
    }
}

static void list_file(const asm_image *img, FILE *out, int *const *recs, const int *nl, int fi,
                      int depth) {
    const char *p = img->texts[fi];
    if (!p || depth > MAX_INCLUDE_DEPTH) return;
    for (int line = 1; *p; line++) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        int ri = line <= nl[fi] ? recs[fi][line] : -1;
        list_line(img, out, ri >= 0 ? &img->lines[ri] : NULL, p, n);
        for (int j = fi + 1; img->incl_from && img->incl_line && j < img->nfiles; j++) {
            if (img->incl_from[j] != fi || img->incl_line[j] != line) continue;
            fprintf(out, ";; %s\n", img->files[j]);
            list_file(img, out, recs, nl, j, depth + 1);
            fprintf(out, ";; %s\n", img->files[fi]);
        }
        if (!e) break;
        p = e + 1;
    }
}

int asm_listing(const asm_image *img, FILE *out) {
    if (!img || !out) return -1;
    if (!img->nfiles || !img->texts) return 0;
    int rc = 0;
    int **recs = calloc((size_t)img->nfiles, sizeof *recs);
    int *nl = calloc((size_t)img->nfiles, sizeof *nl);
    if (!recs || !nl) rc = -1;
    for (int f = 0; !rc && f < img->nfiles; f++) {
        const char *t = img->texts[f] ? img->texts[f] : "";
        int n = 0;
        for (const char *p = t; *p;) {
            n++;
            const char *e = strchr(p, '\n');
            if (!e) break;
            p = e + 1;
        }
        nl[f] = n;
        recs[f] = malloc(((size_t)n + 1) * sizeof **recs);
        if (!recs[f]) {
            rc = -1;
            break;
        }
        for (int i = 0; i <= n; i++)
            recs[f][i] = -1;
    }
    for (int i = 0; !rc && i < img->nlines; i++) {
        const asm_line *l = &img->lines[i];
        if (l->file >= 0 && l->file < img->nfiles && l->line >= 1 && l->line <= nl[l->file])
            recs[l->file][l->line] = i;
    }
    if (!rc) list_file(img, out, recs, nl, 0, 0);
    for (int f = 0; recs && f < img->nfiles; f++)
        free(recs[f]);
    free(recs);
    free(nl);
    if (!rc && ferror(out)) rc = -1;
    return rc;
}
