// What a provider may do with its attempt: each call goes to the loop running the
// attempt (a->loop->ops), so providers never call into the loop's own module.
#include "wk_attempt.h"

#include <stdarg.h>
#include <stdio.h>

int wk_attempt_reply_result (wk_attempt_t *self, const char *json, size_t len,
                             const Aigw__Usage *usage)
{
    return self->loop->ops->reply_result (self, json, len, usage);
}

int wk_attempt_reply_chunk (wk_attempt_t *self, const char *json, size_t len)
{
    return self->loop->ops->reply_chunk (self, json, len);
}

int wk_attempt_reply_error (wk_attempt_t *self, Aigw__ErrorCode code, uint32_t upstream_status,
                            const char *fmt, ...)
{
    char reason [WK_ATTEMPT_REASON_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (reason, sizeof reason, fmt, ap);
    va_end (ap);
    return self->loop->ops->reply_error (self, code, upstream_status, reason);
}

int wk_attempt_timer_arm (wk_attempt_t *self, int64_t due_ms)
{
    return self->loop->ops->timer_arm (self, due_ms);
}

void wk_attempt_timer_disarm (wk_attempt_t *self)
{
    self->loop->ops->timer_disarm (self);
}
