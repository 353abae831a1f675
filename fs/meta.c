/*
 * The virtual files at the mount root, hidden from readdir unless
 * -o showmeta (like ZFS's .zfs, so cp -a, tar and rsync of the mount do not
 * copy them):
 *
 *   .control    mode 0600, owned by the mounting user.  Reading gives a
 *               status; each write is one command, and write() succeeds
 *               only once the switch is done and the kernel's caches are
 *               invalidated.  See README ".control".
 *   .versions/  read-only history: .versions/PATH/ID is version ID of PATH,
 *               with that version's own mode and owner (write bits
 *               cleared), so history shows no one a file they could not
 *               read live.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "verconfd.h"

#define COMMAND_MAX 8192

static struct node *control_node, *vroot_node;

void meta_init(void)
{
	control_node = node_get(N_CONTROL, NULL, 0);
	vroot_node = node_get(N_VROOT, NULL, 0);
	/* Fixed nodes live as long as the mount. */
	control_node->nlookup = vroot_node->nlookup = 1ULL << 62;
}

static void fixed_attr(struct node *n, mode_t mode)
{
	memset(&n->attr, 0, sizeof(n->attr));
	n->attr.st_ino = n->ino;
	n->attr.st_mode = mode;
	n->attr.st_nlink = 1;
	n->attr.st_uid = fs.owner_uid;
	n->attr.st_gid = fs.owner_gid;
	n->attr.st_blksize = 4096;
}

/* The entry of n, whose lookup is counted already. */
static void reply_node(struct node *n, struct fuse_entry_param *e, double timeout)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->attr = n->attr;
	e->entry_timeout = timeout;
	e->attr_timeout = timeout;
}

int meta_lookup_root(const char *name, struct fuse_entry_param *e)
{
	struct node *n = !strcmp(name, CONTROL_NAME) ? control_node : vroot_node;
	fixed_attr(n, n == control_node ? S_IFREG | 0600 : S_IFDIR | 0555);
	n->nlookup++;
	/* Both names, modes and owners are fixed for the mount's life: the
	 * kernel may keep them as long as it likes (.control's content is
	 * direct I/O, its size of 0 is never used to read it). */
	reply_node(n, e, ENTRY_TIMEOUT);
	return 0;
}

/* ---- .versions ---------------------------------------------------------- */

static int take_first(const vc_version *v, void *ctx)
{
	*(vc_version *)ctx = *v;
	return 1;
}

/* The newest version of path, whatever its status: it decides whether
 * .versions/PATH lists children (a directory) or version ids (a file). */
static int newest_version(const char *path, vc_version *v)
{
	int rc = vc_list_versions(fs.store, path, 1, take_first, v);
	return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

static bool parse_id(const char *s, vc_id *id)
{
	if (!*s || strlen(s) > 18)
		return false;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	*id = strtoll(s, NULL, 10);
	return *id > 0;
}

static int lookup_version_file(struct node *parent, const char *name,
			       struct fuse_entry_param *e)
{
	vc_id id;
	vc_version v;
	if (!parse_id(name, &id) || vc_get_version(fs.store, id, &v) != 0 ||
	    strcmp(v.path, parent->path) != 0 || v.kind == VC_DIR)
		return -ENOENT;
	struct node *n = node_get(N_VFILE, NULL, id);
	if (!n)
		return -ENOMEM;
	attr_from_version(&n->attr, &v);
	n->attr.st_ino = VERSION_INO(id);
	/* Read-only, a regular file even for a symlink version (its content
	 * is the target), under that version's own owner and mode. */
	n->attr.st_mode = S_IFREG | (v.mode & 07555);
	reply_node(n, e, ENTRY_TIMEOUT);
	return 0;
}

/*
 * Who may search a directory's history: only whom every version of that
 * directory let search it.  A file written while its directory was 0700
 * must stay out of reach after a chmod 755 of the directory, or an rm -r
 * and mkdir of it.  So the mode is what all its versions' modes share, and
 * where the owner (group) changed, the owner's (group's) bits are only
 * what others had: a new owner does not inherit an old owner's files.
 */
struct dir_access {
	bool any;
	uint32_t mode, uid, gid;
	bool uid_changed, gid_changed;
};

static int narrow_access(const vc_version *v, void *ctx)
{
	struct dir_access *a = ctx;
	if (v->kind != VC_DIR)
		return 0;
	if (!a->any) {
		*a = (struct dir_access){ .any = true, .mode = v->mode, .uid = v->uid, .gid = v->gid };
		return 0;
	}
	a->mode &= v->mode;
	a->uid_changed |= v->uid != a->uid;
	a->gid_changed |= v->gid != a->gid;
	return 0;
}

static mode_t history_dir_mode(const char *path)
{
	struct dir_access a = { 0 };
	if (vc_list_versions(fs.store, path, 0, narrow_access, &a) != 0 || !a.any)
		return 0;
	mode_t m = a.mode & 0555;
	if (a.uid_changed)
		m &= ~0500 | ((m & 05) << 6);
	if (a.gid_changed)
		m &= ~0050 | ((m & 05) << 3);
	return m;
}

static int lookup_history_dir(const char *path, struct fuse_entry_param *e)
{
	vc_version v;
	int rc = newest_version(path, &v);
	if (rc)
		return rc;
	struct node *n = node_get(N_VDIR, path, 0);
	if (!n)
		return -ENOMEM;
	attr_from_version(&n->attr, &v);
	n->attr.st_ino = n->ino;
	/* A directory's history is searchable by whom the directory always
	 * was; a file's list of ids is open, its versions are not. */
	n->attr.st_mode = S_IFDIR | (v.kind == VC_DIR ? history_dir_mode(path) : 0555);
	n->attr.st_size = 0;
	/* New paths and versions appear at any time: cache briefly. */
	reply_node(n, e, 1.0);
	return 0;
}

int meta_lookup(struct node *parent, const char *name, struct fuse_entry_param *e)
{
	if (parent->kind == N_VROOT)
		return lookup_history_dir(name, e);
	if (parent->kind != N_VDIR)
		return -ENOTDIR;
	vc_version v;
	int rc = newest_version(parent->path, &v);
	if (rc)
		return rc;
	if (v.kind != VC_DIR)
		return lookup_version_file(parent, name, e);
	char *path = path_join(parent->path, name);
	rc = path ? lookup_history_dir(path, e) : -ENOMEM;
	free(path);
	return rc;
}

int meta_getattr(struct node *n, struct stat *st)
{
	*st = n->attr;
	return 0;
}

struct list_ctx {
	void (*add)(void *ctx, const char *name, struct stat *st);
	void *ctx;
	const char *dir;
	size_t dlen;
};

static int add_version_id(const vc_version *v, void *ctx)
{
	struct list_ctx *l = ctx;
	char name[32];
	struct stat st = { .st_mode = S_IFREG };
	if (v->kind == VC_DIR)
		return 0;
	snprintf(name, sizeof(name), "%lld", (long long)v->id);
	l->add(l->ctx, name, &st);
	return 0;
}

/* Every path that ever existed directly inside l->dir, deleted ones too. */
static int add_history_child(const char *path, const vc_entry *e, void *ctx)
{
	struct list_ctx *l = ctx;
	struct stat st = { .st_mode = S_IFDIR };
	(void)e;
	if (!*path)
		return 0;
	if (l->dlen) {
		if (strncmp(path, l->dir, l->dlen) != 0 || path[l->dlen] != '/')
			return 0;
		path += l->dlen + 1;
	}
	if (!strchr(path, '/'))
		l->add(l->ctx, path, &st);
	return 0;
}

int meta_readdir(struct node *n, void (*add)(void *ctx, const char *name, struct stat *st),
		 void *ctx)
{
	struct list_ctx l = { add, ctx, n->kind == N_VDIR ? n->path : "", 0 };
	l.dlen = strlen(l.dir);
	if (n->kind == N_VROOT)
		return vc_list_paths(fs.store, 1, add_history_child, &l);
	if (n->kind != N_VDIR)
		return -ENOTDIR;
	vc_version v;
	int rc = newest_version(n->path, &v);
	if (rc)
		return rc;
	if (v.kind == VC_DIR)
		return vc_list_paths(fs.store, 1, add_history_child, &l);
	return vc_list_versions(fs.store, n->path, 0, add_version_id, &l);
}

/* ---- .control: status ------------------------------------------------------ */

struct text {
	char *buf;
	size_t len;
	FILE *f;
};

/* Paths may hold any byte but NUL and '/': escape what would break a line. */
static void put_path(FILE *f, const char *p)
{
	for (; *p; p++) {
		if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\\')
			fputs("\\\\", f);
		else
			fputc(*p, f);
	}
}

static int status_line(const char *path, const vc_entry *e, void *ctx)
{
	FILE *f = ctx;
	if (e->head.kind == VC_DIR)
		return 0;
	fprintf(f, "%lld\t%lld\t", (long long)e->head.id, (long long)e->head.size);
	for (int i = 0; i < 6; i++)
		fprintf(f, "%02x", e->head.sha256[i]);
	fputc('\t', f);
	put_path(f, path);
	fputc('\n', f);
	return 0;
}

static const char *validate_name(void)
{
	return fs.validate == VALIDATE_STRICT ? "strict" : fs.validate == VALIDATE_WARN ? "warn"
											 : "off";
}

static int write_status(FILE *f)
{
	vc_id seq = 0;
	vc_last_seq(fs.store, &seq);
	fprintf(f, "verconfd: %s\n", VERCONF_VERSION);
	fprintf(f, "store: %s\n", fs.store_path);
	fprintf(f, "mount: %s\n", fs.mountpoint);
	fprintf(f, "validate: %s\nsync: %s\nmax_file_size: %zu\n", validate_name(),
		fs.sync_normal ? "normal" : "full", fs.max_file_size);
	fprintf(f, "seq: %lld\n", (long long)seq);
	fprintf(f, "last-rejection: %s\n", *fs.last_rejection ? fs.last_rejection : "none");
	fprintf(f, "last-error: %s\n", *fs.last_error ? fs.last_error : "none");
	fprintf(f, "\n# version\tsize\tsha256\tpath\n");
	return vc_list_paths(fs.store, 0, status_line, f);
}

int meta_open(struct node *n, struct fuse_file_info *fi)
{
	if (n->kind != N_CONTROL)
		return -EISDIR;
	struct text *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if ((fi->flags & O_ACCMODE) != O_WRONLY) {
		t->f = open_memstream(&t->buf, &t->len);
		int rc = t->f ? write_status(t->f) : -ENOMEM;
		if (t->f)
			fclose(t->f);
		t->f = NULL;
		if (rc) {
			free(t->buf);
			free(t);
			return rc;
		}
	}
	fi->direct_io = 1;
	fi->nonseekable = 0;
	/* Each write() returns its command's result; close has nothing to
	 * report, so it needs no FLUSH round trip. */
	fi->noflush = 1;
	fi->fh = (uintptr_t)t;
	return 0;
}

int meta_read(struct node *n, struct fuse_file_info *fi, char **buf, size_t *len)
{
	(void)n;
	struct text *t = (struct text *)(uintptr_t)fi->fh;
	*buf = t->len ? malloc(t->len) : NULL;
	if (t->len && !*buf)
		return -ENOMEM;
	if (t->len)
		memcpy(*buf, t->buf, t->len);
	*len = t->len;
	return 0;
}

void meta_release(struct fuse_file_info *fi)
{
	struct text *t = (struct text *)(uintptr_t)fi->fh;
	free(t->buf);
	free(t);
}

/* ---- .control: commands ------------------------------------------------------ */

/* A path and every directory above it, so revived ancestors show too. */
static void inval_with_ancestors(struct invals *iv, const char *path)
{
	char *p = strdup(path);
	while (p && *p) {
		inval_path(iv, p);
		char *slash = strrchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	free(p);
}

static int command_failed(int rc, const char *what)
{
	snprintf(fs.last_error, sizeof(fs.last_error), "%s: %s", what,
		 vc_errmsg(fs.store) && *vc_errmsg(fs.store) ? vc_errmsg(fs.store) : strerror(-rc));
	log_msg(LOG_WARNING, ".control %s refused: %s", what, fs.last_error);
	return rc;
}

static int bad_argument(const char *what, const char *arg)
{
	snprintf(fs.last_error, sizeof(fs.last_error), "%s: bad argument '%.200s'", what, arg);
	log_msg(LOG_WARNING, ".control %s", fs.last_error);
	return -EINVAL;
}

static int cmd_activate(const vc_actor *a, const char *arg, struct invals *iv)
{
	vc_id id;
	vc_version v;
	if (!parse_id(arg, &id))
		return bad_argument("activate", arg);
	int rc = vc_get_version(fs.store, id, &v);
	if (!rc)
		rc = vc_activate(fs.store, id, NULL, a);
	if (rc)
		return command_failed(rc, "activate");
	inval_with_ancestors(iv, v.path);
	log_msg(LOG_INFO, "activate %s version %lld by uid %u pid %d %s", v.path, (long long)id,
		a->uid, a->pid, a->comm);
	return 0;
}

/* PATH relative to the mount root; a leading slash or the mount point's
 * own path in front is allowed. */
static const char *relative_path(const char *p)
{
	size_t m = strlen(fs.mountpoint);
	if (!strncmp(p, fs.mountpoint, m) && p[m] == '/')
		p += m;
	while (*p == '/')
		p++;
	return p;
}

static int cmd_rollback(const vc_actor *a, const char *arg, struct invals *iv)
{
	const char *path = relative_path(arg);
	vc_id now;
	if (!*path || vc_path_check(path) != 0)
		return bad_argument("rollback", arg);
	int rc = vc_rollback(fs.store, path, a, &now);
	if (rc)
		return command_failed(rc, "rollback");
	inval_with_ancestors(iv, path);
	log_msg(LOG_INFO, "rollback %s to version %lld by uid %u pid %d %s", path, (long long)now,
		a->uid, a->pid, a->comm);
	return 0;
}

/* ISO 8601 in UTC: 2026-12-03T20:00:00Z, optionally with fractional
 * seconds; a bare 2026-12-03 means its midnight. */
static int parse_utc(const char *s, int64_t *ns)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (!end)
		return -EINVAL;
	long frac_ns = 0;
	if (*end == '.') {
		long scale = 100000000;
		for (end++; isdigit((unsigned char)*end); end++, scale /= 10)
			frac_ns += (*end - '0') * scale;
	}
	if (*end == 'Z')
		end++;
	if (*end)
		return -EINVAL;
	time_t t = timegm(&tm);
	*ns = (int64_t)t * 1000000000 + frac_ns;
	return 0;
}

static int collect_path(const char *path, const vc_entry *e, void *ctx)
{
	(void)e;
	inval_with_ancestors(ctx, path);
	return 0;
}

static int cmd_restore(const vc_actor *a, const char *arg, struct invals *iv)
{
	vc_id seq;
	int64_t ns;
	if (arg[0] == '@') {
		if (!parse_id(arg + 1, &seq))
			return bad_argument("restore", arg);
	} else if (parse_utc(arg, &ns) == 0) {
		int rc = vc_seq_at_time(fs.store, ns, &seq);
		if (rc)
			return command_failed(rc, "restore");
		if (!seq)
			return -ENOENT;
	} else {
		return bad_argument("restore", arg);
	}
	/* What changes is what is live now or was live then: invalidate both. */
	int rc = vc_list_paths(fs.store, 0, collect_path, iv);
	if (!rc)
		rc = vc_tree_at(fs.store, seq, collect_path, iv);
	if (!rc)
		rc = vc_restore(fs.store, seq, a);
	if (rc)
		return command_failed(rc, "restore");
	log_msg(LOG_INFO, "restore to @%lld by uid %u pid %d %s", (long long)seq, a->uid, a->pid,
		a->comm);
	return 0;
}

/*
 * One write is one command, with or without its newline.  Several lines in
 * one write are refused (EINVAL) rather than half done: the return code
 * must say whether the whole write worked.
 */
int meta_write(fuse_req_t req, const char *buf, size_t size, struct invals *iv)
{
	int gone = store_check();
	if (gone)
		return gone;
	if (size == 0 || size > COMMAND_MAX || memchr(buf, '\0', size))
		return -EINVAL;
	char *line = strndup(buf, size);
	if (!line)
		return -ENOMEM;
	size_t n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[--n] = '\0';
	vc_actor a;
	actor_of(req, &a);
	int rc = -EINVAL;
	bool several = strchr(line, '\n') != NULL;
	char *arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	/* Open writers of a path the command switches must not undo it. */
	drafts_note_heads();
	if (several || !*line)
		rc = bad_argument("command", several ? "several lines" : "empty");
	else if (!arg)
		rc = cmd_activate(&a, line, iv);
	else if (!strcmp(line, "activate"))
		rc = cmd_activate(&a, arg, iv);
	else if (!strcmp(line, "rollback"))
		rc = cmd_rollback(&a, arg, iv);
	else if (!strcmp(line, "restore"))
		rc = cmd_restore(&a, arg, iv);
	else
		rc = bad_argument("command", line);
	if (!rc)
		drafts_supersede_moved(arg && !strcmp(line, "restore"), iv);
	free(line);
	return rc;
}
