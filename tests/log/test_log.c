/* The log's three formats, captured from stderr and parsed back: the text line as it always
 * was, logfmt's quoting, and JSON that a strict reader accepts. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "log/log.h"
#include "test.h"

/* Quotes, '=', a backslash, a tab, a newline, a control byte, UTF-8 (é) and a stray byte. */
static const char TRICKY[] = "say \"hi\" a=b back\\slash\ttab\nline \x01 caf\xc3\xa9 \xff end";
/* TRICKY as a JSON reader decodes it: the stray byte is U+FFFD. */
static const char TRICKY_JSON[] =
    "say \"hi\" a=b back\\slash\ttab\nline \x01 caf\xc3\xa9 \xef\xbf\xbd end";

#define MAX_FIELDS 8
#define VALUE_BYTES 2048

struct field {
    char key[32];
    char value[VALUE_BYTES];
    bool quoted; /* a JSON string, or a quoted logfmt value */
};

/* The line rk_log writes for msg in format (NULL if stderr could not be redirected). */
static char *capture(enum rk_log_format format, enum rk_log_level level, const char *msg)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    if (!tmp || saved < 0)
        return NULL;
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    rk_log_set_format(format);
    rk_log_set_node(7, 9, "leader");
    rk_log(level, "%s", msg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *out = calloc(1, 16384);
    rewind(tmp);
    size_t n = out ? fread(out, 1, 16383, tmp) : 0;
    (void)n;
    fclose(tmp);
    return out;
}

/* "2026-01-02T03:04:05.678Z" */
static bool is_timestamp(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (; *shape; s++, shape++)
        if (*shape == 'd' ? *s < '0' || *s > '9' : *s != *shape)
            return false;
    return *s == '\0';
}

/* Well-formed UTF-8, checked by the C library rather than by the code under test. */
static bool is_utf8(const char *s, size_t n)
{
    mbstate_t st;
    memset(&st, 0, sizeof st);
    while (n > 0) {
        wchar_t wc;
        size_t len = mbrtowc(&wc, s, n, &st);
        if (len == (size_t)-1 || len == (size_t)-2 || (wc >= 0xd800 && wc <= 0xdfff))
            return false;
        len = len ? len : 1;
        s += len;
        n -= len;
    }
    return true;
}

static void put_utf8(char **o, unsigned cp)
{
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xc0 | cp >> 6);
        *(*o)++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *(*o)++ = (char)(0xe0 | cp >> 12);
        *(*o)++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *(*o)++ = (char)(0x80 | (cp & 0x3f));
    }
}

/* Decodes a quoted string at p (after its opening quote) with JSON's escapes, into out;
 * returns the byte after the closing quote, or NULL. Control bytes must be escaped; JSON
 * text must be UTF-8, logfmt's need not. */
static const char *parse_quoted(const char *p, char *out, bool utf8)
{
    char *o = out;
    const char *start = p;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20 || o - out > VALUE_BYTES - 8)
            return NULL;
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        const char *esc = strchr("\"\\/bfnrtu", *++p);
        if (!esc || !*p)
            return NULL;
        if (*p == 'u') {
            unsigned cp;
            if (sscanf(p + 1, "%4x", &cp) != 1 || strspn(p + 1, "0123456789abcdefABCDEF") < 4 ||
                (cp >= 0xd800 && cp <= 0xdfff))
                return NULL;
            put_utf8(&o, cp);
            p += 4;
        } else {
            *o++ = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrtu"];
        }
    }
    *o = '\0';
    return !utf8 || is_utf8(start, (size_t)(p - start)) ? p + 1 : NULL;
}

/* A flat JSON object of string and unsigned-integer members, then a newline and nothing
 * more. Returns the number of members, or -1 if the line is not that. */
static int parse_json_line(const char *p, struct field *f)
{
    int n = 0;
    if (*p++ != '{')
        return -1;
    for (;; n++) {
        if (n == MAX_FIELDS || *p++ != '"' || !(p = parse_quoted(p, f[n].key, true)) || *p++ != ':')
            return -1;
        f[n].quoted = *p == '"';
        if (f[n].quoted) {
            p = parse_quoted(p + 1, f[n].value, true);
            if (!p)
                return -1;
        } else {
            size_t len = strspn(p, "0123456789");
            if (len == 0 || len >= VALUE_BYTES || (p[0] == '0' && len > 1))
                return -1;
            memcpy(f[n].value, p, len);
            f[n].value[len] = '\0';
            p += len;
        }
        if (*p == '}')
            return strcmp(p, "}\n") == 0 ? n + 1 : -1;
        if (*p++ != ',')
            return -1;
    }
}

/* key=value pairs separated by one space; a value is bare (no space, '"' or '=') or quoted
 * with JSON's escapes. Returns the number of pairs, or -1. */
static int parse_logfmt_line(const char *p, struct field *f)
{
    for (int n = 0; n < MAX_FIELDS; n++) {
        size_t klen = strcspn(p, "= \"\n");
        if (klen == 0 || klen >= sizeof f[n].key || p[klen] != '=')
            return -1;
        memcpy(f[n].key, p, klen);
        f[n].key[klen] = '\0';
        p += klen + 1;
        f[n].quoted = *p == '"';
        if (f[n].quoted) {
            p = parse_quoted(p + 1, f[n].value, false);
            if (!p)
                return -1;
        } else {
            size_t vlen = strcspn(p, "= \"\n");
            if (vlen == 0 || vlen >= VALUE_BYTES)
                return -1;
            memcpy(f[n].value, p, vlen);
            f[n].value[vlen] = '\0';
            p += vlen;
        }
        if (strcmp(p, "\n") == 0)
            return n + 1;
        if (*p++ != ' ')
            return -1;
    }
    return -1;
}

/* Checks the fields every structured line has, in order, with msg equal to want_msg. */
static bool fields_are(const struct field *f, int n, const char *level, const char *want_msg)
{
    static const char *const keys[] = {"time", "level", "node", "term", "role", "msg"};
    if (n != 6) {
        fprintf(stderr, "  %d fields, want 6\n", n);
        return false;
    }
    for (int i = 0; i < 6; i++) {
        if (strcmp(f[i].key, keys[i]) != 0) {
            fprintf(stderr, "  field %d is \"%s\", want \"%s\"\n", i, f[i].key, keys[i]);
            return false;
        }
    }
    return is_timestamp(f[0].value) && strcmp(f[1].value, level) == 0 &&
           strcmp(f[2].value, "7") == 0 && strcmp(f[3].value, "9") == 0 &&
           strcmp(f[4].value, "leader") == 0 && strcmp(f[5].value, want_msg) == 0;
}

TEST(text_line_keeps_its_format)
{
    char *line = capture(RK_LOG_TEXT, RK_LOG_INFO, "became leader");
    CHECK(line);
    bool ok = strlen(line) > 24 && (line[24] = '\0', is_timestamp(line)) &&
              strcmp(line + 25, "info  node=7 term=9 role=leader: became leader\n") == 0;
    free(line);
    CHECK(ok);
}

TEST(json_line_is_valid_json_with_every_field)
{
    struct field f[MAX_FIELDS];
    const char *msgs[] = {"became leader", TRICKY, ""};
    const char *want[] = {"became leader", TRICKY_JSON, ""};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        char *line = capture(RK_LOG_JSON, RK_LOG_WARN, msgs[i]);
        CHECK(line);
        int n = parse_json_line(line, f);
        bool ok = n > 0 && fields_are(f, n, "warn", want[i]);
        ok = ok && f[0].quoted && !f[2].quoted && !f[3].quoted && f[5].quoted;
        if (!ok)
            fprintf(stderr, "  line: %s", line);
        free(line);
        CHECK(ok);
    }
}

TEST(logfmt_line_quotes_what_needs_it)
{
    struct field f[MAX_FIELDS];
    char *line = capture(RK_LOG_LOGFMT, RK_LOG_ERROR, "plain");
    CHECK(line);
    int n = parse_logfmt_line(line, f);
    bool ok = n > 0 && fields_are(f, n, "error", "plain") && !f[5].quoted;
    free(line);
    CHECK(ok);

    /* Bytes that are not UTF-8 pass through logfmt as they are. */
    const char *msgs[] = {TRICKY, "", "a=b", "x\"y"};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        line = capture(RK_LOG_LOGFMT, RK_LOG_ERROR, msgs[i]);
        CHECK(line);
        n = parse_logfmt_line(line, f);
        ok = n > 0 && f[5].quoted && fields_are(f, n, "error", msgs[i]);
        if (!ok)
            fprintf(stderr, "  line: %s", line);
        free(line);
        CHECK(ok);
    }
}

TEST(lines_below_the_level_are_not_written)
{
    rk_log_set_level(RK_LOG_INFO);
    char *line = capture(RK_LOG_JSON, RK_LOG_DEBUG, "hidden");
    CHECK(line);
    bool empty = line[0] == '\0';
    free(line);
    CHECK(empty);
}

TEST(format_names_parse)
{
    enum rk_log_format f = RK_LOG_TEXT;
    CHECK(rk_log_format_parse("json", &f) == 0 && f == RK_LOG_JSON);
    CHECK(rk_log_format_parse("logfmt", &f) == 0 && f == RK_LOG_LOGFMT);
    CHECK(rk_log_format_parse("text", &f) == 0 && f == RK_LOG_TEXT);
    CHECK(rk_log_format_parse("JSON", &f) != 0 && f == RK_LOG_TEXT);
}

int main(int argc, char **argv)
{
    /* is_utf8 asks the C library, in a UTF-8 locale. */
    if (!setlocale(LC_CTYPE, "C.UTF-8")) {
        fprintf(stderr, "no C.UTF-8 locale\n");
        return 1;
    }
    static const struct test_case cases[] = {
        TEST_REF(text_line_keeps_its_format),
        TEST_REF(json_line_is_valid_json_with_every_field),
        TEST_REF(logfmt_line_quotes_what_needs_it),
        TEST_REF(lines_below_the_level_are_not_written),
        TEST_REF(format_names_parse),
    };
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
