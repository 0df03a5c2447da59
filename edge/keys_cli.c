// aigw-keys: manage the edge's virtual keys through its admin REST API (/v1/aigw/keys).
// The admin key comes from an environment variable and is never printed.
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ME "aigw-keys"
#define S_DEFAULT_URL "http://127.0.0.1:8080"
#define S_DEFAULT_KEY_ENV "AIGW_ADMIN_KEY"
#define S_PATH "/v1/aigw/keys"
#define S_URL_MAX 4096
#define S_AUTH_MAX 1024                 // "Authorization: Bearer " + the admin key
#define S_BODY_MAX (16u * 1024 * 1024)  // the answer we accept
#define S_CONNECT_MS 5000L
#define S_TOTAL_MS 30000L

//  Exit codes
#define S_EXIT_OK 0
#define S_EXIT_FAIL 1                   // HTTP error or connection error
#define S_EXIT_USAGE 2

//  The key fields an operator may set (create and update).
typedef struct {
    const char *models;                 // --models a,b
    const char *rpm, *tpm, *max_parallel;
    const char *budget_usd, *budget_period;
    const char *expires_at;
    const char *metadata;               // JSON object text
    int count;                          // how many were given
} s_fields_t;

typedef struct {
    const char *url;                    // --url
    const char *key_env;                // --admin-key-env
    const char *cmd;                    // create, list, show, update, revoke
    const char *name;                   // NAME for all but list
    s_fields_t fields;
} s_args_t;

//  The answer body, bounded by S_BODY_MAX.
typedef struct {
    char *data;
    size_t len, cap;
    bool toobig;
} s_buf_t;

static void s_usage (FILE *out)
{
    fprintf (out,
             "usage: " S_ME " [--url URL] [--admin-key-env VAR] COMMAND [ARGS]\n"
             "  create NAME [OPTIONS]   create a key; prints its secret (shown only once)\n"
             "  list                    list the keys with usage (no secrets)\n"
             "  show NAME               one key\n"
             "  update NAME OPTIONS     change a key's models, limits, budget, expiry, metadata\n"
             "  revoke NAME             revoke a key (its name stays taken)\n"
             "options:\n"
             "  --url URL               the edge (default " S_DEFAULT_URL ")\n"
             "  --admin-key-env VAR     environment variable holding the admin key\n"
             "                          (default " S_DEFAULT_KEY_ENV ")\n"
             "  --models A,B            model patterns the key may use (\"*\" wildcards)\n"
             "  --rpm N                 requests per minute (0 = no limit)\n"
             "  --tpm N                 tokens per minute (0 = no limit)\n"
             "  --max-parallel N        requests in flight (0 = no limit)\n"
             "  --budget-usd X          USD per budget period (0 = no budget)\n"
             "  --budget-period P       day or month (UTC)\n"
             "  --expires-at T          Unix seconds, a UTC time like 2027-01-01T00:00:00Z,\n"
             "                          or never\n"
             "  --metadata JSON         a JSON object stored with the key\n"
             "  -h, --help              this text\n"
             "Exit status: 0 success, 1 HTTP or connection error, 2 usage error.\n");
}

//  --------------------------------------------------------------- arguments

//  Is arg the option opt, as "--opt VALUE" or "--opt=VALUE"? Sets *value (NULL when the
//  value is missing) and advances *i past a separate value.
static bool s_option (int argc, char **argv, int *i, const char *opt, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen (opt);
    if (strncmp (arg, opt, n) != 0)
        return false;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return true;
    }
    if (arg[n] != 0)
        return false;
    *value = *i + 1 < argc ? argv[++*i] : NULL;
    return true;
}

//  Which field slot does a key option fill? NULL if arg is not a key option.
static const char **s_field_slot (s_fields_t *f, const char *opt)
{
    if (strcmp (opt, "--models") == 0)
        return &f->models;
    if (strcmp (opt, "--rpm") == 0)
        return &f->rpm;
    if (strcmp (opt, "--tpm") == 0)
        return &f->tpm;
    if (strcmp (opt, "--max-parallel") == 0)
        return &f->max_parallel;
    if (strcmp (opt, "--budget-usd") == 0)
        return &f->budget_usd;
    if (strcmp (opt, "--budget-period") == 0)
        return &f->budget_period;
    if (strcmp (opt, "--expires-at") == 0)
        return &f->expires_at;
    if (strcmp (opt, "--metadata") == 0)
        return &f->metadata;
    return NULL;
}

static const char *const s_field_opts[] = {
    "--models", "--rpm", "--tpm", "--max-parallel", "--budget-usd", "--budget-period",
    "--expires-at", "--metadata", "--url", "--admin-key-env"
};

//  One option at argv[*i]. 0 taken, 2 bad usage.
static int s_one_option (int argc, char **argv, int *i, s_args_t *a)
{
    for (size_t o = 0; o < sizeof s_field_opts / sizeof s_field_opts[0]; o++) {
        const char *opt = s_field_opts[o];
        const char *value = NULL;
        if (!s_option (argc, argv, i, opt, &value))
            continue;
        if (!value) {
            fprintf (stderr, S_ME ": %s needs a value\n", opt);
            return 2;
        }
        if (strcmp (opt, "--url") == 0)
            a->url = value;
        else
        if (strcmp (opt, "--admin-key-env") == 0)
            a->key_env = value;
        else {
            const char **slot = s_field_slot (&a->fields, opt);
            if (*slot) {
                fprintf (stderr, S_ME ": %s given twice\n", opt);
                return 2;
            }
            *slot = value;
            a->fields.count++;
        }
        return 0;
    }
    fprintf (stderr, S_ME ": unknown option %s (see --help)\n", argv[*i]);
    return 2;
}

//  Check the command, its NAME and which options it takes. 0 or 2.
static int s_check_command (const s_args_t *a, int npos)
{
    const char *c = a->cmd;
    bool named = c && (strcmp (c, "create") == 0 || strcmp (c, "show") == 0
                       || strcmp (c, "update") == 0 || strcmp (c, "revoke") == 0);
    bool list = c && strcmp (c, "list") == 0;
    if (!c) {
        fprintf (stderr, S_ME ": a command is needed (see --help)\n");
        return 2;
    }
    if (!named && !list) {
        fprintf (stderr, S_ME ": unknown command '%s' (see --help)\n", c);
        return 2;
    }
    if (npos != (named ? 2 : 1)) {
        fprintf (stderr, S_ME ": usage: " S_ME " %s%s\n", c, named ? " NAME" : "");
        return 2;
    }
    if (named && !a->name[0]) {
        fprintf (stderr, S_ME ": NAME must not be empty\n");
        return 2;
    }
    bool takes_fields = strcmp (c, "create") == 0 || strcmp (c, "update") == 0;
    if (!takes_fields && a->fields.count) {
        fprintf (stderr, S_ME ": %s takes no key options\n", c);
        return 2;
    }
    if (strcmp (c, "update") == 0 && !a->fields.count) {
        fprintf (stderr, S_ME ": update needs at least one option to change\n");
        return 2;
    }
    return 0;
}

//  Returns 0 to run, 1 for --help, 2 for bad usage.
static int s_args (int argc, char **argv, s_args_t *a)
{
    memset (a, 0, sizeof *a);
    a->url = S_DEFAULT_URL;
    a->key_env = S_DEFAULT_KEY_ENV;
    int npos = 0;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!opts_done && (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0))
            return 1;
        if (!opts_done && strcmp (arg, "--") == 0)
            opts_done = true;
        else
        if (!opts_done && arg[0] == '-' && arg[1]) {
            int rc = s_one_option (argc, argv, &i, a);
            if (rc)
                return rc;
        }
        else {
            if (npos == 0)
                a->cmd = arg;
            else
            if (npos == 1)
                a->name = arg;
            npos++;
        }
    }
    return s_check_command (a, npos);
}

//  --------------------------------------------------------------- request body

//  A whole number from 0 up; 0 or 2 with a message.
static int s_count (const char *opt, const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < 0) {
        fprintf (stderr, S_ME ": %s wants a whole number >= 0, not '%s'\n", opt, text);
        return 2;
    }
    *out = (int64_t) v;
    return 0;
}

static int s_add_count (cJSON *body, const char *key, const char *opt, const char *text)
{
    if (!text)
        return 0;
    int64_t v = 0;
    if (s_count (opt, text, &v))
        return 2;
    return cJSON_AddNumberToObject (body, key, (double) v) ? 0 : 2;
}

static int s_add_budget (cJSON *body, const char *text)
{
    if (!text)
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod (text, &end);
    if (end == text || *end || errno == ERANGE || !isfinite (v) || v < 0) {
        fprintf (stderr, S_ME ": --budget-usd wants a number of USD >= 0, not '%s'\n", text);
        return 2;
    }
    return cJSON_AddNumberToObject (body, "budget_usd", v) ? 0 : 2;
}

static int s_add_period (cJSON *body, const char *text)
{
    if (!text)
        return 0;
    if (strcmp (text, "day") != 0 && strcmp (text, "month") != 0) {
        fprintf (stderr, S_ME ": --budget-period is day or month, not '%s'\n", text);
        return 2;
    }
    return cJSON_AddStringToObject (body, "budget_period", text) ? 0 : 2;
}

//  Unix seconds as a number, "never" as null, anything else as a string the edge
//  checks (an RFC 3339 UTC time).
static int s_add_expiry (cJSON *body, const char *text)
{
    if (!text)
        return 0;
    if (!*text) {
        fprintf (stderr, S_ME ": --expires-at must not be empty\n");
        return 2;
    }
    if (strcmp (text, "never") == 0)
        return cJSON_AddNullToObject (body, "expires_at") ? 0 : 2;
    if (strspn (text, "0123456789") == strlen (text)) {
        int64_t v = 0;
        if (s_count ("--expires-at", text, &v))
            return 2;
        return cJSON_AddNumberToObject (body, "expires_at", (double) v) ? 0 : 2;
    }
    return cJSON_AddStringToObject (body, "expires_at", text) ? 0 : 2;
}

//  "a, b,c" as ["a","b","c"]; empty items are dropped.
static int s_add_models (cJSON *body, const char *text)
{
    if (!text)
        return 0;
    cJSON *arr = cJSON_AddArrayToObject (body, "models");
    if (!arr)
        return 2;
    for (const char *p = text; *p;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t t = len;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t) {
            char *one = strndup (p, t);
            cJSON *item = one ? cJSON_CreateString (one) : NULL;
            free (one);
            if (!item)
                return 2;
            cJSON_AddItemToArray (arr, item);
        }
        p += len;
    }
    if (cJSON_GetArraySize (arr) == 0) {
        fprintf (stderr, S_ME ": --models wants a comma list of model patterns\n");
        return 2;
    }
    return 0;
}

static int s_add_metadata (cJSON *body, const char *text)
{
    if (!text)
        return 0;
    cJSON *meta = cJSON_Parse (text);
    if (!cJSON_IsObject (meta)) {
        cJSON_Delete (meta);
        fprintf (stderr, S_ME ": --metadata wants a JSON object, like '{\"team\":\"ml\"}'\n");
        return 2;
    }
    cJSON_AddItemToObject (body, "metadata", meta);
    return 0;
}

//  The JSON body for create (with name) or update. Caller frees; NULL on bad usage
//  (message printed).
static char *s_body (const s_args_t *a, bool with_name)
{
    const s_fields_t *f = &a->fields;
    cJSON *body = cJSON_CreateObject ();
    if (!body)
        return NULL;
    int rc = 0;
    if (with_name && !cJSON_AddStringToObject (body, "name", a->name))
        rc = 2;
    if (!rc)
        rc = s_add_models (body, f->models);
    if (!rc)
        rc = s_add_count (body, "rpm", "--rpm", f->rpm);
    if (!rc)
        rc = s_add_count (body, "tpm", "--tpm", f->tpm);
    if (!rc)
        rc = s_add_count (body, "max_parallel", "--max-parallel", f->max_parallel);
    if (!rc)
        rc = s_add_budget (body, f->budget_usd);
    if (!rc)
        rc = s_add_period (body, f->budget_period);
    if (!rc)
        rc = s_add_expiry (body, f->expires_at);
    if (!rc)
        rc = s_add_metadata (body, f->metadata);
    char *text = rc ? NULL : cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    return text;
}

//  --------------------------------------------------------------- HTTP

static size_t s_on_body (char *data, size_t size, size_t nmemb, void *arg)
{
    s_buf_t *buf = arg;
    size_t n = size * nmemb;
    if (n > S_BODY_MAX - buf->len) {
        buf->toobig = true;
        return 0;                       // curl aborts the transfer
    }
    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 4096;
        while (cap < buf->len + n + 1)
            cap *= 2;
        char *d = realloc (buf->data, cap);
        if (!d)
            return 0;
        buf->data = d;
        buf->cap = cap;
    }
    memcpy (buf->data + buf->len, data, n);
    buf->len += n;
    buf->data[buf->len] = 0;
    return n;
}

//  base + /v1/aigw/keys [+ /escaped-name] into url. 0 or 2.
static int s_url (CURL *curl, const char *base, const char *name, char *url, size_t size)
{
    if (strncmp (base, "http://", 7) != 0 && strncmp (base, "https://", 8) != 0) {
        fprintf (stderr, S_ME ": --url must start with http:// or https://\n");
        return 2;
    }
    size_t blen = strlen (base);
    while (blen && base[blen - 1] == '/')
        blen--;
    char *escaped = name ? curl_easy_escape (curl, name, 0) : NULL;
    if (name && !escaped) {
        fprintf (stderr, S_ME ": out of memory\n");
        return 2;
    }
    int n = snprintf (url, size, "%.*s%s%s%s", (int) blen, base, S_PATH, escaped ? "/" : "",
                      escaped ? escaped : "");
    curl_free (escaped);
    if (n < 0 || (size_t) n >= size) {
        fprintf (stderr, S_ME ": the URL is too long\n");
        return 2;
    }
    return 0;
}

//  Print the answer: pretty JSON if it parses, else as it came. On an HTTP error the
//  edge's error message also goes to stderr.
static void s_print_answer (long status, const s_buf_t *buf)
{
    cJSON *root = buf->len ? cJSON_ParseWithLength (buf->data, buf->len) : NULL;
    char *pretty = root ? cJSON_Print (root) : NULL;
    if (pretty)
        printf ("%s\n", pretty);
    else
    if (buf->len)
        printf ("%s%s", buf->data, buf->data[buf->len - 1] == '\n' ? "" : "\n");
    free (pretty);
    if (status < 200 || status > 299) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive (root, "error");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive (err, "message");
        if (cJSON_IsString (msg))
            fprintf (stderr, S_ME ": HTTP %ld: %s\n", status, msg->valuestring);
        else
            fprintf (stderr, S_ME ": HTTP %ld\n", status);
    }
    cJSON_Delete (root);
}

//  Send one request and print its answer. Returns the exit code.
static int s_request (const s_args_t *a, const char *admin_key, const char *method,
                      const char *name, const char *body)
{
    int rc = S_EXIT_FAIL;
    char url[S_URL_MAX];
    char auth[S_AUTH_MAX];
    char errbuf[CURL_ERROR_SIZE] = "";
    s_buf_t buf = { NULL, 0, 0, false };
    struct curl_slist *headers = NULL;
    CURL *curl = curl_easy_init ();
    if (!curl) {
        fprintf (stderr, S_ME ": cannot start libcurl\n");
        goto done;
    }
    rc = s_url (curl, a->url, name, url, sizeof url);
    if (rc)
        goto done;
    rc = S_EXIT_FAIL;
    int n = snprintf (auth, sizeof auth, "Authorization: Bearer %s", admin_key);
    if (n < 0 || (size_t) n >= sizeof auth) {
        fprintf (stderr, S_ME ": the admin key is too long\n");
        rc = S_EXIT_USAGE;
        goto done;
    }
    headers = curl_slist_append (NULL, auth);
    if (!headers || !curl_slist_append (headers, "Content-Type: application/json")
        || !curl_slist_append (headers, "Accept: application/json")) {
        fprintf (stderr, S_ME ": out of memory\n");
        goto done;
    }
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, S_CONNECT_MS);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, S_TOTAL_MS);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, S_ME);
    if (strcmp (method, "GET") != 0)
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
    }
    CURLcode res = curl_easy_perform (curl);
    if (res != CURLE_OK) {
        fprintf (stderr, S_ME ": %s: %s\n", a->url,
                 buf.toobig ? "the answer is too large"
                            : errbuf[0] ? errbuf : curl_easy_strerror (res));
        goto done;
    }
    long status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    s_print_answer (status, &buf);
    rc = status >= 200 && status <= 299 ? S_EXIT_OK : S_EXIT_FAIL;
done:
    memset (auth, 0, sizeof auth);
    curl_slist_free_all (headers);
    curl_easy_cleanup (curl);
    free (buf.data);
    return rc;
}

//  --------------------------------------------------------------- main

//  The admin key from the environment; NULL (message printed) when missing or unusable.
static const char *s_admin_key (const char *var)
{
    const char *key = var[0] ? getenv (var) : NULL;
    if (!key || !key[0]) {
        fprintf (stderr, S_ME ": set %s to the edge's admin key (or name another variable "
                 "with --admin-key-env)\n", var[0] ? var : S_DEFAULT_KEY_ENV);
        return NULL;
    }
    if (strpbrk (key, "\r\n")) {
        fprintf (stderr, S_ME ": the admin key in %s holds a line break\n", var);
        return NULL;
    }
    return key;
}

static int s_run (const s_args_t *a, const char *admin_key)
{
    const char *c = a->cmd;
    if (strcmp (c, "list") == 0)
        return s_request (a, admin_key, "GET", NULL, NULL);
    if (strcmp (c, "show") == 0)
        return s_request (a, admin_key, "GET", a->name, NULL);
    if (strcmp (c, "revoke") == 0)
        return s_request (a, admin_key, "DELETE", a->name, NULL);
    bool create = strcmp (c, "create") == 0;
    char *body = s_body (a, create);
    if (!body)
        return S_EXIT_USAGE;
    int rc = create ? s_request (a, admin_key, "POST", NULL, body)
                    : s_request (a, admin_key, "PATCH", a->name, body);
    free (body);
    return rc;
}

int main (int argc, char **argv)
{
    s_args_t a;
    int rc = s_args (argc, argv, &a);
    if (rc == 1) {
        s_usage (stdout);
        return S_EXIT_OK;
    }
    if (rc)
        return S_EXIT_USAGE;
    const char *admin_key = s_admin_key (a.key_env);
    if (!admin_key)
        return S_EXIT_USAGE;
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf (stderr, S_ME ": cannot start libcurl\n");
        return S_EXIT_FAIL;
    }
    rc = s_run (&a, admin_key);
    curl_global_cleanup ();
    return rc;
}
