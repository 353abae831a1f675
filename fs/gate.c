/*
 * The JSON gate, log lines, and who is asking.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "verconfd.h"

bool is_json_path(const char *path)
{
	size_t n = strlen(path);
	return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

/* Line and column (both from 1) of byte offset off in buf. */
static void line_col(const char *buf, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/*
 * What is accepted is what cJSON parses as one complete JSON text: a UTF-8
 * BOM, trailing garbage after the value, a NUL byte and an empty file are
 * all refused (an application's parser may choke on each).  Duplicate keys
 * and numbers beyond double range are accepted, as cJSON does; nesting
 * deeper than CJSON_NESTING_LIMIT (1000) is refused.
 */
static int json_check(const char *buf, size_t len, char *reason, size_t rlen)
{
	const char *end = NULL;
	if (len == 0) {
		snprintf(reason, rlen, "invalid JSON: empty file");
		return -1;
	}
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) {
		snprintf(reason, rlen, "invalid JSON at line 1, column 1: byte order mark");
		return -1;
	}
	if (memchr(buf, '\0', len)) {
		size_t off = (const char *)memchr(buf, '\0', len) - buf;
		int line, col;
		line_col(buf, off, &line, &col);
		snprintf(reason, rlen, "invalid JSON at line %d, column %d: NUL byte", line, col);
		return -1;
	}
	cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	size_t off = end ? (size_t)(end - buf) : 0;
	if (doc) {
		/* cJSON stops after the first value; anything but white space
		 * after it is garbage. */
		while (off < len && strchr(" \t\r\n", buf[off]))
			off++;
		cJSON_Delete(doc);
		if (off == len)
			return 0;
	}
	if (off > len)
		off = len;
	int line, col;
	line_col(buf, off, &line, &col);
	snprintf(reason, rlen, "invalid JSON at line %d, column %d%s", line, col,
		 doc ? ": trailing data after the value" : "");
	return -1;
}

int gate_check(const char *path, const char *buf, size_t len, char *reason, size_t rlen)
{
	if (fs.validate == VALIDATE_OFF || !is_json_path(path))
		return 0;
	return json_check(buf, len, reason, rlen);
}

/* Paths and process names may hold newlines and escapes: a log line must
 * stay one line that no file name can forge.  Control bytes and
 * backslashes are written as C escapes. */
static char *escape_line(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n * 4 + 1), *p = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\\')
			p += sprintf(p, "\\\\");
		else if (ch == '\n')
			p += sprintf(p, "\\n");
		else if (ch < 0x20 || ch == 0x7f)
			p += sprintf(p, "\\x%02x", ch);
		else
			*p++ = (char)ch;
	}
	*p = '\0';
	return out;
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *safe;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	safe = line ? escape_line(line) : NULL;
	if (fs.foreground)
		fprintf(stderr, "verconfd: %s\n", safe ? safe : fmt);
	else
		syslog(prio, "%s", safe ? safe : fmt);
	free(safe);
	free(line);
}

void note_rejection(const char *path, vc_id id, const char *reason, const vc_actor *a)
{
	snprintf(fs.last_rejection, sizeof(fs.last_rejection), "%s version %lld: %s", path,
		 (long long)id, reason);
	log_msg(LOG_WARNING, "rejected %s version %lld: %s (uid %u pid %d %s)", path,
		(long long)id, reason, a->uid, a->pid, a->comm);
}

int store_result(int rc, const char *what, const char *path)
{
	if (rc != -ENOSPC && rc != -EIO && rc != -EROFS && rc != -ENOMEM && rc != -EBUSY)
		return rc;
	snprintf(fs.last_error, sizeof(fs.last_error), "%s %.200s: %s", what, path,
		 vc_errmsg(fs.store));
	log_msg(LOG_ERR, "%s of %s failed: %s", what, path, vc_errmsg(fs.store));
	return rc;
}

/* /proc/PID/WHAT into buf, NUL-terminated; false if it cannot be read
 * (the process is gone). */
static bool read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
	char file[64];
	snprintf(file, sizeof(file), "/proc/%d/%s", (int)pid, what);
	buf[0] = '\0';
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static void comm_of(pid_t pid, char *comm, size_t len)
{
	if (read_proc(pid, "comm", comm, len))
		comm[strcspn(comm, "\n")] = '\0';
}

/* The process a thread belongs to (its Tgid) and, for a thread that is
 * its process's main one, the name (the status file's first line, unless
 * it holds an escape: the comm file has the raw bytes); 0 if /proc cannot
 * say (it exited). */
static pid_t process_of(pid_t tid, char *name, size_t len)
{
	char buf[1024];
	if (!read_proc(tid, "status", buf, sizeof(buf)))
		return 0;
	const char *t = strstr(buf, "\nTgid:");
	long tgid = t ? strtol(t + 6, NULL, 10) : 0;
	bool named = tgid == tid && !strncmp(buf, "Name:\t", 6);
	size_t l = named ? strcspn(buf + 6, "\n") : 0;
	if (named && !memchr(buf + 6, '\\', l)) {
		l = l < len - 1 ? l : len - 1;
		memcpy(name, buf + 6, l);
		name[l] = '\0';
	}
	return tgid > 0 ? (pid_t)tgid : 0;
}

/*
 * The signal that is killing thread tid, or 0.  A process killed in the
 * middle of writing a file closes it on its way out, as one that exits
 * does: /proc/TID/stat tells them apart while it closes (flags has
 * PF_EXITING, exit_code the signal; fields 9 and 52, counted after the
 * command name, which may hold spaces and parentheses).
 */
#define PF_EXITING_FLAG 0x4
int killing_signal(pid_t tid)
{
	char buf[2048];
	if (!read_proc(tid, "stat", buf, sizeof(buf)))
		return 0;
	char *p = strrchr(buf, ')');
	unsigned long long flags = 0, exit_code = 0;
	/* Field 3 (state) follows ") ". */
	for (int field = 3; p && field <= 52; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
		if (field == 9)
			flags = strtoull(p, NULL, 10);
		else if (field == 52)
			exit_code = strtoull(p, NULL, 10);
	}
	return (flags & PF_EXITING_FLAG) ? (int)(exit_code & 0x7f) : 0;
}

/* The kernel names the calling thread; history names its process, as ps
 * does, and the process's name. */
void actor_of(fuse_req_t req, vc_actor *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	memset(a, 0, sizeof(*a));
	a->uid = ctx->uid;
	a->gid = ctx->gid;
	pid_t process = ctx->pid ? process_of(ctx->pid, a->comm, sizeof(a->comm)) : 0;
	a->pid = process ? process : ctx->pid;
	if (!a->comm[0])
		comm_of(a->pid, a->comm, sizeof(a->comm));
}

void actor_self(vc_actor *a)
{
	memset(a, 0, sizeof(*a));
	a->uid = getuid();
	a->gid = getgid();
	a->pid = getpid();
	snprintf(a->comm, sizeof(a->comm), "verconfd");
}
