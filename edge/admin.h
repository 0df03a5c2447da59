// The admin API for virtual keys, as a pure function over the key store: no HTTP, no
// authentication (http.c checks the admin key before calling). JSON in and out, errors
// in the OpenAI shape {"error": {"message", "type", "code", "param"}}.
//   POST   /v1/aigw/keys          create; 201 with "key" (the only time it is shown)
//   GET    /v1/aigw/keys          list (no secrets), with usage and remaining budget
//   GET    /v1/aigw/keys/{name}   one key
//   PATCH  /v1/aigw/keys/{name}   change models, limits, budget, expiry, metadata
//   DELETE /v1/aigw/keys/{name}   revoke
#ifndef AIGW_EDGE_ADMIN_H
#define AIGW_EDGE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

//  Handle one admin request. path: the URL path (starts with "/v1/aigw/keys").
//  Returns the HTTP status; *out is a malloc'd JSON body (caller frees; NULL only when
//  out of memory), *out_len its length. now_ms: Unix wall time.
int admin_handle (keys_t *keys, const char *method, const char *path, const char *body,
                  size_t body_len, int64_t now_ms, char **out, size_t *out_len);

#endif
