/*
 * log.c - graftd's log (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/graftd/graftd.h"

static const char *const names[] = { "debug", "info", "warn", "error" };
static int min_level = GD_LOG_INFO;
static FILE *out;
static char path_buf[4096];

int gd_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i]))
			return i;
	return GRAFT_EINVAL;
}

void gd_log_set_level(int level)
{
	min_level = level;
}

int gd_log_open(const char *path)
{
	if (!path) {
		path_buf[0] = '\0';
		return 0;
	}
	snprintf(path_buf, sizeof(path_buf), "%s", path);
	return gd_log_reopen();
}

int gd_log_reopen(void)
{
	if (!path_buf[0])
		return 0;
	FILE *f = fopen(path_buf, "a");
	if (!f)
		return GRAFT_EIO;
	setvbuf(f, NULL, _IOLBF, 0);
	if (out)
		fclose(out);
	out = f;
	return 0;
}

void gd_log_msg(int level, const char *fmt, ...)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	FILE *f = out ? out : stderr;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000, names[level]);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}
