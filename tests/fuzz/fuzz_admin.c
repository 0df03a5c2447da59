// libFuzzer target: the admin API (edge/admin.c over edge/keys.c) and the secret
// extraction of edge/auth.c, fed arbitrary methods, paths and bodies. Input layout:
// byte 0 picks the method, then the path suffix up to the first NUL, then the body.
// Every answer must be a JSON object; keys the fuzzer creates are admitted once.
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "keys.h"

static keys_t *s_keys;
static char s_dir[64];
static int s_generation;

static void s_reopen (void)
{
    keys_close (&s_keys);
    char path[128], err[256];
    snprintf (path, sizeof path, "%s/keys-%d.db", s_dir, s_generation++);
    s_keys = keys_open (path, err, sizeof err);
    if (!s_keys) {
        fprintf (stderr, "fuzz_admin: %s\n", err);
        abort ();
    }
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/aigw-fuzz-admin.XXXXXX");
    if (!mkdtemp (s_dir))
        abort ();
    s_reopen ();
    return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD" };
    if (size < 1)
        return 0;
    if (keys_count (s_keys) > 2000)
        s_reopen ();                    // keep the store (and its sorting) small
    const char *method = methods[data[0] % 6];
    const uint8_t *nul = memchr (data + 1, 0, size - 1);
    size_t plen = nul ? (size_t) (nul - data - 1) : size - 1;
    if (plen > 512)
        plen = 512;
    char path[600];
    snprintf (path, sizeof path, "/v1/aigw/keys%.*s", (int) plen, (const char *) data + 1);
    const char *body = nul ? (const char *) nul + 1 : "";
    size_t blen = nul ? size - (size_t) (nul + 1 - data) : 0;
    char *out = NULL;
    size_t out_len = 0;
    int status = admin_handle (s_keys, method, path, body, blen, 1795000000000LL, &out, &out_len);
    if (!out || status < 200 || status > 599)
        abort ();
    cJSON *answer = cJSON_ParseWithLength (out, out_len);
    if (!cJSON_IsObject (answer))
        abort ();                       // every answer is a JSON object
    const cJSON *secret = cJSON_GetObjectItemCaseSensitive (answer, "key");
    if (status == 201 && cJSON_IsString (secret)) {
        keys_admit_t a;
        const char *name = "fast-sim";
        if (keys_admit (s_keys, secret->valuestring, strlen (secret->valuestring), &name, 1,
                        1795000000000LL, &a) == KEYS_OK)
            keys_release (s_keys, a.ticket);
    }
    cJSON_Delete (answer);
    free (out);
    //  The same bytes as an Authorization header and as x-api-key
    char header[256];
    snprintf (header, sizeof header, "%.*s", (int) (size < 255 ? size : 255), (const char *) data);
    size_t len = 0;
    const char *s = auth_secret (header, header, &len);
    if (s && (s < header || s + len > header + strlen (header)))
        abort ();
    return 0;
}
