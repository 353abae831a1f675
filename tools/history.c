/*
 * verconf: the history commands, `log` (versions) and `journal` (head
 * moves), and the filters they share.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "verconf.h"

/* --since, --until, --user, -n and --all. */
struct filter {
	const struct command *cmd;
	int64_t since_ns, until_ns; /* 0: no bound */
	int64_t uid;                /* -1: anyone */
	int limit;                  /* 0: no limit */
	bool all;
};

#define FILTER_LONG_OPTIONS                                        \
	{ "since", required_argument, NULL, OPT_SINCE },           \
	{ "until", required_argument, NULL, OPT_UNTIL },           \
	{ "user", required_argument, NULL, OPT_USER },             \
	{ "max-count", required_argument, NULL, 'n' },             \
	{ "all", no_argument, NULL, OPT_ALL }

static int filter_option(void *state, int opt, const char *arg)
{
	struct filter *f = state;
	switch (opt) {
	case OPT_SINCE:
	case OPT_UNTIL:
		if (!parse_time(arg, opt == OPT_SINCE ? &f->since_ns : &f->until_ns))
			return usage_error(f->cmd, "bad time '%s' (ISO 8601, or 30s, 15m, 2h, 3d, 1w)",
					   arg);
		return EXIT_OK;
	case OPT_USER:
		if (!parse_user(arg, &f->uid))
			return usage_error(f->cmd, "no such user '%s'", arg);
		return EXIT_OK;
	case 'n':
		if (!parse_count(arg, &f->limit))
			return usage_error(f->cmd, "-n needs a count, not '%s'", arg);
		return EXIT_OK;
	case OPT_ALL:
		f->all = true;
		return EXIT_OK;
	default:
		return -1;
	}
}

static bool filter_passes(const struct filter *f, int64_t time_ns, uint32_t actor_uid)
{
	return (!f->since_ns || time_ns >= f->since_ns) && (!f->until_ns || time_ns <= f->until_ns) &&
	       (f->uid < 0 || actor_uid == f->uid);
}

static int parse_filter_command(struct ctx *c, struct filter *f, int argc, char **argv, int *first)
{
	static const struct option longopts[] = {
		COMMON_OPTIONS, JSON_OPTION, FILTER_LONG_OPTIONS, OPTIONS_END
	};
	return parse_options(c, f->cmd, argc, argv, COMMON_SHORT "n:", longopts, filter_option, f,
			     first);
}

/* The store paths named by argv[first..], malloc'd. */
static int path_args(struct ctx *c, int argc, char **argv, int first, char ***paths)
{
	*paths = calloc((size_t)(argc - first) + 1, sizeof **paths);
	if (!*paths)
		abort();
	for (int i = first; i < argc; i++) {
		char path[VC_PATH_MAX + 1];
		int rc = store_path_arg(c, argv[i], path);
		if (rc != EXIT_OK)
			return rc;
		(*paths)[i - first] = strdup(path);
	}
	return EXIT_OK;
}

static void free_strings(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* ---- log ------------------------------------------------------------- */

struct log_item {
	vc_version v;
	bool live;
};

struct log_state {
	const struct filter *f;
	vc_id head; /* of the path being collected */
	struct log_item *items;
	size_t n, cap;
};

static int collect_version(const vc_version *v, void *ctx)
{
	struct log_state *st = ctx;
	if (!filter_passes(st->f, v->created_ns, v->actor.uid))
		return 0;
	if (st->n == st->cap) {
		st->cap = st->cap ? 2 * st->cap : 32;
		st->items = realloc(st->items, st->cap * sizeof *st->items);
		if (!st->items)
			abort();
	}
	st->items[st->n++] = (struct log_item){ *v, v->id == st->head };
	return 0;
}

static int collect_path_versions(struct ctx *c, struct log_state *st, const char *path)
{
	vc_entry e;
	int rc = vc_lookup(c->store, path, &e);
	if (rc < 0 && rc != -ENOENT)
		return store_fail(c, rc, "looking up %s", display_path(path));
	st->head = rc == 0 ? e.head.id : 0;
	rc = vc_list_versions(c->store, path, 0, collect_version, st);
	if (rc == -ENOENT)
		return fail(EXIT_NOTFOUND, "no such path in the store: %s", display_path(path));
	return rc < 0 ? store_fail(c, rc, "listing versions of %s", display_path(path)) : EXIT_OK;
}

struct name_list {
	char **names;
	size_t n, cap;
};

static int collect_name(const char *name, const vc_entry *e, void *ctx)
{
	(void)e;
	struct name_list *l = ctx;
	if (l->n + 1 >= l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->names = realloc(l->names, l->cap * sizeof *l->names);
		if (!l->names)
			abort();
	}
	l->names[l->n++] = strdup(name);
	l->names[l->n] = NULL;
	return 0;
}

/* Every path (live, or ever known with --all).  Collected first and
 * queried after, so that no store call runs inside another's callback. */
static int all_paths(struct ctx *c, bool include_deleted, char ***paths)
{
	struct name_list l = { 0 };
	int rc = vc_list_paths(c->store, include_deleted, collect_name, &l);
	if (rc < 0) {
		free_strings(l.names);
		return store_fail(c, rc, "listing paths");
	}
	*paths = l.names ? l.names : calloc(1, sizeof **paths);
	return EXIT_OK;
}

static int newest_first(const void *a, const void *b)
{
	vc_id x = ((const struct log_item *)a)->v.id, y = ((const struct log_item *)b)->v.id;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Sort, drop duplicates (a path named twice), apply -n. */
static void order_log(struct log_state *st)
{
	/* qsort's array must not be NULL, even for no items. */
	if (st->n)
		qsort(st->items, st->n, sizeof *st->items, newest_first);
	size_t out = 0;
	for (size_t i = 0; i < st->n; i++)
		if (out == 0 || st->items[out - 1].v.id != st->items[i].v.id)
			st->items[out++] = st->items[i];
	st->n = out;
	if (st->f->limit > 0 && st->n > (size_t)st->f->limit)
		st->n = (size_t)st->f->limit;
}

static const char *version_mark(const vc_version *v, bool live, char *buf, size_t len)
{
	if (v->status == VC_REJECTED)
		snprintf(buf, len, "rejected: %s", v->reason);
	else
		snprintf(buf, len, "%s", live ? "live" : "");
	return buf;
}

static int print_log_table(const struct ctx *c, const struct log_state *st)
{
	static const char *const headers[] = { "ID", "TIME", "OP", "USER", "PID", "PROCESS",
					       "SIZE", "SHA256", "PATH", "MARK" };
	struct table t;
	table_init(&t, headers, 10, 1u << 0 | 1u << 4 | 1u << 6);
	for (size_t i = 0; i < st->n; i++) {
		const vc_version *v = &st->items[i].v;
		char id[24], time[40], user[80], pid[16], size[24], sha[13], mark[VC_REASON_MAX + 16];
		snprintf(id, sizeof id, "%" PRId64, v->id);
		format_local_time(v->created_ns, time, sizeof time);
		format_user(v->actor.uid, user, sizeof user);
		snprintf(pid, sizeof pid, "%" PRId32, v->actor.pid);
		snprintf(size, sizeof size, "%" PRId64, v->size);
		format_sha256(v->sha256, 12, sha);
		const char *cells[] = { id, time, vc_op_name(v->op), user, pid, v->actor.comm, size,
					v->kind == VC_DIR ? "-" : sha, display_path(v->path),
					version_mark(v, st->items[i].live, mark, sizeof mark) };
		const char *color = v->status == VC_REJECTED ? COLOR_RED
				    : st->items[i].live      ? COLOR_GREEN
							     : NULL;
		table_add(&t, color, cells);
	}
	table_print(&t, c->color);
	table_free(&t);
	return EXIT_OK;
}

static int print_log_json(const struct log_state *st)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *versions = cJSON_AddArrayToObject(doc, "versions");
	for (size_t i = 0; i < st->n; i++)
		cJSON_AddItemToArray(versions, json_version(&st->items[i].v, st->items[i].live));
	return json_print(doc);
}

int cmd_log(struct ctx *c, int argc, char **argv)
{
	struct filter f = { .cmd = find_command("log"), .uid = -1 };
	struct log_state st = { .f = &f };
	char **paths = NULL;
	int first, rc = parse_filter_command(c, &f, argc, argv, &first);
	if (rc == EXIT_OK)
		rc = open_store(c);
	if (rc == EXIT_OK)
		rc = first < argc ? path_args(c, argc, argv, first, &paths) : all_paths(c, f.all, &paths);
	for (char **p = paths; rc == EXIT_OK && p && *p; p++)
		rc = collect_path_versions(c, &st, *p);
	if (rc == EXIT_OK) {
		order_log(&st);
		rc = c->json ? print_log_json(&st) : print_log_table(c, &st);
	}
	free_strings(paths);
	free(st.items);
	return rc;
}

/* ---- journal --------------------------------------------------------- */

struct journal_state {
	const struct filter *f;
	char **paths; /* NULL: every path */
	int count;
	struct table *table;
	cJSON *entries;
};

static bool journal_path_wanted(const struct journal_state *st, const char *path)
{
	if (!st->paths)
		return true;
	for (char **p = st->paths; *p; p++)
		if (strcmp(*p, path) == 0)
			return true;
	return false;
}

static void version_ref(vc_id id, char *buf, size_t len)
{
	if (id)
		snprintf(buf, len, "%" PRId64, id);
	else
		snprintf(buf, len, "-");
}

static void add_journal_row(struct table *t, const vc_journal_entry *j)
{
	char seq[24], time[40], user[80], pid[16], from[24], to[24];
	snprintf(seq, sizeof seq, "%" PRId64, j->seq);
	format_local_time(j->time_ns, time, sizeof time);
	format_user(j->actor.uid, user, sizeof user);
	snprintf(pid, sizeof pid, "%" PRId32, j->actor.pid);
	version_ref(j->from_version, from, sizeof from);
	version_ref(j->to_version, to, sizeof to);
	const char *cells[] = { seq,	  time, vc_action_name(j->action), user, pid, j->actor.comm,
				display_path(j->path), from, to };
	table_add(t, NULL, cells);
}

static cJSON *json_journal_entry(const vc_journal_entry *j)
{
	cJSON *o = cJSON_CreateObject();
	json_add_int(o, "seq", j->seq);
	json_add_time(o, "time", j->time_ns);
	cJSON_AddStringToObject(o, "action", vc_action_name(j->action));
	json_set_text(o, "path", j->path);
	json_add_version_ref(o, "from", j->from_version);
	json_add_version_ref(o, "to", j->to_version);
	cJSON_AddItemToObject(o, "actor", json_actor(&j->actor));
	return o;
}

static int add_journal_entry(const vc_journal_entry *j, void *ctx)
{
	struct journal_state *st = ctx;
	if (!journal_path_wanted(st, j->path))
		return 0;
	if (st->f->limit > 0 && st->count >= st->f->limit)
		return 1;
	st->count++;
	if (st->entries)
		cJSON_AddItemToArray(st->entries, json_journal_entry(j));
	else
		add_journal_row(st->table, j);
	return 0;
}

static int list_journal(struct ctx *c, struct journal_state *st)
{
	const struct filter *f = st->f;
	vc_journal_filter jf = { .since_ns = f->since_ns, .until_ns = f->until_ns, .uid = f->uid };
	/* One path: let the store filter; several: filter here. */
	if (st->paths && st->paths[0] && !st->paths[1]) {
		jf.path = st->paths[0];
		jf.limit = f->limit;
	}
	int rc = vc_list_journal(c->store, &jf, add_journal_entry, st);
	return rc < 0 ? store_fail(c, rc, "reading the journal") : EXIT_OK;
}

int cmd_journal(struct ctx *c, int argc, char **argv)
{
	static const char *const headers[] = { "SEQ",	  "TIME", "ACTION", "USER", "PID",
					       "PROCESS", "PATH", "FROM",   "TO" };
	struct filter f = { .cmd = find_command("journal"), .uid = -1 };
	struct journal_state st = { .f = &f };
	struct table t;
	int first, rc = parse_filter_command(c, &f, argc, argv, &first);
	if (rc == EXIT_OK)
		rc = open_store(c);
	if (rc == EXIT_OK && first < argc)
		rc = path_args(c, argc, argv, first, &st.paths);
	if (rc != EXIT_OK) {
		free_strings(st.paths);
		return rc;
	}
	table_init(&t, headers, 9, 1u << 0 | 1u << 4 | 1u << 7 | 1u << 8);
	cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
	st.table = &t;
	st.entries = doc ? cJSON_AddArrayToObject(doc, "entries") : NULL;
	rc = list_journal(c, &st);
	if (rc == EXIT_OK && doc)
		rc = json_print(doc);
	else if (rc == EXIT_OK)
		table_print(&t, c->color);
	else
		cJSON_Delete(doc);
	table_free(&t);
	free_strings(st.paths);
	return rc;
}
