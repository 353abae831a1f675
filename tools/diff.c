/*
 * verconf: `diff`, of lines (through diff(1)) or of JSON keys.
 *
 * Line diffs run diffutils' diff(1) -u on two temporary files rather than
 * carrying a diff algorithm here: diffutils is Essential on Debian, so it
 * is always there, and its output is the format everyone's tools read.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "verconf.h"

struct diff_opts {
	const struct command *cmd;
	bool keys;
	const char *context; /* -U N, passed on to diff(1) */
};

static int diff_option(void *state, int opt, const char *arg)
{
	struct diff_opts *o = state;
	int n;
	switch (opt) {
	case OPT_KEYS:
		o->keys = true;
		return EXIT_OK;
	case 'U':
		if (!parse_count(arg, &n))
			return usage_error(o->cmd, "-U needs a number of lines, not '%s'", arg);
		o->context = arg;
		return EXIT_OK;
	default:
		return -1;
	}
}

/* A version and its content. */
struct side {
	vc_version v;
	char *buf;
	size_t len;
};

static int load_side(struct ctx *c, struct side *s)
{
	void *buf = NULL;
	int rc = vc_read_content(c->store, s->v.id, &buf, &s->len);
	if (rc == -EISDIR)
		return fail(EXIT_USAGE, "version %" PRId64 " (%s) is a directory: nothing to diff",
			    s->v.id, display_path(s->v.path));
	if (rc < 0)
		return store_fail(c, rc, "reading version %" PRId64, s->v.id);
	s->buf = buf;
	return EXIT_OK;
}

/* B defaults to the live version of A's path. */
static int resolve_sides(struct ctx *c, int nargs, char **args, struct side *a, struct side *b)
{
	int rc = resolve_version(c, args[0], &a->v);
	if (rc != EXIT_OK)
		return rc;
	if (nargs == 2)
		return resolve_version(c, args[1], &b->v);
	vc_entry e;
	rc = vc_lookup(c->store, a->v.path, &e);
	if (rc == -ENOENT)
		return fail(EXIT_NOTFOUND, "%s is deleted: give the version to compare with",
			    display_path(a->v.path));
	if (rc < 0)
		return store_fail(c, rc, "looking up %s", display_path(a->v.path));
	b->v = e.head;
	return EXIT_OK;
}

static cJSON *json_sides(const struct side *a, const struct side *b, bool equal)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "a", json_version(&a->v, -1));
	cJSON_AddItemToObject(doc, "b", json_version(&b->v, -1));
	cJSON_AddBoolToObject(doc, "equal", equal);
	return doc;
}

/* ---- line diff ------------------------------------------------------- */

static int temp_file_with(const struct side *s, char *name, size_t len)
{
	const char *dir = getenv("TMPDIR");
	snprintf(name, len, "%s/verconf-diff-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(name);
	if (fd < 0)
		return -errno;
	int rc = write_all(fd, s->buf, s->len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static char *side_label(const struct side *s)
{
	char *label;
	if (asprintf(&label, "%s@%" PRId64, display_path(s->v.path), s->v.id) < 0)
		abort();
	return label;
}

/* Read all of fd into a malloc'd NUL-terminated buffer. */
static char *read_all_fd(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	ssize_t got;
	while (buf && (got = read(fd, buf + n, cap - n - 1)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		n += (size_t)got;
		if (cap - n < 2 && !(buf = realloc(buf, cap *= 2)))
			break;
	}
	if (!buf)
		abort();
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Run diff(1) on the two files; its output into *out.  Returns diff's exit
 * status (0 same, 1 different, 2 trouble) or -1. */
static int run_diff(const struct diff_opts *o, bool color, char *const files[2],
		    char *const labels[2], char **out)
{
	int pipefd[2];
	if (pipe(pipefd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		char *argv[] = { "diff", "-U", (char *)(o->context ? o->context : "3"),
				 color ? "--color=always" : "--color=never", "--label", labels[0],
				 "--label", labels[1], "--", files[0], files[1], NULL };
		execvp("diff", argv);
		_exit(127);
	}
	close(pipefd[1]);
	size_t len;
	*out = read_all_fd(pipefd[0], &len);
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool is_binary(const struct side *s)
{
	return s->len && memchr(s->buf, '\0', s->len);
}

static int diff_texts(const struct diff_opts *o, bool color, const struct side *a,
		      const struct side *b, char **out)
{
	char fa[4096], fb[4096];
	char *files[2] = { fa, fb };
	char *labels[2] = { side_label(a), side_label(b) };
	int rc = -1;
	*fb = '\0';
	if (temp_file_with(a, fa, sizeof fa) == 0 && temp_file_with(b, fb, sizeof fb) == 0)
		rc = run_diff(o, color, files, labels, out);
	unlink(fa);
	if (*fb)
		unlink(fb);
	free(labels[0]);
	free(labels[1]);
	return rc;
}

static int diff_lines(struct ctx *c, const struct diff_opts *o, const struct side *a,
		      const struct side *b)
{
	bool binary = is_binary(a) || is_binary(b);
	char *text = NULL;
	bool equal;
	if (binary) {
		equal = a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0;
	} else {
		int st = diff_texts(o, c->color && !c->json, a, b, &text);
		if (st != 0 && st != 1) {
			free(text);
			return fail(EXIT_STORE, "diff(1) failed (is diffutils installed?)");
		}
		equal = st == 0;
	}
	if (c->json) {
		cJSON *doc = json_sides(a, b, equal);
		cJSON_AddBoolToObject(doc, "binary", binary);
		if (text)
			cJSON_AddItemToObject(doc, "diff", json_text(text));
		else
			cJSON_AddNullToObject(doc, "diff");
		free(text);
		int rc = json_print(doc);
		return rc != EXIT_OK ? rc : equal ? EXIT_OK : EXIT_DIFFERS;
	}
	if (binary && !equal)
		printf("Binary versions %" PRId64 " and %" PRId64 " differ\n", a->v.id, b->v.id);
	else if (text)
		fputs(text, stdout);
	free(text);
	return equal ? EXIT_OK : EXIT_DIFFERS;
}

/* ---- JSON key diff --------------------------------------------------- */

enum change { CHANGED, ADDED, REMOVED };

struct key_diff {
	bool color;
	cJSON *changes; /* JSON output, or NULL for text */
	int count;
	char *path;     /* the key path being walked, e.g. ".database.port" */
	size_t len, cap;
};

static void path_append(struct key_diff *d, const char *text)
{
	size_t n = strlen(text);
	if (d->len + n + 1 > d->cap) {
		d->cap = 2 * (d->len + n + 1);
		if (!(d->path = realloc(d->path, d->cap)))
			abort();
	}
	memcpy(d->path + d->len, text, n + 1);
	d->len += n;
}

static bool plain_key(const char *key)
{
	if (!*key || isdigit((unsigned char)*key))
		return false;
	for (; *key; key++)
		if (!isalnum((unsigned char)*key) && *key != '_')
			return false;
	return true;
}

/* ".name" for plain keys, ["any key"] (JSON quoted) for the others, as jq. */
static void path_push_key(struct key_diff *d, const char *key)
{
	if (plain_key(key)) {
		path_append(d, ".");
		path_append(d, key);
		return;
	}
	cJSON *s = json_text(key);
	char *quoted = cJSON_PrintUnformatted(s);
	path_append(d, "[");
	path_append(d, quoted);
	path_append(d, "]");
	free(quoted);
	cJSON_Delete(s);
}

static void path_push_index(struct key_diff *d, int i)
{
	char text[24];
	snprintf(text, sizeof text, "[%d]", i);
	path_append(d, text);
}

static void report_change_text(struct key_diff *d, enum change kind, const cJSON *old,
			       const cJSON *new)
{
	static const char *const colors[] = { COLOR_YELLOW, COLOR_GREEN, COLOR_RED };
	static const char *const signs[] = { "", "+", "-" };
	char *o = old ? cJSON_PrintUnformatted(old) : NULL;
	char *n = new ? cJSON_PrintUnformatted(new) : NULL;
	const char *key = d->len ? d->path : ".";
	printf("%s%s%s: %s%s%s%s\n", d->color ? colors[kind] : "", signs[kind], key,
	       o ? o : "", o && n ? " -> " : "", n ? n : "", d->color ? COLOR_RESET : "");
	free(o);
	free(n);
}

static void report_change(struct key_diff *d, enum change kind, const cJSON *old, const cJSON *new)
{
	static const char *const names[] = { "changed", "added", "removed" };
	d->count++;
	if (!d->changes) {
		report_change_text(d, kind, old, new);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "key", json_text(d->len ? d->path : "."));
	cJSON_AddStringToObject(o, "change", names[kind]);
	if (old)
		cJSON_AddItemToObject(o, "old", cJSON_Duplicate(old, true));
	if (new)
		cJSON_AddItemToObject(o, "new", cJSON_Duplicate(new, true));
	cJSON_AddItemToArray(d->changes, o);
}

static void walk_values(struct key_diff *d, const cJSON *a, const cJSON *b);

/* Keys of a in a's order (changed or removed), then keys only in b. */
static void walk_objects(struct key_diff *d, const cJSON *a, const cJSON *b)
{
	size_t mark = d->len;
	const cJSON *x;
	cJSON_ArrayForEach(x, a) {
		const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
		path_push_key(d, x->string);
		if (y)
			walk_values(d, x, y);
		else
			report_change(d, REMOVED, x, NULL);
		d->path[d->len = mark] = '\0';
	}
	cJSON_ArrayForEach(x, b) {
		if (cJSON_GetObjectItemCaseSensitive(a, x->string))
			continue;
		path_push_key(d, x->string);
		report_change(d, ADDED, NULL, x);
		d->path[d->len = mark] = '\0';
	}
}

/* Arrays element by element, by index. */
static void walk_arrays(struct key_diff *d, const cJSON *a, const cJSON *b)
{
	size_t mark = d->len;
	int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b);
	for (int i = 0; i < na || i < nb; i++) {
		path_push_index(d, i);
		if (i < na && i < nb)
			walk_values(d, cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i));
		else if (i < na)
			report_change(d, REMOVED, cJSON_GetArrayItem(a, i), NULL);
		else
			report_change(d, ADDED, NULL, cJSON_GetArrayItem(b, i));
		d->path[d->len = mark] = '\0';
	}
}

static void walk_values(struct key_diff *d, const cJSON *a, const cJSON *b)
{
	if (cJSON_IsObject(a) && cJSON_IsObject(b))
		walk_objects(d, a, b);
	else if (cJSON_IsArray(a) && cJSON_IsArray(b))
		walk_arrays(d, a, b);
	else if (!cJSON_Compare(a, b, true))
		report_change(d, CHANGED, a, b);
}

static int parse_json_side(const struct side *s, cJSON **out)
{
	*out = cJSON_ParseWithLength(s->buf ? s->buf : "", s->len);
	if (!*out)
		return fail(EXIT_USAGE, "--keys: version %" PRId64 " (%s) is not valid JSON", s->v.id,
			    display_path(s->v.path));
	return EXIT_OK;
}

static int diff_keys(struct ctx *c, const struct side *a, const struct side *b)
{
	cJSON *ja = NULL, *jb = NULL;
	int rc = parse_json_side(a, &ja);
	if (rc == EXIT_OK)
		rc = parse_json_side(b, &jb);
	if (rc != EXIT_OK) {
		cJSON_Delete(ja);
		return rc;
	}
	struct key_diff d = { .color = c->color, .changes = c->json ? cJSON_CreateArray() : NULL };
	path_append(&d, "");
	walk_values(&d, ja, jb);
	if (c->json) {
		cJSON *doc = json_sides(a, b, d.count == 0);
		cJSON_AddItemToObject(doc, "changes", d.changes);
		rc = json_print(doc);
	}
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	free(d.path);
	return rc != EXIT_OK ? rc : d.count ? EXIT_DIFFERS : EXIT_OK;
}

int cmd_diff(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_OPTIONS, JSON_OPTION, { "keys", no_argument, NULL, OPT_KEYS },
		{ "unified", required_argument, NULL, 'U' }, OPTIONS_END
	};
	struct diff_opts o = { .cmd = find_command("diff") };
	struct side a = { 0 }, b = { 0 };
	int first, rc = parse_options(c, o.cmd, argc, argv, COMMON_SHORT "U:", longopts, diff_option,
				      &o, &first);
	if (rc != EXIT_OK)
		return rc;
	int nargs = argc - first;
	if (nargs < 1 || nargs > 2)
		return usage_error(o.cmd, "give one or two versions (ID or PATH)");
	if ((rc = open_store(c)) == EXIT_OK)
		rc = resolve_sides(c, nargs, argv + first, &a, &b);
	if (rc == EXIT_OK)
		rc = load_side(c, &a);
	if (rc == EXIT_OK)
		rc = load_side(c, &b);
	if (rc == EXIT_OK)
		rc = o.keys ? diff_keys(c, &a, &b) : diff_lines(c, &o, &a, &b);
	free(a.buf);
	free(b.buf);
	return rc;
}
