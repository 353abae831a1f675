/*
 * verconf: the views of content and trees: `show`, `status` and `tree`.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "verconf.h"

/* ---- show ------------------------------------------------------------ */

static const struct option at_longopts[] = {
	COMMON_OPTIONS, JSON_OPTION, { "at", required_argument, NULL, OPT_AT }, OPTIONS_END
};

/* The version PATH showed at --at. */
static int version_of_path_at(struct ctx *c, const char *arg, const char *at, vc_version *v)
{
	char path[VC_PATH_MAX + 1];
	vc_id seq, id;
	int rc = store_path_arg(c, arg, path);
	if (rc == EXIT_OK)
		rc = parse_at(c, at, &seq);
	if (rc == EXIT_OK)
		rc = version_at_seq(c, path, seq, &id);
	if (rc != EXIT_OK)
		return rc;
	if (!id)
		return fail(EXIT_NOTFOUND, "%s did not exist at %s (sequence %" PRId64 ")",
			    display_path(path), at, seq);
	rc = vc_get_version(c->store, id, v);
	return rc < 0 ? store_fail(c, rc, "reading version %" PRId64, id) : EXIT_OK;
}

static int is_live(struct ctx *c, const vc_version *v)
{
	vc_entry e;
	return vc_lookup(c->store, v->path, &e) == 0 && e.head.id == v->id;
}

/* Text content as a JSON string; anything else (NUL bytes, not UTF-8) as
 * base64, since JSON strings cannot carry arbitrary bytes. */
static int print_show_json(struct ctx *c, const vc_version *v, const void *buf, size_t len)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "version", json_version(v, is_live(c, v)));
	if (utf8_text(buf, len)) {
		char *text = strndup(buf ? buf : "", len);
		cJSON_AddStringToObject(doc, "encoding", "utf-8");
		cJSON_AddStringToObject(doc, "content", text);
		free(text);
	} else {
		char *text = base64_encode(buf, len);
		cJSON_AddStringToObject(doc, "encoding", "base64");
		cJSON_AddStringToObject(doc, "content", text);
		free(text);
	}
	return json_print(doc);
}

int cmd_show(struct ctx *c, int argc, char **argv)
{
	const struct command *cmd = find_command("show");
	struct at_option a = { 0 };
	vc_version v;
	vc_id id;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, at_longopts, at_option, &a,
				      &first);
	if (rc != EXIT_OK)
		return rc;
	if (argc - first != 1)
		return usage_error(cmd, "give one version ID or PATH");
	if (a.at && parse_id(argv[first], &id))
		return usage_error(cmd, "--at goes with a PATH, not a version id");
	if ((rc = open_store(c)) != EXIT_OK)
		return rc;
	rc = a.at ? version_of_path_at(c, argv[first], a.at, &v) : resolve_version(c, argv[first], &v);
	if (rc != EXIT_OK)
		return rc;
	void *buf = NULL;
	size_t len = 0;
	rc = vc_read_content(c->store, v.id, &buf, &len);
	if (rc == -EISDIR)
		return fail(EXIT_NOTFOUND, "version %" PRId64 " (%s) is a directory: it has no content",
			    v.id, display_path(v.path));
	if (rc < 0)
		return store_fail(c, rc, "reading version %" PRId64, v.id);
	if (c->json)
		rc = print_show_json(c, &v, buf, len);
	else if (len && fwrite(buf, 1, len, stdout) != len)
		rc = fail(EXIT_STORE, "writing output: %s", strerror(errno));
	free(buf);
	return rc;
}

/* ---- entries collected from a listing -------------------------------- */

int collect_entry(const char *name, const vc_entry *e, void *ctx)
{
	struct entry_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->items = realloc(l->items, l->cap * sizeof *l->items);
		if (!l->items)
			abort();
	}
	l->items[l->n].name = strdup(name);
	l->items[l->n++].e = *e;
	return 0;
}

void free_entries(struct entry_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
}

static void format_owner(const vc_version *v, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%s", user_name(v->uid), group_name(v->gid));
}

/* ---- status ---------------------------------------------------------- */

/* A vc_journal_cb keeping the first entry listed. */
static int take_journal_entry(const vc_journal_entry *j, void *ctx)
{
	*(vc_journal_entry *)ctx = *j;
	return 1;
}

/* What status says about one live path beyond its head version. */
struct path_status {
	bool have_move;
	vc_journal_entry move; /* the path's last head move */
	int rejected;          /* rejected versions since that move */
	vc_version last_rejected;
};

static int count_rejection(const vc_version *v, void *ctx)
{
	struct path_status *ps = ctx;
	if (ps->have_move && v->created_ns <= ps->move.time_ns)
		return 1; /* newest first: everything from here on is older */
	if (v->status == VC_REJECTED && ps->rejected++ == 0)
		ps->last_rejected = *v;
	return 0;
}

/* "Recent rejections" are those made after the path's last head move:
 * attempts that failed since the live content was put in place. */
static int path_status(struct ctx *c, const char *path, struct path_status *ps)
{
	vc_journal_filter jf = { .path = path, .uid = -1, .limit = 1 };
	*ps = (struct path_status){ 0 };
	int rc = vc_list_journal(c->store, &jf, take_journal_entry, &ps->move);
	ps->have_move = rc > 0;
	if (rc >= 0)
		rc = vc_list_versions(c->store, path, 0, count_rejection, ps);
	return rc < 0 ? store_fail(c, rc, "reading the history of %s", display_path(path)) : EXIT_OK;
}

static void format_rejection_flag(const struct path_status *ps, char *buf, size_t len)
{
	if (ps->rejected == 0)
		snprintf(buf, len, "%s", "");
	else if (ps->rejected == 1)
		snprintf(buf, len, "rejected %" PRId64 ": %s", ps->last_rejected.id,
			 ps->last_rejected.reason);
	else
		snprintf(buf, len, "%d rejected, last %" PRId64 ": %s", ps->rejected,
			 ps->last_rejected.id, ps->last_rejected.reason);
}

static void add_status_row(struct table *t, const char *name, const vc_entry *e,
			   const struct path_status *ps)
{
	const vc_version *h = &e->head;
	const vc_actor *who = ps->have_move ? &ps->move.actor : &h->actor;
	char id[24], size[24], mode[11], owner[160], time[40], user[80], pid[16];
	char flag[VC_REASON_MAX + 48];
	snprintf(id, sizeof id, "%" PRId64, h->id);
	snprintf(size, sizeof size, "%" PRId64, h->size);
	format_mode(h->kind, h->mode, mode);
	format_owner(h, owner, sizeof owner);
	format_local_time(ps->have_move ? ps->move.time_ns : h->created_ns, time, sizeof time);
	format_user(who->uid, user, sizeof user);
	snprintf(pid, sizeof pid, "%" PRId32, who->pid);
	format_rejection_flag(ps, flag, sizeof flag);
	const char *cells[] = { display_path(name), id, size, mode, owner, time,
				ps->have_move ? vc_action_name(ps->move.action) : "-",
				user, pid, who->comm, flag };
	table_add(t, ps->rejected ? COLOR_RED : NULL, cells);
}

static cJSON *json_status_entry(const char *name, const vc_entry *e, const struct path_status *ps)
{
	cJSON *o = json_version(&e->head, 1);
	json_set_text(o, "path", name);
	json_add_time(o, "mtime", e->mtime_ns);
	if (ps->have_move) {
		cJSON *m = cJSON_AddObjectToObject(o, "last_change");
		json_add_int(m, "seq", ps->move.seq);
		cJSON_AddStringToObject(m, "action", vc_action_name(ps->move.action));
		json_add_time(m, "time", ps->move.time_ns);
		cJSON_AddItemToObject(m, "actor", json_actor(&ps->move.actor));
	} else {
		cJSON_AddNullToObject(o, "last_change");
	}
	json_add_int(o, "rejected_since", ps->rejected);
	if (ps->rejected)
		cJSON_AddItemToObject(o, "last_rejected", json_version(&ps->last_rejected, 0));
	else
		cJSON_AddNullToObject(o, "last_rejected");
	return o;
}

static int print_status(struct ctx *c, const struct entry_list *l)
{
	static const char *const headers[] = { "PATH",	  "ID",	 "SIZE", "MODE", "OWNER", "CHANGED",
					       "ACTION", "USER", "PID",	 "PROCESS", "FLAG" };
	struct table t;
	cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
	cJSON *paths = doc ? cJSON_AddArrayToObject(doc, "paths") : NULL;
	table_init(&t, headers, 11, 1u << 1 | 1u << 2 | 1u << 8);
	int rc = EXIT_OK;
	for (size_t i = 0; i < l->n && rc == EXIT_OK; i++) {
		struct path_status ps;
		rc = path_status(c, l->items[i].name, &ps);
		if (rc == EXIT_OK && doc)
			cJSON_AddItemToArray(paths, json_status_entry(l->items[i].name, &l->items[i].e, &ps));
		else if (rc == EXIT_OK)
			add_status_row(&t, l->items[i].name, &l->items[i].e, &ps);
	}
	if (rc == EXIT_OK && doc)
		rc = json_print(doc);
	else if (rc == EXIT_OK)
		table_print(&t, c->color);
	else
		cJSON_Delete(doc);
	table_free(&t);
	return rc;
}

int cmd_status(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_OPTIONS, JSON_OPTION, OPTIONS_END };
	const struct command *cmd = find_command("status");
	struct entry_list l = { 0 };
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, longopts, NULL, NULL, &first);
	if (rc != EXIT_OK)
		return rc;
	if (first < argc)
		return usage_error(cmd, "status takes no arguments");
	if ((rc = open_store(c)) != EXIT_OK)
		return rc;
	rc = vc_list_paths(c->store, 0, collect_entry, &l);
	rc = rc < 0 ? store_fail(c, rc, "listing paths") : print_status(c, &l);
	free_entries(&l);
	return rc;
}

/* ---- tree ------------------------------------------------------------ */

/* A symlink's target, malloc'd ("" if unreadable). */
static char *symlink_target(struct ctx *c, vc_id id)
{
	void *buf = NULL;
	size_t len = 0;
	char *target = vc_read_content(c->store, id, &buf, &len) == 0 ? strndup(buf ? buf : "", len)
									: strdup("");
	free(buf);
	return target;
}

static void add_tree_row(struct ctx *c, struct table *t, const char *name, const vc_version *v)
{
	char mode[11], owner[160], size[24], id[24], time[40];
	char *shown = NULL;
	format_mode(v->kind, v->mode, mode);
	format_owner(v, owner, sizeof owner);
	snprintf(size, sizeof size, "%" PRId64, v->size);
	snprintf(id, sizeof id, "%" PRId64, v->id);
	format_local_time(v->created_ns, time, sizeof time);
	if (v->kind == VC_SYMLINK) {
		char *target = symlink_target(c, v->id);
		if (asprintf(&shown, "%s -> %s", name, target) < 0)
			abort();
		free(target);
	}
	const char *cells[] = { mode, owner, size, id, time, shown ? shown : display_path(name) };
	table_add(t, NULL, cells);
	free(shown);
}

static cJSON *json_tree_entry(struct ctx *c, const char *name, const vc_version *v)
{
	cJSON *o = json_version(v, -1);
	json_set_text(o, "path", name);
	if (v->kind == VC_SYMLINK) {
		char *target = symlink_target(c, v->id);
		json_set_text(o, "target", target);
		free(target);
	}
	return o;
}

/* The time of journal entry seq (0 if there is none). */
int64_t seq_time(struct ctx *c, vc_id seq)
{
	vc_journal_filter jf = { .uid = -1, .after_seq = seq - 1, .limit = 1, .oldest_first = 1 };
	vc_journal_entry j = { 0 };
	if (seq <= 0 || vc_list_journal(c->store, &jf, take_journal_entry, &j) <= 0)
		return 0;
	return j.seq == seq ? j.time_ns : 0;
}

static int print_tree(struct ctx *c, vc_id seq, const struct entry_list *l)
{
	static const char *const headers[] = { "MODE", "OWNER", "SIZE", "ID", "TIME", "PATH" };
	if (c->json) {
		cJSON *doc = cJSON_CreateObject();
		json_add_int(doc, "seq", seq);
		int64_t t = seq_time(c, seq);
		if (t)
			json_add_time(doc, "time", t);
		cJSON *entries = cJSON_AddArrayToObject(doc, "entries");
		for (size_t i = 0; i < l->n; i++)
			cJSON_AddItemToArray(entries, json_tree_entry(c, l->items[i].name, &l->items[i].e.head));
		return json_print(doc);
	}
	struct table t;
	table_init(&t, headers, 6, 1u << 2 | 1u << 3);
	for (size_t i = 0; i < l->n; i++)
		add_tree_row(c, &t, l->items[i].name, &l->items[i].e.head);
	table_print(&t, c->color);
	table_free(&t);
	return EXIT_OK;
}

int cmd_tree(struct ctx *c, int argc, char **argv)
{
	const struct command *cmd = find_command("tree");
	struct at_option a = { 0 };
	struct entry_list l = { 0 };
	vc_id seq;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, at_longopts, at_option, &a,
				      &first);
	if (rc != EXIT_OK)
		return rc;
	if (first < argc)
		return usage_error(cmd, "tree takes no arguments (use --at SEQ|TIME)");
	if ((rc = open_store(c)) != EXIT_OK)
		return rc;
	if (a.at)
		rc = parse_at(c, a.at, &seq);
	else if ((rc = vc_last_seq(c->store, &seq)) < 0)
		rc = store_fail(c, rc, "reading the journal");
	if (rc != EXIT_OK)
		return rc;
	rc = vc_tree_at(c->store, seq, collect_entry, &l);
	rc = rc < 0 ? store_fail(c, rc, "reading the tree at sequence %" PRId64, seq)
		    : print_tree(c, seq, &l);
	free_entries(&l);
	return rc;
}
