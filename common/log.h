// Leveled logging to stderr with a component tag and a monotonic timestamp.
#ifndef AIGW_LOG_H
#define AIGW_LOG_H

#include <stdbool.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

//  Set the tag printed on every line (e.g. "broker") and the most verbose level shown.
void log_init (const char *tag, log_level_t level);
void log_set_level (log_level_t level);
bool log_enabled (log_level_t level);
void log_write (log_level_t level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define log_error(...) log_write (LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write (LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_write (LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled (LOG_LVL_DEBUG)) log_write (LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
