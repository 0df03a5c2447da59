// OpenAI chat.completion assembly (content, tool calls, finish reasons and usage per
// choice, gathered from streamed or translated replies) and chat.completion.chunk rendering.
#ifndef AIGW_WK_COMPL_H
#define AIGW_WK_COMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define WK_COMPL_CHOICES 16     // choice indexes 0..15
#define WK_COMPL_TOOLS 128      // tool call indexes 0..127 per choice
#define WK_COMPL_META_MAX 128   // id, model, system_fingerprint

typedef struct {
    bool has;
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
} wk_usage_t;

typedef struct {
    buf_t id;
    buf_t name;
    buf_t args;              // function arguments, concatenated as they come
} wk_compl_tool_t;

typedef struct {
    buf_t content;
    buf_t refusal;
    wk_compl_tool_t *tools;     // WK_COMPL_TOOLS slots, allocated at the first call
    uint32_t ntools;            // highest tool index + 1
    char finish [32];           // finish_reason, "" while none
} wk_compl_choice_t;

//  One reply being assembled. Plain struct: wk_compl_init, then wk_compl_free.
typedef struct {
    char id [WK_COMPL_META_MAX];
    char model [WK_COMPL_META_MAX];
    char fingerprint [WK_COMPL_META_MAX];
    int64_t created;
    wk_compl_choice_t choice [WK_COMPL_CHOICES];
    uint32_t nchoices;          // highest choice index + 1
    wk_usage_t usage;
    size_t max;                 // cap on text held (content + refusal + tool fields)
    size_t held;
} wk_compl_t;

void wk_compl_init (wk_compl_t *self, size_t max);
void wk_compl_free (wk_compl_t *self);

//  Set id, model, system_fingerprint where given and still empty (first wins).
void wk_compl_meta (wk_compl_t *self, const char *id, const char *model, const char *fingerprint);

//  Append to a choice's content (or refusal). 0, or -1 when the index is out
//  of range or the cap would be passed. Touching a choice makes it exist.
int wk_compl_text (wk_compl_t *self, uint32_t index, const char *s, size_t len);
int wk_compl_refusal (wk_compl_t *self, uint32_t index, const char *s, size_t len);

//  Merge a tool call piece: id and name are set if given and still empty,
//  args are appended. 0, or -1 (index out of range, cap).
int wk_compl_tool (wk_compl_t *self, uint32_t index, uint32_t tool, const char *id,
                   const char *name, const char *args, size_t args_len);

//  Set a choice's finish_reason. 0 / -1 (index out of range).
int wk_compl_finish (wk_compl_t *self, uint32_t index, const char *reason);

//  True if at least one choice exists and every one has a finish_reason.
bool wk_compl_finished (const wk_compl_t *self);

//  Render the chat.completion JSON (at least one choice; content null when a
//  choice has only tool calls; usage when known). 0 / -1 (out's cap).
int wk_compl_render (const wk_compl_t *self, buf_t *out);

//  One choice delta of a chat.completion.chunk.
typedef struct {
    uint32_t index;             // choice index
    bool role;                  // add "role":"assistant"
    const char *content;        // NULL = none
    size_t content_len;
    bool tool;                  // one tool call piece
    uint32_t tool_index;
    const char *tool_id;        // NULL = none (then no "type" either)
    const char *tool_name;      // NULL = none
    const char *tool_args;      // NULL = ""
    size_t tool_args_len;
    const char *finish;         // NULL = null
} wk_delta_t;

//  Append a chat.completion.chunk with one choice. 0 / -1 (out's cap).
int wk_compl_chunk_render (buf_t *out, const char *id, const char *model, int64_t created,
                           const wk_delta_t *d);

#endif
