/* Byte strings as JSON text (src/json/json_bytes.h): UTF-8 or not, escaping, base64, fields. */
#include <stdint.h>
#include <string.h>

#include "json/json_bytes.h"
#include "test.h"

/* What the functions put, NUL-terminated, and how many pieces. */
struct sink {
    char text[4096];
    size_t len, puts;
};

static void sink_put(void *arg, const void *data, size_t len)
{
    struct sink *k = arg;
    if (k->len + len < sizeof k->text) {
        memcpy(k->text + k->len, data, len);
        k->len += len;
    }
    k->text[k->len] = '\0';
    k->puts++;
}

static const char *string_of(struct sink *k, const char *s, size_t len)
{
    *k = (struct sink){0};
    rk_json_string(&(struct rk_json_out){sink_put, k}, s, len);
    return k->text;
}

static const char *base64_of(struct sink *k, const char *s, size_t len)
{
    *k = (struct sink){0};
    rk_json_base64(&(struct rk_json_out){sink_put, k}, s, len);
    return k->text;
}

static const char *field_of(struct sink *k, const char *name, const char *s, size_t len)
{
    *k = (struct sink){0};
    rk_json_bytes_field(&(struct rk_json_out){sink_put, k}, name, s, len);
    return k->text;
}

#define UTF8(s) rk_json_utf8_valid(s, sizeof s - 1)

TEST(utf8_accepts_well_formed_text)
{
    CHECK(rk_json_utf8_valid(NULL, 0));
    CHECK(UTF8("plain ascii \x01\x7f"));
    CHECK(UTF8("\xc2\x80 \xdf\xbf"));                      /* U+0080, U+07FF */
    CHECK(UTF8("\xe0\xa0\x80 \xe2\x82\xac \xef\xbf\xbf")); /* U+0800, euro, U+FFFF */
    CHECK(UTF8("\xed\x9f\xbf \xee\x80\x80"));              /* around the surrogates */
    CHECK(UTF8("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"));      /* U+10000, U+10FFFF */
    CHECK(UTF8("a\0b"));                                   /* NUL is a character */
}

TEST(utf8_rejects_overlong_surrogate_truncated_and_stray_bytes)
{
    static const char *const bad[] = {
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf", /* overlong */
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf", /* overlong */
        "\xed\xa0\x80",
        "\xed\xbf\xbf", /* surrogates */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xff", /* past U+10FFFF */
        "\x80",
        "a\xbf", /* stray */
        "\xc3",
        "\xe2\x82",
        "\xf0\x90\x80",
        "a\xe2", /* truncated */
        "\xc3\x28",
        "\xe2\x28\xac",
        "\xf0\x90\x28\x80", /* not continued */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (rk_json_utf8_valid(bad[i], strlen(bad[i])))
            fprintf(stderr, "accepted bad[%zu]\n", i);
        CHECK(!rk_json_utf8_valid(bad[i], strlen(bad[i])));
    }
    /* The length counts, not a NUL: a sequence cut by len is truncated. */
    CHECK(!rk_json_utf8_valid("\xe2\x82\xac", 2));
}

TEST(string_escapes_quotes_backslash_and_control_characters)
{
    struct sink k;
    CHECK(!strcmp(string_of(&k, "", 0), "\"\""));
    CHECK(!strcmp(string_of(&k, "a\"b\\c/d", 7), "\"a\\\"b\\\\c/d\""));
    CHECK(!strcmp(string_of(&k, "\n\r\t", 3), "\"\\n\\r\\t\""));
    CHECK(!strcmp(string_of(&k, "\x00\x01\x1f\x7f", 4), "\"\\u0000\\u0001\\u001f\\u007f\""));
    CHECK(!strcmp(string_of(&k, " ~", 2), "\" ~\""));
    /* UTF-8 is copied as it is. */
    CHECK(!strcmp(string_of(&k, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10),
                  "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""));
    /* A run of plain bytes is put at once, not byte by byte. */
    static const char text[] = "a long value with nothing to escape in it at all";
    string_of(&k, text, sizeof text - 1);
    CHECK_EQ(k.puts, 3);
}

TEST(base64_of_lengths_0_to_5)
{
    struct sink k;
    static const char *const want[] = {"\"\"",     "\"Zg==\"",     "\"Zm8=\"",
                                       "\"Zm9v\"", "\"Zm9vYg==\"", "\"Zm9vYmE=\""};
    for (size_t len = 0; len <= 5; len++)
        CHECK(!strcmp(base64_of(&k, "foobar", len), want[len]));
    CHECK(!strcmp(base64_of(&k, "\xff\x00\xfe\x80\x7f", 5), "\"/wD+gH8=\""));
    CHECK(!strcmp(base64_of(&k, "\xfb\xff", 2), "\"+/8=\""));
}

TEST(base64_of_more_than_a_chunk)
{
    struct sink k;
    char bytes[1000];
    memset(bytes, 0, sizeof bytes);
    base64_of(&k, bytes, sizeof bytes); /* 1,336 digits with padding, 2 quotes */
    CHECK_EQ(k.len, 2 + (sizeof bytes + 2) / 3 * 4);
    CHECK(!strcmp(k.text + k.len - 5, "AA==\""));
    CHECK_EQ(strspn(k.text + 1, "A"), k.len - 4);
}

TEST(field_is_text_or_base64_with_its_encoding)
{
    struct sink k;
    CHECK(!strcmp(field_of(&k, "key", "k\xc3\xa9\n", 4), "\"key\":\"k\xc3\xa9\\n\""));
    CHECK(!strcmp(field_of(&k, "value", NULL, 0), "\"value\":\"\""));
    CHECK(!strcmp(field_of(&k, "next", "list/\xff\x00", 7),
                  "\"next\":\"bGlzdC//AA==\",\"next_encoding\":\"base64\""));
    CHECK(!strcmp(field_of(&k, "value", "\xed\xa0\x80", 3),
                  "\"value\":\"7aCA\",\"value_encoding\":\"base64\""));
}

TEST_MAIN(TEST_REF(utf8_accepts_well_formed_text),
          TEST_REF(utf8_rejects_overlong_surrogate_truncated_and_stray_bytes),
          TEST_REF(string_escapes_quotes_backslash_and_control_characters),
          TEST_REF(base64_of_lengths_0_to_5), TEST_REF(base64_of_more_than_a_chunk),
          TEST_REF(field_is_text_or_base64_with_its_encoding))
