/*
 * verconf: finding a store's mount, and the commands that steer it through
 * MOUNT/.control: `activate`, `rollback` and `restore`.
 *
 * The tool never writes the store itself while a daemon serves it: each
 * change is one line written to .control, so that the daemon stays the one
 * writer and drops its caches.  write() succeeds with the full length or
 * fails with the daemon's errno: ENOENT (unknown id or path), EINVAL
 * (rejected version, bad command), EXDEV (id of another path).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verconf.h"

#define FUSE_TYPE "fuse.verconfd"

static char *control_file(const char *mount)
{
	char *file;
	if (asprintf(&file, "%s/.control", mount) < 0)
		abort();
	return file;
}

int read_control_status(const char *mount, char **text)
{
	char *file = control_file(mount);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	free(file);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			abort();
		ssize_t got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = -errno;
			free(buf);
			close(fd);
			return err;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (cap - n < 2)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	buf[n] = '\0';
	*text = buf;
	return 0;
}

char *status_value(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *line = text;
	while (line && *line) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			v += strspn(v, " \t");
			return strndup(v, strcspn(v, "\n"));
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

/* Mount points in mountinfo escape space, tab, newline and backslash as
 * \ooo. */
static void unescape_octal(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The mount point of a mountinfo line if its type is FUSE_TYPE, else NULL.
 * Fields: id parent dev root MOUNTPOINT options [optional...] - TYPE src. */
static char *verconfd_mount_point(char *line)
{
	char *sep = strstr(line, " - ");
	if (!sep || strncmp(sep + 3, FUSE_TYPE " ", strlen(FUSE_TYPE) + 1) != 0)
		return NULL;
	char *save, *field = strtok_r(line, " ", &save);
	for (int i = 0; field && i < 4; i++)
		field = strtok_r(NULL, " ", &save);
	if (field)
		unescape_octal(field);
	return field;
}

/* Does the mount at dir serve the store whose real path is want? */
static bool mount_serves(const char *dir, const char *want)
{
	char *status, *store, *real = NULL;
	if (read_control_status(dir, &status) < 0)
		return false;
	store = status_value(status, "store");
	if (store)
		real = realpath(store, NULL);
	bool same = real && strcmp(real, want) == 0;
	free(status);
	free(store);
	free(real);
	return same;
}

static char *scan_mountinfo(const char *want)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;
	while (f && !found && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *dir = verconfd_mount_point(line);
		if (dir && mount_serves(dir, want))
			found = strdup(dir);
	}
	free(line);
	if (f)
		fclose(f);
	return found;
}

int find_mount(struct ctx *c, bool quiet)
{
	if (c->mount_dir)
		return EXIT_OK;
	if (c->mount_arg) {
		c->mount_dir = realpath(c->mount_arg, NULL);
		if (c->mount_dir)
			return EXIT_OK;
		return quiet ? EXIT_STORE : fail(EXIT_STORE, "%s: %s", c->mount_arg, strerror(errno));
	}
	char *want = c->store_file ? realpath(c->store_file, NULL) : NULL;
	c->mount_dir = want ? scan_mountinfo(want) : NULL;
	free(want);
	if (c->mount_dir)
		return EXIT_OK;
	return quiet ? EXIT_STORE
		     : fail(EXIT_STORE, "no verconfd mount of %s found (give -C MOUNTDIR)",
			    c->store_file);
}

/* Write one command line to .control: 0 or -errno from the daemon. */
static int control_command(struct ctx *c, const char *line)
{
	char *file = control_file(c->mount_dir);
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	free(file);
	if (fd < 0)
		return -errno;
	size_t len = strlen(line);
	ssize_t n = write(fd, line, len);
	int err = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	if (close(fd) < 0 && err == 0)
		err = -errno;
	return err;
}

/* What an errno every command shares means. */
static int control_error(struct ctx *c, const char *what, int err)
{
	switch (-err) {
	case EACCES:
	case EPERM:
		return fail(EXIT_STORE, "%s: permission denied on %s/.control (it belongs to "
					"the user who mounted it)", what, c->mount_dir);
	case ENOTCONN:
		return fail(EXIT_STORE, "%s: %s is not connected (has verconfd died?)", what,
			    c->mount_dir);
	default:
		return fail(EXIT_STORE, "%s: %s/.control: %s", what, c->mount_dir, strerror(-err));
	}
}

/* The store and its mount: every steering command needs both. */
static int open_store_and_mount(struct ctx *c)
{
	int rc = open_store(c);
	return rc == EXIT_OK ? find_mount(c, false) : rc;
}

/* ---- activate -------------------------------------------------------- */

static int explain_activate_error(struct ctx *c, vc_id id, int err)
{
	char what[48];
	vc_version v;
	snprintf(what, sizeof what, "activate %" PRId64, id);
	bool known = vc_get_version(c->store, id, &v) == 0;
	switch (-err) {
	case ENOENT:
		return fail(EXIT_NOTFOUND, "%s: no version %" PRId64, what, id);
	case EINVAL:
		if (known && v.status == VC_REJECTED)
			return fail(EXIT_NOTFOUND, "%s: version %" PRId64 " of %s was rejected (%s): "
						   "it cannot be made live", what, id,
				    display_path(v.path), v.reason);
		return fail(EXIT_STORE, "%s: the daemon refused the command", what);
	case EXDEV:
		return fail(EXIT_NOTFOUND, "%s: version %" PRId64 " is of another path%s%s", what, id,
			    known ? ", " : "", known ? display_path(v.path) : "");
	default:
		return control_error(c, what, err);
	}
}

/* Make id live and say what the path shows now. */
static int activate(struct ctx *c, vc_id id)
{
	char line[48];
	vc_version v;
	snprintf(line, sizeof line, "activate %" PRId64 "\n", id);
	int err = control_command(c, line);
	if (err < 0)
		return explain_activate_error(c, id, err);
	if (vc_get_version(c->store, id, &v) == 0)
		printf("%s: version %" PRId64 " is live\n", display_path(v.path), id);
	return EXIT_OK;
}

static const struct option control_longopts[] = {
	COMMON_OPTIONS, { "to", required_argument, NULL, OPT_TO },
	{ "at", required_argument, NULL, OPT_AT }, OPTIONS_END
};

struct target_opts {
	const char *to, *at;
};

static int target_option(void *state, int opt, const char *arg)
{
	struct target_opts *t = state;
	if (opt == OPT_TO)
		t->to = arg;
	else if (opt == OPT_AT)
		t->at = arg;
	else
		return -1;
	return EXIT_OK;
}

int cmd_activate(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_OPTIONS, OPTIONS_END };
	const struct command *cmd = find_command("activate");
	vc_id id;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, longopts, NULL, NULL, &first);
	if (rc != EXIT_OK)
		return rc;
	if (argc - first != 1 || !parse_id(argv[first], &id))
		return usage_error(cmd, "give one version ID");
	if ((rc = open_store_and_mount(c)) != EXIT_OK)
		return rc;
	return activate(c, id);
}

/* ---- rollback -------------------------------------------------------- */

/* --to ID: ID must be a version of path (checked here, for a clear
 * message; the daemon would say EXDEV). */
static int version_of_path(struct ctx *c, const char *path, const char *arg, vc_id *id)
{
	vc_version v;
	if (!parse_id(arg, id))
		return fail(EXIT_USAGE, "--to needs a version id, not '%s'", arg);
	int rc = vc_get_version(c->store, *id, &v);
	if (rc == -ENOENT)
		return fail(EXIT_NOTFOUND, "no version %" PRId64, *id);
	if (rc < 0)
		return store_fail(c, rc, "reading version %" PRId64, *id);
	if (strcmp(v.path, path) != 0)
		return fail(EXIT_NOTFOUND, "version %" PRId64 " is of %s, not %s", *id,
			    display_path(v.path), display_path(path));
	return EXIT_OK;
}

/* --at SEQ|TIME: the version path showed then. */
static int version_then(struct ctx *c, const char *path, const char *at, vc_id *id)
{
	vc_id seq;
	int rc = parse_at(c, at, &seq);
	if (rc == EXIT_OK)
		rc = version_at_seq(c, path, seq, id);
	if (rc == EXIT_OK && !*id)
		rc = fail(EXIT_NOTFOUND, "%s did not exist at %s", display_path(path), at);
	return rc;
}

/* Plain rollback: the daemon moves path back past its last head move. */
static int rollback_last_move(struct ctx *c, const char *path)
{
	char *line;
	vc_entry e;
	if (strchr(path, '\n'))
		return fail(EXIT_USAGE, "a path with a newline cannot go through .control: "
					"use rollback --to ID");
	if (asprintf(&line, "rollback %s\n", path) < 0)
		abort();
	int err = control_command(c, line);
	free(line);
	if (err == -ENOENT)
		return fail(EXIT_NOTFOUND, "rollback: %s has no history", display_path(path));
	if (err == -EINVAL)
		return fail(EXIT_STORE, "rollback: the daemon refused the command");
	if (err < 0)
		return control_error(c, "rollback", err);
	if (vc_lookup(c->store, path, &e) == 0)
		printf("%s: version %" PRId64 " is live\n", display_path(path), e.head.id);
	else
		printf("%s: deleted\n", display_path(path));
	return EXIT_OK;
}

int cmd_rollback(struct ctx *c, int argc, char **argv)
{
	const struct command *cmd = find_command("rollback");
	struct target_opts t = { 0 };
	char path[VC_PATH_MAX + 1];
	vc_id id;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, control_longopts,
				      target_option, &t, &first);
	if (rc != EXIT_OK)
		return rc;
	if (argc - first != 1)
		return usage_error(cmd, "give one PATH");
	if (t.to && t.at)
		return usage_error(cmd, "--to and --at exclude each other");
	if ((rc = open_store_and_mount(c)) != EXIT_OK ||
	    (rc = store_path_arg(c, argv[first], path)) != EXIT_OK)
		return rc;
	if (!t.to && !t.at)
		return rollback_last_move(c, path);
	rc = t.to ? version_of_path(c, path, t.to, &id) : version_then(c, path, t.at, &id);
	return rc == EXIT_OK ? activate(c, id) : rc;
}

/* ---- restore --------------------------------------------------------- */

int cmd_restore(struct ctx *c, int argc, char **argv)
{
	const struct command *cmd = find_command("restore");
	struct target_opts t = { 0 };
	char line[48];
	vc_id seq;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, control_longopts,
				      target_option, &t, &first);
	if (rc != EXIT_OK)
		return rc;
	if (first < argc || !t.at || t.to)
		return usage_error(cmd, "give --at SEQ|TIME and nothing else");
	/* A time is resolved here, through the store, to the sequence
	 * number: the daemon then restores exactly what `tree --at` shows. */
	if ((rc = open_store_and_mount(c)) != EXIT_OK || (rc = parse_at(c, t.at, &seq)) != EXIT_OK)
		return rc;
	snprintf(line, sizeof line, "restore @%" PRId64 "\n", seq);
	int err = control_command(c, line);
	if (err == -ENOENT)
		return fail(EXIT_NOTFOUND, "restore: no sequence number %" PRId64, seq);
	if (err == -EINVAL)
		return fail(EXIT_STORE, "restore: the daemon refused the command");
	if (err < 0)
		return control_error(c, "restore", err);
	printf("restored the tree to sequence %" PRId64 "\n", seq);
	return EXIT_OK;
}
