/* json.c — strict validation of JSON request bodies (see gateway/json.h). */
#include "gateway/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/hex.h"
#include "keymeld/uuid.h"

#define FIELD_NAME_QUOTE_MAX 64

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) {
    if (msg == NULL || msglen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    if (r < 0) msg[0] = '\0';
}

km_err km_json_parse_object(const unsigned char *body, size_t len, json_t **out, char *msg, size_t msglen) {
    *out = NULL;
    set_msg(msg, msglen, "%s", "");
    if (body == NULL && len > 0) return KM_ERR_ARG;
    if (len == 0) {
        set_msg(msg, msglen, "body is not valid JSON: empty body");
        return KM_ERR_PARSE;
    }
    json_error_t err;
    /* DECODE_ANY so that a scalar body gets the clearer "must be an object". */
    json_t *v = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL) {
        set_msg(msg, msglen, "body is not valid JSON: %s", err.text);
        return KM_ERR_PARSE;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        set_msg(msg, msglen, "body must be a JSON object");
        return KM_ERR_PARSE;
    }
    *out = v;
    return KM_OK;
}

static int is_lower_hex(const char *s, size_t n) {
    if (n % 2 != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int in_range(uint64_t v, uint64_t min, uint64_t max) {
    return v >= min && (max == 0 || v <= max);
}

/* "32", "1..4096" or "at least 1": the range as the messages spell it. */
static void range_text(char *out, size_t outlen, uint64_t min, uint64_t max) {
    if (max == 0)
        snprintf(out, outlen, "at least %llu", (unsigned long long)min);
    else if (min == max)
        snprintf(out, outlen, "%llu", (unsigned long long)min);
    else
        snprintf(out, outlen, "%llu..%llu", (unsigned long long)min, (unsigned long long)max);
}

/* Check one present value; returns 1 if it conforms, else writes the message. */
static int check_value(const json_t *v, const km_json_field *f, char *msg, size_t msglen) {
    char range[64];
    range_text(range, sizeof range, f->min, f->max);
    switch (f->type) {
    case KM_JSON_STRING: {
        if (!json_is_string(v)) {
            set_msg(msg, msglen, "field '%s' must be a string", f->name);
            return 0;
        }
        size_t n = json_string_length(v);
        /* jansson refuses NUL on parse; an object built in code might not. */
        if (memchr(json_string_value(v), '\0', n) != NULL) {
            set_msg(msg, msglen, "field '%s' must not contain NUL", f->name);
            return 0;
        }
        if (!in_range(n, f->min, f->max)) {
            set_msg(msg, msglen, "field '%s' must be a string of %s bytes", f->name, range);
            return 0;
        }
        return 1;
    }
    case KM_JSON_HEX: {
        size_t n = json_is_string(v) ? json_string_length(v) : 0;
        if (!json_is_string(v) || !is_lower_hex(json_string_value(v), n) ||
            !in_range(n / 2, f->min, f->max)) {
            if (f->min == 0 && f->max == 0)
                set_msg(msg, msglen, "field '%s' must be lowercase hex", f->name);
            else
                set_msg(msg, msglen, "field '%s' must be %s bytes of lowercase hex", f->name, range);
            return 0;
        }
        return 1;
    }
    case KM_JSON_UUID: {
        km_uuid u;
        if (!json_is_string(v) || km_uuid_parse(&u, json_string_value(v), json_string_length(v)) != KM_OK) {
            set_msg(msg, msglen, "field '%s' must be a lowercase UUID (8-4-4-4-12)", f->name);
            return 0;
        }
        return 1;
    }
    case KM_JSON_UINT:
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            set_msg(msg, msglen, "field '%s' must be an unsigned integer", f->name);
            return 0;
        }
        if (!in_range((uint64_t)json_integer_value(v), f->min, f->max)) {
            if (f->max == 0)
                set_msg(msg, msglen, "field '%s' must be an unsigned integer >= %llu", f->name,
                        (unsigned long long)f->min);
            else
                set_msg(msg, msglen, "field '%s' must be an unsigned integer in %s", f->name, range);
            return 0;
        }
        return 1;
    case KM_JSON_BOOL:
        if (!json_is_boolean(v)) {
            set_msg(msg, msglen, "field '%s' must be a boolean", f->name);
            return 0;
        }
        return 1;
    case KM_JSON_ARRAY:
        if (!json_is_array(v)) {
            set_msg(msg, msglen, "field '%s' must be an array", f->name);
            return 0;
        }
        if (!in_range(json_array_size(v), f->min, f->max)) {
            set_msg(msg, msglen, "field '%s' must have %s elements", f->name, range);
            return 0;
        }
        return 1;
    case KM_JSON_OBJECT:
        if (!json_is_object(v)) {
            set_msg(msg, msglen, "field '%s' must be an object", f->name);
            return 0;
        }
        return 1;
    }
    set_msg(msg, msglen, "field '%s' has an unknown type", f->name);
    return 0;
}

km_err km_json_check(const json_t *obj, const km_json_field *fields, size_t n, char *msg, size_t msglen) {
    set_msg(msg, msglen, "%s", "");
    if (json_typeof(obj) != JSON_OBJECT || (fields == NULL && n > 0)) return KM_ERR_ARG;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        int known = 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(fields[i].name, key) == 0;
        if (!known) {
            /* The name is client input: quote it only as printable ASCII,
             * short, so it cannot forge log lines or bloat the answer. */
            char quoted[FIELD_NAME_QUOTE_MAX + 4];
            size_t j = 0;
            for (const unsigned char *k = (const unsigned char *)key; *k && j < FIELD_NAME_QUOTE_MAX; k++)
                quoted[j++] = (*k >= 0x20 && *k < 0x7f) ? (char)*k : '?';
            if (key[j] != '\0' && j == FIELD_NAME_QUOTE_MAX) {
                memcpy(quoted + j, "...", 3);
                j += 3;
            }
            quoted[j] = '\0';
            set_msg(msg, msglen, "unknown field '%s'", quoted);
            return KM_ERR_PARSE;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(obj, fields[i].name);
        if (v == NULL) {
            if (fields[i].required) {
                set_msg(msg, msglen, "missing field '%s'", fields[i].name);
                return KM_ERR_PARSE;
            }
            continue;
        }
        if (!check_value(v, &fields[i], msg, msglen)) return KM_ERR_PARSE;
    }
    return KM_OK;
}

km_err km_json_get_hex(const json_t *obj, const char *name, km_buf *out) {
    km_buf_init(out);
    const json_t *v = json_object_get(obj, name);
    if (v == NULL) return KM_ERR_NOT_FOUND;
    if (!json_is_string(v)) return KM_ERR_PARSE;
    size_t hl = json_string_length(v);
    if (hl % 2 != 0) return KM_ERR_PARSE;
    if (hl == 0) return KM_OK;
    unsigned char *d = malloc(hl / 2);
    if (d == NULL) return KM_ERR_NOMEM;
    size_t dl = 0;
    km_err err = km_hex_decode_var(d, hl / 2, &dl, json_string_value(v), hl);
    if (err != KM_OK) {
        free(d);
        return KM_ERR_PARSE;
    }
    out->data = d;
    out->len = dl;
    out->cap = hl / 2;
    return KM_OK;
}

km_err km_json_get_hex_fixed(const json_t *obj, const char *name, unsigned char *out, size_t len) {
    if (out == NULL && len > 0) return KM_ERR_ARG;
    if (len) memset(out, 0, len);
    const json_t *v = json_object_get(obj, name);
    if (v == NULL) return KM_ERR_NOT_FOUND;
    if (!json_is_string(v)) return KM_ERR_PARSE;
    if (len == 0) return json_string_length(v) == 0 ? KM_OK : KM_ERR_RANGE;
    return km_hex_decode(out, len, json_string_value(v), json_string_length(v));
}

km_err km_json_get_uuid(const json_t *obj, const char *name, unsigned char out[16]) {
    memset(out, 0, 16);
    const json_t *v = json_object_get(obj, name);
    if (v == NULL) return KM_ERR_NOT_FOUND;
    if (!json_is_string(v)) return KM_ERR_PARSE;
    km_uuid u;
    km_err err = km_uuid_parse(&u, json_string_value(v), json_string_length(v));
    if (err != KM_OK) return KM_ERR_PARSE;
    memcpy(out, u.b, 16);
    return KM_OK;
}

km_err km_json_get_uint(const json_t *obj, const char *name, uint64_t *out) {
    *out = 0;
    const json_t *v = json_object_get(obj, name);
    if (v == NULL) return KM_ERR_NOT_FOUND;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return KM_ERR_PARSE;
    *out = (uint64_t)json_integer_value(v);
    return KM_OK;
}

int km_json_get_bool(const json_t *obj, const char *name, int dflt) {
    const json_t *v = json_object_get(obj, name);
    if (!json_is_boolean(v)) return dflt;
    return json_is_true(v) ? 1 : 0;
}

json_t *km_json_hex(const unsigned char *p, size_t n) {
    if (p == NULL && n > 0) return NULL;
    if (n > (SIZE_MAX - 1) / 2) return NULL;
    char *s = malloc(2 * n + 1);
    if (s == NULL) return NULL;
    json_t *v = NULL;
    if (km_hex_encode(s, 2 * n + 1, p, n) == KM_OK) v = json_stringn(s, 2 * n);
    free(s);
    return v;
}

json_t *km_json_uuid(const unsigned char id[16]) {
    km_uuid u;
    char s[KM_UUID_STR_LEN + 1];
    memcpy(u.b, id, 16);
    km_uuid_format(s, &u);
    return json_stringn(s, KM_UUID_STR_LEN);
}
