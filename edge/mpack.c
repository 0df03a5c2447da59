// msgpack bounds check (no allocation), msgpack -> JSON and typed lookups.
#include "mpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_be (const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  Size of the item header at p (at most avail bytes): *head = header bytes,
//  *payload = bytes after the header, *children = nested items. -1 if malformed.
static int s_head (const uint8_t *p, size_t avail, size_t *head, uint64_t *payload,
                   uint64_t *children)
{
    uint8_t b = p[0];
    *head = 1;
    *payload = 0;
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if (b >= 0x80 && b <= 0x8f)
        *children = 2u * (b & 0x0f);
    else
    if (b >= 0x90 && b <= 0x9f)
        *children = b & 0x0f;
    else
    if (b >= 0xa0 && b <= 0xbf)
        *payload = b & 0x1f;
    else
    if (b >= 0xca && b <= 0xd3) {
        static const uint8_t sizes[] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
        *payload = sizes[b - 0xca];
    }
    else
    if (b >= 0xd4 && b <= 0xd8)
        *payload = 1 + ((size_t) 1 << (b - 0xd4));     // type byte + 1/2/4/8/16
    else {
        //  Variable lengths: bin/ext/str/array/map with a 1, 2 or 4 byte length
        static const struct { uint8_t code, lenbytes, extra, kind; } var[] = {
            { 0xc4, 1, 0, 0 }, { 0xc5, 2, 0, 0 }, { 0xc6, 4, 0, 0 },
            { 0xc7, 1, 1, 0 }, { 0xc8, 2, 1, 0 }, { 0xc9, 4, 1, 0 },
            { 0xd9, 1, 0, 0 }, { 0xda, 2, 0, 0 }, { 0xdb, 4, 0, 0 },
            { 0xdc, 2, 0, 1 }, { 0xdd, 4, 0, 1 }, { 0xde, 2, 0, 2 }, { 0xdf, 4, 0, 2 } };
        for (size_t i = 0; i < sizeof var / sizeof var[0]; i++) {
            if (var[i].code != b)
                continue;
            if (avail < 1u + var[i].lenbytes)
                return -1;
            uint64_t n = s_be (p + 1, var[i].lenbytes);
            *head = 1u + var[i].lenbytes;
            if (var[i].kind == 0)
                *payload = n + var[i].extra;
            else
                *children = var[i].kind == 1 ? n : 2 * n;
            return 0;
        }
        return -1;                      // 0xc1 (never used)
    }
    return 0;
}

bool mpack_valid (const void *data, size_t len, unsigned max_depth)
{
    const uint8_t *p = data;
    uint64_t need[MPACK_DEPTH_MAX + 1];
    if (max_depth > MPACK_DEPTH_MAX)
        max_depth = MPACK_DEPTH_MAX;
    int depth = 0;
    need[0] = 1;
    size_t pos = 0;
    while (depth >= 0) {
        if (need[depth] == 0) {
            depth--;
            continue;
        }
        need[depth]--;
        size_t head;
        uint64_t payload, children;
        if (pos >= len || s_head (p + pos, len - pos, &head, &payload, &children))
            return false;
        if (head > len - pos || payload > len - pos - head)
            return false;
        pos += head + (size_t) payload;
        if (children == 0)
            continue;
        //  Each nested item takes at least one byte
        if (children > len - pos || (unsigned) depth + 1 > max_depth)
            return false;
        need[++depth] = children;
    }
    return pos == len;
}

#ifdef AIGW_HAVE_MSGPACK

static int s_json_double (buf_t *out, double v)
{
    if (!isfinite (v))
        return buf_puts (out, "null");
    char text[40];
    snprintf (text, sizeof text, "%.15g", v);
    if (strtod (text, NULL) != v)
        snprintf (text, sizeof text, "%.17g", v);
    return buf_puts (out, text);
}

static int s_json (const msgpack_object *o, buf_t *out, int depth);

static int s_json_key (const msgpack_object *k, buf_t *out)
{
    if (k->type == MSGPACK_OBJECT_STR)
        return buf_put_json_string (out, k->via.str.ptr, k->via.str.size);
    if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return buf_printf (out, "\"%llu\"", (unsigned long long) k->via.u64);
    if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return buf_printf (out, "\"%lld\"", (long long) k->via.i64);
    if (k->type == MSGPACK_OBJECT_BOOLEAN)
        return buf_puts (out, k->via.boolean ? "\"true\"" : "\"false\"");
    return buf_puts (out, "\"\"");
}

static int s_json_map (const msgpack_object_map *m, buf_t *out, int depth)
{
    if (buf_putc (out, '{'))
        return -1;
    for (uint32_t i = 0; i < m->size; i++) {
        if ((i && buf_putc (out, ','))
            || s_json_key (&m->ptr[i].key, out) || buf_putc (out, ':')
            || s_json (&m->ptr[i].val, out, depth + 1))
            return -1;
    }
    return buf_putc (out, '}');
}

static int s_json_array (const msgpack_object_array *a, buf_t *out, int depth)
{
    if (buf_putc (out, '['))
        return -1;
    for (uint32_t i = 0; i < a->size; i++)
        if ((i && buf_putc (out, ',')) || s_json (&a->ptr[i], out, depth + 1))
            return -1;
    return buf_putc (out, ']');
}

static int s_json (const msgpack_object *o, buf_t *out, int depth)
{
    if (depth > MPACK_DEPTH_MAX)
        return -1;
    switch (o->type) {
        case MSGPACK_OBJECT_BOOLEAN:
            return buf_puts (out, o->via.boolean ? "true" : "false");
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return buf_printf (out, "%llu", (unsigned long long) o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return buf_printf (out, "%lld", (long long) o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return s_json_double (out, o->via.f64);
        case MSGPACK_OBJECT_STR:
            return buf_put_json_string (out, o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_ARRAY:
            return s_json_array (&o->via.array, out, depth);
        case MSGPACK_OBJECT_MAP:
            return s_json_map (&o->via.map, out, depth);
        default:
            return buf_puts (out, "null");
    }
}

int mpack_to_json (const msgpack_object *obj, buf_t *out)
{
    return s_json (obj, out, 0);
}

const msgpack_object *mpack_get (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
            && memcmp (k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool mpack_num (const msgpack_object *obj, double *out)
{
    if (!obj)
        return false;
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double) obj->via.u64;
    else
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double) obj->via.i64;
    else
    if (obj->type == MSGPACK_OBJECT_FLOAT32 || obj->type == MSGPACK_OBJECT_FLOAT64)
        *out = obj->via.f64;
    else
        return false;
    return true;
}

bool mpack_str (const msgpack_object *obj, char *out, size_t cap)
{
    if (!obj || obj->type != MSGPACK_OBJECT_STR || cap == 0)
        return false;
    size_t n = obj->via.str.size < cap - 1 ? obj->via.str.size : cap - 1;
    memcpy (out, obj->via.str.ptr, n);
    out[n] = 0;
    return true;
}

#endif
