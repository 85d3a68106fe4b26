/*
 * log.h - graftd's log: one line per event, with a timestamp and a level, to
 * stderr or to a file that SIGHUP reopens (for logrotate).
 */
#ifndef GRAFT_LOG_H
#define GRAFT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn", "error"; -1 otherwise. */
int log_level_parse(const char *name);
void log_set_level(int level);
/* Logs to path (appending) instead of stderr; NULL: stderr.  0 or -1. */
int log_open(const char *path);
/* Reopens the file given to log_open (after a rotation). */
int log_reopen(void);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
