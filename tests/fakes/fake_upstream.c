// Starts, scripts and reads the Python fake upstream from C tests (libcurl on its
// control API). The interpreter and the script's path come from CMake.
#define _GNU_SOURCE
#include "fake_upstream.h"
#include "aclock.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AIGW_PYTHON
#error "AIGW_PYTHON (the Python 3 interpreter) must be defined by the build"
#endif
#ifndef AIGW_FAKE_UPSTREAM_PY
#error "AIGW_FAKE_UPSTREAM_PY (the path of fake_upstream.py) must be defined by the build"
#endif

#define S_START_MS 20000                // how long to wait for the READY line
#define S_REPLY_MAX (16 << 20)          // a control reply larger than this is an error
#define S_WAIT_SLACK_MS 5000            // HTTP timeout beyond a wait's own timeout

extern char **environ;

struct _fake_upstream_t {
    pid_t pid;
    int stdin_fd;                       // the child exits when this closes (we died)
    int port;
    CURL *curl;                         // one keep-alive control connection
    char *reply;                        // the last control reply
    size_t reply_len;
    bool reply_toobig;
};

static size_t s_on_data (char *data, size_t size, size_t n, void *arg)
{
    fake_upstream_t *self = arg;
    size_t len = size * n;
    if (self->reply_len + len > S_REPLY_MAX) {
        self->reply_toobig = true;
        return 0;
    }
    char *grown = realloc (self->reply, self->reply_len + len + 1);
    if (!grown)
        return 0;
    self->reply = grown;
    memcpy (self->reply + self->reply_len, data, len);
    self->reply_len += len;
    self->reply[self->reply_len] = 0;
    return len;
}

//  One control request; returns the reply parsed (caller owns it), NULL on failure.
static cJSON *s_control (fake_upstream_t *self, const char *method, const char *path,
                         const char *body, long timeout_ms)
{
    char url[256];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", self->port, path);
    self->reply_len = 0;
    self->reply_toobig = false;
    curl_easy_setopt (self->curl, CURLOPT_URL, url);
    curl_easy_setopt (self->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (self->curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt (self->curl, CURLOPT_POSTFIELDSIZE, (long) (body ? strlen (body) : 0));
    curl_easy_setopt (self->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    long status = 0;
    CURLcode rc = curl_easy_perform (self->curl);
    curl_easy_getinfo (self->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200 || !self->reply) {
        fprintf (stderr, "fake_upstream: %s %s: %s, HTTP %ld%s\n", method, path,
                 curl_easy_strerror (rc), status, self->reply_toobig ? " (reply too large)" : "");
        return NULL;
    }
    return cJSON_ParseWithLength (self->reply, self->reply_len);
}

//  The READY <port> line on fd within S_START_MS. The port, or -1.
static int s_read_port (int fd)
{
    char line[64];
    size_t len = 0;
    int64_t until = aclock_now_ms () + S_START_MS;
    while (len + 1 < sizeof line) {
        int64_t left = until - aclock_now_ms ();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
            return -1;
        ssize_t n = read (fd, line + len, 1);
        if (n <= 0)
            return -1;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = 0;
    char *end;
    if (strncmp (line, "READY ", 6))
        return -1;
    long port = strtol (line + 6, &end, 10);
    return *end == 0 && port > 0 && port < 65536 ? (int) port : -1;
}

//  Spawn the fake with its stdin and stdout on pipes. 0 / -1.
static int s_spawn (fake_upstream_t *self, int *out_fd)
{
    int in[2], out[2];
    if (pipe2 (in, O_CLOEXEC))
        return -1;
    if (pipe2 (out, O_CLOEXEC)) {
        close (in[0]);
        close (in[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
    posix_spawn_file_actions_adddup2 (&fa, out[1], 1);
    char *argv[] = { AIGW_PYTHON, AIGW_FAKE_UPSTREAM_PY, "--host", "127.0.0.1", "--port", "0",
                     "--exit-on-stdin-eof", NULL };
    int rc = posix_spawn (&self->pid, AIGW_PYTHON, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&fa);
    close (in[0]);
    close (out[1]);
    if (rc) {
        fprintf (stderr, "fake_upstream: cannot run %s: %s\n", AIGW_PYTHON, strerror (rc));
        close (in[1]);
        close (out[0]);
        return -1;
    }
    self->stdin_fd = in[1];
    *out_fd = out[0];
    return 0;
}

fake_upstream_t *fake_upstream_new (const char *script)
{
    fake_upstream_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->pid = -1;
    self->stdin_fd = -1;
    int out_fd = -1;
    if (s_spawn (self, &out_fd))
        goto fail;
    self->port = s_read_port (out_fd);
    close (out_fd);
    if (self->port < 0) {
        fprintf (stderr, "fake_upstream: %s did not report its port\n", AIGW_FAKE_UPSTREAM_PY);
        goto fail;
    }
    self->curl = curl_easy_init ();
    if (!self->curl)
        goto fail;
    curl_easy_setopt (self->curl, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt (self->curl, CURLOPT_WRITEDATA, self);
    curl_easy_setopt (self->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (self->curl, CURLOPT_NOPROXY, "*");
    if (script && fake_upstream_script (self, script))
        goto fail;
    return self;
fail:
    fake_upstream_destroy (&self);
    return NULL;
}

void fake_upstream_destroy (fake_upstream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fake_upstream_t *self = *self_p;
    *self_p = NULL;
    if (self->curl)
        curl_easy_cleanup (self->curl);
    if (self->pid > 0) {
        kill (self->pid, SIGTERM);
        while (waitpid (self->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (self->stdin_fd >= 0)
        close (self->stdin_fd);
    free (self->reply);
    free (self);
}

int fake_upstream_port (fake_upstream_t *self)
{
    return self->port;
}

int fake_upstream_script (fake_upstream_t *self, const char *json)
{
    cJSON *reply = s_control (self, "PUT", "/_control/script", json, S_WAIT_SLACK_MS);
    bool ok = cJSON_IsTrue (cJSON_GetObjectItem (reply, "ok"));
    cJSON_Delete (reply);
    return ok ? 0 : -1;
}

long fake_upstream_wait (fake_upstream_t *self, const char *counter, long want, int timeout_ms)
{
    char body[256];
    snprintf (body, sizeof body, "{\"at_least\":{\"%s\":%ld},\"timeout_ms\":%d}", counter, want,
              timeout_ms);
    cJSON *reply = s_control (self, "POST", "/_control/wait", body,
                              (long) timeout_ms + S_WAIT_SLACK_MS);
    cJSON *value = cJSON_GetObjectItem (cJSON_GetObjectItem (reply, "stats"), counter);
    long got = cJSON_IsNumber (value) ? (long) value->valuedouble : -1;
    cJSON_Delete (reply);
    return got;
}

long fake_upstream_count (fake_upstream_t *self, const char *counter)
{
    return fake_upstream_wait (self, counter, 0, 0);
}

cJSON *fake_upstream_requests (fake_upstream_t *self)
{
    cJSON *log = s_control (self, "GET", "/_control/log", NULL, S_WAIT_SLACK_MS);
    cJSON *reqs = cJSON_DetachItemFromObject (log, "requests");
    cJSON_Delete (log);
    if (reqs && !cJSON_IsArray (reqs)) {
        cJSON_Delete (reqs);
        return NULL;
    }
    return reqs;
}

int fake_upstream_last (fake_upstream_t *self, char *head, size_t head_len, char *body,
                        size_t body_len)
{
    cJSON *reqs = fake_upstream_requests (self);
    int n = cJSON_GetArraySize (reqs);
    cJSON *last = n > 0 ? cJSON_GetArrayItem (reqs, n - 1) : NULL;
    const char *h = cJSON_GetStringValue (cJSON_GetObjectItem (last, "head"));
    const char *b = cJSON_GetStringValue (cJSON_GetObjectItem (last, "body_text"));
    snprintf (head, head_len, "%s", h ? h : "");
    snprintf (body, body_len, "%s", b ? b : "");
    cJSON_Delete (reqs);
    return h && b ? 0 : -1;
}
