/*
 * FUSE low-level operations on the tree.  Each takes fs.lock, does its work
 * on the node table, drafts and store, releases the lock, sends the kernel
 * notifications it queued, then replies.  The virtual .control and
 * .versions live in meta.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>

#include "verconfd.h"

/* Entries and attributes may stay cached for an hour: every change of what
 * a name shows is pushed to the kernel by an explicit invalidation. */
const double ENTRY_TIMEOUT = 3600.0;

enum handle_kind { H_READ, H_WRITE };

#define WRITE_OWNERS_MAX 4

struct handle {
	struct handle *prev, *next; /* every open handle, for shutdown */
	enum handle_kind kind;
	vc_id version;      /* H_READ: the version opened (0: empty) */
	char *content;      /* H_READ: loaded on first read */
	size_t len;
	bool loaded;
	struct draft *draft; /* H_WRITE */
	bool append;
	pid_t pid;          /* H_WRITE: who opened it */
	fuse_ino_t ino;     /* H_WRITE: the inode it was opened on */
	/* H_WRITE: who wrote through it since its last commit, by descriptor
	 * table (the kernel's lock owner: a process, or the threads sharing
	 * its descriptors).  Only a close (flush) from one of them commits:
	 * a shell opens with O_CREAT|O_TRUNC, dup2()s and closes the first
	 * descriptor before writing, and that close must not commit an empty
	 * version; a child closing a descriptor it inherited and never wrote
	 * through (at exec, or at exit: system(3), a helper) must not commit
	 * its parent's half-written file.  The kernel sends no owner with
	 * ftruncate: a close from the thread that truncated commits it.  More
	 * owners than fit let any close commit.  Whatever is still dirty is
	 * committed when the last handle is released. */
	uint64_t wrote_by[WRITE_OWNERS_MAX];
	pid_t truncated_by;
	bool wrote_unowned;
	/* H_WRITE: closed (flushed) by its opener since its last write: the
	 * bytes are what its writer meant (op_fsyncdir). */
	bool flushed;
};

/* Remember that owner (0: not known) wrote through h. */
static void handle_wrote(struct handle *h, uint64_t owner)
{
	for (size_t i = 0; owner && i < WRITE_OWNERS_MAX; i++) {
		if (h->wrote_by[i] == owner)
			return;
		if (!h->wrote_by[i]) {
			h->wrote_by[i] = owner;
			return;
		}
	}
	h->wrote_unowned = true;
}

/* Whether owner wrote through h since its last commit. */
static bool owner_wrote(const struct handle *h, uint64_t owner)
{
	for (size_t i = 0; owner && i < WRITE_OWNERS_MAX && h->wrote_by[i]; i++)
		if (h->wrote_by[i] == owner)
			return true;
	return false;
}

/* Whether a close from owner, in thread pid, commits what h wrote. */
static bool handle_wrote_for(const struct handle *h, uint64_t owner, pid_t pid)
{
	return h->wrote_unowned || owner_wrote(h, owner) || (h->truncated_by && h->truncated_by == pid);
}

static void handle_committed(struct handle *h)
{
	memset(h->wrote_by, 0, sizeof(h->wrote_by));
	h->truncated_by = 0;
	h->wrote_unowned = false;
}

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static struct handle *open_handles;

/* A write handle on inode ino: pid's if it holds one, else any (all the
 * write handles on one draft node share its draft: a draft that leaves
 * its path takes its node along). */
static struct handle *writer_on(fuse_ino_t ino, pid_t pid)
{
	struct handle *any = NULL;
	for (struct handle *h = open_handles; h; h = h->next) {
		if (h->kind != H_WRITE || h->ino != ino)
			continue;
		if (h->pid == pid)
			return h;
		any = any ? any : h;
	}
	return any;
}

static bool is_meta(const struct node *n)
{
	return n->kind == N_CONTROL || n->kind == N_VROOT || n->kind == N_VDIR ||
	       n->kind == N_VFILE;
}

/* ---- paths and attributes ------------------------------------------- */

char *path_join(const char *dir, const char *name)
{
	char *p;
	if (!*dir)
		return strdup(name);
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

const char *path_base(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

char *path_dir(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? strndup(path, (size_t)(s - path)) : strdup("");
}

static mode_t type_bits(enum vc_kind k)
{
	return k == VC_DIR ? S_IFDIR : k == VC_SYMLINK ? S_IFLNK : S_IFREG;
}

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
}

void attr_from_version(struct stat *st, const vc_version *v)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = PATH_INO(v->path_id);
	st->st_mode = type_bits(v->kind) | (v->mode & 07777);
	st->st_nlink = 1;
	st->st_uid = v->uid;
	st->st_gid = v->gid;
	st->st_size = v->size;
	st->st_blksize = 4096;
	st->st_blocks = (v->size + 511) / 512;
	st->st_atim = st->st_mtim = st->st_ctim = ts_of(v->created_ns);
}

void attr_from_entry(struct stat *st, const vc_entry *e)
{
	attr_from_version(st, &e->head);
	st->st_atim = ts_of(e->atime_ns);
	st->st_mtim = ts_of(e->mtime_ns);
	st->st_ctim = ts_of(e->ctime_ns);
}

static void attr_of_pending(struct stat *st, const struct draft *d, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | (d->mode & 07777);
	st->st_nlink = 1;
	st->st_uid = d->uid;
	st->st_gid = d->gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = d->created;
}

/* What a draft node shows readers: the live head, or an empty file for a
 * path not yet committed. */
static int attr_of_draft(const struct draft *d, const char *path, struct stat *st, fuse_ino_t ino)
{
	vc_entry ve;
	if (d && d->pending) {
		attr_of_pending(st, d, ino);
		return 0;
	}
	int rc = vc_lookup(fs.store, path, &ve);
	if (rc)
		return rc;
	attr_from_entry(st, &ve);
	return 0;
}

/* The entry of path's draft node: the inode writers use.  The kernel
 * changes its size as they write, so its attributes are never cached. */
static int draft_entry(const char *path, struct draft *d, struct fuse_entry_param *e)
{
	struct node *n = node_get(N_DRAFT, path, 0);
	if (!n)
		return -ENOMEM;
	int rc = attr_of_draft(d, path, &n->attr, n->ino);
	if (rc) {
		node_forget(n, 1);
		return rc;
	}
	e->attr_timeout = 0;
	/* For an existing file, only the writer being redirected gets it;
	 * everyone else's next walk looks again and finds the version. */
	if (!d->pending)
		e->entry_timeout = 0;
	e->ino = n->ino;
	e->attr = n->attr;
	return 0;
}

/*
 * The entry a lookup of path by process pid answers, creating its node.
 * A name points to the version node of its head: readers always read
 * immutable versions through the page cache.  Writers are kept off those
 * inodes (see redirect_writer): a writer being redirected, and everyone
 * for a created file not committed yet, get the draft node.  A path that
 * does not exist gives a negative entry (ino 0), cached like any other:
 * head moves invalidate it.
 */
static int entry_for_path(const char *path, pid_t pid, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = ENTRY_TIMEOUT;
	e->attr_timeout = ENTRY_TIMEOUT;
	struct draft *d = draft_find(path);
	if (d && draft_drop_stale_reservation(d))
		d = NULL;
	if (d && (d->pending || pidset_has(&d->redirected, pid)))
		return draft_entry(path, d, e);
	vc_entry ve;
	int rc = vc_lookup(fs.store, path, &ve);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	struct node *n = ve.head.kind == VC_DIR ? node_get(N_DIR, path, 0)
						: node_get(N_FILE, path, ve.head.id);
	if (!n)
		return -ENOMEM;
	attr_from_entry(&n->attr, &ve);
	e->ino = n->ino;
	e->attr = n->attr;
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static void lock(void)
{
	fs_lock();
}

/* For requests that change nothing in the store. */
static void unlock(void)
{
	fs_unlock();
}

/*
 * Release fs.lock after a change of names (p1, p2).  If the store made the
 * change but could not sync it, the request fails, and the kernel, told
 * so, keeps its old view of those names: they are dropped from its cache
 * once the reply is sent (the kernel holds their directories' locks until
 * then: the caller passes iv to invalidate_later after replying), and the
 * lookup the reply's entry e would have handed over is taken back.
 */
static int unlock_names(int rc, const char *p1, const char *p2,
			const struct fuse_entry_param *e, struct invals *iv)
{
	int synced = fs_unlock();
	if (rc || !synced)
		return rc;
	lock();
	struct node *n = e && e->ino ? node_by_ino(e->ino) : NULL;
	if (n)
		node_forget(n, 1);
	if (p1)
		inval_path(iv, p1);
	if (p2)
		inval_path(iv, p2);
	unlock();
	return synced;
}

static int child_path(fuse_ino_t parent, const char *name, char **out)
{
	struct node *p = node_by_ino(parent);
	if (!p || (p->kind == N_DIR && !p->path))
		return -ENOENT;
	if (p->kind != N_DIR)
		return is_meta(p) ? -EROFS : -ENOTDIR;
	if (!*p->path && (!strcmp(name, CONTROL_NAME) || !strcmp(name, VERSIONS_NAME)))
		return -EPERM;
	if (strlen(name) > VC_NAME_MAX)
		return -ENAMETOOLONG;
	*out = path_join(p->path, name);
	return *out ? 0 : -ENOMEM;
}

/* Owner of a new file or directory: the caller, with the group of a
 * set-group-ID parent directory, as on a local filesystem. */
static void new_owner(fuse_req_t req, const char *path, uint32_t *uid, uint32_t *gid,
		      uint32_t *mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	*uid = ctx->uid;
	*gid = ctx->gid;
	char *dir = path_dir(path);
	vc_entry pe;
	if (dir && vc_lookup(fs.store, dir, &pe) == 0 && (pe.head.mode & S_ISGID)) {
		*gid = pe.head.gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	free(dir);
}

static void reply_entry_or_err(fuse_req_t req, int rc, const struct fuse_entry_param *e)
{
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, e);
}

/* Commit draft d as a's.  On a head move the name is re-looked up: to
 * the draft node while writers remain, to the new version's node after. */
static int commit_draft(struct draft *d, const vc_actor *a, struct invals *iv)
{
	bool moved;
	int rc = draft_commit(d, a, &moved);
	if (!rc && moved)
		inval_path(iv, d->path);
	return rc;
}

/* Commit a handle's draft, as the caller's. */
static int commit_handle(fuse_req_t req, struct handle *h, struct invals *iv)
{
	vc_actor a;
	actor_of(req, &a);
	/* The kernel sends the last release of a file on its own (pid 0):
	 * the version is the last writer's. */
	if (!a.pid && h->draft->actor.pid)
		a = h->draft->actor;
	int rc = commit_draft(h->draft, &a, iv);
	handle_committed(h);
	return rc;
}

/* ---- lookup and attributes -------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	char *path = NULL;
	int rc;
	lock();
	struct node *p = node_by_ino(parent);
	if (p && is_meta(p))
		rc = meta_lookup(p, name, &e);
	else if (p && p->ino == FUSE_ROOT_ID &&
		 (!strcmp(name, CONTROL_NAME) || !strcmp(name, VERSIONS_NAME)))
		rc = meta_lookup_root(name, &e);
	else if ((rc = child_path(parent, name, &path)) == 0)
		rc = entry_for_path(path, fuse_req_ctx(req)->pid, &e);
	unlock();
	free(path);
	reply_entry_or_err(req, rc, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	lock();
	struct node *n = node_by_ino(ino);
	if (n)
		node_forget(n, nlookup);
	unlock();
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	lock();
	for (size_t i = 0; i < count; i++) {
		struct node *n = node_by_ino(forgets[i].ino);
		if (n)
			node_forget(n, forgets[i].nlookup);
	}
	unlock();
	fuse_reply_none(req);
}

/*
 * Attributes of a node.  A version node shows its version, fixed at
 * lookup.  A draft node shows readers the live head; a writer sees its
 * draft's size: through its handle when the kernel passes one, and by its
 * pid otherwise (fstat carries no handle).  A draft node whose name was
 * replaced or removed keeps its last attributes, with no links, as an
 * unlinked file does, and its writers still see their size.  An open
 * being retried on it (see redirect_writer) needs them too, and then goes
 * on to what the name shows now: this once failed such opens with ENOENT.
 */
static int node_attr(struct node *n, struct fuse_file_info *fi, pid_t pid, struct stat *st)
{
	if (is_meta(n))
		return meta_getattr(n, st);
	if (n->kind == N_DIR && !n->path)
		return -ENOENT;
	if (n->kind == N_DIR) {
		vc_entry ve;
		int rc = vc_lookup(fs.store, n->path, &ve);
		if (rc)
			return rc;
		attr_from_entry(&n->attr, &ve);
	}
	struct handle *h = fi ? handle_of(fi) : NULL;
	if (n->kind == N_DRAFT && !n->path && !(h && h->kind == H_WRITE))
		h = writer_on(n->ino, pid);
	struct draft *d = n->kind != N_DRAFT ? NULL : h && h->kind == H_WRITE ? h->draft
					: n->path ? draft_find(n->path) : NULL;
	if (n->kind == N_DRAFT && n->path) {
		int rc = attr_of_draft(d, n->path, &n->attr, n->ino);
		if (rc)
			return rc;
	}
	*st = n->attr;
	if (d && ((h && h->kind == H_WRITE) || pidset_has(&d->writers, pid))) {
		st->st_size = (off_t)d->len;
		st->st_blocks = (st->st_size + 511) / 512;
	}
	return 0;
}

/* Draft nodes change under writers: their attributes are never cached. */
static double attr_timeout_of(const struct node *n)
{
	return n->kind == N_DRAFT ? 0 : ENTRY_TIMEOUT;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	lock();
	struct node *n = node_by_ino(ino);
	int rc = n ? node_attr(n, fi, fuse_req_ctx(req)->pid, &st) : -ENOENT;
	double timeout = n ? attr_timeout_of(n) : 0;
	unlock();
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ns_of(ts);
}

/*
 * A file whose name was replaced or removed since the kernel looked it up
 * (a rename over it between the lookup and truncate(2), chmod(2) or
 * utimes(2)) is, on a local filesystem, an inode nobody can reach any
 * more: the change lands there, and succeeds.  Here it succeeds and
 * changes nothing: versions are immutable, and the name's new file is not
 * the one the caller meant.  Handles keep their own drafts (ftruncate).
 */
static bool name_gone(const struct node *n)
{
	return !n->path && n->kind != N_DIR;
}

/* truncate(2) without a handle commits at once; through a handle
 * (ftruncate) it changes that handle's draft.  A version node is answered
 * with its own, unchanged size (do_setattr), so the kernel keeps its pages
 * for the readers still on it; the name moves to the new version. */
static int set_size(fuse_req_t req, struct node *n, struct handle *h, off_t size,
		    struct invals *iv)
{
	if (n->kind == N_DIR)
		return -EISDIR;
	if (h && h->kind == H_WRITE) {
		h->truncated_by = fuse_req_ctx(req)->pid;
		return draft_truncate(h->draft, size);
	}
	if (name_gone(n))
		return 0;
	struct draft *d;
	int rc = draft_open(n->path, false, false, &d);
	if (rc)
		return rc;
	struct handle tmp = { .kind = H_WRITE, .draft = d };
	rc = draft_truncate(d, size);
	if (!rc)
		rc = commit_handle(req, &tmp, iv);
	draft_put(d);
	return rc;
}

/* The mode and owner a draft's first (or superseded) version gets. */
static void set_draft_owner_mode(struct draft *d, const struct stat *attr, int to_set)
{
	if (to_set & FUSE_SET_ATTR_MODE)
		d->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		d->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		d->gid = attr->st_gid;
}

/* chmod and chown make a new version with the same content, so permission
 * changes are audited and can be rolled back.  The node keeps showing the
 * same bytes, so it simply becomes the new version's node. */
static int set_owner_mode(fuse_req_t req, struct node *n, const struct stat *attr, int to_set)
{
	struct draft *d = n->path ? draft_find(n->path) : NULL;
	if (d && d->pending) {
		set_draft_owner_mode(d, attr, to_set);
		attr_of_pending(&n->attr, d, n->ino);
		return 0;
	}
	if (name_gone(n))
		return 0;
	if (!n->path)
		return -ENOENT;
	vc_entry ve;
	int rc = vc_lookup(fs.store, n->path, &ve);
	if (rc)
		return rc;
	vc_actor a;
	actor_of(req, &a);
	bool owner = to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
	vc_commit_req c = {
		.path = n->path, .kind = ve.head.kind, .op = owner ? VC_OP_CHOWN : VC_OP_CHMOD,
		.same_content_as = ve.head.kind == VC_DIR ? 0 : ve.head.id,
		.mode = to_set & FUSE_SET_ATTR_MODE ? attr->st_mode & 07777 : ve.head.mode,
		.uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : ve.head.uid,
		.gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : ve.head.gid,
		.status = VC_ACCEPTED, .actor = &a,
	};
	vc_id id;
	rc = store_check();
	if (!rc)
		rc = store_result(vc_commit(fs.store, &c, &id, NULL), vc_op_name(c.op), n->path);
	if (rc)
		return rc;
	/* A commit stamps the path's mtime; chmod and chown change ctime only
	 * (rsync -a sets times, then modes). */
	if (vc_set_times(fs.store, n->path, -1, ve.mtime_ns) != 0)
		log_msg(LOG_WARNING, "mtime of %s not kept: %s", n->path, vc_errmsg(fs.store));
	if (n->kind == N_FILE && n->version == ve.head.id)
		node_rekey(n, N_FILE, n->path, id);
	log_msg(LOG_INFO, "%s %s version %lld mode %04o owner %u:%u", vc_op_name(c.op), n->path,
		(long long)id, c.mode, c.uid, c.gid);
	return 0;
}

static int set_times(struct node *n, const struct stat *attr, int to_set)
{
	int64_t now = now_ns();
	int64_t at = to_set & FUSE_SET_ATTR_ATIME_NOW ? now
		     : to_set & FUSE_SET_ATTR_ATIME   ? ns_of(attr->st_atim)
						      : -1;
	int64_t mt = to_set & FUSE_SET_ATTR_MTIME_NOW ? now
		     : to_set & FUSE_SET_ATTR_MTIME   ? ns_of(attr->st_mtim)
						      : -1;
	struct draft *d = n->path ? draft_find(n->path) : NULL;
	/* cp -p sets times through the handle before it closes: the commit
	 * would stamp them over, so they are applied after it. */
	if (d && (d->pending || d->dirty)) {
		if (at >= 0)
			d->atime_ns = at;
		if (mt >= 0)
			d->mtime_ns = mt;
		return 0;
	}
	if (name_gone(n))
		return 0;
	if (!n->path)
		return -ENOENT;
	int rc = store_check();
	return rc ? rc : store_result(vc_set_times(fs.store, n->path, at, mt), "utimens", n->path);
}

static int do_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
		      struct fuse_file_info *fi, struct invals *iv)
{
	struct handle *h = fi ? handle_of(fi) : NULL;
	int rc = 0;
	if (n->kind == N_CONTROL)
		return to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
				  FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)
			       ? -EPERM
			       : meta_getattr(n, attr);
	if (is_meta(n))
		return -EROFS;
	/* fchmod, fchown and futimens carry no handle (ftruncate does): the
	 * caller's, if it writes through this draft node. */
	struct handle *w = h || n->kind != N_DRAFT ? h : writer_on(n->ino, fuse_req_ctx(req)->pid);
	struct draft *orphan = w && w->kind == H_WRITE && w->draft->orphaned ? w->draft : NULL;
	bool owner_mode = to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
	if (to_set & FUSE_SET_ATTR_SIZE)
		rc = set_size(req, n, h, attr->st_size, iv);
	/* fchmod/fchown through a write handle whose draft left its path (a
	 * rename over it, a .control switch) change that draft only, as on a
	 * local filesystem they would change the replaced file: a superseded
	 * draft's bytes become a version with that mode and owner.  futimens
	 * changes nothing. */
	if (!rc && owner_mode && orphan)
		set_draft_owner_mode(orphan, attr, to_set);
	else if (!rc && owner_mode)
		rc = set_owner_mode(req, n, attr, to_set);
	if (!rc && !orphan && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
					 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		rc = set_times(n, attr, to_set);
	if (rc)
		return rc;
	/* A version node that still shows the head (chmod, chown and utimens
	 * re-key it) takes the path's new times and modes. */
	vc_entry ve;
	if (n->kind == N_FILE && n->path && vc_lookup(fs.store, n->path, &ve) == 0 &&
	    ve.head.id == n->version)
		attr_from_entry(&n->attr, &ve);
	return node_attr(n, fi, fuse_req_ctx(req)->pid, attr);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct invals iv = { 0 };
	lock();
	struct node *n = node_by_ino(ino);
	int rc = n ? do_setattr(req, n, attr, to_set, fi, &iv) : -ENOENT;
	struct reply r = { .req = req, .kind = REPLY_ATTR, .err = rc, .attr = *attr,
			   .timeout = n ? attr_timeout_of(n) : 0, .ino = ino };
	unlock_reply(&iv, &r);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	void *buf = NULL;
	size_t len = 0;
	lock();
	struct node *n = node_by_ino(ino);
	int rc = !n ? -ENOENT : n->kind != N_FILE || !S_ISLNK(n->attr.st_mode) ? -EINVAL
			 : vc_read_content(fs.store, n->version, &buf, &len);
	unlock();
	char *target = rc ? NULL : strndup(buf ? buf : "", len);
	free(buf);
	if (!rc && !target)
		rc = -ENOMEM;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

/* ---- creating and removing names -------------------------------------- */

/* A directory or symlink: committed at once, as one version. */
static int make_name(fuse_req_t req, const char *path, enum vc_kind kind, mode_t mode,
		     const char *target, struct fuse_entry_param *e)
{
	vc_actor a;
	actor_of(req, &a);
	uint32_t uid, gid, m = (kind == VC_DIR ? S_IFDIR : S_IFLNK) | (mode & 07777);
	new_owner(req, path, &uid, &gid, &m);
	vc_entry ve;
	if (draft_find(path) || vc_lookup(fs.store, path, &ve) == 0)
		return -EEXIST;
	int rc = store_check();
	if (rc)
		return rc;
	vc_commit_req c = { .path = path, .kind = kind,
			    .op = kind == VC_DIR ? VC_OP_MKDIR : VC_OP_SYMLINK,
			    .data = target, .len = target ? strlen(target) : 0, .mode = m & 07777,
			    .uid = uid, .gid = gid, .status = VC_ACCEPTED, .actor = &a };
	rc = store_result(vc_commit(fs.store, &c, NULL, NULL), vc_op_name(c.op), path);
	return rc ? rc : entry_for_path(path, fuse_req_ctx(req)->pid, e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	char *path = NULL;
	lock();
	int rc = child_path(parent, name, &path);
	struct invals iv = { 0 };
	if (!rc)
		rc = make_name(req, path, VC_DIR, mode, NULL, &e);
	rc = unlock_names(rc, path, NULL, &e, &iv);
	free(path);
	reply_entry_or_err(req, rc, &e);
	invalidate_later(&iv);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	char *path = NULL;
	lock();
	int rc = child_path(parent, name, &path);
	struct invals iv = { 0 };
	if (!rc)
		rc = make_name(req, path, VC_SYMLINK, 0777, link, &e);
	rc = unlock_names(rc, path, NULL, &e, &iv);
	free(path);
	reply_entry_or_err(req, rc, &e);
	invalidate_later(&iv);
}

static void detach_exact(struct node *n, void *ctx)
{
	if (n->path && !strcmp(n->path, ctx))
		node_detach(n);
}

static void detach_all(struct node *n, void *ctx)
{
	(void)ctx;
	node_detach(n);
}

static void mark_found(struct draft *d, void *ctx)
{
	(void)d;
	*(bool *)ctx = true;
}

static int remove_name(fuse_req_t req, const char *path, bool dir)
{
	struct draft *d = draft_find(path);
	if (d && d->pending) {
		if (dir)
			return -ENOTDIR;
		draft_unlink(path);
		nodes_under(path, detach_exact, (void *)path);
		return 0;
	}
	vc_entry ve;
	int rc = vc_lookup(fs.store, path, &ve);
	if (rc)
		return rc;
	if (dir && ve.head.kind != VC_DIR)
		return -ENOTDIR;
	if (!dir && ve.head.kind == VC_DIR)
		return -EISDIR;
	bool pending_child = false;
	if (dir)
		drafts_pending_in(path, mark_found, &pending_child);
	if (pending_child)
		return -ENOTEMPTY;
	vc_actor a;
	actor_of(req, &a);
	rc = store_check();
	if (!rc)
		rc = store_result(vc_delete(fs.store, path, &a), "delete", path);
	if (rc)
		return rc;
	draft_unlink(path);
	nodes_under(path, detach_exact, (void *)path);
	log_msg(LOG_INFO, "delete %s (was version %lld) by uid %u pid %d %s", path,
		(long long)ve.head.id, a.uid, a.pid, a.comm);
	return 0;
}

static void remove_op(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	char *path = NULL;
	lock();
	int rc = child_path(parent, name, &path);
	struct invals iv = { 0 };
	if (!rc)
		rc = remove_name(req, path, dir);
	rc = unlock_names(rc, path, NULL, NULL, &iv);
	free(path);
	fuse_reply_err(req, -rc);
	invalidate_later(&iv);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_op(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_op(req, parent, name, true);
}

/* Make pid's next lookup of path find the draft node (see redirect_writer). */
static void redirect_pid(const char *path, pid_t pid)
{
	struct draft *d;
	if (draft_reserve(path, &d) == 0)
		pidset_add(&d->redirected, pid);
}

/* A file still pending (created, not yet closed) has no version to move:
 * commit what it holds first, so the rename carries it. */
static int commit_pending(fuse_req_t req, const char *path)
{
	struct draft *d = draft_find(path);
	if (!d || !d->pending)
		return 0;
	struct handle tmp = { .kind = H_WRITE, .draft = d };
	struct invals iv = { 0 };
	int rc = commit_handle(req, &tmp, &iv);
	/* The rename or link that follows tells the kernel itself. */
	invals_free(&iv);
	return rc;
}

struct moved {
	const char *from, *to;
	size_t flen;
	struct invals *iv;
};

/* After a rename, a node below from shows the same bytes at the new path.
 * The node that showed from's head shows the new version at to, with the
 * new path's attributes (st_ino is the path's): the kernel, which keeps
 * the attributes it had under the old name, is told to ask again, or a
 * stat after sed -i would show another inode number than the fstat of
 * the next open (vim refuses to save then). */
static void move_node(struct node *n, void *ctx)
{
	const struct moved *m = ctx;
	char *np = n->path[m->flen] ? path_join(m->to, n->path + m->flen + 1) : strdup(m->to);
	if (!np)
		return;
	vc_entry ve;
	if (n->kind == N_FILE) {
		bool head = vc_lookup(fs.store, np, &ve) == 0 && ve.head.source == n->version;
		node_rekey(n, N_FILE, np, head ? ve.head.id : n->version);
		if (head)
			attr_from_entry(&n->attr, &ve);
		inval_node_attrs(m->iv, n->ino);
	} else {
		node_rekey(n, n->kind, np, n->version);
	}
	free(np);
}

/*
 * The JSON gate also guards names that get their bytes by rename or link
 * (sed -i, mv, ln -f): bytes that would be rejected by a commit to `to` are
 * kept as a rejected version of `to`, and the move fails with EINVAL,
 * leaving `from` as it was.
 */
static int gate_move(const char *from, const char *to, enum vc_op op, const vc_actor *a)
{
	vc_entry src;
	if (fs.validate == VALIDATE_OFF || !is_json_path(to) || vc_lookup(fs.store, from, &src) ||
	    src.head.kind != VC_FILE)
		return 0;
	void *buf = NULL;
	size_t len = 0;
	char reason[VC_REASON_MAX];
	int rc = vc_read_content(fs.store, src.head.id, &buf, &len);
	if (rc || gate_check(to, buf ? buf : "", len, reason, sizeof(reason)) == 0) {
		free(buf);
		return rc;
	}
	if (fs.validate == VALIDATE_WARN) {
		log_msg(LOG_WARNING, "accepted %s %s -> %s despite: %s (validate=warn)",
			vc_op_name(op), from, to, reason);
		free(buf);
		return 0;
	}
	vc_id id;
	vc_commit_req c = { .path = to, .kind = VC_FILE, .op = op, .data = buf, .len = len,
			    .mode = src.head.mode, .uid = src.head.uid, .gid = src.head.gid,
			    .source = src.head.id, .status = VC_REJECTED, .reason = reason,
			    .actor = a };
	/* Keeping the rejected bytes is a change too: not on a store that
	 * refuses changes. */
	rc = store_check();
	if (!rc)
		rc = store_result(vc_commit(fs.store, &c, &id, NULL), "reject", to);
	free(buf);
	if (rc)
		return rc;
	note_rejection(to, id, reason, a);
	return -EINVAL;
}

/* A directory renamed over directory to: the store checks that to holds
 * nothing committed; files created in it and not committed yet count too,
 * as they do for rmdir. */
static int dir_target_empty(const char *to)
{
	vc_entry dst;
	bool pending_child = false;
	if (vc_lookup(fs.store, to, &dst) == 0 && dst.head.kind == VC_DIR)
		drafts_pending_in(to, mark_found, &pending_child);
	return pending_child ? -ENOTEMPTY : 0;
}

static int do_rename(fuse_req_t req, const char *from, const char *to, unsigned flags,
		     struct invals *iv)
{
	int rc = commit_pending(req, from);
	if (rc)
		return rc;
	vc_actor a;
	vc_entry src;
	actor_of(req, &a);
	rc = gate_move(from, to, VC_OP_RENAME, &a);
	if (!rc)
		rc = vc_lookup(fs.store, from, &src);
	if (!rc && src.head.kind == VC_DIR)
		rc = dir_target_empty(to);
	if (!rc)
		rc = store_check();
	if (!rc)
		rc = store_result(vc_rename(fs.store, from, to,
					    flags & RENAME_NOREPLACE ? VC_RENAME_NOREPLACE : 0, &a),
				  "rename", from);
	if (rc)
		return rc;
	/* rename(2) keeps the file's times; the store's new version at the
	 * target would carry the time of the move.  The rename is done
	 * whatever happens here. */
	if (vc_set_times(fs.store, to, src.atime_ns, src.mtime_ns) != 0)
		log_msg(LOG_WARNING, "times of %s not kept: %s", to, vc_errmsg(fs.store));
	/* The replaced target's nodes lose their name first, so the moved
	 * nodes can take their keys. */
	nodes_under(to, detach_all, NULL);
	struct moved m = { from, to, strlen(from), iv };
	nodes_under(from, move_node, &m);
	/* A writer still open on the replaced file writes into nothing, as
	 * on a local filesystem; one being redirected goes to the new file. */
	struct pidset redirected = draft_replace(to);
	drafts_rename(from, to);
	for (size_t i = 0; i < PIDSET_MAX; i++)
		if (redirected.pid[i])
			redirect_pid(to, redirected.pid[i]);
	log_msg(LOG_INFO, "rename %s -> %s by uid %u pid %d %s", from, to, a.uid, a.pid, a.comm);
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	char *from = NULL, *to = NULL;
	int rc = flags & ~RENAME_NOREPLACE ? -EINVAL : 0;
	lock();
	if (!rc)
		rc = child_path(parent, name, &from);
	if (!rc)
		rc = child_path(newparent, newname, &to);
	struct invals iv = { 0 };
	if (!rc)
		rc = do_rename(req, from, to, flags, &iv);
	rc = unlock_names(rc, from, to, NULL, &iv);
	free(from);
	free(to);
	fuse_reply_err(req, -rc);
	invalidate_later(&iv);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fuse_entry_param e;
	char *to = NULL;
	lock();
	struct node *n = node_by_ino(ino);
	int rc = !n || !n->path ? -ENOENT : is_meta(n) ? -EPERM : n->kind == N_DIR ? -EPERM : 0;
	if (!rc)
		rc = child_path(newparent, newname, &to);
	if (!rc)
		rc = commit_pending(req, n->path);
	vc_actor a;
	actor_of(req, &a);
	if (!rc)
		rc = gate_move(n->path, to, VC_OP_LINK, &a);
	if (!rc)
		rc = store_check();
	if (!rc)
		rc = store_result(vc_link(fs.store, n->path, to, &a, NULL), "link", to);
	if (!rc)
		rc = entry_for_path(to, fuse_req_ctx(req)->pid, &e);
	if (!rc)
		log_msg(LOG_INFO, "link %s -> %s (copy-on-write clone) by uid %u pid %d %s", n->path,
			to, a.uid, a.pid, a.comm);
	struct invals iv = { 0 };
	rc = unlock_names(rc, to, NULL, &e, &iv);
	free(to);
	reply_entry_or_err(req, rc, &e);
	invalidate_later(&iv);
}

/* ---- files ------------------------------------------------------------ */

static struct handle *handle_new(enum handle_kind kind)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->kind = kind;
	h->next = open_handles;
	if (open_handles)
		open_handles->prev = h;
	open_handles = h;
	return h;
}

static void handle_free(struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		open_handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h->content);
	free(h);
}

/* A write handle h, whose draft is open, becomes fi's, on inode ino. */
static void attach_writer(fuse_req_t req, struct handle *h, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	h->ino = ino;
	h->append = fi->flags & O_APPEND;
	h->pid = fuse_req_ctx(req)->pid;
	actor_of(req, &h->draft->actor);
	h->draft->actor_thread = h->pid;
	pidset_add(&h->draft->writers, h->pid);
	pidset_remove(&h->draft->redirected, h->pid);
	/* Draft bytes must never enter the page cache readers share. */
	fi->direct_io = 1;
	fi->fh = (uintptr_t)h;
}

/* The path a write handle on n writes to.  A draft node whose name was
 * replaced by a rename between the lookup and this open (a redirected
 * open is not retried again) writes to what the name shows now. */
static const char *write_path(const struct node *n, int flags)
{
	vc_entry ve;
	if (n->path || n->kind != N_DRAFT || !n->last_path)
		return n->path;
	if ((flags & O_CREAT) || draft_find(n->last_path) ||
	    vc_lookup(fs.store, n->last_path, &ve) == 0)
		return n->last_path;
	return NULL;
}

static int open_for_write(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	const char *path = write_path(n, fi->flags);
	if (!path)
		return -ENOENT;
	struct handle *h = handle_new(H_WRITE);
	if (!h)
		return -ENOMEM;
	bool trunc = fi->flags & O_TRUNC;
	struct draft *d = draft_find(path);
	pid_t pid = fuse_req_ctx(req)->pid;
	int rc = draft_open(path, trunc, d && pidset_has(&d->redirected, pid), &h->draft);
	if (rc) {
		handle_free(h);
		return rc;
	}
	attach_writer(req, h, n->ino, fi);
	return 0;
}

/* The version a reader of a draft node reads: the live head when it opens
 * (0, empty, for a file not committed yet). */
static vc_id draft_node_version(const struct node *n)
{
	struct draft *d = draft_find(n->path);
	vc_entry ve;
	if ((d && d->pending) || vc_lookup(fs.store, n->path, &ve) != 0)
		return 0;
	return ve.head.kind == VC_FILE ? ve.head.id : 0;
}

/*
 * A draft node is the writers' inode, read around the page cache, where
 * mmap(2) fails with ENODEV.  A reader reaches one only through a name the
 * kernel has not looked up since the draft was committed: a file created,
 * closed and renamed over another before the kernel had the commit's
 * invalidation (it arrives after the close when the notifier is slow).  A
 * fresh lookup by this reader finds the name's version node, so the open
 * is answered ESTALE, on which the kernel looks the name up again and
 * retries once.  The same reader back on the same draft node is served as
 * it is: no open is sent back twice in a row.
 */
static bool reader_should_look_again(struct node *n, pid_t pid)
{
	struct draft *d = draft_find(n->path);
	vc_entry ve;
	if (n->told_to_look_again == pid) {
		n->told_to_look_again = 0;
		return false;
	}
	if ((d && (d->pending || pidset_has(&d->redirected, pid) ||
		   pidset_has(&d->writers, pid))) ||
	    vc_lookup(fs.store, n->path, &ve) != 0 || ve.head.kind != VC_FILE)
		return false;
	n->told_to_look_again = pid;
	return true;
}

static int open_for_read(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	if (n->kind == N_DRAFT && n->path && reader_should_look_again(n, fuse_req_ctx(req)->pid))
		return -ESTALE;
	struct handle *h = handle_new(H_READ);
	if (!h)
		return -ENOMEM;
	bool version = n->kind == N_FILE || n->kind == N_VFILE;
	if (!version && !n->path) {
		handle_free(h);
		return -ENOENT;
	}
	h->version = version ? n->version : draft_node_version(n);
	/* A version never changes: its cached pages stay valid for ever.  A
	 * draft node's size is the writers'; read it around the cache. */
	if (version)
		fi->keep_cache = 1;
	else
		fi->direct_io = 1;
	/* A reader's close commits nothing: spare it the FLUSH round trip. */
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

/*
 * Opening a version node for writing would let the kernel truncate and
 * resize the very inode its readers use (O_TRUNC sets its size to 0, each
 * write grows it), and readers would see torn files.  So the writer is
 * sent to the path's draft node instead: reserve the draft, so that the
 * name now resolves to the draft node, and answer ESTALE, on which the
 * kernel looks the name up again and retries the open once.
 */
static int redirect_writer(fuse_req_t req, struct node *n, int flags)
{
	/* A name replaced or removed between the caller's lookup and this
	 * open: look again, and write to what the name shows now (or create
	 * it anew, with O_CREAT). */
	const char *path = n->path ? n->path : n->last_path;
	vc_entry ve;
	if (!path)
		return -ENOENT;
	if (n->path || draft_find(path) || vc_lookup(fs.store, path, &ve) == 0)
		redirect_pid(path, fuse_req_ctx(req)->pid);
	else if (!(flags & O_CREAT))
		return -ENOENT;
	return -ESTALE;
}

/*
 * A version's bytes never change, so the first open of its inode can put
 * them straight into the kernel's page cache (notify_store) before the
 * open is answered: the reads that follow need no round trip.  Only the
 * first open of each inode: after that the kernel keeps the pages
 * (keep_cache) unless memory pressure evicts them, and then it reads them
 * back as usual.  Large files are left to be read as needed.
 */
#define FILL_MAX (256u << 10)

static int read_version(struct handle *h, const char **data, size_t *len);

/* Under fs.lock: whether to fill n's cache from fi's handle (loaded now). */
static bool should_fill_cache(struct node *n, struct fuse_file_info *fi)
{
	if (n->kind != N_FILE || n->cache_filled)
		return false;
	struct handle *h = handle_of(fi);
	const char *data;
	size_t len;
	if (h->kind != H_READ || !h->version || n->attr.st_size > FILL_MAX ||
	    read_version(h, &data, &len) != 0 || !len)
		return false;
	n->cache_filled = true;
	return true;
}

/* With fs.lock released: the kernel may wait for a page that a reader
 * locked while its READ, which needs fs.lock, is being answered. */
static void fill_cache(fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(h->len);
	bv.buf[0].mem = h->content;
	/* A failure costs nothing but the round trips it meant to save: the
	 * kernel reads what it lacks. */
	fuse_lowlevel_notify_store(fs.se, ino, 0, &bv, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	lock();
	struct node *n = node_by_ino(ino);
	bool fill = false;
	int rc;
	if (!n)
		rc = -ENOENT;
	else if (n->kind == N_VFILE)
		rc = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) ? -EROFS
										: open_for_read(req, n, fi);
	else if (is_meta(n))
		rc = meta_open(n, fi);
	else if (n->kind == N_DIR)
		rc = -EISDIR;
	else if ((fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC))
		rc = open_for_read(req, n, fi);
	else if (n->kind == N_FILE)
		rc = redirect_writer(req, n, fi->flags);
	else
		rc = open_for_write(req, n, fi);
	if (!rc)
		fill = should_fill_cache(n, fi);
	unlock();
	if (fill)
		fill_cache(ino, fi);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_open(req, fi);
}

static int do_create(fuse_req_t req, const char *path, mode_t mode, struct fuse_file_info *fi,
		     struct fuse_entry_param *e)
{
	int rc = entry_for_path(path, fuse_req_ctx(req)->pid, e);
	if (rc)
		return rc;
	if (e->ino) {
		/* It appeared since the kernel looked: open it as it is, through
		 * its draft node (see redirect_writer). */
		struct node *n = node_by_ino(e->ino);
		rc = fi->flags & O_EXCL ? -EEXIST : S_ISDIR(n->attr.st_mode) ? -EISDIR : 0;
		if (!rc && n->kind == N_FILE) {
			struct draft *d;
			node_forget(n, 1);
			rc = draft_reserve(path, &d);
			if (!rc) {
				pidset_add(&d->redirected, fuse_req_ctx(req)->pid);
				rc = draft_entry(path, d, e);
			}
			n = rc ? NULL : node_by_ino(e->ino);
		}
		if (!rc)
			rc = open_for_write(req, n, fi);
		if (rc && n)
			node_forget(n, 1);
		return rc;
	}
	char *dir = path_dir(path);
	vc_entry pe;
	rc = dir ? vc_lookup(fs.store, dir, &pe) : -ENOMEM;
	free(dir);
	if (rc)
		return rc;
	uint32_t uid, gid, m = S_IFREG | (mode & 07777);
	new_owner(req, path, &uid, &gid, &m);
	struct handle *h = handle_new(H_WRITE);
	if (!h)
		return -ENOMEM;
	/* The name exists for everyone at once (O_EXCL lock files rely on it),
	 * but the first version is committed only at close: one create,
	 * write, close makes exactly one version. */
	/* A draft left open on a path that a .control switch removed: its
	 * writers write into nothing, as after an unlink. */
	if (draft_find(path))
		draft_unlink(path);
	rc = draft_create(path, m & 07777, uid, gid, &h->draft);
	if (!rc)
		rc = entry_for_path(path, fuse_req_ctx(req)->pid, e);
	if (rc) {
		if (h->draft)
			draft_put(h->draft);
		handle_free(h);
		return rc;
	}
	attach_writer(req, h, e->ino, fi);
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	char *path = NULL;
	lock();
	int rc = child_path(parent, name, &path);
	if (!rc)
		rc = do_create(req, path, mode, fi, &e);
	unlock();
	free(path);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_create(req, &e, fi);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		/* FIFOs, sockets and device nodes have no place in a config tree. */
		fuse_reply_err(req, EPERM);
		return;
	}
	struct fuse_entry_param e;
	struct fuse_file_info fi = { .flags = O_WRONLY | O_CREAT | O_EXCL };
	struct invals iv = { 0 };
	char *path = NULL;
	lock();
	int rc = child_path(parent, name, &path);
	if (!rc)
		rc = do_create(req, path, mode, &fi, &e);
	if (!rc) {
		struct handle *h = handle_of(&fi);
		rc = commit_handle(req, h, &iv);
		draft_put(h->draft);
		handle_free(h);
		if (rc)
			node_forget(node_by_ino(e.ino), 1);
	}
	/* The kernel holds the directory's lock until this reply and makes
	 * the entry from it: the new name needs no invalidation, except when
	 * the commit could not be synced (unlock_names: after the reply). */
	invals_free(&iv);
	rc = unlock_names(rc, path, NULL, &e, &iv);
	free(path);
	reply_entry_or_err(req, rc, &e);
	invalidate_later(&iv);
}

static int read_version(struct handle *h, const char **data, size_t *len)
{
	if (!h->loaded && h->version) {
		void *buf;
		int rc = vc_read_content(fs.store, h->version, &buf, &h->len);
		if (rc)
			return rc;
		h->content = buf;
	}
	h->loaded = true;
	*data = h->content;
	*len = h->len;
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	const char *data = NULL;
	(void)size;
	size_t len = 0;
	char *meta = NULL;
	int rc = 0;
	lock();
	struct node *n = node_by_ino(ino);
	if (n && n->kind == N_CONTROL) {
		rc = meta_read(n, fi, &meta, &len);
		data = meta;
	} else if (h->kind == H_READ) {
		rc = read_version(h, &data, &len);
	} else {
		data = h->draft->buf;
		len = h->draft->len;
	}
	if (!rc) {
		size_t from = (size_t)off < len ? (size_t)off : len;
		size_t n = len - from < size ? len - from : size;
		/* Reply while locked: the draft buffer may move after unlock. */
		fuse_reply_buf(req, data ? data + from : NULL, n);
	}
	unlock();
	free(meta);
	if (rc)
		fuse_reply_err(req, -rc);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct invals iv = { 0 };
	size_t written = 0;
	int rc;
	lock();
	struct node *n = node_by_ino(ino);
	if (n && n->kind == N_CONTROL) {
		rc = meta_write(req, buf, size, &iv);
		written = size;
	} else if (h->kind == H_WRITE) {
		rc = draft_write(h->draft, buf, size, off, h->append, &written);
		if (!rc) {
			/* The kernel names the owner of direct I/O writes. */
			handle_wrote(h, fi->lock_owner);
			h->draft->writer_killed = 0;
			h->flushed = false;
			if (fuse_req_ctx(req)->pid != h->draft->actor_thread) {
				actor_of(req, &h->draft->actor);
				h->draft->actor_thread = fuse_req_ctx(req)->pid;
			}
		}
	} else {
		rc = -EBADF;
	}
	struct reply r = { .req = req, .kind = REPLY_WRITE, .err = rc, .written = written };
	unlock_reply(&iv, &r);
}

/* Commit what h wrote: at fsync always, at a close (flush) only if the
 * closer wrote it. */
static void commit_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, bool flush)
{
	struct handle *h = handle_of(fi);
	struct invals iv = { 0 };
	int rc = 0;
	lock();
	struct node *n = node_by_ino(ino);
	bool writer = n && n->kind != N_CONTROL && h->kind == H_WRITE;
	/* A close by the opener or a writer (any thread of theirs): a child
	 * closing an inherited descriptor says nothing of what the writer
	 * meant (op_fsyncdir, op_destroy). */
	pid_t pid = fuse_req_ctx(req)->pid;
	if (writer && flush && (pid == h->pid || owner_wrote(h, fi->lock_owner)))
		h->flushed = true;
	bool commit = writer && (!flush || handle_wrote_for(h, fi->lock_owner, pid));
	/* A writer killed before it closed the file (its close is the
	 * kernel's, on the way out) did not finish it: the bytes are kept
	 * as a rejected version at the last release, unless a live writer
	 * of the same draft goes on. */
	int sig = commit && flush ? killing_signal(pid) : 0;
	if (sig) {
		h->draft->writer_killed = sig;
		log_msg(LOG_WARNING, "%s: its writer (pid %d) was killed by signal %d before closing it",
			h->draft->path, (int)pid, sig);
	} else if (commit) {
		h->draft->writer_killed = 0;
		rc = commit_handle(req, h, &iv);
	}
	struct reply r = { .req = req, .kind = REPLY_ERR, .err = rc };
	unlock_reply(&iv, &r);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	commit_op(req, ino, fi, true);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	commit_op(req, ino, fi, false);
}

/* The last handle of a draft commits what is left; a file whose creation
 * never committed (its JSON was rejected) disappears with it. */
static void release_write(fuse_req_t req, struct handle *h, struct invals *iv)
{
	struct draft *d = h->draft;
	/* Refs held by reservations are opens still on their way back. */
	bool last = d->refs - d->reserved == 1;
	if (last && d->dirty) {
		int rc = commit_handle(req, h, iv);
		/* ESTALE: kept as a rejected version, which is logged. */
		if (rc && rc != -ESTALE)
			log_msg(LOG_ERR, "commit at release of %s failed: %s", d->path, strerror(-rc));
	}
	pidset_remove(&d->writers, h->pid);
	if (last && !d->orphaned) {
		/* The name goes back to the version node (or, for a file
		 * whose creation never committed, away). */
		inval_path(iv, d->path);
		struct node *dn = d->pending ? node_find(N_DRAFT, d->path, 0) : NULL;
		if (dn)
			node_detach(dn);
	}
	draft_put(d);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct invals iv = { 0 };
	lock();
	struct node *n = node_by_ino(ino);
	if (n && n->kind == N_CONTROL) {
		meta_release(fi);
	} else {
		struct handle *h = handle_of(fi);
		if (h->kind == H_WRITE)
			release_write(req, h, &iv);
		handle_free(h);
	}
	struct reply r = { .req = req, .kind = REPLY_ERR };
	unlock_reply(&iv, &r);
}

/* ---- directories -------------------------------------------------------- */

struct dirent_snap {
	char *name;
	struct stat st;
	enum vc_kind kind;
	vc_id version;   /* the head listed; 0 for ".", "..", pending and virtual names */
};

/* A directory listing, taken at the first readdir of an open (with
 * cache_readdir, the kernel often needs none). */
struct dir_handle {
	fuse_ino_t ino;
	bool taken;
	vc_id seq;       /* the store's clock when it was taken */
	struct dirent_snap *ents;
	size_t n, cap;
	char *path;      /* NULL for .versions directories */
	struct node *meta;
};

static void dir_add(void *ctx, const char *name, struct stat *st)
{
	struct dir_handle *dh = ctx;
	if (dh->n == dh->cap) {
		size_t cap = dh->cap ? dh->cap * 2 : 32;
		struct dirent_snap *e = realloc(dh->ents, cap * sizeof(*e));
		if (!e)
			return;
		dh->ents = e;
		dh->cap = cap;
	}
	dh->ents[dh->n] = (struct dirent_snap){ .name = strdup(name), .st = *st };
	dh->n++;
}

static int add_child(const char *name, const vc_entry *e, void *ctx)
{
	struct dir_handle *dh = ctx;
	struct stat st;
	attr_from_entry(&st, e);
	dir_add(ctx, name, &st);
	if (dh->n) {
		dh->ents[dh->n - 1].kind = e->head.kind;
		dh->ents[dh->n - 1].version = e->head.id;
	}
	return 0;
}

static void add_pending(struct draft *d, void *ctx)
{
	struct stat st;
	attr_of_pending(&st, d, 0);
	dir_add(ctx, path_base(d->path), &st);
}

static int snapshot_dir(struct node *n, struct dir_handle *dh)
{
	struct stat dot = { .st_mode = S_IFDIR };
	dir_add(dh, ".", &dot);
	dir_add(dh, "..", &dot);
	if (is_meta(n)) {
		dh->meta = n;
		return meta_readdir(n, dir_add, dh);
	}
	if (n->kind != N_DIR)
		return -ENOTDIR;
	if (!n->path)
		return -ENOENT;
	dh->path = strdup(n->path);
	int rc = vc_last_seq(fs.store, &dh->seq);
	if (!rc)
		rc = vc_list_dir(fs.store, n->path, add_child, dh);
	if (rc)
		return rc;
	drafts_pending_in(n->path, add_pending, dh);
	if (fs.showmeta && n->ino == FUSE_ROOT_ID) {
		struct stat st = { .st_mode = S_IFREG };
		dir_add(dh, CONTROL_NAME, &st);
		st = (struct stat){ .st_mode = S_IFDIR };
		dir_add(dh, VERSIONS_NAME, &st);
	}
	return 0;
}

static void dir_free(struct dir_handle *dh)
{
	for (size_t i = 0; i < dh->n; i++)
		free(dh->ents[i].name);
	free(dh->ents);
	free(dh->path);
	free(dh);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *dh = calloc(1, sizeof(*dh));
	lock();
	struct node *n = node_by_ino(ino);
	int rc = !dh ? -ENOMEM : !n ? -ENOENT : n->kind == N_DIR || is_meta(n) ? 0 : -ENOTDIR;
	/* The kernel keeps a listing it has read until the directory
	 * changes: through its own create, unlink and rename, or when an
	 * entry in it is invalidated (every head move does that). */
	if (!rc && n->kind == N_DIR) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	unlock();
	if (rc) {
		free(dh);
		fuse_reply_err(req, -rc);
		return;
	}
	dh->ino = ino;
	fi->fh = (uintptr_t)dh;
	fuse_reply_open(req, fi);
}

/* A name listed at dh->seq still shows that version if the store's clock
 * has not moved since and no draft is open on it: no lookup needed. */
static int listed_entry(struct dir_handle *dh, const struct dirent_snap *s, const char *path,
			vc_id now, pid_t pid, struct fuse_entry_param *e)
{
	if (!s->version || now != dh->seq || draft_find(path))
		return entry_for_path(path, pid, e);
	struct node *n = s->kind == VC_DIR ? node_get(N_DIR, path, 0)
					   : node_get(N_FILE, path, s->version);
	if (!n)
		return -ENOMEM;
	if (n->nlookup == 1)
		n->attr = s->st;
	*e = (struct fuse_entry_param){ .ino = n->ino, .attr = n->attr,
					.entry_timeout = ENTRY_TIMEOUT,
					.attr_timeout = ENTRY_TIMEOUT };
	return 0;
}

/* The entry of one listed name, as a lookup would give it. */
static int dir_entry(struct dir_handle *dh, size_t i, vc_id now, pid_t pid,
		     struct fuse_entry_param *e)
{
	struct dirent_snap *s = &dh->ents[i];
	if (!strcmp(s->name, ".") || !strcmp(s->name, "..")) {
		*e = (struct fuse_entry_param){ .attr = s->st };
		return 0;
	}
	if (dh->meta)
		return meta_lookup(dh->meta, s->name, e);
	if (!*dh->path && (!strcmp(s->name, CONTROL_NAME) || !strcmp(s->name, VERSIONS_NAME)))
		return meta_lookup_root(s->name, e);
	char *path = path_join(dh->path, s->name);
	int rc = path ? listed_entry(dh, s, path, now, pid, e) : -ENOMEM;
	free(path);
	if (!rc && !e->ino)
		rc = -ENOENT; /* gone since opendir */
	return rc;
}

static void readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	lock();
	vc_id now = 0;
	struct node *dir = node_by_ino(dh->ino);
	int rc = dh->taken ? 0 : !dir ? -ENOENT : snapshot_dir(dir, dh);
	dh->taken = true;
	if (!rc && !dh->meta)
		rc = vc_last_seq(fs.store, &now);
	if (rc) {
		unlock();
		free(buf);
		fuse_reply_err(req, -rc);
		return;
	}
	for (size_t i = (size_t)off; i < dh->n; i++) {
		struct fuse_entry_param e;
		if (dir_entry(dh, i, now, fuse_req_ctx(req)->pid, &e))
			continue;
		size_t sz = plus ? fuse_add_direntry_plus(req, buf + used, size - used,
							  dh->ents[i].name, &e, (off_t)i + 1)
				 : fuse_add_direntry(req, buf + used, size - used,
						     dh->ents[i].name, &e.attr, (off_t)i + 1);
		bool counted = e.ino != 0;
		if (sz > size - used) {
			/* Did not fit: the kernel will not count this lookup. */
			if (counted)
				node_forget(node_by_ino(e.ino), 1);
			break;
		}
		/* Plain readdir does not count lookups either. */
		if (!plus && counted)
			node_forget(node_by_ino(e.ino), 1);
		used += sz;
	}
	unlock();
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free((struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void list_pending(struct draft *d, void *ctx)
{
	draft_list_add(ctx, d);
}

/* Whether some write handle of d wrote since it was last closed. */
static bool draft_being_written(const struct draft *d)
{
	for (const struct handle *h = open_handles; h; h = h->next)
		if (h->kind == H_WRITE && h->draft == d && !h->flushed)
			return true;
	return false;
}

/*
 * Every change is durable when its request returns, but a file created
 * and not committed yet has no version: its first commit waits for its
 * last release, which the kernel sends after close(2) has returned.
 * fsync(2) of the directory is how a program makes a new name durable
 * (create, close, fsync the directory: lock files, touch), so it commits
 * the directory's new files whose writers have closed them, as theirs
 * (the fsync needs only read access to the directory).  A file still
 * being written is left to its writer; a rejected one (JSON) stays in
 * history and does not fail the fsync, nor does one that failed (EFBIG).
 */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	struct invals iv = { 0 };
	struct draft_list l = { 0 };
	int rc = 0;
	lock();
	struct node *n = node_by_ino(ino);
	if (n && n->kind == N_DIR && n->path)
		drafts_pending_in(n->path, list_pending, &l);
	for (size_t i = 0; i < l.n; i++) {
		struct draft *d = l.d[i];
		if (d->failed || draft_being_written(d))
			continue;
		vc_actor a = d->actor;
		int one = commit_draft(d, &a, &iv);
		if (one && one != -EINVAL && !rc)
			rc = one;
	}
	free(l.d);
	/* The kernel holds the directory's lock until this reply: the
	 * entries of the committed names are dropped after it. */
	struct reply r = { .req = req, .kind = REPLY_ERR, .err = rc };
	unlock_reply_first(&iv, &r);
}

/* ---- the filesystem ------------------------------------------------------ */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	char *dir = strdup(fs.store_path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	/* Space is the store's: report the filesystem that holds it. */
	int rc = dir && statvfs(dir, &sv) == 0 ? 0 : errno ? errno : ENOMEM;
	free(dir);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	sv.f_namemax = VC_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC arrives with open, so truncation lands in the draft and
	 * never shows an empty live file. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	/* Writes must reach the daemon as they happen. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

/* The session ends (unmount, SIGTERM) with files still open, or their
 * last release not yet processed.  A draft whose writers have all closed
 * it is committed, as its last release would have been; one still being
 * written holds part of a file, which must not go live: its bytes are kept
 * in history as a rejected version.  Then the handles are let go. */
static void op_destroy(void *userdata)
{
	(void)userdata;
	lock();
	for (struct handle *h = open_handles; h; h = h->next) {
		if (h->kind != H_WRITE || !h->draft->dirty)
			continue;
		struct draft *d = h->draft;
		vc_actor a = d->actor;
		bool moved;
		int rc = !d->superseded && draft_being_written(d) ? draft_keep_unfinished(d, &a)
								   : draft_commit(d, &a, &moved);
		if (rc && rc != -ESTALE && rc != -EINVAL)
			log_msg(LOG_ERR, "commit of %s at shutdown failed: %s", d->path, strerror(-rc));
	}
	while (open_handles) {
		struct handle *h = open_handles;
		if (h->kind == H_WRITE)
			draft_put(h->draft);
		handle_free(h);
	}
	unlock();
}

const struct fuse_lowlevel_ops verconf_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.create = op_create,
};
