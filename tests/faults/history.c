#include "history.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"put", "get", "delete", "cas"};
static const char *const outcome_names[] = {"ok", "notfound", "mismatch", "failed", "unknown"};

bool hist_bytes_equal(const struct hist_bytes *a, const struct hist_bytes *b)
{
    if (a->present != b->present)
        return false;
    return !a->present || (a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len)));
}

/* The parse of one line: a cursor, and the first error met. */
struct line_parser {
    const char *p;
    unsigned line;
    char *err;
    size_t err_len;
    bool failed;
};

static void parse_fail(struct line_parser *lp, const char *fmt, ...)
{
    if (lp->failed)
        return;
    lp->failed = true;
    int n = snprintf(lp->err, lp->err_len, "line %u: ", lp->line);
    if (n < 0 || (size_t)n >= lp->err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lp->err + n, lp->err_len - n, fmt, ap);
    va_end(ap);
}

static void skip_blanks(struct line_parser *lp)
{
    while (*lp->p == ' ' || *lp->p == '\t')
        lp->p++;
}

static bool at_end(struct line_parser *lp)
{
    skip_blanks(lp);
    return *lp->p == '\0' || *lp->p == '\n' || *lp->p == '\r' || *lp->p == '#';
}

/* Copies the next bare word into buf; an empty word when the line has ended. */
static void parse_word(struct line_parser *lp, char *buf, size_t len)
{
    skip_blanks(lp);
    size_t n = 0;
    while (*lp->p && !isspace((unsigned char)*lp->p)) {
        if (n + 1 < len)
            buf[n++] = *lp->p;
        lp->p++;
    }
    buf[n] = '\0';
}

static uint64_t parse_u64(struct line_parser *lp, const char *what)
{
    char word[32], *end;
    parse_word(lp, word, sizeof word);
    errno = 0;
    unsigned long long v = strtoull(word, &end, 10);
    if (!word[0] || *end || errno || word[0] == '-')
        parse_fail(lp, "%s: expected a number, got \"%s\"", what, word);
    return v;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A quoted string, or "-" (absent) where absent_ok. */
static struct hist_bytes parse_bytes(struct line_parser *lp, const char *what, bool absent_ok)
{
    struct hist_bytes b = {0};
    skip_blanks(lp);
    if (absent_ok && lp->p[0] == '-' && (lp->p[1] == '\0' || isspace((unsigned char)lp->p[1]))) {
        lp->p++;
        return b;
    }
    if (*lp->p != '"') {
        parse_fail(lp, "%s: expected a quoted string%s", what, absent_ok ? " or -" : "");
        return b;
    }
    const char *s = ++lp->p;
    b.data = malloc(strlen(s) + 1);
    if (!b.data) {
        parse_fail(lp, "out of memory");
        return b;
    }
    b.present = true;
    while (*s && *s != '"') {
        if (*s != '\\') {
            b.data[b.len++] = (uint8_t)*s++;
            continue;
        }
        if (s[1] == '\\' || s[1] == '"') {
            b.data[b.len++] = (uint8_t)s[1];
            s += 2;
        } else if (s[1] == 'x' && hex_digit(s[2]) >= 0 && hex_digit(s[3]) >= 0) {
            b.data[b.len++] = (uint8_t)(hex_digit(s[2]) * 16 + hex_digit(s[3]));
            s += 4;
        } else {
            parse_fail(lp, "%s: bad escape in string", what);
            return b;
        }
    }
    if (*s != '"')
        parse_fail(lp, "%s: unterminated string", what);
    else
        lp->p = s + 1;
    return b;
}

static int parse_name(struct line_parser *lp, const char *what, const char *const *names, size_t n)
{
    char word[32];
    parse_word(lp, word, sizeof word);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(word, names[i]))
            return (int)i;
    parse_fail(lp, "%s: unexpected \"%s\"", what, word);
    return 0;
}

static bool outcome_allowed(enum hist_kind kind, enum hist_outcome o)
{
    switch (o) {
    case HIST_NOTFOUND:
        return kind == HIST_GET || kind == HIST_DELETE;
    case HIST_MISMATCH:
        return kind == HIST_CAS;
    default:
        return true;
    }
}

static void parse_op(struct line_parser *lp, struct hist_op *op)
{
    op->line = lp->line;
    op->client = parse_u64(lp, "client");
    op->invoke_ns = parse_u64(lp, "invocation time");
    op->complete_ns = parse_u64(lp, "completion time");
    op->kind = parse_name(lp, "operation", kind_names, 4);
    op->key = parse_bytes(lp, "key", false);
    if (op->kind == HIST_CAS)
        op->expect = parse_bytes(lp, "expected value", true);
    if (op->kind == HIST_PUT || op->kind == HIST_CAS)
        op->value = parse_bytes(lp, "value", false);
    op->outcome = parse_name(lp, "outcome", outcome_names, 5);
    if (lp->failed)
        return;
    if (!outcome_allowed(op->kind, op->outcome))
        parse_fail(lp, "%s cannot end %s", kind_names[op->kind], outcome_names[op->outcome]);
    else if (op->kind == HIST_GET && op->outcome == HIST_OK)
        op->result = parse_bytes(lp, "value read", false);
    else if (op->outcome == HIST_MISMATCH)
        op->result = parse_bytes(lp, "current value", true);
    if (op->complete_ns < op->invoke_ns && op->outcome != HIST_UNKNOWN)
        parse_fail(lp, "completed before it was invoked");
    if (!at_end(lp))
        parse_fail(lp, "unexpected text after the outcome: %s", lp->p);
}

static void op_free(struct hist_op *op)
{
    free(op->key.data);
    free(op->value.data);
    free(op->expect.data);
    free(op->result.data);
}

static int history_push(struct history *h, const struct hist_op *op)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct hist_op *ops = realloc(h->ops, cap * sizeof *ops);
        if (!ops)
            return -1;
        h->ops = ops;
        h->cap = cap;
    }
    h->ops[h->n++] = *op;
    return 0;
}

int history_load(FILE *f, struct history *h, char *err, size_t err_len)
{
    *h = (struct history){0};
    char *line = NULL;
    size_t line_cap = 0;
    struct line_parser lp = {.err = err, .err_len = err_len};
    while (!lp.failed && getline(&line, &line_cap, f) >= 0) {
        lp.line++;
        lp.p = line;
        if (at_end(&lp))
            continue;
        struct hist_op op = {0};
        parse_op(&lp, &op);
        if (lp.failed || history_push(h, &op) < 0) {
            parse_fail(&lp, "out of memory");
            op_free(&op);
        }
    }
    free(line);
    if (!lp.failed && ferror(f))
        snprintf(err, err_len, "read error: %s", strerror(errno)), lp.failed = true;
    if (lp.failed)
        history_free(h);
    return lp.failed ? -1 : 0;
}

static int bytes_copy(struct hist_bytes *dst, const struct hist_bytes *src)
{
    *dst = *src;
    dst->data = NULL;
    if (!src->present)
        return 0;
    dst->data = malloc(src->len ? src->len : 1);
    if (!dst->data)
        return -1;
    if (src->len)
        memcpy(dst->data, src->data, src->len);
    return 0;
}

int history_add(struct history *h, const struct hist_op *op)
{
    struct hist_op copy = *op;
    int rc = bytes_copy(&copy.key, &op->key);
    rc |= bytes_copy(&copy.value, &op->value);
    rc |= bytes_copy(&copy.expect, &op->expect);
    rc |= bytes_copy(&copy.result, &op->result);
    if (rc == 0 && history_push(h, &copy) == 0)
        return 0;
    op_free(&copy);
    return -1;
}

void history_free(struct history *h)
{
    for (size_t i = 0; i < h->n; i++)
        op_free(&h->ops[i]);
    free(h->ops);
    *h = (struct history){0};
}

void history_print_bytes(FILE *f, const struct hist_bytes *b)
{
    if (!b->present) {
        fputc('-', f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < b->len; i++) {
        uint8_t c = b->data[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_arg(FILE *f, const struct hist_bytes *b)
{
    fputc(' ', f);
    history_print_bytes(f, b);
}

void history_print_call(FILE *f, const struct hist_op *op)
{
    fputs(kind_names[op->kind], f);
    print_arg(f, &op->key);
    if (op->kind == HIST_CAS)
        print_arg(f, &op->expect);
    if (op->kind == HIST_PUT || op->kind == HIST_CAS)
        print_arg(f, &op->value);
    fprintf(f, " %s", outcome_names[op->outcome]);
    if ((op->kind == HIST_GET && op->outcome == HIST_OK) || op->outcome == HIST_MISMATCH)
        print_arg(f, &op->result);
}

int history_write_op(FILE *f, const struct hist_op *op)
{
    fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " ", op->client, op->invoke_ns, op->complete_ns);
    history_print_call(f, op);
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}
