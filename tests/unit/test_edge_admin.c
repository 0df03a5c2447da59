// Unit tests for the admin API of virtual keys (edge/admin.c) over a real key store:
// routes and status codes, the answer bodies, malformed and invalid input (400 naming
// the field), and that the secret is shown once only.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>
#include <unistd.h>

#include "admin.h"
#include "keys.h"
#include "keys_fixture.h"

#define S_2026 1767225600LL             // 2026-01-01T00:00:00Z
#define S_2027 1798761600LL             // 2027-01-01T00:00:00Z
#define S_NOW ((S_2026 + 3600) * 1000LL)
#define S_KEYS "/v1/aigw/keys"


//  One answer: status, raw body, parsed body.
typedef struct {
    int status;
    char *body;
    size_t len;
    cJSON *json;
} s_answer_t;


static void s_answer_free (s_answer_t *a)
{
    cJSON_Delete (a->json);
    free (a->body);
    memset (a, 0, sizeof *a);
}

//  Call admin_handle; the body must be JSON (an object) whatever the status.
static s_answer_t s_call (keys_t *keys, const char *method, const char *path, const char *body,
                          int64_t now_ms)
{
    s_answer_t a = { 0, NULL, 0, NULL };
    a.status = admin_handle (keys, method, path, body, body ? strlen (body) : 0, now_ms,
                             &a.body, &a.len);
    assert_non_null (a.body);
    assert_int_equal (strlen (a.body), a.len);
    a.json = cJSON_ParseWithLength (a.body, a.len);
    if (!cJSON_IsObject (a.json))
        fprintf (stderr, "%s %s -> %d not a JSON object: %s\n", method, path, a.status, a.body);
    assert_true (cJSON_IsObject (a.json));
    return a;
}

static const cJSON *s_get (const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive (o, key);
}

static const char *s_str (const cJSON *o, const char *key)
{
    const cJSON *v = s_get (o, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

static double s_num (const cJSON *o, const char *key)
{
    const cJSON *v = s_get (o, key);
    assert_true (cJSON_IsNumber (v));
    return v->valuedouble;
}

//  An error answer with this status, code shape and param (NULL = JSON null).
static void s_expect_error (s_answer_t *a, int status, const char *param)
{
    if (a->status != status)
        fprintf (stderr, "expected %d, got %d: %s\n", status, a->status, a->body);
    assert_int_equal (a->status, status);
    const cJSON *e = s_get (a->json, "error");
    assert_true (cJSON_IsObject (e));
    assert_non_null (s_str (e, "message"));
    assert_non_null (s_str (e, "type"));
    //  The OpenAI shape: every 4xx from the admin API is an invalid_request_error
    if (status < 500)
        assert_string_equal (s_str (e, "type"), "invalid_request_error");
    assert_non_null (s_str (e, "code"));
    const cJSON *p = s_get (e, "param");
    assert_non_null (p);
    if (param) {
        if (!cJSON_IsString (p) || strcmp (p->valuestring, param) != 0)
            fprintf (stderr, "expected param %s: %s\n", param, a->body);
        assert_true (cJSON_IsString (p));
        assert_string_equal (p->valuestring, param);
    }
    else
        assert_true (cJSON_IsNull (p));
}

static void s_post_error (keys_t *keys, const char *body, int status, const char *param)
{
    s_answer_t a = s_call (keys, "POST", S_KEYS, body, S_NOW);
    s_expect_error (&a, status, param);
    s_answer_free (&a);
}

static void s_patch_error (keys_t *keys, const char *name, const char *body, int status,
                           const char *param)
{
    char path[128];
    snprintf (path, sizeof path, S_KEYS "/%s", name);
    s_answer_t a = s_call (keys, "PATCH", path, body, S_NOW);
    s_expect_error (&a, status, param);
    s_answer_free (&a);
}

//  Create a key; secret into secret (if given).
static void s_make (keys_t *keys, const char *body, char *secret, size_t size)
{
    s_answer_t a = s_call (keys, "POST", S_KEYS, body, S_NOW);
    if (a.status != 201)
        fprintf (stderr, "POST %s -> %d %s\n", body, a.status, a.body);
    assert_int_equal (a.status, 201);
    const char *key = s_str (a.json, "key");
    assert_non_null (key);
    if (secret)
        snprintf (secret, size, "%s", key);
    s_answer_free (&a);
}

//  Every field the key object carries.
static void s_expect_key_fields (const cJSON *o)
{
    const char *fields[] = {
        "name", "hint", "models", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period",
        "expires_at", "metadata", "created_at", "revoked", "expired", "requests_last_minute",
        "tokens_last_minute", "in_flight", "spend_usd", "budget_remaining_usd",
        "period_start", "total_requests", "total_tokens", "total_spend_usd",
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!s_get (o, fields[i]))
            fprintf (stderr, "key object lacks %s\n", fields[i]);
        assert_non_null (s_get (o, fields[i]));
    }
    assert_true (cJSON_IsArray (s_get (o, "models")));
    assert_true (cJSON_IsObject (s_get (o, "metadata")));
    assert_true (cJSON_IsBool (s_get (o, "revoked")));
    assert_true (cJSON_IsBool (s_get (o, "expired")));
}

//  --------------------------------------------------------------- create

static void test_admin_create (void **state)
{
    s_fix_t *f = *state;
    char body[512];
    snprintf (body, sizeof body,
              "{\"name\":\"team-ml.prod_1\",\"models\":[\"gpt-*\",\"agent/*\"],\"rpm\":60,"
              "\"tpm\":100000,\"max_parallel\":4,\"budget_usd\":12.5,\"budget_period\":\"month\","
              "\"expires_at\":\"2027-01-01T00:00:00Z\",\"metadata\":{\"team\":\"ml\",\"n\":[1,2]}}");
    s_answer_t a = s_call (f->keys, "POST", S_KEYS, body, S_NOW);
    assert_int_equal (a.status, 201);
    const cJSON *o = a.json;
    s_expect_key_fields (o);
    const char *secret = s_str (o, "key");
    assert_non_null (secret);
    assert_int_equal (strncmp (secret, "sk-aigw-", 8), 0);
    assert_int_equal (strlen (secret), 8 + 43);
    assert_int_equal (strspn (secret + 8, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "abcdefghijklmnopqrstuvwxyz"), 43);
    assert_string_equal (s_str (o, "name"), "team-ml.prod_1");
    const cJSON *models = s_get (o, "models");
    assert_int_equal (cJSON_GetArraySize (models), 2);
    assert_string_equal (cJSON_GetArrayItem (models, 0)->valuestring, "gpt-*");
    assert_string_equal (cJSON_GetArrayItem (models, 1)->valuestring, "agent/*");
    assert_true (s_num (o, "rpm") == 60);
    assert_true (s_num (o, "tpm") == 100000);
    assert_true (s_num (o, "max_parallel") == 4);
    assert_true (s_num (o, "budget_usd") == 12.5);
    assert_string_equal (s_str (o, "budget_period"), "month");
    assert_true (s_num (o, "expires_at") == (double) S_2027);
    const cJSON *meta = s_get (o, "metadata");
    assert_string_equal (s_str (meta, "team"), "ml");
    assert_int_equal (cJSON_GetArraySize (s_get (meta, "n")), 2);
    assert_true (s_num (o, "created_at") == (double) (S_NOW / 1000));
    assert_true (cJSON_IsFalse (s_get (o, "revoked")));
    assert_true (cJSON_IsFalse (s_get (o, "expired")));
    assert_true (s_num (o, "budget_remaining_usd") == 12.5);
    assert_true (s_num (o, "spend_usd") == 0);
    assert_true (s_num (o, "period_start") == (double) S_2026);
    assert_true (s_num (o, "total_requests") == 0);
    assert_true (s_num (o, "in_flight") == 0);
    //  The hint: a prefix and the last four, never the whole secret
    const char *hint = s_str (o, "hint");
    assert_non_null (hint);
    assert_null (strstr (hint, secret));
    assert_true (strlen (hint) < strlen (secret));
    assert_int_equal (strncmp (hint, "sk-aigw-", 8), 0);
    assert_non_null (strstr (hint, secret + strlen (secret) - 4));
    s_answer_free (&a);

    //  Defaults: all models, no limits, no budget (remaining null), never expires
    a = s_call (f->keys, "POST", S_KEYS, "{\"name\":\"plain\"}", S_NOW);
    assert_int_equal (a.status, 201);
    s_expect_key_fields (a.json);
    assert_true (s_num (a.json, "rpm") == 0);
    assert_true (s_num (a.json, "budget_usd") == 0);
    assert_true (cJSON_IsNull (s_get (a.json, "budget_remaining_usd")));
    assert_string_equal (s_str (a.json, "budget_period"), "day");
    assert_true (cJSON_IsNull (s_get (a.json, "expires_at")));
    assert_int_equal (cJSON_GetArraySize (s_get (a.json, "models")), 1);
    assert_string_equal (cJSON_GetArrayItem (s_get (a.json, "models"), 0)->valuestring, "*");
    assert_int_equal (cJSON_GetArraySize (s_get (a.json, "metadata")), 0);
    char first[KEYS_SECRET_MAX];
    snprintf (first, sizeof first, "%s", s_str (a.json, "key"));
    s_answer_free (&a);

    //  expires_at as Unix seconds; two keys never share a secret
    a = s_call (f->keys, "POST", S_KEYS, "{\"name\":\"num\",\"expires_at\":1798761600}", S_NOW);
    assert_int_equal (a.status, 201);
    assert_true (s_num (a.json, "expires_at") == (double) S_2027);
    assert_string_not_equal (s_str (a.json, "key"), first);
    s_answer_free (&a);

    //  409 on a taken name, also once revoked
    s_post_error (f->keys, "{\"name\":\"plain\"}", 409, "name");
    a = s_call (f->keys, "DELETE", S_KEYS "/plain", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    s_answer_free (&a);
    s_post_error (f->keys, "{\"name\":\"plain\",\"rpm\":5}", 409, "name");
    assert_int_equal (keys_count (f->keys), 3);
}

static void test_admin_create_invalid (void **state)
{
    s_fix_t *f = *state;
    keys_t *k = f->keys;
    //  Not JSON, not an object, empty
    s_post_error (k, "{", 400, NULL);
    s_post_error (k, "{\"name\":\"x\",}", 400, NULL);
    s_post_error (k, "[1,2]", 400, NULL);
    s_post_error (k, "\"name\"", 400, NULL);
    s_post_error (k, "", 400, NULL);
    s_answer_t a = s_call (k, "POST", S_KEYS, NULL, S_NOW);
    s_expect_error (&a, 400, NULL);
    s_answer_free (&a);
    //  Fields: each named in param
    s_post_error (k, "{}", 400, "name");
    s_post_error (k, "{\"rpm\":5}", 400, "name");
    s_post_error (k, "{\"name\":\"x\",\"colour\":\"red\"}", 400, "colour");
    s_post_error (k, "{\"name\":\"\"}", 400, "name");
    s_post_error (k, "{\"name\":\"bad name\"}", 400, "name");
    s_post_error (k, "{\"name\":\"bad/name\"}", 400, "name");
    s_post_error (k, "{\"name\":\"bad\\\"quote\"}", 400, "name");
    s_post_error (k, "{\"name\":\"caf\xc3\xa9\"}", 400, "name");
    s_post_error (k, "{\"name\":42}", 400, "name");
    s_post_error (k, "{\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                  400, "name");
    s_post_error (k, "{\"name\":\"x\",\"rpm\":-1}", 400, "rpm");
    s_post_error (k, "{\"name\":\"x\",\"rpm\":1.5}", 400, "rpm");
    s_post_error (k, "{\"name\":\"x\",\"rpm\":\"10\"}", 400, "rpm");
    s_post_error (k, "{\"name\":\"x\",\"rpm\":1e12}", 400, "rpm");
    s_post_error (k, "{\"name\":\"x\",\"tpm\":-5}", 400, "tpm");
    s_post_error (k, "{\"name\":\"x\",\"max_parallel\":null}", 400, "max_parallel");
    s_post_error (k, "{\"name\":\"x\",\"budget_usd\":-0.01}", 400, "budget_usd");
    s_post_error (k, "{\"name\":\"x\",\"budget_usd\":\"5\"}", 400, "budget_usd");
    s_post_error (k, "{\"name\":\"x\",\"budget_period\":\"week\"}", 400, "budget_period");
    s_post_error (k, "{\"name\":\"x\",\"budget_period\":1}", 400, "budget_period");
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":\"tomorrow\"}", 400, "expires_at");
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":\"2027-01-01\"}", 400, "expires_at");
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":-1}", 400, "expires_at");
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":true}", 400, "expires_at");
    s_post_error (k, "{\"name\":\"x\",\"metadata\":\"x\"}", 400, "metadata");
    s_post_error (k, "{\"name\":\"x\",\"metadata\":[1]}", 400, "metadata");
    s_post_error (k, "{\"name\":\"x\",\"metadata\":null}", 400, "metadata");
    s_post_error (k, "{\"name\":\"x\",\"models\":[]}", 400, "models");
    s_post_error (k, "{\"name\":\"x\",\"models\":\"gpt-4o\"}", 400, "models");
    s_post_error (k, "{\"name\":\"x\",\"models\":[1]}", 400, "models");
    s_post_error (k, "{\"name\":\"x\",\"models\":[\"\"]}", 400, "models");
    s_post_error (k, "{\"name\":\"x\",\"models\":[\"a,b\"]}", 400, "models");
    //  Metadata over 4 KiB
    size_t big = KEYS_META_MAX + 64;
    char *body = malloc (big + 64);
    assert_non_null (body);
    int n = snprintf (body, big + 64, "{\"name\":\"x\",\"metadata\":{\"pad\":\"");
    memset (body + n, 'p', big);
    snprintf (body + n + big, 64, "\"}}");
    s_post_error (k, body, 400, "metadata");
    free (body);
    //  Nothing was created by any of these
    assert_int_equal (keys_count (k), 0);
    a = s_call (k, "GET", S_KEYS "/x", NULL, S_NOW);
    s_expect_error (&a, 404, NULL);
    s_answer_free (&a);
}

//  Bodies that a lenient parser would take: trailing bytes after the object, a NUL
//  inside the given length, calendar dates that do not exist.
static void test_admin_strict_input (void **state)
{
    s_fix_t *f = *state;
    keys_t *k = f->keys;
    s_post_error (k, "{\"name\":\"x\"}garbage", 400, NULL);
    s_post_error (k, "{\"name\":\"x\"}{\"name\":\"y\"}", 400, NULL);
    const char nul[] = "{\"name\":\"x\"}\0zzz";
    s_answer_t a = { 0, NULL, 0, NULL };
    a.status = admin_handle (k, "POST", S_KEYS, nul, sizeof nul - 1, S_NOW, &a.body, &a.len);
    assert_non_null (a.body);
    a.json = cJSON_ParseWithLength (a.body, a.len);
    s_expect_error (&a, 400, NULL);
    s_answer_free (&a);
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":\"2027-02-30T00:00:00Z\"}", 400,
                  "expires_at");
    s_post_error (k, "{\"name\":\"x\",\"expires_at\":\"2027-01-01T24:00:00Z\"}", 400,
                  "expires_at");
    assert_int_equal (keys_count (k), 0);
    //  Trailing white space is fine
    a = s_call (k, "POST", S_KEYS, "{\"name\":\"ok\"} \n", S_NOW);
    assert_int_equal (a.status, 201);
    s_answer_free (&a);
}

//  --------------------------------------------------------------- read

static void test_admin_list_and_show (void **state)
{
    s_fix_t *f = *state;
    char s1[KEYS_SECRET_MAX], s2[KEYS_SECRET_MAX];

    s_answer_t a = s_call (f->keys, "GET", S_KEYS, NULL, S_NOW);
    assert_int_equal (a.status, 200);
    assert_string_equal (s_str (a.json, "object"), "list");
    assert_int_equal (cJSON_GetArraySize (s_get (a.json, "data")), 0);
    s_answer_free (&a);

    s_make (f->keys, "{\"name\":\"one\",\"budget_usd\":2,\"rpm\":10,\"tpm\":500}", s1, sizeof s1);
    s_make (f->keys, "{\"name\":\"two\",\"metadata\":{\"owner\":\"bob\"}}", s2, sizeof s2);

    //  Usage shows up in the views
    const char *names[] = { "gpt-4o" };
    keys_admit_t adm;
    assert_int_equal (keys_admit (f->keys, s1, strlen (s1), names, 1, S_NOW, &adm), KEYS_OK);
    assert_int_equal (keys_charge (f->keys, "one", 300, 0.5, S_NOW + 10), 0);

    a = s_call (f->keys, "GET", S_KEYS, NULL, S_NOW + 20);
    assert_int_equal (a.status, 200);
    assert_string_equal (s_str (a.json, "object"), "list");
    const cJSON *data = s_get (a.json, "data");
    assert_int_equal (cJSON_GetArraySize (data), 2);
    assert_null (strstr (a.body, s1));
    assert_null (strstr (a.body, s2));
    assert_null (strstr (a.body, s1 + 8));
    const cJSON *item;
    cJSON_ArrayForEach (item, data) {
        s_expect_key_fields (item);
        assert_null (s_get (item, "key"));
    }
    const cJSON *one = cJSON_GetArrayItem (data, 0);
    assert_string_equal (s_str (one, "name"), "one");
    assert_true (s_num (one, "requests_last_minute") == 1);
    assert_true (s_num (one, "tokens_last_minute") == 300);
    assert_true (s_num (one, "in_flight") == 1);
    assert_true (s_num (one, "spend_usd") == 0.5);
    assert_true (s_num (one, "budget_remaining_usd") == 1.5);
    assert_true (s_num (one, "total_requests") == 1);
    assert_true (s_num (one, "total_tokens") == 300);
    assert_true (s_num (one, "total_spend_usd") == 0.5);
    const cJSON *two = cJSON_GetArrayItem (data, 1);
    assert_string_equal (s_str (two, "name"), "two");
    assert_true (cJSON_IsNull (s_get (two, "budget_remaining_usd")));
    assert_string_equal (s_str (s_get (two, "metadata"), "owner"), "bob");
    s_answer_free (&a);
    keys_release (f->keys, adm.ticket);

    //  One key
    a = s_call (f->keys, "GET", S_KEYS "/two", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    s_expect_key_fields (a.json);
    assert_string_equal (s_str (a.json, "name"), "two");
    assert_null (s_get (a.json, "key"));
    assert_null (strstr (a.body, s2));
    s_answer_free (&a);

    //  Spent budget: remaining is 0, not negative
    assert_int_equal (keys_charge (f->keys, "one", 0, 5.0, S_NOW + 30), 0);
    a = s_call (f->keys, "GET", S_KEYS "/one", NULL, S_NOW + 40);
    assert_int_equal (a.status, 200);
    assert_true (s_num (a.json, "budget_remaining_usd") == 0);
    s_answer_free (&a);

    //  Unknown and invalid names: 404
    a = s_call (f->keys, "GET", S_KEYS "/three", NULL, S_NOW);
    s_expect_error (&a, 404, NULL);
    s_answer_free (&a);
    a = s_call (f->keys, "GET", S_KEYS "/bad%20name", NULL, S_NOW);
    s_expect_error (&a, 404, NULL);
    s_answer_free (&a);
    a = s_call (f->keys, "GET", S_KEYS "/one/extra", NULL, S_NOW);
    s_expect_error (&a, 404, NULL);
    s_answer_free (&a);
    a = s_call (f->keys, "GET", "/v1/aigw/keysx", NULL, S_NOW);
    assert_int_equal (a.status, 404);
    s_answer_free (&a);
    //  A trailing slash is the collection
    a = s_call (f->keys, "GET", S_KEYS "/", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    assert_string_equal (s_str (a.json, "object"), "list");
    s_answer_free (&a);
}

//  --------------------------------------------------------------- change

static void test_admin_patch (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_make (f->keys, "{\"name\":\"p\",\"models\":[\"gpt-*\"],\"rpm\":5,\"budget_usd\":3,"
            "\"metadata\":{\"a\":1}}", secret, sizeof secret);

    s_answer_t a = s_call (f->keys, "PATCH", S_KEYS "/p",
                           "{\"models\":[\"claude-*\",\"llama3\"],\"rpm\":7,\"tpm\":900,"
                           "\"max_parallel\":3,\"budget_usd\":4.25,\"budget_period\":\"month\","
                           "\"expires_at\":\"2027-01-01T00:00:00Z\",\"metadata\":{\"b\":2}}",
                           S_NOW);
    assert_int_equal (a.status, 200);
    s_expect_key_fields (a.json);
    assert_null (s_get (a.json, "key"));
    assert_null (strstr (a.body, secret));
    assert_string_equal (s_str (a.json, "name"), "p");
    const cJSON *models = s_get (a.json, "models");
    assert_int_equal (cJSON_GetArraySize (models), 2);
    assert_string_equal (cJSON_GetArrayItem (models, 0)->valuestring, "claude-*");
    assert_true (s_num (a.json, "rpm") == 7);
    assert_true (s_num (a.json, "tpm") == 900);
    assert_true (s_num (a.json, "max_parallel") == 3);
    assert_true (s_num (a.json, "budget_usd") == 4.25);
    assert_string_equal (s_str (a.json, "budget_period"), "month");
    assert_true (s_num (a.json, "expires_at") == (double) S_2027);
    const cJSON *meta = s_get (a.json, "metadata");
    assert_null (s_get (meta, "a"));
    assert_true (s_num (meta, "b") == 2);
    s_answer_free (&a);

    //  A partial PATCH leaves the other fields alone; GET sees the change
    a = s_call (f->keys, "PATCH", S_KEYS "/p", "{\"rpm\":0,\"expires_at\":null}", S_NOW);
    assert_int_equal (a.status, 200);
    s_answer_free (&a);
    a = s_call (f->keys, "GET", S_KEYS "/p", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    assert_true (s_num (a.json, "rpm") == 0);
    assert_true (s_num (a.json, "tpm") == 900);
    assert_true (cJSON_IsNull (s_get (a.json, "expires_at")));
    assert_true (s_num (a.json, "budget_usd") == 4.25);
    assert_null (strstr (a.body, secret));
    s_answer_free (&a);
    //  The secret still works after PATCH
    const char *names[] = { "llama3" };
    keys_admit_t adm;
    assert_int_equal (keys_admit (f->keys, secret, strlen (secret), names, 1, S_NOW, &adm),
                      KEYS_OK);
    keys_release (f->keys, adm.ticket);

    //  Errors; a rejected PATCH changes nothing
    s_patch_error (f->keys, "p", "{\"rpm\":9,\"colour\":1}", 400, "colour");
    s_patch_error (f->keys, "p", "{\"tpm\":1,\"rpm\":-3}", 400, "rpm");
    s_patch_error (f->keys, "p", "{\"name\":\"q\"}", 400, "name");
    s_patch_error (f->keys, "p", "{\"budget_period\":\"year\"}", 400, "budget_period");
    s_patch_error (f->keys, "p", "{\"metadata\":42}", 400, "metadata");
    s_patch_error (f->keys, "p", "{\"models\":[]}", 400, "models");
    s_patch_error (f->keys, "p", "not json", 400, NULL);
    s_patch_error (f->keys, "p", "[]", 400, NULL);
    s_patch_error (f->keys, "p", "", 400, NULL);
    s_patch_error (f->keys, "nobody", "{\"rpm\":1}", 404, NULL);
    a = s_call (f->keys, "GET", S_KEYS "/p", NULL, S_NOW);
    assert_true (s_num (a.json, "rpm") == 0);
    assert_true (s_num (a.json, "tpm") == 900);
    assert_string_equal (s_str (a.json, "budget_period"), "month");
    s_answer_free (&a);
    //  An empty object is a no-op
    a = s_call (f->keys, "PATCH", S_KEYS "/p", "{}", S_NOW);
    assert_int_equal (a.status, 200);
    assert_true (s_num (a.json, "tpm") == 900);
    s_answer_free (&a);
}

static void test_admin_delete (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_make (f->keys, "{\"name\":\"d\"}", secret, sizeof secret);
    s_answer_t a = s_call (f->keys, "DELETE", S_KEYS "/d", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    assert_string_equal (s_str (a.json, "name"), "d");
    assert_true (cJSON_IsTrue (s_get (a.json, "revoked")));
    assert_null (strstr (a.body, secret));
    s_answer_free (&a);
    a = s_call (f->keys, "GET", S_KEYS "/d", NULL, S_NOW + 1000);
    assert_int_equal (a.status, 200);
    assert_true (cJSON_IsTrue (s_get (a.json, "revoked")));
    s_answer_free (&a);
    assert_int_equal (keys_check (f->keys, secret, strlen (secret), S_NOW + 1000),
                      KEYS_UNAUTHORIZED);
    //  Still listed, for the record
    a = s_call (f->keys, "GET", S_KEYS, NULL, S_NOW);
    assert_int_equal (cJSON_GetArraySize (s_get (a.json, "data")), 1);
    s_answer_free (&a);
    a = s_call (f->keys, "DELETE", S_KEYS "/nobody", NULL, S_NOW);
    s_expect_error (&a, 404, NULL);
    s_answer_free (&a);
}

static void test_admin_methods (void **state)
{
    s_fix_t *f = *state;
    s_make (f->keys, "{\"name\":\"m\"}", NULL, 0);
    struct { const char *method, *path; } cases[] = {
        { "PUT", S_KEYS }, { "DELETE", S_KEYS }, { "PATCH", S_KEYS }, { "OPTIONS", S_KEYS },
        { "POST", S_KEYS "/m" }, { "PUT", S_KEYS "/m" }, { "BREW", S_KEYS "/m" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_answer_t a = s_call (f->keys, cases[i].method, cases[i].path, "{}", S_NOW);
        s_expect_error (&a, 405, NULL);
        s_answer_free (&a);
    }
    //  The key is untouched
    s_answer_t a = s_call (f->keys, "GET", S_KEYS "/m", NULL, S_NOW);
    assert_int_equal (a.status, 200);
    assert_true (cJSON_IsFalse (s_get (a.json, "revoked")));
    s_answer_free (&a);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_admin_create, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_create_invalid, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_strict_input, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_list_and_show, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_patch, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_delete, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_admin_methods, keys_fixture_setup, keys_fixture_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
