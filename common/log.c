// Leveled logging to stderr; one write(2) per line so lines from threads never interleave.
#include "log.h"
#include "aclock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char s_tag[32] = "aigw";
static volatile log_level_t s_level = LOG_LVL_INFO;

void log_init (const char *tag, log_level_t level)
{
    snprintf (s_tag, sizeof s_tag, "%s", tag ? tag : "aigw");
    s_level = level;
}

void log_set_level (log_level_t level)
{
    s_level = level;
}

bool log_enabled (log_level_t level)
{
    return level <= s_level;
}

void log_write (log_level_t level, const char *fmt, ...)
{
    static const char *names[] = { "E", "W", "I", "D" };
    if (!log_enabled (level))
        return;
    char line[2048];
    int64_t now = aclock_now_us ();
    int n = snprintf (line, sizeof line, "%s %lld.%06lld %s: ", names[level],
                      (long long) (now / 1000000), (long long) (now % 1000000), s_tag);
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (line + n, sizeof line - (size_t) n - 1, fmt, ap);
    va_end (ap);
    size_t len = (size_t) n + (m < 0 ? 0 : (size_t) m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}
