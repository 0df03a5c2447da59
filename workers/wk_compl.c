// Assembles OpenAI chat.completion replies piece by piece (capped) and renders them,
// and renders single chat.completion.chunk deltas for synthesized streams.
#include "wk_compl.h"
#include "wk_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wk_compl_init (wk_compl_t *self, size_t max)
{
    memset (self, 0, sizeof *self);
    self->max = max;
    for (int i = 0; i < WK_COMPL_CHOICES; i++) {
        buf_init (&self->choice [i].content, max);
        buf_init (&self->choice [i].refusal, max);
    }
}

static void s_tools_free (wk_compl_choice_t *c)
{
    if (!c->tools)
        return;
    for (uint32_t t = 0; t < WK_COMPL_TOOLS; t++) {
        buf_free (&c->tools [t].id);
        buf_free (&c->tools [t].name);
        buf_free (&c->tools [t].args);
    }
    free (c->tools);
    c->tools = NULL;
}

void wk_compl_free (wk_compl_t *self)
{
    for (int i = 0; i < WK_COMPL_CHOICES; i++) {
        buf_free (&self->choice [i].content);
        buf_free (&self->choice [i].refusal);
        s_tools_free (&self->choice [i]);
    }
    self->nchoices = 0;
    self->held = 0;
}

static void s_set (char *dst, size_t dstlen, const char *src)
{
    if (src && !dst [0])
        snprintf (dst, dstlen, "%s", src);
}

void wk_compl_meta (wk_compl_t *self, const char *id, const char *model, const char *fingerprint)
{
    s_set (self->id, sizeof self->id, id);
    s_set (self->model, sizeof self->model, model);
    s_set (self->fingerprint, sizeof self->fingerprint, fingerprint);
}

static wk_compl_choice_t *s_choice (wk_compl_t *self, uint32_t index)
{
    if (index >= WK_COMPL_CHOICES)
        return NULL;
    if (index >= self->nchoices)
        self->nchoices = index + 1;
    return &self->choice [index];
}

//  Append under the shared cap.
static int s_put (wk_compl_t *self, buf_t *buf, const char *s, size_t len)
{
    if (len > self->max - self->held || buf_append (buf, s, len))
        return -1;
    self->held += len;
    return 0;
}

int wk_compl_text (wk_compl_t *self, uint32_t index, const char *s, size_t len)
{
    wk_compl_choice_t *c = s_choice (self, index);
    return c ? s_put (self, &c->content, s, len) : -1;
}

int wk_compl_refusal (wk_compl_t *self, uint32_t index, const char *s, size_t len)
{
    wk_compl_choice_t *c = s_choice (self, index);
    return c ? s_put (self, &c->refusal, s, len) : -1;
}

static int s_tools_alloc (wk_compl_t *self, wk_compl_choice_t *c)
{
    if (c->tools)
        return 0;
    c->tools = calloc (WK_COMPL_TOOLS, sizeof *c->tools);
    if (!c->tools)
        return -1;
    for (uint32_t t = 0; t < WK_COMPL_TOOLS; t++) {
        buf_init (&c->tools [t].id, WK_COMPL_META_MAX);
        buf_init (&c->tools [t].name, WK_COMPL_META_MAX);
        buf_init (&c->tools [t].args, self->max);
    }
    return 0;
}

int wk_compl_tool (wk_compl_t *self, uint32_t index, uint32_t tool, const char *id,
                   const char *name, const char *args, size_t args_len)
{
    wk_compl_choice_t *c = s_choice (self, index);
    if (!c || tool >= WK_COMPL_TOOLS || s_tools_alloc (self, c))
        return -1;
    if (tool >= c->ntools)
        c->ntools = tool + 1;
    wk_compl_tool_t *t = &c->tools [tool];
    if (id && *id && !t->id.len && s_put (self, &t->id, id, strlen (id)))
        return -1;
    if (name && *name && !t->name.len && s_put (self, &t->name, name, strlen (name)))
        return -1;
    return args ? s_put (self, &t->args, args, args_len) : 0;
}

int wk_compl_finish (wk_compl_t *self, uint32_t index, const char *reason)
{
    wk_compl_choice_t *c = s_choice (self, index);
    if (!c)
        return -1;
    snprintf (c->finish, sizeof c->finish, "%s", reason);
    return 0;
}

bool wk_compl_finished (const wk_compl_t *self)
{
    if (self->nchoices == 0)
        return false;
    for (uint32_t i = 0; i < self->nchoices; i++)
        if (!self->choice [i].finish [0])
            return false;
    return true;
}

//  ---- rendering

static int s_str (buf_t *out, const buf_t *b)
{
    return buf_put_json_string (out, b->data ? b->data : "", b->len);
}

static int s_tool_calls (buf_t *out, const wk_compl_choice_t *c)
{
    int rc = buf_puts (out, ",\"tool_calls\":[");
    for (uint32_t t = 0; t < c->ntools && rc == 0; t++) {
        const wk_compl_tool_t *tc = &c->tools [t];
        if (t)
            rc = buf_puts (out, ",");
        if (rc == 0)
            rc = buf_puts (out, "{\"id\":");
        if (rc == 0)
            rc = s_str (out, &tc->id);
        if (rc == 0)
            rc = buf_puts (out, ",\"type\":\"function\",\"function\":{\"name\":");
        if (rc == 0)
            rc = s_str (out, &tc->name);
        if (rc == 0)
            rc = buf_puts (out, ",\"arguments\":");
        if (rc == 0)
            rc = s_str (out, &tc->args);
        if (rc == 0)
            rc = buf_puts (out, "}}");
    }
    return rc ? rc : buf_puts (out, "]");
}

static int s_render_choice (const wk_compl_choice_t *c, uint32_t index, buf_t *out)
{
    char head [64];
    snprintf (head, sizeof head, "{\"index\":%" PRIu32 ",\"message\":{\"role\":\"assistant\","
              "\"content\":", index);
    int rc = buf_puts (out, head);
    if (rc == 0)
        rc = c->ntools && !c->content.len ? buf_puts (out, "null") : s_str (out, &c->content);
    if (rc == 0 && c->refusal.len) {
        rc = buf_puts (out, ",\"refusal\":");
        if (rc == 0)
            rc = s_str (out, &c->refusal);
    }
    if (rc == 0 && c->ntools)
        rc = s_tool_calls (out, c);
    if (rc == 0)
        rc = buf_puts (out, "},\"logprobs\":null,\"finish_reason\":");
    if (rc == 0)
        rc = c->finish [0] ? buf_put_json_str (out, c->finish) : buf_puts (out, "null");
    return rc ? rc : buf_puts (out, "}");
}

static int s_render_usage (const wk_usage_t *u, buf_t *out)
{
    if (!u->has)
        return 0;
    char text [160];
    snprintf (text, sizeof text, ",\"usage\":{\"prompt_tokens\":%" PRIu32 ",\"completion_tokens\":%"
              PRIu32 ",\"total_tokens\":%" PRIu64 "}", u->prompt_tokens, u->completion_tokens,
              (uint64_t) u->prompt_tokens + u->completion_tokens);
    return buf_puts (out, text);
}

int wk_compl_render (const wk_compl_t *self, buf_t *out)
{
    char created [48];
    snprintf (created, sizeof created, ",\"created\":%" PRId64 ",\"model\":", self->created);
    int rc = buf_puts (out, "{\"id\":");
    if (rc == 0)
        rc = buf_put_json_str (out, self->id);
    if (rc == 0)
        rc = buf_puts (out, ",\"object\":\"chat.completion\"");
    if (rc == 0)
        rc = buf_puts (out, created);
    if (rc == 0)
        rc = buf_put_json_str (out, self->model);
    if (rc == 0 && self->fingerprint [0]) {
        rc = buf_puts (out, ",\"system_fingerprint\":");
        if (rc == 0)
            rc = buf_put_json_str (out, self->fingerprint);
    }
    if (rc == 0)
        rc = buf_puts (out, ",\"choices\":[");
    uint32_t n = self->nchoices ? self->nchoices : 1;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = buf_puts (out, ",");
        if (rc == 0)
            rc = s_render_choice (&self->choice [i], i, out);
    }
    if (rc == 0)
        rc = buf_puts (out, "]");
    if (rc == 0)
        rc = s_render_usage (&self->usage, out);
    return rc ? rc : buf_puts (out, "}");
}

static int s_delta_tool (buf_t *out, const wk_delta_t *d)
{
    char head [64];
    snprintf (head, sizeof head, ",\"tool_calls\":[{\"index\":%" PRIu32, d->tool_index);
    int rc = buf_puts (out, head);
    if (rc == 0 && d->tool_id) {
        rc = buf_puts (out, ",\"id\":");
        if (rc == 0)
            rc = buf_put_json_str (out, d->tool_id);
        if (rc == 0)
            rc = buf_puts (out, ",\"type\":\"function\"");
    }
    if (rc == 0)
        rc = buf_puts (out, ",\"function\":{");
    if (rc == 0 && d->tool_name) {
        rc = buf_puts (out, "\"name\":");
        if (rc == 0)
            rc = buf_put_json_str (out, d->tool_name);
        if (rc == 0)
            rc = buf_puts (out, ",");
    }
    if (rc == 0)
        rc = buf_puts (out, "\"arguments\":");
    if (rc == 0)
        rc = buf_put_json_string (out, d->tool_args ? d->tool_args : "",
                                  d->tool_args ? d->tool_args_len : 0);
    return rc ? rc : buf_puts (out, "}}]");
}

//  The delta object's members, after its opening brace.
static int s_delta_body (buf_t *out, const wk_delta_t *d)
{
    bool first = true;
    int rc = 0;
    if (d->role) {
        rc = buf_puts (out, "\"role\":\"assistant\"");
        first = false;
    }
    if (rc == 0 && d->content) {
        rc = buf_puts (out, first ? "\"content\":" : ",\"content\":");
        if (rc == 0)
            rc = buf_put_json_string (out, d->content, d->content_len);
        first = false;
    }
    if (rc == 0 && d->tool) {
        if (first)
            rc = buf_puts (out, "\"content\":null");
        if (rc == 0)
            rc = s_delta_tool (out, d);
    }
    return rc;
}

int wk_compl_chunk_render (buf_t *out, const char *id, const char *model, int64_t created,
                           const wk_delta_t *d)
{
    char mid [96];
    snprintf (mid, sizeof mid, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64
              ",\"model\":", created);
    char choice [64];
    snprintf (choice, sizeof choice, ",\"choices\":[{\"index\":%" PRIu32 ",\"delta\":{", d->index);
    int rc = buf_puts (out, "{\"id\":");
    if (rc == 0)
        rc = buf_put_json_str (out, id ? id : "");
    if (rc == 0)
        rc = buf_puts (out, mid);
    if (rc == 0)
        rc = buf_put_json_str (out, model ? model : "");
    if (rc == 0)
        rc = buf_puts (out, choice);
    if (rc == 0)
        rc = s_delta_body (out, d);
    if (rc == 0)
        rc = buf_puts (out, "},\"logprobs\":null,\"finish_reason\":");
    if (rc == 0)
        rc = d->finish ? buf_put_json_str (out, d->finish) : buf_puts (out, "null");
    return rc ? rc : buf_puts (out, "}]}");
}
