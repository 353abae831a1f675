/*
 * The JSON gate, log lines, and who is asking.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "verconfd.h"

static bool is_json_path(const char *path)
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

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (fs.foreground) {
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "verconfd: %s\n", line);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}

static void comm_of(pid_t pid, char *comm, size_t len)
{
	char file[64];
	snprintf(file, sizeof(file), "/proc/%d/comm", (int)pid);
	comm[0] = '\0';
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, comm, len - 1);
	close(fd);
	if (n <= 0) {
		comm[0] = '\0';
		return;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
}

void actor_of(fuse_req_t req, vc_actor *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	memset(a, 0, sizeof(*a));
	a->uid = ctx->uid;
	a->gid = ctx->gid;
	a->pid = ctx->pid;
	comm_of(ctx->pid, a->comm, sizeof(a->comm));
}

void actor_self(vc_actor *a)
{
	memset(a, 0, sizeof(*a));
	a->uid = getuid();
	a->gid = getgid();
	a->pid = getpid();
	snprintf(a->comm, sizeof(a->comm), "verconfd");
}
